"""The NFC reader through nfcpy's real reader stack, over its UDP driver, with a fake
ISO 14443-A card (tests/fakecard.py) on the far side.

nfcpy's UDP driver waits 1 s for an answer when no card is in the field, so rounds
without a card take a second; tests wait for rounds (``field.rounds``), never sleep.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import ndef
import nfc
import pytest
from structlog.testing import capture_logs

from gateway.config.model import NfcReaderConfig
from gateway.errors import ReaderError
from gateway.model import Direction, Tap, TokenFormat
from gateway.readers.base import ReaderState
from gateway.readers.nfc.faults import FaultKind
from gateway.readers.nfc.reader import STOP_DEADLINE, NfcReader
from gateway.readers.nfc.worker import LINK_POLICY, Timing
from tests.fakecard import Card, CardField, random_uid, type2_memory

pytestmark = pytest.mark.real

UID4 = bytes.fromhex("0a1b2c3d")
UID7 = bytes.fromhex("04a1b2c3d4e5f6")
UID10 = bytes.fromhex("04a1b2c3d4e5f6078899")
FAST = Timing(sense_interval=0.05, link=replace(LINK_POLICY, first_delay=0.05, cap=0.2))


@pytest.fixture
def field() -> Iterator[CardField]:
    with CardField() as f:
        yield f


def nfc_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nfc-")]


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


class Run:
    """A reader running in a task, its taps collected."""

    def __init__(self, reader: NfcReader, task: asyncio.Task[None]) -> None:
        self.reader = reader
        self.task = task
        self.taps: list[Tap] = []

    async def taps_at_least(self, n: int, timeout: float = 10.0) -> list[Tap]:
        await until(lambda: len(self.taps) >= n or self.task.done(), timeout)
        if self.task.done():
            self.task.result()  # raises what ended it
        return self.taps


@asynccontextmanager
async def running(
    device: str, *, timing: Timing = FAST, factory: Any = None, **cfg: Any
) -> AsyncIterator[Run]:
    reader = NfcReader(
        NfcReaderConfig(name="front-nfc", device=device, **cfg),
        timing=timing,
        frontend_factory=factory,
    )
    taps: list[Tap] = []
    task = asyncio.create_task(reader.run(taps.append), name="nfc-test-run")
    run = Run(reader, task)
    run.taps = taps
    try:
        yield run
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reader.state is ReaderState.STOPPED
        assert nfc_threads() == [], "the worker thread outlived run()"


class Unpluggable(nfc.ContactlessFrontend):  # type: ignore[misc]
    """nfcpy's real frontend, with a USB cable the test can pull.

    Pulled: the device goes away under nfcpy, whose ``sense`` then raises
    ``IOError(ENODEV)`` itself, and ``open`` finds nothing (returns False) until the
    reader is plugged back in - what nfcpy does with a real reader.
    """

    def __init__(self) -> None:
        super().__init__()
        self.plugged = True
        self._pull = False
        self.opens = 0  # successful
        self.attempts = 0
        self.sense_threads: set[int] = set()

    def open(self, path: str) -> bool:
        self.attempts += 1
        if not self.plugged:
            return False
        self.opens += 1
        return bool(super().open(path))

    def sense(self, *targets: Any, **options: Any) -> Any:
        self.sense_threads.add(threading.get_ident())
        if self._pull:
            self._pull = False
            with self.lock:
                device, self.device = self.device, None
            device.close()
        return super().sense(*targets, **options)

    def unplug(self) -> None:
        self.plugged = False
        self._pull = True


# -- UIDs and token formats ---------------------------------------------------------


async def test_4_byte_uid_is_an_uppercase_hex_tap(field: CardField) -> None:
    async with running(field.device, direction=Direction.OUT) as run:
        field.present(Card(UID4))
        (tap,) = await run.taps_at_least(1)
    assert (tap.token, tap.reader, tap.direction) == ("0A1B2C3D", "front-nfc", Direction.OUT)
    assert field.present_since is not None and tap.mono >= field.present_since


@pytest.mark.parametrize(
    ("uid", "fmt", "token"),
    [
        (UID7, TokenFormat.HEX, "04A1B2C3D4E5F6"),
        (UID7, TokenFormat.HEX_REVERSED, "F6E5D4C3B2A104"),
        (UID4, TokenFormat.DECIMAL, str(0x0A1B2C3D).zfill(10)),
        (UID4, TokenFormat.DECIMAL_REVERSED, str(0x3D2C1B0A).zfill(10)),
        (UID10, TokenFormat.HEX, "04A1B2C3D4E5F6078899"),
    ],
)
async def test_uid_sizes_and_token_formats(
    field: CardField, uid: bytes, fmt: TokenFormat, token: str
) -> None:
    async with running(field.device, token_format=fmt) as run:
        field.present(Card(uid))
        (tap,) = await run.taps_at_least(1)
    assert tap.token == token


# -- presence: held, lifted, tapped again ------------------------------------------------


async def test_card_held_for_seconds_is_one_tap(field: CardField) -> None:
    timing = Timing(sense_interval=0.15)
    async with running(field.device, timing=timing) as run:
        field.present(Card(UID7))
        await run.taps_at_least(1)
        await field.rounds(20, answered=True)  # ~3 s resting on the reader
        assert run.reader.state is ReaderState.READY
    assert [t.token for t in run.taps] == ["04A1B2C3D4E5F6"]


async def test_lift_and_tap_again_is_two_taps(field: CardField) -> None:
    async with running(field.device, lift_time=1.0) as run:
        field.present(Card(UID7))
        await run.taps_at_least(1)
        field.lift()
        await field.rounds(2)  # the first empty round lasts 1 s: lifted long enough
        field.present(Card(UID7))
        await run.taps_at_least(2)
        await field.rounds(5, answered=True)
    assert [t.token for t in run.taps] == ["04A1B2C3D4E5F6"] * 2
    assert run.taps[1].mono - run.taps[0].mono >= 1.0


async def test_brief_lift_does_not_count_again(field: CardField) -> None:
    async with running(field.device, lift_time=3.0) as run:
        field.present(Card(UID7))
        await run.taps_at_least(1)
        field.lift()
        await field.rounds(2)  # one empty round (~1 s) < lift_time
        field.present(Card(UID7))
        await field.rounds(5, answered=True)
    assert len(run.taps) == 1


async def test_no_card_no_tap(field: CardField) -> None:
    async with running(field.device) as run:
        await field.rounds(3)
        assert run.reader.state is ReaderState.READY
        assert run.taps == []
    assert field.answered == 0


async def test_phone_with_random_uid_held_is_one_tap(field: CardField) -> None:
    async with running(field.device) as run:
        field.present(Card(random_uid(), sak=0x20, next_uid=random_uid))
        await run.taps_at_least(1)
        await field.rounds(10, answered=True)  # a new UID every round
    assert len(run.taps) == 1 and run.taps[0].token.startswith("08")


# -- NDEF text tokens -------------------------------------------------------------------

NDEF_UID = bytes.fromhex("05112233445566")  # not NXP (04): nfcpy's generic Type 2 Tag


def sticker(token: str, dropouts: int = 0) -> Card:
    message = b"".join(ndef.message_encoder([ndef.TextRecord(token)]))
    return Card(NDEF_UID, sak=0x00, memory=type2_memory(NDEF_UID, message), dropouts=dropouts)


async def test_ndef_text_record_is_the_token_when_enabled(field: CardField) -> None:
    async with running(field.device, ndef_tokens=True) as run:
        field.present(sticker("member-42"))
        (tap,) = await run.taps_at_least(1)
        await field.rounds(5, answered=True)
    assert tap.token == "member-42" and len(run.taps) == 1
    assert (run.reader.stats.taps, run.reader.stats.ndef_taps) == (1, 1)


async def test_ndef_read_cut_short_is_retried_on_the_next_round(field: CardField) -> None:
    async with running(field.device, ndef_tokens=True) as run:
        field.present(sticker("member-42", dropouts=1))  # the first read is cut short
        (tap,) = await run.taps_at_least(1)
        await field.rounds(3, answered=True)
    assert tap.token == "member-42" and len(run.taps) == 1


async def test_ndef_never_readable_falls_back_to_the_uid(field: CardField) -> None:
    attempts = Timing().ndef_attempts
    async with running(field.device, ndef_tokens=True) as run:
        field.present(sticker("member-42", dropouts=attempts))
        (tap,) = await run.taps_at_least(1, timeout=20)
        await field.rounds(3, answered=True)
    assert tap.token == NDEF_UID.hex().upper() and len(run.taps) == 1


async def test_ndef_is_ignored_by_default(field: CardField) -> None:
    async with running(field.device) as run:
        field.present(sticker("member-42"))
        (tap,) = await run.taps_at_least(1)
    assert tap.token == NDEF_UID.hex().upper()


async def test_card_without_ndef_gives_its_uid_when_ndef_enabled(field: CardField) -> None:
    async with running(field.device, ndef_tokens=True) as run:
        field.present(Card(UID7))  # MIFARE Classic: activation finds no NDEF
        (tap,) = await run.taps_at_least(1)
    assert tap.token == "04A1B2C3D4E5F6"


# -- the device going away, and coming back ---------------------------------------------


async def test_unplugged_reader_reconnects_and_reads_again(field: CardField) -> None:
    clf = Unpluggable()
    async with running(field.device, factory=lambda: clf, lift_time=0.5) as run:
        field.present(Card(UID7))
        await run.taps_at_least(1)
        clf.unplug()
        await until(lambda: run.reader.state is ReaderState.RECONNECTING)
        fault = run.reader.fault
        assert fault is not None and fault.kind is FaultKind.NO_DEVICE
        attempts = clf.attempts
        await until(lambda: clf.attempts >= attempts + 2)  # retries find nothing ...
        polls = field.polls
        clf.plugged = True  # ... until the reader is back
        await until(lambda: run.reader.state is ReaderState.READY)
        assert clf.opens == 2
        # The card rested on the reader the whole time: not a new tap.
        await field.rounds(3, answered=True)
        assert len(run.taps) == 1 and field.polls > polls
        field.lift()
        await field.rounds(2)
        field.present(Card(UID7))
        await run.taps_at_least(2)
        stats = run.reader.stats
        assert (stats.state, stats.taps, stats.reconnects) == (ReaderState.READY, 2, 1)
        assert stats.last_error is not None and "no NFC reader found" in stats.last_error
        assert run.reader.fault is None  # back to READY: nothing wrong now


async def test_stop_during_reconnect_backoff_is_immediate(field: CardField) -> None:
    clf = Unpluggable()
    clf.plugged = False
    slow = Timing(link=replace(LINK_POLICY, first_delay=30.0, cap=30.0))
    reader = NfcReader(
        NfcReaderConfig(name="n", device=field.device), timing=slow, frontend_factory=lambda: clf
    )
    task = asyncio.create_task(reader.run(lambda tap: None))
    await until(lambda: reader.state is ReaderState.RECONNECTING)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0  # not the 30 s backoff
    assert nfc_threads() == []


async def test_stop_mid_sense_round_leaves_no_thread(field: CardField) -> None:
    reader = NfcReader(NfcReaderConfig(name="n", device=field.device), timing=FAST)
    task = asyncio.create_task(reader.run(lambda tap: None))
    await field.rounds(2)  # now inside an empty round: nfcpy waits 1 s in its socket
    assert len(nfc_threads()) == 1
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < STOP_DEADLINE
    assert nfc_threads() == []
    assert reader.state is ReaderState.STOPPED


async def test_event_loop_keeps_serving_while_nfcpy_polls(field: CardField) -> None:
    """nfcpy blocks for a second per empty UDP round; none of that may reach the loop."""
    clf = Unpluggable()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async with running(field.device, factory=lambda: clf) as run:
        tick_task = asyncio.create_task(ticker())
        await field.rounds(3)  # two full empty rounds: ~2 s of nfcpy blocking
        field.present(Card(UID7))
        await run.taps_at_least(1)
        tick_task.cancel()
    loop_thread = threading.get_ident()
    assert clf.sense_threads and loop_thread not in clf.sense_threads
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) > 50
    # A sense on the loop would stall it for 1 s; the ticker never waited close to that.
    assert max(gaps) < 0.9


# -- faults that need a person ----------------------------------------------------------


class Failing(nfc.ContactlessFrontend):  # type: ignore[misc]
    """nfcpy's frontend with an open that fails the way nfcpy's USB transport does."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code
        self.attempts = 0

    def open(self, path: str) -> bool:
        self.attempts += 1
        raise OSError(self.code, os.strerror(self.code))


async def test_lasting_permission_problem_fails_with_the_fix() -> None:
    clf = Failing(errno.EACCES)
    reader = NfcReader(
        NfcReaderConfig(name="n", device="usb:072f:2200"),
        timing=FAST,
        frontend_factory=lambda: clf,
    )
    with pytest.raises(ReaderError, match=r"60-checkin-gateway\.rules.*group checkin-gateway"):
        await asyncio.wait_for(reader.run(lambda tap: None), 10)
    assert reader.state is ReaderState.FAILED
    assert clf.attempts == LINK_POLICY.permission_attempts == 3
    assert nfc_threads() == []


async def test_busy_reader_is_retried_not_failed() -> None:
    clf = Failing(errno.EBUSY)
    async with running("usb", factory=lambda: clf) as run:
        await until(lambda: clf.attempts >= 5)
        assert run.reader.state is ReaderState.RECONNECTING
        assert run.reader.fault is not None and "pcscd" in run.reader.fault.message
        assert not run.task.done()


async def test_unresponsive_usb_reader_gets_a_usb_reset() -> None:
    clf = Failing(errno.ETIMEDOUT)
    resets: list[str] = []

    def reset(device: str) -> int:
        resets.append(device)
        return 1

    reader = NfcReader(
        NfcReaderConfig(name="n", device="usb:072f:2200"),
        timing=FAST,
        frontend_factory=lambda: clf,
        usb_reset=reset,
    )
    task = asyncio.create_task(reader.run(lambda tap: None))
    await until(lambda: len(resets) >= 2)
    assert reader.fault is not None and reader.fault.kind is FaultKind.UNRESPONSIVE
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert set(resets) == {"usb:072f:2200"}


async def test_backoff_starts_over_only_after_the_reader_stayed_open(field: CardField) -> None:
    """Absent at start, plugged in, open for stable_after, pulled: the next wait is the
    first delay again; pulled again at once (a loose cable): the backoff goes on."""
    clf = Unpluggable()
    clf.plugged = False
    now = [0.0]
    delays: list[float] = []

    async def sleep(delay: float) -> None:  # the timer fires at once; the clock follows
        delays.append(delay)
        now[0] += delay
        if len(delays) >= 3:
            clf.plugged = True
        await asyncio.sleep(0)

    reader = NfcReader(
        NfcReaderConfig(name="n", device=field.device),
        timing=Timing(sense_interval=0.05),  # the gateway's own link policy
        frontend_factory=lambda: clf,
        sleep=sleep,
        clock=lambda: now[0],
    )
    with capture_logs() as logs:
        task = asyncio.create_task(reader.run(lambda tap: None))
        try:
            await until(lambda: reader.state is ReaderState.READY)
            assert delays == [0.5, 1.0, 2.0]
            now[0] += LINK_POLICY.stable_after
            clf.unplug()
            await until(lambda: reader.stats.reconnects == 1)
            assert delays[3:] == [0.5]
            await until(lambda: reader.state is ReaderState.READY)
            clf.unplug()
            await until(lambda: reader.stats.reconnects == 2)
            assert delays[4:] == [1.0]
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert nfc_threads() == []
    lines = [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("nfc_reader_")]
    assert lines == [
        ("nfc_reader_unavailable", "warning"),
        ("nfc_reader_unavailable", "debug"),
        ("nfc_reader_unavailable", "debug"),
        ("nfc_reader_ready", "info"),
        ("nfc_reader_lost", "warning"),
        ("nfc_reader_back", "info"),
        ("nfc_reader_lost", "debug"),
        ("nfc_reader_back", "debug"),
    ]
    stats = reader.stats
    assert (stats.opens, stats.failures, stats.state) == (3, 5, ReaderState.STOPPED)
