"""The NFC reader as the gateway sees it: an async ``Reader`` over the worker thread.

The worker thread does the blocking nfcpy work and hands its events to the loop with
``call_soon_threadsafe``; here they become taps and reader states. Cancelling ``run``
stops the thread and waits (without blocking the loop) until it has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gateway.config.model import NfcReaderConfig
from gateway.errors import ReaderError
from gateway.model import Tap
from gateway.readers.base import ReaderState, TapSink
from gateway.readers.nfc.faults import Fault
from gateway.readers.nfc.worker import (
    CardRead,
    FrontendFactory,
    LinkState,
    NfcWorker,
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


class NfcReader:
    def __init__(
        self,
        cfg: NfcReaderConfig,
        *,
        timing: Timing | None = None,
        frontend_factory: FrontendFactory | None = None,
        usb_reset: Callable[[str], int] | None = None,
    ) -> None:
        self._cfg = cfg
        self._timing = timing
        self._factory = frontend_factory
        self._usb_reset = usb_reset
        self._state = ReaderState.STOPPED
        self._fault: Fault | None = None
        self._last_error: str | None = None
        self._taps = self._ndef_taps = self._reconnects = 0
        self._was_ready = False
        self._log = log.bind(reader=cfg.name)

    @property
    def name(self) -> str:
        return self._cfg.name

    @property
    def state(self) -> ReaderState:
        return self._state

    @property
    def fault(self) -> Fault | None:
        """What keeps the device from being READY now, if anything."""
        return self._fault

    @property
    def stats(self) -> NfcReaderStats:
        return NfcReaderStats(
            state=self._state,
            taps=self._taps,
            ndef_taps=self._ndef_taps,
            reconnects=self._reconnects,
            last_error=self._last_error,
        )

    async def run(self, sink: TapSink) -> None:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[Fault | None] = loop.create_future()

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

        def body() -> None:  # the thread
            result: Fault | BaseException | None
            try:
                result = worker.run()
            except BaseException as exc:  # noqa: BLE001  (handed to the loop, raised there)
                result = exc
            # If the loop is gone, so is everyone waiting for this thread.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, finished, result)

        thread = threading.Thread(target=body, name=f"nfc-{self.name}", daemon=True)
        self._state = ReaderState.CONNECTING
        thread.start()
        try:
            fault = await asyncio.shield(finished)
        finally:  # cancelled (the usual way out), or the worker ended on its own
            worker.stop()
            await self._join(finished, thread)
            self._state = ReaderState.STOPPED
        if fault is not None:
            self._state = ReaderState.FAILED
            raise ReaderError(f"NFC reader {self.name!r}: {fault.message}")

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
        if isinstance(event, LinkState):
            self._state = event.state
            self._fault = event.fault
            if event.fault is not None:
                self._last_error = event.fault.message
            if event.state is ReaderState.READY:
                if self._was_ready:
                    self._reconnects += 1
                self._was_ready = True
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
