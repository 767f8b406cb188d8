"""The MAC reader on a real link: packets from udhcpc, dhclient, arping and scapy cross a
veth pair between two network namespaces the test creates (see ``tests/netns.py``); the
reader's packet socket, kernel filter and all, listens in one of them."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.sendrecv import sendp
from structlog.testing import capture_logs

from gateway.config.model import MacReaderConfig
from gateway.model import Direction, Membership, Tap
from gateway.readers.base import ReaderContext, ReaderState
from gateway.readers.mac.confirm import CONFIRM_WAIT, open_link
from gateway.readers.mac.reader import MacReader
from tests.conftest import require
from tests.mac_helpers import Desk, FakeClock, listener_opener
from tests.netns import CLIENT_IP, Lan, arping, client, required_lan, udhcpc

pytestmark = pytest.mark.real

ALICE = Membership("m-alice", "Alice")
BOB = Membership("m-bob", "Bob")
ALICE_LAPTOP = "00:16:3e:00:00:01"
BOB_DESKTOP = "00:16:3e:00:00:02"
STRANGER = "00:16:3e:00:00:99"
RANDOM = "da:a1:19:00:00:07"  # locally administered, as a phone's private address
WAIT = 15.0


@dataclass
class Running:
    reader: MacReader
    clock: FakeClock
    desk: Desk  # Attendance, told of each tap as the decision would
    taps: list[Tap] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        """Until ``condition`` holds (the reader works in the background), or fail."""
        async with asyncio.timeout(WAIT):
            while not condition():
                await asyncio.sleep(0.02)
        assert condition(), what

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest.fixture
def lan() -> Iterator[Lan]:
    with required_lan() as made:
        yield made


class Start(Protocol):
    async def __call__(
        self, tokens: dict[str, Membership] | None = None, **cfg: object
    ) -> Running: ...


@pytest.fixture
async def start(lan: Lan, tmp_path: Path) -> AsyncIterator[Start]:
    """Starts a MAC reader listening in the LAN's listener namespace; stops it after."""
    started: list[Running] = []
    clock = FakeClock()
    desk = Desk(clock)  # one Attendance across the restarts of a test

    async def start(tokens: dict[str, Membership] | None = None, **cfg: object) -> Running:
        config = MacReaderConfig(name="wifi", interface=lan.interface, **cfg)  # type: ignore[arg-type]
        known = tokens if tokens is not None else {ALICE_LAPTOP: ALICE, BOB_DESKTOP: BOB}
        reader = MacReader(
            config,
            ReaderContext(state_dir=tmp_path / "state", lookup=known.get, attendance=desk),
            clock=clock,
            opener=listener_opener(lan),
            probe_opener=lambda interface: lan.in_listener(lambda: open_link(interface)),
            sleep=lambda _delay: asyncio.sleep(0.05),  # reconnect at once in tests
            sweep_interval=0.05,
        )
        running = Running(reader, clock, desk)
        running.task = asyncio.create_task(reader.run(desk.deciding(running.taps, known.get)))
        started.append(running)
        await running.wait(lambda: reader.state is ReaderState.READY, "reader ready")
        return running

    yield start
    for running in started:
        if running.task is not None and not running.task.done():
            await running.stop()


@pytest.fixture
def dhcp_server(lan: Lan, tmp_path: Path) -> None:
    """busybox udhcpd in the listener namespace: clients get OFFER/ACK and go on to
    REQUEST; its replies are outgoing frames the reader must skip."""
    conf = tmp_path / "udhcpd.conf"
    conf.write_text(
        textwrap.dedent(f"""\
            start 10.77.0.100
            end 10.77.0.110
            interface {lan.interface}
            lease_file {tmp_path / "udhcpd.leases"}
            pidfile {tmp_path / "udhcpd.pid"}
            option subnet 255.255.255.0
            option lease 600
            """)
    )
    (tmp_path / "udhcpd.leases").write_bytes(b"")
    lan.spawn(lan.listener, "busybox", "udhcpd", "-f", str(conf))


async def test_udhcpc_discover_checks_the_registered_member_in(lan: Lan, start: Start) -> None:
    lan.set_client_mac(ALICE_LAPTOP)
    running = await start()
    await udhcpc(lan, "alice-laptop", tries=2)
    await running.wait(lambda: running.taps, "a tap")
    await running.wait(lambda: running.reader.stats.sightings >= 2, "both discovers")
    (tap,) = running.taps
    assert (tap.reader, tap.token, tap.direction) == ("wifi", ALICE_LAPTOP, Direction.IN)
    dev = running.reader.presence.device(ALICE_LAPTOP)
    assert dev is not None
    assert (dev.hostname, dev.member_id, dev.present) == ("alice-laptop", ALICE.id, True)
    await running.stop()
    assert running.reader.state is ReaderState.STOPPED


async def test_udhcpc_lease_with_a_server(lan: Lan, start: Start, dhcp_server: None) -> None:
    lan.set_client_mac(ALICE_LAPTOP)
    running = await start()
    result = await client(
        lan, "udhcpc", "-i", lan.interface, "-n", "-q", "-f", "-t", "5", "-T", "1",
        "-s", "/bin/true", "-x", "hostname:alice-laptop",
    )  # fmt: skip
    assert "lease of 10.77.0.1" in result.stderr + result.stdout, result.stderr
    await running.wait(lambda: running.reader.stats.sightings >= 2, "discover and request")
    await running.wait(
        lambda: running.reader.stats.outgoing >= 2, "the server's offer and ack, skipped"
    )
    assert [t.direction for t in running.taps] == [Direction.IN]  # one, though it talked
    dev = running.reader.presence.device(ALICE_LAPTOP)
    assert dev is not None
    assert dev.ip is not None
    assert dev.ip.startswith("10.77.0.1")


async def test_dhclient(lan: Lan, start: Start, dhcp_server: None, tmp_path: Path) -> None:
    lan.set_client_mac(BOB_DESKTOP)
    conf = tmp_path / "dhclient.conf"
    conf.write_text('send host-name "bob-desktop";\ntimeout 20;\n')
    running = await start()
    lan.spawn(
        lan.client, "dhclient", "-d", "-1", "-v", "-sf", "/bin/true", "-cf", str(conf),
        "-lf", str(tmp_path / "dhclient.leases"), "-pf", str(tmp_path / "dhclient.pid"),
        lan.interface,
    )  # fmt: skip
    await running.wait(lambda: running.taps, "bob's check-in tap")

    def hostname_seen() -> bool:
        dev = running.reader.presence.device(BOB_DESKTOP)
        return dev is not None and dev.hostname == "bob-desktop"

    await running.wait(hostname_seen, "dhclient's host-name option")
    await running.wait(lambda: running.reader.stats.outgoing >= 1, "server reply skipped")
    assert [(t.token, t.direction) for t in running.taps] == [(BOB_DESKTOP, Direction.IN)]


async def test_arping(lan: Lan, start: Start) -> None:
    lan.set_client_mac(BOB_DESKTOP)
    running = await start()
    await arping(lan)
    await running.wait(lambda: running.taps, "bob's check-in tap")
    dev = running.reader.presence.device(BOB_DESKTOP)
    assert dev is not None
    assert (str(dev.source), dev.ip) == ("arp", CLIENT_IP)
    # The listener's own reply went out on the same interface: skipped, not a sighting.
    await running.wait(lambda: running.reader.stats.outgoing >= 1, "reply skipped")
    assert running.reader.presence.device(lan_mac(lan, lan.listener)) is None


def lan_mac(lan: Lan, ns: str) -> str:
    out = lan.run(ns, "cat", f"/sys/class/net/{lan.interface}/address")
    return out.stdout.strip()


async def test_unknown_and_randomised_unregistered_devices_tap_nothing(
    lan: Lan, start: Start
) -> None:
    running = await start()
    with capture_logs() as logs:
        lan.set_client_mac(STRANGER)
        await udhcpc(lan, "printer")
        lan.set_client_mac(RANDOM)
        await arping(lan)
        await running.wait(
            lambda: running.reader.presence.device(RANDOM) is not None, "the random MAC"
        )
    presence = running.reader.presence
    assert presence.device(STRANGER) is not None  # tracked: registering later works
    assert running.taps == []
    new = {e["mac"][-2:]: e["randomised"] for e in logs if e["event"] == "mac_device_new"}
    assert new == {"99": False, "07": True}
    assert all(RANDOM not in str(e) and STRANGER not in str(e) for e in logs)


async def test_registered_randomised_address_checks_in(lan: Lan, start: Start) -> None:
    lan.set_client_mac(RANDOM)
    running = await start({RANDOM.upper(): ALICE})  # registered by an admin, in capitals
    await arping(lan)
    await running.wait(lambda: running.taps, "a tap")
    assert [(t.token, t.direction) for t in running.taps] == [(RANDOM.upper(), Direction.IN)]


def noise(src: str) -> list[Packet]:
    bcast = "ff:ff:ff:ff:ff:ff"
    return [
        Ether(src=src, dst=bcast) / IP(src=CLIENT_IP, dst="10.77.0.255") / UDP(dport=53),
        Ether(src=src, dst="01:00:5e:00:00:fb")
        / IP(dst="224.0.0.251")
        / UDP(sport=5353, dport=5353),
        Ether(src=src, dst=bcast) / IP(dst="10.77.0.1") / TCP(dport=67),
        Ether(src=src, dst=bcast) / IP(dst="10.77.0.1") / ICMP(),
        Ether(src=src, dst="33:33:00:01:00:02") / IPv6(dst="ff02::1:2") / UDP(sport=546, dport=547),
        Ether(src=src, dst=bcast) / Dot1Q(vlan=7) / ARP(hwsrc=src, psrc=CLIENT_IP),
        Ether(src=src, dst=bcast) / IP(frag=5, proto=17) / Raw(b"\x00\x44\x00\x43" + bytes(8)),
        Ether(src=src, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(bytes(40)),  # LLDP
    ]


async def test_noise_is_filtered_in_the_kernel(lan: Lan, start: Start) -> None:
    running = await start()
    src = STRANGER
    chaddr = bytes.fromhex(src.replace(":", ""))
    offer = (  # passes the filter (UDP 67/68), but is a server's reply: parsed and ignored
        Ether(src=BOB_DESKTOP, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="10.77.0.9", dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, chaddr=chaddr)
        / DHCP(options=[("message-type", "offer"), "end"])
    )
    discover = (
        Ether(src=src, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=chaddr)
        / DHCP(options=[("message-type", "discover"), "end"])
    )
    frames = [*noise(src) * 50, offer, discover]
    await asyncio.to_thread(
        lan.in_client, lambda: sendp(frames, iface=lan.interface, verbose=False)
    )
    await running.wait(lambda: running.reader.stats.sightings >= 1, "the discover")
    await asyncio.sleep(0.2)  # anything else that got through would be counted by now
    stats = running.reader.stats
    assert (stats.frames, stats.ignored, stats.sightings) == (2, 1, 1)
    assert len(running.reader.presence) == 1


async def test_departure_checks_out_when_configured(lan: Lan, start: Start) -> None:
    lan.set_client_mac(ALICE_LAPTOP)
    running = await start(checkout_on_departure=True, away_after=600)
    await arping(lan)
    await running.wait(lambda: running.taps, "arrival")
    running.clock.advance(599)
    await asyncio.sleep(0.2)  # several sweeps
    assert len(running.taps) == 1
    running.clock.advance(1)
    await asyncio.sleep(0.2)  # silent: asked with an ARP request nobody answers
    assert len(running.taps) == 1
    running.clock.advance(CONFIRM_WAIT)
    await running.wait(lambda: len(running.taps) == 2, "departure")
    assert [(t.token, t.direction) for t in running.taps] == [
        (ALICE_LAPTOP, Direction.IN),
        (ALICE_LAPTOP, Direction.OUT),
    ]
    running.clock.advance(86400)
    await arping(lan)  # back the next day: a new arrival (the same day: see below)
    await running.wait(lambda: len(running.taps) == 3, "return")
    assert running.taps[-1].direction is Direction.IN


async def test_departure_without_checkout_taps_nothing(lan: Lan, start: Start) -> None:
    lan.set_client_mac(ALICE_LAPTOP)
    running = await start(away_after=600)
    await arping(lan)
    await running.wait(lambda: running.taps, "arrival")
    running.clock.advance(601)
    await asyncio.sleep(0.2)  # the unanswered probe
    running.clock.advance(CONFIRM_WAIT)
    await running.wait(lambda: not running.reader.presence.present_members(), "gone")
    assert len(running.taps) == 1


async def test_interface_gone_and_back(lan: Lan, start: Start) -> None:
    running = await start()
    reader = running.reader
    await asyncio.to_thread(lan.delete_link)
    await running.wait(lambda: reader.state is ReaderState.RECONNECTING, "link lost")
    await running.wait(
        lambda: reader.stats.last_error == "lan0: no such interface", "reopen attempts fail"
    )
    assert reader.state is ReaderState.RECONNECTING
    await asyncio.to_thread(lan.add_link)
    lan.set_client_mac(BOB_DESKTOP)
    # The reader may catch the new link before it is up, fail once more and reopen
    # again: ask until it has heard.
    async with asyncio.timeout(WAIT):
        while not running.taps:
            await arping(lan)
    assert reader.state is ReaderState.READY
    assert reader.stats.reconnects >= 1


async def test_restart_remembers_who_is_here(lan: Lan, start: Start) -> None:
    lan.set_client_mac(ALICE_LAPTOP)
    first = await start()
    await arping(lan)
    await first.wait(lambda: first.taps, "arrival")
    await first.stop()
    second = await start()
    await arping(lan)
    await second.wait(lambda: second.reader.stats.sightings >= 1, "seen again")
    assert second.taps == []  # still the same stay: no second check-in
    assert second.reader.presence.present_members() == {ALICE.id: frozenset({ALICE_LAPTOP})}


def test_without_cap_net_raw_the_reader_fails_with_the_fix(lan: Lan, tmp_path: Path) -> None:
    """The real opener, in a process whose bounding set lacks CAP_NET_RAW (as a service
    without AmbientCapabilities would run), inside the test's namespace."""
    require(shutil.which("setpriv") is not None, "setpriv (util-linux) is not installed")
    script = textwrap.dedent(f"""\
        import asyncio, sys, time
        from pathlib import Path
        from gateway.config.model import MacReaderConfig
        from gateway.errors import ReaderError
        from gateway.readers.base import ReaderContext, ReaderState
        from gateway.readers.mac.reader import MacReader

        cfg = MacReaderConfig(name="wifi", interface="{lan.interface}")
        reader = MacReader(cfg, ReaderContext(Path("{tmp_path}"), lambda t: None))
        start = time.monotonic()
        try:
            asyncio.run(reader.run(lambda tap: None))
        except ReaderError as exc:
            # After the reader's own log lines (on stdout too): the result.
            print(f"RESULT {{reader.state.value}} {{time.monotonic() - start:.3f}}")
            print(exc)
            sys.exit(0)
        sys.exit(f"no ReaderError; state {{reader.state}}")
        """)
    result = subprocess.run(
        ["ip", "netns", "exec", lan.listener, "setpriv", "--bounding-set", "-net_raw",
         "--inh-caps", "-net_raw", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60, check=False,
        cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    status, message = result.stdout.split("RESULT ", 1)[1].split("\n", 1)
    state, elapsed = status.split()
    assert state == "failed"
    assert float(elapsed) < 1.0  # at once, no retrying
    assert "CAP_NET_RAW" in message
    assert "AmbientCapabilities=CAP_NET_RAW" in message
    assert "Operation not permitted" in message


# -- issue 12 case 5: a sleeping phone is asked before it counts as gone ----------------


def client_address(lan: Lan, present: bool) -> None:
    """Give the client namespace its address (so its kernel answers ARP for it), or
    take it away (a device that has left: nobody answers)."""
    verb = "add" if present else "del"
    result = lan.run(lan.client, "ip", "addr", verb, f"{CLIENT_IP}/24", "dev", lan.interface)
    assert result.returncode == 0, result.stderr


async def test_silent_device_answers_the_arp_probe_and_stays(lan: Lan, start: Start) -> None:
    lan.set_client_mac(ALICE_LAPTOP)
    client_address(lan, present=True)
    running = await start(checkout_on_departure=True)
    await arping(lan)
    await running.wait(lambda: running.taps, "alice's check-in tap")
    presence = running.reader.presence
    frames_before = running.reader.stats.frames
    running.clock.advance(1800)  # silent for away_after: asleep, or gone?
    await running.wait(lambda: presence.asking.answered == 1, "the probe answered")
    # The answer was a real ARP reply from the client's kernel, heard by the reader.
    assert running.reader.stats.frames > frames_before
    dev = presence.device(ALICE_LAPTOP)
    assert dev is not None
    assert dev.present
    running.clock.advance(CONFIRM_WAIT + 1)
    await asyncio.sleep(0.3)  # several sweeps
    assert [t.direction for t in running.taps] == [Direction.IN]
    assert presence.present_members() == {ALICE.id: frozenset({ALICE_LAPTOP})}


async def test_silent_device_that_does_not_answer_is_checked_out_once_a_day(
    lan: Lan, start: Start
) -> None:
    lan.set_client_mac(ALICE_LAPTOP)
    running = await start(checkout_on_departure=True)
    await arping(lan)  # from CLIENT_IP, which the client does not hold: nobody answers
    await running.wait(lambda: running.taps, "alice's check-in tap")
    presence = running.reader.presence
    outgoing = lan.run(lan.client, "cat", f"/sys/class/net/{lan.interface}/statistics/rx_packets")
    received_before = int(outgoing.stdout)
    running.clock.advance(1800)
    await asyncio.sleep(0.3)  # the probe went out; the device has CONFIRM_WAIT to answer
    received = lan.run(lan.client, "cat", f"/sys/class/net/{lan.interface}/statistics/rx_packets")
    assert int(received.stdout) > received_before  # the probe reached the device's link
    assert [t.direction for t in running.taps] == [Direction.IN]
    running.clock.advance(CONFIRM_WAIT)
    await running.wait(lambda: len(running.taps) == 2, "the departure")
    assert [(t.token, t.direction) for t in running.taps] == [
        (ALICE_LAPTOP, Direction.IN),
        (ALICE_LAPTOP, Direction.OUT),
    ]
    assert (presence.asking.answered, presence.asking.unanswered) == (0, 1)
    stats = running.reader.stats
    assert (stats.probes_answered, stats.probes_unanswered, stats.probes_failed) == (0, 1, 0)
    # Back the same day: no second check-in (a second time pass), logged instead.
    with capture_logs() as logs:
        await arping(lan)
        await running.wait(lambda: presence.present_members() != {}, "alice's device seen again")
    assert len(running.taps) == 2
    assert "mac_member_returned_after_checkout" in [e["event"] for e in logs]
