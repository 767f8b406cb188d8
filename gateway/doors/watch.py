"""What a door's inputs mean: the contact's held-open alarm and the exit button.

Pure: fed edges, unlock pulses and the time (an injectable clock), it answers with
reports for the door to log and act on; it owns no timer. The door asks
``next_deadline()`` when to call ``poll()`` again.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

# A door pushed open just after the strike relocks was still opened by that unlock:
# the latch let go while the person leaned on it.
UNLOCK_GRACE = 2.0


class DoorEvent(enum.StrEnum):
    OPENED = "opened"  # during (or just after) an unlock
    OPENED_WITHOUT_UNLOCK = "opened-without-unlock"  # a key, a free-egress handle, force
    HELD_OPEN = "held-open"  # open longer than the alarm time
    CLOSED = "closed"
    EXIT_PRESSED = "exit-pressed"


@dataclass(frozen=True, slots=True)
class Report:
    event: DoorEvent
    open_for: float | None = None  # seconds the door had been open (HELD_OPEN, CLOSED)
    alarmed: bool = False  # CLOSED: the held-open alarm had been raised


class DoorWatch:
    def __init__(
        self,
        *,
        held_open_alarm: float,
        unlock_grace: float = UNLOCK_GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._alarm_after = held_open_alarm
        self._grace = unlock_grace
        self._clock = clock
        self._unlocked_until = float("-inf")
        self._opened_at: float | None = None
        self._alarmed = False
        self._pressed = False
        self._known = False

    @property
    def is_open(self) -> bool | None:
        """None until the contact was first read (or when there is no contact)."""
        return self._opened_at is not None if self._known else None

    def start(self, is_open: bool) -> None:
        """The contact's level at start-up: a baseline, reported as nothing."""
        self._known = True
        self._opened_at = self._clock() if is_open else None
        self._alarmed = False

    def unlocked(self, seconds: float) -> None:
        """The strike is unlocked from now for ``seconds`` (a pulse, maybe extended)."""
        self._unlocked_until = self._clock() + seconds

    def contact(self, is_open: bool) -> list[Report]:
        now = self._clock()
        self._known = True
        if is_open and self._opened_at is None:
            self._opened_at = now
            self._alarmed = False
            if now <= self._unlocked_until + self._grace:
                return [Report(DoorEvent.OPENED)]
            return [Report(DoorEvent.OPENED_WITHOUT_UNLOCK)]
        if not is_open and self._opened_at is not None:
            report = Report(DoorEvent.CLOSED, now - self._opened_at, self._alarmed)
            self._opened_at = None
            self._alarmed = False
            return [report]
        return []  # a repeated level (an edge lost to debounce): nothing changed

    def exit_button(self, pressed: bool) -> list[Report]:
        """A press (not the release, not a held button's repeats) opens the door."""
        was, self._pressed = self._pressed, pressed
        if pressed and not was:
            return [Report(DoorEvent.EXIT_PRESSED)]
        return []

    def next_deadline(self) -> float | None:
        """When ``poll`` has something to say (clock time), if ever."""
        if self._opened_at is None or self._alarmed:
            return None
        return self._opened_at + self._alarm_after

    def poll(self) -> list[Report]:
        deadline = self.next_deadline()
        now = self._clock()
        if deadline is None or now < deadline or self._opened_at is None:
            return []
        self._alarmed = True
        return [Report(DoorEvent.HELD_OPEN, now - self._opened_at)]
