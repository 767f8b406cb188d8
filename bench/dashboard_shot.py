"""The README's picture of the Grafana dashboard's queries, in Prometheus's own graph page.

Grafana itself is not available here (AGPL, not packaged in Debian), so this shows the
dashboard's key panel queries (docs/grafana-dashboard.json, exactly as written, with
"All" gateways) evaluated and drawn by a real Prometheus (Debian ``prometheus``) that
scrapes a real daemon, in real headless Chromium. The gateway runs against the
simulated Cobot with two readers on ptys: a few minutes of taps, an outage of Cobot in
the middle (doors decide offline, check-ins queue, then drain).

    python -m bench.dashboard_shot                 # writes docs/prometheus-dashboard.png
    python -m bench.dashboard_shot --minutes 1 --out /tmp/shot.png

Not a benchmark (``make bench`` runs only ``bench_*.py``); it lives here because it
drives the same test parts the benchmarks do. Each graph is headed with the dashboard
panel it comes from (the only thing added to Prometheus's page).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.dashboard_rig import dashboard_gateway
from tests.prometheus_graph import graph_url, key_queries, screenshot
from tests.prometheus_rig import prometheus

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "prometheus-dashboard.png"


async def run(out: Path, minutes: float) -> list[str]:
    total = minutes * 60
    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as tmp:
        tmp_path = Path(tmp)
        async with (
            dashboard_gateway(tmp_path) as gw,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        ):
            with prometheus(tmp_path / "prometheus", [gw.target]) as prom:
                await prom.wait_ready(http)
                await prom.wait_scraped(http)
                started = time.monotonic()
                n = 0
                outage = False
                while (elapsed := time.monotonic() - started) < total:
                    # Cobot fails from 40 % to 60 % of the run.
                    want = 0.4 * total <= elapsed < 0.6 * total
                    if want != outage:
                        gw.outage(want)
                        outage = want
                        print(f"{elapsed:5.0f} s: Cobot {'down' if want else 'back'}", flush=True)
                    await gw.tap_round(n)
                    n += 1
                    await asyncio.sleep(1.0)
                gw.outage(False)
                await prom.wait_scraped(http, 3)
                keys = key_queries()
                range_input = f"{max(1, round(minutes + 0.5))}m"
                problems = await screenshot(graph_url(prom.url, keys, range_input), out, keys)
                print(f"{n} rounds of taps; screenshot: {out}", flush=True)
                return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--minutes", type=float, default=3.0, help="traffic before the picture")
    args = parser.parse_args(argv)
    problems = asyncio.run(run(args.out, args.minutes))
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
