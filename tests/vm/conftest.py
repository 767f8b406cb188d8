"""The test VM as a pytest session fixture: booted once for all tests under tests/vm/.

``vm`` builds or reuses the cached image (tests/vm/image.py), boots it (KVM only when
the CPU backs it, else TCG) and powers it off at the end of the session. It skips,
with the reason, only where qemu cannot run at all or the image cannot be built here
(not root); under CI=true those fail instead.

tests/vm/guest/ holds tests that run *inside* the VM (``guest_pytest``): on the host
they are not collected.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.vm.guest_pytest import GuestPytest
from tests.vm.image import ImageError, cached, ensure, why_cannot_build
from tests.vm.machine import Vm, why_no_qemu

IN_GUEST = os.environ.get("CHECKIN_VM_GUEST") == "1"
PROJECT = Path(__file__).resolve().parent.parent.parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    del config
    here = Path(__file__).resolve().parent
    if not IN_GUEST and collection_path.resolve() == here / "guest":
        return True
    return None


@pytest.fixture(scope="session")
def vm() -> Iterator[Vm]:
    why = why_no_qemu()
    if why is None and cached() is None:
        why = why_cannot_build()
    require(why is None, f"the test VM cannot run here: {why}")
    try:
        image = ensure()
    except ImageError as exc:
        pytest.fail(f"building the VM image failed: {exc}")
    started = time.monotonic()
    machine = Vm.boot(image, PROJECT)
    how = "cached" if image.built_seconds is None else f"built in {image.built_seconds:.0f} s"
    print(
        f"\ntest VM up ({machine.accel}): agent after {machine.boot_seconds:.1f} s, "
        f"systemd ready after {machine.ready_seconds:.1f} s (image {how})"
    )
    try:
        yield machine
    finally:
        machine.close()
        print(f"test VM session: {time.monotonic() - started:.1f} s")


@pytest.fixture(scope="session")
def guest_device_tests(vm: Vm) -> GuestPytest:
    """The GPIO door's tests (and its enrolment patterns'), the Wiegand and HID readers'
    and the gpio-sim/uinput helper checks, started in the guest in the background: the
    installed-service tests request this first, so that both share the guest's two CPUs; test_kernel_devices.py waits
    for the outcome."""
    return GuestPytest(
        vm,
        "devices",
        "tests/test_gpio_door.py",
        "tests/test_wiegand_reader.py",
        "tests/test_hid_reader.py",
        "tests/test_gpiochip.py",
        "tests/test_enrol_feedback.py",
        "tests/vm/guest",
    )
