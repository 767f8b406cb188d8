"""End to end: a card on an NFC reader checks a member in.

``checkin-gateway run`` as a real subprocess, its NFC reader on nfcpy's UDP driver,
the fake card in this process, the simulated Cobot server over real HTTP, and a
command door that writes to a file.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.seed import GRACE, NFC_TOKEN
from tests.configs import daemon_config
from tests.daemon import Daemon
from tests.fakecard import Card, CardField
from tests.harness import eventually

pytestmark = pytest.mark.real


def write_config(tmp_path: Path, base_url: str, device: str, door_log: Path) -> Path:
    reader = f'name = "front-nfc"\ntype = "nfc"\ndevice = "{device}"'
    return daemon_config(tmp_path, base_url, reader, door_log=door_log)


async def test_nfc_tap_checks_the_member_in(tmp_path: Path) -> None:
    door_log = tmp_path / "door.log"
    space = demo_space()
    with CardField() as field:
        async with run_sim(space) as base_url:
            cfg = write_config(tmp_path, base_url, field.device, door_log)
            daemon = Daemon(cfg, {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN})
            await daemon.start()
            try:
                await daemon.wait_for("nfc_reader_ready")
                await daemon.wait_for("token_sync")
                field.present(Card(bytes.fromhex(NFC_TOKEN)))  # Grace's 7-byte UID
                tap = await daemon.wait_for("tap")
                assert tap["outcome"] == "opened-online"
                assert tap["membership_id"] == GRACE
                await eventually(lambda: len(space.check_ins_of(GRACE)) == 1)
                await eventually(lambda: door_log.exists() and door_log.read_text() == "opened\n")
                # The card rests on the reader: still one check-in, one door opening.
                await field.rounds(5, answered=True)
                assert [e["event"] for e in daemon.events].count("tap") == 1
                assert NFC_TOKEN not in daemon.log()  # the UID is redacted everywhere
                assert await daemon.stop(signal.SIGTERM) == 0
                assert daemon.events[-1]["event"] == "stopped"
            finally:
                await daemon.kill()
    assert len(space.check_ins_of(GRACE)) == 1
