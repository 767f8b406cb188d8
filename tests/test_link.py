"""The link supervisor on a fake clock: its timers fire when the test says, nothing sleeps.

Each test scripts the attempts (fail with a kind, or come up for so many seconds and
then go) and reads back the delays the supervisor asked for, its state, its counters and
its log lines.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import replace

import pytest
from structlog.testing import capture_logs

from gateway.errors import ReaderError
from gateway.readers.link import (
    LOST,
    PERMISSION,
    LinkFault,
    LinkPolicy,
    LinkState,
    LinkSupervisor,
)

POLICY = LinkPolicy(first_delay=0.5, cap=8.0, stable_after=10.0, permission_attempts=3)


class FakeTime:
    """A monotonic clock that only moves when a wait "passes" or the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.delays: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay
        await asyncio.sleep(0)


Step = str | tuple[str, float]  # a fault kind, or ("up", seconds up before it is lost)


class Script:
    """Attempts that play ``steps`` in order, then stop the supervisor."""

    def __init__(self, time: FakeTime, *steps: Step) -> None:
        self.time = time
        self.steps = list(steps)
        self.link: LinkSupervisor | None = None
        self.attempts = 0

    async def __call__(self) -> None:
        assert self.link is not None
        self.attempts += 1
        if not self.steps:
            self.link.stop()
            await asyncio.Event().wait()  # cancelled by the stop
        step = self.steps.pop(0)
        if isinstance(step, tuple):
            self.link.up()
            self.time.now += step[1]
            raise LinkFault(LOST, "device lost")
        raise LinkFault(step, f"{step} happened", fatal=step == "fatal")


def supervised(
    *steps: Step, policy: LinkPolicy = POLICY, rng: Callable[[], float] = random.random
) -> tuple[LinkSupervisor, Script, FakeTime]:
    time = FakeTime()
    script = Script(time, *steps)
    link = LinkSupervisor(policy, events="test_link", clock=time.clock, sleep=time.sleep, rng=rng)
    script.link = link
    return link, script, time


async def test_delays_double_up_to_the_cap() -> None:
    link, script, time = supervised(*["no-device"] * 8)
    await link.run(script)
    assert time.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert link.state is LinkState.STOPPED


async def test_backoff_starts_over_only_after_a_stable_link() -> None:
    link, script, time = supervised(
        "no-device",
        "no-device",
        "no-device",
        ("up", 10.0),  # up for stable_after: the next outage starts at the first delay
        "no-device",
        ("up", 9.9),  # a flap: the backoff goes on
        ("up", 0.0),
    )
    await link.run(script)
    assert time.delays == [0.5, 1.0, 2.0, 0.5, 1.0, 2.0, 4.0]
    stats = link.stats
    assert (stats.opens, stats.reconnects, stats.failures) == (3, 2, 7)
    assert stats.last_error == "device lost"


async def test_permission_gives_up_after_its_attempts_in_a_row() -> None:
    link, script, time = supervised(
        PERMISSION, PERMISSION, "no-device", PERMISSION, ("up", 1.0), PERMISSION, PERMISSION,
        PERMISSION, "never reached",
    )  # fmt: skip
    with capture_logs() as logs, pytest.raises(LinkFault) as caught:
        await link.run(script)
    # Another kind of fault, or an open, breaks the series; the third in a row is final.
    assert caught.value.kind == PERMISSION
    assert script.attempts == 8
    assert len(time.delays) == 7
    assert link.state is LinkState.FAILED
    assert link.stats.last_error == "permission happened"
    failed = [e for e in logs if e["event"] == "test_link_failed"]
    assert [(e["log_level"], e["problem"]) for e in failed] == [("error", PERMISSION)]


async def test_one_permission_attempt_gives_up_at_the_first() -> None:
    link, script, time = supervised(PERMISSION, policy=replace(POLICY, permission_attempts=1))
    assert link.is_final(LinkFault(PERMISSION, "denied"))
    assert not link.is_final(LinkFault("no-device", "gone"))
    with pytest.raises(LinkFault):
        await link.run(script)
    assert time.delays == []


async def test_a_fatal_fault_ends_at_once() -> None:
    link, script, time = supervised("no-device", "fatal")
    with pytest.raises(LinkFault, match="fatal happened"):
        await link.run(script)
    assert time.delays == [0.5]
    assert link.state is LinkState.FAILED


async def test_another_reader_error_is_final_and_a_bug_propagates() -> None:
    async def unusable() -> None:
        raise ReaderError("cannot open the table")

    link = LinkSupervisor(POLICY, events="test_link")
    with pytest.raises(ReaderError, match="table"):
        await link.run(unusable)
    assert link.state is LinkState.FAILED

    async def bug() -> None:
        raise RuntimeError("a bug")

    link = LinkSupervisor(POLICY, events="test_link")
    with pytest.raises(RuntimeError):
        await link.run(bug)
    assert link.state is LinkState.STOPPED  # the caller decides about bugs (app restarts)


async def test_jitter_only_shortens_each_delay_within_its_fraction() -> None:
    policy = replace(POLICY, cap=4.0, jitter=0.25)
    rng = random.Random(7)
    link, script, time = supervised(*["no-device"] * 200, policy=policy, rng=rng.random)
    await link.run(script)
    plain = [min(0.5 * 2**i, 4.0) for i in range(200)]
    assert all(p * 0.75 <= d <= p for d, p in zip(time.delays, plain, strict=True))
    assert len({round(d, 6) for d in time.delays[5:]}) > 100  # spread, not lockstep


async def test_warn_on_a_new_kind_debug_on_repeats_and_say_once_when_back() -> None:
    link, script, _time = supervised(
        "no-device", "no-device", "busy", "no-device",  # warn, debug, warn, debug
        ("up", 1.0),  # back (info): the warnings are answered; lost: new kind, warn
        ("up", 1.0),  # back (debug: nothing was warned since); lost again: debug
        ("up", 10.0),  # stable: the outage is over; this loss warns again
        ("up", 0.0),
    )  # fmt: skip
    with capture_logs() as logs:
        await link.run(script)
    lines = [
        (e["event"].removeprefix("test_link_"), e["log_level"], e.get("problem"))
        for e in logs
        if e["event"].startswith("test_link_")
    ]
    assert lines == [
        ("unavailable", "warning", "no-device"),
        ("unavailable", "debug", "no-device"),
        ("unavailable", "warning", "busy"),
        ("unavailable", "debug", "no-device"),
        ("ready", "info", None),
        ("lost", "warning", LOST),
        ("back", "info", None),
        ("lost", "debug", LOST),
        ("back", "debug", None),
        ("lost", "warning", LOST),
        ("back", "info", None),
        ("lost", "debug", LOST),
    ]


async def test_stop_during_the_wait_returns_and_leaves_no_task() -> None:
    waiting = asyncio.Event()

    async def forever(_delay: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    async def absent() -> None:
        raise LinkFault("no-device", "gone")

    before = asyncio.all_tasks()
    link = LinkSupervisor(POLICY, events="test_link", sleep=forever)
    task = asyncio.create_task(link.run(absent))
    await asyncio.wait_for(waiting.wait(), 5)
    assert link.state is LinkState.RECONNECTING
    link.stop()
    link.stop()  # idempotent
    await asyncio.wait_for(task, 5)
    assert link.state is LinkState.STOPPED
    assert asyncio.all_tasks() == before
    await asyncio.wait_for(link.run(absent), 5)  # stopped for good: returns at once
    link.stop()


@pytest.mark.parametrize("how", ["stop", "cancel"])
async def test_stop_and_cancel_during_an_attempt_let_it_clean_up(how: str) -> None:
    cleaned: list[str] = []
    up = asyncio.Event()
    link = LinkSupervisor(POLICY, events="test_link")

    async def serve() -> None:
        link.up()
        up.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits (closing a port)
            cleaned.append("closed")

    before = asyncio.all_tasks()
    task = asyncio.create_task(link.run(serve))
    await asyncio.wait_for(up.wait(), 5)
    assert link.state is LinkState.READY
    if how == "stop":
        link.stop()
        await asyncio.wait_for(task, 5)
    else:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert cleaned == ["closed"]
    assert link.state is LinkState.STOPPED
    assert asyncio.all_tasks() == before


async def test_an_attempt_that_returns_ends_supervision() -> None:
    async def closed_on_purpose() -> None:
        link.up()

    link = LinkSupervisor(POLICY, events="test_link")
    await asyncio.wait_for(link.run(closed_on_purpose), 5)
    assert (link.state, link.stats.opens) == (LinkState.STOPPED, 1)


async def test_one_run_at_a_time() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    link = LinkSupervisor(POLICY, events="test_link")
    task = asyncio.create_task(link.run(forever))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already supervised"):
        await link.run(forever)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_policy_backoff_serves_a_task_that_is_no_device() -> None:
    backoff = LinkPolicy(first_delay=1.0, cap=300.0).backoff()
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first_delay": 0}, "first_delay"),
        ({"first_delay": 5, "cap": 1}, "first_delay"),
        ({"stable_after": -1}, "stable_after"),
        ({"permission_attempts": 0}, "permission_attempts"),
        ({"jitter": 1.5}, "jitter"),
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LinkPolicy(**kwargs)  # type: ignore[arg-type]


async def test_a_task_that_is_no_device_restarted_under_a_policy() -> None:
    """How the app can restart a crashed reader: its run is the attempt, up while it
    runs; a crash becomes a LinkFault; a ReaderError is final."""
    time = FakeTime()
    runs: list[str] = []
    outcomes = [RuntimeError("bug"), RuntimeError("bug"), 61.0, RuntimeError("bug"), None]

    async def reader_run() -> None:
        outcome = outcomes.pop(0)
        runs.append(type(outcome).__name__)
        if isinstance(outcome, float):
            time.now += outcome  # ran a minute, then crashed
            raise RuntimeError("late bug")
        if isinstance(outcome, Exception):
            raise outcome
        raise ReaderError("no permission")

    policy = LinkPolicy(first_delay=1.0, cap=300.0, stable_after=60.0)
    link = LinkSupervisor(policy, events="reader", clock=time.clock, sleep=time.sleep)

    async def attempt() -> None:
        link.up()  # a running task is "up": a long run resets the backoff
        try:
            await reader_run()
        except RuntimeError as exc:
            raise LinkFault("crashed", repr(exc)) from exc

    with pytest.raises(ReaderError, match="no permission"):
        await link.run(attempt)
    assert time.delays == [1.0, 2.0, 1.0, 2.0]
    assert link.state is LinkState.FAILED
