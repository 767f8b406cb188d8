"""`checkin-gateway status` and `queue` (issue 13, case 6; issue 10, case 8's transport):
status asks the running daemon over its unix socket, checks the process through the
state dir's lock, exits 3 when nothing runs, and reading never writes."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.cli import _parser, main
from gateway.model import RecordKind
from gateway.outbox import Outbox
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.status import StatusServer, ask, socket_path
from gateway.status.client import StatusUnavailable
from gateway.store import open_db
from tests.configs import daemon_config
from tests.conftest import require
from tests.daemon import Daemon

KEYBOARD = 'name = "front"\ntype = "keyboard"'


async def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await main(list(args), out)
    return code, out.getvalue()


async def test_status_of_a_state_dir_that_never_ran_writes_nothing(tmp_path: Path) -> None:
    cfg = daemon_config(tmp_path, "http://127.0.0.1:9", KEYBOARD)
    state = tmp_path / "state"
    code, text = await cli("status", "--config", str(cfg))
    assert code == 3
    assert text == (
        f"daemon: not running (no process holds {state}/gateway.lock)\n"
        f"queue: {state} has no database yet (the gateway never ran with it)\n"
    )
    assert not state.exists()
    code, text = await cli("queue", "list", "--config", str(cfg))
    assert not state.exists()
    # A database left by a stopped gateway: read without creating -wal/-shm files.
    db = await open_db(state)
    await db.close()
    before = sorted(p.name for p in state.iterdir())
    code, text = await cli("status", "--config", str(cfg))
    assert code == 3
    assert "queue: 0 waiting (bound 50000), oldest -, 0 failed, 0 dropped" in text
    assert "None" not in text and "migrated" not in text
    assert sorted(p.name for p in state.iterdir()) == before


@pytest.mark.real
async def test_status_asks_the_running_daemon_and_knows_when_it_stopped(tmp_path: Path) -> None:
    async with run_sim(demo_space()) as base_url:
        cfg = daemon_config(tmp_path, base_url, KEYBOARD)
        daemon = Daemon(cfg, {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN}, stdin_pipe=True)
        await daemon.start()
        try:
            await daemon.wait_for("ready")
            await daemon.wait_for("token_sync")
            assert daemon.proc is not None
            code, text = await cli("status", "--config", str(cfg))
            assert code == 0, text
            assert text.startswith(f"daemon: running, pid {daemon.proc.pid}\n")
            assert "  reader front: ready\n" in text
            assert "  api: online (Cobot answers)\n" in text
            assert "  tokens cached: 6\n" in text
            code, text = await cli("status", "--json", "--config", str(cfg))
            report = json.loads(text)
            assert (code, report["running"], report["pid"]) == (0, True, daemon.proc.pid)
            assert report["daemon"]["state_dir"] == str(tmp_path / "state")
            sock = socket_path(tmp_path / "state")
            assert stat.S_IMODE(sock.stat().st_mode) == 0o660
            # Status lives on the socket, not on the SD card.
            assert not (tmp_path / "state" / "status.tmp").exists()
        finally:
            assert await daemon.stop() == 0
    code, text = await cli("status", "--config", str(cfg))  # at once, not 30 s later
    assert code == 3
    assert text.startswith("daemon: not running")
    assert not sock.exists()


async def test_status_server_answers_and_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "run" / "s.sock"
    server = StatusServer(path, lambda: {"tokens": 3}, state_dir=tmp_path)
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.started.wait(), 5)
        answer = await ask(path)
        assert answer == {"tokens": 3, "pid": os.getpid(), "state_dir": str(tmp_path)}
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GET / HTTP/1.0\r\n")
        assert json.loads(await reader.readline()) == {"error": "unknown request; send 'status'"}
        writer.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    with pytest.raises(StatusUnavailable, match="nothing listens on"):
        await ask(path)


async def test_queue_list_drop_and_the_summary(tmp_path: Path) -> None:
    cfg = daemon_config(tmp_path, "http://127.0.0.1:9", KEYBOARD)
    db = await open_db(tmp_path / "state")
    outbox = Outbox(db, 100)
    at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    ids = [
        await outbox.add(
            RecordKind.CHECK_IN,
            token=f"0A0000000{i}",
            membership_id=f"m{i}",
            reader="front",
            tapped_at=at,
        )
        for i in range(3)
    ]
    await outbox.defer(
        ids[0],
        "Cannot connect to host 127.0.0.1:9 ssl:default [refused]",
        1.0,
        outcome_unknown=False,
    )
    await outbox.mark_delivered(ids[2], "c1")
    await db.close()

    code, text = await cli("status", "--config", str(cfg))
    assert code == 3
    assert "queue: 2 waiting (bound 50000), oldest 0 s ago, 0 failed, 0 dropped" in text
    assert "last error of a waiting entry: Cannot connect to host 127.0.0.1:9 [refused]" in text

    code, text = await cli("queue", "list", str(ids[1]), "--config", str(cfg))
    assert code == 0
    lines = text.splitlines()
    assert len(lines) == 2 and lines[1].split()[0] == str(ids[1])
    code, text = await cli("queue", "list", "999", "--config", str(cfg))
    assert (code, text.splitlines()[-1]) == (1, "no entry 999")

    code, text = await cli("queue", "drop", str(ids[0]), "--by", "alice", "--config", str(cfg))
    assert (code, text) == (0, f"entry {ids[0]}: dropped by alice (kept in `queue list --all`)\n")
    code, text = await cli("queue", "list", "--config", str(cfg))
    assert [line.split()[0] for line in text.splitlines()[1:]] == [str(ids[1])]
    code, text = await cli("queue", "list", "--all", "--config", str(cfg))
    rows = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert set(rows) == {str(i) for i in ids}
    assert " dropped " in rows[str(ids[0])]
    assert "dropped by alice at 20" in rows[str(ids[0])]
    assert "delivered (Cobot id c1)" in rows[str(ids[2])]
    code, text = await cli("queue", "drop", str(ids[2]), "--config", str(cfg))
    assert code == 1  # delivered: nothing to give up on
    # The dropped entry's error went with it: no stale error for what still waits.
    code, text = await cli("status", "--config", str(cfg))
    assert "queue: 1 waiting" in text and "1 dropped" in text
    assert "last error" not in text


def _walk(parser: argparse.ArgumentParser, name: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for sub, subparser in action.choices.items():
                if not helps.get(sub):
                    missing.append(f"{name} {sub}")
                missing += _walk(subparser, f"{name} {sub}")
        elif not isinstance(action, argparse._HelpAction) and not action.help:
            missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_command_and_option_has_a_one_line_help() -> None:
    assert _walk(_parser(), "checkin-gateway") == []


def test_queue_list_help_is_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        _parser().parse_args(["queue", "list", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: checkin-gateway queue list [-h] [--config FILE]")
    assert "--all" in text and "retry" not in text


def test_status_without_permission_says_unknown_not_stopped(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.daemon import REPO

    require(os.geteuid() == 0, "needs root to hand the state dir to another user")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "gateway.lock").write_text("1\n")
    os.chown(state, 65534, 65534)
    cfg = daemon_config(tmp_path, "http://127.0.0.1:9", KEYBOARD)
    drop = "--bounding-set=-dac_override,-dac_read_search,-fowner"
    proc = subprocess.run(
        ["setpriv", drop, sys.executable, "-m", "gateway", "status", "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == (
        f"status unknown: {state} is not readable by uid 0 (it is the service's own); "
        "try: sudo checkin-gateway status\n"
    )
