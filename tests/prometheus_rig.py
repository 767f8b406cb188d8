"""A real Prometheus (Debian ``prometheus``) on loopback, started by the test, and the
Grafana dashboard's panel queries as Prometheus gets them.

Prometheus runs with its own config and storage under the test's directory, on a free
loopback port, scraping the given targets every second. Grafana itself is not used (it
is AGPL-licensed and not packaged in Debian): ``dashboard_queries`` fills in Grafana's
template variables the way the dashboard's "All" choice and Grafana's interval
variables would, so each panel's ``expr`` is evaluated by the Prometheus that Grafana
would ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import require
from tests.mqtt_broker import free_port

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"
START_DEADLINE = 30.0  # seconds for Prometheus to say it is ready (a cold TSDB: ~1 s here)

# Grafana's built-in interval variables, as Grafana fills them for a short range at a
# 1 s scrape interval ($__rate_interval: at least four scrape intervals).
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


class QueryError(Exception):
    """Prometheus refused a query (``errorType`` and ``error`` of its answer)."""


@dataclass(frozen=True, slots=True)
class PanelQuery:
    panel: str
    legend: str
    expr: str  # as Prometheus gets it (template variables filled in)
    raw: str  # as written in the dashboard


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows hold their panels


def fill_variables(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` with Grafana's ``$var``, ``${var}``, ``${var:format}`` and ``[[var]]``
    replaced. An unknown variable is a ``KeyError`` naming it (a panel that uses a
    variable the dashboard does not define would be broken in Grafana too)."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in GRAFANA_INTERVALS:
            return GRAFANA_INTERVALS[name]
        return variables[name]

    return _VARIABLE.sub(one, expr)


def dashboard_queries(path: Path = DASHBOARD) -> list[PanelQuery]:
    """Every panel target's query. Template variables take the value Grafana gives them
    when "All" is chosen (a regex matching everything: the panels use ``=~``)."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    variables: dict[str, str] = {}
    for v in dashboard.get("templating", {}).get("list", []):
        variables[v["name"]] = ".*" if v.get("type") == "query" else str(v.get("query", ""))
    out = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                out.append(
                    PanelQuery(
                        panel.get("title", "?"),
                        target.get("legendFormat", ""),
                        fill_variables(target["expr"], variables),
                        target["expr"],
                    )
                )
    return out


@dataclass
class Prometheus:
    dir: Path
    targets: list[str]  # host:port of each /metrics
    interval: float = 1.0
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("prometheus")
        require(binary is not None, "Debian's prometheus is not installed")
        assert binary is not None
        self.port = self.port or free_port()
        conf = self.dir / "prometheus.yml"
        targets = json.dumps(self.targets)
        every = f"{round(self.interval * 1000)}ms"  # Prometheus durations are integers
        conf.write_text(
            "global:\n"
            f"  scrape_interval: {every}\n"
            f"  evaluation_interval: {every}\n"
            "scrape_configs:\n"
            "  - job_name: checkin-gateway\n"
            f"    scrape_timeout: {every}\n"
            f"    static_configs: [{{targets: {targets}}}]\n"
        )
        log = (self.dir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={conf}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.console.templates=/etc/prometheus/consoles",
                "--web.console.libraries=/etc/prometheus/console_libraries",
                # Nothing but this test's loopback targets: no update checks exist to turn
                # off, and the TSDB stays small (minutes of data).
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=log,
        )

    def log(self) -> str:
        return (self.dir / "prometheus.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{self.url}/-/ready") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"prometheus not ready in {START_DEADLINE} s:\n{self.log()[-3000:]}")

    async def query(self, http: aiohttp.ClientSession, expr: str) -> list[dict[str, Any]]:
        """``/api/v1/query``: the instant vector's series (a scalar as one series)."""
        async with http.post(f"{self.url}/api/v1/query", data={"query": expr}) as r:
            body = await r.json()
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    async def wait_scraped(self, http: aiohttp.ClientSession, scrapes: int = 2) -> None:
        """Until every target is up and was scraped ``scrapes`` more times."""
        first = await self._samples(http)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = await self._samples(http)
            if len(now) == len(self.targets) and all(
                now[t] - first.get(t, 0) >= scrapes for t in now
            ):
                return
            await asyncio.sleep(self.interval / 4)
        raise TimeoutError(f"targets not scraped: {await self.query(http, 'up')}")

    async def _samples(self, http: aiohttp.ClientSession) -> dict[str, int]:
        """Scrapes so far per target that was up (``count_over_time(up[1h])``)."""
        got = await self.query(http, "count_over_time(up[1h]) and up == 1")
        return {s["metric"]["instance"]: int(float(s["value"][1])) for s in got}


@contextlib.contextmanager
def prometheus(dir: Path, targets: list[str], *, interval: float = 1.0) -> Iterator[Prometheus]:
    dir.mkdir(parents=True, exist_ok=True)
    prom = Prometheus(dir, targets, interval)
    prom.start()
    try:
        yield prom
    finally:
        prom.stop()
