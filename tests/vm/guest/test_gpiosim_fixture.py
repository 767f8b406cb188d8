"""Inside the test VM: the gpio-sim helper (tests/gpiosim.py) that the GPIO door and the
Wiegand reader's tests stand on, checked against the real libgpiod v2."""

from __future__ import annotations

import errno
import os
import select
from collections.abc import Iterator
from pathlib import Path

import gpiod
import pytest
from gpiod.line import Bias, Direction, Edge, Value

from tests.gpiosim import GpioSimChip, kernel_gpio_sim


@pytest.fixture
def chip() -> Iterator[GpioSimChip]:
    why_not = kernel_gpio_sim()
    if why_not is not None:
        pytest.fail(f"the test VM must have gpio-sim: {why_not}")
    with GpioSimChip({0: "D0", 1: "D1", 5: "LOCK"}, num_lines=8) as sim:
        yield sim


def test_named_lines_on_a_chip_found_by_name(chip: GpioSimChip) -> None:
    assert Path(chip.chip_path).is_char_device()
    with gpiod.Chip(chip.chip_path) as handle:
        assert handle.get_info().num_lines == 8
        assert handle.line_offset_from_id("D1") == 1
        assert handle.line_offset_from_id("LOCK") == 5


def test_pull_makes_timestamped_edges(chip: GpioSimChip) -> None:
    settings = gpiod.LineSettings(
        direction=Direction.INPUT, edge_detection=Edge.BOTH, bias=Bias.PULL_UP
    )
    with gpiod.request_lines(chip.chip_path, config={("D0", "D1"): settings}) as request:
        assert request.get_value("D0") == Value.ACTIVE  # the requested pull-up
        # The request's own bias moved the lines (gpio-sim starts pulled down): those
        # edges may arrive a moment later; read them away before the test's own.
        while select.select([request.fd], [], [], 0.2)[0]:
            request.read_edge_events()
        # One edge at a time: a pull before the kernel has queued the line's last edge
        # merges the two (GpioSimChip.pull says why).
        events: list[gpiod.EdgeEvent] = []
        for line, high in (("D0", False), ("D0", True), ("D1", False)):
            chip.pull(line, high=high)
            assert select.select([request.fd], [], [], 5)[0]
            events += request.read_edge_events()
        kinds = [(e.line_offset, e.event_type) for e in events]
        falling, rising = gpiod.EdgeEvent.Type.FALLING_EDGE, gpiod.EdgeEvent.Type.RISING_EDGE
        assert kinds == [(0, falling), (0, rising), (1, falling)]
        stamps = [e.timestamp_ns for e in events]
        assert stamps == sorted(stamps) and stamps[0] > 0


def test_value_shows_what_an_output_drives(chip: GpioSimChip) -> None:
    out = gpiod.LineSettings(direction=Direction.OUTPUT, output_value=Value.INACTIVE)
    with gpiod.request_lines(chip.chip_path, config={"LOCK": out}) as request:
        assert not chip.value("LOCK")
        request.set_value("LOCK", Value.ACTIVE)
        assert chip.value("LOCK")


def test_a_line_held_by_another_process_is_busy(chip: GpioSimChip) -> None:
    out = gpiod.LineSettings(direction=Direction.OUTPUT)
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the other program
        try:
            with gpiod.request_lines(chip.chip_path, consumer="other", config={"LOCK": out}):
                os.write(ready_w, b"1")
                os.read(done_r, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"1"
        with pytest.raises(OSError) as busy:
            gpiod.request_lines(chip.chip_path, config={"LOCK": out})
        assert busy.value.errno == errno.EBUSY
        with gpiod.Chip(chip.chip_path) as handle:
            assert handle.get_line_info("LOCK").consumer == "other"
    finally:
        os.write(done_w, b"x")
        os.waitpid(pid, 0)


def test_close_removes_the_chip() -> None:
    assert kernel_gpio_sim() is None
    sim = GpioSimChip({0: "X"}, num_lines=1)
    path = Path(sim.chip_path)
    assert path.exists()
    sim.close()
    assert not path.exists()
