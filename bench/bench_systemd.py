"""systemd integration and the GPIO door: what they cost the event loop.

- One sd_notify datagram (the watchdog sends two a minute; status lines on change).
- GPIO door: ``open()`` to the strike's line driven, and an input edge (exit button) to
  the strike driven, on the fake chip of tests/gpio_bench.py (this VM has no gpio-sim;
  on a Pi the kernel's ioctl adds a few microseconds).
- ``checkin-gateway doctor`` end to end against the simulated Cobot on loopback.
"""

from __future__ import annotations

import asyncio
import io
import socket
import statistics
import tempfile
import time
from pathlib import Path

from gateway.config.model import GpioDoorConfig
from gateway.doctor import System, run_doctor
from gateway.doors.gpio import GpioDoor
from gateway.log import configure
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.systemd import Notifier
from tests.gpio_bench import FakeChip

REPEATS = 5


def _notify_us() -> float:
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        path = str(Path(folder) / "n")
        sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sink.bind(path)
        sink.setblocking(False)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
        runs = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            for _ in range(1000):
                notifier.ping()
                sink.recv(64)
            runs.append((time.perf_counter() - start) / 1000 * 1e6)
        notifier.close()
        sink.close()
        return statistics.median(runs)


async def _door() -> tuple[float, float]:
    chip = FakeChip()
    cfg = GpioDoorConfig(
        name="bench", chip=chip.chip_path, line=0, pulse=0.1, exit_button_line=2, debounce=0
    )
    door = GpioDoor(cfg, open_chip=chip.open_chip)
    opens, edges = [], []
    try:
        for _ in range(50):
            start = time.perf_counter()
            await door.open()
            assert chip.output_high(0)
            opens.append(time.perf_counter() - start)
            while chip.output_high(0):  # noqa: ASYNC110 - polling a simulated pin
                await asyncio.sleep(0.01)
            chip.set_input(2, True)
            start = time.perf_counter()
            chip.set_input(2, False)  # pressed
            while not chip.output_high(0):  # noqa: ASYNC110
                await asyncio.sleep(0)
            edges.append(time.perf_counter() - start)
            while chip.output_high(0):  # noqa: ASYNC110 - polling a simulated pin
                await asyncio.sleep(0.01)
    finally:
        await door.aclose()
        chip.close()
    return statistics.median(opens) * 1e6, statistics.median(edges) * 1e6


async def _doctor_ms() -> float:
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        async with run_sim(demo_space()) as url:
            cfg = Path(folder) / "config.toml"
            cfg.write_text(f'[gateway]\nstate_dir = "{folder}"\n[cobot]\nbase_url = "{url}"\n')

            async def synced() -> bool | None:
                return True

            system = System(unit_dir=Path(folder) / "units")
            for _ in range(REPEATS):
                start = time.perf_counter()
                await run_doctor(
                    cfg,
                    io.StringIO(),
                    env={"COBOT_ACCESS_TOKEN": ADMIN_TOKEN},
                    system=system,
                    clock_probes=(("bench", synced),),
                )
                runs.append(time.perf_counter() - start)
    return statistics.median(runs) * 1000


def main() -> None:
    configure("warning", "console")
    notify = _notify_us()
    opened, edge = asyncio.run(_door())
    doctor = asyncio.run(_doctor_ms())
    print("| measure | median |")
    print("|---|---:|")
    print(f"| sd_notify datagram (send + receive) | {notify:.1f} µs |")
    print(f"| GPIO door: open() to strike line driven (fake chip) | {opened:.1f} µs |")
    print(f"| GPIO door: exit-button edge to strike driven (fake chip) | {edge:.1f} µs |")
    print(f"| doctor, end to end against the simulated Cobot | {doctor:.1f} ms |")
