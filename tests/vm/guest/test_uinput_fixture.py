"""Inside the test VM: the virtual keyboard wedge (tests/uinput_keyboard.py) that the HID
reader's tests stand on, read back through the kernel's evdev interface."""

from __future__ import annotations

import errno
import select
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import evdev
import pytest
from evdev import ecodes

from tests.uinput_keyboard import VirtualKeyboard, kernel_uinput


@pytest.fixture
def wedge() -> Iterator[VirtualKeyboard]:
    why_not = kernel_uinput()
    if why_not is not None:
        pytest.fail(f"the test VM must have uinput: {why_not}")
    with VirtualKeyboard() as keyboard:
        yield keyboard


def keys_down(device: evdev.InputDevice[str], count: int) -> list[int]:
    pressed: list[int] = []
    while len(pressed) < count and select.select([device.fd], [], [], 5)[0]:
        pressed += [e.code for e in device.read() if e.type == ecodes.EV_KEY and e.value == 1]
    return pressed


def test_typed_card_number_arrives_as_key_presses(wedge: VirtualKeyboard) -> None:
    with closing(evdev.InputDevice(wedge.event_path)) as device:
        assert device.info.bustype == ecodes.BUS_USB
        assert (device.info.vendor, device.info.product) == (0xFFFF, 0x0035)
        wedge.type_line("0A1B")
        assert keys_down(device, 7) == [
            ecodes.KEY_0,
            ecodes.KEY_LEFTSHIFT,
            ecodes.KEY_A,
            ecodes.KEY_1,
            ecodes.KEY_LEFTSHIFT,
            ecodes.KEY_B,
            ecodes.KEY_ENTER,
        ]


def test_an_exclusive_grab_is_exclusive(wedge: VirtualKeyboard) -> None:
    with (
        closing(evdev.InputDevice(wedge.event_path)) as first,
        closing(evdev.InputDevice(wedge.event_path)) as second,
    ):
        first.grab()
        with pytest.raises(OSError) as busy:
            second.grab()
        assert busy.value.errno == errno.EBUSY
        wedge.type_line("7")
        assert keys_down(first, 2) == [ecodes.KEY_7, ecodes.KEY_ENTER]
        assert not select.select([second.fd], [], [], 0.2)[0], "nothing reaches the other"
        first.ungrab()


def test_unplug_removes_the_device(wedge: VirtualKeyboard) -> None:
    with closing(evdev.InputDevice(wedge.event_path)) as device:
        wedge.unplug()
        with pytest.raises(OSError) as gone:
            while select.select([device.fd], [], [], 5)[0]:
                list(device.read())  # a generator: reading happens here
        assert gone.value.errno == errno.ENODEV
    assert not Path(wedge.event_path).exists()
