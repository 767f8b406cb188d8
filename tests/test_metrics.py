"""``/metrics``: a real gateway against the simulated Cobot over real HTTP, scraped on its
own ``[metrics]`` listener and parsed with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tty
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.model import Direction
from gateway.readers.base import make_tap
from gateway.readers.serial.frames import encode_rdm6300
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.seed import ADA, NFC_TOKEN, RDM_TOKEN
from tests.harness import RecordingDoor
from tests.mqtt_broker import free_port

pytestmark = pytest.mark.real
PREFIX = "checkin_gateway_"


@contextlib.asynccontextmanager
async def metrics_gateway(
    tmp_path: Path, port: int, **extra: Any
) -> AsyncIterator[tuple[Gateway, RecordingDoor, Any]]:
    space = demo_space()
    async with run_sim(space) as base_url:
        raw = {
            "gateway": {"state_dir": str(tmp_path / "state")},
            "cobot": {"base_url": base_url},
            "doors": [{"name": "front", "type": "command", "command": ["true"]}],
            "metrics": {"listen": ["127.0.0.1"], "port": port},
            **extra,
        }
        cfg = parse_config(raw, "test")
        door = RecordingDoor()
        readers = None if "readers" in extra else []
        gw = Gateway(cfg, ADMIN_TOKEN, doors={"front": door}, readers=readers)
        task = asyncio.create_task(gw.run())
        await asyncio.wait_for(gw.ready.wait(), 5)
        await gw.sync.sync_once()
        try:
            yield gw, door, space
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def scrape(port: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        for _ in range(100):  # the listener part starts with the gateway
            try:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                    text = await resp.text()
                    break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("no /metrics listener")
    return {"text": text, "families": {f.name: f for f in text_string_to_metric_families(text)}}


def sample(families: dict[str, Any], name: str, **labels: str) -> float:
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise KeyError(f"{name} {labels}")


async def test_metrics_count_decisions_api_and_state(tmp_path: Path) -> None:
    port = free_port()
    master, slave = os.openpty()
    tty.setraw(master)
    serial = {"name": "desk", "type": "serial", "port": os.ttyname(slave), "door": "front"}
    try:
        async with metrics_gateway(tmp_path, port, readers=[serial]) as (gw, door, _space):
            await _frames(gw, master)
            fams = (await scrape(port))["families"]
            assert sample(fams, f"{PREFIX}reader_state", reader="desk", state="ready") == 1
            assert sample(fams, f"{PREFIX}reader_state", reader="desk", state="failed") == 0
            assert sample(fams, f"{PREFIX}reader_frames_total", reader="desk", outcome="ok") == 2
            assert (
                sample(fams, f"{PREFIX}reader_frames_total", reader="desk", outcome="bad_checksum")
                == 1
            )
            assert sample(fams, f"{PREFIX}reader_garbage_bytes_total", reader="desk") >= 7
            assert (
                sample(
                    fams,
                    f"{PREFIX}decisions_total",
                    door="front",
                    outcome="opened-online",
                    source="online",
                )
                == 1
            )
            await _counted(gw, door, port)
    finally:
        os.close(master)
        os.close(slave)


async def _frames(gw: Gateway, master: int) -> None:
    """Two good frames of one card (a confirmed read: one tap), one with a bad
    checksum, and line noise, through a real pty."""
    async with asyncio.timeout(5):
        while gw.readers[0].state.value != "ready":
            await asyncio.sleep(0.02)
    good = encode_rdm6300(bytes.fromhex(RDM_TOKEN))
    bad = good[:-3] + (b"00" if good[-3:-1] != b"00" else b"11") + good[-1:]
    os.write(master, b"garbage" + bad + good + good)
    async with asyncio.timeout(5):
        while len(gw.attendance) == 0:  # the tap was decided online and recorded
            await asyncio.sleep(0.02)


async def _counted(gw: Gateway, door: RecordingDoor, port: int) -> None:
    tap = make_tap("front", NFC_TOKEN, Direction.IN, gw.clock)
    decision = await gw.decider.decide(tap, door)
    assert decision.opened
    unknown = make_tap("front", "FFFFFFFFFF", Direction.IN, gw.clock)
    await gw.decider.decide(unknown, door)
    got = await scrape(port)
    fams, text = got["families"], got["text"]

    # One prefix, counters end in _total, durations in seconds.
    for name in fams:
        assert name.startswith(PREFIX), name
    assert (
        sample(
            fams, f"{PREFIX}decisions_total", door="none", outcome="opened-online", source="online"
        )
        == 1
    )
    assert (
        sample(fams, f"{PREFIX}decisions_total", door="none", outcome="refused", source="online")
        == 1
    )
    assert sample(fams, f"{PREFIX}decision_latency_seconds_count", door="none") == 2
    assert fams[f"{PREFIX}decision_latency_seconds"].type == "histogram"
    assert (
        sample(
            fams,
            f"{PREFIX}api_requests_total",
            endpoint="/api/check_ins",
            group="check_ins",
            code="200",
        )
        >= 1
    )
    assert sample(fams, f"{PREFIX}api_request_duration_seconds_count", group="check_ins") >= 1
    assert sample(fams, f"{PREFIX}rate_limit_slots_free", group="check_ins") <= 120
    assert sample(fams, f"{PREFIX}rate_limit_retry_after_seconds", group="check_ins") == 0
    assert sample(fams, f"{PREFIX}outbox_pending") >= 0
    assert sample(fams, f"{PREFIX}outbox_failed") == 0
    assert sample(fams, f"{PREFIX}outbox_oldest_age_seconds") >= 0
    assert 0 <= sample(fams, f"{PREFIX}token_cache_age_seconds") < 60
    assert sample(fams, f"{PREFIX}api_breaker_state", state="closed") == 1
    assert sample(fams, f"{PREFIX}clock_synchronized") in (0, 1)
    assert sample(fams, f"{PREFIX}build_info", version="0.1.0") == 1
    assert sample(fams, f"{PREFIX}part_up", part="metrics") == 1
    # The Grafana dashboard asks only for series the gateway exports.
    dashboard = json.loads(
        (Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text()
    )
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    wanted = {m for e in exprs for m in re.findall(r"\b(checkin_gateway_\w+)", e)}
    exported = {s.name for f in fams.values() for s in f.samples}
    exported |= {"checkin_gateway_bookings_snapshot_age_seconds"}  # no booking door in this config
    assert wanted and wanted <= exported, wanted - exported
    # No label carries a member, a token or a MAC.
    for secret in (RDM_TOKEN, "FFFFFFFFFF", ADA, "Ada", ADMIN_TOKEN):
        assert secret not in text
    assert not re.search(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", text, re.I)


async def test_decisions_are_counted_by_the_readers_door(tmp_path: Path) -> None:
    port = free_port()
    async with metrics_gateway(tmp_path, port) as (gw, door, _space):
        gw.metrics.set_doors({"front": "front"})
        await gw.decider.decide(make_tap("front", RDM_TOKEN, Direction.IN, gw.clock), door)
        await gw.decider.decide(make_tap("front", RDM_TOKEN, Direction.IN, gw.clock), door)
        fams = (await scrape(port))["families"]
    assert (
        sample(
            fams, f"{PREFIX}decisions_total", door="front", outcome="opened-online", source="online"
        )
        == 1
    )
    assert (
        sample(
            fams, f"{PREFIX}decisions_total", door="front", outcome="opened-cached", source="cache"
        )
        == 1
    )


async def test_a_429_shows_as_retry_after_in_force(tmp_path: Path) -> None:
    port = free_port()
    async with metrics_gateway(tmp_path, port) as (gw, _door, _space):
        from gateway.cobot.ratelimit import Group

        gw.limiter.block(Group.CHECK_INS, 30)
        fams = (await scrape(port))["families"]
    assert 29 < sample(fams, f"{PREFIX}rate_limit_retry_after_seconds", group="check_ins") <= 30


async def test_a_taken_port_stops_only_the_metrics_part(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with metrics_gateway(tmp_path, port) as (gw, door, _space):
            async with asyncio.timeout(5):
                while gw.runner.states["metrics"].stopped_because is None:
                    await asyncio.sleep(0.02)
            assert "cannot listen on 127.0.0.1" in (
                gw.runner.states["metrics"].stopped_because or ""
            )
            decision = await gw.decider.decide(
                make_tap("front", RDM_TOKEN, Direction.IN, gw.clock), door
            )
            assert decision.opened


async def test_handler_mounts_on_another_app(tmp_path: Path) -> None:
    """The admin app mounts ``Gateway.metrics_handler()`` on its own listener."""
    from aiohttp import web

    async with metrics_gateway(tmp_path, free_port()) as (gw, _door, _space):
        app = web.Application()
        app.router.add_get("/metrics", gw.metrics_handler())
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            fams = (await scrape(port))["families"]
        finally:
            await runner.cleanup()
    assert f"{PREFIX}decisions" in fams


async def test_metrics_port_is_served_with_the_admin_page_on_too(tmp_path: Path) -> None:
    """Found by a first-time user: with ``[admin]`` on, ``[metrics] port`` was silently
    not served, and a Prometheus scrape set up from the README failed."""
    from tests.admin_support import admin_rig, free_port

    port = free_port()
    metrics = {"metrics": {"listen": ["127.0.0.1"], "port": port}}
    async with admin_rig(tmp_path, tables=metrics) as r:
        async with asyncio.timeout(5):
            while not r.gateway.runner.states["metrics"].running:
                await asyncio.sleep(0.02)
        own = await scrape(port)
        assert "checkin_gateway_decisions" in own["families"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{r.url}/metrics") as resp,
        ):
            assert resp.status == 200
            assert "checkin_gateway_build_info" in await resp.text()
