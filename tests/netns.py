"""A private LAN for tests: two network namespaces joined by a veth pair.

``client`` is where test devices live (udhcpc, dhclient, arping, scapy ``sendp``);
``listener`` is where the gateway's packet socket listens. Nothing touches the host's
own namespace: the veth pair is created inside the namespaces, and the namespaces (with
everything in them) are removed when the test ends, also when it fails.

The gateway under test runs in the test process, in the host namespace (so it reaches
the simulated Cobot server on loopback); only its packet socket is opened inside
``listener``, by a short-lived thread that ``setns``-es there first. A socket keeps the
namespace it was created in, and the thread's namespace change dies with the thread, so
the rest of the process never leaves the host namespace. (Python 3.11 has no
``os.setns``; libc's is called through ctypes.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
PREFIX = "cgwmac"
_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


def available() -> tuple[bool, str]:
    """Whether this process can make network namespaces (root, ``ip`` present)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    if shutil.which("ip") is None:
        return False, "iproute2 (ip) is not installed"
    return True, ""


def run_in_netns(name: str, fn: Callable[[], T]) -> T:
    """Call ``fn`` in a fresh thread that has joined network namespace ``name``."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            with Path(f"/run/netns/{name}").open() as ns:
                if _libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({name}): {os.strerror(err)}")
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def _remove_stale() -> None:
    """Namespaces left by an earlier test process that was killed before its cleanup."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        m = re.match(rf"({PREFIX}-(\d+)-\d+-[cl])\b", line)
        if m and not Path(f"/proc/{m.group(2)}").exists():
            subprocess.run(["ip", "netns", "del", m.group(1)], check=False, capture_output=True)


@dataclass
class Lan:
    client: str
    listener: str
    interface: str = "lan0"
    listener_ip: str = "10.77.0.1"
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, ns: str, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def spawn(self, ns: str, *cmd: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    def set_client_mac(self, mac: str) -> None:
        _ip("-n", self.client, "link", "set", self.interface, "address", mac)

    def in_listener(self, fn: Callable[[], T]) -> T:
        return run_in_netns(self.listener, fn)

    def in_client(self, fn: Callable[[], T]) -> T:
        return run_in_netns(self.client, fn)

    def add_link(self) -> None:
        _ip("-n", self.listener, "link", "add", self.interface, "type", "veth", "peer",
            "name", self.interface, "netns", self.client)  # fmt: skip
        for ns in (self.listener, self.client):
            _ip("-n", ns, "link", "set", self.interface, "up")
        _ip("-n", self.listener, "addr", "add", f"{self.listener_ip}/24", "dev", self.interface)

    def delete_link(self) -> None:
        _ip("-n", self.listener, "link", "del", self.interface)

    def close(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for ns in (self.client, self.listener):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@contextlib.contextmanager
def make_lan() -> Iterator[Lan]:
    _remove_stale()
    n = next(_counter)
    base = f"{PREFIX}-{os.getpid()}-{n}"
    lan = Lan(client=f"{base}-c", listener=f"{base}-l")
    try:
        _ip("netns", "add", lan.client)
        _ip("netns", "add", lan.listener)
        for ns in (lan.client, lan.listener):
            _ip("-n", ns, "link", "set", "lo", "up")
        lan.add_link()
        yield lan
    finally:
        lan.close()


CLIENT_IP = "10.77.0.2"
CLIENT_TOOLS = ("udhcpc", "dhclient", "arping", "busybox")


@contextlib.contextmanager
def required_lan() -> Iterator[Lan]:
    """``make_lan`` for a test that needs it: skipped locally, failed under CI, when this
    machine cannot make namespaces or lacks the client tools."""
    from tests.conftest import require

    ok, why = available()
    require(ok, why)
    for tool in CLIENT_TOOLS:
        require(shutil.which(tool) is not None, f"{tool} is not installed (make system-deps)")
    with make_lan() as lan:
        yield lan


async def client(lan: Lan, *cmd: str) -> subprocess.CompletedProcess[str]:
    """A command in the client namespace, off the event loop (the reader keeps reading)."""
    return await asyncio.to_thread(lan.run, lan.client, *cmd)


async def udhcpc(lan: Lan, hostname: str, tries: int = 1) -> None:
    """DHCPDISCOVERs from busybox's client (no server needed: it gives up after them)."""
    result = await client(
        lan, "udhcpc", "-i", lan.interface, "-n", "-q", "-f", "-t", str(tries), "-T", "1",
        "-A", "1", "-s", "/bin/true", "-x", f"hostname:{hostname}",
    )  # fmt: skip
    assert "broadcasting discover" in result.stderr + result.stdout, result.stderr


async def arping(lan: Lan) -> None:
    """One ARP request from the client to the listener, which answers."""
    result = await client(
        lan, "arping", "-c", "1", "-w", "1", "-S", CLIENT_IP, "-i", lan.interface, lan.listener_ip
    )
    assert result.returncode == 0, result.stdout + result.stderr
