"""The admin page in ``checkin-gateway run``: ``checkin-gateway enrol --reader NAME``
over the status socket, an admin card arming its reader, a clean SIGTERM."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import tty
from pathlib import Path

import pytest

from gateway.admin.password import write_hash_file
from gateway.cli import main
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from tests.admin_support import PASSWORD, free_port
from tests.configs import daemon_config
from tests.daemon import Daemon

pytestmark = pytest.mark.real

ADMIN_CARD = "ADC0FFEE42"
NEW_CARD = "DEADBEEF07"


async def test_enrol_command_and_admin_card(tmp_path: Path, capsys) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    hash_file = tmp_path / "admin.hash"
    write_hash_file(hash_file, PASSWORD)
    async with run_sim(demo_space()) as base_url:
        reader = (
            f'name = "front"\ntype = "serial"\nport = "{os.ttyname(slave)}"\n'
            'protocol = "line"\ndebounce = 0.2'
        )
        # The door's feedback command, as a relay/LED script would get it.
        feedback = tmp_path / "feedback"
        cfg = daemon_config(
            tmp_path, base_url, reader, extra=f"feedback_command = {_append_to(feedback)}"
        )
        cfg.write_text(
            cfg.read_text() + f'\n[admin]\nport = {free_port()}\npassword_file = "{hash_file}"\n'
            f'enrol_cards = ["{ADMIN_CARD}"]\n'
        )
        daemon = Daemon(cfg, {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN})
        await daemon.start()
        try:
            await daemon.wait_for("serial_reader_ready")
            await daemon.wait_for("admin_listening")
            await daemon.wait_for("token_sync")
            out = io.StringIO()
            assert await main(["enrol", "--config", str(cfg), "--reader", "nope"], out) == 1
            assert "no reader 'nope'" in capsys.readouterr().err
            assert await main(["enrol", "--config", str(cfg), "--reader", "front"], out) == 0
            assert "reader front waits 60 s" in out.getvalue()
            armed = await daemon.wait_for("enrolment_armed")
            assert armed["reader"] == "front"
            os.write(master, f"{NEW_CARD}\n".encode())
            captured = await daemon.wait_for("enrolment_captured")
            assert captured["token"] == "********07"
            await _lines(feedback, ["enrol-waiting", "enrol-captured"])
            # The admin card: arms for 30 s, opens nothing, is never logged in full.
            os.write(master, f"{ADMIN_CARD}\n".encode())
            armed = await daemon.wait_for(lambda e: e.get("window_s") == 30.0)
            assert not [e for e in daemon.events if e.get("event") == "tap"]
            await _lines(feedback, ["enrol-waiting", "enrol-captured", "enrol-waiting"])
            assert await daemon.stop(signal.SIGTERM) == 0
            assert daemon.events[-1]["event"] == "stopped"
            log = daemon.log()
            assert NEW_CARD not in log and ADMIN_CARD not in log
        finally:
            await daemon.kill()
            os.close(master)
            os.close(slave)


def _append_to(path: Path) -> str:
    """A TOML argv appending the signal name (its last argument) to ``path``."""
    return f"['sh', '-c', 'echo \"$0\" >> {path}']"


async def _lines(path: Path, expected: list[str]) -> None:
    async with asyncio.timeout(10):
        while not path.exists() or path.read_text().split() != expected:
            await asyncio.sleep(0.02)


async def test_enrol_without_a_running_gateway(tmp_path: Path, capsys) -> None:
    cfg = daemon_config(tmp_path, "http://127.0.0.1:9", 'name = "k"\ntype = "keyboard"')
    cfg.write_text(cfg.read_text() + "\n[admin]\n")
    assert await main(["enrol", "--config", str(cfg), "--reader", "k"], io.StringIO()) == 1
    assert "not running" in capsys.readouterr().err
