"""The Grafana dashboard (docs/grafana-dashboard.json) against a real Prometheus: a real
daemon with two readers on ptys and the simulated Cobot, scraped every second by
Debian's ``prometheus`` on loopback; every panel query must parse and, after the taps,
return series (a panel naming a metric the gateway does not export comes back empty).
Then Prometheus's own graph page with the key queries, in real headless Chromium.

Set DASHBOARD_SCREENSHOT=FILE to keep the browser's screenshot (the README's picture
is made by ``python -m bench.dashboard_shot``, the same parts with a longer run)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import aiohttp
import pytest

from gateway.sim.seed import ADA, NFC_TOKEN, PASS_TOKEN, RDM_TOKEN
from tests.conftest import require
from tests.dashboard_rig import arrival, dashboard_gateway
from tests.prometheus_graph import CHROMIUM, KEY_PANELS, graph_url, key_queries, screenshot
from tests.prometheus_rig import QueryError, dashboard_queries, prometheus

pytestmark = pytest.mark.real


def test_the_dashboard_is_read_whole() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 17, [q.panel for q in queries]
    for q in queries:
        assert "$" not in q.expr, q  # every Grafana variable filled in
        assert "checkin_gateway_" in q.expr, q
    assert {q.panel for q in key_queries()} == set(KEY_PANELS)


async def test_every_dashboard_query_returns_series_in_prometheus(tmp_path: Path) -> None:
    queries = dashboard_queries()
    async with (
        dashboard_gateway(tmp_path) as gw,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        with prometheus(tmp_path / "prometheus", [gw.target]) as prom:
            await prom.wait_ready(http)
            await prom.wait_scraped(http)
            for n in range(4):  # taps between scrapes: the rates are not zero
                await gw.tap_round(n)
            await prom.wait_scraped(http)

            empty, failed = [], []
            results = {}
            for q in queries:
                try:
                    results[q.expr] = series = await prom.query(http, q.expr)
                except QueryError as exc:
                    failed.append(f"{q.panel}: {q.expr}: {exc}")
                    continue
                if not series:
                    empty.append(f"{q.panel}: {q.expr}")
            assert not failed, failed
            assert not empty, empty

            def labels(expr_part: str, label: str) -> set[str]:
                q = next(q for q in queries if expr_part in q.expr)
                return {s["metric"].get(label, "") for s in results[q.expr]}

            def positive(expr_part: str) -> dict[str, float]:
                q = next(q for q in queries if expr_part in q.expr)
                return {
                    ",".join(s["metric"].values()): float(s["value"][1])
                    for s in results[q.expr]
                    if float(s["value"][1]) > 0
                }

            # What the taps did is what the panels show.
            opened = positive('outcome=~"opened-.*"')
            assert set(opened) == {"front", "room-1"}, opened
            assert {"online", "cache"} <= labels("sum by (source)", "source")
            outcomes = labels("sum by (outcome)", "outcome")
            assert {"opened-online", "refused", "opened-booking", "no-booking"} <= outcomes
            q = next(q for q in queries if "reader_frames_total" in q.expr)
            frames = {
                (s["metric"]["reader"], s["metric"]["outcome"])
                for s in results[q.expr]
                if float(s["value"][1]) > 0
            }
            front = {o for r, o in frames if r == "front"}
            room = {o for r, o in frames if r == "room-1"}
            assert front == {"ok", "bad_checksum", "ghost", "phantom"}, frames
            assert room == {"ok", "garbage"}, frames  # a text line has no checksum
            assert labels("checkin_gateway_build_info", "version") != {""}
            assert labels("bookings_snapshot_age_seconds", "door") == {"room-1"}
            assert labels("api_requests_total", "code") >= {"200"}

            # No label anywhere carries a card number, a member or a MAC.
            everything = json.dumps(await prom.query(http, '{__name__=~"checkin_gateway_.*"}'))
            for secret in (RDM_TOKEN, NFC_TOKEN, PASS_TOKEN, arrival(0), "0BADC0DE", ADA, "Ada"):
                assert secret not in everything, secret
            assert not re.search(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", everything, re.I)

            # The Grafana variable's own query (label_values(build_info, instance)).
            async with http.get(
                f"{prom.url}/api/v1/label/instance/values",
                params={"match[]": "checkin_gateway_build_info"},
            ) as r:
                assert (await r.json())["data"] == [gw.target]

            # The check can fail: an unexported name is empty, a typo does not parse.
            assert await prom.query(http, "checkin_gateway_no_such_metric_total") == []
            with pytest.raises(QueryError, match="parse"):
                await prom.query(http, "sum by (door (checkin_gateway_decisions_total)")

            # Prometheus's own graph page draws the key queries in Chromium.
            require(Path(CHROMIUM).exists(), "Debian's chromium is not installed")
            shot = tmp_path / "prometheus-dashboard.png"
            keys = key_queries()
            problems = await screenshot(graph_url(prom.url, keys), shot, keys)
            assert not problems, problems
            assert shot.stat().st_size > 20_000
            keep = os.environ.get("DASHBOARD_SCREENSHOT")
            if keep:
                shutil.copy(shot, keep)
