"""One exception base for the package; everything we raise derives from it.

Errors that wrap a library failure (OSError, serial, aiohttp) keep it as ``__cause__``
so a traceback shows both what we were doing and what broke underneath.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of every error checkin-gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is unusable; the message names the file and the key."""


class ReaderError(GatewayError):
    """A reader's device failed (gone, busy, no permission)."""


class DoorError(GatewayError):
    """A door could not be driven (command failed, GPIO line busy)."""


class StorageError(GatewayError):
    """The state directory's SQLite files could not be read or written."""
