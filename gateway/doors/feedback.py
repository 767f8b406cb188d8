"""What the LEDs and the buzzer do for each outcome: patterns as data, one player.

A pattern is a list of steps, each the set of feedback lines that are on and for how
long. A door without some of the lines simply skips them (a door with only a buzzer
still beeps once for granted and three times for refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.doors.base import DoorSignal, EnrolSignal
from gateway.doors.gpio_lines import FEEDBACK, Role
from gateway.errors import DoorError
from gateway.model import Signal


class Cue(enum.StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"
    OFFLINE = "offline"  # let in on the local cache: green, but visibly not the usual
    HELD_OPEN = "held-open"
    CLOCKED_IN = "clocked-in"  # MOCO: one short beep
    CLOCKED_OUT = "clocked-out"  # MOCO: two short beeps
    # Enrolment mode (gateway/admin/enrol_feedback.py): a mode, not a one-off cue.
    ENROL_START = "enrol-start"  # played once as the mode begins: a chirp
    ENROL_WAITING = "enrol-waiting"  # looped while waiting: both LEDs blink, silent
    ENROL_CAPTURED = "enrol-captured"  # a card was read: beep-beep-beeep on green
    ENROL_ENDED = "enrol-ended"  # timeout, cancel or refusal: one long buzz on red


@dataclass(frozen=True, slots=True)
class Step:
    on: frozenset[Role]
    seconds: float


def _pattern(*steps: tuple[set[Role], float]) -> tuple[Step, ...]:
    return tuple(Step(frozenset(on), seconds) for on, seconds in steps)


G, R, B = Role.GREEN, Role.RED, Role.BUZZER
PATTERNS: Mapping[Cue, tuple[Step, ...]] = {
    Cue.GRANTED: _pattern(({G, B}, 0.15), ({G}, 1.35)),
    Cue.REFUSED: _pattern(
        ({R, B}, 0.12), ({R}, 0.08), ({R, B}, 0.12), ({R}, 0.08), ({R, B}, 0.12), ({R}, 1.0)
    ),
    Cue.OFFLINE: _pattern(
        ({G, B}, 0.15), ({G}, 0.25), (set(), 0.2), ({G}, 0.3), (set(), 0.2), ({G}, 0.4)
    ),
    Cue.HELD_OPEN: _pattern(*[({R, B}, 0.4), ({R}, 0.6)] * 3),
    Cue.CLOCKED_IN: _pattern(({G, B}, 0.1), ({G}, 0.9)),
    Cue.CLOCKED_OUT: _pattern(({G, B}, 0.1), ({G}, 0.15), ({G, B}, 0.1), ({G}, 0.65)),
    Cue.ENROL_START: _pattern(({G, R, B}, 0.08), ({G, R}, 0.42), (set(), 0.5)),
    Cue.ENROL_WAITING: _pattern(({G, R}, 0.5), (set(), 0.5)),
    Cue.ENROL_CAPTURED: _pattern(
        ({G, B}, 0.08), ({G}, 0.08), ({G, B}, 0.08), ({G}, 0.08), ({G, B}, 0.4), ({G}, 1.0)
    ),
    Cue.ENROL_ENDED: _pattern(({R, B}, 0.8), ({R}, 0.7)),
}
# A door keeps showing a mode (looping its pattern after its start) until a cue that
# ends it, for at most MODE_LIMIT seconds: a lost "ended" must not blink for ever. The
# longest enrolment window is 60 s (gateway/admin/enrol.py).
MODE_LIMIT = 120.0
MODE_START: Mapping[Cue, Cue] = {Cue.ENROL_WAITING: Cue.ENROL_START}
ENDS_MODE = frozenset({Cue.ENROL_CAPTURED, Cue.ENROL_ENDED})
CUE_FOR_SIGNAL: Mapping[DoorSignal, Cue] = {
    Signal.GRANTED: Cue.GRANTED,
    Signal.REFUSED: Cue.REFUSED,
    Signal.OFFLINE: Cue.OFFLINE,
    Signal.CLOCKED_IN: Cue.CLOCKED_IN,
    Signal.CLOCKED_OUT: Cue.CLOCKED_OUT,
    EnrolSignal.WAITING: Cue.ENROL_WAITING,
    EnrolSignal.CAPTURED: Cue.ENROL_CAPTURED,
    EnrolSignal.ENDED: Cue.ENROL_ENDED,
}


class FeedbackLines(Protocol):
    def has(self, role: Role) -> bool: ...
    def set(self, role: Role, active: bool) -> None: ...


async def play(
    lines: FeedbackLines,
    steps: tuple[Step, ...],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Show ``steps``; all feedback lines end off, also when cancelled (a newer cue
    replaces an older one). Raises ``DoorError`` if a line cannot be driven."""
    present = [role for role in FEEDBACK if lines.has(role)]
    try:
        for step in steps:
            for role in present:
                lines.set(role, role in step.on)
            await sleep(step.seconds)
    finally:
        for role in present:
            with contextlib.suppress(DoorError):
                lines.set(role, False)
