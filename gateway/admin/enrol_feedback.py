"""Enrolment mode on the reader's door: the LEDs/buzzer (or the feedback command) tell
the person at the reader that it waits for a new card, that it read one, or that the
mode ended without one (timeout, cancelled) or Cobot refused the card.

``EnrolFeedback`` is the ``EnrolWatch`` of ``gateway.admin.enrol.Enrolment``: it turns
its calls into ``EnrolSignal``s for ``show(reader, signal)`` (the admin service finds
the reader's door) and owns the one timer per armed reader that says "ended" when the
window runs out with no card. The patterns are in ``gateway.doors.feedback`` (README,
"Enrolment mode at the door").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from gateway.doors.base import EnrolSignal

log = structlog.get_logger(__name__)

Show = Callable[[str, EnrolSignal], None]


class EnrolFeedback:
    def __init__(self, show: Show) -> None:
        self._show = show
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def armed(self, reader: str, window: float) -> None:
        """The reader waits (again) for ``window`` seconds: waiting shown until then."""
        self._cancel(reader)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # armed outside the daemon's loop (a unit test): no timer
            loop = None
        if loop is not None:
            self._timers[reader] = loop.call_later(window, self._timed_out, reader)
        self._signal(reader, EnrolSignal.WAITING)

    def captured(self, reader: str) -> None:
        self._cancel(reader)
        self._signal(reader, EnrolSignal.CAPTURED)

    def ended(self, reader: str) -> None:
        self._cancel(reader)
        self._signal(reader, EnrolSignal.ENDED)

    def close(self) -> None:
        for reader in list(self._timers):
            self._cancel(reader)

    def _timed_out(self, reader: str) -> None:
        self._timers.pop(reader, None)
        log.info("enrolment_timed_out", reader=reader)
        self._signal(reader, EnrolSignal.ENDED)

    def _cancel(self, reader: str) -> None:
        timer = self._timers.pop(reader, None)
        if timer is not None:
            timer.cancel()

    def _signal(self, reader: str, signal: EnrolSignal) -> None:
        try:
            self._show(reader, signal)
        except Exception:  # feedback is a courtesy: never in the way of enrolment
            log.exception("enrolment_feedback_failed", reader=reader, signal=signal.value)
