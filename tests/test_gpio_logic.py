"""The door's pure parts: contact/held-open/exit-button logic and feedback patterns."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.doors.feedback import PATTERNS, Cue, play
from gateway.doors.gpio_lines import Role
from gateway.doors.watch import DoorEvent, DoorWatch, Report
from gateway.errors import DoorError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(alarm: float = 30.0) -> tuple[DoorWatch, Clock]:
    clock = Clock()
    return DoorWatch(held_open_alarm=alarm, unlock_grace=2.0, clock=clock), clock


def test_unknown_until_the_contact_is_read() -> None:
    watch, _ = make()
    assert watch.is_open is None
    assert watch.next_deadline() is None
    watch.start(False)
    assert watch.is_open is False


def test_opened_during_an_unlock_then_closed() -> None:
    watch, clock = make()
    watch.start(False)
    watch.unlocked(3.0)
    clock.now += 1
    assert watch.contact(True) == [Report(DoorEvent.OPENED)]
    assert watch.is_open is True
    clock.now += 5
    assert watch.contact(False) == [Report(DoorEvent.CLOSED, 5.0, alarmed=False)]
    assert watch.next_deadline() is None


def test_opened_just_after_the_relock_still_counts_as_unlocked() -> None:
    watch, clock = make()
    watch.start(False)
    watch.unlocked(3.0)
    clock.now += 4.9  # 1.9 s after the relock: inside the 2 s grace
    assert watch.contact(True) == [Report(DoorEvent.OPENED)]


def test_opened_without_any_unlock() -> None:
    watch, clock = make()
    watch.start(False)
    watch.unlocked(3.0)
    clock.now += 5.1
    assert watch.contact(True) == [Report(DoorEvent.OPENED_WITHOUT_UNLOCK)]


def test_held_open_alarm_once_at_the_configured_time() -> None:
    watch, clock = make(alarm=30)
    watch.start(False)
    watch.unlocked(3)
    watch.contact(True)
    assert watch.next_deadline() == clock.now + 30
    clock.now += 29.9
    assert watch.poll() == []
    clock.now += 0.2
    assert watch.poll() == [Report(DoorEvent.HELD_OPEN, pytest.approx(30.1))]
    assert watch.next_deadline() is None  # raised once, not every poll
    clock.now += 100
    assert watch.poll() == []
    assert watch.contact(False) == [Report(DoorEvent.CLOSED, pytest.approx(130.1), alarmed=True)]


def test_a_door_open_at_start_is_timed_from_start() -> None:
    watch, clock = make(alarm=10)
    watch.start(True)
    assert watch.contact(True) == []  # the same level again is not a new opening
    clock.now += 10
    assert watch.poll() == [Report(DoorEvent.HELD_OPEN, 10.0)]


def test_reopening_rearms_the_alarm() -> None:
    watch, clock = make(alarm=10)
    watch.start(False)
    watch.contact(True)
    clock.now += 11
    assert watch.poll()[0].event is DoorEvent.HELD_OPEN
    watch.contact(False)
    clock.now += 1
    watch.contact(True)
    assert watch.next_deadline() == clock.now + 10


def test_exit_button_opens_on_the_press_only() -> None:
    watch, _ = make()
    assert watch.exit_button(True) == [Report(DoorEvent.EXIT_PRESSED)]
    assert watch.exit_button(True) == []  # held, or an edge repeated after debounce
    assert watch.exit_button(False) == []
    assert watch.exit_button(True) == [Report(DoorEvent.EXIT_PRESSED)]


@given(
    st.lists(
        st.tuples(st.sampled_from(["open", "close", "poll", "unlock"]), st.floats(0, 50)),
        max_size=60,
    )
)
def test_alarm_only_for_doors_open_past_the_limit(steps: list[tuple[str, float]]) -> None:
    watch, clock = make(alarm=20)
    watch.start(False)
    opened_at: float | None = None
    alarms_this_opening = 0
    for action, dt in steps:
        clock.now += dt
        if action == "open":
            reports = watch.contact(True)
            if opened_at is None:
                opened_at, alarms_this_opening = clock.now, 0
                assert len(reports) == 1
            else:
                assert reports == []
        elif action == "close":
            reports = watch.contact(False)
            if opened_at is not None:
                assert reports == [
                    Report(DoorEvent.CLOSED, clock.now - opened_at, alarms_this_opening == 1)
                ]
            opened_at = None
        elif action == "unlock":
            watch.unlocked(3)
        else:
            for report in watch.poll():
                assert report.event is DoorEvent.HELD_OPEN
                assert opened_at is not None
                assert clock.now - opened_at >= 20
                alarms_this_opening += 1
            assert alarms_this_opening <= 1


class Recorder:
    """Feedback lines that record (time, role, on) as the pattern drives them."""

    def __init__(self, roles: set[Role], fail: bool = False) -> None:
        self.roles = roles
        self.fail = fail
        self.t = 0.0
        self.log: list[tuple[float, Role, bool]] = []
        self.level = dict.fromkeys(roles, False)

    def has(self, role: Role) -> bool:
        return role in self.roles

    def set(self, role: Role, active: bool) -> None:
        if self.fail and active:
            raise DoorError("line gone")
        self.level[role] = active
        self.log.append((self.t, role, active))

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


async def test_granted_lights_green_beeps_once_and_ends_dark() -> None:
    lines = Recorder({Role.GREEN, Role.RED, Role.BUZZER})
    await play(lines, PATTERNS[Cue.GRANTED], lines.sleep)
    green_on = [t for t, r, on in lines.log if r is Role.GREEN and on]
    assert green_on and green_on[0] == 0.0
    assert not any(on for t, r, on in lines.log if r is Role.RED)
    beeps = [t for t, r, on in lines.log if r is Role.BUZZER and on]
    assert len(beeps) == 1
    assert lines.level == dict.fromkeys(lines.roles, False)
    assert lines.t == pytest.approx(1.5)


async def test_refused_is_red_with_three_beeps() -> None:
    lines = Recorder({Role.GREEN, Role.RED, Role.BUZZER})
    await play(lines, PATTERNS[Cue.REFUSED], lines.sleep)
    transitions = [t for t, r, on in lines.log if r is Role.BUZZER and on]
    # three separate beeps: the buzzer goes off between them
    rises = sum(
        1
        for (_, _, was), (_, _, now) in zip(
            [(0, Role.BUZZER, False)] + [e for e in lines.log if e[1] is Role.BUZZER],
            [e for e in lines.log if e[1] is Role.BUZZER],
            strict=False,
        )
        if now and not was
    )
    assert transitions and rises == 3
    assert not any(on for t, r, on in lines.log if r is Role.GREEN)


async def test_a_buzzer_only_door_still_hears_the_difference() -> None:
    lines = Recorder({Role.BUZZER})
    await play(lines, PATTERNS[Cue.OFFLINE], lines.sleep)
    assert all(r is Role.BUZZER for _, r, _ in lines.log)
    assert any(on for _, _, on in lines.log)


async def test_cancelled_pattern_leaves_everything_off() -> None:
    lines = Recorder({Role.GREEN, Role.RED, Role.BUZZER})
    started = asyncio.Event()

    async def sleep(_seconds: float) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(play(lines, PATTERNS[Cue.HELD_OPEN], sleep))
    await started.wait()
    assert lines.level[Role.RED]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lines.level == dict.fromkeys(lines.roles, False)


async def test_a_failing_line_raises_door_error_after_switching_off() -> None:
    lines = Recorder({Role.GREEN}, fail=True)
    with pytest.raises(DoorError):
        await play(lines, PATTERNS[Cue.GRANTED], lines.sleep)
    assert lines.level[Role.GREEN] is False
