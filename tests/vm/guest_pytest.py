"""Runs pytest inside the test VM on the shared project and reads back its results.

The guest runs the project's own test files from the read-only share
(``/mnt/project``), with its own Python environment (/opt/vmtest: the project's
dependencies, pytest, gpiod, evdev), as root, with ``CI=true`` so that a real part the
guest should have (gpio-sim, uinput) fails the run instead of skipping, and
``CHECKIN_VM_GUEST=1`` so that tests/vm/guest/ is collected.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from tests.vm.machine import GUEST_PROJECT, GUEST_PYTHON, Vm

GUEST_ENV = {
    "CI": "true",
    "CHECKIN_VM_GUEST": "1",
    "PYTHONDONTWRITEBYTECODE": "1",  # the share is read-only
    "HOME": "/root",
}


@dataclass
class GuestRun:
    output: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def guest_pytest(vm: Vm, *args: str, timeout: float = 300.0) -> GuestRun:
    """``pytest args...`` in the guest; every test's outcome by its id."""
    report = "/tmp/guest-junit.xml"
    result = vm.run(
        [
            GUEST_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
            f"--junitxml={report}", *args,
        ],
        cwd=GUEST_PROJECT,
        env=GUEST_ENV,
        timeout=timeout,
    )  # fmt: skip
    output = f"{result.stdout}\n{result.stderr}"
    if result.rc is None:
        raise AssertionError(f"guest pytest timed out after {timeout:.0f} s:\n{output[-6000:]}")
    xml = vm.run(["cat", report])
    if xml.rc != 0:
        raise AssertionError(f"guest pytest wrote no report (rc {result.rc}):\n{output[-6000:]}")
    run = GuestRun(output)
    for case in ET.fromstring(xml.stdout).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            run.failed.append(name)
        elif case.find("skipped") is not None:
            run.skipped.append(name)
        else:
            run.passed.append(name)
    return run
