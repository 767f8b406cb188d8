"""Issue 14 benchmarks: meeting-room doors.

- decision latency on a booking door from the snapshot (p50/p99), beside cached re-entry
  at the front door measured the same way (the target);
- refresh cost for 20 rooms with 200 bookings a day each: time per room (HTTP, parse,
  SQLite), for a changed and an unchanged snapshot, and the bytes written to disk;
- RSS of the daemon with 20 booking doors, beside the same daemon with none.

The simulated Cobot runs in its own process (``--seed rooms``), its rate limit off and
the gateway's limits high, so pacing does not hide the gateway's own cost.

    .venv/bin/python -m bench bookings
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench.common import gateway_process, median, pct, rss_mib, sim_process
from gateway.app import Gateway
from gateway.cobot.bookings import parse_bookings
from gateway.config import parse_config
from gateway.demo import DemoDoor as NullDoor
from gateway.model import Direction, Outcome
from gateway.readers.base import make_tap
from gateway.sim.seed import ADMIN_TOKEN, BOOKINGS_PER_DAY, BUSY_ROOMS, RDM_TOKEN

TAPS = 3000
RUNS = 5
ROOMS = [str(30001 + r) for r in range(BUSY_ROOMS)]


def _config(state: Path, base_url: str, rooms: list[str]) -> dict[str, object]:
    return {
        "gateway": {"state_dir": str(state), "log_level": "error"},
        "cobot": {"base_url": base_url, "check_in_rpm": 10000, "default_rpm": 10000},
        "doors": [
            {"name": "front", "type": "command", "command": ["true"]},
            *(
                {
                    "name": f"room-{rid}",
                    "type": "command",
                    "command": ["true"],
                    "access": "booking",
                    "resource_id": rid,
                    # bookings every 7 minutes: no grace, so one member holds the room
                    "grace_before": 0,
                    "grace_after": 0,
                }
                for rid in rooms
            ),
        ],
    }


@contextlib.asynccontextmanager
async def _gateway(base_url: str, rooms: list[str]) -> AsyncIterator[Gateway]:
    from gateway.log import configure

    configure("error", "json")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(_config(Path(tmp), base_url, rooms), "bench")
        doors = {d.name: NullDoor(d.name) for d in cfg.doors}
        gw = Gateway(cfg, ADMIN_TOKEN, doors=doors, readers=[])  # type: ignore[arg-type]
        task = asyncio.create_task(gw.run())
        await gw.ready.wait()
        await gw.sync.sync_once()
        try:
            yield gw
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


async def latency(base_url: str) -> None:
    async with _gateway(base_url, ROOMS[:1]) as gw:
        (refresher,) = gw.door_rules.refreshers
        await refresher.refresh_once()
        room = gw.snapshot.room(ROOMS[0])
        assert room is not None, refresher.last_error
        holder = room.current(gw.clock.now())[0].membership
        assert holder is not None
        token = next(
            t
            for t in ("0A1B2C3D4E", "04A1B2C3D4E5F6", "0A00000001", "aa:bb:cc:dd:ee:01")
            if (m := gw.cache.lookup(t)) is not None and m.id == holder.id
        )
        other = next(
            t
            for t in ("0A1B2C3D4E", "04A1B2C3D4E5F6", "0A00000001")
            if (m := gw.cache.lookup(t)) is not None and m.id != holder.id
        )
        door = NullDoor(f"room-{ROOMS[0]}")
        front = NullDoor()
        member = gw.cache.lookup(RDM_TOKEN)
        assert member is not None
        await gw.decider.decide(make_tap("front", RDM_TOKEN, Direction.IN), front)
        admitted, refused, cached = [], [], []
        for _ in range(TAPS):
            d = await gw.decider.decide(make_tap("room", token, Direction.IN), door)
            assert d.outcome is Outcome.OPENED_BOOKING, d
            admitted.append(d.latency_ms)
            d = await gw.decider.decide(make_tap("room", other, Direction.IN), door)
            assert d.outcome is Outcome.NO_BOOKING, d
            refused.append(d.latency_ms)
            d = await gw.decider.decide(make_tap("front", RDM_TOKEN, Direction.IN), front)
            assert d.outcome is Outcome.OPENED_CACHED, d
            cached.append(d.latency_ms)
    print(f"Room snapshot: {len(room.bookings)} bookings (yesterday to tomorrow).")
    print()
    print("| tap-to-door decision | p50 | p99 |")
    print("|---|---|---|")
    for what, values in (
        (f"booking door, booked member admitted, {TAPS} taps", admitted),
        (
            f"booking door, other member refused (reason built; 1 live look/10 s), {TAPS} taps",
            refused,
        ),
        (f"front door, cached re-entry (the target), {TAPS} taps", cached),
    ):
        print(f"| {what} | {pct(values, 50):.3f} ms | {pct(values, 99):.3f} ms |")
    print()


async def refresh_cost(base_url: str) -> None:
    async with _gateway(base_url, ROOMS) as gw:
        refreshers = gw.door_rules.refreshers
        first: list[float] = []
        again: list[float] = []
        written_first = _written()
        for r in refreshers:
            r.resource = None  # measure the resource check too, as at start
            started = time.perf_counter()
            await r.refresh_once()
            first.append((time.perf_counter() - started) * 1000)
        written_first = _written() - written_first
        written_again = _written()
        for _ in range(RUNS):
            for r in refreshers:
                started = time.perf_counter()
                await r.refresh_once()
                again.append((time.perf_counter() - started) * 1000)
        written_again = (_written() - written_again) / RUNS
        assert all(r.last_error is None for r in refreshers)
        per_room = len(gw.snapshot.room(ROOMS[0]).bookings)  # type: ignore[union-attr]
        body = await _raw_bookings(gw, ROOMS[0])
    parse = []
    for _ in range(RUNS * 4):
        started = time.perf_counter()
        parse_bookings(json.loads(body), "bench")
        parse.append((time.perf_counter() - started) * 1000)
    print(
        f"Refresh of {BUSY_ROOMS} rooms, {BOOKINGS_PER_DAY} bookings a day each "
        f"({per_room} per room in the window):"
    )
    print()
    print("| per room | median | p99 | all rooms | written to disk |")
    print("|---|---|---|---|---|")
    print(
        f"| first (resource check + bookings, all stored) | {median(first):.1f} ms "
        f"| {pct(first, 99):.1f} ms | {sum(first):.0f} ms | {written_first / 1024:.0f} KiB |"
    )
    print(
        f"| unchanged (fetch time moved, no fsync) | {median(again):.1f} ms "
        f"| {pct(again, 99):.1f} ms | {sum(again) / RUNS:.0f} ms "
        f"| {written_again / 1024:.0f} KiB |"
    )
    print(
        f"| of which parsing {len(body) / 1024:.0f} KiB of JSON | {median(parse):.1f} ms "
        f"| {pct(parse, 99):.1f} ms | | |"
    )
    print()
    print(
        "At the default refresh_interval (300 s) that is "
        f"{BUSY_ROOMS * 60 / 300:.0f} requests a minute of the 60 allowed."
    )
    print()


async def _raw_bookings(gw: Gateway, rid: str) -> bytes:
    import aiohttp

    from gateway.bookings.refresh import snapshot_window
    from gateway.cobot.bookings import format_request_time

    start, end = snapshot_window(gw.clock.now())
    params = {"from": format_request_time(start), "to": format_request_time(end)}
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{gw.cfg.cobot.base_url}/api/resources/{rid}/bookings",
            params=params,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as resp,
    ):
        return await resp.read()


async def rss(base_url: str) -> None:
    results: dict[int, list[float]] = {0: [], BUSY_ROOMS: []}
    for _ in range(3):
        for count, values in results.items():
            with tempfile.TemporaryDirectory() as tmp:
                cfg = Path(tmp) / "gw.toml"
                doors = "".join(
                    f'\n[[doors]]\nname = "room-{rid}"\ntype = "command"\ncommand = ["true"]\n'
                    f'access = "booking"\nresource_id = "{rid}"\n'
                    for rid in ROOMS[:count]
                )
                cfg.write_text(
                    f'[gateway]\nstate_dir = "{tmp}/state"\nlog_format = "json"\n'
                    f'[cobot]\nbase_url = "{base_url}"\ndefault_rpm = 10000\n{doors}'
                )
                async with gateway_process(
                    cfg, ready_events=(b'"event": "ready"',), token=ADMIN_TOKEN
                ) as proc:
                    await asyncio.sleep(6)  # every room refreshed, idle
                    values.append(rss_mib(proc.pid))
    print(
        f"Idle RSS with {BUSY_ROOMS} booking doors (snapshots of "
        f"{3 * BOOKINGS_PER_DAY} bookings each): median **{median(results[BUSY_ROOMS]):.1f} MiB**, "
        f"without booking doors {median(results[0]):.1f} MiB."
    )
    print()


async def _main() -> None:
    async with sim_process("--no-rate-limit", "--seed", "rooms") as base_url:
        await latency(base_url)
        await refresh_cost(base_url)
        await rss(base_url)


def main() -> None:
    asyncio.run(_main())
