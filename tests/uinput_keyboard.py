"""A virtual USB keyboard-wedge reader made with the kernel's uinput, for tests that run
where ``/dev/uinput`` exists (the test VM in tests/vm/; this machine's kernel has none).

    with VirtualKeyboard() as wedge:
        wedge.event_path              # "/dev/input/eventN", once the kernel made it
        wedge.type_line("0012345678") # key presses and releases, then Enter
        wedge.unplug()                # the device disappears, as a pulled USB reader

The device reports itself as a USB keyboard (``BUS_USB``, the vendor and product given),
so a reader that picks devices by their ids or names sees what a real wedge shows.
Written with python-evdev's ``UInput`` (https://python-evdev.readthedocs.io).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from types import TracebackType

import evdev
from evdev import ecodes

UINPUT = Path("/dev/uinput")

# What a card reader types: digits, hex letters, Enter (and Shift for upper case).
_KEYS = {str(d): getattr(ecodes, f"KEY_{d}") for d in range(10)}
_KEYS.update({c: getattr(ecodes, f"KEY_{c.upper()}") for c in "abcdefghijklmnopqrstuvwxyz"})
_KEYS["\n"] = ecodes.KEY_ENTER


def kernel_uinput() -> str | None:
    """None when uinput is usable (loading its module if we may), else why not."""
    if not UINPUT.exists():
        subprocess.run(["modprobe", "uinput"], capture_output=True, check=False)
        subprocess.run(["modprobe", "evdev"], capture_output=True, check=False)
    if not UINPUT.exists():
        return "kernel without uinput (CONFIG_INPUT_UINPUT)"
    return None


class VirtualKeyboard:
    """A keyboard on the input bus until ``unplug``/``close``; raises ``OSError`` when
    ``/dev/uinput`` cannot be opened (call ``kernel_uinput`` first)."""

    def __init__(
        self,
        name: str = "checkin-test RFID keyboard wedge",
        *,
        vendor: int = 0xFFFF,
        product: int = 0x0035,
        key_delay: float = 0.0,
    ) -> None:
        self.name = name
        self.key_delay = key_delay
        keys = sorted({*_KEYS.values(), ecodes.KEY_LEFTSHIFT})
        self._device: evdev.UInput | None = evdev.UInput(
            {ecodes.EV_KEY: keys},
            name=name,
            vendor=vendor,
            product=product,
            bustype=ecodes.BUS_USB,
        )
        self.event_path = self._wait_for_node()

    def _wait_for_node(self, timeout: float = 5.0) -> str:
        """The device's /dev/input/eventN (made by devtmpfs; udev then sets its group)."""
        assert self._device is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in evdev.list_devices():
                try:
                    with contextlib.closing(evdev.InputDevice(path)) as dev:
                        if dev.name == self.name:
                            return path
                except OSError:
                    continue
            time.sleep(0.02)
        raise TimeoutError(f"no /dev/input/event* node for {self.name!r}")

    def press(self, key: int) -> None:
        device = self._live()
        device.write(ecodes.EV_KEY, key, 1)
        device.syn()
        device.write(ecodes.EV_KEY, key, 0)
        device.syn()
        if self.key_delay:
            time.sleep(self.key_delay)

    def type_text(self, text: str) -> None:
        """Types ``text`` (digits, letters, newline) as key presses, upper case with Shift."""
        device = self._live()
        for char in text:
            key = _KEYS.get(char.lower())
            if key is None:
                raise ValueError(f"no key for {char!r}")
            shifted = char.isupper()
            if shifted:
                device.write(ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 1)
            self.press(key)
            if shifted:
                device.write(ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 0)
                device.syn()

    def type_line(self, text: str) -> None:
        """A card read as a wedge types it: the characters, then Enter."""
        self.type_text(text + "\n")

    def unplug(self) -> None:
        """Destroys the device: readers holding it get ENODEV, the node disappears."""
        if self._device is not None:
            self._device.close()
            self._device = None

    close = unplug

    def _live(self) -> evdev.UInput:
        if self._device is None:
            raise RuntimeError("the virtual keyboard was unplugged")
        return self._device

    def __enter__(self) -> VirtualKeyboard:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unplug()
