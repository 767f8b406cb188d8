"""``PortalService``: the portal's web server, firewall, device store and expiry timer.

The gateway app constructs it and runs ``await service.run()`` in its TaskGroup; run
installs the firewall with the devices remembered in SQLite, serves the portal, lets
devices out until their check-in's ``valid_until`` and shuts them out again when it has
passed. The app calls ``authorise`` for a returning device that the MAC presence reader
saw and Cobot checked in.

A sign-in goes through the decision path (``decision.py``): Cobot's preview, then the
firewall (the portal's door), then the check-in; a firewall that fails bills nobody. In a
gateway ``decide`` is ``Decider.decide`` (with ``check_ins`` as the backend of reader
``portal``); on its own the portal runs the same order itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from aiohttp import web

from gateway.config.model import PortalSection
from gateway.errors import GatewayError
from gateway.model import CheckIn, Direction, Tap
from gateway.portal.decision import (
    READER,
    FirewallDoor,
    OnCheckedIn,
    PortalCheckIns,
    PreviewRule,
    decide_alone,
)
from gateway.portal.firewall import Firewall, NftFirewall, NoFirewall, Ruleset
from gateway.portal.neighbours import KernelNeighbours, NeighbourTable, canonical_mac
from gateway.portal.signin import Attempt, CheckInApi, ClientState, SignIn, SignInOutcome
from gateway.portal.store import Authorisation, DeviceStore
from gateway.portal.throttle import Throttle, is_login_key, keys_for
from gateway.readers.base import make_tap
from gateway.redact import redact

log = structlog.get_logger(__name__)

OnSignedIn = Callable[[str, CheckIn], Awaitable[None] | None]
"""Called as ``on_signed_in(mac, check_in)`` after a member signed in on the page and
Cobot registered the MAC as their token (not for guests and admins, who have no
membership, nor when the MAC is registered to someone else)."""

Decide = Callable[[Tap, FirewallDoor, PreviewRule], Awaitable[object]]
"""``Decider.decide(tap, door, rule)``, whose backends for reader ``portal`` are
``PortalService.check_ins``."""

# The expiry timer re-checks at least this often (seconds): the wall clock can jump
# (a Pi has no RTC and sets its clock from NTP after boot).
MAX_SLEEP = 60.0
# Seconds a person waits for a sign-in slot when many sign in at once.
SIGN_IN_SLOT_DEADLINE = 15.0
MAX_CONCURRENT_SIGN_INS = 8
# Parallel attempts count one at a time. Another attempt from the same MAC or IP still
# running: refused, come back in this many seconds. Another attempt for the same login
# (from another device) still running: wait in line up to this long, so that nobody can
# keep a member out by keeping guesses for their login in flight.
IN_FLIGHT_RETRY = 5.0


async def _attempt(work: Awaitable[object]) -> str | None:
    """Await ``work``: None when it went well, else the message of its GatewayError
    (expected failures are logged by the caller without a traceback)."""
    try:
        await work
    except GatewayError as exc:
        return str(exc)
    return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PortalService:
    def __init__(
        self,
        cfg: PortalSection,
        client: CheckInApi,
        state_dir: Path,
        *,
        on_signed_in: OnSignedIn | None = None,
        decide: Decide | None = None,
        on_checked_in: OnCheckedIn | None = None,
        checked_in_until: Callable[[str], datetime | None] | None = None,
        neighbours: NeighbourTable | None = None,
        firewall: Firewall | None = None,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self._client = client
        self._state_dir = state_dir
        self._on_signed_in = on_signed_in
        # The held check-ins of sign-ins (the record backend of reader "portal"); it
        # tells ``on_checked_in`` (Attendance) once Cobot checked a member in.
        self.check_ins = PortalCheckIns(client, on_checked_in=on_checked_in)
        self._decide: Decide = decide or self._decide_alone
        # MAC -> until when the member it is registered to is checked in now (token cache
        # and Attendance): such a device is let out when it asks, without the page.
        self._checked_in_until = checked_in_until
        self.neighbours: NeighbourTable = neighbours or KernelNeighbours(cfg.interface)
        self.firewall: Firewall = firewall or (
            NftFirewall(Ruleset(cfg.table, cfg.interface, cfg.port))
            if cfg.firewall
            else NoFirewall()
        )
        self.now = clock
        self.throttle = Throttle(cfg.max_failures, cfg.failure_window, clock=monotonic)
        self._store: DeviceStore | None = None
        self._lock = asyncio.Lock()  # one firewall/store change at a time
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_SIGN_INS)
        self._in_flight: set[str] = set()
        self._released = asyncio.Condition()  # notified when keys leave _in_flight
        self._started = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.addresses: list[tuple[str, int]] = []
        self.log = log.bind(portal=cfg.interface)

    # --- lifecycle ---------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled. Raises ``GatewayError`` (StorageError, FirewallError,
        OSError wrapped) when the portal cannot start; the firewall table stays
        installed on stop so the LAN stays closed while the gateway restarts."""
        from gateway.portal.app import make_app, serve

        self._store = await DeviceStore.open(self._state_dir)
        try:
            await self._restore()
            self._runner, self.addresses = await serve(make_app(self), self.cfg)
            try:
                self._started.set()
                self.log.info("portal_started", addresses=[f"{h}:{p}" for h, p in self.addresses])
                await self._expiry_loop()
            finally:
                await self._runner.cleanup()
        finally:
            self._started.clear()
            await self._store.close()
            self._store = None
            self.log.info("portal_stopped")

    async def wait_started(self) -> None:
        await self._started.wait()

    @property
    def store(self) -> DeviceStore:
        if self._store is None:
            raise RuntimeError("the portal is not running")
        return self._store

    async def _restore(self) -> None:
        now = self.now()
        keep = []
        for auth in self.store.all():
            if auth.until <= now:
                await self.store.delete(auth.mac)
            else:
                keep.append((auth.mac, auth.seconds_left(now)))
        await self.firewall.install(keep)
        if keep:
            self.log.info("portal_restored", devices=len(keep))

    # --- letting devices out and in ------------------------------------------------

    async def authorise(
        self,
        mac: str,
        until: datetime,
        *,
        ip: str | None = None,
        membership_id: str | None = None,
        source: str = "presence",
    ) -> datetime | None:
        """Let ``mac`` out until ``until`` (cut to ``max_session``); returns the end
        actually granted, or None when ``until`` has passed. Raises ``FirewallError``
        when nft fails and ``ValueError`` for a malformed MAC."""
        normal = canonical_mac(mac)
        if normal is None:
            raise ValueError(f"not a MAC address: {redact(mac)}")
        now = self.now()
        until = min(until, now + timedelta(seconds=self.cfg.max_session))
        if until <= now:
            return None
        auth = Authorisation(
            mac=normal,
            until=until,
            source=source,
            ips=(ip,) if ip else (),
            membership_id=membership_id,
        )
        async with self._lock:
            # The firewall first: a person is waiting; the store is for restarts.
            await self.firewall.allow(normal, auth.seconds_left(now))
            auth = await self._remember(auth)
            await self._forget(auth)
        self._wake.set()
        self.log.info(
            "device_authorised", mac=redact(normal), until=until.isoformat(), source=source
        )
        return until

    async def _remember(self, auth: Authorisation) -> Authorisation:
        # A failed write loses the device only at the next restart: it is out now.
        failure = await _attempt(self.store.put(auth))
        if failure:
            self.log.error("portal_store_failed", mac=redact(auth.mac), error=failure)
            return auth
        return self.store.get(auth.mac) or auth

    async def revoke(self, mac: str) -> None:
        """Shut ``mac`` out now (e.g. on check-out)."""
        normal = canonical_mac(mac)
        if normal is None:
            return
        async with self._lock:
            auth = await self.store.delete(normal)
            await self.firewall.revoke(normal)
            await self._forget(auth or Authorisation(normal, self.now(), "revoke"))
        self.log.info("device_revoked", mac=redact(normal))

    async def expire_due(self) -> int:
        """Shut out every device whose time has passed; returns how many."""
        now = self.now()
        due = [a for a in self.store.all() if a.until <= now]
        for auth in due:
            async with self._lock:
                current = self.store.get(auth.mac)
                if current is None or current.until > now:
                    continue  # renewed meanwhile
                await self.store.delete(auth.mac)
                # Normally the kernel has dropped the element already; on failure the
                # kernel's own timeout still shuts the device out.
                failure = await _attempt(self.firewall.revoke(auth.mac))
                if failure:
                    self.log.error("device_expiry_failed", mac=redact(auth.mac), error=failure)
                await self._forget(auth)
            self.log.info("device_expired", mac=redact(auth.mac))
        return len(due)

    async def _forget(self, auth: Authorisation) -> None:
        ips = set(auth.ips)
        ips.update(await self.neighbours.addresses_of(auth.mac))
        await self.firewall.forget_connections(sorted(ips))

    async def _expiry_loop(self) -> None:
        while True:
            self._wake.clear()
            failure = await _attempt(self.expire_due())
            if failure:
                self.log.error("portal_expiry_failed", error=failure)
            following = self.store.next_expiry()
            delay = MAX_SLEEP
            if following is not None:
                delay = min(MAX_SLEEP, max(0.0, (following - self.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    # --- what the web app asks ------------------------------------------------------

    async def client_state(self, ip: str) -> ClientState:
        mac = await self.neighbours.mac_for(ip)
        until = self.store.until(mac, self.now()) if mac else None
        if mac is not None and until is None:
            until = await self._returning(mac, ip)
        return ClientState(ip=ip, mac=mac, until=until)

    async def _returning(self, mac: str, ip: str) -> datetime | None:
        """A registered device of a member already checked in (a card at the door, say)
        is let out on its first request (the OS's captive probe): their check-in is not
        repeated, and a presence reader does not announce them again."""
        found = self._checked_in_until(mac) if self._checked_in_until is not None else None
        if found is None:
            return None
        try:
            return await self.authorise(mac, found, ip=ip, source="returning")
        except (GatewayError, ValueError) as exc:
            self.log.error("portal_authorise_failed", mac=redact(mac), error=str(exc))
            return None

    async def sign_in(self, client: ClientState, login: str, password: str) -> Attempt:
        if client.mac is None:
            return Attempt(SignInOutcome.UNKNOWN_DEVICE)
        keys = keys_for(mac=client.mac, ip=client.ip, login=login)
        wait = self.throttle.retry_after(keys)
        if wait > 0:
            return Attempt(SignInOutcome.THROTTLED, retry_after=wait)
        async with self._claim(keys) as claimed:
            if not claimed:
                return Attempt(SignInOutcome.THROTTLED, retry_after=IN_FLIGHT_RETRY)
            wait = self.throttle.retry_after(keys)  # the attempt waited for may have failed
            if wait > 0:
                return Attempt(SignInOutcome.THROTTLED, retry_after=wait)
            try:
                async with asyncio.timeout(SIGN_IN_SLOT_DEADLINE):
                    await self._slots.acquire()
            except TimeoutError:
                return Attempt(SignInOutcome.BUSY)
            try:
                attempt = await self._through_the_door(client, login, password)
            finally:
                self._slots.release()
            if attempt.outcome.counts_as_failure:
                self.throttle.failed(keys)
            return await self._after(client, login, attempt)

    @contextlib.asynccontextmanager
    async def _claim(self, keys: tuple[str, ...]) -> AsyncIterator[bool]:
        """Mark ``keys`` in flight for the block; False when the device already has an
        attempt running, or the login's line did not clear within ``IN_FLIGHT_RETRY``."""
        device = [k for k in keys if not is_login_key(k)]
        if self._in_flight.intersection(device):
            yield False
            return
        try:
            async with asyncio.timeout(IN_FLIGHT_RETRY), self._released:
                await self._released.wait_for(lambda: not self._in_flight.intersection(keys))
        except TimeoutError:
            yield False
            return
        self._in_flight.update(keys)
        try:
            yield True
        finally:
            self._in_flight.difference_update(keys)
            async with self._released:
                self._released.notify_all()

    async def _decide_alone(self, tap: Tap, door: FirewallDoor, rule: PreviewRule) -> None:
        await decide_alone(self.check_ins, tap, door, rule)

    async def _through_the_door(self, client: ClientState, login: str, password: str) -> Attempt:
        """Preview -> firewall -> check-in, through the decision path. Whatever fails
        bills nobody: a refused preview creates nothing, a failed firewall discards the
        held check-in, and a check-in that fails after the firewall let the device out
        shuts it out again."""
        mac = client.mac
        assert mac is not None
        tap = make_tap(READER, mac, Direction.IN)
        rule = PreviewRule(self._client, login=login, password=password, now=self.now)

        async def allow() -> datetime | None:
            assert rule.until is not None  # the door moves only after a preview's yes
            membership = rule.sign_in.check_in.membership if rule.sign_in.check_in else None
            return await self.authorise(
                mac,
                rule.until,
                ip=client.ip,
                membership_id=membership.id if membership else None,
                source="portal",
            )

        door = FirewallDoor(allow)
        ticket = self.check_ins.expect(tap, login=login, password=password)
        try:
            await self._decide(tap, door, rule)
        finally:
            self.check_ins.forget(tap)
        if rule.sign_in.check_in is None:  # the preview said no: nothing happened
            return Attempt(rule.sign_in.outcome, sign_in=rule.sign_in)
        if door.granted is None:
            self.log.error("portal_firewall_failed", mac=redact(mac), billed=False)
            return Attempt(SignInOutcome.NETWORK_FAILED, sign_in=rule.sign_in)
        result = ticket.result or SignIn(SignInOutcome.UNAVAILABLE, reason="no check-in sent")
        if result.check_in is None:
            # Out, but not checked in: shut the device out again (else the kernel's
            # timeout does, at the preview's end), unless it was out before anyway.
            failure = await _attempt(self.revoke(mac)) if client.until is None else None
            self.log.error(
                "portal_check_in_failed_after_firewall",
                mac=redact(mac),
                outcome=result.outcome.value,
                reason=result.reason or None,
                shut_out=failure is None,
                error=failure,
            )
            return Attempt(result.outcome, sign_in=result)
        until = door.granted
        if result.check_in.valid_until != rule.until:
            # Cobot's check-in ends elsewhere than its preview said: follow Cobot. The
            # device is out already; failing here only keeps the preview's end.
            until = await self._follow(mac, result.check_in, client.ip) or until
        return Attempt(SignInOutcome.SIGNED_IN, sign_in=result, until=until)

    async def _follow(self, mac: str, check_in: CheckIn, ip: str) -> datetime | None:
        membership_id = check_in.membership.id if check_in.membership else None
        try:
            return await self.authorise(
                mac, check_in.valid_until, ip=ip, membership_id=membership_id, source="portal"
            )
        except (GatewayError, ValueError) as exc:
            self.log.warning("portal_firewall_renew_failed", mac=redact(mac), error=str(exc))
            return None

    async def _after(self, client: ClientState, login: str, attempt: Attempt) -> Attempt:
        assert client.mac is not None
        result = attempt.sign_in
        self.log.info(
            "portal_sign_in",
            outcome=attempt.outcome.value,
            mac=redact(client.mac),
            login=redact(login),
            reason=(result.reason if result else "") or None,
        )
        if attempt.outcome is not SignInOutcome.SIGNED_IN or result is None:
            return attempt
        self.throttle.clear(keys_for(mac=None, ip=None, login=login))
        check_in = result.check_in
        if check_in is not None and check_in.membership is not None and result.warning is None:
            await self._notify(client.mac, check_in)
        return attempt

    async def _notify(self, mac: str, check_in: CheckIn) -> None:
        if self._on_signed_in is None:
            return
        try:
            outcome = self._on_signed_in(mac, check_in)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:  # the app's hook must not turn a sign-in into an error page
            self.log.exception("portal_on_signed_in_failed", mac=redact(mac))
