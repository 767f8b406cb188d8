"""MOCO (mocoapp.com) presences: the staff time clock (moco-presences.txt).

``client`` speaks the API, ``plan`` turns queued taps into presence writes (pure),
``keys`` finds the API keys, ``users`` maps cards to MOCO users.
"""
