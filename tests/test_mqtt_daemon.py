"""MQTT with the real daemon process and a broker with users and an ACL: the will on
SIGKILL, commands the ACL lets through or drops, a wrong password."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from tests.conftest import require
from tests.daemon import Daemon
from tests.mqtt_broker import mosquitto, watch
from tests.mqtt_rig import mqtt_gateway

pytestmark = pytest.mark.real
P = "checkin-gateway/gw1"


def daemon_config(tmp_path: Path, base_url: str, mqtt: str) -> Path:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        f'[gateway]\nstate_dir = "{tmp_path / "state"}"\nname = "gw1"\nlog_format = "json"\n'
        f'[cobot]\nbase_url = "{base_url}"\n'
        '[[doors]]\nname = "front"\ntype = "command"\ncommand = ["true"]\n'
        f"[mqtt]\n{mqtt}\n"
    )
    return cfg


async def test_sigkill_publishes_the_will(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        async with (
            run_sim(demo_space()) as base_url,
            watch(broker.port, f"{P}/availability") as seen,
        ):
            cfg = daemon_config(tmp_path, base_url, f'host = "127.0.0.1"\nport = {broker.port}')
            daemon = Daemon(cfg, {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN})
            await daemon.start()
            try:
                await daemon.wait_for("mqtt_ready")
                await seen.wait_for(f"{P}/availability", b"online")
                await daemon.stop(signal.SIGKILL)
                await seen.wait_for(f"{P}/availability", b"offline", timeout=5)
                # Retained: whoever subscribes later learns the gateway is gone.
                async with watch(broker.port, f"{P}/availability") as later:
                    await later.wait_for(f"{P}/availability", b"offline", timeout=5)
            finally:
                await daemon.kill()


ACL = """user gw1
topic readwrite checkin-gateway/gw1/#
topic readwrite checkin-gateway/fleet/#
topic readwrite homeassistant/#
user ha
topic write checkin-gateway/gw1/cmd
topic write checkin-gateway/gw1/door/+/set
topic read checkin-gateway/gw1/#
user guest
topic read checkin-gateway/gw1/#
"""


def users(tmp_path: Path) -> str:
    require(shutil.which("mosquitto_passwd") is not None, "mosquitto_passwd missing")
    pw = tmp_path / "broker-passwd"
    for i, user in enumerate(("gw1", "ha", "guest")):
        flags = ["-c"] if i == 0 else []
        subprocess.run(
            ["mosquitto_passwd", "-b", *flags, str(pw), user, f"{user}-secret"], check=True
        )
    acl = tmp_path / "broker-acl"
    acl.write_text(ACL)
    return f"allow_anonymous false\npassword_file {pw}\nacl_file {acl}"


async def test_commands_go_only_where_the_acl_lets_them(tmp_path: Path) -> None:
    extra = users(tmp_path)
    secret = tmp_path / "mqtt-password"
    secret.write_text("gw1-secret\n")
    with mosquitto(tmp_path, extra) as broker:
        mqtt = {
            "host": "127.0.0.1",
            "port": broker.port,
            "username": "gw1",
            "password_file": str(secret),
            "allow_remote_unlock": True,
        }
        async with (
            mqtt_gateway(tmp_path, mqtt) as rig,
            watch(broker.port, f"{P}/#", username="ha", password="ha-secret") as seen,
        ):
            await seen.wait_for(f"{P}/availability", b"online")
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, username="guest", password="guest-secret"
            ) as guest:
                # The broker drops what the ACL forbids (MQTT 3.1.1 has no refusal).
                await guest.publish(
                    f"{P}/cmd", json.dumps({"id": "g", "command": "unlock", "door": "front"}), qos=1
                )
                await guest.publish(f"{P}/door/front/set", b"UNLOCK", qos=1)
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, username="ha", password="ha-secret"
            ) as ha:
                await ha.publish(
                    f"{P}/cmd", json.dumps({"id": "h", "command": "unlock", "door": "front"}), qos=1
                )
            await seen.wait_for(f"{P}/cmd/reply")
            await asyncio.sleep(0.3)
            replies = seen.json(f"{P}/cmd/reply")
            assert [r["id"] for r in replies] == ["h"] and replies[0]["ok"] is True
            assert rig.door.opened == 1


async def test_a_wrong_password_is_retried_and_the_door_works(tmp_path: Path) -> None:
    extra = users(tmp_path)
    secret = tmp_path / "mqtt-password"
    secret.write_text("wrong\n")
    with mosquitto(tmp_path, extra) as broker:
        mqtt = {
            "host": "127.0.0.1",
            "port": broker.port,
            "username": "gw1",
            "password_file": str(secret),
        }
        async with mqtt_gateway(tmp_path, mqtt) as rig:
            bridge = rig.gateway.mqtt
            assert bridge is not None
            async with asyncio.timeout(5):
                while bridge.link.stats.failures == 0:
                    await asyncio.sleep(0.02)
            assert "refused" in (bridge.link.stats.last_error or "")
            await rig.tap("0A1B2C3D4E")
            assert rig.door.opened == 1
