"""Faults a test switches on while the simulator runs: the ways Cobot fails in the field.

``space.faults.mode``:

- ``None``: normal service.
- ``"hang"``: accept the request and never answer until the fault is cleared (then the
  request is served normally) or the server stops (then the connection is dropped).
- ``"garbage"``: 200 with a body that is not JSON.
- ``"error"``: ``status`` (503 by default; 500 works too) with a short text body.
- ``"slow"``: answer after ``delay`` seconds.

``commit`` says whether the request takes effect before the fault: False (default) is a
failure in front of Cobot (a proxy, the network), True is Cobot doing the work and the
answer getting lost: the case where a client must not resend blindly. ``paths``
restricts the fault to some path templates (``"/api/check_ins"``) or literal paths;
``count`` to the next N matching requests.

``on_request`` is called with every routed request before anything else (sync or async).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

FaultMode = Literal["hang", "garbage", "error", "slow"]
FAULT_MODES: frozenset[str] = frozenset({"hang", "garbage", "error", "slow"})
GARBAGE_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n\x00\xff"


@dataclass(frozen=True, slots=True)
class SimRequest:
    """What ``on_request`` hooks see."""

    method: str
    path: str
    template: str
    query: dict[str, str]
    user: str | None  # the access token's label; None when unauthenticated


RequestHook = Callable[[SimRequest], Awaitable[None] | None]


class Faults:
    def __init__(self) -> None:
        self._mode: FaultMode | None = None
        self.paths: frozenset[str] | None = None
        self.count: int | None = None
        self.commit = False
        self.status = 503
        self.delay = 5.0
        self.on_request: RequestHook | None = None
        self.hits = 0  # requests a fault was applied to
        self.dropped = 0  # hung or slow requests dropped unanswered when the server stopped
        self._changed = asyncio.Event()

    @property
    def mode(self) -> FaultMode | None:
        return self._mode

    @mode.setter
    def mode(self, mode: FaultMode | None) -> None:
        if mode is not None and mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {sorted(FAULT_MODES)}")
        self._mode = mode
        self._notify()

    def set(
        self,
        mode: FaultMode | None,
        *,
        paths: Iterable[str] | None = None,
        count: int | None = None,
        commit: bool = False,
        status: int = 503,
        delay: float = 5.0,
    ) -> None:
        """Switch a fault on (or off with None) with all its options at once."""
        self.paths = frozenset(paths) if paths is not None else None
        self.count = count
        self.commit = commit
        self.status = status
        self.delay = delay
        self.mode = mode

    def clear(self) -> None:
        self.set(None)

    def take(self, path: str, template: str) -> FaultMode | None:
        """The fault to apply to this request, if any (counts it against ``count``)."""
        mode = self._mode
        if mode is None:
            return None
        if self.paths is not None and path not in self.paths and template not in self.paths:
            return None
        if self.count is not None:
            if self.count <= 0:
                return None
            self.count -= 1
        self.hits += 1
        return mode

    def hanging(self, path: str, template: str) -> bool:
        """Whether a hung request must keep waiting (the fault still covers it)."""
        return self._mode == "hang" and (
            self.paths is None or path in self.paths or template in self.paths
        )

    async def changed(self) -> None:
        """Wait until the fault settings change."""
        await self._changed.wait()

    def _notify(self) -> None:
        # Wake every waiter, then arm a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    async def call_hook(self, request: SimRequest) -> None:
        hook = self.on_request
        if hook is None:
            return
        result: Any = hook(request)
        if isinstance(result, Awaitable):
            await result
