"""The admin page as parts of the daemon: the access-log writer and the web app.

``AdminService`` is built by the gateway when the config has ``[admin]``. It gives the
gateway two decision hooks (``hooks()``: the live feed and the access log) and two
supervised parts (``parts()``): ``access-log`` (writer + daily prune) and ``admin``
(the aiohttp listener). Without a password file the ``admin`` part stops at once with
the reason (``status`` shows it); the doors and the access log run on regardless.

Other parts may add routes to the listener before it starts, e.g. Prometheus metrics::

    gateway.admin.add_route("GET", "/metrics", handler, public=True)
"""

from __future__ import annotations

import asyncio
import hmac
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from aiohttp import web

from gateway.admin import enrol_web, pages, staff_web
from gateway.admin.accesslog import AccessLog
from gateway.admin.enrol import (
    API_DEADLINE,
    WINDOW,
    Capture,
    CardRef,
    Enrolment,
    EnrolRefused,
)
from gateway.admin.enrol_feedback import EnrolFeedback
from gateway.admin.feed import LiveFeed
from gateway.admin.password import PasswordCheck, load_hash
from gateway.admin.sessions import Sessions
from gateway.admin.web import AdminState, ExtraRoute, Handler, make_app
from gateway.cache import TokenCache
from gateway.clock import SystemClock
from gateway.cobot.client import CobotClient
from gateway.cobot.errors import ApiError, NotFound
from gateway.cobot.ratelimit import Priority
from gateway.config.integrations import AdminSection
from gateway.config.model import Config
from gateway.decide import DecisionHook
from gateway.doors.base import Door, DoorSignal
from gateway.drain import Drainer
from gateway.errors import GatewayError
from gateway.model import Membership, Tap
from gateway.outbox import Outbox
from gateway.portal.csrf import CsrfGuard
from gateway.portal.throttle import Throttle
from gateway.redact import redact
from gateway.runner import Part
from gateway.store import Database
from gateway.sync import TokenSync

if TYPE_CHECKING:
    from gateway.moco.service import MocoService
    from gateway.readers.base import Reader

log = structlog.get_logger(__name__)

SHUTDOWN_TIMEOUT = 2.0  # seconds open requests (event streams) get at stop
FOUND_KEPT = 32  # members found by e-mail, offered until registered or pushed out
HANDLER_ARGS: dict[str, Any] = {
    "max_line_size": 4096,
    "max_field_size": 8190,
    "max_headers": 64,
    "keepalive_timeout": 15.0,
}


class GatewayView(Protocol):
    """What the page reads of the gateway (``gateway.app.Gateway`` is one)."""

    cfg: Config
    clock: SystemClock
    moco: MocoService | None
    db: Database
    outbox: Outbox
    doors: dict[str, Door]
    readers: list[Reader]
    cache: TokenCache
    client: CobotClient
    sync: TokenSync

    def status(self) -> dict[str, Any]: ...

    @property
    def drainer(self) -> Drainer: ...


class AdminError(GatewayError):
    """The admin page cannot start (no password file, port taken)."""


class AdminService:
    def __init__(self, cfg: AdminSection, gateway: GatewayView) -> None:
        self.cfg = cfg
        self._gateway = gateway
        self.feed = LiveFeed()
        self.card_ref = CardRef()
        self._signalling: set[asyncio.Task[None]] = set()
        self.enrol_feedback = EnrolFeedback(self._show_at_reader)
        self.enrolment = Enrolment(
            gateway.cache.lookup,
            gateway.cache.add,
            on_capture=lambda c: self.feed.enrolled(c.id, c.reader, c.token),
            admin_cards=frozenset(cfg.enrol_cards),
            watch=self.enrol_feedback,
        )
        self._access_log: AccessLog | None = None
        self._found: OrderedDict[str, Membership] = OrderedDict()
        self._extra: list[ExtraRoute] = []
        self._check: PasswordCheck | None = None
        self.addresses: list[tuple[str, int]] = []
        self._started = False

    # --- what the gateway wires ------------------------------------------------------

    def hooks(self) -> list[DecisionHook]:
        return [self.feed.hook]

    def journal(self) -> list[DecisionHook]:
        """Called before the tap's record is released: the access log's row rides in
        the record's own transaction (accesslog.py)."""
        return [self._log_hook]

    def offer(self, tap: Tap) -> bool:
        """On the tap path, before the decision: True when a reader in enrolment mode
        captured this unknown card (then the tap must not be decided)."""
        return self.enrolment.offer(tap)

    def start_enrolment(self, reader: str) -> tuple[bool, str]:
        """Arm ``reader`` for the next unknown card (``checkin-gateway enrol``, MQTT's
        ``enrol``): (True, what happens next) or (False, why not)."""
        names = [r.name for r in self._gateway.readers]
        if reader not in names:
            return False, f"no reader {reader!r} (readers: {', '.join(names) or 'none'})"
        if not self.addresses:
            # Without its listener (no password file, port taken: `status` says which)
            # nobody could give the captured card to a member.
            return False, "the admin page is not running; see `checkin-gateway status`"
        self.enrolment.arm(reader, WINDOW)
        return True, (
            f"reader {reader!r} waits {WINDOW:.0f} s for a new card; then pick the member "
            "on the admin page (Enrol a card)"
        )

    def parts(self) -> list[Part]:
        return [Part("access-log", self._run_access_log), Part("admin", self.run)]

    def add_route(self, method: str, path: str, handler: Handler, *, public: bool = False) -> None:
        """Serve ``handler`` on the admin listener too (before the part starts).
        ``public=True`` skips the session check: only for answers without secrets."""
        if self._started:
            raise RuntimeError("admin routes must be added before the admin page starts")
        self._extra.append(ExtraRoute(method, path, handler, public))

    # --- what the web layer reads -------------------------------------------------------

    @property
    def access_log(self) -> AccessLog:
        if self._access_log is None:
            self._access_log = AccessLog(self._gateway.db, self.cfg.access_log_days)
        return self._access_log

    @property
    def access_log_days(self) -> int:
        return self.cfg.access_log_days

    @property
    def db(self) -> Database:
        return self._gateway.db

    @property
    def outbox(self) -> Outbox:
        return self._gateway.outbox

    @property
    def doors(self) -> Mapping[str, Door]:
        return self._gateway.doors

    def status(self) -> dict[str, Any]:
        return self._gateway.status()

    @property
    def moco(self) -> MocoService | None:
        """MOCO's client, record backend and staff book, with ``[moco]``."""
        return self._gateway.moco

    def today(self) -> date:
        return self._gateway.clock.now().astimezone().date()

    def staff_version(self) -> str | None:
        """For the event stream: changes when the *Staff* page would (None without MOCO)."""
        moco = self.moco
        if moco is None:
            return None
        return staff_web.version(moco, self._gateway.outbox.depth, self.today())

    async def memberships(self) -> list[Membership]:
        """The memberships the token cache knows (a card can be added to them)."""
        rows = await self._gateway.db.fetchall(
            "SELECT DISTINCT membership_id, membership_name FROM tokens "
            "ORDER BY membership_name, membership_id"
        )
        return [Membership(str(i), str(n or "")) for i, n in rows]

    async def cards(self) -> list[tuple[str, str, Membership]]:
        """The cards the token cache knows: (reference, redacted token, member)."""
        rows = await self._gateway.db.fetchall(
            "SELECT token, membership_id, membership_name FROM tokens "
            "ORDER BY membership_name, membership_id LIMIT 1000"
        )
        return [
            (self.card_ref.of(str(t)), redact(str(t)), Membership(str(i), str(n or "")))
            for t, i, n in rows
        ]

    async def revoke_card(self, ref: str) -> tuple[str, Membership]:
        """``DELETE /api/check_in_tokens/:token`` for the card ``ref`` names, then a token
        sync so the cache drops it at once. KeyError: no such card; EnrolRefused: Cobot
        did not delete it."""
        rows = await self._gateway.db.fetchall(
            "SELECT token, membership_id, membership_name FROM tokens"
        )
        match = next(
            (r for r in rows if hmac.compare_digest(self.card_ref.of(str(r[0])), ref)), None
        )
        if match is None:
            raise KeyError(ref)
        token, member = str(match[0]), Membership(str(match[1]), str(match[2] or ""))
        try:
            await self._gateway.client.delete_token(token, deadline=API_DEADLINE)
        except NotFound:
            pass  # already gone at Cobot: the sync below drops it here too
        except ApiError as exc:
            raise EnrolRefused(f"Cobot did not delete the card: {exc}") from exc
        await self._gateway.sync.sync_once()
        log.info("card_revoked", token=redact(token), membership_id=member.id)
        return redact(token), member

    async def find_member(self, email: str) -> Membership | None:
        """The member with this e-mail, found through their active check-in:
        ``GET /api/check_in?login=:email`` (scope ``checkin``, admin). Cobot has no
        member search; this finds a member only while checked in (None otherwise, and
        for admin and guest accounts, which have no membership). Raises EnrolRefused
        (the client's error) when Cobot could not be asked."""
        try:
            check_in = await self._gateway.client.check_in_status(
                login=email, priority=Priority.LIVE, deadline=API_DEADLINE
            )
        except ApiError as exc:
            raise EnrolRefused(str(exc)) from exc
        member = check_in.membership if check_in is not None else None
        log.info("admin_member_search", login=redact(email), found=member is not None)
        if member is not None:
            self._found[member.id] = member
            self._found.move_to_end(member.id)
            while len(self._found) > FOUND_KEPT:
                self._found.popitem(last=False)
        return member

    def found_member(self, membership_id: str) -> Membership | None:
        """A member an e-mail search found earlier (a card can be registered for them)."""
        return self._found.get(membership_id)

    async def register_card(self, capture_id: str, member: Membership) -> Capture:
        return await self.enrolment.register(self._gateway.client, capture_id, member)

    def wake_delivery(self) -> None:
        """A retried entry goes out now, not at the drainer's next idle look."""
        self._gateway.drainer.wake()

    async def verify(self, password: str) -> bool:
        assert self._check is not None
        return await self._check.verify(password)

    def _show_at_reader(self, reader: str, signal: DoorSignal) -> None:
        """Enrolment mode on the door of ``reader`` (if it has one), as MOCO's in/out is."""
        door_name = next((c.door for c in self._gateway.cfg.readers if c.name == reader), None)
        door = self._gateway.doors.get(door_name) if door_name else None
        if door is None:
            return
        task = asyncio.ensure_future(door.signal(signal))
        self._signalling.add(task)
        task.add_done_callback(self._signalling.discard)

    # --- the parts ----------------------------------------------------------------------

    def _log_hook(self, decision: Any) -> None:
        self.access_log.hook(decision)

    async def _run_access_log(self) -> None:
        await self.access_log.run()

    async def run(self) -> None:
        try:
            self._check = PasswordCheck(load_hash(self.cfg.password_file))
        except GatewayError as exc:
            raise AdminError(f"admin page not started: {exc}") from exc
        self._started = True
        with_moco = self.moco is not None
        state = AdminState(
            backend=self,
            sessions=Sessions(self.cfg.session_idle),
            csrf=CsrfGuard(),
            throttle=Throttle(self.cfg.max_failures, self.cfg.failure_window),
            language=self.cfg.language,
            public=frozenset(),
            nav=pages.STAFF_NAV if with_moco else pages.NAV,
        )

        def more(r: web.UrlDispatcher) -> None:
            enrol_web.add_routes(r)
            if with_moco:
                staff_web.add_routes(r)

        app = make_app(state, self._extra, more)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT, **HANDLER_ARGS
        )
        await runner.setup()
        try:
            try:
                for host in self.cfg.listen:
                    await web.TCPSite(runner, host, self.cfg.port, reuse_address=True).start()
            except OSError as exc:
                raise AdminError(
                    f"admin page: cannot listen on port {self.cfg.port}: {exc}"
                ) from exc
            self.addresses = [(str(a[0]), int(a[1])) for a in runner.addresses]
            log.info("admin_listening", addresses=self.addresses)
            await _forever()
        finally:
            self.addresses = []
            self.feed.close()
            self.enrol_feedback.close()
            for task in list(self._signalling):
                task.cancel()  # a feedback command is killed with its group
            await runner.cleanup()


async def _forever() -> None:
    import asyncio

    await asyncio.Event().wait()
