"""The state directory on disk (issue 10, case 7): one gateway per directory, private
files whatever the umask, and a plain word for a full, read-only or forbidden directory
(one line, before anything is logged), after which the doors keep deciding from memory. Real mounts: a 512 KiB tmpfs and a
read-only bind mount, made and removed here (we are root)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.errors import StorageError
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.seed import ADA, RDM_TOKEN
from gateway.statedir import LOCK_NAME, StateDirBusy, StateDirError, StateLock, holder
from gateway.store import DB_NAME, open_db
from tests.configs import daemon_config
from tests.daemon import REPO, Daemon

KEYBOARD = 'name = "front"\ntype = "keyboard"'
ENV = {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN}


def run_cli(
    *args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **ENV, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@contextlib.contextmanager
def mounted(*args: str, target: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("mount tests need root under CI")
        pytest.skip("mount needs root")
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *args, str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


async def test_a_second_gateway_on_the_same_state_dir_is_refused_naming_the_pid(
    tmp_path: Path,
) -> None:
    async with run_sim(demo_space()) as base_url:
        cfg = daemon_config(tmp_path, base_url, KEYBOARD)
        daemon = Daemon(cfg, ENV)
        await daemon.start()
        try:
            await daemon.wait_for("ready")
            assert daemon.proc is not None
            second = await asyncio.to_thread(run_cli, "run", "--config", str(cfg))
            assert second.returncode == 2
            line = one_line(second)
            assert f"pid {daemon.proc.pid} holds" in line
            assert line.startswith(f"error: {tmp_path / 'state'} is in use by another")
            assert holder(tmp_path / "state") == daemon.proc.pid
        finally:
            assert await daemon.stop() == 0
    assert holder(tmp_path / "state") is None  # the kernel dropped the lock


def test_lock_in_process(tmp_path: Path) -> None:
    with StateLock(tmp_path):
        with pytest.raises(StateDirBusy) as err:
            StateLock(tmp_path).acquire()
        assert err.value.pid == os.getpid()
        assert holder(tmp_path) == os.getpid()
    assert holder(tmp_path) is None
    assert stat.S_IMODE((tmp_path / LOCK_NAME).stat().st_mode) == 0o600


async def test_state_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        async with run_sim(demo_space()) as base_url:
            cfg = daemon_config(tmp_path, base_url, KEYBOARD)
            # A state dir left 0755 with a 0644 database by an older version: tightened.
            state = tmp_path / "state"
            state.mkdir(mode=0o755)
            state.chmod(0o755)
            (state / "stale.json").write_text("{}")
            (state / "stale.json").chmod(0o644)
            daemon = Daemon(cfg, ENV)
            await daemon.start()
            try:
                await daemon.wait_for("ready")
                modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}
            finally:
                assert await daemon.stop() == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", LOCK_NAME} <= set(modes)
    assert {n: m for n, m in modes.items() if m != 0o600} == {}


async def runs_from_memory(
    tmp_path: Path, state: Path, says: str, prefix: list[str] | None = None
) -> None:
    """The gateway on an unusable ``state``: one plain line naming the cause, then it
    runs from memory: a member's tap opens the door and is checked in once; ``status``
    and systemd's status line say nothing is stored; SIGTERM stops it cleanly."""
    door_log = tmp_path / "door.log"
    space = demo_space()
    async with run_sim(space) as base_url:
        cfg = daemon_config(tmp_path, base_url, KEYBOARD, door_log=door_log)
        cfg.write_text(cfg.read_text().replace(str(tmp_path / "state"), str(state)))
        daemon = Daemon(cfg, ENV, stdin_pipe=True, prefix=prefix)
        await daemon.start()
        try:
            first = await daemon.wait_for(lambda e: e.get("event") == "raw")
            assert first["text"] == f"error: {says}; running from memory, nothing is stored"
            event = await daemon.wait_for("state_not_durable")
            assert event["problem"] == says
            await daemon.wait_for("ready")
            await daemon.wait_for("token_sync")
            assert daemon.proc is not None and daemon.proc.stdin is not None
            daemon.proc.stdin.write(f"{RDM_TOKEN}\n".encode())
            await daemon.proc.stdin.drain()
            await daemon.wait_for(lambda e: e.get("event") == "tap" and e.get("opened"))
            await daemon.wait_for("delivered")
            assert door_log.read_text() == "opened\n"
            assert len(space.check_ins_of(ADA)) == 1
        finally:
            assert await daemon.stop() == 0


async def test_a_full_state_dir_says_disk_full_and_the_doors_keep_deciding(
    tmp_path: Path,
) -> None:
    with mounted("-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", target=tmp_path / "disk"):
        state = tmp_path / "disk" / "state"
        # A database (it could hold queued check-ins), then the disk fills up.
        db = await open_db(state)
        await db.close()
        before = (state / DB_NAME).read_bytes()
        with contextlib.suppress(OSError), (tmp_path / "disk" / "filler").open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        with pytest.raises(StateDirError) as err:
            await open_db(state)
        says = str(err.value)
        assert says.startswith(f"{state}: the disk is full (")
        assert "not a usable gateway database" not in says
        await runs_from_memory(tmp_path, state, says)
        assert (state / DB_NAME).read_bytes() == before  # nothing deleted or half-written


async def test_a_read_only_state_dir_says_read_only_and_the_doors_keep_deciding(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    db = await open_db(state)
    await db.close()
    cfg = daemon_config(tmp_path, "http://127.0.0.1:9", KEYBOARD)
    with mounted("--bind", str(state), target=state):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)
        with pytest.raises(StateDirError, match="mounted read-only"):
            await open_db(state)
        await runs_from_memory(tmp_path, state, f"{state}: the file system is mounted read-only")
        # Reading still works, and writes nothing.
        out = io.StringIO()
        assert await main(["status", "--config", str(cfg)], out) == 3
        assert "queue: 0 waiting" in out.getvalue()


async def test_a_running_gateway_from_memory_says_so_in_status(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    async with run_sim(demo_space()) as base_url:
        cfg = daemon_config(tmp_path, base_url, KEYBOARD)
        with mounted("--bind", str(state), target=state):
            subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)
            daemon = Daemon(cfg, ENV)
            await daemon.start()
            try:
                await daemon.wait_for("ready")
                out = io.StringIO()
                code = await main(["status", "--config", str(cfg)], out)
                text = out.getvalue()
                assert code == 0, text
                assert (
                    f"  STATE NOT DURABLE: {state}: the file system is mounted read-only; "
                    "running from memory" in text
                )
                assert "queue: 0 waiting, in the daemon's memory only" in text
            finally:
                assert await daemon.stop() == 0


async def test_a_state_dir_of_another_user_says_permission_denied(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root (to hand the state dir to another user)")
        pytest.skip("needs root")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)  # as if created by another user (or by root for one)
    # Root without the capabilities that override file permissions: a plain user here.
    drop = "-dac_override,-dac_read_search,-fowner"
    await runs_from_memory(
        tmp_path,
        state,
        f"{state}: permission denied (owner uid 65534, mode 0700; running as uid 0)",
        prefix=["setpriv", f"--bounding-set={drop}"],
    )


def test_a_state_dir_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = daemon_config(tmp_path, "http://127.0.0.1:9", KEYBOARD)
    (tmp_path / "state").write_text("oops")
    proc = run_cli("run", "--config", str(cfg))
    assert proc.returncode == 2
    assert one_line(proc) == (
        f"config error: {cfg}: gateway.state_dir: {tmp_path / 'state'} exists and is not "
        "a directory"
    )


async def test_a_file_that_is_not_a_database_is_still_called_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / DB_NAME).write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StorageError, match="not a usable gateway database") as err:
        await open_db(state)
    assert not isinstance(err.value, StateDirError)
