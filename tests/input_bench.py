"""An input device for the HID reader's tests and benchmarks where the kernel has no
/dev/uinput: evdev's own ``InputEvent`` objects handed out by ``read()`` through a
pollable pipe, with EVIOCGRAB's exclusivity and an unplug that fails reads with ENODEV,
as the kernel's evdev does."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from evdev import InputEvent


class EventDevice:
    """An input device as the reader sees it: a pollable fd, ``read()`` that yields
    ``InputEvent`` objects or raises BlockingIOError, EVIOCGRAB, unplug (ENODEV)."""

    grabbed_by: dict[str, EventDevice] = {}  # noqa: RUF012 - the "kernel's" grab table

    def __init__(self, path: str) -> None:
        self.path = path
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._queue: list[InputEvent] = []
        self.unplugged = False
        self.closed = False

    @property
    def fd(self) -> int:
        return self._r

    def push(self, events: list[InputEvent]) -> None:
        self._queue += events
        os.write(self._w, b"x")

    def unplug(self) -> None:
        self.unplugged = True
        os.write(self._w, b"x")

    def read(self) -> Iterator[InputEvent]:
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        if not self._queue:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        events, self._queue = self._queue, []
        yield from events

    def grab(self) -> None:
        if self.grabbed_by.get(self.path) not in (None, self):
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.grabbed_by[self.path] = self

    def ungrab(self) -> None:
        self.grabbed_by.pop(self.path, None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.ungrab()
            os.close(self._r)
            os.close(self._w)
