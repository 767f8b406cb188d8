"""The daemon end to end: ``checkin-gateway run``, a tap through a real pty, SIGTERM."""

from __future__ import annotations

import os
import signal
import tty
from pathlib import Path

import pytest

from gateway.readers.serial.frames import encode_rdm6300
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.seed import ADA, RDM_TOKEN
from tests.configs import daemon_config
from tests.daemon import Daemon
from tests.harness import eventually

pytestmark = pytest.mark.real


def write_config(tmp_path: Path, base_url: str, port: str, door_log: Path) -> Path:
    reader = f'name = "front"\ntype = "serial"\nport = "{port}"\nprotocol = "rdm6300"'
    return daemon_config(tmp_path, base_url, reader, door_log=door_log)


async def test_tap_through_pty_checks_in_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    door_log = tmp_path / "door.log"
    space = demo_space()
    async with run_sim(space) as base_url:
        cfg = write_config(tmp_path, base_url, os.ttyname(slave), door_log)
        daemon = Daemon(cfg, {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN})
        await daemon.start()
        try:
            await daemon.wait_for("serial_reader_ready")
            await daemon.wait_for("token_sync")
            os.write(master, b"\x00garbage" + encode_rdm6300(bytes.fromhex(RDM_TOKEN)) * 3)
            tap = await daemon.wait_for("tap")
            assert tap["outcome"] == "opened-online"
            assert tap["membership_id"] == ADA
            assert RDM_TOKEN not in daemon.log()  # the card number is redacted everywhere
            await eventually(lambda: door_log.exists() and door_log.read_text() == "opened\n")
            await eventually(lambda: len(space.check_ins_of(ADA)) == 1)
            assert await daemon.stop(signal.SIGTERM) == 0
            assert daemon.events[-1]["event"] == "stopped"
        finally:
            await daemon.kill()
            os.close(master)
            os.close(slave)


async def test_config_error_exits_2_naming_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9", "/dev/null", tmp_path / "d")
    cfg.write_text(cfg.read_text().replace("protocol =", "protocoll ="))
    import contextlib
    import io

    from gateway.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = await main(["check-config", "--config", str(cfg)])
    assert rc == 2
    assert f"{cfg}: readers[0].protocoll: unknown key (did you mean 'protocol'?)" in err.getvalue()
