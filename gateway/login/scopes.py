"""The OAuth scopes the configured features need: what ``login`` asks Cobot for.

Each Cobot endpoint the gateway calls needs one scope (the API pages say which, per
endpoint); a feature needs the scopes of the endpoints it calls. ``required_scopes`` is
the one place ``login`` asks; when the endpoint -> scope table lands in gateway/cobot/
(doctor's source too), ``ENDPOINT_SCOPES`` here is replaced by an import of it.
"""

from __future__ import annotations

from gateway.config.model import Config

# (method, path template) -> scope; the templates as in the API pages.
ENDPOINT_SCOPES: dict[tuple[str, str], str] = {
    ("POST", "/api/check_ins"): "checkin",
    ("GET", "/api/check_in"): "checkin",
    ("DELETE", "/api/memberships/:id/check_ins/current"): "checkin",
    ("GET", "/api/memberships/:id/check_ins"): "read_check_ins",
    ("POST", "/api/memberships/:id/work_sessions"): "write",
    ("GET", "/api/check_in_tokens"): "checkin_tokens",
    ("GET", "/api/check_in_tokens/:token"): "checkin_tokens",
    ("POST", "/api/check_in_tokens"): "checkin_tokens",
}


def endpoints(cfg: Config) -> list[tuple[str, str]]:
    """The endpoints the configured gateway calls."""
    used = [
        ("POST", "/api/check_ins"),  # every check-in, and the preview behind the door
        ("GET", "/api/check_in"),  # check-in status: "already checked in?"
        ("GET", "/api/check_in_tokens"),  # the token list behind the offline cache
        # Before resending a check-in whose answer was lost, the drainer looks at the
        # member's check-ins: exactly once depends on it.
        ("GET", "/api/memberships/:id/check_ins"),
    ]
    if cfg.queue.replay_with_valid_from:
        used.append(("POST", "/api/memberships/:id/work_sessions"))  # back-dated replays
    if any(r.direction.value == "out" for r in cfg.readers) or any(
        getattr(r, "checkout_on_departure", False) for r in cfg.readers
    ):
        used.append(("DELETE", "/api/memberships/:id/check_ins/current"))
    if cfg.portal is not None and cfg.portal.enabled:
        used.append(("POST", "/api/check_in_tokens"))  # a signed-in device's MAC
    return used


def required_scopes(cfg: Config) -> tuple[str, ...]:
    """Sorted, without repeats: e.g. ``("checkin", "checkin_tokens", "read_check_ins",
    "write")`` for the example config."""
    return tuple(sorted({ENDPOINT_SCOPES[e] for e in endpoints(cfg)}))
