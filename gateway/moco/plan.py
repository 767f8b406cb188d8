"""From queued taps to presence writes: the pure core of the MOCO replay.

``touch`` has no time parameter, so a tap that waited in the outbox cannot be touched
later. Its replay writes what touches at the tap times would have produced: taps of one
user toggle, the first opens a presence, the next closes it, at minute resolution, with
the same-minute rule (a presence opened and closed within one minute is discarded). It
reads the user's presences first and merges with them: an open presence is closed by
the next tap; an opening and its closing tap both in the queue become one POST.

Exactly once: every write's taps are marked ``sending`` before it goes out. A tap found
``sending`` (``PlannedTap.sent``) may already be in MOCO, written by a replay (at its
minute) or by a live touch, which is only sent while it can be answered within the tap's
own minute (records/moco.py): either way at the tap's minute. If a presence starts or
ends in that minute, the tap is taken as done, not written again. Other taps of the user
are at least a minute apart (``min_interval`` >= 60 s) and none after it was written
before it (one user's taps go in order), so no other tap made a boundary in its minute.

Midnight: a MOCO presence belongs to one date (``to`` is a time of that date). A tap that
closes a presence opened the day before, within ``MAX_SHIFT``, splits it: the old one
ends at 23:59 (the last minute "HH:MM" names; one minute is lost) and a new one runs
00:00 -> the tap. An open presence older than that is a forgotten clock-out, not a
night shift: it is left alone (and reported) and the tap opens a new presence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from gateway.moco.model import Presence, fmt_time, minute_of

MAX_SHIFT = timedelta(hours=12)
DAY_END = time(23, 59)
DAY_START = time(0, 0)


@dataclass(frozen=True, slots=True)
class PlannedTap:
    entry_id: int
    at: datetime  # aware
    sent: bool = False  # marked sending before: it may already be in MOCO

    @property
    def minute(self) -> time:
        return minute_of(self.at)


@dataclass(slots=True)
class Create:
    day: date
    start: time
    end: time | None
    entries: list[int] = field(default_factory=list)  # settled by this write
    # Marked sending before it, settled by a later write (a midnight split's first half).
    also_sending: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Update:
    presence_id: int
    end: time
    entries: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Settle:
    """Nothing to write: already in MOCO, or discarded as MOCO would have."""

    entries: list[int]
    note: str


@dataclass(slots=True)
class Fail:
    entries: list[int]
    reason: str


Op = Create | Update | Settle | Fail


@dataclass(slots=True)
class Plan:
    ops: list[Op]
    notes: list[str]  # things a person should know (a presence left open)
    clocked_in: dict[int, bool]  # per entry: True opened, False closed (for feedback)


def _m(value: time) -> int:
    return value.hour * 60 + value.minute


def _within(value: time | None, minute: time) -> bool:
    return value is not None and 0 <= _m(value) - _m(minute) <= 1


def plan_day(day: date, taps: Sequence[PlannedTap], presences: Sequence[Presence]) -> Plan:
    """The writes for one user's ``taps`` of local ``day`` (in tap order), given their
    ``presences`` of ``day`` and the day before."""
    today = sorted((p for p in presences if p.date == day), key=lambda p: p.start)
    before = [p for p in presences if p.date == day - timedelta(days=1) and p.open]
    yesterday = max(before, key=lambda p: p.start) if before else None
    out = Plan([], [], {})
    # The presence the user is in: an existing one, or a Create not yet sent.
    current: Presence | Create | None = next((p for p in reversed(today) if p.open), None)
    for tap in taps:
        m = tap.minute
        if current is None and yesterday is not None:
            started = datetime.combine(yesterday.date, yesterday.start, tap.at.astimezone().tzinfo)
            earlier = [
                p for p in today if p.start < m and not (p.start == DAY_START and p.end == m)
            ]  # (a half-done split's own 00:00 presence does not count)
            if tap.at - started <= MAX_SHIFT and not earlier:
                _split(out, tap, yesterday, today)
                yesterday = None
                continue
            out.notes.append(
                f"the presence {yesterday.describe()} is still open (a forgotten clock-out?): "
                "left as it is; close it in MOCO"
            )
            yesterday = None
        if tap.sent:
            opened = next((p for p in today if p.start == m), None)
            closed = next((p for p in today if p.end == m), None)
            if opened is not None or closed is not None:
                # Only this tap can have made a boundary in its minute (module docstring).
                found = opened or closed
                assert found is not None
                out.ops.append(Settle([tap.entry_id], f"already in MOCO: {found.describe()}"))
                out.clocked_in[tap.entry_id] = opened is not None
                current = opened if opened is not None and opened.open else None
                continue
        if current is not None:
            current = _close(out, tap, current, today)
        else:
            current = _open(out, day, tap, today)
    return out


def _split(out: Plan, tap: PlannedTap, yesterday: Presence, today: list[Presence]) -> None:
    m = tap.minute
    out.clocked_in[tap.entry_id] = False
    done = tap.sent and any(p.start == DAY_START and p.end == m for p in today)
    if not done:
        out.ops.append(Create(tap.at.astimezone().date(), DAY_START, m, [], [tap.entry_id]))
    out.ops.append(Update(yesterday.id, DAY_END, [tap.entry_id]))
    out.notes.append(
        f"a presence crossed midnight: {yesterday.describe()} ends at 23:59 and "
        f"00:00-{fmt_time(m)} is recorded on the next day"
    )


def _open(out: Plan, day: date, tap: PlannedTap, today: list[Presence]) -> Create | None:
    m = tap.minute
    clash = next((p for p in today if p.end is not None and p.start <= m < p.end), None)
    if clash is not None:
        out.ops.append(Fail([tap.entry_id], f"conflicts with the presence {clash.describe()}"))
        return None
    create = Create(day, m, None, [tap.entry_id])
    out.ops.append(create)
    out.clocked_in[tap.entry_id] = True
    return create


def _close(
    out: Plan, tap: PlannedTap, current: Presence | Create, today: list[Presence]
) -> Presence | Create | None:
    m = tap.minute
    out.clocked_in[tap.entry_id] = False
    if current.start == m:
        if isinstance(current, Create):
            out.ops.remove(current)
            out.ops.append(
                Settle(
                    [*current.entries, tap.entry_id],
                    f"clocked in and out within the minute {fmt_time(m)}: discarded, "
                    "as MOCO's touch does",
                )
            )
            return None
        out.ops.append(
            Fail(
                [tap.entry_id],
                f"would close {current.describe()} in the minute it opened (MOCO discards "
                "such presences): left open",
            )
        )
        return current
    if current.start > m:
        assert isinstance(current, Presence)
        out.ops.append(
            Fail([tap.entry_id], f"the open presence {current.describe()} starts after this tap")
        )
        return current
    start = current.start
    clash = next((p for p in today if p is not current and start < p.start < m), None)
    if clash is not None:
        out.ops.append(
            Fail(
                [tap.entry_id],
                f"closing at {fmt_time(m)} would overlap the presence {clash.describe()}",
            )
        )
        return current
    if isinstance(current, Create):
        current.end = m
        current.entries.append(tap.entry_id)
    else:
        out.ops.append(Update(current.id, m, [tap.entry_id]))
    return None
