"""MAC reader: frames processed per second on one core, the gateway's RSS with a MAC
reader running, and the reader's import time.

The socket figures need root (network namespaces, as in the tests): frames cross a veth
pair from a sender process in one namespace to the reader's packet socket in another;
half of them are noise the kernel filter drops. A LAN's ARP and DHCP amount to tens of
frames a second, so the target (10,000/s) is about bursts and slower Pi cores.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import REPO, gateway_process, median, rss_mib, sim_process
from gateway.log import configure
from gateway.model import Membership
from tests.mac_helpers import listener_opener
from tests.netns import Lan, available, make_lan

TARGET_RATE = 10_000
TARGET_RSS = 75.0
FRAMES = 40_000  # per parser run
RUNS = 5
SOCKET_FRAMES = 100_000  # per socket run, half of them noise
SOCKET_RUNS = 3
DEVICES = 2_000
REGISTERED = 100

BCAST = b"\xff" * 6


# -- frames, built by hand (no scapy in this process until the comparison) -------------


def _ipv4(src: bytes, dst: bytes, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 17, 0, src, dst)
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    checksum = ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def arp(mac: bytes, ip: bytes) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, ip, bytes(6), b"\x0a\x4d\x00\xfa")
    return BCAST + mac + b"\x08\x06" + body


def dhcp(mac: bytes, hostname: bytes, kind: int = 1, op: int = 1) -> bytes:
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s", op, 1, 6, 0, 0x1234, 0, 0, bytes(4), bytes(4),
                        bytes(4), bytes(4), mac + bytes(10))  # fmt: skip
    options = (
        b"\x63\x82\x53\x63"
        + bytes([53, 1, kind])
        + bytes([61, 7, 1])
        + mac
        + bytes([50, 4, 10, 77, 0, 100])
        + bytes([12, len(hostname)])
        + hostname
        + b"\xff"
    )
    ports = (67, 68) if op == 2 else (68, 67)
    udp = _udp(*ports, bootp + bytes(192) + options)
    return BCAST + mac + b"\x08\x00" + _ipv4(bytes(4), b"\xff" * 4, udp)


def noise(mac: bytes) -> bytes:
    return BCAST + mac + b"\x08\x00" + _ipv4(b"\x0a\x4d\x00\x02", b"\x0a\x4d\x00\xff",
                                             _udp(5353, 53, bytes(40)))  # fmt: skip


def device_macs(rng: random.Random) -> list[bytes]:
    # A realistic LAN: mostly phones with private (locally administered) addresses.
    return [bytes([(rng.randrange(256) | 0x02) & 0xFE]) + rng.randbytes(5) for _ in range(DEVICES)]


def traffic(n: int, rng: random.Random, macs: list[bytes]) -> list[bytes]:
    """ARP requests (half), DHCP discovers and requests, and server replies (ignored)."""
    frames = []
    for i in range(n):
        mac = macs[rng.randrange(len(macs))]
        roll = i % 10
        if roll < 5:
            frames.append(arp(mac, bytes([10, 77, 0, 2 + i % 200])))
        elif roll < 9:
            frames.append(dhcp(mac, b"device-%d" % (i % 1000), kind=1 if roll < 7 else 3))
        else:
            frames.append(dhcp(mac, b"x", kind=2, op=2))
    return frames


def _registered(macs: list[bytes]) -> dict[str, Membership]:
    return {m.hex(":"): Membership(f"member-{i}", f"M{i}") for i, m in enumerate(macs[:REGISTERED])}


# -- CPU only: parser, and parser + presence -------------------------------------------


def _rate(work: Callable[[list[bytes]], None], frames: list[bytes]) -> float:
    rates = []
    for _ in range(RUNS):
        start = time.perf_counter()
        work(frames)
        rates.append(len(frames) / (time.perf_counter() - start))
    return statistics.median(rates)


def cpu_rates() -> None:
    from gateway.readers.mac.packets import parse_frame
    from gateway.readers.mac.presence import DevicePresence

    rng = random.Random(5)
    macs = device_macs(rng)
    frames = traffic(FRAMES, rng, macs)
    tokens = _registered(macs)

    def parse(batch: list[bytes]) -> None:
        for f in batch:
            parse_frame(f)

    def pipeline(batch: list[bytes]) -> None:
        presence = DevicePresence(
            reader="bench", lookup=tokens.get, away_after=1800, lookup_interval=2.0
        )
        for f in batch:
            s = parse_frame(f)
            if s is not None:
                presence.observe(s)

    from scapy.layers.dhcp import DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import ARP, Ether

    def scapy_parse(batch: list[bytes]) -> None:
        for f in batch:
            p = Ether(f)
            if ARP in p:
                _ = p[ARP].hwsrc
            elif UDP in p and DHCP in p:
                _ = (p[DHCP].options, p[IP].src)

    rows = [
        ("hand-written parser (`packets.parse_frame`)", _rate(parse, frames)),
        ("parser + presence table (`DevicePresence.observe`)", _rate(pipeline, frames)),
        ("scapy `Ether(frame)` dissection, for comparison", _rate(scapy_parse, frames[:4000])),
    ]
    print(f"CPU only, {FRAMES:,} frames (50% ARP, 40% DHCP client, 10% server replies), "
          f"{DEVICES:,} devices; median of {RUNS} runs.\n")  # fmt: skip
    print("| path | frames/s | vs target 10,000/s |")
    print("|---|---:|---:|")
    for label, rate in rows:
        print(f"| {label} | {rate:,.0f} | {rate / TARGET_RATE:.1f}x |")
    print()


# -- real sockets ------------------------------------------------------------------------

SENDER = """
import socket, sys
data = open(sys.argv[1], "rb").read()
frames, i = [], 0
while i < len(data):
    n = int.from_bytes(data[i:i + 2], "big")
    frames.append(data[i + 2:i + 2 + n])
    i += 2 + n
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[2], 0))
for f in frames:
    s.send(f)
"""


def _frame_file(frames: list[bytes], directory: str) -> str:
    path = Path(directory) / "frames.bin"
    path.write_bytes(b"".join(len(f).to_bytes(2, "big") + f for f in frames))
    return str(path)


def _send(lan: Lan, path: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", lan.client, sys.executable, "-c", SENDER, path, lan.interface],
        check=True,
        timeout=300,
    )


async def socket_rates() -> None:
    from gateway.config.model import MacReaderConfig
    from gateway.readers.base import ReaderContext, ReaderState
    from gateway.readers.mac.reader import MacReader

    rng = random.Random(7)
    macs = device_macs(rng)
    mixed = []
    for f in traffic(SOCKET_FRAMES // 2, rng, macs):
        mixed += [f, noise(macs[0])]
    tokens = _registered(macs)
    cpu_rates_, wall_rates, drops = [], [], []
    with make_lan() as lan, tempfile.TemporaryDirectory() as tmp:
        path = _frame_file(mixed, tmp)
        for run in range(SOCKET_RUNS):
            cfg = MacReaderConfig(name="bench", interface=lan.interface)
            reader = MacReader(
                cfg,
                ReaderContext(state_dir=Path(tmp) / f"state{run}", lookup=tokens.get),
                opener=listener_opener(lan),
            )
            task = asyncio.create_task(reader.run(lambda _tap: None))
            async with asyncio.timeout(10):
                while True:
                    if reader.state is ReaderState.READY:
                        break
                    await asyncio.sleep(0.01)
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            sender = asyncio.create_task(asyncio.to_thread(_send, lan, path))
            seen, quiet_since = 0, time.perf_counter()
            last_change = wall0
            while not sender.done() or time.perf_counter() - quiet_since < 0.3:
                await asyncio.sleep(0.01)
                now_seen = reader.stats.frames
                if now_seen != seen:
                    seen, quiet_since, last_change = (
                        now_seen,
                        time.perf_counter(),
                        time.perf_counter(),
                    )
            await sender
            cpu = time.thread_time() - cpu0
            stats = reader.stats
            cpu_rates_.append(stats.frames / cpu)
            wall_rates.append(stats.frames / (last_change - wall0))
            drops.append(1 - stats.frames / (SOCKET_FRAMES // 2))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    print(f"Real packet socket, {SOCKET_FRAMES:,} frames per run over a veth pair (half of "
          f"them noise dropped by the kernel filter), median of {SOCKET_RUNS} runs. The sender "
          "blasts as fast as it can, so the reader runs saturated.\n")  # fmt: skip
    print("| measure | value |")
    print("|---|---:|")
    per_cpu = median(cpu_rates_)
    print(f"| filtered frames per CPU-second of the event loop (one core) | "
          f"**{per_cpu:,.0f}/s** ({per_cpu / TARGET_RATE:.1f}x target) |")  # fmt: skip
    print(f"| filtered frames per wall-clock second (sharing 2 cores with the sender) | "
          f"{median(wall_rates):,.0f}/s |")  # fmt: skip
    print(f"| frames the kernel dropped (receive buffer full while saturated) | "
          f"{median(drops):.0%} |")  # fmt: skip
    print()


async def daemon_rss() -> None:
    """``checkin-gateway run`` with a MAC reader, the simulated Cobot beside it, both in the
    listener namespace; RSS after it has seen a LAN's worth of devices."""
    from gateway.sim import ADMIN_TOKEN

    rng = random.Random(9)
    macs = device_macs(rng)[:1000]
    rss = []
    with make_lan() as lan, tempfile.TemporaryDirectory() as tmp:
        path = _frame_file(traffic(20_000, rng, macs), tmp)
        prefix = ("ip", "netns", "exec", lan.listener)
        async with sim_process("--no-rate-limit", prefix=prefix) as base_url:
            for run in range(3):
                cfg = Path(tmp) / "gw.toml"
                cfg.write_text(f"""
[gateway]
state_dir = "{tmp}/state{run}"
log_format = "json"
[cobot]
base_url = "{base_url}"
[[readers]]
name = "wifi"
type = "mac"
interface = "{lan.interface}"
""")
                ready = (b'"event": "ready"', b'"mac_reader_ready"')
                async with gateway_process(
                    cfg, ready_events=ready, token=ADMIN_TOKEN, prefix=prefix
                ) as proc:
                    await asyncio.to_thread(_send, lan, path)
                    await asyncio.sleep(3)  # let it settle: table flushed, taps decided
                    rss.append(rss_mib(proc.pid))
    print(f"Gateway process (`checkin-gateway run`, MAC reader, token sync done) after "
          f"{len(macs):,} devices were heard: median RSS **{median(rss):.1f} MiB** "
          f"(target <= {TARGET_RSS:.0f} MiB).\n")  # fmt: skip


def import_times() -> None:
    def measure(setup: str, module: str) -> float:
        code = (
            f"import time\n{setup}\nt = time.perf_counter()\nimport {module}\n"
            "print(time.perf_counter() - t)"
        )
        times = []
        for _ in range(7):
            out = subprocess.run(
                [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
            )
            times.append(float(out.stdout))
        return median(times) * 1000

    scapy = "scapy.layers.l2, scapy.layers.inet, scapy.layers.dhcp"
    reader = "gateway.readers.mac.reader"
    rows = [
        (f"`{reader}`, fresh interpreter", measure("", reader)),
        ("the same, once the gateway (`gateway.app`) is loaded",
         measure("import gateway.app", reader)),
        (f"for comparison: `{scapy}`", measure("", scapy)),
    ]  # fmt: skip
    print("Import time, median of 7 fresh interpreters:\n")
    print("| import | ms |")
    print("|---|---:|")
    for label, ms in rows:
        print(f"| {label} | {ms:.0f} |")
    print()


def main() -> None:
    configure("warning", "json")  # a new device is logged at info: not 2,000 times here
    import_times()
    cpu_rates()
    ok, why = available()
    if not ok:
        print(f"(socket and RSS figures skipped: {why})")
        return
    asyncio.run(socket_rates())
    asyncio.run(daemon_rss())


if __name__ == "__main__":
    main()
