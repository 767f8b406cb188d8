"""The gateway with a Wiegand reader and a GPIO door on one modelled chip: a card's
edges become a tap, the simulated Cobot accepts the check-in, the relay line goes high."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.config.model import GpioDoorConfig, WiegandReaderConfig
from gateway.doors.gpio import GpioDoor
from gateway.readers.wiegand.formats import H10301, encode
from gateway.readers.wiegand.reader import WiegandReader
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from tests.gpio_bench import FakeChip
from tests.harness import eventually, gateway_config

LOCK, D0, D1 = 0, 6, 7
CARD_TOKEN = "042,01234"  # facility 42, card 1234, as printed on the card


def send(bench: FakeChip, value: int, length: int) -> None:
    for i in range(length):
        line = D1 if (value >> (length - 1 - i)) & 1 else D0
        bench.set_input(line, False)
        bench.set_input(line, True)


async def test_a_wiegand_card_opens_the_gpio_door_and_checks_in(tmp_path: Path) -> None:
    space = demo_space()
    member = space.add_member("Ida Wiegand", "ida@example.com", "ida-demo", tokens=[CARD_TOKEN])
    bench = FakeChip()
    async with run_sim(space) as base_url:
        raw = gateway_config(tmp_path / "state", base_url)
        raw["readers"] = [
            {"name": "gate", "type": "wiegand", "chip": bench.chip_path, "d0_line": D0,
             "d1_line": D1, "door": "front"},
        ]  # fmt: skip
        raw["doors"] = [
            {"name": "front", "type": "gpio", "chip": bench.chip_path, "line": LOCK, "pulse": 0.5}
        ]
        cfg = parse_config(raw, "test")
        reader_cfg = cfg.readers[0]
        door_cfg = cfg.doors[0]
        assert isinstance(reader_cfg, WiegandReaderConfig)
        assert isinstance(door_cfg, GpioDoorConfig)
        door = GpioDoor(door_cfg, open_chip=bench.open_chip)
        reader = WiegandReader(reader_cfg, open_chip=bench.open_chip)
        gw = Gateway(cfg, ADMIN_TOKEN, doors={"front": door}, readers=[reader])
        task = asyncio.create_task(gw.run())
        try:
            await asyncio.wait_for(gw.ready.wait(), 5)
            await gw.sync.sync_once()
            await eventually(lambda: D0 in bench.requests)
            assert not bench.output_high(LOCK)
            send(bench, encode(H10301, 42, 1234), 26)
            await eventually(lambda: bench.output_high(LOCK))
            await eventually(lambda: len(space.check_ins_of(member.id)) == 1)
            await eventually(lambda: not bench.output_high(LOCK))  # relocked after the pulse
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await door.aclose()
            bench.close()
