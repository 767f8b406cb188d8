"""The NFC reader as the gateway sees it: an async ``Reader`` over the worker thread.

The link supervisor (``gateway.readers.link``) runs each attempt of the link in a
worker thread that does the blocking nfcpy work and hands its events to the loop with
``call_soon_threadsafe``; here they become taps and the link's ups and downs. Cancelling
``run`` stops the thread and waits (without blocking the loop) until it has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gateway.config.model import NfcReaderConfig
from gateway.errors import ReaderError
from gateway.model import Tap
from gateway.readers.base import ReaderState, TapSink
from gateway.readers.link import Clock, LinkFault, LinkSupervisor, Sleep
from gateway.readers.nfc.device import FrontendFactory
from gateway.readers.nfc.faults import Fault
from gateway.readers.nfc.worker import (
    CardRead,
    NfcWorker,
    Opened,
    Timing,
    WorkerEvent,
)
from gateway.readers.tokens import format_token
from gateway.redact import redact

log = structlog.get_logger(__name__)

# How long a stop may take: one sense round (nfcpy's UDP driver: 1 s; a PN53x: far
# less) plus closing the device. Past it the thread is left to end on its own (it
# is a daemon thread) and the stop is logged as stuck.
STOP_DEADLINE = 2.0
_JOIN_POLL = 0.005  # the thread has posted its last event: it ends within microseconds


@dataclass(frozen=True, slots=True)
class NfcReaderStats:
    """For status output. Counters run since the reader was made, across reconnects."""

    state: ReaderState
    taps: int
    ndef_taps: int  # ... of which the token came from an NDEF text record
    reconnects: int  # successful reopens after the reader was lost
    last_error: str | None  # what last went wrong with the device, and the fix
    opens: int = 0  # times the reader was opened
    failures: int = 0  # failed opens and losses


class NfcReader:
    def __init__(
        self,
        cfg: NfcReaderConfig,
        *,
        timing: Timing | None = None,
        frontend_factory: FrontendFactory | None = None,
        usb_reset: Callable[[str], int] | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self._timing = timing or Timing()
        self._factory = frontend_factory
        self._usb_reset = usb_reset
        self._link = LinkSupervisor(
            self._timing.link,
            events="nfc_reader",
            clock=clock,
            sleep=sleep,
            reader=cfg.name,
            device=cfg.device,
        )
        self._fault: Fault | None = None
        self._taps = self._ndef_taps = 0
        self._log = log.bind(reader=cfg.name)

    @property
    def name(self) -> str:
        return self._cfg.name

    @property
    def state(self) -> ReaderState:
        return self._link.state

    @property
    def fault(self) -> Fault | None:
        """What keeps the device from being READY now, if anything."""
        return self._fault

    @property
    def stats(self) -> NfcReaderStats:
        link = self._link.stats
        return NfcReaderStats(
            state=link.state,
            taps=self._taps,
            ndef_taps=self._ndef_taps,
            reconnects=link.reconnects,
            last_error=link.last_error,
            opens=link.opens,
            failures=link.failures,
        )

    async def run(self, sink: TapSink) -> None:
        loop = asyncio.get_running_loop()

        def post(event: WorkerEvent) -> None:  # called in the worker thread
            try:
                loop.call_soon_threadsafe(self._on_event, event, sink)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                worker.stop()

        worker = NfcWorker(
            self._cfg.device,
            name=self.name,
            post=post,
            lift_time=self._cfg.lift_time,
            ndef_tokens=self._cfg.ndef_tokens,
            timing=self._timing,
            frontend_factory=self._factory,
            usb_reset=self._usb_reset,
        )
        try:
            await self._link.run(lambda: self._attempt(worker))
        except LinkFault as fault:
            raise ReaderError(f"NFC reader {self.name!r}: {fault}") from fault

    async def _attempt(self, worker: NfcWorker) -> None:
        """One attempt of the link, in a thread of its own; its fault as a ``LinkFault``."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[Fault | None] = loop.create_future()

        def body() -> None:  # the thread
            result: Fault | BaseException | None
            try:
                result = worker.attempt()
            except BaseException as exc:  # noqa: BLE001  (handed to the loop, raised there)
                result = exc
            # If the loop is gone, so is everyone waiting for this thread.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, finished, result)

        thread = threading.Thread(target=body, name=f"nfc-{self.name}", daemon=True)
        thread.start()
        try:
            fault = await asyncio.shield(finished)
        finally:  # cancelled (the usual way out), or the attempt ended on its own
            if not finished.done():
                worker.stop()
            await self._join(finished, thread)
        if fault is None:
            return  # stopped from within (the loop went away)
        self._fault = fault
        raise LinkFault(fault.kind.value, fault.message, fatal=fault.fatal)

    async def _join(self, finished: asyncio.Future[Fault | None], thread: threading.Thread) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_DEADLINE
        await asyncio.wait([finished], timeout=STOP_DEADLINE)
        # A thread's end is no awaitable event; it posted its last event already and
        # is returning, so this polls once or twice.
        while thread.is_alive() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_JOIN_POLL)
        if thread.is_alive():
            self._log.error("nfc_worker_stuck", waited_s=STOP_DEADLINE)

    def _on_event(self, event: WorkerEvent, sink: TapSink) -> None:
        if isinstance(event, Opened):
            self._fault = None
            self._link.up()
            return
        self._tap(event, sink)

    def _tap(self, card: CardRead, sink: TapSink) -> None:
        cfg = self._cfg
        token = card.text if card.text is not None else format_token(cfg.token_format, card.uid)
        self._log.info(
            "nfc_card",
            token=redact(token),
            source="ndef" if card.text is not None else f"uid{len(card.uid)}",
        )
        self._taps += 1
        if card.text is not None:
            self._ndef_taps += 1
        tap = Tap(reader=cfg.name, token=token, direction=cfg.direction, at=card.at, mono=card.mono)
        try:
            sink(tap)
        except Exception:  # noqa: BLE001  (a broken sink must not stop the reader)
            self._log.exception("nfc_sink_failed")


def _settle(future: asyncio.Future[Fault | None], result: Fault | BaseException | None) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
