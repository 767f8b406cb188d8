"""``StatusServer``: the daemon's status as JSON on a unix socket (no disk writes).

Protocol (one exchange per connection): the client sends ``status\\n``; the server
answers one line of JSON, ``provider()``'s dict plus ``"pid"`` and ``"state_dir"``, and
closes. ``<command> <argument>\n`` runs one of the ``commands`` given (e.g. ``enrol
front``: put a reader in enrolment mode) and answers its dict. Anything else gets
``{"error": ...}``. The socket is mode 0660 (the service's
group may ask; root always can), its directory 0700 when we create it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

SOCKET_MODE = 0o660
REQUEST_TIMEOUT = 2.0  # seconds a client gets to send its line
MAX_REQUEST = 256


class StatusServer:
    """Serve ``provider()`` on the unix socket ``path`` until cancelled.

    ``path``'s directory is created if missing; a leftover socket file is replaced (the
    caller holds the state directory's lock, so no other daemon answers there)."""

    def __init__(
        self,
        path: Path,
        provider: Callable[[], dict[str, Any]],
        *,
        state_dir: Path | None = None,
        commands: Mapping[str, Callable[[str], dict[str, Any]]] | None = None,
    ) -> None:
        self.path = path
        self._commands = dict(commands or {})
        self._provider = provider
        self._state_dir = state_dir
        self.started = asyncio.Event()

    async def run(self) -> None:
        """Raises OSError when the socket cannot be made (the caller logs it; status
        is not worth stopping the doors for)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = self.path.parent.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (os.geteuid(), 0):
            # A shared tmpfs (/dev/shm): someone else's directory could swap our socket.
            raise PermissionError(f"{self.path.parent} is not a directory of uid {os.geteuid()}")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        # Born with the process's umask (0077 under `run`: narrower than wanted, never
        # wider), then opened to the group. Not by changing the umask: it is
        # process-wide, and SQLite's thread may be creating a file at that moment.
        server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(SOCKET_MODE)
        log.debug("status_socket", path=str(self.path))
        self.started.set()
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                line = await reader.readline()
            answer = self._answer(line[:MAX_REQUEST].strip())
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            async with asyncio.timeout(REQUEST_TIMEOUT):
                await writer.drain()
        except (TimeoutError, OSError):
            pass  # a client that went away or never spoke; nothing to tell anyone
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    await writer.wait_closed()

    def _answer(self, request: bytes) -> dict[str, Any]:
        verb, _, argument = request.decode("utf-8", "replace").partition(" ")
        if verb in self._commands and argument:
            try:
                return self._commands[verb](argument.strip())
            except Exception as exc:  # a command's bug must not cost the daemon
                log.exception("status_command_failed", command=verb)
                return {"error": f"{verb} failed: {exc!r}"}
        if request != b"status":
            return {"error": "unknown request; send 'status'"}
        try:
            body = dict(self._provider())
        except Exception as exc:  # a status bug must not cost the daemon
            log.exception("status_failed")
            body = {"error": f"status failed: {exc!r}"}
        body.setdefault("pid", os.getpid())
        if self._state_dir is not None:
            body.setdefault("state_dir", str(self._state_dir))
        return body
