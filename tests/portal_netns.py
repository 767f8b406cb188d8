"""A small network made of namespaces for the portal's firewall tests and benchmark.

    client1 (c0) --\\
                    lan0 (a bridge) [gateway: nftables + portal] wan0 -- inet0 [internet]
    client2 (c0) --/

Every address lives only inside these namespaces (10.77.N.0/24 and fd77:N::/64 on the
LAN, 10.78.N.0/24 and fd78:N::/64 towards the "internet"); nothing touches the host's
interfaces or its ruleset. ``Network.remove`` deletes the namespaces (their veths and
rulesets go with them) and is safe to call after a half-finished set-up.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELPER = Path(__file__).resolve().parent / "portal_netns_helper.py"
LAN_IF = "lan0"
PORTAL_PORT = 8080
_counter = itertools.count(1)


def have_tools() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "needs root for network namespaces"
    missing = [t for t in ("ip", "nft", "conntrack", "busybox") if shutil.which(t) is None]
    if missing:
        return False, f"missing tools: {', '.join(missing)}"
    probe = f"cgp-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return False, f"cannot create a network namespace: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return True, ""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


@dataclass
class Network:
    n: int
    prefix: str
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return f"{self.prefix}-gw"

    @property
    def internet(self) -> str:
        return f"{self.prefix}-in"

    def client(self, i: int) -> str:
        return f"{self.prefix}-c{i}"

    def client_ip(self, i: int, v6: bool = False) -> str:
        return f"fd77:{self.n}::{10 + i}" if v6 else f"10.77.{self.n}.{10 + i}"

    def gateway_ip(self, v6: bool = False) -> str:
        return f"fd77:{self.n}::1" if v6 else f"10.77.{self.n}.1"

    def internet_ip(self, v6: bool = False) -> str:
        return f"fd78:{self.n}::2" if v6 else f"10.78.{self.n}.2"

    def client_mac(self, i: int) -> str:
        return f"02:77:{self.n:02x}:00:00:{i:02x}"

    def run(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *argv, check=check)

    def spawn(self, ns: str, *argv: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.processes.append(proc)
        _collect(proc)
        return proc

    def python(self, ns: str, *args: str) -> subprocess.Popen[str]:
        return self.spawn(ns, sys.executable, str(HELPER), *args)

    def client_run(self, i: int, *actions: str, timeout: float = 30) -> list[dict[str, object]]:
        """Run client actions in client ``i``'s namespace; their results as dicts."""
        import json

        result = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.client(i),
                sys.executable,
                str(HELPER),
                "client",
                *actions,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"client actions failed: {result.stderr[-2000:]}")
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    def stop(self, proc: subprocess.Popen[str], timeout: float = 10) -> str:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        time.sleep(0.1)  # the pump thread takes the last lines
        with contextlib.suppress(ValueError):
            self.processes.remove(proc)
        return "\n".join(output_of(proc))

    def remove(self) -> None:
        for proc in list(self.processes):
            self.stop(proc, timeout=5)
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()


_output: dict[int, list[str]] = {}


def _collect(proc: subprocess.Popen[str]) -> None:
    """Read ``proc``'s output lines in a thread (a selector cannot see lines that are
    already in the text wrapper's buffer)."""
    lines = _output.setdefault(proc.pid, [])

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())

    threading.Thread(target=pump, name=f"output-{proc.pid}", daemon=True).start()


def output_of(proc: subprocess.Popen[str]) -> list[str]:
    return _output.get(proc.pid, [])


def wait_for_line(proc: subprocess.Popen[str], marker: str, timeout: float = 30) -> list[str]:
    """Lines of ``proc``'s output up to the one containing ``marker``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = output_of(proc)
        for i, line in enumerate(lines):
            if marker in line:
                return lines[: i + 1]
        if proc.poll() is not None:
            time.sleep(0.1)  # let the pump take the last lines
            if not any(marker in line for line in output_of(proc)):
                break
        time.sleep(0.05)
    raise RuntimeError(
        f"no {marker!r} from the process; it said:\n" + "\n".join(output_of(proc)[-40:])
    )


@contextlib.contextmanager
def network(clients: int = 2) -> Iterator[Network]:
    n = next(_counter) + (os.getpid() % 200)
    net = Network(n=n % 250, prefix=f"cgp{os.getpid() % 100000}-{n}")
    try:
        _build(net, clients)
        yield net
    finally:
        net.remove()


def _build(net: Network, clients: int) -> None:
    n = net.n
    gw, inet = net.gateway, net.internet
    for ns in (gw, inet, *(net.client(i) for i in range(1, clients + 1))):
        sh("ip", "netns", "add", ns)
        net.namespaces.append(ns)
        net.run(ns, "ip", "link", "set", "lo", "up")
    # The gateway: a LAN bridge and a WAN link, forwarding both families.
    net.run(gw, "ip", "link", "add", LAN_IF, "type", "bridge")
    net.run(gw, "ip", "link", "set", LAN_IF, "up")
    _addr(net, gw, LAN_IF, f"10.77.{n}.1/24", f"fd77:{n}::1/64")
    sh("ip", "link", "add", "wan0", "netns", gw, "type", "veth", "peer", "inet0", "netns", inet)
    net.run(gw, "ip", "link", "set", "wan0", "up")
    net.run(inet, "ip", "link", "set", "inet0", "up")
    _addr(net, gw, "wan0", f"10.78.{n}.1/24", f"fd78:{n}::1/64")
    _addr(net, inet, "inet0", f"10.78.{n}.2/24", f"fd78:{n}::2/64")
    net.run(inet, "ip", "route", "add", f"10.77.{n}.0/24", "via", f"10.78.{n}.1")
    net.run(inet, "ip", "-6", "route", "add", f"fd77:{n}::/64", "via", f"fd78:{n}::1")
    for i in range(1, clients + 1):
        client = net.client(i)
        port = f"lan{i}"
        sh(
            "ip",
            "link",
            "add",
            "c0",
            "netns",
            client,
            "address",
            net.client_mac(i),
            "type",
            "veth",
            "peer",
            port,
            "netns",
            gw,
        )
        net.run(gw, "ip", "link", "set", port, "master", LAN_IF, "up")
        net.run(client, "ip", "link", "set", "c0", "up")
        _addr(net, client, "c0", f"{net.client_ip(i)}/24", f"{net.client_ip(i, True)}/64")
        net.run(client, "ip", "route", "add", "default", "via", net.gateway_ip())
        net.run(client, "ip", "-6", "route", "add", "default", "via", net.gateway_ip(True))
    # Forwarding last: IPv6's "all" applies to the interfaces that exist when it is set.
    net.run(gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    net.run(gw, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")


def _addr(net: Network, ns: str, dev: str, v4: str, v6: str) -> None:
    net.run(ns, "ip", "addr", "add", v4, "dev", dev)
    # nodad: usable at once (duplicate address detection would hold it for a second).
    net.run(ns, "ip", "-6", "addr", "add", v6, "dev", dev, "nodad")


def conntrack_count(net: Network, *filters: str) -> int:
    listed = net.run(net.gateway, "conntrack", "-L", *filters, check=False)
    return sum(1 for line in listed.stdout.splitlines() if line.strip())


def wait_until(condition: object, timeout: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def nft_set(net: Network, table: str) -> str:
    return net.run(net.gateway, "nft", "list", "set", "inet", table, "authorised").stdout


def run_all(net: Network, ns: str, commands: Sequence[Sequence[str]]) -> None:
    for argv in commands:
        net.run(ns, *argv)
