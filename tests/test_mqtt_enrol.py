"""The MQTT commands end to end through a real Mosquitto: ``enrol`` arms a pty serial
reader for the admin page's enrolment, ``refresh_tokens`` pulls a card Cobot just got,
``unlock`` opens the door and is logged like a tap; without ``[admin]`` enrolment is
refused with the reason."""

from __future__ import annotations

import asyncio
import json
import os
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import structlog

from gateway.model import Membership
from gateway.sim.seed import ADA, GRACE, RDM_TOKEN
from tests.admin_support import admin_rig
from tests.harness import eventually
from tests.mqtt_broker import Watcher, mosquitto, watch
from tests.mqtt_rig import mqtt_gateway

pytestmark = pytest.mark.real
P = "checkin-gateway/gw1"
NEW_CARD = "DEADBEEF01"
FRESH_CARD = "C0FFEE0042"


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(master)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


async def command(port: int, seen: Watcher, body: dict[str, Any]) -> dict[str, Any]:
    """Publish ``body`` on cmd as Home Assistant would; its answer from cmd/reply."""
    before = len(seen.payloads(f"{P}/cmd/reply"))
    async with aiomqtt.Client("127.0.0.1", port) as ha:
        await ha.publish(f"{P}/cmd", json.dumps(body), qos=1)
    async with asyncio.timeout(5):
        while len(seen.payloads(f"{P}/cmd/reply")) == before:
            await asyncio.sleep(0.02)
    reply: dict[str, Any] = seen.json(f"{P}/cmd/reply")[-1]
    assert reply["id"] == body["id"]
    return reply


async def test_enrol_refresh_and_unlock_over_mqtt(tmp_path: Path, pty: tuple[int, str]) -> None:
    master, port = pty
    with mosquitto(tmp_path) as broker:
        mqtt = {
            "host": "127.0.0.1",
            "port": broker.port,
            "topic_prefix": P,
            "allow_remote_unlock": True,
        }
        async with (
            admin_rig(tmp_path, serial_port=port, tables={"mqtt": mqtt}) as rig,
            watch(broker.port, f"{P}/#") as seen,
        ):
            gw = rig.gateway
            assert gw.admin is not None
            await seen.wait_for(f"{P}/reader/front/state", b"ready")
            with structlog.testing.capture_logs() as logs:
                refused = await command(
                    broker.port, seen, {"id": "e0", "command": "enrol", "reader": "back"}
                )
                assert refused["ok"] is False and "no reader 'back'" in refused["detail"]
                assert gw.admin.enrolment.armed() == {}
                reply = await command(
                    broker.port, seen, {"id": "e1", "command": "enrol", "reader": "front"}
                )
                assert reply["ok"] is True and reply["command"] == "enrol", reply
                assert "front" in gw.admin.enrolment.armed()

                # A known card on the armed reader is decided as usual ...
                os.write(master, f"{RDM_TOKEN}\n".encode())
                await eventually(lambda: rig.door.opened == 1)
                # ... the next unknown one is captured for the page, not decided.
                os.write(master, f"{NEW_CARD}\n".encode())
                await eventually(lambda: bool(gw.admin and gw.admin.enrolment.captures()))
            capture = gw.admin.enrolment.captures()[0]
            assert capture.reader == "front" and capture.token == NEW_CARD
            assert rig.door.opened == 1 and gw.admin.enrolment.armed() == {}
            commands = [e for e in logs if e["event"] == "mqtt_command"]
            assert [(e["reader"], e["ok"]) for e in commands] == [("back", False), ("front", True)]
            captured = [e for e in logs if e["event"] == "enrolment_captured"]
            assert [e["reader"] for e in captured] == ["front"]
            assert NEW_CARD not in repr(logs)  # the card number only redacted

            # The page gives it to Ada: it opens the door from the next tap on.
            await gw.admin.register_card(capture.id, Membership(ADA, "Ada Lovelace"))
            assert rig.space.tokens[NEW_CARD] == ADA
            await asyncio.sleep(0.3)  # past the reader's debounce
            os.write(master, f"{NEW_CARD}\n".encode())
            await eventually(lambda: rig.door.opened == 2)

            # refresh_tokens: a card registered at Cobot meanwhile is in the cache at once.
            rig.space.create_token(GRACE, FRESH_CARD)
            assert gw.cache.lookup(FRESH_CARD) is None
            reply = await command(broker.port, seen, {"id": "r1", "command": "refresh_tokens"})
            assert reply["ok"] is True
            await eventually(lambda: gw.cache.lookup(FRESH_CARD) is not None)
            member = gw.cache.lookup(FRESH_CARD)
            assert member is not None and member.id == GRACE

            # unlock: opens, logged like a tap, an event on the door's topic.
            with structlog.testing.capture_logs() as logs:
                reply = await command(
                    broker.port, seen, {"id": "u1", "command": "unlock", "door": "front"}
                )
            assert reply["ok"] is True and rig.door.opened == 3
            taps = [e for e in logs if e["event"] == "tap"]
            assert taps and taps[0]["outcome"] == "remote-unlock" and taps[0]["door"] == "front"
            await eventually(
                lambda: any(
                    e.get("outcome") == "remote-unlock" for e in seen.json(f"{P}/door/front/event")
                )
            )


async def test_enrol_without_the_admin_page_is_refused_with_why(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        mqtt = {"host": "127.0.0.1", "port": broker.port}
        async with (
            mqtt_gateway(tmp_path, mqtt) as rig,
            watch(broker.port, f"{P}/#") as seen,
        ):
            await seen.wait_for(f"{P}/availability", b"online")
            # One reader: "reader" may be left out; still no admin page to enrol on.
            reply = await command(broker.port, seen, {"id": "e", "command": "enrol"})
            assert reply["ok"] is False and "[admin]" in reply["detail"]
            await rig.tap(NEW_CARD)  # decided (refused), not captured
            assert rig.door.opened == 0


async def test_enrol_with_the_admin_page_down_is_refused_with_why(
    tmp_path: Path, pty: tuple[int, str]
) -> None:
    _master, port = pty
    with mosquitto(tmp_path) as broker:
        mqtt = {"host": "127.0.0.1", "port": broker.port, "topic_prefix": P}
        # No password file: the page does not start (the doors and MQTT run on).
        async with (
            admin_rig(tmp_path, password=None, serial_port=port, tables={"mqtt": mqtt}) as rig,
            watch(broker.port, f"{P}/#") as seen,
        ):
            await seen.wait_for(f"{P}/availability", b"online")
            reply = await command(
                broker.port, seen, {"id": "e", "command": "enrol", "reader": "front"}
            )
            assert reply["ok"] is False and "admin page is not running" in reply["detail"]
            assert rig.gateway.admin is not None and rig.gateway.admin.enrolment.armed() == {}
