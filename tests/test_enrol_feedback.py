"""Enrolment mode on the door: ``EnrolFeedback`` driving the real GPIO door on the
simulated chip (the kernel's gpio-sim in the test VM, the fake chip here). Waiting
blinks both LEDs after one chirp, and keeps blinking after another outcome's cue;
a capture ends it with beep-beep-beeep on green, a timeout with a long buzz on red."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from gateway.admin.enrol import Enrolment
from gateway.admin.enrol_feedback import EnrolFeedback
from gateway.config.model import GpioDoorConfig
from gateway.doors import gpio as gpio_door
from gateway.doors.base import DoorSignal, EnrolSignal
from gateway.doors.gpio import GpioDoor
from gateway.model import Direction, Membership, Signal, Tap
from tests.gpio_bench import Bench, open_bench

LOCK, CONTACT, EXIT, GREEN, RED, BUZZER = range(6)

Sample = tuple[bool, bool, bool]  # green, red, buzzer


@pytest.fixture(params=["gpio-sim", "fake"])
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    sim = open_bench(request.param, "enrolment feedback")
    try:
        yield sim
    finally:
        sim.close()


def door_on(bench: Bench) -> GpioDoor:
    cfg = GpioDoorConfig(
        name="front",
        chip=bench.chip_path,
        line=LOCK,
        green_led_line=GREEN,
        red_led_line=RED,
        buzzer_line=BUZZER,
    )
    return GpioDoor(cfg, open_chip=bench.open_chip)


async def watch(bench: Bench, seconds: float, times: list[float] | None = None) -> list[Sample]:
    """The feedback lines every 10 ms for ``seconds`` (``times``: when each was taken)."""
    samples = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        samples.append(
            (bench.output_high(GREEN), bench.output_high(RED), bench.output_high(BUZZER))
        )
        if times is not None:
            times.append(loop.time())
        await asyncio.sleep(0.01)
    return samples


def blinking(samples: list[Sample]) -> bool:
    """Both LEDs on together, then both off, silent: the waiting pattern."""
    both = [i for i, (g, r, b) in enumerate(samples) if g and r and not b]
    return bool(both) and any(not g and not r for g, r, _b in samples[both[0] :])


def shown_by(door: GpioDoor) -> tuple[EnrolFeedback, list[asyncio.Future[None]]]:
    pending: list[asyncio.Future[None]] = []

    def show(_reader: str, signal: DoorSignal) -> None:
        pending.append(asyncio.ensure_future(door.signal(signal)))

    return EnrolFeedback(show), pending


async def test_waiting_blinks_until_a_card_is_captured(bench: Bench) -> None:
    door = door_on(bench)
    feedback, _ = shown_by(door)
    try:
        feedback.armed("front", 30.0)
        start = await watch(bench, 1.0)
        assert any(g and r and b for g, r, b in start[:5]), "one chirp as the mode starts"
        assert not any(b for _g, _r, b in start[15:]), "then silent"
        assert blinking(await watch(bench, 1.2)), "both LEDs blink while waiting"
        # A known card decided meanwhile shows its own cue; waiting resumes after it.
        await door.signal(Signal.GRANTED)
        granted = await watch(bench, 0.3)
        assert any(g and not r and b for g, r, b in granted), "granted: green and a beep"
        assert blinking(await watch(bench, 2.5)), "back to waiting"
        feedback.captured("front")
        await asyncio.sleep(0)  # the door's signal() runs
        await asyncio.sleep(0)  # and its new pattern starts
        captured = await watch(bench, 1.9)
        beeps = sum(1 for a, b in itertools.pairwise(captured) if b[2] and not a[2])
        assert beeps + (1 if captured[0][2] else 0) == 3, "beep-beep-beeep"
        assert all(g and not r for g, r, _b in captured[:60]), "on green"
        assert not any(any(s) for s in await watch(bench, 1.2)), "then dark: the mode ended"
    finally:
        feedback.close()
        await door.aclose()


async def test_no_card_in_time_ends_with_a_long_buzz_on_red(bench: Bench) -> None:
    door = door_on(bench)
    feedback, _ = shown_by(door)
    try:
        feedback.armed("front", 0.6)
        waiting = await watch(bench, 0.5)
        assert any(g and r for g, r, _b in waiting) and not any(r and not g for g, r, _ in waiting)
        times: list[float] = []
        ended = await watch(bench, 1.3, times)
        assert any(r and not g and b for g, r, b in ended), "red and the buzzer"
        assert not any(g for g, _r, _b in ended[-40:]), "no more blinking"
        buzzing = [t for t, (_g, _r, b) in zip(times, ended, strict=True) if b]
        assert buzzing[-1] - buzzing[0] >= 0.6, "one long buzz (0.8 s)"
        await asyncio.sleep(0.5)  # the rest of its red (1.5 s in all)
        assert not any(any(s) for s in await watch(bench, 1.2)), "then dark"
    finally:
        feedback.close()
        await door.aclose()


async def test_a_lost_end_still_stops_the_blinking(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpio_door, "MODE_LIMIT", 1.5)
    door = door_on(bench)
    try:
        await door.signal(EnrolSignal.WAITING)  # and nobody ever says "ended"
        assert blinking(await watch(bench, 1.5))
        await asyncio.sleep(1.0)  # the pattern running at the limit finishes
        assert not any(any(s) for s in await watch(bench, 1.2))
    finally:
        await door.aclose()


async def test_enrolment_tells_its_watch_every_change() -> None:
    """Every way into enrolment mode goes through ``arm`` (the page, ``enrol --reader``,
    an admin card), so each shows on the door; a refusal by Cobot ends it too."""
    seen: list[tuple[str, EnrolSignal]] = []
    feedback = EnrolFeedback(lambda reader, signal: seen.append((reader, signal)))
    known = {"KNOWN": Membership("ada", "Ada Lovelace")}

    async def add(token: str, member: Membership) -> None:
        known[token] = member

    enrolment = Enrolment(known.get, add, admin_cards=frozenset({"ADMIN"}), watch=feedback)

    def tap(token: str, reader: str = "front") -> Tap:
        from datetime import UTC, datetime

        return Tap(reader, token, Direction.IN, datetime.now(UTC), 0.0)

    enrolment.offer(tap("ADMIN", "side"))  # an admin card arms its own reader
    enrolment.arm("front")
    enrolment.offer(tap("KNOWN"))  # a known card: decided, the mode goes on
    enrolment.offer(tap("NEWCARD"))
    enrolment.disarm("side")
    enrolment.disarm("side")  # not armed any more: nothing to show
    enrolment.arm("back", 0.05)
    await asyncio.sleep(0.2)
    feedback.close()
    assert seen == [
        ("side", EnrolSignal.WAITING),
        ("front", EnrolSignal.WAITING),
        ("front", EnrolSignal.CAPTURED),
        ("side", EnrolSignal.ENDED),
        ("back", EnrolSignal.WAITING),
        ("back", EnrolSignal.ENDED),
    ]
