"""The NFC worker: one attempt of the link in a thread: open the reader, sense in short
rounds until it fails or is stopped, close it.

nfcpy blocks, so each attempt runs in a thread of its own, one at a time, and only that
thread touches the ``ContactlessFrontend`` meanwhile. Reopening, backoff and giving up
are the link supervisor's (``gateway.readers.link``), on the event loop. The thread
reports through ``post`` (the reader turns that into ``loop.call_soon_threadsafe``) and
stops when ``stop()`` is called: the flag is checked after every sense round, and every
wait is on the stop event, so stopping takes at most one round (milliseconds on a PN53x;
nfcpy's UDP driver waits 1 s for a card).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from gateway.readers.link import LinkPolicy
from gateway.readers.nfc.device import (
    CardSighting,
    Frontend,
    FrontendFactory,
    NdefUnreadable,
    NfcCalls,
)
from gateway.readers.nfc.faults import Fault, FaultKind, classify
from gateway.readers.nfc.presence import CardPresence, card_key

log = structlog.get_logger(__name__)


# Reopening: first after 0.5 s, then at least every 30 s; the backoff starts over once
# the reader stayed open 10 s (a loose cable is not reopened at full rate forever); udev
# may fix a fresh node's mode a moment after it appears: 3 permission faults in a row.
LINK_POLICY = LinkPolicy(first_delay=0.5, cap=30.0, stable_after=10.0, permission_attempts=3)


@dataclass(frozen=True, slots=True)
class Timing:
    """The worker's waits, in seconds; tests shrink them."""

    sense_interval: float = 0.15  # one round per interval: ~7 rounds/s, a tap feels instant
    ndef_attempts: int = 3  # rounds to try reading a card's NDEF before using its UID
    link: LinkPolicy = LINK_POLICY


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card arrived: its UID, and its NDEF text token when those are enabled."""

    uid: bytes
    text: str | None
    at: datetime
    mono: float


@dataclass(frozen=True, slots=True)
class Opened:
    """The reader is open; sensing starts."""


WorkerEvent = CardRead | Opened


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
        self._presence = CardPresence(lift_time)
        self._stop = threading.Event()
        self._clf: Frontend | None = None
        self._ndef_failures: dict[bytes, int] = {}
        self._log = log.bind(reader=name, device=device)

    def stop(self) -> None:
        """Ask the thread to finish; safe from any thread, idempotent."""
        self._stop.set()

    def attempt(self) -> Fault | None:
        """One attempt, in its thread: the fault that ended it, or None when stopped.

        Posts ``Opened`` once the reader is open. A USB reader that stops answering gets
        a USB reset before the fault is returned (the reopen after the backoff then finds
        it fresh).
        """
        try:
            # Imports nfcpy: here, in the thread, so the event loop never waits for it.
            from gateway.readers.nfc import frontend as calls_module
        except ImportError as exc:
            return classify(exc, self._device)
        frontend: NfcCalls = calls_module
        if self._clf is None:
            self._clf = (self._factory or frontend.new_frontend)()
        clf = self._clf
        fault = frontend.open_reader(clf, self._device)
        if fault is None:
            self._post(Opened())
            try:
                fault = self._sense_rounds(frontend, clf)
            finally:
                frontend.close_reader(clf)
        unresponsive = fault is not None and fault.kind is FaultKind.UNRESPONSIVE
        if unresponsive and self._device.startswith("usb") and not self._stop.is_set():
            self._try_reset(self._usb_reset or frontend.reset_acr122u)
        return fault

    def _sense_rounds(self, frontend: NfcCalls, clf: Frontend) -> Fault | None:
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

    def _arrival(
        self, frontend: NfcCalls, clf: Frontend, sighting: CardSighting, now: float
    ) -> None:
        """A card was put on the reader: read its NDEF token if asked to, and report it."""
        text: str | None = None
        if self._ndef:
            key = card_key(sighting.uid)
            try:
                text = frontend.read_text_token(clf, sighting)
            except NdefUnreadable as exc:
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

    def _try_reset(self, reset: Callable[[str], int]) -> None:
        try:
            count = reset(self._device)
        except Exception as exc:  # noqa: BLE001  (best effort; the retry still follows)
            self._log.debug("nfc_usb_reset_failed", error=repr(exc))
            return
        if count:
            self._log.info("nfc_usb_reset", readers=count)
