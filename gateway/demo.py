"""``make demo``: the gateway on an embedded simulated Cobot server, a keyboard reader.

Everything runs on this machine (the simulator listens on 127.0.0.1 only). Type a card
number and press Enter; the demo says, in plain words, what happened to the tap:
who it is, what Cobot's preview said, whether the door opened, and when the check-in
landed. ``offline`` makes the simulated API stop answering, ``online`` brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.config.model import Config
from gateway.decide import Decision
from gateway.demo_moco import (
    KEYS,
    MocoSpace,
    clock_words,
    demo_moco,
    moco_section,
    run_moco_sim,
)
from gateway.demo_text import (
    HELP,
    OFFLINE_POLICY,
    OUTCOME_WORDS,
    ROOMS,
    describe_rooms,
    introduce,
)
from gateway.doors.base import DoorSignal
from gateway.model import CheckIn, Direction, Outcome, Signal
from gateway.outbox import Entry
from gateway.readers.base import ReaderState, TapSink, make_tap
from gateway.readers.keyboard import check_pollable
from gateway.redact import redact
from gateway.sim import ADMIN_TOKEN, SimSpace, demo_space, run_sim

# Why a decision was taken locally: whether Cobot was asked at all.
_NOT_ASKED = "Cobot was not asked: it has not answered lately (the gateway keeps retrying)"
_NO_ANSWER = "Cobot was asked but did not answer in time"


class DemoDoor:
    """Stands in for the relay; the narrator says when it opened."""

    def __init__(self, name: str = "front", say: Callable[[str], None] | None = None) -> None:
        self._name = name
        self._say = say  # MOCO's in/out feedback, told in words

    @property
    def name(self) -> str:
        return self._name

    async def open(self) -> None:
        return None

    async def signal(self, signal: DoorSignal) -> None:
        words = clock_words(signal) if isinstance(signal, Signal) else None
        if words is not None and self._say is not None:
            self._say(words)

    async def aclose(self) -> None:
        return None


class DemoConsole:
    """The keyboard reader of the demo, plus a few commands to show offline behaviour."""

    def __init__(
        self,
        out: TextIO,
        commands: dict[str, object],
        api_down: Callable[[], bool] = lambda: False,
        rooms: dict[str, RoomReader] | None = None,
    ) -> None:
        self._out = out
        self._commands = commands
        self._api_down = api_down
        self._rooms = rooms or {}
        self._state = ReaderState.CONNECTING
        self.done = asyncio.Event()
        self.go = asyncio.Event()  # set once the first token sync has been shown
        # Per tap: was the API already known to be down when it was read? Then Cobot is
        # not asked at all, and the narrator must not say it "did not answer in time".
        self.api_down_at: dict[int, bool] = {}

    def _tap(self, sink: TapSink, token: str, direction: Direction) -> None:
        tap = make_tap(self.name, token, direction)
        self.api_down_at[id(tap)] = self._api_down()
        sink(tap)

    @property
    def name(self) -> str:
        return "front"

    @property
    def state(self) -> ReaderState:
        return self._state

    async def run(self, sink: TapSink) -> None:
        await self.go.wait()
        readline = await _line_source()
        self._state = ReaderState.READY
        while True:
            raw = await readline()
            if not raw:
                break
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            word, _, arg = line.partition(" ")
            action = self._commands.get(word.lower())
            if word.lower() in ("quit", "exit"):
                break
            if word.lower() == "out":
                if arg.strip():
                    self._tap(sink, arg.strip(), Direction.OUT)
                else:
                    print("  out needs a card number: out CARD", file=self._out, flush=True)
            elif word.lower() in self._rooms and arg.strip():
                self._rooms[word.lower()].tap(arg.strip())
            elif callable(action):
                result = action()
                if asyncio.iscoroutine(result):
                    await result
            else:
                self._tap(sink, line, Direction.IN)
        self._state = ReaderState.STOPPED
        self.done.set()


async def _line_source() -> Callable[[], Awaitable[bytes]]:
    """Lines typed at the console, or read from what stdin is instead: a pipe is waited
    on by the loop; a file or /dev/null (``make demo < script``), which epoll refuses,
    is read in a thread (b"" at its end: the demo stops)."""
    try:
        check_pollable(sys.stdin)
    except (OSError, ValueError, AttributeError):

        async def from_file() -> bytes:
            try:
                line: str = await asyncio.to_thread(sys.stdin.readline)
            except (OSError, ValueError):
                return b""
            return line.encode()

        return from_file
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader.readline


class RoomReader:
    """A meeting room's reader in the demo: the console hands it the typed cards."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._sink: TapSink | None = None
        self._state = ReaderState.CONNECTING

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> ReaderState:
        return self._state

    def tap(self, token: str) -> None:
        if self._sink is not None:
            self._sink(make_tap(self._name, token, Direction.IN))

    async def run(self, sink: TapSink) -> None:
        self._sink, self._state = sink, ReaderState.READY
        try:
            await asyncio.Event().wait()  # taps come from the console
        finally:
            self._sink, self._state = None, ReaderState.STOPPED


async def run_demo(state_dir: Path | None, out: TextIO) -> int:
    from gateway.log import configure

    configure("warning", "console")
    space = demo_space()
    # Ctrl-C from the first instant: a clean stop that says so, not a traceback or
    # make's "Error 130". The handler is ours until the demo returns.
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGTERM: `kill`, or make's own stop
        loop.add_signal_handler(sig, interrupted.set)
    try:
        return await _start(state_dir, space, interrupted, out)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _start(
    state_dir: Path | None, space: SimSpace, interrupted: asyncio.Event, out: TextIO
) -> int:
    moco = demo_moco()
    with tempfile.TemporaryDirectory(prefix="checkin-gateway-demo-") as tmp:
        state = state_dir or Path(tmp)
        async with run_sim(space) as base_url, run_moco_sim(moco) as moco_url:
            cfg = parse_config(
                {
                    "gateway": {"state_dir": str(state), "decision_deadline": 1.5},
                    "cobot": {"base_url": base_url},
                    "moco": moco_section(moco_url),
                    "readers": [
                        {
                            "name": "front",
                            "type": "keyboard",
                            "door": "front",
                            "record": ["cobot", "moco"],
                        },
                        *(
                            {"name": word, "type": "keyboard", "door": door}
                            for word, (door, _, _) in ROOMS.items()
                        ),
                    ],
                    "doors": [
                        {"name": "front", "type": "command", "command": ["true"]},
                        *(
                            {
                                "name": door,
                                "type": "command",
                                "command": ["true"],
                                "access": "booking",
                                "resource_id": rid,
                                "walk_up_minutes": walk_up,
                            }
                            for door, rid, walk_up in ROOMS.values()
                        ),
                    ],
                },
                "demo",
            )
            return await _run(cfg, space, base_url, out, interrupted, moco)


class Narrator:
    """Tells a newcomer, in plain words, what happened to each tap."""

    def __init__(
        self,
        out: TextIO,
        console: DemoConsole | None = None,
        name_of: Callable[[str | None], str | None] = lambda token: None,
    ) -> None:
        self._out = out
        self._console = console
        self._name_of = name_of

    def say(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    def decision(self, d: Decision) -> None:
        who = d.membership.name if d.membership else "nobody we know"
        self.say(
            f"> card {redact(d.tap.token)} at reader '{d.tap.reader}' ({d.tap.direction.value})"
        )
        self.say(f"  who    {who}")
        words = OUTCOME_WORDS[d.outcome]
        if d.reason and d.outcome in (
            Outcome.REFUSED,
            Outcome.DENIED_OFFLINE,
            Outcome.NO_BOOKING,
            Outcome.OPENED_WALK_UP,
            Outcome.WALK_UP_ENDED,
        ):
            words += f": {d.reason}"
        elif d.outcome is Outcome.DENIED_OFFLINE and d.reason:
            words += f" ({d.reason.split(' (', 1)[0]})"
        if d.preview_ms is not None:
            words += f" ({d.preview_ms:.0f} ms)"
        self.say(f"  cobot  {words}")
        if d.outcome in (Outcome.OPENED_OFFLINE, Outcome.DENIED_OFFLINE, Outcome.CHECK_OUT_QUEUED):
            not_asked = self._console is not None and self._console.api_down_at.pop(
                id(d.tap), False
            )
            self.say(f"         {_NOT_ASKED if not_asked else _NO_ANSWER}")
        elif self._console is not None:
            self._console.api_down_at.pop(id(d.tap), None)
        self.say(f"  door   {'OPEN (relay pulse)' if d.opened else 'stays SHUT'}")
        if d.outcome is Outcome.OPENED_OFFLINE:
            self.say("  queue  check-in stored on disk; it goes to Cobot when the API is back")
        self.say(f"  time   {d.latency_ms:.1f} ms from tap to decision")

    def delivered(self, entry: Entry, check_in: CheckIn | None, how: str) -> None:
        what = entry.kind.value.replace("_", "-")
        whose = self._name_of(entry.token) or (
            f"card {redact(entry.token)}" if entry.token else "an unknown member"
        )
        if how.startswith("refused"):
            self.say(f"  cobot  queued {what} of {whose} refused: {how.removeprefix('refused: ')}")
        elif entry.kind.value == "check_out":
            if check_in is None:
                self.say(f"  cobot  {whose} was not checked in: nothing to check out")
            else:
                self.say(f"  cobot  {whose} checked out")
        elif check_in is not None and entry.kind.value == "check_in":
            until = check_in.valid_until.astimezone().strftime("%H:%M")
            name = check_in.membership.name if check_in.membership else "guest"
            replayed = " (replayed from the queue)" if how != "sent" else ""
            self.say(f"  cobot  check-in landed for {name}, valid until {until}{replayed}")
        else:
            self.say(f"  cobot  {what} delivered")


async def _run(  # noqa: PLR0915 (the demo's commands are closures over its state)
    cfg: Config,
    space: SimSpace,
    base_url: str,
    out: TextIO,
    interrupted: asyncio.Event,
    moco: MocoSpace,
) -> int:
    say = Narrator(out).say
    holder: list[Gateway] = []

    def offline() -> None:
        space.faults.set("hang")
        moco.faults.set("error", status=503)
        say("  (the simulated Cobot now accepts connections but never answers; MOCO is down)")

    def online() -> None:
        space.faults.clear()
        moco.faults.clear()
        holder[0].breaker.probe_soon()
        holder[0].drainer.wake()
        if holder[0].moco is not None:
            holder[0].moco.breaker.probe_soon()
            holder[0].moco.records.replayer.wake()
        say("  (both answer again; queued check-ins and staff taps are replayed)")

    async def status() -> None:
        s = holder[0].status()
        api = "online" if s["api"]["breaker"] == "closed" else "offline"
        failed = [e for e in await holder[0].outbox.list() if e.state.value == "failed"]
        say(
            f"  {api}, {s['tokens']} cards cached, {s['queue_depth']} check-ins queued, "
            f"{len(failed)} refused by Cobot on replay"
        )
        for e in failed:
            whose = name_of(e.token) or f"card {redact(e.token)}"
            say(f"    {e.kind.value.replace('_', '-')} of {whose}: {e.last_error}")

    def name_of(token: str | None) -> str | None:
        member = holder[0].cache.lookup(token) if token else None
        return member.name if member else None

    def show_help() -> None:
        say(HELP)
        say(OFFLINE_POLICY)

    rooms = {word: RoomReader(word) for word in ROOMS}
    console = DemoConsole(
        out,
        {"offline": offline, "online": online, "status": status, "help": show_help},
        api_down=lambda: bool(holder) and holder[0].breaker.is_open,
        rooms=rooms,
    )
    narrator = Narrator(out, console, name_of)
    gateway = Gateway(
        cfg,
        ADMIN_TOKEN,
        doors={"front": DemoDoor(say=say), **{d: DemoDoor(d) for d, _, _ in ROOMS.values()}},
        moco_keys=KEYS,
        readers=[console, *rooms.values()],
        hooks=[narrator.decision],
        delivery_hooks=[narrator.delivered],
    )
    holder.append(gateway)
    introduce(say, space, base_url)
    task = asyncio.create_task(gateway.run())
    stop = asyncio.create_task(interrupted.wait())
    ready = asyncio.create_task(_ready(gateway))
    await asyncio.wait([task, stop, ready], return_when=asyncio.FIRST_COMPLETED)
    if ready.done() and not ready.cancelled() and ready.exception() is None:
        say(f"Ready: {len(gateway.cache)} cards synced from Cobot. Tap away.")
        for line in describe_rooms(space):
            say(f"  {line}")
        console.go.set()
        done = asyncio.create_task(console.done.wait())
        await asyncio.wait([task, done, stop], return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
    ready.cancel()
    with contextlib.suppress(TimeoutError):  # show what became of the last taps
        async with asyncio.timeout(5):
            await gateway.settle()
    await asyncio.sleep(0.3)  # and of their check-ins, which follow the door
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    stop.cancel()
    say("demo stopped (Ctrl-C or SIGTERM)" if interrupted.is_set() else "demo stopped")
    return 0


async def _ready(gateway: Gateway) -> None:
    await gateway.ready.wait()
    await gateway.sync.sync_once()
    for refresher in gateway.door_rules.refreshers:
        await refresher.refresh_once()
