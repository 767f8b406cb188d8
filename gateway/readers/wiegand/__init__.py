"""Wiegand readers on the Pi's GPIO: edges -> frames (``frames``) -> cards (``formats``)
-> tokens (``session``), driven by ``reader``."""
