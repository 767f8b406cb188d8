"""Config sections of the integrations: ``[metrics]``, ``[mqtt]`` and ``[admin]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.config.fields import _bounds


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSection:
    """``[metrics]``: Prometheus ``/metrics`` on a listener of its own (gateway/metrics)."""

    enabled: bool = True
    listen: tuple[str, ...] = ("127.0.0.1",)
    port: int = field(default=9877, metadata=_bounds(1, 65535))


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSection:
    """``[mqtt]``: events, states and Home Assistant discovery on a broker (gateway/mqtt)."""

    host: str
    port: int | None = field(default=None, metadata=_bounds(1, 65535))  # 1883, 8883 with tls
    tls: bool = False
    # A CA bundle for the broker's certificate; default: the system's.
    ca_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    # Default: checkin-gateway/<gateway name>.
    topic_prefix: str | None = field(
        default=None,
        metadata={"pattern": r"[^#+\s]+(/[^#+\s]+)*", "expected": "a topic without wildcards"},
    )
    discovery_prefix: str = field(
        default="homeassistant",
        metadata={"pattern": r"[^#+/\s]+", "expected": "one topic level without wildcards"},
    )
    discovery: bool = True
    # Lock entities accept "unlock" from the broker (logged like a tap). Off: state only.
    allow_remote_unlock: bool = False
    # Events carry the member's name (else only the outcome; never the token).
    member_names: bool = False
    # Share a 429's Retry-After with the other gateways on the same Cobot account.
    fleet_topic: str = field(
        default="checkin-gateway/fleet",
        metadata={"pattern": r"[^#+\s]+(/[^#+\s]+)*", "expected": "a topic without wildcards"},
    )
    keepalive: int = field(default=30, metadata=_bounds(5, 3600))


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminSection:
    """``[admin]``: the space manager's web page (gateway/admin)."""

    # Loopback only by default; the management network's address to expose it there
    # (never the captive portal's side).
    listen: tuple[str, ...] = ("127.0.0.1",)
    port: int = field(default=8081, metadata=_bounds(1, 65535))
    # An argon2 hash made by `checkin-gateway admin-password`; no default password:
    # without this file the page does not start and says why.
    password_file: Path | None = None
    language: Literal["auto", "en", "de"] = "auto"
    # Seconds a signed-in session lasts without use.
    session_idle: float = field(default=3600.0, metadata=_bounds(60, 7 * 86_400))
    # Failed logins per client address within failure_window before a lock.
    max_failures: int = field(default=5, metadata=_bounds(1, 1000))
    failure_window: float = field(default=900.0, metadata=_bounds(1, 86_400))
    # Days the access log keeps a tap (pruned daily).
    access_log_days: int = field(default=90, metadata=_bounds(1, 3650))
    # Admin cards: tapping one puts its reader in enrolment mode (the next unknown card
    # within 30 s goes to the admin page); the admin card itself opens nothing.
    enrol_cards: tuple[str, ...] = ()
