"""The keyboard reader at its edges: stdin it cannot read, over-long lines, invisible
characters; through real file descriptors (a pipe, /dev/null, a file) and a real daemon."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from gateway.config.model import KeyboardReaderConfig
from gateway.errors import ReaderError
from gateway.model import Tap
from gateway.readers.base import ReaderState
from gateway.readers.keyboard import MAX_LINE, KeyboardReader
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from tests.configs import daemon_config
from tests.daemon import Daemon

CFG = KeyboardReaderConfig(name="kb", debounce=0)


@pytest.mark.parametrize("what", ["/dev/null", "a regular file"])
async def test_stdin_that_cannot_be_read_is_one_clear_error(what: str, tmp_path: Path) -> None:
    path = Path("/dev/null") if what == "/dev/null" else tmp_path / "tokens.txt"
    if what != "/dev/null":
        path.write_text("0A1B2C3D4E\n")
    with path.open() as stdin:
        reader = KeyboardReader(CFG, stdin=stdin)
        with pytest.raises(ReaderError) as caught:
            await asyncio.wait_for(reader.run(lambda _tap: None), 5)
    message = str(caught.value)
    assert message.startswith(f"keyboard reader 'kb': standard input is {path}, which cannot")
    assert 'type = "hid"' in message
    assert reader.state is ReaderState.FAILED


@pytest.fixture
def pipe() -> Iterator[tuple[TextIO, int]]:
    """stdin as a real pipe: the reader reads its end, the test writes the other."""
    r, w = os.pipe()
    with os.fdopen(r) as stdin:
        yield stdin, w
    with contextlib.suppress(OSError):  # the test closed it already
        os.close(w)


async def read_taps(reader: KeyboardReader, write: int, data: bytes, count: int) -> list[Tap]:
    taps: list[Tap] = []
    task = asyncio.create_task(reader.run(taps.append))
    try:
        os.write(write, data)
        os.close(write)  # EOF: a last line without its line end still counts
        async with asyncio.timeout(5):
            while reader.state is not ReaderState.STOPPED or len(taps) < count:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return taps


async def test_over_long_lines_are_dropped_whole(pipe: tuple[TextIO, int]) -> None:
    stdin, write = pipe
    reader = KeyboardReader(CFG, stdin=stdin)
    # A 5,000-character paste: none of it, not even its tail, becomes a token.
    data = b"A" * 5000 + b"\n" + b"B" * MAX_LINE + b"\n" + b"member-42"
    taps = await read_taps(reader, write, data, 2)
    assert [t.token for t in taps] == ["B" * MAX_LINE, "member-42"]
    stats = reader.stats
    assert (stats.lines, stats.taps, stats.too_long, stats.invalid) == (2, 2, 1, 0)


async def test_tokens_are_normalised_like_the_serial_line_reader(
    pipe: tuple[TextIO, int],
) -> None:
    stdin, write = pipe
    reader = KeyboardReader(CFG, stdin=stdin)
    lines = [
        "  0A1B2C3D4E\t",  # white space around
        "\ufeffmember-42\u200b",  # a BOM and a zero-width space
        "\x1b[A",  # an arrow key: rejected
        "\u00a0ABC 123\u00a0",  # no-break spaces around, a space inside
    ]
    data = "\r\n".join(lines).encode() + b"\r\n"
    taps = await read_taps(reader, write, data, 3)
    assert [t.token for t in taps] == ["0A1B2C3D4E", "member-42", "ABC 123"]
    assert reader.stats.invalid == 1


@pytest.mark.real
async def test_daemon_with_stdin_dev_null_says_so_once_and_runs_on(tmp_path: Path) -> None:
    async with run_sim(demo_space()) as base_url:
        cfg = daemon_config(tmp_path, base_url, 'name = "kb"\ntype = "keyboard"')
        daemon = Daemon(cfg, {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN})  # stdin is /dev/null
        await daemon.start()
        try:
            failed = await daemon.wait_for("part_stopped")
            assert failed["part"] == "reader-kb"
            assert "standard input is /dev/null" in failed["error"]
            await daemon.wait_for("token_sync")
            # The app restarts a crashed reader after 1 s; give it the chance to.
            await asyncio.sleep(1.5)
            assert [e["event"] for e in daemon.events].count("part_stopped") == 1
            assert not [e for e in daemon.events if e["event"] == "part_crashed"]
            assert not [e for e in daemon.events if "Traceback" in str(e)]
            assert await daemon.stop() == 0
        finally:
            await daemon.kill()
