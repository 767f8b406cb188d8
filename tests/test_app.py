"""The daemon's top level: a clean stop leaves no task or thread behind."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.config.model import KeyboardReaderConfig
from gateway.readers.keyboard import KeyboardReader
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.seed import ADA, RDM_TOKEN
from tests.harness import RecordingDoor, eventually, gateway_config


async def test_stop_leaves_no_tasks_or_threads(tmp_path: Path) -> None:
    threads_before = set(threading.enumerate())
    space = demo_space()
    async with run_sim(space) as base_url:
        raw = gateway_config(tmp_path / "state", base_url)
        raw["readers"] = [{"name": "kb", "type": "keyboard", "door": "front"}]
        cfg = parse_config(raw, "test")
        stream = asyncio.StreamReader()
        reader = KeyboardReader(KeyboardReaderConfig(name="kb", door="front"), stream=stream)
        door = RecordingDoor()
        gw = Gateway(cfg, ADMIN_TOKEN, doors={"front": door}, readers=[reader])
        tasks_before = asyncio.all_tasks()
        task = asyncio.create_task(gw.run())
        await asyncio.wait_for(gw.ready.wait(), 5)
        await gw.sync.sync_once()
        stream.feed_data(f"{RDM_TOKEN}\n".encode())
        await eventually(lambda: door.opened == 1)
        await eventually(lambda: len(space.check_ins_of(ADA)) == 1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)
        leftover = asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
        assert not leftover, leftover
    # aiosqlite's worker thread and every other thread we started have ended (the loop's
    # default executor, asyncio_N, is the loop's own and ends with it).
    await asyncio.sleep(0.1)
    left = {t for t in threading.enumerate() if not t.name.startswith("asyncio_")}
    assert left <= threads_before | {threading.main_thread()}
