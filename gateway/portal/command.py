"""Running a system command (ip, nft, conntrack) with a deadline, never leaving it behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes

    def error_text(self) -> str:
        return self.stderr.decode(errors="replace").strip()[:500]


async def run(argv: Sequence[str], *, deadline: float, stdin: bytes | None = None) -> Result:
    """Run ``argv``; raises ``OSError`` when it cannot start and ``TimeoutError`` after
    ``deadline`` seconds (the process is killed). On cancellation it is killed too."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(deadline):
            out, err = await proc.communicate(stdin)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            # Reap it so no zombie (or asyncio child watcher warning) is left.
            await asyncio.shield(proc.wait())
    assert proc.returncode is not None
    return Result(proc.returncode, out, err)
