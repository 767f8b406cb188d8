"""A door's GPIO lines, requested together from one chip through libgpiod v2.

The door speaks in roles (lock, contact, exit button, LEDs, buzzer) and logical values
(active = unlocked, door open, pressed, lit); this module maps roles to offsets and
leaves polarity, bias and debounce to the kernel, where libgpiod puts them.

``open_chip`` is the seam for tests: ``gpiod.Chip`` by path, name or label by default
(a kernel gpio-sim chip goes through it too), or anything with the same three methods.
"""

from __future__ import annotations

import contextlib
import enum
import errno
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import Any, Protocol

from gateway.errors import DoorError
from gateway.gpiochip import open_chip_by_name


class Role(enum.StrEnum):
    """A line's job; the value is its config key."""

    LOCK = "line"
    CONTACT = "contact_line"
    EXIT_BUTTON = "exit_button_line"
    GREEN = "green_led_line"
    RED = "red_led_line"
    BUZZER = "buzzer_line"


INPUTS = frozenset({Role.CONTACT, Role.EXIT_BUTTON})
FEEDBACK = (Role.GREEN, Role.RED, Role.BUZZER)
CONSUMER = "checkin-gateway"  # what `gpioinfo` shows as the lines' user

# Config spelling -> gpiod.line.Bias member.
_BIAS = {"pull-up": "PULL_UP", "pull-down": "PULL_DOWN", "disabled": "DISABLED", "as-is": "AS_IS"}


@dataclass(frozen=True, slots=True)
class LineSpec:
    line: int | str
    active_low: bool


@dataclass(frozen=True, slots=True)
class Edge:
    role: Role
    active: bool  # the logical level after the edge (active-low already applied)


class RequestLike(Protocol):
    @property
    def fd(self) -> int: ...
    def get_value(self, line: int | str) -> Any: ...
    def set_value(self, line: int | str, value: Any) -> None: ...
    def read_edge_events(self, max_events: int | None = None) -> list[Any]: ...
    def release(self) -> None: ...


class ChipLike(Protocol):
    def line_offset_from_id(self, id: str | int) -> int: ...
    def request_lines(
        self,
        config: dict[Any, Any],
        consumer: str | None = None,
        event_buffer_size: int | None = None,
        output_values: dict[int | str, Any] | None = None,
    ) -> RequestLike: ...
    def close(self) -> None: ...


OpenChip = Callable[[str], ChipLike]


def load_gpiod() -> ModuleType:
    try:
        import gpiod
    except ImportError as exc:
        raise DoorError(
            "the gpio door needs libgpiod's Python bindings: pip install 'checkin-gateway[gpio]'"
        ) from exc
    return gpiod


class GpioLines:
    """Requests the lines at construction; ``close`` drives outputs inactive and frees
    them. Raises ``DoorError`` saying what to fix when the chip or a line cannot be had."""

    def __init__(
        self,
        door: str,
        chip_path: str,
        specs: Mapping[Role, LineSpec],
        *,
        bias: str = "pull-up",
        debounce: float = 0.0,
        open_chip: OpenChip | None = None,
    ) -> None:
        gpiod = load_gpiod()
        self._gpiod = gpiod
        self._what = f"door {door}: {chip_path}"
        # A path, a gpiochipN name or the chip's label (gateway/gpiochip.py).
        opener: OpenChip = open_chip if open_chip is not None else open_chip_by_name
        try:
            chip = opener(chip_path)
        except OSError as exc:
            raise DoorError(f"{self._what}: cannot open the GPIO chip: {_why(exc)}") from exc
        try:
            self._offsets = self._resolve(chip, specs)
            config = {
                self._offsets[role]: self._settings(role, spec, bias, debounce)
                for role, spec in specs.items()
            }
            inactive = gpiod.line.Value.INACTIVE
            outputs: dict[int | str, Any] = {
                self._offsets[r]: inactive for r in specs if r not in INPUTS
            }
            try:
                self._request = chip.request_lines(config, consumer=CONSUMER, output_values=outputs)
            except OSError as exc:
                raise DoorError(f"{self._what}: cannot request the lines: {_why(exc)}") from exc
        finally:
            chip.close()  # the request keeps its own file descriptor
        self._roles = {offset: role for role, offset in self._offsets.items()}
        self._released = False

    def _resolve(self, chip: ChipLike, specs: Mapping[Role, LineSpec]) -> dict[Role, int]:
        offsets: dict[Role, int] = {}
        for role, spec in specs.items():
            try:
                offset = chip.line_offset_from_id(spec.line)
            except (OSError, ValueError) as exc:
                raise DoorError(
                    f"{self._what}: {role.value} = {spec.line!r}: no such line on this chip"
                    " (gpioinfo lists them)"
                ) from exc
            clash = next((r for r, o in offsets.items() if o == offset), None)
            if clash is not None:
                raise DoorError(
                    f"{self._what}: {role.value} and {clash.value} are the same line ({offset})"
                )
            offsets[role] = offset
        return offsets

    def _settings(self, role: Role, spec: LineSpec, bias: str, debounce: float) -> Any:
        line = self._gpiod.line
        if role in INPUTS:
            return self._gpiod.LineSettings(
                direction=line.Direction.INPUT,
                edge_detection=line.Edge.BOTH,
                bias=getattr(line.Bias, _BIAS[bias]),
                active_low=spec.active_low,
                debounce_period=timedelta(seconds=debounce),
            )
        return self._gpiod.LineSettings(
            direction=line.Direction.OUTPUT,
            active_low=spec.active_low,
            output_value=line.Value.INACTIVE,
        )

    @property
    def fd(self) -> int:
        """Readable when edge events wait (for ``loop.add_reader``)."""
        return int(self._request.fd)

    def has(self, role: Role) -> bool:
        return role in self._offsets

    @property
    def inputs(self) -> frozenset[Role]:
        return INPUTS.intersection(self._offsets)

    def set(self, role: Role, active: bool) -> None:
        value = self._gpiod.line.Value.ACTIVE if active else self._gpiod.line.Value.INACTIVE
        try:
            self._request.set_value(self._offsets[role], value)
        except OSError as exc:
            raise DoorError(f"{self._what}: cannot set {role.value}: {_why(exc)}") from exc

    def get(self, role: Role) -> bool:
        try:
            value = self._request.get_value(self._offsets[role])
        except OSError as exc:
            raise DoorError(f"{self._what}: cannot read {role.value}: {_why(exc)}") from exc
        return bool(value == self._gpiod.line.Value.ACTIVE)

    def read_edges(self) -> list[Edge]:
        """The edges waiting now (call when ``fd`` is readable: then it does not block)."""
        try:
            events = self._request.read_edge_events()
        except OSError as exc:
            raise DoorError(f"{self._what}: cannot read edge events: {_why(exc)}") from exc
        rising = self._gpiod.EdgeEvent.Type.RISING_EDGE
        return [
            Edge(self._roles[e.line_offset], e.event_type == rising)
            for e in events
            if e.line_offset in self._roles
        ]

    def close(self) -> None:
        """Outputs inactive (strike locked, LEDs off), then release. Idempotent."""
        if self._released:
            return
        self._released = True
        inactive = self._gpiod.line.Value.INACTIVE
        for role, offset in self._offsets.items():
            if role not in INPUTS:
                # A chip gone away cannot be driven; releasing is all that is left.
                with contextlib.suppress(OSError):
                    self._request.set_value(offset, inactive)
        self._request.release()


def _why(exc: OSError) -> str:
    if exc.errno == errno.EBUSY:
        return "a line is in use by another program (gpioinfo shows which)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (the service user needs the gpio group)"
    if exc.errno == errno.ENOENT:
        return "no such GPIO chip (ls /dev/gpiochip*)"
    return exc.strerror or str(exc)
