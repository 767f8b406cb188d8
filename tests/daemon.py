"""Running ``python -m gateway run`` as a real subprocess, reading its JSON logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class Daemon:
    def __init__(
        self,
        config: Path,
        env: dict[str, str],
        *,
        stdin_pipe: bool = False,
        prefix: list[str] | None = None,
    ) -> None:
        """``stdin_pipe``: give the daemon a pipe on stdin (a keyboard reader that can
        read); by default it gets /dev/null, as under systemd. ``prefix``: a command the
        daemon runs under (e.g. ``setpriv``)."""
        self.prefix = prefix or []
        self.config = config
        self.env = env
        self._stdin = asyncio.subprocess.PIPE if stdin_pipe else asyncio.subprocess.DEVNULL
        self.events: list[dict[str, Any]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._new = asyncio.Event()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.prefix,
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(self.config),
            cwd=REPO,
            env={**os.environ, **self.env},
            stdin=self._stdin,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode(errors="replace").strip()
            try:
                event = json.loads(text)
            except ValueError:
                event = {"event": "raw", "text": text}
            self.events.append(event)
            self._new.set()

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool] | str, timeout: float = 15.0
    ) -> dict[str, Any]:
        test = (lambda e: e.get("event") == match) if isinstance(match, str) else match
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if test(event):
                        return event
                seen = len(self.events)
                if self.proc is not None and self.proc.returncode is not None:
                    raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log()}")
                self._new.clear()
                await self._new.wait()

    def log(self) -> str:
        return "\n".join(json.dumps(e) for e in self.events[-40:])

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout)
        return rc

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
