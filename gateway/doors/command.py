"""A door opened by running a command (a relay script, a smart-lock CLI, an HTTP call).

The door counts as opened only when the command exits 0 within ``timeout``. Anything
else (it cannot start, it exits non-zero, a signal kills it, it runs past the timeout)
raises ``DoorError``, so what Cobot is told agrees with what the door did.

The command runs in its own session (hence its own process group): at the timeout, or
when the tap is cancelled, the whole group is killed, so a script that started children
(``sleep``, ``curl``) neither holds the next member behind it nor leaves them running.
Children a script leaves in the background after exiting 0 are left alone (a script may
relock the strike from a background ``sleep 3; relay off``).

stderr goes to a pipe we own and read as it comes (keeping a bounded tail for the error
message), not to asyncio's pipe transport: a background child holding stderr open must
not keep ``wait`` from returning when the command itself has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence

import structlog

from gateway.config.model import CommandDoorConfig
from gateway.doors.base import DoorSignal
from gateway.errors import DoorError

log = structlog.get_logger(__name__)

STDERR_TAIL = 2048  # bytes of a failing command's stderr kept for its error message
STDERR_SHOWN = 200  # characters of it in the message
# After a kill, how long to wait for the kernel to reap the command (SIGKILL cannot be
# ignored; this bounds a process stuck in uninterruptible sleep on a dead device).
REAP_DEADLINE = 2.0


class _StderrTail:
    """Reads our end of the stderr pipe on the loop, keeping its last ``STDERR_TAIL`` bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self._loop = loop
        self._fd = fd
        self._tail = bytearray()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._read)  # the bool it returns is ignored there

    def _read(self) -> bool:
        """One read; True when it got bytes (more may wait)."""
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        if not chunk:  # every writer closed it
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            return False
        self._tail += chunk
        del self._tail[:-STDERR_TAIL]
        return True

    def text(self) -> str:
        """What the command wrote so far (draining what waits; never blocks).

        The reader stays on until every writer has closed the pipe, then closes our
        end: a background child of a successful command that still writes to stderr
        must not die of SIGPIPE because we stopped listening.
        """
        while self._fd >= 0 and self._read():
            pass
        return self._tail.decode(errors="replace").strip()[-STDERR_SHOWN:]


def _kill_group(pgid: int) -> None:
    """SIGKILL every process in the group (the command and whatever it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def run_command(what: str, argv: Sequence[str], seconds: float) -> None:
    """Run ``argv`` to completion within ``seconds``; return on exit 0.

    Raises ``DoorError`` (message starting with ``what``) when it cannot be started,
    exits non-zero, is killed by a signal, or runs past ``seconds`` (then its whole
    process group is killed first). On cancellation the group is killed and the
    ``CancelledError`` propagates.
    """
    if not argv:
        raise DoorError(f"{what}: empty command")  # config validation prevents this
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=write_fd,
            start_new_session=True,  # own session and process group: killable as one
        )
    except OSError as exc:
        os.close(read_fd)
        raise DoorError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}") from exc
    finally:
        os.close(write_fd)  # the child has its copy; ours would keep the pipe open forever
    stderr = _StderrTail(loop, read_fd)
    pgid = proc.pid  # a session leader's group id is its pid
    try:
        async with asyncio.timeout(seconds):
            returncode = await proc.wait()
    except TimeoutError:
        _kill_group(pgid)
        await _reap(proc)
        stderr.text()
        raise DoorError(
            f"{what}: {argv[0]} did not finish within {seconds}s; killed it and its children"
        ) from None
    except BaseException:  # cancelled: the tap is being abandoned, take the command down
        _kill_group(pgid)
        await _reap(proc)
        stderr.text()
        raise
    detail = stderr.text()
    if returncode == 0:
        return
    if returncode < 0:
        name = _signal_name(-returncode)
        raise DoorError(f"{what}: {argv[0]} was killed by {name}" + (f": {detail}" * bool(detail)))
    raise DoorError(f"{what}: {argv[0]} exited {returncode}" + (f": {detail}" * bool(detail)))


async def _reap(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(REAP_DEADLINE):
            await asyncio.shield(proc.wait())


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class CommandDoor:
    def __init__(self, cfg: CommandDoorConfig) -> None:
        self._cfg = cfg
        self._log = log.bind(door=cfg.name)

    @property
    def name(self) -> str:
        return self._cfg.name

    async def open(self) -> None:
        await run_command(f"door {self.name}", self._cfg.command, self._cfg.timeout)

    async def signal(self, signal: DoorSignal) -> None:
        if self._cfg.feedback_command is None:
            return
        try:
            # The same deadline and group kill as the door: a hung LED script is killed.
            await run_command(
                f"door {self.name} feedback",
                (*self._cfg.feedback_command, signal.value),
                self._cfg.timeout,
            )
        except DoorError as exc:
            # Feedback is a courtesy; a broken LED script must not affect the door.
            self._log.warning("feedback_failed", signal=signal.value, error=str(exc))

    async def aclose(self) -> None:
        return None
