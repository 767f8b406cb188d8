"""The firewall is the portal's door (issue 10 case 1, for the portal): real nftables in a
namespace the test makes, the gateway's own decision path (Decider, CobotRecords and
Outbox, Attendance) and the simulated Cobot over real HTTP.

A sign-in is held, the firewall moves, then the check-in is released, or discarded when
the firewall failed. The fault is injected where nft runs: a wrapper around the real
``nft`` that fails (or hangs past the deadline) when asked to let a device out. Then
nobody is billed: no check-in at the simulated Cobot, nothing in the outbox, nobody in
Attendance, the MAC not in the kernel's set; the visitor gets the portal's 503 page in
their language. Without the fault the same sign-in checks in exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.attendance import Attendance
from gateway.breaker import Breaker
from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.config.model import QueueSection
from gateway.decide import Decider
from gateway.drain import Drainer
from gateway.model import Tap
from gateway.outbox import Outbox
from gateway.portal.decision import READER
from gateway.portal.firewall import NftFirewall, Ruleset
from gateway.portal.neighbours import StaticNeighbours
from gateway.portal.service import PortalService
from gateway.records.cobot import CobotRecords
from gateway.rules.base import Verdict
from gateway.sim.seed import ADA, ADMIN_TOKEN, demo_space
from gateway.sim.server import run_sim
from gateway.sim.space import SimSpace
from gateway.store import Database, open_db
from tests.conftest import require
from tests.portal_netns import LAN_IF, PORTAL_PORT, Network, have_tools, network, nft_set
from tests.portal_support import CLIENTS, Clock, portal_config, sign_in

pytestmark = pytest.mark.real

TABLE = "portal_door"
MAC = CLIENTS["127.0.0.1"]  # the static neighbour table's client for loopback

# Runs the real nft in the gateway namespace, unless a fault file says otherwise and the
# script lets a device out ("add element"): then it fails as nft does, or hangs.
WRAPPER = """#!/bin/sh
script=$(cat)
fault=$(cat "{fault}" 2>/dev/null)
case "$script" in
*"add element"*)
    if [ "$fault" = fail ]; then
        echo "Error: Could not process rule: No buffer space available" >&2
        exit 1
    fi
    if [ "$fault" = hang ]; then
        exec sleep 30
    fi
    ;;
esac
printf '%s\\n' "$script" | exec ip netns exec {ns} nft "$@"
"""


class NoOtherReaders:
    """The default door rule: only the portal taps here, with its own rule."""

    async def judge(self, tap: Tap) -> Verdict:
        raise AssertionError(f"a tap from {tap.reader!r}: only the portal was expected")


@pytest.fixture
def net():
    ok, why = have_tools()
    require(ok, why)
    with network(clients=1) as made:
        yield made


@dataclass
class Site:
    space: SimSpace
    db: Database
    outbox: Outbox
    attendance: Attendance
    portal: PortalService
    url: str
    fault: Path
    decisions: list[object]


@contextlib.asynccontextmanager
async def site(net: Network, tmp_path: Path) -> AsyncIterator[Site]:
    fault = tmp_path / "fault"
    wrapper = tmp_path / "nft"
    wrapper.write_text(WRAPPER.format(fault=fault, ns=net.gateway))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    space = demo_space()
    space.rate_limit.enabled = False
    async with run_sim(space) as base_url:
        db = await open_db(tmp_path / "state")
        limiter = RateLimiter({Group.CHECK_INS: 100_000, Group.DEFAULT: 100_000})
        client = CobotClient(base_url, ADMIN_TOKEN, limiter, timeout=5.0)
        try:
            attendance = Attendance(db)
            await attendance.load()
            outbox = Outbox(db, 1000)
            await outbox.load()
            breaker = Breaker()
            drainer = Drainer(outbox, client, attendance, breaker, QueueSection())
            records = CobotRecords(outbox, drainer, client, breaker, attendance)
            decisions: list[object] = []
            decider: Decider | None = None

            async def decide(tap, door, rule):  # type: ignore[no-untyped-def]
                assert decider is not None
                return await decider.decide(tap, door, rule)

            portal = PortalService(
                portal_config(firewall=True, table=TABLE, interface=LAN_IF, port=0),
                client,
                tmp_path / "state",
                decide=decide,
                on_checked_in=attendance.checked_in,
                neighbours=StaticNeighbours(CLIENTS),
                firewall=NftFirewall(
                    Ruleset(TABLE, LAN_IF, PORTAL_PORT),
                    nft=(str(wrapper),),
                    conntrack=("ip", "netns", "exec", net.gateway, "conntrack"),
                ),
                clock=Clock(),
            )
            # The gateway's wiring (gateway/app.py): every other reader records to Cobot
            # through the outbox; the portal's sign-ins through its own held check-in.
            decider = Decider(
                NoOtherReaders(),
                [records],
                attendance,
                hooks=[decisions.append],
                reader_backends={READER: [portal.check_ins]},
            )
            task = asyncio.create_task(portal.run())
            started = asyncio.create_task(portal.wait_started())
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                started.cancel()
                task.result()
            host, port = portal.addresses[0]
            try:
                yield Site(
                    space,
                    db,
                    outbox,
                    attendance,
                    portal,
                    f"http://{host}:{port}",
                    fault,
                    decisions,
                )
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await records.aclose()
                await decider.aclose()
        finally:
            await client.aclose()
            await db.close()


async def _sign_in(s: Site, lang: str = "en") -> tuple[int, str]:
    import aiohttp

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=("127.0.0.1", 0), force_close=True),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers={"Accept-Language": lang},
    ) as http:
        return await sign_in(http, s.url, "ada@example.com", "ada-demo")


async def _billed_nobody(s: Site, net: Network) -> None:
    assert s.space.check_ins_of(ADA) == []
    assert await s.db.fetchall("SELECT id FROM outbox") == []
    assert s.outbox.depth == 0
    assert s.attendance.until(ADA) is None
    assert MAC not in nft_set(net, TABLE)


@pytest.mark.parametrize(
    ("fault", "lang", "words"),
    [
        ("fail", "de", "deshalb wurdest du nicht eingecheckt"),
        ("hang", "en", "so you were not checked in"),
    ],
)
@pytest.mark.timeout(120)
async def test_a_firewall_that_fails_bills_nobody_then_a_working_one_bills_once(
    net: Network, tmp_path: Path, fault: str, lang: str, words: str
) -> None:
    async with site(net, tmp_path) as s:
        s.fault.write_text(fault)
        status, page = await _sign_in(s, lang)
        assert status == 503, page
        assert words in page
        await _billed_nobody(s, net)
        (failed,) = s.decisions
        assert failed.outcome.value == "door-failed"  # type: ignore[attr-defined]
        assert not failed.opened  # type: ignore[attr-defined]

        # The firewall works again: the same sign-in checks in exactly once.
        s.fault.unlink()
        status, page = await _sign_in(s)
        assert status == 200, page
        assert "Welcome, Ada Lovelace." in page
        assert MAC in nft_set(net, TABLE)  # the real kernel set
        assert len(s.space.check_ins_of(ADA)) == 1
        assert s.space.tokens[MAC] == ADA  # the check-in registered the MAC
        assert s.attendance.until(ADA) is not None
        assert await s.db.fetchall("SELECT id FROM outbox") == []
        assert s.space.doubled() == {}
        assert [d.outcome.value for d in s.decisions] == ["door-failed", "opened-online"]  # type: ignore[attr-defined]
