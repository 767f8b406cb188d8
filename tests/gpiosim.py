"""Simulated GPIO chips made with the kernel's gpio-sim (configfs), for tests that run
where the kernel has it: the test VM (tests/vm/), or a host with CONFIG_GPIO_SIM.

    with GpioSimChip({0: "D0", 1: "D1"}, num_lines=8) as chip:
        chip.chip_path               # "/dev/gpiochipN": never hard-code N
        chip.pull("D0", high=False)  # a switch pulls the pin low: an edge for a reader
        chip.value("LOCK")           # the level a consumer drives on an output line

``pull`` sets what the simulated pin floats to when nothing drives it, which is what a
switch, a button or a Wiegand reader's open-collector output does to a real pin; an
input requested with edge detection sees an edge with the kernel's timestamp. ``value``
reads the physical level of a line (an output's driven level, with active-low applied).
Source: Documentation/admin-guide/gpio/gpio-sim.rst in the kernel tree.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

CONFIGFS = Path("/sys/kernel/config")
GPIO_SIM = CONFIGFS / "gpio-sim"


def kernel_gpio_sim() -> str | None:
    """None when gpio-sim is usable (loading and mounting it if we may), else why not."""
    if not GPIO_SIM.is_dir():
        if shutil.which("modprobe"):
            subprocess.run(["modprobe", "gpio-sim"], capture_output=True, check=False)
        if not CONFIGFS.is_dir() or not any(CONFIGFS.iterdir()):
            with contextlib.suppress(OSError):
                if "configfs" in Path("/proc/filesystems").read_text():
                    subprocess.run(
                        ["mount", "-t", "configfs", "none", str(CONFIGFS)],
                        capture_output=True,
                        check=False,
                    )
    if GPIO_SIM.is_dir():
        return None
    if not CONFIGFS.is_dir():
        return "kernel without configfs (CONFIG_CONFIGFS_FS)"
    return "kernel without gpio-sim (CONFIG_GPIO_SIM)"


class GpioSimChip:
    """One gpio-sim device with one bank of ``num_lines`` lines, some of them named.

    Made live at construction, removed by ``close`` (or the ``with`` block). Raises
    ``OSError`` from configfs when gpio-sim is missing: call ``kernel_gpio_sim`` first.
    """

    def __init__(self, names: Mapping[int, str], *, num_lines: int = 16) -> None:
        if any(not 0 <= offset < num_lines for offset in names):
            raise ValueError(f"line offsets must be below num_lines={num_lines}")
        self.names = dict(names)
        self.num_lines = num_lines
        self._pull_fds: dict[int, int] = {}

        self._dev = GPIO_SIM / f"checkin-{uuid.uuid4().hex[:8]}"
        self._bank = self._dev / "bank0"
        self._dev.mkdir()
        try:
            self._bank.mkdir()
            (self._bank / "num_lines").write_text(str(num_lines))
            for offset, name in self.names.items():
                (self._bank / f"line{offset}").mkdir()
                (self._bank / f"line{offset}" / "name").write_text(name)
            (self._dev / "live").write_text("1")
            self.chip_name = (self._bank / "chip_name").read_text().strip()
            platform = (self._dev / "dev_name").read_text().strip()
        except BaseException:
            self.close()
            raise
        self.chip_path = f"/dev/{self.chip_name}"
        self.sysfs = Path("/sys/devices/platform") / platform / self.chip_name

    def offset(self, line: int | str) -> int:
        """A line's offset from its offset or its name."""
        if isinstance(line, int):
            return line
        for offset, name in self.names.items():
            if name == line:
                return offset
        raise KeyError(f"no line named {line!r} on {self.chip_name}")

    def pull(self, line: int | str, high: bool) -> None:
        """Pull the pin high or low: an undriven input follows (and sees an edge).

        The kernel stamps an edge in gpio-sim's simulated interrupt and queues it from
        gpiolib's interrupt thread for the line; a second pull of the line before that
        thread ran (~1 ms, up to ~10 ms under emulation) merges the two edges: the
        first is lost (a skipped sequence number) and with both-edge detection the
        survivor's type is read from the line's level then. Wait for the edge before
        pulling the same line again. The attribute stays open: every write is one
        ``store`` (sysfs ignores the file offset), which keeps pulses short."""
        offset = self.offset(line)
        fd = self._pull_fds.get(offset)
        if fd is None:
            attr = self.sysfs / f"sim_gpio{offset}" / "pull"
            fd = self._pull_fds[offset] = os.open(attr, os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"pull-up" if high else b"pull-down")

    def value(self, line: int | str) -> bool:
        """The pin's physical level: what a relay or LED on an output line sees."""
        attr = self.sysfs / f"sim_gpio{self.offset(line)}" / "value"
        return attr.read_text().strip() == "1"

    def close(self) -> None:
        """Takes the chip down (its requests then fail with ENODEV) and removes it."""
        for fd in self._pull_fds.values():
            os.close(fd)
        self._pull_fds.clear()
        with contextlib.suppress(OSError):
            (self._dev / "live").write_text("0")
        for offset in self.names:
            with contextlib.suppress(OSError):
                (self._bank / f"line{offset}").rmdir()
        for folder in (self._bank, self._dev):
            with contextlib.suppress(OSError):
                folder.rmdir()

    def __enter__(self) -> GpioSimChip:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
