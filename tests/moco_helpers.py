"""A gateway wired to the simulated Cobot and the simulated MOCO over real HTTP, with a
clock the test moves (wall and monotonic together; MOCO's clock follows it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.decide import Decision
from gateway.moco.keys import MocoKeys
from gateway.moco_sim import ACCOUNT_KEY, MocoSpace, demo_moco, run_moco_sim
from gateway.moco_sim.clock import StepClock
from gateway.model import Direction
from gateway.readers.base import make_tap
from gateway.sim import ADMIN_TOKEN, SimSpace, demo_space, run_sim
from gateway.sim.clock import BusinessClock
from tests.harness import RecordingDoor

STAFF = "7F00000001"  # user 933590696, acted for by the account key (no Cobot member)
STAFF_OWN_KEY = "7F0000000A"  # user 933590697, with a key of their own
USER = 933590696
USER_OWN = 933590697
OWN_KEY = "moco-user-key-933590697"


@dataclass
class MocoRig:
    moco: MocoSpace
    cobot: SimSpace
    gateway: Gateway
    door: RecordingDoor
    clock: StepClock
    decisions: list[Decision] = field(default_factory=list)

    async def tap(self, token: str, reader: str = "staff") -> Decision:
        door = self.door if reader == "front" else None
        tap = make_tap(reader, token, Direction.IN, self.clock)
        return await self.gateway.decider.decide(tap, door, self.gateway.reader_rule(reader, door))

    def moco_requests(self, method: str | None = None, suffix: str = "") -> int:
        return sum(
            1
            for r in self.moco.requests
            if (method is None or r.method == method) and r.path.endswith(suffix)
        )


def moco_config(state_dir: Path, cobot_url: str, moco_url: str, **moco: Any) -> dict[str, Any]:
    return {
        "gateway": {"state_dir": str(state_dir)},
        "cobot": {"base_url": cobot_url},
        "moco": {
            "base_url": moco_url,
            "min_interval": 60,
            "users": [
                {"token": STAFF, "user_id": USER},
                {"token": STAFF_OWN_KEY.lower(), "user_id": USER_OWN, "api_key_file": "/dev/null"},
            ],
            **moco,
        },
        "readers": [
            {"type": "keyboard", "name": "staff", "record": ["moco"]},
            {"type": "keyboard", "name": "front", "door": "front", "record": ["cobot", "moco"]},
        ],
        "doors": [{"name": "front", "type": "command", "command": ["true"]}],
    }


@contextlib.asynccontextmanager
async def moco_rig(
    tmp_path: Path,
    *,
    moco: MocoSpace | None = None,
    cobot: SimSpace | None = None,
    clock: StepClock | None = None,
    keys: MocoKeys | None = None,
    admin: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[MocoRig]:
    """``admin``: an ``[admin]`` table (the page is up before this yields)."""
    moco = moco or demo_moco()
    cobot = cobot or demo_space()
    clock = clock or StepClock()
    moco.clock = BusinessClock(moco.clock.zone, wall=clock.now)
    keys = keys or MocoKeys(ACCOUNT_KEY, {USER_OWN: OWN_KEY})
    async with run_sim(cobot) as cobot_url, run_moco_sim(moco) as moco_url:
        data = moco_config(tmp_path / "state", cobot_url, moco_url, **settings)
        if admin is not None:
            data["admin"] = admin
        cfg = parse_config(data, "test")
        door = RecordingDoor()
        decisions: list[Decision] = []
        gw = Gateway(
            cfg,
            ADMIN_TOKEN,
            doors={"front": door},
            readers=[],
            hooks=[decisions.append],
            clock=clock,
            moco_keys=keys,
        )
        task = asyncio.create_task(gw.run())
        await asyncio.wait_for(gw.ready.wait(), 5)
        await gw.sync.sync_once()
        if admin is not None:
            await eventually(lambda: gw.admin is not None and bool(gw.admin.addresses), 5)
        try:
            yield MocoRig(moco, cobot, gw, door, clock, decisions)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def eventually(predicate: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
