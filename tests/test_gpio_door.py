"""The GPIO door on a simulated chip: the kernel's gpio-sim when this kernel offers it
(driven through the real libgpiod), else the Python model of it in gpio_bench.py.
The test ids say which bench ran; a skipped ``gpio-sim`` says why it could not."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.config.model import GpioDoorConfig
from gateway.doors.gpio import GpioDoor
from gateway.errors import DoorError
from gateway.model import Signal
from tests.gpio_bench import Bench, open_bench

LOCK, CONTACT, EXIT, GREEN, RED, BUZZER = range(6)
WAIT = 5.0  # seconds a test waits for something that should take a fraction of that


@pytest.fixture(autouse=True)
def default_logging() -> Iterator[None]:
    """capture_logs sees info events only with structlog's defaults: a test elsewhere
    that ran the CLI may have left a warning-level configuration behind."""
    before = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**before)


@pytest.fixture(params=["gpio-sim", "fake"])
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    sim = open_bench(request.param, "GPIO door")
    try:
        yield sim
    finally:
        sim.close()


def config(bench: Bench, **changes: object) -> GpioDoorConfig:
    cfg = GpioDoorConfig(
        name="front",
        chip=bench.chip_path,
        line="LOCK",
        pulse=0.2,
        contact_line=CONTACT,
        held_open_alarm=0.3,
        exit_button_line="EXIT",
        green_led_line=GREEN,
        red_led_line=RED,
        buzzer_line=BUZZER,
        debounce=0.0,
    )
    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.005)
    assert condition(), what


def door_on(bench: Bench, **changes: object) -> GpioDoor:
    return GpioDoor(config(bench, **changes), open_chip=bench.open_chip)


async def test_open_pulses_the_strike_then_relocks(bench: Bench) -> None:
    door = door_on(bench)
    try:
        assert not bench.output_high(LOCK)
        await door.open()
        assert bench.output_high(LOCK)
        assert door.unlocked
        await until(lambda: not bench.output_high(LOCK), "relocked after the pulse")
        assert not door.unlocked
    finally:
        await door.aclose()


async def test_active_low_relay_idles_high_and_pulses_low(bench: Bench) -> None:
    # Such boards pull their input high themselves: a released line (the kernel hands
    # it back as an input, as a Pi's pin controller does) floats to "off".
    bench.set_input(LOCK, high=True)
    door = door_on(bench, active_low=True)
    try:
        assert bench.output_high(LOCK)  # relay board off: input held high
        await door.open()
        assert not bench.output_high(LOCK)
        await until(lambda: bench.output_high(LOCK), "relocked")
    finally:
        await door.aclose()
    assert bench.output_high(LOCK), "closing leaves the strike locked"


async def test_a_second_open_extends_the_pulse(bench: Bench) -> None:
    door = door_on(bench, pulse=0.3)
    loop = asyncio.get_running_loop()
    try:
        await door.open()
        first = loop.time()
        await asyncio.sleep(0.2)
        await door.open()
        await until(lambda: not bench.output_high(LOCK), "relocked")
        assert loop.time() - first >= 0.45  # 0.2 + a full 0.3 from the second open
    finally:
        await door.aclose()


async def test_exit_button_opens_the_door(bench: Bench) -> None:
    door = door_on(bench)
    try:
        bench.set_input(EXIT, high=True)  # released (pull-up; button to ground)
        with capture_logs() as logs:
            bench.set_input(EXIT, high=False)  # pressed
            await until(lambda: bench.output_high(LOCK), "unlocked by the exit button")
            bench.set_input(EXIT, high=True)
            await until(lambda: not bench.output_high(LOCK), "relocked")
        assert [e["event"] for e in logs].count("exit_button_pressed") == 1
    finally:
        await door.aclose()


async def test_held_open_alarm_is_logged_and_shown(bench: Bench) -> None:
    door = door_on(bench)
    try:
        bench.set_input(CONTACT, high=False)  # shut
        await until(lambda: door.is_open is False, "door seen shut")
        with capture_logs() as logs:
            await door.open()
            bench.set_input(CONTACT, high=True)  # opened during the unlock
            await until(lambda: door.is_open is True, "door seen open")
            await until(
                lambda: any(e["event"] == "door_held_open" for e in logs), "held-open alarm"
            )
            await until(lambda: bench.output_high(RED), "the alarm shows red")
            bench.set_input(CONTACT, high=False)
            await until(lambda: door.is_open is False, "door seen shut again")
        events = [e["event"] for e in logs]
        assert events.index("door_opened") < events.index("door_held_open")
        shut = next(e for e in logs if e["event"] == "door_shut")
        assert shut["after_alarm"] is True
        assert shut["log_level"] == "warning"
        assert shut["door"] == "front"
    finally:
        await door.aclose()


async def test_a_door_opened_without_unlock_is_noted(bench: Bench) -> None:
    door = door_on(bench, held_open_alarm=60.0)
    try:
        bench.set_input(CONTACT, high=False)
        await until(lambda: door.is_open is False, "door seen shut")
        with capture_logs() as logs:
            bench.set_input(CONTACT, high=True)
            await until(lambda: door.is_open is True, "door seen open")
        assert [e["event"] for e in logs] == ["door_opened_without_unlock"]
    finally:
        await door.aclose()


async def test_a_door_open_at_start_is_timed_from_start(bench: Bench) -> None:
    # The default pull-up floats the contact high: "open" with the default polarity.
    with capture_logs() as logs:
        door = door_on(bench)
        try:
            assert door.is_open is True
            await until(lambda: any(e["event"] == "door_held_open" for e in logs), "alarm")
        finally:
            await door.aclose()


@pytest.mark.parametrize(("bias", "open_at_start"), [("pull-up", True), ("pull-down", False)])
async def test_input_bias_sets_where_an_undriven_contact_rests(
    bench: Bench, bias: str, open_at_start: bool
) -> None:
    # Nothing drives the contact: the requested bias decides its level (the kernel's
    # pull on gpio-sim), and the exit button must not fire from being set up.
    with capture_logs() as logs:
        door = door_on(bench, input_bias=bias, held_open_alarm=60.0)
        try:
            assert door.is_open is open_at_start
            assert bench.output_high(CONTACT) is open_at_start
            await asyncio.sleep(0.1)
            assert not bench.output_high(LOCK)
        finally:
            await door.aclose()
    assert "exit_button_pressed" not in [e["event"] for e in logs]


@pytest.mark.parametrize(
    ("signal", "lit", "dark"),
    [
        (Signal.GRANTED, GREEN, RED),
        (Signal.REFUSED, RED, GREEN),
        (Signal.OFFLINE, GREEN, RED),
    ],
)
async def test_feedback_lines_for_each_outcome(
    bench: Bench, signal: Signal, lit: int, dark: int
) -> None:
    door = door_on(bench, contact_line=None, exit_button_line=None)
    try:
        await door.signal(signal)
        await until(lambda: bench.output_high(lit), f"{signal} lights its LED")
        assert bench.output_high(BUZZER), "and beeps"
        assert not bench.output_high(dark)
        assert not bench.output_high(LOCK), "feedback never touches the strike"
    finally:
        await door.aclose()
    assert not any(bench.output_high(x) for x in (GREEN, RED, BUZZER)), "closed: all dark"


async def test_a_newer_signal_replaces_the_older(bench: Bench) -> None:
    door = door_on(bench)
    try:
        await door.signal(Signal.GRANTED)
        await until(lambda: bench.output_high(GREEN), "green")
        await door.signal(Signal.REFUSED)
        await until(lambda: bench.output_high(RED) and not bench.output_high(GREEN), "red only")
    finally:
        await door.aclose()


async def test_close_relocks_releases_and_is_idempotent(bench: Bench) -> None:
    door = door_on(bench, pulse=30.0)
    await door.open()
    await door.signal(Signal.GRANTED)
    await door.aclose()
    await door.aclose()
    assert not bench.output_high(LOCK)
    with pytest.raises(DoorError):
        await door.open()
    again = door_on(bench)  # the lines were released: no EBUSY
    await again.aclose()
    assert [t for t in asyncio.all_tasks() if "door-" in t.get_name()] == []


async def test_a_line_in_use_is_a_clear_error(bench: Bench) -> None:
    door = door_on(bench)
    try:
        with pytest.raises(DoorError, match="in use by another program"):
            door_on(bench, name="back")
    finally:
        await door.aclose()


async def test_unknown_line_name_is_a_clear_error(bench: Bench) -> None:
    with pytest.raises(DoorError, match=r"line = 'GPIO99': no such line"):
        door_on(bench, line="GPIO99")


async def test_a_name_and_an_offset_for_the_same_line(bench: Bench) -> None:
    with pytest.raises(DoorError, match="same line"):
        door_on(bench, line="LOCK", green_led_line=LOCK)


async def test_missing_chip_is_a_clear_error(bench: Bench) -> None:
    with pytest.raises(DoorError, match="cannot open the GPIO chip"):
        door_on(bench, chip="/dev/gpiochip-missing-42")
