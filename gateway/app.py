"""The daemon's top level: builds the parts from the config and runs them in one
TaskGroup until cancelled (SIGTERM/SIGINT in ``cli.py``).

Start-up order: database -> token cache (from disk: the door works before the first
sync) -> readers -> ready. The first token sync runs in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from gateway.breaker import Breaker
from gateway.cache import TokenCache
from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.config.model import Config
from gateway.decide import Decider, Decision, DecisionHook
from gateway.doors import build_door
from gateway.doors.base import Door
from gateway.drain import DeliveryHook, Drainer
from gateway.errors import GatewayError, ReaderError
from gateway.model import CheckIn, Outcome, Tap
from gateway.outbox import Outbox
from gateway.readers import build_reader
from gateway.readers.backoff import Backoff
from gateway.readers.base import Reader, ReaderContext
from gateway.redact import redact
from gateway.store import open_db
from gateway.sync import TokenSync

if TYPE_CHECKING:
    from gateway.portal.service import PortalService

log = structlog.get_logger(__name__)

TAP_QUEUE_SIZE = 256  # per reader; a reader flooding faster than we decide is dropped
STATUS_FILE = "status.json"
STATUS_INTERVAL = 5.0
READER_RESTART_MAX = 60.0
_ADMITTED = (Outcome.OPENED_ONLINE, Outcome.OPENED_CACHED, Outcome.OPENED_OFFLINE)


class Gateway:
    def __init__(
        self,
        cfg: Config,
        access_token: str,
        *,
        doors: Mapping[str, Door] | None = None,
        readers: list[Reader] | None = None,
        hooks: list[DecisionHook] | None = None,
        delivery_hooks: list[DeliveryHook] | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self._access_token = access_token
        self._doors_override = doors
        self._readers_override = readers
        self._hooks = hooks or []
        self._delivery_hooks = delivery_hooks or []
        self._on_ready = on_ready
        self.ready = asyncio.Event()
        self.readers: list[Reader] = []
        self.doors: dict[str, Door] = {}
        self._reader_door: dict[str, str | None] = {}
        self._dropped_taps = 0
        self._tasks: set[asyncio.Task[object]] = set()
        self._queues: list[asyncio.Queue[Tap]] = []
        self.portal: PortalService | None = None
        self._mac_readers = {r.name for r in cfg.readers if r.type == "mac"}
        self._reader_errors: dict[str, str] = {}

    async def run(self) -> None:
        cfg = self.cfg
        db = await open_db(cfg.gateway.state_dir)
        try:
            self.cache = cache = TokenCache(db)
            await cache.load()
            self.outbox = outbox = Outbox(db, cfg.queue.max_entries)
            await outbox.load()
            self.limiter = RateLimiter(
                {Group.CHECK_INS: cfg.cobot.check_in_rpm, Group.DEFAULT: cfg.cobot.default_rpm}
            )
            async with CobotClient(
                cfg.cobot.base_url,
                self._access_token,
                self.limiter,
                timeout=cfg.cobot.request_timeout,
            ) as client:
                self.client = client
                self.breaker = breaker = Breaker()
                self.drainer = drainer = Drainer(
                    outbox, client, cache, breaker, cfg.queue, hooks=self._delivery_hooks
                )
                self.sync = TokenSync(cache, client, breaker, cfg.gateway.token_sync_interval)
                self.portal = self._make_portal(client)
                self.decider = Decider(
                    cache,
                    client,
                    outbox,
                    drainer,
                    breaker,
                    policy=cfg.gateway.offline_policy,
                    deadline=cfg.gateway.decision_deadline,
                    hooks=[*self._hooks, self._returning_device],
                )
                try:
                    await self._serve()
                finally:
                    for task in list(self._tasks):
                        task.cancel()
                    await self.decider.aclose()
                    for door in self.doors.values():
                        await door.aclose()
        finally:
            await db.close()
            log.info("stopped")

    async def _serve(self) -> None:
        cfg = self.cfg
        self.doors = dict(self._doors_override or {d.name: build_door(d) for d in cfg.doors})
        ctx = ReaderContext(state_dir=cfg.gateway.state_dir, lookup=self.cache.lookup)
        if self._readers_override is not None:
            self.readers = list(self._readers_override)
            self._reader_door = {
                r.name: next((c.door for c in cfg.readers if c.name == r.name), None)
                for r in self.readers
            }
        else:
            self.readers = [build_reader(c, ctx) for c in cfg.readers]
            self._reader_door = {c.name: c.door for c in cfg.readers}
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.sync.run(), name="token-sync")
            tg.create_task(self.drainer.run(), name="outbox-drain")
            tg.create_task(self._status_loop(), name="status")
            if self.portal is not None:
                tg.create_task(self._run_portal(self.portal), name="portal")
            for reader in self.readers:
                queue: asyncio.Queue[Tap] = asyncio.Queue(TAP_QUEUE_SIZE)
                self._queues.append(queue)
                tg.create_task(self._run_reader(reader, queue), name=f"reader-{reader.name}")
                tg.create_task(self._consume(reader.name, queue), name=f"decide-{reader.name}")
            self.ready.set()
            log.info(
                "ready",
                readers=[r.name for r in self.readers],
                tokens=len(self.cache),
                queued=self.outbox.depth,
            )
            if self._on_ready is not None:
                self._on_ready()

    async def _run_reader(self, reader: Reader, queue: asyncio.Queue[Tap]) -> None:
        """Run one reader; its failure never takes down the others or the door."""

        def sink(tap: Tap) -> None:
            try:
                queue.put_nowait(tap)
            except asyncio.QueueFull:
                self._dropped_taps += 1
                log.warning("tap_dropped", reader=reader.name, reason="decision queue full")

        backoff = Backoff(initial=1.0, maximum=READER_RESTART_MAX)
        while True:
            try:
                await reader.run(sink)
            except ReaderError as exc:
                # The reader knows its device is unusable (no permission, no capability):
                # say how to fix it and leave the rest running.
                self._reader_errors[reader.name] = str(exc)
                log.error("reader_failed", reader=reader.name, error=str(exc))
                return
            except Exception as exc:
                delay = backoff.next_delay()
                self._reader_errors[reader.name] = repr(exc)
                log.exception("reader_crashed", reader=reader.name, restart_in_s=delay)
                await asyncio.sleep(delay)
            else:
                return

    async def _consume(self, reader: str, queue: asyncio.Queue[Tap]) -> None:
        door_name = self._reader_door.get(reader)
        door = self.doors.get(door_name) if door_name else None
        while True:
            tap = await queue.get()
            try:
                await self.decider.decide(tap, door)
            except Exception:  # one bad tap must not stop the reader
                log.exception("decision_crashed", reader=reader)
            finally:
                queue.task_done()

    async def settle(self) -> None:
        """Wait until every tap read so far has been decided (callers bound the wait)."""
        for queue in self._queues:
            await queue.join()

    # --- the captive portal ----------------------------------------------------------

    def _make_portal(self, client: CobotClient) -> PortalService | None:
        cfg = self.cfg.portal
        if cfg is None or not cfg.enabled:
            return None
        from gateway.portal.service import PortalService

        return PortalService(cfg, client, self.cfg.gateway.state_dir, on_signed_in=self._signed_in)

    async def _run_portal(self, portal: PortalService) -> None:
        try:
            await portal.run()
        except GatewayError as exc:
            # The Wi-Fi sign-in is down; the doors must not be.
            log.error("portal_failed", error=str(exc))
            self.portal = None

    async def _signed_in(self, mac: str, check_in: CheckIn) -> None:
        """A member signed in on the portal and Cobot registered the MAC: the presence
        reader and the door know the device from now on, before the next sync."""
        if check_in.membership is None:
            return
        await self.cache.add(mac, check_in.membership)
        await self.cache.mark_checked_in(check_in.membership.id, check_in.valid_until)

    def _returning_device(self, decision: Decision) -> None:
        """A registered device seen by a MAC presence reader is let out through the
        portal's firewall without seeing the page (and shut out on check-out)."""
        tap, portal = decision.tap, self.portal
        if portal is None or tap.reader not in self._mac_readers:
            return
        if decision.outcome in _ADMITTED and decision.membership is not None:
            until = self.cache.checked_in_until(decision.membership.id)
            if until is not None:
                self._spawn(self._authorise(portal, tap.token, until, decision.membership.id))
        elif decision.outcome in (Outcome.CHECKED_OUT, Outcome.CHECK_OUT_QUEUED):
            self._spawn(portal.revoke(tap.token))

    async def _authorise(
        self, portal: PortalService, mac: str, until: datetime, membership_id: str
    ) -> None:
        try:
            await portal.wait_started()
            await portal.authorise(mac, until, membership_id=membership_id)
        except (GatewayError, ValueError) as exc:
            log.error("portal_authorise_failed", mac=redact(mac), error=str(exc))

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- status -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "time": time.time(),
            "readers": {r.name: self._reader_status(r) for r in self.readers},
            "api": {
                "breaker": self.breaker.state.value,
                "last_error": self.breaker.last_error,
                "auth_failed": self.client.auth_failed,
            },
            "tokens": len(self.cache),
            "last_token_sync": self.sync.last_success,
            "queue_depth": self.outbox.depth,
            "storage_error": self.decider.storage_error,
            "dropped_taps": self._dropped_taps,
            "rate_limits": [
                {
                    "group": g.group.value,
                    "used": g.used,
                    "limit": g.limit,
                    "blocked_for_s": round(g.blocked_for, 1),
                    "waiting": g.waiting,
                }
                for g in self.limiter.state()
            ],
        }

    def _reader_status(self, reader: Reader) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": reader.state.value,
            "error": self._reader_errors.get(reader.name),
        }
        stats = getattr(reader, "stats", None)  # readers with counters (serial, nfc, mac)
        if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
            out["stats"] = {
                k: str(v) if isinstance(v, enum.Enum) else v
                for k, v in dataclasses.asdict(stats).items()
            }
        return out

    async def _status_loop(self) -> None:
        path = self.cfg.gateway.state_dir / STATUS_FILE
        while True:
            with contextlib.suppress(OSError):
                _write_atomic(path, json.dumps(self.status(), indent=1))
            await asyncio.sleep(STATUS_INTERVAL)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
