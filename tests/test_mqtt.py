"""MQTT through a real Mosquitto on loopback: discovery, events, states, commands,
availability, reconnects; the door never waits for the broker."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.sim.seed import RDM_TOKEN
from tests.mqtt_broker import free_port, mosquitto, watch
from tests.mqtt_rig import mqtt_gateway

pytestmark = pytest.mark.real
P = "checkin-gateway/gw1"

# Home Assistant's documented discovery schemas (integrations/lock.mqtt,
# binary_sensor.mqtt, event.mqtt, sensor.mqtt; "required" and the keys we may use).
COMMON = {
    "name",
    "unique_id",
    "availability_topic",
    "payload_available",
    "payload_not_available",
    "device",
    "icon",
    "qos",
}
HA_SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    "lock": (
        {"command_topic"},
        COMMON
        | {
            "state_topic",
            "payload_lock",
            "payload_unlock",
            "payload_open",
            "state_locked",
            "state_unlocked",
            "state_open",
            "state_jammed",
            "optimistic",
        },
    ),
    "binary_sensor": ({"state_topic"}, COMMON | {"device_class", "payload_on", "payload_off"}),
    "event": ({"state_topic", "event_types"}, COMMON | {"device_class"}),
    "sensor": (
        {"state_topic"},
        COMMON | {"device_class", "state_class", "unit_of_measurement", "options"},
    ),
}
DEVICE_KEYS = {"identifiers", "name", "manufacturer", "model", "sw_version"}


def check_discovery(topic: str, config: dict[str, Any]) -> str:
    parts = topic.split("/")
    assert parts[0] == "homeassistant" and parts[-1] == "config" and len(parts) == 5, topic
    component = parts[1]
    required, allowed = HA_SCHEMA[component]
    assert required <= config.keys(), (topic, required - config.keys())
    assert config.keys() <= allowed | required, (topic, config.keys() - allowed - required)
    assert config["device"].keys() <= DEVICE_KEYS and config["device"]["identifiers"]
    if component == "binary_sensor":
        assert config["device_class"] == "door"
    if component == "sensor" and config.get("device_class") == "enum":
        assert config["options"]
    return component


async def test_discovery_events_states_and_commands(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        async with watch(broker.port, "#") as seen:
            mqtt = {"host": "127.0.0.1", "port": broker.port}
            async with mqtt_gateway(tmp_path, mqtt) as rig:
                await seen.wait_for(f"{P}/availability", b"online")
                await seen.wait_for(f"{P}/queue")
                configs = {
                    t: json.loads(p) for t, p, _ in seen.messages if t.startswith("homeassistant/")
                }
                components = sorted(check_discovery(t, c) for t, c in configs.items())
                assert components == ["event", "lock", "sensor", "sensor"]
                ids = [c["unique_id"] for c in configs.values()]
                assert len(set(ids)) == len(ids)
                lock = next(c for c in configs.values() if c["unique_id"] == "gw1_front_lock")
                assert lock["state_topic"] == f"{P}/door/front/lock"
                assert lock["availability_topic"] == f"{P}/availability"

                await rig.tap(RDM_TOKEN)
                await rig.tap("FFFFFFFFFF")
                await seen.wait_for(f"{P}/event")
                async with asyncio.timeout(5):
                    while len(seen.payloads(f"{P}/event")) < 2:
                        await asyncio.sleep(0.02)
                events = seen.json(f"{P}/event")
                assert [e["outcome"] for e in events] == ["opened-online", "refused"]
                assert events[0]["door"] == "front" and events[0]["reader"] == "front"
                assert "member" not in events[0]  # member_names is off
                assert seen.json(f"{P}/door/front/event")[0]["event_type"] == "opened-online"
                assert RDM_TOKEN.encode() not in b"".join(p for _, p, _ in seen.messages)
                await seen.wait_for(f"{P}/door/front/lock", b"UNLOCKED")
                await seen.wait_for(f"{P}/door/front/lock", b"LOCKED")
                assert seen.last(f"{P}/reader/front/state") == b"ready"
                assert seen.last(f"{P}/cobot") == b"connected"

                # Commands: answered on cmd/reply; unlock is off by default.
                async with aiomqtt.Client("127.0.0.1", broker.port) as ha:
                    await ha.publish(
                        f"{P}/cmd", json.dumps({"id": "1", "command": "refresh_tokens"}), qos=1
                    )
                    await ha.publish(
                        f"{P}/cmd",
                        json.dumps({"id": "2", "command": "unlock", "door": "front"}),
                        qos=1,
                    )
                    await ha.publish(f"{P}/door/front/set", b"UNLOCK", qos=1)
                    await ha.publish(f"{P}/cmd", b"{not json", qos=1)
                    async with asyncio.timeout(5):
                        while len(seen.payloads(f"{P}/cmd/reply")) < 4:
                            await asyncio.sleep(0.02)
                    replies = seen.json(f"{P}/cmd/reply")
                    assert replies[0] == {
                        "id": "1",
                        "command": "refresh_tokens",
                        "ok": True,
                        "detail": "token sync requested",
                    }
                    assert (
                        replies[1]["ok"] is False and "allow_remote_unlock" in replies[1]["detail"]
                    )
                    assert replies[2]["ok"] is False
                    assert replies[3]["ok"] is False and "not JSON" in replies[3]["detail"]
                    assert rig.door.opened == 1  # only the tap opened it

                    # Home Assistant restarted: discovery again.
                    before = sum(
                        1
                        for t, _, _ in seen.messages
                        if t.startswith("homeassistant/") and t.endswith("/config")
                    )
                    await ha.publish("homeassistant/status", b"online", qos=1)
                    async with asyncio.timeout(5):
                        while (
                            sum(
                                1
                                for t, _, _ in seen.messages
                                if t.startswith("homeassistant/") and t.endswith("/config")
                            )
                            < 2 * before
                        ):
                            await asyncio.sleep(0.02)
            # A clean stop says offline itself.
            await seen.wait_for(f"{P}/availability", b"offline")


async def test_remote_unlock_when_allowed_opens_and_is_an_event(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        async with watch(broker.port, f"{P}/#") as seen:
            mqtt = {
                "host": "127.0.0.1",
                "port": broker.port,
                "allow_remote_unlock": True,
                "member_names": True,
            }
            async with mqtt_gateway(tmp_path, mqtt) as rig:
                await seen.wait_for(f"{P}/availability", b"online")
                async with aiomqtt.Client("127.0.0.1", broker.port) as ha:
                    await ha.publish(f"{P}/door/front/set", b"UNLOCK", qos=1)
                    await ha.publish(
                        f"{P}/cmd",
                        json.dumps({"id": "x", "command": "unlock", "door": "back"}),
                        qos=1,
                    )
                    async with asyncio.timeout(5):
                        while len(seen.payloads(f"{P}/cmd/reply")) < 2:
                            await asyncio.sleep(0.02)
                replies = seen.json(f"{P}/cmd/reply")
                assert replies[0]["ok"] is True
                assert replies[1]["ok"] is False and "no door 'back'" in replies[1]["detail"]
                assert rig.door.opened == 1
                event = seen.json(f"{P}/event")[0]
                assert event["outcome"] == "remote-unlock" and event["opened"] is True
                await rig.tap(RDM_TOKEN)
                async with asyncio.timeout(5):
                    while len(seen.payloads(f"{P}/event")) < 2:
                        await asyncio.sleep(0.02)
                assert seen.json(f"{P}/event")[1]["member"] == "Ada Lovelace"


async def test_broker_down_never_delays_the_door_and_events_follow(tmp_path: Path) -> None:
    port = free_port()  # nobody listens yet
    mqtt = {"host": "127.0.0.1", "port": port}
    async with mqtt_gateway(tmp_path, mqtt) as rig:
        started = time.monotonic()
        await rig.tap(RDM_TOKEN)
        assert time.monotonic() - started < 1.0
        assert rig.door.opened == 1
        assert rig.gateway.mqtt is not None
        assert rig.gateway.mqtt.state.value in ("connecting", "reconnecting")
        # The broker comes: the gateway connects (backoff) and the event arrives late.
        with mosquitto(tmp_path) as broker:
            broker.stop()
            broker.port = port
            broker.start()
            async with watch(port, f"{P}/#") as seen:
                await seen.wait_for(f"{P}/availability", b"online", timeout=15)
                await seen.wait_for(f"{P}/event", timeout=5)
                assert seen.json(f"{P}/event")[0]["outcome"] == "opened-online"


async def test_reconnect_after_a_broker_restart_republishes_states(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        mqtt = {"host": "127.0.0.1", "port": broker.port}
        async with mqtt_gateway(tmp_path, mqtt) as rig:
            async with watch(broker.port, f"{P}/#") as seen:
                await seen.wait_for(f"{P}/queue")
            broker.stop()  # no persistence: every retained message is gone
            await rig.tap(RDM_TOKEN)  # decided while the broker is away
            assert rig.door.opened == 1
            broker.start()
            async with watch(broker.port, f"{P}/#", "homeassistant/#") as seen:
                await seen.wait_for(f"{P}/availability", b"online", timeout=15)
                await seen.wait_for(f"{P}/queue", timeout=5)
                await seen.wait_for(f"{P}/event", timeout=5)
                assert any(t.startswith("homeassistant/lock/") for t, _, _ in seen.messages)
            assert rig.gateway.mqtt is not None
            assert rig.gateway.mqtt.link.stats.reconnects >= 1


async def test_a_stop_with_events_in_flight_is_prompt(tmp_path: Path) -> None:
    """aiomqtt's publish can swallow a cancellation on Python 3.11 (wait_for): the stop
    must still end within its deadline (it hung for the whole 5 s before)."""
    from gateway.model import Direction
    from gateway.readers.base import make_tap

    with mosquitto(tmp_path) as broker:
        for _ in range(3):
            async with mqtt_gateway(tmp_path, {"host": "127.0.0.1", "port": broker.port}) as rig:
                gw = rig.gateway
                assert gw.mqtt is not None
                async with asyncio.timeout(10):
                    while gw.mqtt.state.value != "ready":
                        await asyncio.sleep(0.01)
                for i in range(1500):
                    await gw.decider.decide(make_tap("front", RDM_TOKEN, Direction.IN), rig.door)
                    if i % 50 == 0:
                        await asyncio.sleep(0)
                started = time.monotonic()
            assert time.monotonic() - started < 2.5


class ContactDoor:
    """What the lock and contact states read of a GPIO door (``GpioDoor.unlocked`` and
    ``is_open``); the GPIO door itself is tested on gpio-sim lines elsewhere."""

    def __init__(self) -> None:
        self.unlocked = False
        self.is_open: bool | None = False
        self.opened = 0

    @property
    def name(self) -> str:
        return "front"

    async def open(self) -> None:
        self.opened += 1

    async def signal(self, signal: object) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_contact_line_is_a_door_binary_sensor_and_the_strike_a_lock(tmp_path: Path) -> None:
    door = ContactDoor()
    gpio = {"name": "front", "type": "gpio", "line": 17, "contact_line": 27}
    with mosquitto(tmp_path) as broker:
        async with watch(broker.port, "#") as seen:
            mqtt = {"host": "127.0.0.1", "port": broker.port}
            async with mqtt_gateway(tmp_path, mqtt, door_config=gpio, door=door):
                topic = "homeassistant/binary_sensor/gw1/front_contact/config"
                config = json.loads(await seen.wait_for(topic))
                assert check_discovery(topic, config) == "binary_sensor"
                assert config["state_topic"] == f"{P}/door/front/contact"
                await seen.wait_for(f"{P}/door/front/contact", b"closed")
                await seen.wait_for(f"{P}/door/front/lock", b"LOCKED")
                door.unlocked, door.is_open = True, True
                await seen.wait_for(f"{P}/door/front/lock", b"UNLOCKED")
                await seen.wait_for(f"{P}/door/front/contact", b"open")
                door.unlocked, door.is_open = False, False
                await seen.wait_for(f"{P}/door/front/contact", b"closed")
                # Retained: Home Assistant starting later learns the state at once.
                async with watch(broker.port, f"{P}/door/front/+") as later:
                    await later.wait_for(f"{P}/door/front/lock", b"LOCKED")
                    assert later.messages[0][2] is True
