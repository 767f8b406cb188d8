"""What the gateway's state looks like to Prometheus, read at scrape time.

``StatusCollector`` turns one snapshot (``Gateway.status()`` plus the outbox's
``stats()``, taken by the scrape handler just before) into metric families. Nothing
here runs on the tap path; a scrape costs one SQLite query (the outbox's counts).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.metrics.frames import frame_outcomes

PREFIX = "checkin_gateway"
READER_STATES = ("connecting", "ready", "reconnecting", "failed", "stopped")
BREAKER_STATES = ("closed", "open")


class StatusCollector(Collector):
    """Yields the scrape-time families from the last ``update``d snapshot."""

    def __init__(self) -> None:
        self._status: Mapping[str, Any] = {}
        self._outbox: Mapping[str, Any] = {}

    def update(self, status: Mapping[str, Any], outbox: Mapping[str, Any]) -> None:
        self._status, self._outbox = status, outbox

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on the config; no fixed description

    def collect(self) -> Iterator[Metric]:
        st, ob = self._status, self._outbox
        if not st:
            return
        readers: Mapping[str, Any] = st.get("readers", {})
        state = GaugeMetricFamily(
            f"{PREFIX}_reader_state",
            "1 for the state each reader is in (connecting, ready, reconnecting, failed).",
            labels=("reader", "state"),
        )
        frames = _counter_family(
            f"{PREFIX}_reader_frames",
            "Frames a reader received, by outcome (ok, bad_checksum, garbage, ghost, phantom).",
            ("reader", "outcome"),
        )
        garbage = _counter_family(
            f"{PREFIX}_reader_garbage_bytes",
            "Bytes a serial reader received outside any well-formed frame.",
            ("reader",),
        )
        taps = _counter_family(
            f"{PREFIX}_reader_taps", "Taps a reader produced (after debouncing).", ("reader",)
        )
        for name, r in readers.items():
            for s in READER_STATES:
                state.add_metric([name, s], 1.0 if r.get("state") == s else 0.0)
            stats: Mapping[str, Any] = r.get("stats") or {}
            for outcome, count in frame_outcomes(stats).items():
                frames.add_metric([name, outcome], float(count))
            if isinstance(stats.get("garbage_bytes"), int):
                garbage.add_metric([name], float(stats["garbage_bytes"]))
            if isinstance(stats.get("taps"), int):
                taps.add_metric([name], float(stats["taps"]))
        yield from (state, frames, garbage, taps)

        limits = st.get("rate_limits", [])
        free = GaugeMetricFamily(
            f"{PREFIX}_rate_limit_slots_free",
            "Requests a rate-limit group may still send in the current window.",
            labels=("group",),
        )
        blocked = GaugeMetricFamily(
            f"{PREFIX}_rate_limit_retry_after_seconds",
            "Seconds left of a Retry-After in force (ours or, with MQTT, a fleet peer's).",
            labels=("group",),
        )
        limit = GaugeMetricFamily(
            f"{PREFIX}_rate_limit_per_minute",
            "The configured requests per minute of a rate-limit group.",
            labels=("group",),
        )
        for g in limits:
            free.add_metric([g["group"]], float(max(0, g["limit"] - g["used"])))
            blocked.add_metric([g["group"]], float(g["blocked_for_s"]))
            limit.add_metric([g["group"]], float(g["limit"]))
        yield from (free, blocked, limit)

        yield _gauge(f"{PREFIX}_outbox_pending", "Records waiting for delivery.", ob.get("depth"))
        yield _gauge(
            f"{PREFIX}_outbox_failed",
            "Records the API refused for good (an operator's retry or drop needed).",
            ob.get("failed"),
        )
        yield _gauge(
            f"{PREFIX}_outbox_oldest_age_seconds",
            "Age of the oldest record waiting for delivery (0: none waiting).",
            ob.get("oldest_age_s") or 0.0,
        )
        last_sync = st.get("last_token_sync")
        yield _gauge(
            f"{PREFIX}_token_cache_age_seconds",
            "Seconds since the token list was last synchronised (-1: never since start).",
            -1.0 if last_sync is None else max(0.0, time.time() - last_sync),
        )
        yield _gauge(f"{PREFIX}_tokens", "Tokens in the cache.", st.get("tokens"))
        yield _gauge(f"{PREFIX}_checked_in", "Members checked in today.", st.get("checked_in"))
        rooms = GaugeMetricFamily(
            f"{PREFIX}_bookings_snapshot_age_seconds",
            "Age of each booking door's snapshot of its room's bookings (-1: none yet).",
            labels=("door",),
        )
        for door, room in (st.get("rooms") or {}).items():
            age = room.get("snapshot_age_s")
            rooms.add_metric([door], -1.0 if age is None else float(age))
        yield rooms
        api = st.get("api", {})
        breaker = GaugeMetricFamily(
            f"{PREFIX}_api_breaker_state",
            "1 for the Cobot API circuit breaker's state (open: deciding locally).",
            labels=("state",),
        )
        for s in BREAKER_STATES:
            breaker.add_metric([s], 1.0 if api.get("breaker") == s else 0.0)
        yield breaker
        yield _gauge(
            f"{PREFIX}_api_auth_failed",
            "1 while Cobot refuses the gateway's access token.",
            1 if api.get("auth_failed") else 0,
        )
        yield _gauge(
            f"{PREFIX}_clock_synchronized",
            "1 once the wall clock is synchronised (NTP or the API's Date).",
            1 if st.get("clock_synchronized") else 0,
        )
        yield _gauge(
            f"{PREFIX}_state_durable",
            "0 while the state directory is unusable and the gateway runs from memory "
            "(check-ins queued offline are lost if it stops).",
            0 if st.get("state_problem") else 1,
        )
        yield _gauge(
            f"{PREFIX}_records_in_memory",
            "Records the database has not taken yet (busy or full): lost if it stops now.",
            st.get("unsaved_records", 0),
        )
        dropped = _counter_family(
            f"{PREFIX}_taps_dropped", "Taps dropped because a decision queue was full.", ()
        )
        dropped.add_metric([], float(st.get("dropped_taps", 0)))
        yield dropped
        parts = GaugeMetricFamily(
            f"{PREFIX}_part_up", "1 while a supervised part of the daemon runs.", labels=("part",)
        )
        restarts = _counter_family(
            f"{PREFIX}_part_restarts", "Restarts of a supervised part after a crash.", ("part",)
        )
        for name, p in (st.get("parts") or {}).items():
            parts.add_metric([name], 1.0 if p.get("running") else 0.0)
            restarts.add_metric([name], float(p.get("restarts", 0)))
        yield from (parts, restarts)


def _gauge(name: str, documentation: str, value: object) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        name, documentation, value=float(value) if isinstance(value, int | float) else 0.0
    )


def _counter_family(name: str, documentation: str, labels: tuple[str, ...]) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, labels=labels)
