"""Enrolling a card by tapping it: a reader in enrolment mode hands the next unknown
token to the admin page instead of deciding it.

The manager arms a reader (``arm``) for ``WINDOW`` seconds. On the tap path ``offer``
(called for every tap before its decision, in memory only) captures the first token the
token cache does not know; known cards keep being decided as usual. The capture waits
under a random id (the page never sees the card number, only its redacted form) until
the manager picks the member; ``register`` then calls ``POST /api/check_in_tokens``
(scope ``checkin_tokens``) and adds the token to the cache, so the card opens the door
at once, before the next sync. A token Cobot already has for someone else is refused
with whose it is (redacted).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from gateway.cobot.errors import ApiError, NotFound, Refused
from gateway.model import Membership, Tap, TokenRecord
from gateway.redact import redact

log = structlog.get_logger(__name__)

WINDOW = 60.0  # seconds a reader stays in enrolment mode waiting for a card
CARD_WINDOW = 30.0  # the same, when started by tapping an admin card
KEEP = 600.0  # seconds a captured card waits for the manager's choice
MAX_CAPTURES = 8
API_DEADLINE = 10.0  # seconds for each Cobot call


class TokenApi(Protocol):
    async def create_token(
        self, membership_id: str, token: str, *, deadline: float | None = None
    ) -> TokenRecord: ...

    async def get_token(
        self, token: str, *, deadline: float | None = None
    ) -> TokenRecord | None: ...


@dataclass(frozen=True, slots=True)
class Capture:
    id: str  # random; what the page refers to
    reader: str
    token: str  # the card number: never leaves the process
    at: float  # monotonic
    wall: str  # ISO 8601 UTC of the tap

    @property
    def shown(self) -> str:
        return redact(self.token)


class CardRef:
    """Names a registered card on the page without its number: an HMAC of the token
    under a key that lives in memory (a restart invalidates open pages' buttons)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def of(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()[:24]


class EnrolWatch(Protocol):
    """Told when a reader's enrolment mode changes (``enrol_feedback.EnrolFeedback``
    shows it on the reader's door). After ``armed`` the mode ends by itself when
    ``window`` seconds pass with no card: ``Enrolment`` only notices that at the next
    tap, so a watch that shows the end keeps its own timer."""

    def armed(self, reader: str, window: float) -> None: ...
    def captured(self, reader: str) -> None: ...
    def ended(self, reader: str) -> None:
        """Disarmed before a card came, or Cobot refused the captured card."""


class _Unwatched:
    def armed(self, reader: str, window: float) -> None:
        pass

    def captured(self, reader: str) -> None:
        pass

    def ended(self, reader: str) -> None:
        pass


class EnrolRefused(Exception):
    """Cobot would not register the card; the message says why (redacted)."""


class Enrolment:
    def __init__(
        self,
        lookup: Callable[[str], Membership | None],
        add: Callable[[str, Membership], Awaitable[None]],
        *,
        on_capture: Callable[[Capture], None] = lambda _c: None,
        admin_cards: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
        watch: EnrolWatch | None = None,
    ) -> None:
        self._admin_cards = admin_cards
        self._lookup = lookup
        self._add = add
        self._on_capture = on_capture
        self._watch = watch or _Unwatched()
        self._clock = clock
        self._armed: dict[str, float] = {}  # reader -> deadline (monotonic)
        self._captures: dict[str, Capture] = {}
        self.last_name: str | None = None  # whom the last card went to, as Cobot named them

    def arm(self, reader: str, window: float = WINDOW) -> None:
        self._armed[reader] = self._clock() + window
        log.info("enrolment_armed", reader=reader, window_s=window)
        self._watch.armed(reader, window)

    def disarm(self, reader: str) -> None:
        if self._armed.pop(reader, None) is not None:
            self._watch.ended(reader)

    def armed(self) -> dict[str, float]:
        """Armed readers and the seconds left for each."""
        now = self._clock()
        return {r: round(d - now) for r, d in self._armed.items() if d > now}

    def offer(self, tap: Tap) -> bool:
        """On the tap path: True when the tap was captured (then it is not decided):
        an admin card (arms its reader) or the unknown card an armed reader waits for."""
        if tap.token in self._admin_cards:
            self.arm(tap.reader, CARD_WINDOW)
            return True
        deadline = self._armed.get(tap.reader)
        if deadline is None:
            return False
        now = self._clock()
        if now > deadline:
            del self._armed[tap.reader]
            return False
        if self._lookup(tap.token) is not None:
            return False  # a known card: decided as usual
        del self._armed[tap.reader]
        capture = Capture(
            secrets.token_urlsafe(12), tap.reader, tap.token, now, tap.at.isoformat("T", "seconds")
        )
        self._captures[capture.id] = capture
        self._expire(now)
        log.info("enrolment_captured", reader=tap.reader, token=capture.shown)
        self._watch.captured(tap.reader)
        self._on_capture(capture)
        return True

    def captures(self) -> list[Capture]:
        self._expire(self._clock())
        return sorted(self._captures.values(), key=lambda c: c.at, reverse=True)

    def forget(self, capture_id: str) -> None:
        self._captures.pop(capture_id, None)

    def _expire(self, now: float) -> None:
        for key, c in list(self._captures.items()):
            if now - c.at > KEEP:
                del self._captures[key]
        while len(self._captures) > MAX_CAPTURES:
            oldest = min(self._captures.values(), key=lambda c: c.at)
            del self._captures[oldest.id]

    async def register(self, api: TokenApi, capture_id: str, member: Membership) -> Capture:
        """Register the captured card for ``member`` at Cobot, then in the cache.
        Raises KeyError (no such capture) or EnrolRefused."""
        capture = self._captures[capture_id]
        try:
            record = await self._create(api, capture, member)
        except EnrolRefused:
            self._watch.ended(capture.reader)  # shown at the reader the card was read on
            raise
        name = record.membership.name or member.name
        self.last_name = name or None
        await self._add(capture.token, Membership(member.id, name))
        self.forget(capture_id)
        log.info("enrolment_registered", token=capture.shown, membership_id=member.id)
        return capture

    async def _create(self, api: TokenApi, capture: Capture, member: Membership) -> TokenRecord:
        try:
            return await api.create_token(member.id, capture.token, deadline=API_DEADLINE)
        except Refused as exc:
            owner = None
            try:
                owner = await api.get_token(capture.token, deadline=API_DEADLINE)
            except NotFound:
                owner = None
            if owner is not None and owner.membership.id != member.id:
                who = owner.membership.name or owner.membership.id
                raise EnrolRefused(f"card already registered to {redact(who)}") from exc
            raise EnrolRefused(f"Cobot refused: {exc.reason}") from exc
        except ApiError as exc:
            raise EnrolRefused(f"Cobot did not register the card: {exc}") from exc
