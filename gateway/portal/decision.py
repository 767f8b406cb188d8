"""A portal sign-in through the decision path: preview, firewall, then the check-in.

The portal's "door" is the firewall: what the member gets for a check-in there is their
device let out. So it goes the way every door does (gateway/decide.py): the rule judges
(Cobot's preview with the login and password: says yes or why not, bills nothing), the
record is held, the door moves (the firewall lets the MAC out until the preview's
``valid_until``), and only then is the record released (the real check-in, which
registers the MAC as the member's token) or discarded when the firewall failed. An nft
error or timeout therefore bills nobody; the visitor sees the portal's 503 page.

The record cannot wait in the outbox as a card's does: it needs the password, which is
never stored. It is held in memory for the one sign-in, sent on release while the person
waits, and dropped on discard. A gateway killed between the firewall and the check-in
bills nobody (the device is out until the preview's end; the page never said "checked
in"). A check-in that Cobot refuses or that fails after the firewall let the device out
is undone the other way: the portal shuts the device out again (``PortalService``).

    PreviewRule      DoorRule     Cobot's preview of the login/password check-in
    FirewallDoor     Door         ``PortalService.authorise`` (nft), DoorError on failure
    PortalCheckIns   RecordBackend  the held login/password check-in, sent on release
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from gateway.cobot.errors import ApiError, NoSlot, RateLimited, Refused, Unauthorized
from gateway.doors.base import DoorSignal
from gateway.errors import DoorError, GatewayError
from gateway.model import Membership, Outcome, RecordKind, Tap
from gateway.portal.signin import REQUEST_DEADLINE, CheckInApi, SignIn, SignInOutcome, classify
from gateway.records.base import Hold
from gateway.redact import redact
from gateway.rules.base import Verdict

log = structlog.get_logger(__name__)

READER = "portal"  # the reader name of a sign-in's tap
BACKEND = "cobot-portal"
FIREWALL_DOOR = "portal-firewall"

OnCheckedIn = Callable[[str, datetime], Awaitable[None]]
"""``Attendance.checked_in``: told once Cobot checked the member in."""


async def ask(api: CheckInApi, *, login: str, password: str, mac: str, preview: bool) -> SignIn:
    """One login/password check-in request (``preview``: Cobot only simulates it, 200),
    its failures turned into the outcomes the page explains."""
    try:
        result = await api.check_in(
            login=login, password=password, token=mac, preview=preview, deadline=REQUEST_DEADLINE
        )
    except Refused as exc:
        return SignIn(classify(exc), reason=exc.reason)
    except Unauthorized as exc:
        return SignIn(SignInOutcome.MISCONFIGURED, reason=str(exc))
    except (NoSlot, RateLimited) as exc:
        return SignIn(SignInOutcome.BUSY, reason=str(exc))
    except ApiError as exc:  # Unavailable, MalformedResponse, and any the client adds
        return SignIn(SignInOutcome.UNAVAILABLE, reason=str(exc))
    return SignIn(SignInOutcome.SIGNED_IN, check_in=result.check_in, warning=result.warning)


# Outcomes of the decision log for a preview that did not say yes.
_REFUSED_AS = {
    SignInOutcome.UNAVAILABLE: Outcome.DENIED_OFFLINE,
    SignInOutcome.BUSY: Outcome.DENIED_OFFLINE,
    SignInOutcome.MISCONFIGURED: Outcome.DENIED_OFFLINE,
}


class PreviewRule:
    """The door rule of one sign-in: Cobot's preview decides (no check-in is created).

    ``sign_in`` is the preview's answer, for the page when it said no."""

    def __init__(
        self,
        api: CheckInApi,
        *,
        login: str,
        password: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = api
        self._login = login
        self._password = password
        self._now = now
        self.sign_in = SignIn(SignInOutcome.UNAVAILABLE, reason="not asked yet")

    async def judge(self, tap: Tap) -> Verdict:
        started = time.monotonic()
        self.sign_in = await ask(
            self._api, login=self._login, password=self._password, mac=tap.token, preview=True
        )
        ms = (time.monotonic() - started) * 1000
        check_in = self.sign_in.check_in
        if check_in is None:
            outcome = _REFUSED_AS.get(self.sign_in.outcome, Outcome.REFUSED)
            return Verdict(outcome, None, self.sign_in.reason or None, preview_ms=ms)
        if check_in.valid_until <= self._now():
            self.sign_in = SignIn(SignInOutcome.ENDED, check_in=None, reason="check-in ended")
            return Verdict(Outcome.REFUSED, check_in.membership, "check-in ended", preview_ms=ms)
        return Verdict(
            Outcome.OPENED_ONLINE,
            check_in.membership,
            record=RecordKind.CHECK_IN,
            until=check_in.valid_until,
            preview_ms=ms,
        )

    @property
    def until(self) -> datetime | None:
        """The previewed check-in's end: how long the firewall lets the device out."""
        return self.sign_in.check_in.valid_until if self.sign_in.check_in else None


class FirewallDoor:
    """The portal's door for one sign-in: ``allow`` lets the device out (the portal's
    ``authorise``), returning the end granted (None: nothing left to grant).
    ``FirewallError`` (nft failed or timed out) and the like become ``DoorError``."""

    def __init__(self, allow: Callable[[], Awaitable[datetime | None]]) -> None:
        self._allow = allow
        self.granted: datetime | None = None

    @property
    def name(self) -> str:
        return FIREWALL_DOOR

    async def open(self) -> None:
        try:
            granted = await self._allow()
        except (GatewayError, ValueError) as exc:
            raise DoorError(f"the firewall did not let the device out: {exc}") from exc
        if granted is None:
            raise DoorError("the firewall did not let the device out: the check-in is over")
        self.granted = granted

    async def signal(self, signal: DoorSignal) -> None:
        del signal  # the page is the feedback

    async def aclose(self) -> None:
        return None


@dataclass(slots=True)
class Ticket:
    """One sign-in's held check-in: the credentials until it is sent, then its answer."""

    login: str
    password: str
    result: SignIn | None = None  # set on release
    discarded: bool = False


class PortalCheckIns:
    """The record backend of the portal's sign-ins (readers ``portal``): the login and
    password check-in, held in memory for the one sign-in and sent on release.

    ``expect`` is called by the portal before the decision with the credentials of its
    tap; ``hold`` finds them by the tap. Nothing is ever queued (a password is not
    stored), so ``run`` only waits."""

    def __init__(self, api: CheckInApi, *, on_checked_in: OnCheckedIn | None = None) -> None:
        self._api = api
        self._on_checked_in = on_checked_in
        self._tickets: dict[int, tuple[Tap, Ticket]] = {}

    @property
    def name(self) -> str:
        return BACKEND

    @property
    def storage_error(self) -> str | None:
        return None  # nothing is stored

    def expect(self, tap: Tap, *, login: str, password: str) -> Ticket:
        ticket = Ticket(login, password)
        self._tickets[id(tap)] = (tap, ticket)
        return ticket

    def forget(self, tap: Tap) -> None:
        found = self._tickets.pop(id(tap), None)
        if found is not None:
            found[1].password = ""

    def _ticket(self, tap: Tap) -> Ticket | None:
        found = self._tickets.get(id(tap))
        return found[1] if found is not None and found[0] is tap else None

    async def hold(self, kind: RecordKind, tap: Tap, member: Membership | None) -> Hold:
        if self._ticket(tap) is None:
            log.error("portal_check_in_without_sign_in", token=redact(tap.token))
        return Hold(BACKEND, kind, tap, member, None)  # in memory: never "stored"

    async def release(self, hold: Hold, *, live: bool) -> None:
        """The firewall let the device out: check the member in now (a person waits)."""
        del live  # the preview just answered
        ticket = self._ticket(hold.tap)
        if ticket is None:
            return
        result = await ask(
            self._api,
            login=ticket.login,
            password=ticket.password,
            mac=hold.tap.token,
            preview=False,
        )
        ticket.password = ""
        ticket.result = result
        membership = result.check_in.membership if result.check_in else None
        if result.check_in is not None and membership is not None and self._on_checked_in:
            try:
                await self._on_checked_in(membership.id, result.check_in.valid_until)
            except Exception:  # bookkeeping after the fact must not turn into an error page
                log.exception("portal_attendance_failed", membership_id=membership.id)

    async def discard(self, hold: Hold) -> None:
        """The firewall failed: nothing is sent, nobody is billed."""
        ticket = self._ticket(hold.tap)
        if ticket is not None:
            ticket.password = ""
            ticket.discarded = True

    async def run(self) -> None:
        await asyncio.Event().wait()  # nothing ever waits for delivery

    async def aclose(self) -> None:
        return None


async def decide_alone(
    backend: PortalCheckIns, tap: Tap, door: FirewallDoor, rule: PreviewRule
) -> None:
    """The decision path for a portal run without a gateway's ``Decider`` (on its own,
    as the namespace tests run it): the same order as ``Decider._admit``, hold -> door
    -> release or discard. In a gateway the portal is given ``Decider.decide`` instead."""
    verdict = await rule.judge(tap)
    if not verdict.admits:
        return
    kind = verdict.record or RecordKind.CHECK_IN
    hold = await backend.hold(kind, tap, verdict.member)
    try:
        await door.open()
    except DoorError as exc:
        log.error("door_failed", door=door.name, error=str(exc))
        await backend.discard(hold)
        return
    await backend.release(hold, live=verdict.live)
