"""Boots the test VM with qemu and talks to its agent (tests/vm/agent.py).

The VM: Debian's kernel and the cached image (tests/vm/image.py), booted with
``-snapshot`` (tests never change the image), no network device, the project shared
read-only over 9p at ``/mnt/project``, the agent on a virtio-serial port whose host end
is a Unix socket, the serial console written to a file for diagnosis.

KVM is used only when ``/dev/kvm`` opens *and* the CPU shows vmx or svm: this kind of
machine has a ``/dev/kvm`` without them, where a KVM guest runs about 1000x slower than
qemu's own software emulation (TCG).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.vm.image import Image

QEMU = "qemu-system-x86_64"
GUEST_PROJECT = "/mnt/project"
GUEST_PYTHON = "/opt/vmtest/bin/python"
BOOT_TIMEOUT = float(os.environ.get("CHECKIN_VM_BOOT_TIMEOUT", "240"))
MEMORY_MB = int(os.environ.get("CHECKIN_VM_MEMORY", "1536"))
CPUS = int(os.environ.get("CHECKIN_VM_CPUS", "2"))


class VmError(RuntimeError):
    """The VM did not boot, or its agent did not answer; the message ends with the
    serial console's tail."""


def why_no_qemu() -> str | None:
    """None when qemu can run a VM here, else why not (the only reason to skip)."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (Debian: qemu-system-x86; make system-deps)"
    if os.uname().machine != "x86_64" and not Path("/dev/kvm").exists():
        return f"{QEMU} without KVM on {os.uname().machine}: too slow to emulate"
    return None


def accelerator(cpuinfo: str | None = None, kvm: str = "/dev/kvm") -> str:
    """``kvm`` when the kernel's KVM is usable and backed by the CPU, else ``tcg``."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "tcg"
    flags = {
        word
        for line in cpuinfo.splitlines()
        if line.startswith("flags")
        for word in line.partition(":")[2].split()
    }
    if not flags & {"vmx", "svm"}:
        return "tcg"
    try:
        fd = os.open(kvm, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return "tcg"
    os.close(fd)
    return "kvm"


@dataclass(frozen=True, slots=True)
class Result:
    argv: list[str]
    rc: int | None  # None: timed out
    stdout: str
    stderr: str

    def check(self) -> Result:
        if self.rc != 0:
            raise AssertionError(
                f"in the VM: {' '.join(self.argv)} -> {self.rc}\n"
                f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
            )
        return self


class Vm:
    """A running VM. ``Vm.boot(image, project)``; ``close()`` powers it off."""

    def __init__(self, image: Image, project: Path) -> None:
        self.image = image
        self.project = project
        self.accel = accelerator()
        self.workdir = Path(tempfile.mkdtemp(prefix="checkin-vm-"))
        self.console = self.workdir / "console.log"
        self._socket_path = self.workdir / "agent.sock"
        # The host end of the guest's /dev/ttyUSB0 (qemu's FTDI usb-serial): qemu plugs
        # the adapter in when this socket is connected (``plug_serial``), and what is
        # written to it arrives as the USB serial reader's output.
        self.serial_socket = self.workdir / "ttyUSB0.sock"
        self.serial: socket.socket | None = None
        self._ids = itertools.count(1)
        self._buffer = b""
        self._sock: socket.socket | None = None
        self.boot_seconds = 0.0  # qemu start to the agent's first answer
        self.ready_seconds = 0.0  # ... to systemd's boot finished
        self._proc = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=(self.workdir / "qemu.log").open("w"),
            stderr=subprocess.STDOUT,
        )

    def _command(self) -> list[str]:
        accel = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" else ["-accel", "tcg"]
        append = (
            "root=/dev/vda rw console=ttyS0 quiet fsck.mode=skip systemd.show_status=false "
            "mitigations=off random.trust_cpu=on"
        )
        return [
            QEMU,
            *accel,
            "-machine", "pc",
            "-smp", str(CPUS),
            "-m", str(MEMORY_MB),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-nic", "none",  # no network device: the agent's port is the only way in
            "-kernel", str(self.image.kernel),
            "-initrd", str(self.image.initrd),
            "-append", append,
            "-drive", f"file={self.image.rootfs},format=raw,if=virtio,snapshot=on",
            "-virtfs",
            f"local,path={self.project},mount_tag=project,security_model=none,readonly=on",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={self._socket_path},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=agent",
            "-device", "virtio-rng-pci",
            "-device", "qemu-xhci,id=xhci",
            "-chardev", f"socket,id=usbserial,path={self.serial_socket},server=on,wait=off",
            "-device", "usb-serial,bus=xhci.0,chardev=usbserial",
            "-serial", f"file:{self.console}",
        ]  # fmt: skip

    @classmethod
    def boot(cls, image: Image, project: Path) -> Vm:
        vm = cls(image, project)
        try:
            vm._wait_for_agent()
            vm._wait_for_systemd()
        except BaseException:
            vm.close()
            raise
        return vm

    # --- boot ------------------------------------------------------------------------

    def _wait_for_agent(self) -> None:
        started = time.monotonic()
        deadline = started + BOOT_TIMEOUT
        while self._sock is None:
            self._alive_or_raise()
            if time.monotonic() > deadline:
                raise self._error("qemu did not open the agent socket")
            with contextlib.suppress(OSError):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self._socket_path))
                self._sock = sock
            time.sleep(0.05)
        # qemu holds what we send until the guest's driver is up, but the guest drops
        # what arrives before the agent opens its port: ask again every two seconds,
        # never blocking on a full socket, until one answer comes.
        pending: set[int] = set()
        while True:
            self._alive_or_raise()
            if time.monotonic() > deadline:
                raise self._error(f"the agent did not answer within {BOOT_TIMEOUT:.0f} s")
            with contextlib.suppress(BlockingIOError, TimeoutError):
                pending.add(self._send({"op": "ping"}, block=False))
            answer = self._receive(pending, time.monotonic() + 2.0, quiet=True)
            if answer is not None:
                break
        self.boot_seconds = time.monotonic() - started
        self.guest_uptime = float(answer["boot_seconds"])

    def _wait_for_systemd(self) -> None:
        started = time.monotonic()
        result = self.run(["systemctl", "is-system-running", "--wait"], timeout=BOOT_TIMEOUT)
        if result.stdout.strip() not in ("running", "degraded"):
            raise self._error(f"systemd did not finish booting: {result.stdout.strip()}")
        self.ready_seconds = self.boot_seconds + time.monotonic() - started

    def plug_serial(self) -> socket.socket:
        """Plugs the USB serial adapter in (the guest then gets /dev/ttyUSB0) and
        returns the host's end of it; idempotent."""
        if self.serial is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(self.serial_socket))
            self.serial = sock
        return self.serial

    # --- the agent -------------------------------------------------------------------

    def _send(self, request: dict[str, Any], *, block: bool = True) -> int:
        assert self._sock is not None
        request_id = next(self._ids)
        data = json.dumps({**request, "id": request_id}).encode() + b"\n"
        if block:
            self._sock.settimeout(None)
            self._sock.sendall(data)
        else:
            self._sock.setblocking(False)
            sent = self._sock.send(data)  # one small datagram's worth: all or nothing
            if sent != len(data):
                raise VmError("the agent's socket took part of a request")
        return request_id

    def _receive(
        self, wanted: int | set[int], deadline: float, *, quiet: bool = False
    ) -> dict[str, Any] | None:
        assert self._sock is not None
        ids = {wanted} if isinstance(wanted, int) else wanted
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                with contextlib.suppress(ValueError):
                    answer = json.loads(line)
                    if answer.get("id") in ids:
                        return dict(answer)
                # an answer to an earlier, abandoned request: skip it
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if quiet:
                    return None
                raise self._error("the agent did not answer in time")
            self._sock.settimeout(min(remaining, 1.0))
            try:
                chunk = self._sock.recv(1 << 20)
            except TimeoutError:
                self._alive_or_raise()
                continue
            if not chunk:
                raise self._error("the agent's socket closed")
            self._buffer += chunk

    def request(self, op: str, timeout: float = 60.0, **fields: Any) -> dict[str, Any]:
        """One request; raises VmError on no answer or an agent error."""
        request_id = self._send({"op": op, "timeout": timeout, **fields})
        answer = self._receive(request_id, time.monotonic() + timeout + 10.0)
        assert answer is not None
        if not answer.get("ok"):
            raise VmError(f"agent: {op}: {answer.get('error')}")
        return answer

    def run(
        self,
        argv: list[str],
        *,
        timeout: float = 60.0,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> Result:
        """Runs ``argv`` in the guest as root; ``rc`` is None when it timed out."""
        answer = self.request(
            "run", timeout=timeout, argv=argv, cwd=cwd, env=env or {}, input=input
        )
        return Result(argv, answer["rc"], answer["stdout"], answer["stderr"])

    def sh(self, script: str, *, timeout: float = 60.0) -> Result:
        """A shell script in the guest, checked: raises with its output on failure."""
        return self.run(["sh", "-euc", script], timeout=timeout).check()

    def write(self, path: str, text: str, mode: int | None = None) -> None:
        """Writes a file (or a sysfs attribute) in the guest; ``mode`` sets its mode."""
        self.request("write", path=path, text=text, mode=mode)

    # --- shutdown --------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> None:
        """Powers the guest off (the image is a snapshot: nothing to save), then makes
        sure qemu is gone and removes the work directory."""
        if self._proc.poll() is None and self._sock is not None:
            with contextlib.suppress(OSError, VmError):
                self._send({"op": "poweroff"})
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for sock in (self._sock, self.serial):
            if sock is not None:
                sock.close()
        self._sock = self.serial = None
        if not os.environ.get("CHECKIN_VM_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def exit_code(self) -> int | None:
        return self._proc.poll()

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return "(no console output)"
        return "\n".join(text.splitlines()[-lines:])

    def _alive_or_raise(self) -> None:
        if self._proc.poll() is not None:
            qemu = (self.workdir / "qemu.log").read_text(errors="replace")[-2000:]
            raise self._error(f"qemu exited ({self._proc.returncode}): {qemu}")

    def _error(self, what: str) -> VmError:
        return VmError(f"{what} ({self.accel})\n--- serial console\n{self.console_tail()}")
