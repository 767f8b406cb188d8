"""Card numbers and PINs read by the Wiegand and HID readers never reach a log, in any
form (facility,card, the whole number in decimal or hex, typed digits), on the good path
or the bad (parity errors, swapped lines, half tokens, unplugging). The events are
captured before the central redaction: the readers must mask what they log themselves."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import structlog
from structlog.testing import capture_logs

from gateway.config.model import HidReaderConfig, WiegandReaderConfig
from gateway.model import Tap
from gateway.readers.hid.reader import HidReader
from gateway.readers.link import LinkPolicy
from gateway.readers.wiegand.formats import H10301, encode
from gateway.readers.wiegand.reader import WiegandReader
from tests.gpio_bench import FakeChip
from tests.input_bench import EventDevice
from tests.test_hid_reader import as_events, keystrokes, now_ns

CARD = (123, 45678)
CARD_FORMS = ("123,45678", str((123 << 16) | 45678), format((123 << 16) | 45678, "X"))
TYPED = "0004123456"
PIN = "864213"


def send(chip: FakeChip, value: int, length: int, d0: int = 6, d1: int = 7) -> None:
    for i in range(length):
        line = d1 if (value >> (length - 1 - i)) & 1 else d0
        chip.set_input(line, False)
        chip.set_input(line, True)


async def until(condition: object) -> None:
    async with asyncio.timeout(5):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_no_card_number_or_pin_in_any_log(tmp_path: Path) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    chip = FakeChip()
    device = EventDevice("/dev/input/by-id/usb-reader-event-kbd")
    taps: list[Tap] = []
    try:
        with capture_logs() as logs:
            wiegand = WiegandReader(
                WiegandReaderConfig(
                    name="gate", chip=chip.chip_path, d0_line=6, d1_line=7, keypad=True
                ),
                open_chip=chip.open_chip,
            )
            hid = HidReader(
                HidReaderConfig(name="usb", device=device.path, token_timeout=0.05),
                open_device=lambda path: device,
                policy=LinkPolicy(first_delay=0.01, cap=0.02),
            )
            tasks = [asyncio.create_task(r.run(taps.append)) for r in (wiegand, hid)]
            await until(lambda: 6 in chip.requests and hid.stats.opens == 1)
            good = encode(H10301, *CARD)
            send(chip, good ^ 1, 26)  # parity
            await asyncio.sleep(0.04)
            for _ in range(2):  # swapped lines
                send(chip, good ^ ((1 << 26) - 1), 26)
                await asyncio.sleep(0.04)
            send(chip, good, 26)
            await asyncio.sleep(0.04)
            for key in [*map(int, PIN), 11]:
                send(chip, ((key ^ 0xF) << 4) | key, 8)
                await asyncio.sleep(0.03)
            device.push(as_events(keystrokes(TYPED[:6], now_ns())[:-2]))  # half, dropped
            await until(lambda: hid.stats.partial == 1)
            device.push(as_events(keystrokes(TYPED, now_ns())))
            await until(lambda: len(taps) == 3)
            device.unplug()
            await until(lambda: hid.stats.opens == 2 or hid.state.value == "reconnecting")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        chip.close()
        structlog.reset_defaults()
    assert sorted(t.token for t in taps) == sorted([CARD_FORMS[0], PIN, TYPED])
    text = repr(logs)
    assert any(e["event"] == "wiegand_tap" for e in logs)
    assert any(e["event"] == "hid_tap" for e in logs)
    for secret in (*CARD_FORMS, PIN, TYPED, TYPED[:6], format(good, "b")):
        assert secret not in text, f"{secret!r} logged"
