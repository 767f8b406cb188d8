"""A gateway wired to the simulated Cobot server over real HTTP, for tests and benches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.clock import SYSTEM_CLOCK, SystemClock
from gateway.config import parse_config
from gateway.decide import Decision
from gateway.doors.base import DoorSignal
from gateway.model import Direction, Tap
from gateway.readers.base import make_tap
from gateway.sim import ADMIN_TOKEN, SimSpace, demo_space, run_sim


class RecordingDoor:
    def __init__(self, name: str = "front") -> None:
        self._name = name
        self.opened = 0
        self.signals: list[DoorSignal] = []

    @property
    def name(self) -> str:
        return self._name

    async def open(self) -> None:
        self.opened += 1

    async def signal(self, signal: DoorSignal) -> None:
        self.signals.append(signal)

    async def aclose(self) -> None:
        return None


@dataclass
class Rig:
    space: SimSpace
    base_url: str
    gateway: Gateway
    door: RecordingDoor
    decisions: list[Decision] = field(default_factory=list)

    async def tap(self, token: str, direction: Direction = Direction.IN) -> Decision:
        tap: Tap = make_tap("front", token, direction, self.gateway.clock)
        return await self.gateway.decider.decide(tap, self.door)

    def api_calls(self, path_prefix: str = "/api") -> int:
        return sum(1 for r in self.space.requests if r.path.startswith(path_prefix))


def gateway_config(state_dir: Path, base_url: str, **gateway: Any) -> dict[str, Any]:
    return {
        "gateway": {"state_dir": str(state_dir), **gateway},
        "cobot": {"base_url": base_url},
        "doors": [{"name": "front", "type": "command", "command": ["true"]}],
    }


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path,
    space: SimSpace | None = None,
    token: str = ADMIN_TOKEN,
    *,
    door: Any = None,
    clock: SystemClock = SYSTEM_CLOCK,
    **gateway: Any,
) -> AsyncIterator[Rig]:
    space = space or demo_space()
    async with run_sim(space) as base_url:
        cfg = parse_config(gateway_config(tmp_path / "state", base_url, **gateway), "test")
        door = door or RecordingDoor()
        decisions: list[Decision] = []
        gw = Gateway(
            cfg, token, doors={"front": door}, readers=[], hooks=[decisions.append], clock=clock
        )
        task = asyncio.create_task(gw.run())
        await asyncio.wait_for(gw.ready.wait(), 5)
        await gw.sync.sync_once()
        try:
            yield Rig(space, base_url, gw, door, decisions)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def eventually(predicate: Any, timeout: float = 5.0) -> None:
    """Wait for a condition the system reaches by itself (delivery in the background)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
