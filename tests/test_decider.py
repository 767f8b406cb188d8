"""The decider alone, with fakes behind its seams (door rule, record backend, door).

What it promises: a refusal records nothing and opens nothing; an admission holds the
record before the door moves and releases it only after the door opened; a door that
fails discards it; Attendance hears of a check-in only when it was stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from gateway.attendance import Attendance
from gateway.decide import Decider
from gateway.errors import DoorError
from gateway.model import Direction, Membership, Outcome, RecordKind, Signal, Tap
from gateway.readers.base import make_tap
from gateway.records.base import Hold
from gateway.rules.base import Verdict
from gateway.store import open_db
from tests.harness import RecordingDoor, eventually

pytestmark = pytest.mark.usefixtures("no_blocking")

ADA = Membership("m-ada", "Ada")
UNTIL = datetime.now(UTC) + timedelta(hours=8)


class FixedRule:
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.taps: list[Tap] = []

    async def judge(self, tap: Tap) -> Verdict:
        self.taps.append(tap)
        return self.verdict


class FakeBackend:
    """Records what the decider asked, in order; ``store`` False plays a locked disk."""

    def __init__(self, journal: list[str], *, store: bool = True) -> None:
        self.journal = journal
        self.store = store

    @property
    def name(self) -> str:
        return "fake"

    @property
    def storage_error(self) -> str | None:
        return None if self.store else "database is locked"

    async def hold(self, kind: RecordKind, tap: Tap, member: Membership | None) -> Hold:
        self.journal.append(f"hold {kind.value}")
        return Hold("fake", kind, tap, member, 1 if self.store else None)

    async def release(self, hold: Hold, *, live: bool) -> None:
        self.journal.append(f"release live={live}")

    async def discard(self, hold: Hold) -> None:
        self.journal.append("discard")

    async def run(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class JournalDoor(RecordingDoor):
    def __init__(self, journal: list[str], *, fail: bool = False) -> None:
        super().__init__()
        self.journal = journal
        self.fail = fail

    async def open(self) -> None:
        self.journal.append("door")
        if self.fail:
            raise DoorError("relay did not click")
        await super().open()


@pytest.fixture
async def attendance(tmp_path: Path) -> AsyncIterator[Attendance]:
    db = await open_db(tmp_path)
    att = Attendance(db)
    await att.load()
    yield att
    await db.close()


def _tap(direction: Direction = Direction.IN) -> Tap:
    return make_tap("front", "0A1B2C3D4E", direction)


async def test_admission_holds_then_opens_then_releases(attendance: Attendance) -> None:
    journal: list[str] = []
    verdict = Verdict(Outcome.OPENED_ONLINE, ADA, record=RecordKind.CHECK_IN, until=UNTIL)
    decider = Decider(FixedRule(verdict), [FakeBackend(journal)], attendance)
    door = JournalDoor(journal)
    d = await decider.decide(_tap(), door)
    assert d.outcome is Outcome.OPENED_ONLINE and d.opened
    assert journal == ["hold check_in", "door", "release live=True"]
    assert attendance.until(ADA.id) == UNTIL
    await eventually(lambda: door.signals == [Signal.GRANTED])
    await decider.aclose()


async def test_refusal_records_nothing_and_keeps_the_door_shut(attendance: Attendance) -> None:
    journal: list[str] = []
    verdict = Verdict(Outcome.REFUSED, ADA, "No time passes left.")
    decider = Decider(FixedRule(verdict), [FakeBackend(journal)], attendance)
    door = JournalDoor(journal)
    d = await decider.decide(_tap(), door)
    assert (d.outcome, d.opened, d.reason) == (Outcome.REFUSED, False, "No time passes left.")
    assert journal == []
    await eventually(lambda: door.signals == [Signal.REFUSED])
    await decider.aclose()


async def test_failed_door_discards_the_record_and_marks_nobody(attendance: Attendance) -> None:
    journal: list[str] = []
    verdict = Verdict(Outcome.OPENED_OFFLINE, ADA, record=RecordKind.CHECK_IN, until=UNTIL)
    decider = Decider(FixedRule(verdict), [FakeBackend(journal)], attendance)
    d = await decider.decide(_tap(), JournalDoor(journal, fail=True))
    assert d.outcome is Outcome.DOOR_FAILED and not d.opened
    assert journal == ["hold check_in", "door", "discard"]
    assert attendance.until(ADA.id) is None


async def test_unstored_record_is_released_but_nobody_is_marked_in(
    attendance: Attendance,
) -> None:
    journal: list[str] = []
    verdict = Verdict(
        Outcome.OPENED_OFFLINE, ADA, record=RecordKind.CHECK_IN, until=UNTIL, live=False
    )
    backend = FakeBackend(journal, store=False)
    decider = Decider(FixedRule(verdict), [backend], attendance)
    d = await decider.decide(_tap(), JournalDoor(journal))
    assert d.opened
    assert journal == ["hold check_in", "door", "release live=False"]
    assert attendance.until(ADA.id) is None  # neither stored nor delivered
    assert decider.storage_error == "database is locked"
    await decider.aclose()


async def test_check_out_tells_attendance(attendance: Attendance) -> None:
    await attendance.checked_in(ADA.id, UNTIL)
    journal: list[str] = []
    verdict = Verdict(Outcome.CHECKED_OUT, ADA, record=RecordKind.CHECK_OUT)
    decider = Decider(FixedRule(verdict), [FakeBackend(journal)], attendance)
    await decider.decide(_tap(Direction.OUT), JournalDoor(journal))
    assert journal == ["hold check_out", "door", "release live=True"]
    assert attendance.until(ADA.id) is None
    await decider.aclose()


async def test_each_door_asks_its_own_rule(attendance: Attendance) -> None:
    front = FixedRule(Verdict(Outcome.OPENED_CACHED, ADA))
    room = FixedRule(Verdict(Outcome.REFUSED, ADA, "no booking now"))
    decider = Decider(front, [], attendance, door_rules={"room-1": room})
    d_room = await decider.decide(_tap(), RecordingDoor("room-1"))
    d_front = await decider.decide(_tap(), RecordingDoor("front"))
    assert (d_room.outcome, d_front.outcome) == (Outcome.REFUSED, Outcome.OPENED_CACHED)
    assert (len(room.taps), len(front.taps)) == (1, 1)
    await decider.aclose()


async def test_a_failing_hook_does_not_undo_the_decision(attendance: Attendance) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("hook bug")

    seen: list[Outcome] = []
    decider = Decider(
        FixedRule(Verdict(Outcome.OPENED_CACHED, ADA)),
        [],
        attendance,
        hooks=[broken, lambda d: seen.append(d.outcome)],
    )
    with structlog.testing.capture_logs() as logs:
        d = await decider.decide(_tap(), RecordingDoor())
    assert d.opened and seen == [Outcome.OPENED_CACHED]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["decision_hook_failed"]
    await decider.aclose()


async def test_journal_runs_before_the_release_and_hooks_after_attendance(
    attendance: Attendance,
) -> None:
    """The journal (the access log) writes with the record's own transaction; hooks (the
    portal's returning device, MQTT) see who is in already."""
    journal: list[str] = []
    verdict = Verdict(Outcome.OPENED_ONLINE, ADA, record=RecordKind.CHECK_IN, until=UNTIL)

    def hook(d: object) -> None:
        journal.append(f"hook in={attendance.until(ADA.id) is not None}")

    decider = Decider(
        FixedRule(verdict),
        [FakeBackend(journal)],
        attendance,
        hooks=[hook],
        journal=[lambda d: journal.append(f"journal {d.outcome.value}")],
    )
    await decider.decide(_tap(), JournalDoor(journal))
    assert journal == [
        "hold check_in",
        "door",
        "journal opened-online",
        "release live=True",
        "hook in=True",
    ]
    journal.clear()
    await decider.decide(_tap(), JournalDoor(journal, fail=True))
    assert journal == ["hold check_in", "door", "journal door-failed", "discard", "hook in=True"]
    await decider.aclose()
