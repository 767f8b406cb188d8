"""NFC readers through nfcpy: ISO 14443-A UIDs (and optional NDEF text tokens).

Layers, each its own module: ``presence`` (when a sighting is a new tap), ``faults``
(what went wrong and the fix), ``frontend`` (the nfcpy calls), ``worker`` (the thread
that owns the device and reopens it), ``reader`` (the async ``Reader``). Importing
this package does not import nfcpy; the worker thread does, when it starts.
"""
