"""Issue 4 benchmarks: card-present-to-tap latency over nfcpy's UDP driver, stop time,
and the RSS of the gateway with an NFC reader (target: <= 45 MiB with a serial reader).

    make bench            # or: .venv/bin/python -m bench nfc

nfcpy's UDP driver waits 1 s for an answer in a round without a card; a PN53x on USB
or UART answers "no card" in milliseconds. So the latency is given twice: a card put
into an empty field (the UDP driver's 1 s waits included: the worst case) and a card
swapped for another on the reader (every round answered at once: what a real
reader's fast empty rounds look like, bounded by the sense interval).
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import threading
import time
import tty
from pathlib import Path

from bench.common import gateway_process, median, pct, rss_mib, sim_process
from gateway.config.model import NfcReaderConfig
from gateway.model import Tap
from gateway.readers.nfc.reader import NfcReader
from gateway.readers.nfc.worker import Timing
from gateway.sim.seed import ADMIN_TOKEN
from tests.fakecard import Card, CardField

SWAPS = 60
EMPTY_FIELD = 12
STOPS = 5
RUNS = 3
A = Card(bytes.fromhex("04a1b2c3d4e5f6"))
B = Card(bytes.fromhex("04ffeeddccbbaa"))


async def latency() -> None:
    timing = Timing()  # the defaults the gateway runs with
    with CardField() as field:
        taps: list[tuple[Tap, float]] = []
        got = asyncio.Event()

        def sink(tap: Tap) -> None:
            taps.append((tap, time.monotonic()))
            got.set()

        async def present(card: Card) -> tuple[Tap, float, float]:
            """Put ``card`` on the reader: (its tap, when it was put, when the tap came)."""
            got.clear()
            field.present(card)
            placed = time.monotonic()
            async with asyncio.timeout(10):
                await got.wait()
            return (*taps[-1], placed)

        reader = NfcReader(
            NfcReaderConfig(name="bench", device=field.device, lift_time=0.1), timing=timing
        )
        task = asyncio.create_task(reader.run(sink))
        await field.rounds(1)

        # Card put into an empty field, at a random moment of the 1 s UDP round.
        empty: list[float] = []
        for _ in range(EMPTY_FIELD):
            field.lift()
            await field.rounds(2)  # an empty round has passed: the card was lifted
            await asyncio.sleep(random.uniform(0, 1.0))
            _tap, at, placed = await present(A)
            empty.append(at - placed)

        # Cards swapped on the reader: every round is answered within a millisecond.
        swapped: list[float] = []
        hops: list[float] = []
        for i in range(SWAPS):
            await asyncio.sleep(random.uniform(0.2, 0.4))  # > lift_time: the other is gone
            tap, at, placed = await present(B if i % 2 == 0 else A)
            swapped.append(at - placed)
            hops.append(at - tap.mono)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    ms = 1000
    print(f"Sense interval {timing.sense_interval * ms:.0f} ms (the default).")
    print()
    print("| card present -> tap handed to the gateway | p50 | p99 | max |")
    print("|---|---|---|---|")
    print(
        f"| card swapped on the reader (fast rounds, like a PN53x), {SWAPS} taps "
        f"| {pct(swapped, 50) * ms:.0f} ms | {pct(swapped, 99) * ms:.0f} ms "
        f"| {max(swapped) * ms:.0f} ms |"
    )
    print(
        f"| card put into an empty field (UDP driver's 1 s empty rounds), {EMPTY_FIELD} taps "
        f"| {pct(empty, 50) * ms:.0f} ms | {pct(empty, 99) * ms:.0f} ms "
        f"| {max(empty) * ms:.0f} ms |"
    )
    us = 1e6
    print(
        f"| of which: worker thread -> event loop hop | {pct(hops, 50) * us:.0f} µs "
        f"| {pct(hops, 99) * us:.0f} µs | {max(hops) * us:.0f} µs |"
    )
    print()


async def stop_time() -> None:
    def threads() -> int:
        return sum(t.name.startswith("nfc-") for t in threading.enumerate())

    results: dict[str, list[float]] = {"card on the reader": [], "empty field (UDP 1 s round)": []}
    with CardField() as field:
        for label, samples in results.items():
            for _ in range(STOPS):
                if label.startswith("card"):
                    field.present(A)
                else:
                    field.lift()
                reader = NfcReader(NfcReaderConfig(name="bench", device=field.device))
                task = asyncio.create_task(reader.run(lambda tap: None))
                await field.rounds(2)
                await asyncio.sleep(random.uniform(0, 0.5))
                started = time.monotonic()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                samples.append(time.monotonic() - started)
                assert threads() == 0
    print("| stop (cancel run -> worker thread ended) | median | max |")
    print("|---|---|---|")
    for label, samples in results.items():
        ms = [x * 1000 for x in samples]
        print(f"| {label}, {STOPS} stops | {median(ms):.0f} ms | {max(ms):.0f} ms |")
    print()


def _config(tmp: str, base_url: str, nfc_device: str | None, tty_path: str | None) -> Path:
    text = f"""
[gateway]
state_dir = "{tmp}/state"
log_format = "json"
[cobot]
base_url = "{base_url}"
[[doors]]
name = "front"
type = "command"
command = ["true"]
"""
    if tty_path:
        text += f"""
[[readers]]
name = "front"
type = "serial"
port = "{tty_path}"
door = "front"
"""
    if nfc_device:
        text += f"""
[[readers]]
name = "front-nfc"
type = "nfc"
device = "{nfc_device}"
door = "front"
"""
    path = Path(tmp) / "gw.toml"
    path.write_text(text)
    return path


async def _idle_rss(base_url: str, *, nfc: bool, serial: bool, field: CardField) -> float:
    master, slave = os.openpty()
    tty.setraw(master)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = _config(
                tmp, base_url, field.device if nfc else None, os.ttyname(slave) if serial else None
            )
            wanted = [b'"event": "ready"']
            if nfc:
                wanted.append(b'"nfc_reader_ready"')
            if serial:
                wanted.append(b'"serial_reader_ready"')
            async with gateway_process(cfg, ready_events=wanted, token=ADMIN_TOKEN) as proc:
                if nfc:  # a tap, so NDEF-free tap handling and logging are paid for too
                    field.present(A)
                await asyncio.sleep(3)
                rss = rss_mib(proc.pid)
                field.lift()
            return rss
    finally:
        os.close(master)
        os.close(slave)


async def rss(base_url: str) -> None:
    rows = [("serial reader only", False, True), ("NFC reader only", True, False)]
    rows.append(("NFC reader + serial reader", True, True))
    print("| idle gateway (`checkin-gateway run`) | RSS median |")
    print("|---|---|")
    with CardField() as field:
        for label, nfc, serial in rows:
            samples = [
                await _idle_rss(base_url, nfc=nfc, serial=serial, field=field) for _ in range(RUNS)
            ]
            print(f"| {label}, {RUNS} runs | {median(samples):.1f} MiB |")
    print()
    print("Target: <= 45 MiB with an NFC and a serial reader.")
    print()


async def _main() -> None:
    from gateway.log import configure

    configure("error", "json")
    await latency()
    await stop_time()
    async with sim_process("--no-rate-limit") as base_url:
        await rss(base_url)


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
