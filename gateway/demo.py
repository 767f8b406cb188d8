"""``make demo``: the gateway on an embedded simulated Cobot server, a keyboard reader.

Everything runs on this machine (the simulator listens on 127.0.0.1 only). Type a card
number and press Enter; the demo says, in plain words, what happened to the tap:
who it is, what Cobot's preview said, whether the door opened, and when the check-in
landed. ``offline`` makes the simulated API stop answering, ``online`` brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.config.model import Config
from gateway.decide import Decision
from gateway.moco.keys import MocoKeys
from gateway.moco_sim import ACCOUNT_KEY, MocoSpace, demo_moco, run_moco_sim
from gateway.model import CheckIn, Direction, Outcome, Signal
from gateway.outbox import Entry
from gateway.readers.base import ReaderState, TapSink, make_tap
from gateway.redact import redact
from gateway.sim import ADMIN_TOKEN, Plan, SimSpace, demo_space, run_sim

STAFF_CARD = "5E00000001"  # MOCO user 933590696 (John Doe), no Cobot member
STAFF_USER = 933590696

_HELP = """\
Type a card number and press Enter (try the cards above).
  out CARD   check that member out (as an exit reader would)
  {staff} the staff card: clocks in, and (a minute later) out, at a simulated MOCO
  offline    the internet goes down: the simulated Cobot stops answering
  online     the internet is back: queued check-ins are replayed
  status     what the gateway knows right now
  help       this text;  quit (or Ctrl-D) to stop
"""
HELP = _HELP.format(staff=f"{STAFF_CARD:<10}")

REAL_SPACE = """\
To run this against your real space:
  1. copy config/example.toml to /etc/checkin-gateway/gateway.toml and set
     cobot.base_url = "https://YOUR-SPACE.cobot.me"
  2. put an access token (an admin's, scopes: checkin checkin_tokens read_check_ins
     write) into the file named by cobot.access_token_file
  3. checkin-gateway check-config --config /etc/checkin-gateway/gateway.toml
     checkin-gateway run --config /etc/checkin-gateway/gateway.toml
"""

_OUTCOME_WORDS = {
    Outcome.OPENED_CACHED: "already checked in today: opened without asking Cobot",
    Outcome.OPENED_ONLINE: "Cobot's preview said yes",
    Outcome.OPENED_OFFLINE: "Cobot did not answer in time; the card is in the local cache",
    Outcome.REFUSED: "Cobot's preview said no",
    Outcome.DENIED_OFFLINE: "Cobot did not answer and the card is not known locally",
    Outcome.UNKNOWN_TOKEN: "unknown card",
    Outcome.DOOR_FAILED: "the door could not be driven",
    Outcome.CHECKED_OUT: "checked out",
    Outcome.CHECK_OUT_QUEUED: "check-out queued until Cobot answers",
    Outcome.OPENED_MEMBER: "a known card",
    Outcome.STAFF: "not a member: a staff card, clocked at MOCO",
}


class DemoDoor:
    """Stands in for the relay; the narrator says when it opened. MOCO's feedback (one
    beep in, two out) is told in words."""

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        self._say = say

    @property
    def name(self) -> str:
        return "front"

    async def open(self) -> None:
        return None

    async def signal(self, signal: Signal) -> None:
        if self._say is None:
            return
        if signal is Signal.CLOCKED_IN:
            self._say("  moco   clocked IN: a presence opened (one beep)")
        elif signal is Signal.CLOCKED_OUT:
            self._say("  moco   clocked OUT: the presence closed (two beeps)")

    async def aclose(self) -> None:
        return None


class DemoConsole:
    """The keyboard reader of the demo, plus a few commands to show offline behaviour."""

    def __init__(self, out: TextIO, commands: dict[str, object]) -> None:
        self._out = out
        self._commands = commands
        self._state = ReaderState.CONNECTING
        self.done = asyncio.Event()
        self.go = asyncio.Event()  # set once the first token sync has been shown

    @property
    def name(self) -> str:
        return "front"

    @property
    def state(self) -> ReaderState:
        return self._state

    async def run(self, sink: TapSink) -> None:
        await self.go.wait()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self._state = ReaderState.READY
        while True:
            raw = await reader.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            word, _, arg = line.partition(" ")
            action = self._commands.get(word.lower())
            if word.lower() in ("quit", "exit"):
                break
            if word.lower() == "out" and arg.strip():
                sink(make_tap(self.name, arg.strip(), Direction.OUT))
            elif callable(action):
                result = action()
                if asyncio.iscoroutine(result):
                    await result
            else:
                sink(make_tap(self.name, line, Direction.IN))
        self._state = ReaderState.STOPPED
        self.done.set()


async def run_demo(state_dir: Path | None, out: TextIO) -> int:
    from gateway.log import configure

    configure("warning", "console")
    space = demo_space()
    moco = demo_moco()
    with tempfile.TemporaryDirectory(prefix="checkin-gateway-demo-") as tmp:
        state = state_dir or Path(tmp)
        async with run_sim(space) as base_url, run_moco_sim(moco) as moco_url:
            cfg = parse_config(
                {
                    "gateway": {"state_dir": str(state), "decision_deadline": 1.5},
                    "cobot": {"base_url": base_url},
                    "moco": {
                        "base_url": moco_url,
                        "users": [{"token": STAFF_CARD, "user_id": STAFF_USER}],
                    },
                    "readers": [
                        {
                            "name": "front",
                            "type": "keyboard",
                            "door": "front",
                            "record": ["cobot", "moco"],
                        }
                    ],
                    "doors": [{"name": "front", "type": "command", "command": ["true"]}],
                },
                "demo",
            )
            return await _run(cfg, space, base_url, out, moco)


class Narrator:
    """Tells a newcomer, in plain words, what happened to each tap."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def say(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    def decision(self, d: Decision) -> None:
        who = d.membership.name if d.membership else "nobody we know"
        self.say(
            f"> card {redact(d.tap.token)} at reader '{d.tap.reader}' ({d.tap.direction.value})"
        )
        self.say(f"  who    {who}")
        words = _OUTCOME_WORDS[d.outcome]
        if d.reason and d.outcome in (Outcome.REFUSED, Outcome.DENIED_OFFLINE):
            words += f": {d.reason}"
        if d.preview_ms is not None:
            words += f" ({d.preview_ms:.0f} ms)"
        self.say(f"  cobot  {words}")
        self.say(f"  door   {'OPEN (relay pulse)' if d.opened else 'stays SHUT'}")
        if d.outcome is Outcome.OPENED_OFFLINE:
            self.say("  queue  check-in stored on disk; it goes to Cobot when the API is back")
        self.say(f"  time   {d.latency_ms:.1f} ms from tap to decision")

    def delivered(self, entry: Entry, check_in: CheckIn | None, how: str) -> None:
        what = entry.kind.value.replace("_", "-")
        if how.startswith("refused"):
            self.say(f"  cobot  queued {what} refused: {how.removeprefix('refused: ')}")
        elif check_in is not None and entry.kind.value == "check_in":
            until = check_in.valid_until.astimezone().strftime("%H:%M")
            name = check_in.membership.name if check_in.membership else "guest"
            replayed = " (replayed from the queue)" if how != "sent" else ""
            self.say(f"  cobot  check-in landed for {name}, valid until {until}{replayed}")
        else:
            self.say(f"  cobot  {what} delivered")


async def _run(cfg: Config, space: SimSpace, base_url: str, out: TextIO, moco: MocoSpace) -> int:
    narrator = Narrator(out)
    say = narrator.say
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

    def status() -> None:
        s = holder[0].status()
        say(
            f"  api {s['api']['breaker']}, {s['tokens']} cards cached, "
            f"{s['queue_depth']} check-ins queued"
        )

    console = DemoConsole(
        out, {"offline": offline, "online": online, "status": status, "help": lambda: say(HELP)}
    )
    gateway = Gateway(
        cfg,
        ADMIN_TOKEN,
        doors={"front": DemoDoor(say)},
        moco_keys=MocoKeys(ACCOUNT_KEY),
        readers=[console],
        hooks=[narrator.decision],
        delivery_hooks=[narrator.delivered],
    )
    holder.append(gateway)
    say("checkin-gateway demo")
    say(f"A simulated Cobot space answers at {base_url} (this machine only).")
    say("Cards in the demo space:")
    for line in _describe_cards(space):
        say(f"  {line}")
    say(f"  {STAFF_CARD:<18} {'John Doe (staff)':<20} MOCO user {STAFF_USER}: a time clock")
    say()
    say(HELP)
    say(REAL_SPACE)
    task = asyncio.create_task(gateway.run())
    await gateway.ready.wait()
    await gateway.sync.sync_once()
    say(f"Ready: {len(gateway.cache)} cards synced from Cobot. Tap away.")
    console.go.set()
    done = asyncio.create_task(console.done.wait())
    await asyncio.wait([task, done], return_when=asyncio.FIRST_COMPLETED)
    with contextlib.suppress(TimeoutError):  # show what became of the last taps
        async with asyncio.timeout(5):
            await gateway.settle()
    await asyncio.sleep(0.3)  # and of their check-ins, which follow the door
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    done.cancel()
    say("demo stopped")
    return 0


def _describe_cards(space: SimSpace) -> list[str]:
    lines = []
    for token, member in space.list_tokens():
        if member.plan is Plan.TIME_PASSES:
            plan = f"{len(member.time_passes)} time pass(es) left"
        else:
            plan = "unlimited plan"
        if not member.confirmed:
            plan += ", membership not confirmed"
        lines.append(f"{token:<18} {member.name:<20} {plan}")
    return lines
