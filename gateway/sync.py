"""Keeps the token cache in step with ``GET /api/check_in_tokens``.

At start and every ``token_sync_interval`` seconds, at the lowest priority. A failed
sync keeps the cache as it was (the door must keep working on what we knew); a 401/403
waits long, since a person has to fix the token.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from gateway.breaker import Breaker
from gateway.cache import TokenCache
from gateway.cobot.client import CobotClient
from gateway.cobot.errors import ApiError, MalformedResponse, Unauthorized, Unavailable
from gateway.cobot.ratelimit import Priority
from gateway.errors import StorageError
from gateway.readers.backoff import Backoff

log = structlog.get_logger(__name__)

SYNC_DEADLINE = 30.0  # seconds for the whole list, including the wait for a slot
AUTH_RETRY = 600.0
FAIL_INITIAL = 5.0


class TokenSync:
    def __init__(
        self, cache: TokenCache, client: CobotClient, breaker: Breaker, interval: float
    ) -> None:
        self._cache = cache
        self._client = client
        self._breaker = breaker
        self._interval = interval
        self._backoff = Backoff(initial=FAIL_INITIAL, maximum=interval)
        self._now = asyncio.Event()
        self.last_success: float | None = None
        self.last_error: str | None = None

    def request(self) -> None:
        """Sync soon (e.g. after the API came back)."""
        self._now.set()

    async def run(self) -> None:
        while True:
            delay = await self.sync_once()
            self._now.clear()
            try:
                async with asyncio.timeout(delay):
                    await self._now.wait()
            except TimeoutError:
                pass

    async def sync_once(self) -> float:
        """One sync; returns the seconds until the next one."""
        try:
            records = await self._client.list_tokens(priority=Priority.SYNC, deadline=SYNC_DEADLINE)
            added, removed = await self._cache.replace_all(records)
        except Unauthorized as exc:
            self.last_error = str(exc)
            return AUTH_RETRY
        except (Unavailable, MalformedResponse) as exc:
            self.last_error = str(exc)
            if isinstance(exc, Unavailable):
                self._breaker.record_failure(str(exc))
            delay = self._backoff.next_delay()
            log.warning("token_sync_failed", error=str(exc), retry_in_s=round(delay, 1))
            return delay
        except (ApiError, StorageError) as exc:
            self.last_error = str(exc)
            delay = self._backoff.next_delay()
            log.warning("token_sync_failed", error=str(exc), retry_in_s=round(delay, 1))
            return delay
        self._breaker.record_success()
        self._backoff.reset()
        self.last_success = time.time()
        self.last_error = None
        log.info("token_sync", tokens=len(self._cache), added=added, removed=removed)
        return self._interval
