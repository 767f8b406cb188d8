"""Signed-in sessions of the admin page: random ids in a cookie, kept in memory.

A session id is 32 random bytes (``gateway.portal.csrf.new_session``), given out only
after a right password (a fresh id at every login: no fixation), and forgotten after
``idle`` seconds without use or at logout. The cookie is ``HttpOnly`` and
``SameSite=Strict``; every POST also carries a CSRF token signed for the session
(``gateway.portal.csrf.CsrfGuard``). A restart signs everyone out, which keeps no
session on disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.portal.csrf import new_session, valid_session

COOKIE = "admin_session"
MAX_SESSIONS = 64  # the oldest is forgotten beyond this


class Sessions:
    def __init__(self, idle: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle = idle
        self._clock = clock
        self._last_use: dict[str, float] = {}

    def create(self) -> str:
        session = new_session()
        self._last_use[session] = self._clock()
        while len(self._last_use) > MAX_SESSIONS:
            del self._last_use[next(iter(self._last_use))]
        return session

    def touch(self, session: str | None, *, use: bool = True) -> bool:
        """True when ``session`` is signed in; ``use``: this counts as a use (an open
        event stream does not keep a session alive by itself)."""
        if not valid_session(session):
            return False
        assert session is not None
        now = self._clock()
        last = self._last_use.get(session)
        if last is None:
            return False
        if now - last > self._idle:
            del self._last_use[session]
            return False
        if use:
            self._last_use[session] = now
        return True

    def end(self, session: str | None) -> None:
        if session is not None:
            self._last_use.pop(session, None)

    def __len__(self) -> int:
        return len(self._last_use)
