"""GPIO and input devices against the kernel's own simulators, inside the test VM.

The GPIO door's tests (tests/test_gpio_door.py) run in the guest on both benches: the
gpio-sim variants, which skip on a kernel without gpio-sim, through the real libgpiod v2
bindings on a gpio-sim chip; every fake-chip test must have its gpio-sim twin passing.
The Wiegand reader's tests (tests/test_wiegand_reader.py) run there the same way: D0/D1
pulses through gpio-sim's ``pull`` attributes, frames decoded from the kernel's
timestamped, numbered edge events. tests/vm/guest/ checks the helpers these stand on
(tests/gpiosim.py, tests/uinput_keyboard.py).
"""

from __future__ import annotations

import pytest

from tests.vm.guest_pytest import GuestPytest, GuestRun

# Boot (session fixture, charged to the first test) and guest work under emulation.
pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def guest_run(guest_device_tests: GuestPytest) -> GuestRun:
    return guest_device_tests.wait()


def test_gpio_door_runs_on_the_kernels_gpio_sim(guest_run: GuestRun) -> None:
    door = [t for t in guest_run.passed + guest_run.failed + guest_run.skipped if "gpio_door" in t]
    on_sim = sorted(t.replace("[gpio-sim", "[") for t in door if "[gpio-sim" in t)
    on_fake = sorted(t.replace("[fake", "[") for t in door if "[fake" in t)
    assert on_fake, guest_run.output
    assert on_sim == on_fake, "every GPIO door test has its gpio-sim variant"
    problems = [t for t in door if t in guest_run.failed + guest_run.skipped]
    assert not problems, f"{problems}\n{guest_run.output[-8000:]}"


def test_the_wiegand_reader_runs_on_the_kernels_gpio_sim(guest_run: GuestRun) -> None:
    """Issue 19 item 3: every Wiegand reader test on the Python chip model has its
    gpio-sim twin, and all pass in the guest: cards of each length, pauses near the
    25 ms end of frame, bad and swapped frames, keypad PINs, and a burst that overflows
    the kernel's 1,024-edge event queue."""
    tests = guest_run.passed + guest_run.failed + guest_run.skipped
    wiegand = [t for t in tests if "test_wiegand_reader" in t]
    on_sim = sorted(t.replace("[gpio-sim", "[") for t in wiegand if "[gpio-sim" in t)
    on_fake = sorted(t.replace("[fake", "[") for t in wiegand if "[fake" in t)
    assert on_fake, guest_run.output[-4000:]
    assert on_sim == on_fake, "every Wiegand reader test has its gpio-sim variant"
    assert any("overflows_the_kernels_event_queue" in t for t in on_sim)
    problems = [t for t in wiegand if t not in guest_run.passed]
    assert not problems, f"{problems}\n{guest_run.output[-8000:]}"


def test_every_guest_test_passes(guest_run: GuestRun) -> None:
    """tests/vm/guest/: the gpio-sim and uinput helpers' own checks, and whatever a
    reader's tests put there (Wiegand on gpio-sim, keyboard wedges on uinput)."""
    mine = [t for t in guest_run.passed + guest_run.failed + guest_run.skipped if ".guest." in t]
    assert any("gpiosim_fixture" in t for t in mine), guest_run.output
    assert any("uinput_fixture" in t for t in mine), guest_run.output
    problems = [t for t in mine if t not in guest_run.passed]
    assert not problems, f"{problems}\n{guest_run.output[-8000:]}"


def test_the_hid_reader_runs_on_a_real_uinput_keyboard(guest_run: GuestRun) -> None:
    """Issue 19 item 4: the keyboard-wedge reader on a uinput device, grabbed
    exclusively, unplugged and replugged: the variants that skip on this host must pass
    in the guest."""
    hid = [t for t in guest_run.passed + guest_run.failed + guest_run.skipped if "hid_reader" in t]
    assert any("uinput" in t for t in hid), guest_run.output[-4000:]
    problems = [t for t in hid if t not in guest_run.passed]
    assert not problems, f"{problems}\n{guest_run.output[-8000:]}"


def test_the_enrolment_patterns_run_on_the_kernels_gpio_sim(guest_run: GuestRun) -> None:
    """Issue 16: the door's LEDs and buzzer show enrolment mode (waiting blinks, capture,
    timeout): each pattern read back through gpio-sim's ``value`` attributes."""
    tests = guest_run.passed + guest_run.failed + guest_run.skipped
    mine = [t for t in tests if "test_enrol_feedback" in t]
    on_sim = [t for t in mine if "[gpio-sim" in t]
    assert len(on_sim) >= 3, guest_run.output[-4000:]
    problems = [t for t in mine if t not in guest_run.passed]
    assert not problems, f"{problems}\n{guest_run.output[-8000:]}"
