"""What every record backend does with the outbox on the tap path, and with what the
database refused: one implementation for Cobot (records/cobot.py) and MOCO (records/moco.py).

The tap path commits a record ``held`` within ``TAP_COMMIT_BUDGET`` (outbox.py). When the
database does not take it in time (another process holds it, the disk is full, the
queue is at its bound) the record is kept in memory (``Unsaved``) and stored as soon as
the database takes it again, in the state its delivery reached meanwhile; a release the
database refused is retried the same way, so an opened door never leaves its record
``held`` (held rows found at start are delivered as ``door_outcome_unknown``). What is
still only in memory at stop is logged (``record_lost_at_stop``), never silently lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gateway.errors import StorageError
from gateway.model import RecordKind, Tap
from gateway.outbox import Outbox, State
from gateway.records.background import save_loop
from gateway.redact import redact

log = structlog.get_logger(__name__)

TAP_COMMIT_BUDGET = 0.5  # seconds the tap path waits for our own database lock
SAVE_RETRY = 1.0  # seconds between attempts to store what memory holds
MAX_UNSAVED = 1000  # records held in memory per backend while the database refuses them


@dataclass(slots=True)
class Unsaved:
    """A record the database did not take in time, and how far its delivery got.

    ``subject`` is the outbox row's ``membership_id``: Cobot's membership id, or the MOCO
    user id as text; ``busy`` while a direct delivery is in flight (not stored yet)."""

    kind: RecordKind
    tap: Tap
    subject: str | None
    state: State = State.PENDING
    result_id: str | None = None
    error: str | None = None
    busy: bool = False


class Keeper:
    """One backend's records on their way into the outbox.

    ``stored`` is called whenever a record reaches the outbox late (the backend's
    delivery should look again)."""

    def __init__(self, outbox: Outbox, backend: str, stored: Callable[[], None]) -> None:
        self._outbox = outbox
        self._backend = backend
        self._stored = stored
        self.items: list[Unsaved] = []
        self._unreleased: set[int] = set()
        self._wake = asyncio.Event()
        self.storage_error: str | None = None

    @property
    def unsaved(self) -> int:
        """Records in memory only (shown by status: lost if the gateway stops now)."""
        return len(self.items) + len(self._unreleased)

    async def hold(self, kind: RecordKind, tap: Tap, subject: str | None) -> int | None:
        """The record committed ``held``: its outbox id, or None (then ``keep`` it once the
        door opened)."""
        try:
            entry_id = await self._outbox.add(
                kind,
                token=tap.token,
                membership_id=subject,
                reader=tap.reader,
                tapped_at=tap.at,
                state=State.HELD,
                backend=self._backend,
                clock=tap.clock,
                boot_id=tap.boot_id,
                tapped_mono=tap.mono,
                budget=TAP_COMMIT_BUDGET,
            )
        except StorageError as exc:
            self.storage_error = str(exc)
            log.error(
                "record_not_stored",
                backend=self._backend,
                reader=tap.reader,
                token=redact(tap.token),
                membership_id=subject,
                error=str(exc),
                kept="in memory until the database takes it",
            )
            return None
        self.storage_error = None
        return entry_id

    async def release(self, entry_id: int) -> bool:
        """The door opened: deliverable now. False when the database refused the change:
        memory retries it (the record must not stay held)."""
        try:
            await self._outbox.release(entry_id)
        except StorageError as exc:
            log.warning(
                "record_release_deferred", backend=self._backend, entry=entry_id, error=str(exc)
            )
            self._unreleased.add(entry_id)
            self._wake.set()
            return False
        return True

    async def discard(self, entry_id: int) -> None:
        """The door did not open: the record never happened."""
        try:
            await self._outbox.discard_held(entry_id)
        except StorageError as exc:
            # Still held: at the next start it is kept as failed, never billed.
            log.error(
                "record_discard_failed", backend=self._backend, entry=entry_id, error=str(exc)
            )

    def keep(self, item: Unsaved) -> bool:
        """Keep a record the database did not take; False (logged) at the memory bound."""
        if len(self.items) >= MAX_UNSAVED:
            log.error(
                "record_lost",
                backend=self._backend,
                token=redact(item.tap.token),
                reason="memory bound reached",
            )
            return False
        self.items.append(item)
        self._wake.set()
        return True

    def wake(self) -> None:
        """Something in memory may be storable now (a direct delivery ended)."""
        self._wake.set()

    async def run(self) -> None:
        """Store what memory holds, whenever woken and every ``SAVE_RETRY`` s until done."""
        await save_loop(self._wake, lambda: self.unsaved > 0, self.save_once, SAVE_RETRY)

    async def save_once(self) -> None:
        for entry_id in list(self._unreleased):
            try:
                await self._outbox.release(entry_id)
            except StorageError:
                return
            self._unreleased.discard(entry_id)
            self._stored()
        for item in list(self.items):
            if item.busy:
                continue
            try:
                await self._outbox.add(
                    item.kind,
                    token=item.tap.token,
                    membership_id=item.subject,
                    reader=item.tap.reader,
                    tapped_at=item.tap.at,
                    state=item.state,
                    backend=self._backend,
                    clock=item.tap.clock,
                    boot_id=item.tap.boot_id,
                    tapped_mono=item.tap.mono,
                    result_id=item.result_id,
                    last_error=item.error,
                )
            except StorageError as exc:
                self.storage_error = str(exc)
                return
            self.items.remove(item)
            self.storage_error = None
            log.info(
                "record_stored_late",
                backend=self._backend,
                state=item.state.value,
                token=redact(item.tap.token),
            )
            self._stored()

    async def close(self) -> None:
        """At stop (after in-flight deliveries): one last try, then say what is lost."""
        if self.unsaved:
            await self.save_once()  # the database may be free now
        for item in self.items:
            log.error(
                "record_lost_at_stop",
                backend=self._backend,
                kind=item.kind.value,
                state=item.state.value,
                token=redact(item.tap.token),
                membership_id=item.subject,
            )
