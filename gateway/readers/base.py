"""The seam every reader implements, and the debouncing they share."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.model import ClockQuality, Direction, Membership, Tap
from gateway.readers.link import LinkState

TapSink = Callable[[Tap], None]
"""Where a reader hands its taps; must not block (the gateway queues them)."""


class PresenceQuestions(Protocol):
    """What a presence reader asks the one owner of "who is checked in, until when"
    (``gateway.attendance.Attendance``) before it turns an arrival or a departure into a
    tap. Memory only: answered per packet."""

    def until(self, membership_id: str, at: datetime | None = None) -> datetime | None:
        """When the member's check-in ends, or None if not checked in at ``at``."""

    def checked_out_today(self, membership_id: str, at: datetime) -> bool:
        """Checked out earlier on ``at``'s local day and not checked in since."""

    def refusal(self, token: str, at: datetime) -> str | None:
        """Cobot's reason if it refused this token earlier the same local day."""


class _NobodyCheckedIn:
    """The answers when nothing is known (a reader run on its own, outside a gateway):
    nobody is checked in, nobody was checked out or refused."""

    def until(self, membership_id: str, at: datetime | None = None) -> datetime | None:
        return None

    def checked_out_today(self, membership_id: str, at: datetime) -> bool:
        return False

    def refusal(self, token: str, at: datetime) -> str | None:
        return None


NOBODY_CHECKED_IN: PresenceQuestions = _NobodyCheckedIn()


@dataclass(frozen=True, slots=True)
class ReaderContext:
    """What the gateway lends a reader beyond its own config."""

    state_dir: Path
    # Token -> member from the hot cache (no I/O); presence readers use it to know
    # which devices belong to whom.
    lookup: Callable[[str], Membership | None]
    # Who is checked in (the gateway's ``Attendance``); presence readers ask it before
    # announcing an arrival or a departure.
    attendance: PresenceQuestions = NOBODY_CHECKED_IN


# A reader's state is its link's (``gateway.readers.link``); the name stays for callers.
ReaderState = LinkState


class Reader(Protocol):
    """An async source of taps.

    ``run`` returns only when cancelled (or on an unrecoverable error, raised as a
    ``ReaderError``); it reopens its device itself when it disappears.
    """

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> ReaderState: ...

    async def run(self, sink: TapSink) -> None: ...


class Debouncer:
    """Collapses the repeats of one token: a held card, a phone that keeps talking.

    A token counts again only after ``hold`` seconds without seeing it; every sighting
    inside that time extends it (so a card resting on the reader is one tap).
    """

    __slots__ = ("_clock", "_hold", "_last_seen")

    def __init__(self, hold: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._hold = hold
        self._clock = clock
        self._last_seen: dict[str, float] = {}

    def accept(self, token: str) -> bool:
        now = self._clock()
        last = self._last_seen.get(token)
        self._last_seen[token] = now
        if len(self._last_seen) > 1024:  # bound memory: forget tokens not seen lately
            self._last_seen = {t: s for t, s in self._last_seen.items() if now - s < self._hold}
        return last is None or now - last >= self._hold


def make_tap(reader: str, token: str, direction: Direction, clock: Clock = SYSTEM_CLOCK) -> Tap:
    return Tap(
        reader=reader,
        token=token,
        direction=direction,
        at=clock.now(),
        mono=clock.monotonic(),
        clock=ClockQuality.SYNCED if clock.synchronized() else ClockQuality.UNSYNCED,
        boot_id=clock.boot_id(),
    )
