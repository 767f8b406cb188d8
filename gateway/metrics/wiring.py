"""The gateway's metrics, wired: built and served only with ``[metrics]`` or ``[admin]``.

``gateway/app.py`` imports this module lazily, so a gateway without either section never
imports prometheus-client (idle RSS and start time, see the README's benchmarks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.config.model import Config
from gateway.metrics.instruments import GatewayMetrics
from gateway.metrics.server import Handler, integration_parts, metrics_handler
from gateway.runner import Part

if TYPE_CHECKING:
    from gateway.app import Gateway


def build_metrics(cfg: Config) -> GatewayMetrics:
    """The instruments (the gateway builds them only when something serves them)."""
    return GatewayMetrics({r.name: r.door for r in cfg.readers}, version=__version__)


def parts_of(gateway: Gateway) -> list[Part]:
    """``/metrics`` on ``[metrics]``' own listener (a scrape set up for that port must
    work whether or not the admin page is on), and the MQTT bridge."""
    handler = handler_of(gateway) if gateway.metrics is not None else None
    return integration_parts(gateway.cfg, handler, gateway.mqtt)


def handler_of(gateway: Gateway) -> Handler:
    """The aiohttp handler for ``/metrics``: the counters, plus a scrape-time view of the
    gateway's status and queue (nothing before the gateway is ready)."""
    assert gateway.metrics is not None, "metrics are counted with [metrics] or [admin]"

    async def snapshot() -> tuple[dict[str, Any], dict[str, object]] | None:
        if not gateway.ready.is_set():
            return None
        return gateway.status(), await gateway.outbox.stats()

    return metrics_handler(gateway.metrics, snapshot)
