"""The record-backend seam."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.model import Membership, RecordKind, Tap


@dataclass(frozen=True, slots=True)
class Hold:
    """A record committed before the door moves.

    ``entry_id`` is its outbox row; None when it could not be stored within the tap's
    budget (database locked, disk full, queue at its bound): the backend then keeps it in
    memory until the database takes it, and ``stored`` is False.
    """

    backend: str
    kind: RecordKind
    tap: Tap
    member: Membership | None
    entry_id: int | None

    @property
    def stored(self) -> bool:
        return self.entry_id is not None


class RecordBackend(Protocol):
    """Records taps durably and delivers them exactly once.

    The decision calls ``hold`` before the door moves, then ``release`` if it opened or
    ``discard`` if it did not: what the backend is told always agrees with the door.
    None of them raises for a storage or API failure, and ``hold`` returns within the
    tap's storage budget.
    """

    @property
    def name(self) -> str: ...

    @property
    def storage_error(self) -> str | None:
        """The last failure to store a record, until one is stored again (for status)."""

    async def hold(self, kind: RecordKind, tap: Tap, member: Membership | None) -> Hold: ...

    async def release(self, hold: Hold, *, live: bool) -> None:
        """The door opened: deliver (now, if ``live``; else when the API is back)."""

    async def discard(self, hold: Hold) -> None:
        """The door did not open: the record never happened."""

    async def run(self) -> None:
        """Deliver what waits, until cancelled (a supervised part)."""

    async def aclose(self) -> None:
        """Let in-flight deliveries finish briefly; what is not done stays queued."""
