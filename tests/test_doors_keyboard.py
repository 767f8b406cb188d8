"""The command door (a real subprocess) and the keyboard reader."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.config.model import CommandDoorConfig, KeyboardReaderConfig
from gateway.doors.command import CommandDoor
from gateway.errors import DoorError
from gateway.model import Direction, Signal, Tap
from gateway.readers.keyboard import KeyboardReader


async def test_command_door_runs_its_command(tmp_path: Path) -> None:
    marker = tmp_path / "opened"
    feedback = tmp_path / "feedback"
    door = CommandDoor(
        CommandDoorConfig(
            name="front",
            command=("sh", "-c", f"echo open >> {marker}"),
            feedback_command=("sh", "-c", f'echo "$0" >> {feedback}'),
        )
    )
    await door.open()
    await door.signal(Signal.GRANTED)
    assert marker.read_text() == "open\n"
    assert feedback.read_text() == "granted\n"


async def test_command_door_failures_are_door_errors() -> None:
    failing = CommandDoor(
        CommandDoorConfig(name="f", command=("sh", "-c", "echo jammed >&2; exit 3"))
    )
    with pytest.raises(DoorError, match="exited 3: jammed"):
        await failing.open()
    missing = CommandDoor(CommandDoorConfig(name="m", command=("/nonexistent/open-door",)))
    with pytest.raises(DoorError, match="cannot run /nonexistent/open-door"):
        await missing.open()
    slow = CommandDoor(CommandDoorConfig(name="s", command=("sleep", "30"), timeout=0.2))
    with pytest.raises(DoorError, match="did not finish within 0.2s"):
        await slow.open()
    # A broken feedback script is logged, never raised: the door matters more.
    quiet = CommandDoor(CommandDoorConfig(name="q", command=("true",), feedback_command=("false",)))
    await quiet.signal(Signal.REFUSED)


async def test_keyboard_reader_debounces_and_skips_junk() -> None:
    stream = asyncio.StreamReader()
    reader = KeyboardReader(KeyboardReaderConfig(name="kb", debounce=5.0), stream=stream)
    taps: list[Tap] = []
    task = asyncio.create_task(reader.run(taps.append))
    stream.feed_data(b"0A1B2C3D4E\n\n   \n0A1B2C3D4E\n\x1b[A\nB2\r\n")
    stream.feed_eof()
    for _ in range(100):
        if len(taps) >= 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [t.token for t in taps] == ["0A1B2C3D4E", "B2"]
    assert all(t.direction is Direction.IN and t.reader == "kb" for t in taps)
