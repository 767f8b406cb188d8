"""USB readers that type like a keyboard, read through evdev (``reader``): key codes ->
characters (``keymap``) -> tokens (``tokens``)."""
