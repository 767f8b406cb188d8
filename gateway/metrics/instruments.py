"""The metrics the gateway counts as things happen: decisions and API requests.

Both hooks run on the event loop in the tap path, so they do as little as possible: a
dict lookup for the labelled child (``labels()`` parses its arguments each call) and an
``inc``/``observe``. Everything that can be read from the gateway's state at scrape time
(readers, queue, limits, breaker, clock) is not counted here but read by
``gateway.metrics.view`` when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, Info

from gateway.decide import Decision
from gateway.metrics.view import PREFIX, StatusCollector
from gateway.model import Outcome

# Seconds, from a tap read to the door commanded (or the refusal known). The API's
# preview dominates online; the deadline (decision_deadline, 1.5 s default) bounds it.
DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0)
API_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Where a decision's answer came from: Cobot's preview (online), what the gateway knew
# already (cache: still checked in today, any-member doors, booking snapshots), or the
# local fallback while the API was unreachable (offline).
_SOURCE: dict[Outcome, str] = {
    Outcome.OPENED_ONLINE: "online",
    Outcome.REFUSED: "online",
    Outcome.OPENED_WALK_UP: "online",
    Outcome.WALK_UP_ENDED: "online",
    Outcome.CHECKED_OUT: "online",
    Outcome.OPENED_CACHED: "cache",
    Outcome.OPENED_MEMBER: "cache",
    Outcome.UNKNOWN_TOKEN: "cache",
    Outcome.OPENED_BOOKING: "cache",
    Outcome.NO_BOOKING: "cache",
    Outcome.OPENED_OFFLINE: "offline",
    Outcome.DENIED_OFFLINE: "offline",
    Outcome.CHECK_OUT_QUEUED: "offline",
}
NO_DOOR = "none"  # a tap with no door (the portal's sign-in, a presence-only reader)


def decision_source(decision: Decision) -> str:
    """``online``, ``cache`` or ``offline``; a failed door says where its yes came from."""
    source = _SOURCE.get(decision.outcome)
    if source is not None:
        return source
    return "online" if decision.preview_ms is not None else "cache"


class GatewayMetrics:
    """One registry per gateway (tests run several in a process).

    ``reader_doors`` maps a reader's name to its door's (None: no door). ``decision``
    is a ``DecisionHook``; ``api`` is the Cobot client's ``observe`` callback.
    """

    def __init__(
        self,
        reader_doors: Mapping[str, str | None],
        *,
        version: str,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._reader_doors = dict(reader_doors)
        r = self.registry
        self._decisions = Counter(
            f"{PREFIX}_decisions",
            "Door decisions, by door, outcome and where the answer came from.",
            ("door", "outcome", "source"),
            registry=r,
        )
        self._latency = Histogram(
            f"{PREFIX}_decision_latency_seconds",
            "Tap read to door commanded (or refusal known), by door.",
            ("door",),
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self._requests = Counter(
            f"{PREFIX}_api_requests",
            "Cobot API requests by endpoint (path template), rate-limit group and HTTP "
            "status ('error': no answer).",
            ("endpoint", "group", "code"),
            registry=r,
        )
        self._api_latency = Histogram(
            f"{PREFIX}_api_request_duration_seconds",
            "Cobot API request time (sent to answer read), by rate-limit group.",
            ("group",),
            buckets=API_BUCKETS,
            registry=r,
        )
        info = Info(f"{PREFIX}_build", "The gateway's version.", registry=r)
        info.info({"version": version})
        self.view = StatusCollector()
        r.register(self.view)
        self._decision_children: dict[tuple[str, Outcome], tuple[Counter, Histogram]] = {}
        self._api_children: dict[tuple[str, str, str], Counter] = {}

    def set_doors(self, reader_doors: Mapping[str, str | None]) -> None:
        self._reader_doors = dict(reader_doors)
        self._decision_children.clear()

    def door_of(self, reader: str) -> str:
        return self._reader_doors.get(reader) or NO_DOOR

    def decision(self, decision: Decision) -> None:
        """A ``DecisionHook``: count it and its latency (a few microseconds)."""
        key = (decision.tap.reader, decision.outcome)
        children = self._decision_children.get(key)
        if children is None:
            door = self.door_of(decision.tap.reader)
            children = (
                self._decisions.labels(door, decision.outcome.value, decision_source(decision)),
                self._latency.labels(door),
            )
            if decision.outcome is not Outcome.DOOR_FAILED:  # its source varies per tap
                self._decision_children[key] = children
        counter, histogram = children
        counter.inc()
        histogram.observe(decision.latency_ms / 1000)

    def api(self, endpoint: str, group: str, code: str, seconds: float) -> None:
        """One API request ended: its path template (never the filled-in path, which
        may hold a token), its rate-limit group, the HTTP status or 'error'."""
        key = (endpoint, group, code)
        child = self._api_children.get(key)
        if child is None:
            child = self._api_children[key] = self._requests.labels(endpoint, group, code)
        child.inc()
        self._api_latency.labels(group).observe(seconds)
