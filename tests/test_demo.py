"""`make demo` is the first thing a newcomer runs: it must keep working."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from gateway.sim.seed import NO_PASS_TOKEN, UNCONFIRMED_TOKEN
from tests.daemon import REPO


def test_demo_tells_what_happened_to_each_tap() -> None:
    # The last card is the staff card: clocked at the simulated MOCO.
    script = "0A1B2C3D4E\n0A00000002\nout 0A1B2C3D4E\n5E00000001\nquit\n"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "demo"],
        input=script,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "Ready: 6 cards synced from Cobot" in out
    assert "who    Ada Lovelace" in out
    assert "door   OPEN" in out
    assert "check-in landed for Ada Lovelace" in out
    assert "Cobot's preview said no: No time passes left." in out
    assert "door   stays SHUT" in out
    assert "check-out sent to Cobot" in out
    assert "https://YOUR-SPACE.cobot.me" in out  # how to point it at a real space
    assert "John Doe (staff)" in out
    assert "a staff card, clocked at MOCO" in out
    assert "moco   clocked IN" in out
    assert "0A1B2C3D4E" in out and "********4E" in out  # listed as demo data, taps redacted


class Demo:
    """The demo as a process, driven line by line like a person at the keyboard."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out = ""

    @classmethod
    async def start(cls) -> Demo:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "demo",
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        demo = cls(proc)
        await demo.until("Tap away.")
        return demo

    async def until(self, text: str, timeout: float = 30.0) -> str:
        """Output up to and including the line holding ``text`` (from the last mark)."""
        assert self.proc.stdout is not None
        start = len(self.out)
        async with asyncio.timeout(timeout):
            while text not in self.out[start:]:
                line = await self.proc.stdout.readline()
                assert line, f"demo ended before {text!r}: {self.out[start:]}"
                self.out += line.decode()
        return self.out[start:]

    async def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()


async def test_the_demo_says_what_really_happened() -> None:
    demo = await Demo.start()
    try:
        assert 'offline_policy = "known-tokens" (the default), every card' in demo.out
        assert "members Cobot would refuse online" in demo.out
        assert 'offline_policy = "deny"' in demo.out
        assert "checkin-gateway login --config /etc/checkin-gateway/config.toml" in demo.out
        await demo.type("out")
        assert "out needs a card number: out CARD" in await demo.until("out needs")
        await demo.type("out 0A00000001")  # Katherine, not checked in
        told = await demo.until("nothing to check out")
        assert "cobot  check-out sent to Cobot" in told
        assert "Katherine Johnson was not checked in: nothing to check out" in told
        assert "checked out\n" not in told
        await demo.type("status")
        assert "  online, 6 cards cached" in await demo.until("refused by Cobot")
        await demo.type("offline")
        await demo.until("never answers")
        await demo.type(NO_PASS_TOKEN)  # Alan: Cobot would refuse him online
        told = await demo.until("time   ")
        assert "offline: the card is in the local cache, so it gets in" in told
        assert "Cobot was asked but did not answer in time" in told
        assert "door   OPEN" in told
        await demo.type(UNCONFIRMED_TOKEN)  # the breaker is open now: nobody asks Cobot
        told = await demo.until("time   ")
        assert "Cobot was not asked: it has not answered lately" in told
        assert "did not answer in time" not in told
        await demo.type("status")
        assert "  offline, 6 cards cached, 2 check-ins queued" in await demo.until("refused by")
        await demo.type("online")
        told = await demo.until("queued check-in of ", timeout=60)
        told += await demo.until("queued check-in of ", timeout=60)
        assert "queued check-in of Alan Turing refused: No time passes left." in told
        await demo.type("status")
        told = await demo.until("refused by Cobot on replay")
        told += await demo.until("check-in of ", timeout=10)
        # (Whether it says online here depends on the drainer counting a refusal as an
        # answer: issue 10, case 5.)
        assert "2 refused by Cobot on replay" in told
        assert "check-in of Alan Turing: No time passes left." in told
    finally:
        demo.proc.send_signal(signal.SIGINT)  # Ctrl-C
        async with asyncio.timeout(30):
            rest, err = await demo.proc.communicate()
    assert demo.proc.returncode == 0, err.decode()
    assert rest.decode().rstrip().endswith("demo stopped (Ctrl-C or SIGTERM)")
    assert "Traceback" not in err.decode()


def test_ctrl_c_under_make_demo_stops_cleanly(tmp_path: Path) -> None:
    # The demo's venv stands ready (its stamp newer than the Makefile): no pip here.
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()
    pid, fd = pty.fork()
    if pid == 0:  # the child: make in a terminal, as a person runs it
        os.chdir(REPO)
        os.execvp("make", ["make", "demo", f"DEMO_VENV={venv}", f"DEMO_PY={sys.executable}"])
    out = b""

    def read_until(marker: bytes, timeout: float) -> None:
        nonlocal out
        end = time.monotonic() + timeout
        while marker not in out and time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    try:
        read_until(b"Tap away.", 60)
        assert b"Tap away." in out, out.decode(errors="replace")
        os.write(fd, b"\x03")  # Ctrl-C, through the terminal to make and the demo
        read_until(b"demo stopped", 30)
        read_until(b"\n$$$", 1)  # anything make would add after it
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    assert "demo stopped (Ctrl-C or SIGTERM)" in text
    assert "Error" not in text and "Traceback" not in text and "make: ***" not in text


def test_the_demo_needs_only_its_small_environment() -> None:
    """`make demo` installs DEMO_REQUIREMENTS only: the demo must import no other
    dependency of pyproject.toml (serial, nfc, scapy, gpiod) and no dev tool."""
    makefile = (REPO / "Makefile").read_text()
    line = makefile.split("DEMO_REQUIREMENTS := ", 1)[1].split("\n", 1)[0]
    demo_reqs = [r.strip("'") for r in line.split()]
    assert all(r.startswith("'") for r in line.split())  # quoted: ">=" is a redirection
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert set(demo_reqs) <= set(project["dependencies"])
    code = (
        "import asyncio, io, sys\n"
        "from gateway.cli import main\n"
        "assert asyncio.run(main(['demo'], io.StringIO())) == 0\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input="quit\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    loaded = set(proc.stdout.split())
    assert {"aiohttp", "aiosqlite", "structlog"} <= loaded
    other = {"serial", "serial_asyncio_fast", "nfc", "scapy", "gpiod", "pytest", "playwright"}
    assert loaded & other == set()


def test_the_demo_reads_a_script_file_and_stops_at_dev_null(tmp_path: Path) -> None:
    """Found by a first-time user: `make demo </dev/null` printed asyncio's traceback and
    hung (epoll refuses /dev/null and regular files). A file of commands is read like
    typing; /dev/null is the end of input at once."""
    script = tmp_path / "script.txt"
    script.write_text("0A1B2C3D4E\nquit\n")
    for stdin_path, opened in ((script, True), (Path("/dev/null"), False)):
        with stdin_path.open("rb") as stdin:
            proc = subprocess.run(
                [sys.executable, "-m", "gateway", "demo"],
                stdin=stdin,
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=60,
                check=False,
            )
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr and "Exception" not in proc.stderr, proc.stderr
        assert proc.stdout.rstrip().endswith("demo stopped"), proc.stdout[-500:]
        assert ("door   OPEN" in proc.stdout) is opened


async def test_sigterm_stops_the_demo_cleanly() -> None:
    demo = await Demo.start()
    demo.proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        rest, err = await demo.proc.communicate()
    assert demo.proc.returncode == 0, err.decode()
    assert rest.decode().rstrip().endswith("demo stopped (Ctrl-C or SIGTERM)")
    assert "Traceback" not in err.decode()
