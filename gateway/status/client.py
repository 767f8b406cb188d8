"""Asking a running daemon for its status (``checkin-gateway status``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError

ASK_TIMEOUT = 3.0  # seconds: a loaded Pi answers in milliseconds; a hung one never


class StatusUnavailable(GatewayError):
    """No answer on the status socket; the message says what happened."""


async def ask(path: Path, wait: float = ASK_TIMEOUT, request: str = "status") -> dict[str, Any]:
    """The daemon's status dict from the socket at ``path`` (or its answer to another
    ``request``, e.g. ``enrol front``); raises StatusUnavailable."""
    try:
        async with asyncio.timeout(wait):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                writer.write(request.encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except TimeoutError:
        raise StatusUnavailable(f"no answer on {path} within {wait:.0f} s") from None
    except (FileNotFoundError, ConnectionRefusedError):
        raise StatusUnavailable(f"nothing listens on {path}") from None
    except OSError as exc:
        raise StatusUnavailable(f"cannot ask {path}: {exc.strerror or exc}") from None
    try:
        answer = json.loads(line)
    except ValueError:
        raise StatusUnavailable(f"garbled answer on {path}: {line[:80]!r}") from None
    if not isinstance(answer, dict):
        raise StatusUnavailable(f"garbled answer on {path}: {line[:80]!r}")
    return answer
