"""The NFC worker thread: open the reader, sense in short rounds, reopen when it goes.

nfcpy blocks, so one thread per reader owns its ``ContactlessFrontend`` and nothing
else touches it. The thread reports through ``post`` (the reader turns that into
``loop.call_soon_threadsafe``) and stops when ``stop()`` is called: the flag is checked
after every sense round, and every wait is on the stop event, so stopping takes at
most one round (milliseconds on a PN53x; nfcpy's UDP driver waits 1 s for a card).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from gateway.readers.backoff import Backoff
from gateway.readers.base import ReaderState
from gateway.readers.nfc.faults import Fault, FaultKind, classify
from gateway.readers.nfc.presence import Presence, card_key

if TYPE_CHECKING:
    from types import ModuleType

    from gateway.readers.nfc.frontend import Sighting

log = structlog.get_logger(__name__)


class Frontend(Protocol):
    """What we use of ``nfc.ContactlessFrontend`` (tests subclass the real one)."""

    device: Any
    lock: Any

    def open(self, path: str) -> bool: ...

    def sense(self, *targets: Any, **options: Any) -> Any: ...

    def close(self) -> None: ...


FrontendFactory = Callable[[], Frontend]


@dataclass(frozen=True, slots=True)
class Timing:
    """The worker's waits, in seconds; tests shrink them."""

    sense_interval: float = 0.15  # one round per interval: ~7 rounds/s, a tap feels instant
    retry_initial: float = 0.5  # first reopen after the reader went away
    retry_max: float = 30.0  # reopen at least this often while it stays away
    # The backoff starts over only after the reader stayed open this long, so a reader
    # with a loose cable is not reopened at full rate forever.
    stable_after: float = 10.0
    permission_attempts: int = 3  # udev may fix a fresh node's mode a moment after it appears
    ndef_attempts: int = 3  # rounds to try reading a card's NDEF before using its UID


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card arrived: its UID, and its NDEF text token when those are enabled."""

    uid: bytes
    text: str | None
    at: datetime
    mono: float


@dataclass(frozen=True, slots=True)
class LinkState:
    state: ReaderState
    fault: Fault | None = None


WorkerEvent = CardRead | LinkState


class NfcWorker:
    def __init__(
        self,
        device: str,
        *,
        name: str,
        post: Callable[[WorkerEvent], None],
        lift_time: float,
        ndef_tokens: bool = False,
        timing: Timing | None = None,
        frontend_factory: FrontendFactory | None = None,
        usb_reset: Callable[[str], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._device = device
        self._post = post
        self._ndef = ndef_tokens
        self._timing = timing or Timing()
        self._factory = frontend_factory
        self._usb_reset = usb_reset
        self._clock = clock
        self._presence = Presence(lift_time)
        self._stop = threading.Event()
        self._reported: FaultKind | None = None
        self._ndef_failures: dict[bytes, int] = {}
        self._log = log.bind(reader=name, device=device)

    def stop(self) -> None:
        """Ask the thread to finish; safe from any thread, idempotent."""
        self._stop.set()

    def run(self) -> Fault | None:
        """The thread's body: returns the fatal fault that ended it, or None on stop."""
        try:
            # Imports nfcpy: here, in the thread, so the event loop never waits for it.
            from gateway.readers.nfc import frontend
        except ImportError as exc:
            return self._fail(classify(exc, self._device))
        clf = (self._factory or frontend.new_frontend)()
        reset = self._usb_reset or frontend.reset_acr122u
        backoff = Backoff(initial=self._timing.retry_initial, maximum=self._timing.retry_max)
        denied = 0
        self._post(LinkState(ReaderState.CONNECTING))
        while not self._stop.is_set():
            fault = frontend.open_reader(clf, self._device)
            if fault is None:
                denied = 0
                self._ready()
                opened = self._clock()
                try:
                    fault = self._sense_rounds(frontend, clf)
                finally:
                    frontend.close_reader(clf)
                if fault is None:
                    return None
                if self._clock() - opened >= self._timing.stable_after:
                    backoff.reset()
            denied = denied + 1 if fault.kind is FaultKind.PERMISSION else 0
            if fault.fatal or denied >= self._timing.permission_attempts:
                return self._fail(fault)
            delay = backoff.next_delay()
            self._retrying(fault, delay)
            if fault.kind is FaultKind.UNRESPONSIVE and self._device.startswith("usb"):
                self._try_reset(reset)
            self._stop.wait(delay)
        return None

    def _sense_rounds(self, frontend: ModuleType, clf: Frontend) -> Fault | None:
        """Sense until stopped (None) or the device fails (its Fault)."""
        interval = self._timing.sense_interval
        while not self._stop.is_set():
            started = self._clock()
            try:
                sighting = frontend.sense_card(clf)
                now = self._clock()
                if sighting is None:
                    self._presence.observe(None, now)
                elif self._presence.observe(card_key(sighting.uid), now):
                    self._arrival(frontend, clf, sighting, now)
            except Exception as exc:  # noqa: BLE001  (any failure ends the session; classified)
                fault = classify(exc, self._device)
                if fault.kind is FaultKind.UNEXPECTED:
                    self._log.exception("nfc_sense_crashed")
                return fault
            remaining = interval - (self._clock() - started)
            if remaining > 0:
                self._stop.wait(remaining)
        return None

    def _arrival(self, frontend: ModuleType, clf: Frontend, sighting: Sighting, now: float) -> None:
        """A card was put on the reader: read its NDEF token if asked to, and report it."""
        text: str | None = None
        if self._ndef:
            key = card_key(sighting.uid)
            try:
                text = frontend.read_text_token(clf, sighting)
            except frontend.NdefUnreadable as exc:
                failures = self._ndef_failures[key] = self._ndef_failures.get(key, 0) + 1
                if failures < self._timing.ndef_attempts:
                    # Not an arrival yet: the next round that sees the card tries again.
                    self._presence.forget(key)
                    self._log.debug("nfc_ndef_retry", error=str(exc), attempt=failures)
                    return
                self._log.info("nfc_ndef_unreadable", error=str(exc), using="uid")
            self._ndef_failures.pop(key, None)
            if len(self._ndef_failures) > 64:  # cards that never came back: forget them
                self._ndef_failures.clear()
        self._post(CardRead(sighting.uid, text, datetime.now(UTC), now))

    def _ready(self) -> None:
        if self._reported is not None:
            self._log.info("nfc_reader_back")
        else:
            self._log.info("nfc_reader_ready")
        self._reported = None
        self._post(LinkState(ReaderState.READY))

    def _retrying(self, fault: Fault, delay: float) -> None:
        # Warn when something new goes wrong; the retries of the same thing are debug.
        if fault.kind is not self._reported:
            self._log.warning("nfc_reader_unavailable", problem=fault.kind.value, fix=fault.message)
        else:
            self._log.debug("nfc_reader_still_unavailable", problem=fault.kind.value, retry_s=delay)
        self._reported = fault.kind
        self._post(LinkState(ReaderState.RECONNECTING, fault))

    def _fail(self, fault: Fault) -> Fault:
        self._log.error("nfc_reader_failed", problem=fault.kind.value, fix=fault.message)
        self._post(LinkState(ReaderState.FAILED, fault))
        return fault

    def _try_reset(self, reset: Callable[[str], int]) -> None:
        try:
            count = reset(self._device)
        except Exception as exc:  # noqa: BLE001  (best effort; the retry still follows)
            self._log.debug("nfc_usb_reset_failed", error=repr(exc))
            return
        if count:
            self._log.info("nfc_usb_reset", readers=count)
