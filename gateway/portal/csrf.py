"""CSRF tokens for the sign-in form: a signed (session, issue time) pair.

The page sets a random session cookie and puts ``<time>.<HMAC(secret, session|time)>``
into the form. A POST is accepted only with the cookie and a fresh token signed for it,
so another site (or a page on the open internet that a client visits later) cannot
submit the form on a client's behalf. The secret lives in memory: a restart invalidates
open forms, which costs a person one retry and keeps no secret on disk.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

COOKIE = "portal_session"
MAX_AGE = 3600.0  # seconds a form stays valid
# Base64url of 32 random bytes; anything else in the cookie is treated as no session.
_SESSION_LENGTH = 43
_SESSION_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def new_session() -> str:
    return secrets.token_urlsafe(32)


def valid_session(value: str | None) -> bool:
    return value is not None and len(value) == _SESSION_LENGTH and _SESSION_CHARS.issuperset(value)


class CsrfGuard:
    def __init__(
        self,
        secret: bytes | None = None,
        *,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._max_age = max_age
        self._clock = clock

    def _sign(self, session: str, issued: int) -> str:
        message = f"{session}|{issued}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def issue(self, session: str) -> str:
        issued = int(self._clock())
        return f"{issued}.{self._sign(session, issued)}"

    def check(self, session: str | None, token: str | None) -> bool:
        if not valid_session(session) or not token or len(token) > 100:
            return False
        assert session is not None
        issued_text, _, signature = token.partition(".")
        if not issued_text.isascii() or not issued_text.isdigit():
            return False
        issued = int(issued_text)
        age = self._clock() - issued
        # A token from the future is as wrong as an old one (a forged time).
        if age < -60 or age > self._max_age:
            return False
        return hmac.compare_digest(signature, self._sign(session, issued))
