"""Two benches behind one interface for the GPIO door tests.

``KernelGpioSim`` builds a simulated chip with the kernel's gpio-sim (configfs) and is
driven through the real libgpiod; ``FakeChip`` models the same character-device
behaviour in Python for kernels without gpio-sim: active-low applied by the "kernel",
bias pulls an undriven input, edges queued on a pollable file descriptor, EBUSY for a
line already requested, the physical level of every line visible to the test.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import gpiod
from gpiod.line import Bias, Direction, Edge, Value

from gateway.doors.gpio_lines import OpenChip
from tests.gpiosim import GpioSimChip, kernel_gpio_sim

__all__ = ["Bench", "FakeChip", "KernelGpioSim", "kernel_gpio_sim"]

NUM_LINES = 16
LINE_NAMES = {0: "LOCK", 1: "CONTACT", 2: "EXIT", 3: "GREEN", 4: "RED", 5: "BUZZER"}


class Bench(Protocol):
    kind: str
    chip_path: str
    open_chip: OpenChip | None

    def set_input(self, offset: int, high: bool) -> None:
        """Drive an input's pin physically high or low (a switch, a button)."""

    def output_high(self, offset: int) -> bool:
        """The physical level on an output pin (what the relay or LED sees)."""

    def close(self) -> None: ...


# --- the kernel's gpio-sim ---------------------------------------------------------


class KernelGpioSim:
    """A gpio-sim chip (tests/gpiosim.py) with the door's named lines."""

    kind = "gpio-sim"
    open_chip: OpenChip | None = None  # the real gpiod.Chip

    def __init__(self) -> None:
        self._chip = GpioSimChip(LINE_NAMES, num_lines=NUM_LINES)
        self.chip_path = self._chip.chip_path

    def set_input(self, offset: int, high: bool) -> None:
        self._chip.pull(offset, high)

    def output_high(self, offset: int) -> bool:
        return self._chip.value(offset)

    def close(self) -> None:
        self._chip.close()


def open_bench(kind: str, what: str) -> Bench:
    """The bench a parametrised fixture asked for: ``"gpio-sim"`` (skipped with the
    reason when this kernel has none; CI runs on the same kind of VM, tests/vm/ has it)
    or ``"fake"``. ``what`` names the tests in the skip message."""
    import pytest

    if kind == "gpio-sim":
        why_not = kernel_gpio_sim()
        if why_not is not None:
            if os.environ.get("CHECKIN_VM_GUEST") == "1":
                pytest.fail(f"the test VM must have gpio-sim: {why_not}")
            # Not require(): this kernel has none; tests/vm/ runs these variants inside
            # the test VM, whose kernel has.
            pytest.skip(
                f"{why_not}: the {what} tests ran here on the fake chip; gpio-sim runs in tests/vm/"
            )
        return KernelGpioSim()
    return FakeChip()


# --- the fake chip -------------------------------------------------------------------


class FakeChip:
    """One simulated chip: its pins' physical levels and which lines are requested."""

    kind = "fake"

    def __init__(self, path: str = "/dev/gpiochip-fake") -> None:
        self.chip_path = path
        self.physical = [False] * NUM_LINES
        self.requests: dict[int, FakeRequest] = {}
        self.open_chip: OpenChip | None = self._open
        # The kernel stamps edges with CLOCK_MONOTONIC; tests may stamp their own.
        self.clock_ns: Callable[[], int] = time.monotonic_ns

    def _open(self, path: str) -> FakeChipHandle:
        if path != self.chip_path:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return FakeChipHandle(self)

    def set_input(self, offset: int, high: bool) -> None:
        self._level(offset, high)

    def output_high(self, offset: int) -> bool:
        return self.physical[offset]

    def close(self) -> None:
        for request in list(self.requests.values()):
            request.release()

    def _level(self, offset: int, high: bool) -> None:
        before, self.physical[offset] = self.physical[offset], high
        request = self.requests.get(offset)
        if request is not None and before != high:
            request.edge(offset)


class FakeChipHandle:
    def __init__(self, chip: FakeChip) -> None:
        self._chip = chip

    def line_offset_from_id(self, id: str | int) -> int:
        if isinstance(id, str):
            names = {name: offset for offset, name in LINE_NAMES.items()}
            if id in names:
                return names[id]
            if not id.isdigit():
                raise OSError(errno.ENOENT, "No such file or directory")
            id = int(id)
        if not 0 <= id < NUM_LINES:
            raise ValueError("line offset of out range")
        return id

    def request_lines(
        self,
        config: dict[Any, Any],
        consumer: str | None = None,
        event_buffer_size: int | None = None,
        output_values: dict[int | str, Any] | None = None,
    ) -> FakeRequest:
        del consumer
        offsets = {self.line_offset_from_id(line): settings for line, settings in config.items()}
        if any(offset in self._chip.requests for offset in offsets):
            raise OSError(errno.EBUSY, "Device or resource busy")
        # The kernel's default queue is 16 events per line (gpiolib-cdev.c).
        buffer = event_buffer_size or 16 * len(offsets)
        return FakeRequest(self._chip, offsets, output_values or {}, buffer)

    def close(self) -> None:
        pass


class FakeRequest:
    def __init__(
        self,
        chip: FakeChip,
        settings: dict[int, gpiod.LineSettings],
        initial: dict[Any, Any],
        buffer: int = 64,
    ) -> None:
        self._chip = chip
        self._buffer = buffer
        self._settings = settings
        self._events: list[gpiod.EdgeEvent] = []
        self._read_fd, self._write_fd = os.pipe()
        self._seq = 0
        self.released = False
        for offset, s in settings.items():
            if s.direction == Direction.OUTPUT:
                value = initial.get(offset, s.output_value)
                chip._level(offset, (value == Value.ACTIVE) != s.active_low)
            elif s.bias in (Bias.PULL_UP, Bias.PULL_DOWN):
                # gpio-sim lets a requested bias set the simulated pull, as a real pin
                # floats to its pull when nothing drives it.
                chip._level(offset, s.bias == Bias.PULL_UP)
        for offset in settings:  # registered after: setting up makes no edges
            chip.requests[offset] = self

    @property
    def fd(self) -> int:
        self._check()
        return self._read_fd

    def _check(self) -> None:
        if self.released:
            raise gpiod.RequestReleasedError

    def get_value(self, line: int | str) -> Value:
        self._check()
        assert isinstance(line, int)
        s = self._settings[line]
        return Value.ACTIVE if self._chip.physical[line] != s.active_low else Value.INACTIVE

    def set_value(self, line: int | str, value: Value) -> None:
        self._check()
        assert isinstance(line, int)
        s = self._settings[line]
        if s.direction != Direction.OUTPUT:
            raise OSError(errno.EPERM, "Operation not permitted")
        self._chip._level(line, (value == Value.ACTIVE) != s.active_low)

    def edge(self, offset: int) -> None:
        s = self._settings[offset]
        if s.direction != Direction.INPUT or s.edge_detection == Edge.NONE:
            return
        active = self._chip.physical[offset] != s.active_low  # edges are logical
        if s.edge_detection == Edge.RISING and not active:
            return
        if s.edge_detection == Edge.FALLING and active:
            return
        kind = gpiod.EdgeEvent.Type.RISING_EDGE if active else gpiod.EdgeEvent.Type.FALLING_EDGE
        self._seq += 1
        if len(self._events) >= self._buffer:
            # A full queue drops its oldest event, as gpiolib-cdev does: the reader sees
            # a gap in the sequence numbers.
            del self._events[0]
            os.read(self._read_fd, 1)
        event = gpiod.EdgeEvent(kind.value, self._chip.clock_ns(), offset, self._seq, self._seq)
        self._events.append(event)
        os.write(self._write_fd, b"e")

    def read_edge_events(self, max_events: int | None = None) -> list[gpiod.EdgeEvent]:
        self._check()
        count = len(self._events) if max_events is None else min(max_events, len(self._events))
        if count:
            os.read(self._read_fd, count)
        events, self._events = self._events[:count], self._events[count:]
        return events

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        for offset in self._settings:
            self._chip.requests.pop(offset, None)
        os.close(self._read_fd)
        os.close(self._write_fd)
