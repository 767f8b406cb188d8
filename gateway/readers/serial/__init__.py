"""Serial RFID readers: RDM6300/EM4100 modules and line-per-token USB readers.

``frames`` turns bytes into frames (pure), ``reader`` owns the port and turns frames
into taps.
"""
