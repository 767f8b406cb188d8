"""The live tap feed: a decision hook that keeps the last taps and streams new ones.

``LiveFeed.hook`` is handed to the ``Decider`` (``hooks=[...]``): it runs on the tap
path, so it only builds a small dict and puts it, without waiting, into each open
page's bounded queue; a page that does not keep up loses its oldest events, never
delays a door. Tokens are redacted here, before anything leaves the process.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway.decide import Decision
from gateway.redact import redact

KEEP = 50  # taps shown on a freshly opened page
QUEUE_SIZE = 100  # events an open page may fall behind by
MAX_SUBSCRIBERS = 16  # open event streams; more are refused (503)


@dataclass(frozen=True, slots=True)
class TapEvent:
    """One decision as the page shows it (no secret: the token is redacted)."""

    at: str  # ISO 8601 UTC, the tap's wall-clock time
    local: str  # the same in the gateway's local time, "HH:MM:SS", as the page shows it
    reader: str
    token: str  # redacted
    member: str | None
    membership_id: str | None
    outcome: str
    reason: str | None
    opened: bool
    latency_ms: float

    @classmethod
    def of(cls, decision: Decision) -> TapEvent:
        m = decision.membership
        return cls(
            at=decision.tap.at.isoformat(timespec="seconds"),
            local=decision.tap.at.astimezone().strftime("%H:%M:%S"),
            reader=decision.tap.reader,
            token=redact(decision.tap.token),
            member=m.name if m else None,
            membership_id=m.id if m else None,
            outcome=decision.outcome.value,
            reason=decision.reason,
            opened=decision.opened,
            latency_ms=round(decision.latency_ms, 1),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "local": self.local,
            "reader": self.reader,
            "token": self.token,
            "member": self.member,
            "membership_id": self.membership_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "opened": self.opened,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True, slots=True)
class EnrolEvent:
    """A reader in enrolment mode captured an unknown card (token redacted)."""

    capture_id: str
    reader: str
    token: str

    def as_dict(self) -> dict[str, Any]:
        return {"capture_id": self.capture_id, "reader": self.reader, "token": self.token}


Event = TapEvent | EnrolEvent | None  # None: the stream ends


class TooManyStreams(Exception):
    """More than ``MAX_SUBSCRIBERS`` pages stream at once."""


class LiveFeed:
    def __init__(self, keep: int = KEEP) -> None:
        self.recent: deque[TapEvent] = deque(maxlen=keep)
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def hook(self, decision: Decision) -> None:
        event = TapEvent.of(decision)
        self.recent.append(event)
        self._publish(event)

    def enrolled(self, capture_id: str, reader: str, token: str) -> None:
        """Tell open pages that a card was captured for enrolment."""
        self._publish(EnrolEvent(capture_id, reader, redact(token)))

    def _publish(self, event: Event) -> None:
        for queue in self._subscribers:
            if queue.full():  # a slow page loses its oldest event, the door never waits
                queue.get_nowait()
            queue.put_nowait(event)

    def close(self) -> None:
        """End every open stream (``None`` is the end): the page is stopping, and an
        open stream must not hold the stop up."""
        self._publish(None)

    def subscribe(self) -> asyncio.Queue[Event]:
        """A queue of the taps to come; ``None`` in it means the stream ends."""
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            raise TooManyStreams
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(queue)

    @property
    def streams(self) -> int:
        return len(self._subscribers)
