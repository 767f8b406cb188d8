"""Wi-Fi presence end to end: a device on a LAN the test creates, the gateway built from
its config, the simulated Cobot server over real HTTP. Only the packet socket lives in
the test's namespace (see ``tests/netns.py``); everything else runs as in production."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.config.model import MacReaderConfig
from gateway.decide import Decision
from gateway.model import Direction, Membership, Outcome
from gateway.readers.base import ReaderContext, ReaderState
from gateway.readers.mac import confirm, sniff
from gateway.readers.mac.reader import MacReader
from gateway.sim import ADMIN_TOKEN, SimSpace, demo_space, run_sim
from gateway.sim.seed import MAC_TOKEN, MARGARET
from tests.harness import eventually
from tests.mac_helpers import FakeClock, listener_opener
from tests.netns import Lan, arping, required_lan, udhcpc

pytestmark = pytest.mark.real

STRANGER = "00:16:3e:00:00:99"
RANDOM = "da:a1:19:00:00:07"
AWAY = 600.0


@pytest.fixture
def lan() -> Iterator[Lan]:
    with required_lan() as made:
        yield made


@dataclass
class Site:
    space: SimSpace
    gateway: Gateway
    decisions: list[Decision]
    reader: MacReader


def config(state_dir: Path, base_url: str, **reader: Any) -> dict[str, Any]:
    return {
        "gateway": {"state_dir": str(state_dir)},
        "cobot": {"base_url": base_url},
        "readers": [{"name": "wifi", "type": "mac", "interface": "lan0", **reader}],
    }


@contextlib.asynccontextmanager
async def site(
    tmp_path: Path, *, reader: MacReader | None = None, **reader_cfg: Any
) -> AsyncIterator[Site]:
    space = demo_space()
    async with run_sim(space) as base_url:
        cfg = parse_config(config(tmp_path / "state", base_url, **reader_cfg), "test")
        decisions: list[Decision] = []
        gw = Gateway(
            cfg,
            ADMIN_TOKEN,
            readers=None if reader is None else [reader],
            hooks=[decisions.append],
        )
        task = asyncio.create_task(gw.run())
        try:
            await asyncio.wait_for(gw.ready.wait(), 10)
            await gw.sync.sync_once()  # the token cache knows Margaret's MAC
            (mac_reader,) = gw.readers
            assert isinstance(mac_reader, MacReader)
            await eventually(lambda: mac_reader.state is ReaderState.READY, timeout=10)
            yield Site(space, gw, decisions, mac_reader)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_registered_mac_checks_in_once(
    lan: Lan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built from the config as in production (``build_reader``); the socket opener is
    the real one, run in the test's namespace."""
    real_open = sniff.open_packet_socket

    def open_in_lan(interface: str) -> socket.socket:
        return lan.in_listener(lambda: real_open(interface))

    monkeypatch.setattr(sniff, "open_packet_socket", open_in_lan)
    # Departure probes, too, go out only inside the test's namespace.
    real_link = confirm.open_link
    monkeypatch.setattr(
        confirm, "open_link", lambda interface: lan.in_listener(lambda: real_link(interface))
    )
    async with site(tmp_path) as s:
        lan.set_client_mac(MAC_TOKEN)  # Margaret's laptop (registered on the portal)
        await udhcpc(lan, "margaret-laptop", tries=2)
        await arping(lan)
        await eventually(lambda: len(s.space.check_ins_of(MARGARET)) == 1, timeout=10)
        await eventually(lambda: s.gateway.outbox.depth == 0, timeout=10)
        (decision,) = s.decisions
        assert decision.tap.token == MAC_TOKEN
        assert decision.outcome is Outcome.OPENED_ONLINE
        assert decision.membership is not None
        assert decision.membership.id == MARGARET
        assert not decision.opened  # no door: nothing to open

        # The laptop keeps talking: no more taps, no more check-ins.
        for _ in range(3):
            await arping(lan)
        await eventually(lambda: s.reader.stats.sightings >= 5)
        # Strangers and a private address nobody registered: seen, never a tap.
        lan.set_client_mac(STRANGER)
        await udhcpc(lan, "printer")
        lan.set_client_mac(RANDOM)
        await arping(lan)
        await eventually(lambda: s.reader.presence.device(RANDOM) is not None)
        assert len(s.decisions) == 1
        assert len(s.space.check_ins_of(MARGARET)) == 1
        assert s.space.doubled() == {}
        status = s.gateway.status()["readers"]["wifi"]
        assert status["state"] == "ready"
        assert status["stats"]["taps_in"] == 1
        assert status["stats"]["members_present"] == 1


async def test_departure_checks_out(lan: Lan, tmp_path: Path) -> None:
    """DevicePresence time runs on a clock the test moves (from now: the gateway's
    Attendance answers for today); sockets, sweeps and HTTP are real."""
    clock = FakeClock(time.time())
    gateways: list[Gateway] = []
    cfg = MacReaderConfig(
        name="wifi", interface=lan.interface, away_after=AWAY, checkout_on_departure=True
    )

    def lookup(token: str) -> Membership | None:
        return gateways[0].cache.lookup(token)  # the cache exists once the gateway runs

    class GatewayAttendance:
        """The running gateway's Attendance (it exists once the gateway runs)."""

        def until(self, membership_id: str, at: datetime | None = None) -> datetime | None:
            return gateways[0].attendance.until(membership_id, at)

        def checked_out_today(self, membership_id: str, at: datetime) -> bool:
            return gateways[0].attendance.checked_out_today(membership_id, at)

        def refusal(self, token: str, at: datetime) -> str | None:
            return gateways[0].attendance.refusal(token, at)

    reader = MacReader(
        cfg,
        ReaderContext(state_dir=tmp_path / "state", lookup=lookup, attendance=GatewayAttendance()),
        clock=clock,
        opener=listener_opener(lan),
        probe_opener=lambda interface: lan.in_listener(lambda: confirm.open_link(interface)),
        sweep_interval=0.05,
    )
    async with site(tmp_path, reader=reader, checkout_on_departure=True, away_after=AWAY) as s:
        gateways.append(s.gateway)
        lan.set_client_mac(MAC_TOKEN)
        await arping(lan)
        await eventually(lambda: s.space.active_check_in(MARGARET) is not None, timeout=10)

        clock.advance(AWAY)  # the laptop has been silent for away_after: it is asked
        await eventually(lambda: len(reader.presence.asking) == 1, timeout=10)
        clock.advance(confirm.CONFIRM_WAIT)  # and does not answer (it holds no address)
        await eventually(lambda: len(s.decisions) == 2, timeout=10)
        out = s.decisions[1]
        assert (out.tap.direction, out.outcome) == (Direction.OUT, Outcome.CHECKED_OUT)
        await eventually(lambda: s.space.active_check_in(MARGARET) is None, timeout=10)
        (check_in,) = s.space.check_ins_of(MARGARET)
        assert check_in.checked_out_at is not None

        # Back the same day: the gateway's Attendance heard of the check-out from the
        # decision, so the laptop is no second check-in (a second time pass).
        await arping(lan)
        await eventually(lambda: reader.presence.present_members() != {}, timeout=10)
        await asyncio.sleep(0.3)
        assert len(s.decisions) == 2
        assert len(s.space.check_ins_of(MARGARET)) == 1
