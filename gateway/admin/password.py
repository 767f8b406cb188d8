"""The admin password: an argon2id hash in ``[admin] password_file`` (argon2-cffi).

There is no default password (esp-rfid's "admin"/"admin" let anyone open the door): a
missing, empty or malformed file keeps the page from starting and says why.
``checkin-gateway admin-password --config FILE`` writes the file (mode 0600).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.errors import ConfigError

MIN_LENGTH = 10  # characters; a door controller's password is worth a long one
_HASHER = PasswordHasher()  # argon2id, RFC 9106's second recommended parameter set


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"the password must have at least {MIN_LENGTH} characters")
    return _HASHER.hash(password)


def write_hash_file(path: Path, password: str) -> None:
    """Write the hash atomically, readable by its owner only."""
    encoded = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(encoded + "\n")
    tmp.replace(path)


def load_hash(path: Path | None) -> str:
    """The stored hash; ConfigError saying what to do when there is none."""
    fix = "make one with: checkin-gateway admin-password --config CONFIG"
    if path is None:
        raise ConfigError(f"[admin] password_file is not set, and there is no default; {fix}")
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"[admin] password_file {path} does not exist; {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"[admin] password_file {path}: cannot read it ({exc})") from None
    if not text.startswith("$argon2"):
        raise ConfigError(f"[admin] password_file {path} holds no argon2 hash; {fix}")
    return text


class PasswordCheck:
    """Verifies a password against the hash (in a thread: argon2 takes tens of ms)."""

    def __init__(self, encoded: str) -> None:
        self._encoded = encoded

    def _verify(self, password: str) -> bool:
        try:
            return _HASHER.verify(self._encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password)
