"""Serving ``/metrics``: an aiohttp handler any app can mount, and a listener of its own.

The admin app mounts the handler on its own listener
(``app.router.add_get("/metrics", metrics_handler(gateway_metrics, snapshot))``);
without it ``[metrics] listen/port`` runs ``serve_metrics`` as a supervised part.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from gateway.errors import GatewayError
from gateway.metrics.instruments import GatewayMetrics
from gateway.runner import Part

if TYPE_CHECKING:
    from gateway.config.model import Config
    from gateway.mqtt.bridge import MqttBridge

log = structlog.get_logger(__name__)

Snapshot = Callable[[], Awaitable[tuple[Mapping[str, Any], Mapping[str, Any]] | None]]
"""Returns ``(Gateway.status(), await outbox.stats())``, or None before the gateway is
ready (the scrape then gets 503)."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SNAPSHOT_DEADLINE = 5.0  # seconds for the snapshot (a locked database must not hang a scrape)


def metrics_handler(metrics: GatewayMetrics, snapshot: Snapshot) -> Handler:
    """An aiohttp GET handler for the Prometheus text format (version 0.0.4)."""
    view = metrics.view

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            async with asyncio.timeout(SNAPSHOT_DEADLINE):
                taken = await snapshot()
        except TimeoutError:
            taken = None
            log.warning("metrics_snapshot_timeout", deadline_s=SNAPSHOT_DEADLINE)
        if taken is None:
            raise web.HTTPServiceUnavailable(text="gateway not ready\n")
        view.update(*taken)
        # The classic text format (names are plain ASCII): what every Prometheus since 2.0
        # and every agent (Telegraf, VictoriaMetrics, Grafana Alloy) parses.
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    return handle


async def serve_metrics(handler: Handler, listen: tuple[str, ...], port: int) -> None:
    """Serve ``handler`` on ``/metrics`` until cancelled. A port in use or an address we
    cannot bind is a ``GatewayError`` (the runner shows it; the doors keep running)."""
    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        for host in listen:
            site = web.TCPSite(runner, host, port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                raise GatewayError(
                    f"metrics: cannot listen on {host}:{port}: {exc.strerror}"
                    " (another program on that port? set [metrics] port)"
                ) from exc
        log.info("metrics_listening", listen=list(listen), port=port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def integration_parts(cfg: Config, handler: Handler | None, mqtt: MqttBridge | None) -> list[Part]:
    """The supervised parts of the integrations: ``/metrics`` on its own listener when
    ``[metrics]`` is on (the admin page's listener serves it too, with ``[admin]``), and
    the MQTT bridge when ``[mqtt]`` is configured."""
    parts = []
    m = cfg.metrics
    if m is not None and m.enabled and handler is not None:
        parts.append(Part("metrics", lambda: serve_metrics(handler, m.listen, m.port)))
    if mqtt is not None:
        parts.append(Part("mqtt", mqtt.run))
    return parts
