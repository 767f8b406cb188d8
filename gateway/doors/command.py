"""A door opened by running a command (a relay script, a smart-lock CLI, an HTTP call)."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from gateway.config.model import CommandDoorConfig
from gateway.errors import DoorError
from gateway.model import Signal

log = structlog.get_logger(__name__)


class CommandDoor:
    def __init__(self, cfg: CommandDoorConfig) -> None:
        self._cfg = cfg
        self._log = log.bind(door=cfg.name)

    @property
    def name(self) -> str:
        return self._cfg.name

    async def open(self) -> None:
        await self._run(self._cfg.command)

    async def signal(self, signal: Signal) -> None:
        if self._cfg.feedback_command is None:
            return
        try:
            await self._run((*self._cfg.feedback_command, signal.value))
        except DoorError as exc:
            # Feedback is a courtesy; a broken LED script must not affect the door.
            self._log.warning("feedback_failed", signal=signal.value, error=str(exc))

    async def _run(self, argv: tuple[str, ...]) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise DoorError(f"door {self.name}: cannot run {argv[0]}: {exc.strerror}") from exc
        try:
            async with asyncio.timeout(self._cfg.timeout):
                _, stderr = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise DoorError(
                f"door {self.name}: {argv[0]} did not finish within {self._cfg.timeout}s"
            ) from None
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            detail = stderr.decode(errors="replace").strip()[-200:]
            raise DoorError(f"door {self.name}: {argv[0]} exited {proc.returncode}: {detail}")

    async def aclose(self) -> None:
        return None
