"""The gateway's wiring of the captive portal: sign-ins feed the token cache, and a
registered device seen by the MAC presence reader is let out without the page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from gateway.model import Direction, Membership, Outcome
from gateway.sim.seed import MAC_TOKEN, MARGARET
from tests.harness import eventually, rig


class FakePortal:
    def __init__(self) -> None:
        self.authorised: list[tuple[str, datetime, str | None]] = []
        self.revoked: list[str] = []

    async def wait_started(self) -> None:
        return None

    async def authorise(
        self, mac: str, until: datetime, *, membership_id: str | None = None, **_: object
    ) -> datetime:
        self.authorised.append((mac, until, membership_id))
        return until

    async def revoke(self, mac: str) -> None:
        self.revoked.append(mac)


async def test_returning_device_is_let_out_and_shut_out_on_check_out(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        portal = FakePortal()
        r.gateway.portal = portal  # type: ignore[assignment]
        r.gateway.mac_readers = {"front"}
        d = await r.tap(MAC_TOKEN)
        assert d.outcome is Outcome.OPENED_ONLINE
        await eventually(lambda: len(portal.authorised) == 1)
        mac, until, member = portal.authorised[0]
        assert (mac, member) == (MAC_TOKEN, MARGARET)
        assert until == r.gateway.attendance.until(MARGARET)
        await r.tap(MAC_TOKEN, Direction.OUT)
        await eventually(lambda: portal.revoked == [MAC_TOKEN])


async def test_card_readers_do_not_touch_the_firewall(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        portal = FakePortal()
        r.gateway.portal = portal  # type: ignore[assignment]
        await r.tap(MAC_TOKEN)  # from "front", which is not a MAC reader here
        await r.gateway.decider.aclose()
        assert portal.authorised == []


async def test_portal_sign_in_feeds_the_cache(tmp_path: Path) -> None:
    """Attendance hears of a sign-in from the portal's record backend (the decision);
    the wiring only maps the MAC to the member in the token cache."""
    from gateway.model import CheckIn
    from gateway.portal.wiring import signed_in

    async with rig(tmp_path) as r:
        member = Membership("m-new", "New Member")
        until = datetime.fromisoformat("2099-01-01T00:00:00+00:00")
        check_in = CheckIn(id="c1", valid_from=until, valid_until=until, membership=member)
        await signed_in(r.gateway, "aa:bb:cc:00:00:99", check_in)
        assert r.gateway.cache.lookup("aa:bb:cc:00:00:99") == member


async def test_configured_portal_runs_inside_the_gateway(tmp_path: Path) -> None:
    import asyncio
    import contextlib
    import socket

    import aiohttp

    from gateway.app import Gateway
    from gateway.config import parse_config
    from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
    from tests.harness import RecordingDoor, gateway_config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with run_sim(demo_space()) as base_url:
        raw = gateway_config(tmp_path / "state", base_url)
        raw["portal"] = {
            "space_name": "Test Space",
            "interface": "lo",
            "firewall": False,
            "listen": ["127.0.0.1"],
            "port": port,
        }
        gw = Gateway(
            parse_config(raw, "test"), ADMIN_TOKEN, doors={"front": RecordingDoor()}, readers=[]
        )
        task = asyncio.create_task(gw.run())
        try:
            await asyncio.wait_for(gw.ready.wait(), 5)
            assert gw.portal is not None
            await asyncio.wait_for(gw.portal.wait_started(), 5)
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/", allow_redirects=False) as resp,
            ):
                assert resp.status < 500
                assert "Test Space" in await resp.text()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
