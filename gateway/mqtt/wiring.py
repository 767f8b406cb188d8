"""Building the MQTT bridge from a running gateway's parts (called by ``app.Gateway``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway import __version__
from gateway.config.integrations import MqttSection
from gateway.config.model import GpioDoorConfig
from gateway.mqtt.bridge import MqttBridge
from gateway.mqtt.commands import GatewayCommands, StartEnrolment
from gateway.mqtt.payloads import Discovery, remote_unlock_payload, states
from gateway.mqtt.topics import Topics, gateway_name

if TYPE_CHECKING:
    from gateway.app import Gateway

# A door without a strike we can read (a command door) shows UNLOCKED this long after
# it was opened: the typical strike pulse.
COMMAND_DOOR_PULSE = 3.0


def enrolment_starter(gw: Gateway) -> StartEnrolment | None:
    """The admin page's enrolment for the ``enrol`` command, or None without
    ``[admin]``: only with it does the tap path offer taps to enrolment, and only its
    page can give a captured card to a member."""
    return gw.admin.start_enrolment if gw.admin is not None else None


def build_bridge(
    gw: Gateway, cfg: MqttSection, reader_doors: Mapping[str, str | None]
) -> MqttBridge:
    name = gateway_name(gw.cfg.gateway.name)
    topics = Topics.of(cfg, name)
    contacts = [
        d.name for d in gw.cfg.doors if isinstance(d, GpioDoorConfig) and d.contact_line is not None
    ]
    discovery = Discovery(name, __version__, list(gw.doors), contacts, cfg.allow_remote_unlock)
    opened_at: dict[str, float] = {}

    async def on_unlock(door: str, opened: bool, error: str | None) -> None:
        if opened:
            opened_at[door] = time.monotonic()
        payload = remote_unlock_payload(door, opened=opened, by="mqtt", error=error)
        bridge.publish_soon(topics.event, payload)
        bridge.publish_soon(topics.door(door, "event"), payload)

    commands = GatewayCommands(
        gw.doors,
        gw.sync,
        allow_remote_unlock=cfg.allow_remote_unlock,
        on_unlock=on_unlock,
        enrol=enrolment_starter(gw),
        readers=[r.name for r in gw.readers],
    )

    def now_states() -> dict[str, str]:
        now = time.monotonic()
        locks: dict[str, bool] = {}
        door_open: dict[str, bool] = {}
        for door_name, door in gw.doors.items():
            unlocked = getattr(door, "unlocked", None)
            if not isinstance(unlocked, bool):
                unlocked = now - opened_at.get(door_name, -1e9) < COMMAND_DOOR_PULSE
            locks[door_name] = unlocked
            is_open = getattr(door, "is_open", None)
            if isinstance(is_open, bool):
                door_open[door_name] = is_open
        cobot = "connected"
        if gw.client.auth_failed:
            cobot = "auth_failed"
        elif gw.breaker.is_open:
            cobot = "offline"
        return states(
            topics,
            queue=gw.outbox.depth,
            cobot=cobot,
            readers={r.name: r.state.value for r in gw.readers},
            locks=locks,
            contacts=door_open,
        )

    bridge = MqttBridge(
        cfg,
        topics,
        discovery,
        doors_of=reader_doors,
        states=now_states,
        commands=commands,
        limiter=gw.limiter,
    )
    bridge.opened_at = opened_at
    return bridge
