"""An in-process gateway with ``[mqtt]`` against the simulated Cobot and a real broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.model import Direction
from gateway.readers.base import ReaderState, TapSink, make_tap
from gateway.sim import ADMIN_TOKEN, SimSpace, demo_space, run_sim
from tests.harness import RecordingDoor


class PushReader:
    """A reader whose taps the test pushes; it goes through the gateway's real queue."""

    def __init__(self, name: str = "front") -> None:
        self._name = name
        self.sink: TapSink | None = None
        self.state = ReaderState.READY

    @property
    def name(self) -> str:
        return self._name

    async def run(self, sink: TapSink) -> None:
        self.sink = sink
        await asyncio.Event().wait()

    def push(self, token: str, clock: Any) -> None:
        assert self.sink is not None
        self.sink(make_tap(self._name, token, Direction.IN, clock))


@dataclass
class MqttRig:
    gateway: Gateway
    door: RecordingDoor
    reader: PushReader
    space: SimSpace

    async def tap(self, token: str) -> None:
        self.reader.push(token, self.gateway.clock)
        async with asyncio.timeout(5):
            await self.gateway.settle()


@contextlib.asynccontextmanager
async def mqtt_gateway(
    tmp_path: Path,
    mqtt: dict[str, Any],
    *,
    name: str = "gw1",
    settle: bool = True,
    door_config: dict[str, Any] | None = None,
    door: Any = None,
) -> AsyncIterator[MqttRig]:
    space = demo_space()
    async with run_sim(space) as base_url:
        raw = {
            "gateway": {"state_dir": str(tmp_path / f"state-{name}"), "name": name},
            "cobot": {"base_url": base_url},
            "readers": [{"name": "front", "type": "keyboard", "door": "front"}],
            "doors": [door_config or {"name": "front", "type": "command", "command": ["true"]}],
            "mqtt": mqtt,
        }
        cfg = parse_config(raw, "test")
        door = door or RecordingDoor()
        reader = PushReader()
        gw = Gateway(cfg, ADMIN_TOKEN, doors={"front": door}, readers=[reader])
        task = asyncio.create_task(gw.run())
        await asyncio.wait_for(gw.ready.wait(), 5)
        if settle:
            await gw.sync.sync_once()
        try:
            yield MqttRig(gw, door, reader, space)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
