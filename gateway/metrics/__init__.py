"""Prometheus metrics (prometheus-client): counters on the tap path, a scrape-time view
of the gateway's status, and an aiohttp handler serving the text format.

Every name starts with ``checkin_gateway_``; units are base units (seconds, bytes);
no label ever carries a member, a token or a MAC (labels: door, reader, outcome,
source, endpoint template, group, code, state).
"""

from gateway.metrics.instruments import GatewayMetrics
from gateway.metrics.server import metrics_handler, serve_metrics

__all__ = ["GatewayMetrics", "metrics_handler", "serve_metrics"]
