"""Keeps one booking door's room in the snapshot in step with Cobot.

At start the door's ``resource_id`` is checked with ``GET /api/resources/:id`` (a wrong
id stops this part with an error naming the door and the key; ``status`` and ``doctor``
show it); then ``GET /api/resources/:id/bookings`` for yesterday to tomorrow, at once and
every ``refresh_interval`` seconds. Every request waits for the shared limiter's general
group at sync priority: twenty rooms refreshing together are spaced out, never a 429, and
a person at a door still goes first.

"Yesterday to tomorrow in the space's time": the API pages name no endpoint for the
space's time zone, so the gateway's own zone stands in (a Pi in the space runs on local
time; ``attendance.end_of_local_day`` makes the same choice). The window is generous on
both sides, so a zone off by a few hours still covers now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

import structlog

from gateway.bookings.snapshot import BookingSnapshot
from gateway.breaker import Breaker
from gateway.cobot.bookings import Resource, get_resource, list_resource_bookings
from gateway.cobot.client import CobotClient
from gateway.cobot.errors import ApiError, NotFound, Unauthorized, Unavailable
from gateway.cobot.ratelimit import Priority
from gateway.errors import GatewayError, StorageError
from gateway.readers.backoff import Backoff

log = structlog.get_logger(__name__)

REFRESH_DEADLINE = 60.0  # seconds for one request, the wait for a slot included
AUTH_RETRY = 600.0  # a missing scope needs a person: look again after this long
FAIL_INITIAL = 5.0


def snapshot_window(now: datetime) -> tuple[datetime, datetime]:
    """Start of yesterday to the end of tomorrow in the gateway's zone, as UTC."""
    local = now.astimezone()
    today = datetime.combine(local.date(), time(0, 0), tzinfo=local.tzinfo)
    start = today - timedelta(days=1)
    end = today + timedelta(days=2) - timedelta(minutes=1)
    return start.astimezone(UTC), end.astimezone(UTC)


class RoomRefresher:
    """The supervised part behind one booking door (``Part(f"bookings-{door}", run)``)."""

    def __init__(
        self,
        snapshot: BookingSnapshot,
        client: CobotClient,
        breaker: Breaker,
        *,
        door: str,
        resource_id: str,
        interval: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._snapshot = snapshot
        self._client = client
        self._breaker = breaker
        self.door = door
        self.resource_id = resource_id
        self._interval = interval
        self._now = now
        self._backoff = Backoff(initial=FAIL_INITIAL, maximum=interval)
        self._soon = asyncio.Event()
        self._lock = asyncio.Lock()  # one refresh at a time (the part, the demo, a test)
        self.resource: Resource | None = None
        self.last_error: str | None = None
        self.refreshes = 0

    def request(self) -> None:
        """Refresh soon (a walk-up whose answer was lost may have booked the room)."""
        self._soon.set()

    async def run(self) -> None:
        while True:
            delay = await self.refresh_once()
            self._soon.clear()
            try:
                async with asyncio.timeout(delay):
                    await self._soon.wait()
            except TimeoutError:
                pass

    async def refresh_once(self) -> float:
        """Check the resource (once), fetch the bookings; seconds until the next try.
        Raises GatewayError when the resource does not exist: retrying cannot help."""
        async with self._lock:
            return await self._refresh()

    async def _refresh(self) -> float:
        try:
            resource = self.resource
            if resource is None:
                resource = self.resource = await self._resource()
            start, end = snapshot_window(self._now())
            bookings = await list_resource_bookings(
                self._client,
                self.resource_id,
                start,
                end,
                priority=Priority.SYNC,
                deadline=REFRESH_DEADLINE,
            )
            fetched_at = self._now()
            ours = [b for b in bookings if b.resource_id == self.resource_id]
            added, removed = await self._snapshot.replace(
                resource, ours, fetched_at=fetched_at, covers_from=start, covers_to=end
            )
        except Unauthorized as exc:
            self._failed(exc, "check the token's scopes read_resources and read_bookings")
            return AUTH_RETRY
        except (ApiError, StorageError) as exc:
            if isinstance(exc, Unavailable):
                self._breaker.record_failure(str(exc))
            self._failed(exc, None)
            return self._backoff.next_delay()
        self._breaker.record_success()
        self._backoff.reset()
        self.last_error = None
        self.refreshes += 1
        log.info(
            "bookings_refreshed",
            door=self.door,
            room=resource.name,
            bookings=len(ours),
            added=added,
            removed=removed,
        )
        return self._interval

    async def _resource(self) -> Resource:
        try:
            resource = await get_resource(
                self._client, self.resource_id, priority=Priority.SYNC, deadline=REFRESH_DEADLINE
            )
        except NotFound:
            self.last_error = (
                f"door {self.door!r}: Cobot has no resource {self.resource_id!r} "
                "(doors.resource_id; GET /api/resources lists the space's resources)"
            )
            log.error("booking_room_unknown", door=self.door, resource_id=self.resource_id)
            raise GatewayError(self.last_error) from None
        if resource.id != self.resource_id:
            raise GatewayError(
                f"door {self.door!r}: asked Cobot for resource {self.resource_id!r}, "
                f"got {resource.id!r}"
            )
        log.info("booking_room", door=self.door, resource_id=resource.id, room=resource.name)
        return resource

    def _failed(self, exc: GatewayError, fix: str | None) -> None:
        first = self.last_error is None
        self.last_error = str(exc)
        (log.warning if first else log.debug)(
            "bookings_refresh_failed", door=self.door, error=str(exc), fix=fix
        )
