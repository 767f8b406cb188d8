"""The command door with real processes: the timeout holds for the whole process group,
and the door counts as opened only on exit 0 within it (issue 10, case 1)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import structlog

from gateway.config.model import CommandDoorConfig
from gateway.doors.command import CommandDoor
from gateway.errors import DoorError
from gateway.model import Signal

pytestmark = pytest.mark.real


def hanging_script(tmp_path: Path, name: str = "hang") -> tuple[Path, Path]:
    """A door script that starts a child ``sleep 30`` and waits for it, writing the
    child's pid first (the grandchild the gateway must not leave behind)."""
    pidfile = tmp_path / f"{name}.pid"
    script = tmp_path / f"{name}.sh"
    script.write_text(f"#!/bin/sh\nsleep 30 &\necho $! > {pidfile}\nwait\n")
    script.chmod(0o755)
    return script, pidfile


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone: it runs nothing)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "zombie" not in state and "(dead)" not in state


async def gone(pid: int, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_timeout_kills_the_script_and_its_grandchild(tmp_path: Path) -> None:
    script, pidfile = hanging_script(tmp_path)
    door = CommandDoor(CommandDoorConfig(name="front", command=(str(script),), timeout=2.0))
    started = time.monotonic()
    with pytest.raises(DoorError, match=r"did not finish within 2.0s; killed it and its children"):
        await door.open()
    elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 3.5, elapsed  # the timeout, not the grandchild's 30 s
    grandchild = int(pidfile.read_text())
    assert await gone(grandchild), f"sleep {grandchild} still running"


async def test_cancelled_tap_kills_the_group(tmp_path: Path) -> None:
    script, pidfile = hanging_script(tmp_path)
    door = CommandDoor(CommandDoorConfig(name="front", command=(str(script),), timeout=30))
    task = asyncio.create_task(door.open())
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.01)
    grandchild = int(pidfile.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(grandchild)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("sh", "-c", "echo jammed >&2; exit 3"), r"door f: sh exited 3: jammed$"),
        (("sh", "-c", "exit 1"), r"door f: sh exited 1$"),
        (("sh", "-c", "echo dying >&2; kill -9 $$"), r"door f: sh was killed by SIGKILL: dying$"),
        (("sh", "-c", "kill -TERM $$"), r"door f: sh was killed by SIGTERM$"),
        (("/nonexistent/open-door",), r"door f: cannot run /nonexistent/open-door: No such file"),
    ],
)
async def test_failures_are_door_errors(argv: tuple[str, ...], message: str) -> None:
    door = CommandDoor(CommandDoorConfig(name="f", command=argv, timeout=5))
    with pytest.raises(DoorError, match=message):
        await door.open()


async def test_not_executable_is_a_door_error(tmp_path: Path) -> None:
    script = tmp_path / "open-door"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    door = CommandDoor(CommandDoorConfig(name="f", command=(str(script),)))
    with pytest.raises(DoorError, match="cannot run .*open-door: Permission denied"):
        await door.open()


async def test_stderr_tail_is_bounded(tmp_path: Path) -> None:
    # 200 KiB on stderr (more than a pipe holds) neither blocks the script nor the loop.
    door = CommandDoor(
        CommandDoorConfig(
            name="f",
            command=("sh", "-c", "head -c 204800 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 2"),
        )
    )
    with pytest.raises(DoorError) as err:
        await door.open()
    assert str(err.value).endswith("xxxxEND")
    assert len(str(err.value)) < 300


async def test_success_returns_at_exit_and_leaves_background_relock_alone(
    tmp_path: Path,
) -> None:
    # A script that unlocks and relocks from a background child: the door opened when
    # the script exited 0, and the relock must still happen (not be killed, not SIGPIPE'd
    # for writing to stderr after we stopped waiting).
    relocked = tmp_path / "relocked"
    command = ("sh", "-c", f"(sleep 0.5; echo relocking >&2; touch {relocked}) & exit 0")
    door = CommandDoor(CommandDoorConfig(name="f", command=command, timeout=5))
    started = time.monotonic()
    await door.open()
    assert time.monotonic() - started < 0.4  # did not wait for the child's stderr
    for _ in range(200):
        if relocked.exists():
            break
        await asyncio.sleep(0.01)
    assert relocked.exists()


async def test_hanging_feedback_command_is_killed_and_only_logged(tmp_path: Path) -> None:
    script, pidfile = hanging_script(tmp_path, "leds")
    door = CommandDoor(
        CommandDoorConfig(
            name="front", command=("true",), feedback_command=(str(script),), timeout=0.5
        )
    )
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        await door.signal(Signal.GRANTED)
    assert time.monotonic() - started < 2.0
    assert await gone(int(pidfile.read_text()))
    (entry,) = [e for e in logs if e["event"] == "feedback_failed"]
    assert entry["signal"] == "granted"
    assert "feedback: " in entry["error"] and "did not finish within 0.5s" in entry["error"]


async def test_feedback_gets_the_signal_name(tmp_path: Path) -> None:
    out = tmp_path / "feedback"
    door = CommandDoor(
        CommandDoorConfig(
            name="f", command=("true",), feedback_command=("sh", "-c", f'echo "$0" >> {out}')
        )
    )
    await door.open()
    await door.signal(Signal.REFUSED)
    assert out.read_text() == "refused\n"


def test_no_fd_leak_after_many_runs() -> None:
    async def many() -> None:
        door = CommandDoor(CommandDoorConfig(name="f", command=("sh", "-c", "exit 3")))
        for _ in range(30):
            with pytest.raises(DoorError):
                await door.open()

    before = len(list(Path("/proc/self/fd").iterdir()))
    asyncio.run(many())
    assert len(list(Path("/proc/self/fd").iterdir())) <= before + 2


async def test_a_hanging_door_script_bills_nobody_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    # The whole path with a real script: the tap waits the door's timeout (not the 30 s
    # of the grandchild), is door-failed, and Cobot is told nothing.
    from gateway.model import Outcome
    from gateway.sim.seed import ADA, RDM_TOKEN
    from tests.harness import rig

    script, pidfile = hanging_script(tmp_path)
    door = CommandDoor(CommandDoorConfig(name="front", command=(str(script),), timeout=1.0))
    async with rig(tmp_path, door=door) as r:
        started = time.monotonic()
        decision = await r.tap(RDM_TOKEN)
        assert time.monotonic() - started < 3.0
        assert decision.outcome is Outcome.DOOR_FAILED and not decision.opened
        assert await gone(int(pidfile.read_text()))
        await asyncio.sleep(0.5)
        assert r.space.check_ins_of(ADA) == []
        assert r.gateway.outbox.depth == 0
