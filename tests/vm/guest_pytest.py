"""Runs pytest inside the test VM on the shared project and reads back its results.

The guest runs the project's own test files from the read-only share
(``/mnt/project``), with its own Python environment (/opt/vmtest: the project's
dependencies, pytest, gpiod, evdev), as root, with ``CI=true`` so that a real part the
guest should have (gpio-sim, uinput) fails the run instead of skipping, and
``CHECKIN_VM_GUEST=1`` so that tests/vm/guest/ is collected.

A run is a transient systemd unit in the guest: it goes on in the background (on the
guest's other CPU) while the host drives other tests, and ``wait`` collects it.
"""

from __future__ import annotations

import shlex
import time
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


class GuestPytest:
    """``pytest args...`` started in the guest; ``wait()`` gives every test's outcome."""

    def __init__(self, vm: Vm, name: str, *args: str) -> None:
        self.vm = vm
        self.unit = f"guest-pytest-{name}"
        self.log = f"/tmp/{self.unit}.log"
        self.report = f"/tmp/{self.unit}.xml"
        self.started = time.monotonic()
        pytest = shlex.join(
            [GUEST_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
             f"--junitxml={self.report}", *args]
        )  # fmt: skip
        vm.run(
            [
                "systemd-run", f"--unit={self.unit}", f"--working-directory={GUEST_PROJECT}",
                *(f"--setenv={k}={v}" for k, v in GUEST_ENV.items()),
                "sh", "-c", f"exec {pytest} >{self.log} 2>&1",
            ]
        ).check()  # fmt: skip
        self._run: GuestRun | None = None

    def wait(self, timeout: float = 600.0) -> GuestRun:
        if self._run is not None:
            return self._run
        deadline = self.started + timeout
        while self.vm.run(["systemctl", "is-active", "--quiet", self.unit]).rc == 0:
            if time.monotonic() > deadline:
                self.vm.run(["systemctl", "stop", self.unit])
                log = self.vm.run(["cat", self.log]).stdout
                raise AssertionError(f"guest pytest ran over {timeout:.0f} s:\n{log[-6000:]}")
            time.sleep(1.0)
        output = self.vm.run(["cat", self.log]).stdout
        xml = self.vm.run(["cat", self.report])
        if xml.rc != 0:
            raise AssertionError(f"guest pytest wrote no report:\n{output[-6000:]}")
        run = GuestRun(output)
        for case in ET.fromstring(xml.stdout).iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            if case.find("failure") is not None or case.find("error") is not None:
                run.failed.append(name)
            elif case.find("skipped") is not None:
                run.skipped.append(name)
            else:
                run.passed.append(name)
        self._run = run
        return run
