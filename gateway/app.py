"""The daemon's top level: builds the parts from the config, hands them to the runner.

Start-up order: database -> token cache and attendance (from disk: the door works before
the first sync) -> outbox (rows left ``held`` by a stop mid-door are released) ->
parts: token sync, delivery, housekeeping, status, portal, then per reader its decision
queue and the reader itself -> ready. Stop runs in reverse under one deadline (runner.py):
readers first, then their queues (taps read but not decided are logged as dropped), then
delivery (in-flight check-ins get a moment; the rest stays queued on disk).

Data flows one way: reader -> tap queue -> Decider (rule -> door -> record backends) ->
delivery; ``Attendance`` hears who is checked in from the decision and the delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from gateway.attendance import Attendance
from gateway.bookings.doors import DoorRules, booking_rate_limits
from gateway.bookings.snapshot import BookingSnapshot
from gateway.breaker import Breaker
from gateway.cache import TokenCache
from gateway.clock import SYSTEM_CLOCK, SystemClock, watch_clock
from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.config.model import Config
from gateway.decide import Decider, Decision, DecisionHook, decide_queue
from gateway.doors import build_door
from gateway.doors.base import Door
from gateway.drain import DeliveryHook, Drainer
from gateway.model import Signal, Tap
from gateway.outbox import Outbox
from gateway.portal.wiring import make_portal, returning_device, run_portal
from gateway.readers import build_reader
from gateway.readers.base import Reader, ReaderContext
from gateway.records.cobot import CobotRecords
from gateway.records.routing import reader_backends, reader_rule
from gateway.rules.base import DoorRule
from gateway.rules.check_in import CheckInRule
from gateway.runner import Part, Runner
from gateway.store import DAEMON_BUSY_TIMEOUT_MS, Database, open_state
from gateway.sync import TokenSync

if TYPE_CHECKING:
    from gateway.admin.service import AdminService
    from gateway.metrics import GatewayMetrics
    from gateway.metrics.server import Handler
    from gateway.moco.keys import MocoKeys
    from gateway.moco.service import MocoService
    from gateway.mqtt.bridge import MqttBridge
    from gateway.portal.service import PortalService

log = structlog.get_logger(__name__)

TAP_QUEUE_SIZE = 256  # per reader; a reader flooding faster than we decide is dropped
CLOCK_POLL = 10.0  # seconds between looks at an unsynchronised clock


class Gateway:
    # The collaborators, built by ``run`` before ``ready`` is set (tests and ``status``
    # read them once the gateway is ready).
    db: Database
    cache: TokenCache
    attendance: Attendance
    outbox: Outbox
    limiter: RateLimiter
    client: CobotClient
    breaker: Breaker
    drainer: Drainer
    records: CobotRecords
    sync: TokenSync
    decider: Decider
    runner: Runner
    moco: MocoService | None = None  # with a [moco] section
    snapshot: BookingSnapshot
    door_rules: DoorRules

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
        clock: SystemClock = SYSTEM_CLOCK,
        moco_keys: MocoKeys | None = None,
        state_problem: str | None = None,
    ) -> None:
        self.cfg = cfg
        # Why the state directory cannot hold the database (then it lives in memory).
        self.state_problem = state_problem
        self._moco_keys = moco_keys
        self._access_token = access_token
        self._doors_override = doors
        self._readers_override = readers
        self._hooks = hooks or []
        self._delivery_hooks = delivery_hooks or []
        self._on_ready = on_ready
        self.clock = clock
        self.ready = asyncio.Event()
        self.readers: list[Reader] = []
        self.doors: dict[str, Door] = {}
        self.portal: PortalService | None = None
        self.admin: AdminService | None = None  # the manager's page ([admin])
        self._reader_door: dict[str, str | None] = {}
        self._queues: list[asyncio.Queue[Tap]] = []
        self.dropped_taps = 0
        self._tasks: set[asyncio.Task[object]] = set()
        self.mac_readers = {r.name for r in cfg.readers if r.type == "mac"}
        # Counted only where served ([metrics] or [admin]; gateway/metrics/wiring.py).
        self.metrics: GatewayMetrics | None = None
        if cfg.metrics is not None or cfg.admin is not None:
            from gateway.metrics.wiring import build_metrics

            self.metrics = build_metrics(cfg)
        self.mqtt: MqttBridge | None = None

    async def run(self) -> None:
        cfg = self.cfg
        self.db, self.state_problem = await open_state(
            cfg.gateway.state_dir, self.state_problem, busy_timeout_ms=DAEMON_BUSY_TIMEOUT_MS
        )
        try:
            await asyncio.to_thread(self.clock.refresh)
            await self._load()
            limits = {
                Group.CHECK_INS: cfg.cobot.check_in_rpm,
                Group.DEFAULT: cfg.cobot.default_rpm,
                **booking_rate_limits(cfg),
            }
            if cfg.moco is not None:
                limits[Group.MOCO] = cfg.moco.rpm
            self.limiter = RateLimiter(limits)
            async with (
                CobotClient(
                    cfg.cobot.base_url,
                    self._access_token,
                    self.limiter,
                    timeout=cfg.cobot.request_timeout,
                    clock=self.clock,
                    observe=self.metrics.api if self.metrics is not None else None,
                ) as client,
                self._open_moco(),
            ):
                self.client = client
                self._build(client)
                try:
                    await self.runner.run(on_started=self._started)
                finally:
                    await self.records.aclose()
                    if self.moco is not None:
                        await self.moco.records.aclose()
                    await self.decider.aclose()
                    await self._cancel_spawned()
                    for door in self.doors.values():
                        await door.aclose()
        finally:
            await self.db.close()
            log.info("stopped")

    @contextlib.asynccontextmanager
    async def _open_moco(self) -> AsyncIterator[None]:
        """MOCO's client and backend, with a [moco] section (gateway/moco/service.py)."""
        if self.cfg.moco is None:
            yield
            return
        from gateway.moco.keys import load_moco_keys
        from gateway.moco.service import MocoService

        keys = self._moco_keys or load_moco_keys(self.cfg)
        observe = self.metrics.api if self.metrics is not None else None
        service = MocoService(
            self.cfg.moco, keys, self.limiter, self.outbox, self.clock, self._feedback, observe
        )
        async with service:
            self.moco = service
            yield

    async def _load(self) -> None:
        self.cache = TokenCache(self.db)
        await self.cache.load()
        self.attendance = Attendance(self.db)
        await self.attendance.load()
        self.outbox = Outbox(self.db, self.cfg.queue.max_entries)
        held = await self.outbox.release_held_at_start()
        if held:
            log.warning("door_outcome_unknown", entries=held, delivered="yes (billed once a day)")
        await self.outbox.load()
        self.snapshot = BookingSnapshot(self.db)
        await self.snapshot.load()

    def _build(self, client: CobotClient) -> None:
        cfg = self.cfg
        self.breaker = Breaker()
        self.drainer = Drainer(
            self.outbox,
            client,
            self.attendance,
            self.breaker,
            cfg.queue,
            clock=self.clock,
            hooks=self._delivery_hooks,
        )
        self.records = CobotRecords(
            self.outbox, self.drainer, client, self.breaker, self.attendance
        )
        self.sync = TokenSync(self.cache, client, self.breaker, cfg.gateway.token_sync_interval)
        self.portal = make_portal(self, client)
        self.admin = self._make_admin()
        rule = CheckInRule(
            self.cache,
            self.attendance,
            client,
            self.breaker,
            policy=cfg.gateway.offline_policy,
            deadline=cfg.gateway.decision_deadline,
        )
        self.door_rules = DoorRules.build(
            cfg,
            cache=self.cache,
            attendance=self.attendance,
            snapshot=self.snapshot,
            client=client,
            breaker=self.breaker,
        )
        self.decider = Decider(
            rule,
            [self.records],
            self.attendance,
            door_rules=self.door_rules.rules,
            hooks=[
                *self._hooks,
                returning_device(self),
                self._integrations,
                *self._admin_hooks(),
                *self.door_rules.hooks(),  # walk-ups whose door failed are deleted
            ],
            journal=self.admin.journal() if self.admin is not None else [],
            reader_backends=reader_backends(self.cfg, self.records, self.moco, self.portal),
        )
        self.doors = dict(self._doors_override or {d.name: build_door(d) for d in cfg.doors})
        ctx = ReaderContext(
            state_dir=cfg.gateway.state_dir, lookup=self.cache.lookup, attendance=self.attendance
        )
        if self._readers_override is not None:
            self.readers = list(self._readers_override)
        else:
            self.readers = [build_reader(c, ctx) for c in cfg.readers]
        configured = {c.name: c.door for c in cfg.readers}
        self._reader_door = {r.name: configured.get(r.name) for r in self.readers}
        if self.metrics is not None:
            self.metrics.set_doors(self._reader_door)
        if cfg.mqtt is not None:
            from gateway.mqtt.wiring import build_bridge

            self.mqtt = build_bridge(self, cfg.mqtt, self._reader_door)
        self.runner = Runner(self._parts())

    def reader_rule(self, reader: str, door: Door | None) -> DoorRule | None:
        """A reader recording to MOCO judges staff cards itself (records/routing.py)."""
        return reader_rule(self.cfg, reader, self.moco, self.decider.rule_for(door))

    def _feedback(self, reader: str, signal: Signal) -> None:
        """MOCO's in/out feedback, shown by the reader's door (if it has one)."""
        door_name = next((c.door for c in self.cfg.readers if c.name == reader), None)
        door = self.doors.get(door_name) if door_name else None
        if door is not None:
            self.spawn(door.signal(signal))

    def _parts(self) -> list[Part]:
        parts = [
            # First: started before the doors, stopped after them (and after delivery,
            # whose stop matters more), so "offline" is said last.
            *self._integration_parts(),
            Part("token-sync", self.sync.run),
            Part("delivery", self.records.run),
            Part("housekeeping", lambda: self.attendance.keep_pruned(self.clock.now)),
            Part("clock", lambda: watch_clock(self.clock, CLOCK_POLL)),
            *self.door_rules.parts(),
        ]
        if self.moco is not None:
            parts.append(Part("moco", self.moco.records.run))
        if self.portal is not None:
            parts.append(Part("portal", lambda: run_portal(self)))
        if self.admin is not None:  # /metrics on its listener (else on [metrics]' own)
            self.admin.add_route("GET", "/metrics", self.metrics_handler(), public=True)
            parts.extend(self.admin.parts())
        for reader in self.readers:
            queue: asyncio.Queue[Tap] = asyncio.Queue(TAP_QUEUE_SIZE)
            self._queues.append(queue)
            parts.append(Part(f"decide-{reader.name}", self._decisions(reader.name, queue)))
        for reader, queue in zip(self.readers, self._queues, strict=True):
            parts.append(Part(f"reader-{reader.name}", self._reading(reader, queue)))
        return parts

    def _started(self) -> None:
        self.ready.set()
        log.info(
            "ready",
            readers=[r.name for r in self.readers],
            tokens=len(self.cache),
            queued=self.outbox.depth,
        )
        if self._on_ready is not None:
            self._on_ready()

    # --- readers and their decisions ---------------------------------------------------

    def _reading(
        self, reader: Reader, queue: asyncio.Queue[Tap]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        def sink(tap: Tap) -> None:
            if self.admin is not None and self.admin.offer(tap):
                return  # captured for enrolment on the admin page, not decided
            try:
                queue.put_nowait(tap)
            except asyncio.QueueFull:
                self.dropped_taps += 1
                log.warning("tap_dropped", reader=reader.name, reason="decision queue full")

        async def run() -> None:
            # A ReaderError (a GatewayError) means the device is unusable (no permission,
            # no capability): the runner shows its fix and leaves the rest running.
            await reader.run(sink)

        return run

    def _decisions(
        self, reader: str, queue: asyncio.Queue[Tap]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        door_name = self._reader_door.get(reader)
        door = self.doors.get(door_name) if door_name else None
        rule = self.reader_rule(reader, door)
        return lambda: decide_queue(self.decider, reader, queue, door, rule)

    async def settle(self) -> None:
        """Wait until every tap read so far has been decided (callers bound the wait)."""
        for queue in self._queues:
            await queue.join()

    # --- the admin page ---------------------------------------------------------------

    def _make_admin(self) -> AdminService | None:
        if self.cfg.admin is None:
            return None
        from gateway.admin.service import AdminService

        return AdminService(self.cfg.admin, self)

    def _admin_hooks(self) -> list[DecisionHook]:
        return self.admin.hooks() if self.admin is not None else []

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_spawned(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- metrics and MQTT (gateway/metrics, gateway/mqtt) --------------------------------

    def _integrations(self, decision: Decision) -> None:
        if self.metrics is not None:
            self.metrics.decision(decision)
        if self.mqtt is not None:
            self.mqtt.decision(decision)

    def _integration_parts(self) -> list[Part]:
        if self.metrics is None and self.mqtt is None:
            return []
        from gateway.metrics.wiring import parts_of

        return parts_of(self)

    def metrics_handler(self) -> Handler:
        """The ``/metrics`` handler (the admin app mounts it on its listener)."""
        from gateway.metrics.wiring import handler_of

        return handler_of(self)

    # --- status -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What ``checkin-gateway status`` shows (gateway/status/report.py)."""
        from gateway.status.report import gateway_status

        return gateway_status(self)
