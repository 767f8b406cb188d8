"""The running gateway's status, as ``checkin-gateway status`` asks it over the socket:
readers and their counters, the API, the clock, the queue, rate limits, the parts."""

from __future__ import annotations

import dataclasses
import enum
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.readers.base import Reader


def gateway_status(gw: Gateway) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "time": time.time(),
        "readers": {r.name: _reader(gw, r) for r in gw.readers},
        "api": {
            "breaker": gw.breaker.state.value,
            "last_error": gw.breaker.last_error,
            "auth_failed": gw.client.auth_failed,
        },
        "clock_synchronized": gw.clock.synchronized(),
        "tokens": len(gw.cache),
        "checked_in": len(gw.attendance),
        "last_token_sync": gw.sync.last_success,
        "queue_depth": gw.outbox.depth,
        "storage_error": gw.decider.storage_error,
        "state_problem": gw.state_problem,
        "unsaved_records": gw.records.unsaved,
        "dropped_taps": gw.dropped_taps,
        "moco": gw.moco.status() if gw.moco is not None else None,
        "rooms": gw.door_rules.status(),
        "mqtt": None if gw.mqtt is None else gw.mqtt.status(),
        "parts": {
            name: {
                "running": s.running,
                "restarts": s.restarts,
                "error": s.stopped_because or s.last_error,
            }
            for name, s in gw.runner.states.items()
        },
        "rate_limits": [
            {
                "group": g.group.value,
                "used": g.used,
                "limit": g.limit,
                "blocked_for_s": round(g.blocked_for, 1),
                "waiting": g.waiting,
            }
            for g in gw.limiter.state()
        ],
    }


def _reader(gw: Gateway, reader: Reader) -> dict[str, Any]:
    part = gw.runner.states.get(f"reader-{reader.name}")
    error = None
    if part is not None:
        error = part.stopped_because or part.last_error
    out: dict[str, Any] = {"state": reader.state.value, "error": error}
    stats = getattr(reader, "stats", None)  # readers with counters (serial, nfc, mac)
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        out["stats"] = {
            k: str(v) if isinstance(v, enum.Enum) else v
            for k, v in dataclasses.asdict(stats).items()
        }
    return out
