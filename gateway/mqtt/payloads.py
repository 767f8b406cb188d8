"""What goes on the broker, as pure functions: discovery configs, events, states.

Home Assistant's MQTT discovery
(https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery): one retained config
per entity under ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``, each
with a ``unique_id`` and the shared ``device`` block so the entities group under one
device; availability from our ``availability`` topic. Components used: ``lock`` (state
and command topic, required by the lock schema), ``binary_sensor`` (device class ``door``),
``event`` (``event_types``; the payload's ``event_type`` picks one) and ``sensor``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.decide import Decision
from gateway.model import Outcome
from gateway.mqtt.topics import Topics, slug

LOCKED, UNLOCKED = "LOCKED", "UNLOCKED"
OPEN, CLOSED = "open", "closed"
COBOT_STATES = ("connected", "offline", "auth_failed")
EVENT_TYPES = (*(o.value for o in Outcome), "remote-unlock")


@dataclass(frozen=True, slots=True)
class Discovery:
    """What the gateway announces: its name and version, its doors (and which of them
    have a contact line), and whether the locks take commands."""

    name: str
    version: str
    doors: Sequence[str]
    contacts: Sequence[str]
    remote_unlock: bool


def discovery_configs(topics: Topics, d: Discovery) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config payload (to be published retained)."""
    node = slug(d.name)
    device = {
        "identifiers": [f"checkin-gateway-{node}"],
        "name": f"Check-in gateway {d.name}",
        "manufacturer": "checkin-gateway",
        "model": "checkin-gateway",
        "sw_version": d.version,
    }
    common = {
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
    }
    out: dict[str, dict[str, Any]] = {}
    for door in d.doors:
        door_id = slug(door)
        lock = {
            **common,
            "name": f"{door} door",
            "unique_id": f"{node}_{door_id}_lock",
            "state_topic": topics.door(door, "lock"),
            "command_topic": topics.door(door, "set"),
            "payload_lock": "LOCK",
            "payload_unlock": "UNLOCK",
            "state_locked": LOCKED,
            "state_unlocked": UNLOCKED,
            "optimistic": False,
            "qos": 1,
        }
        if not d.remote_unlock:
            # The lock schema requires a command topic; the gateway refuses what comes
            # on it (and says so on cmd/reply) unless allow_remote_unlock is set.
            lock["name"] = f"{door} door (read-only)"
        out[topics.discovery("lock", node, f"{door_id}_lock")] = lock
        out[topics.discovery("event", node, f"{door_id}_access")] = {
            **common,
            "name": f"{door} access",
            "unique_id": f"{node}_{door_id}_access",
            "state_topic": topics.door(door, "event"),
            "event_types": list(EVENT_TYPES),
            "icon": "mdi:card-account-details",
        }
    for door in d.contacts:
        door_id = slug(door)
        out[topics.discovery("binary_sensor", node, f"{door_id}_contact")] = {
            **common,
            "name": f"{door} contact",
            "unique_id": f"{node}_{door_id}_contact",
            "device_class": "door",
            "state_topic": topics.door(door, "contact"),
            "payload_on": OPEN,
            "payload_off": CLOSED,
        }
    out[topics.discovery("sensor", node, "queue")] = {
        **common,
        "name": "Check-ins queued",
        "unique_id": f"{node}_queue",
        "state_topic": topics.queue,
        "state_class": "measurement",
        "unit_of_measurement": "check-ins",
        "icon": "mdi:tray-full",
    }
    out[topics.discovery("sensor", node, "cobot")] = {
        **common,
        "name": "Cobot connection",
        "unique_id": f"{node}_cobot",
        "state_topic": topics.cobot,
        "device_class": "enum",
        "options": list(COBOT_STATES),
        "icon": "mdi:cloud-check",
    }
    return out


def event_payload(decision: Decision, door: str | None, *, member_names: bool) -> bytes:
    """One decision as JSON: time (UTC, ISO 8601), door, reader, outcome (also as
    ``event_type`` for Home Assistant), opened, latency in seconds, and the member's
    name only with ``member_names``. Never the token."""
    out: dict[str, Any] = {
        "event_type": decision.outcome.value,
        "time": decision.tap.at.astimezone(UTC).isoformat(timespec="milliseconds"),
        "door": door,
        "reader": decision.tap.reader,
        "direction": decision.tap.direction.value,
        "outcome": decision.outcome.value,
        "opened": decision.opened,
        "latency_s": round(decision.latency_ms / 1000, 4),
    }
    if member_names and decision.membership is not None:
        out["member"] = decision.membership.name
    return json.dumps(out, separators=(",", ":")).encode()


def remote_unlock_payload(door: str, *, opened: bool, by: str, error: str | None) -> bytes:
    out = {
        "event_type": "remote-unlock",
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "door": door,
        "reader": by,
        "outcome": "remote-unlock",
        "opened": opened,
        "error": error,
    }
    return json.dumps(out, separators=(",", ":")).encode()


def states(
    topics: Topics,
    *,
    queue: int,
    cobot: str,
    readers: Mapping[str, str],
    locks: Mapping[str, bool],
    contacts: Mapping[str, bool],
) -> dict[str, str]:
    """Retained state topic -> payload. ``locks``: door -> unlocked now; ``contacts``:
    door -> open now (doors whose contact line has reported)."""
    out = {topics.queue: str(queue), topics.cobot: cobot}
    for reader, state in readers.items():
        out[topics.reader_state(reader)] = state
    for door, unlocked in locks.items():
        out[topics.door(door, "lock")] = UNLOCKED if unlocked else LOCKED
    for door, is_open in contacts.items():
        out[topics.door(door, "contact")] = OPEN if is_open else CLOSED
    return out
