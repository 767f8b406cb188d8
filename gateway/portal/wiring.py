"""The captive portal inside the gateway: how its sign-ins reach the decision, the token
cache and Attendance, and how a registered device seen on the Wi-Fi is let out.

A sign-in is decided like any tap (reader ``portal``, gateway/portal/decision.py): the
preview judges it, its check-in is held, the firewall lets the device out ("the door"),
and only then is the check-in sent; Attendance hears of it from that record backend.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from gateway.cobot.client import CobotClient
from gateway.decide import Decision, DecisionHook
from gateway.doors.base import Door
from gateway.errors import GatewayError
from gateway.model import CheckIn, Outcome, Tap
from gateway.redact import redact
from gateway.rules.base import DoorRule

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.portal.service import PortalService

log = structlog.get_logger(__name__)

_ADMITTED = (Outcome.OPENED_ONLINE, Outcome.OPENED_CACHED, Outcome.OPENED_OFFLINE)


def make_portal(gw: Gateway, client: CobotClient) -> PortalService | None:
    """The portal service with ``[portal]`` enabled (built before the decider, which
    takes its record backend: hence the late-bound ``decide``)."""
    cfg = gw.cfg.portal
    if cfg is None or not cfg.enabled:
        return None
    from gateway.portal.service import PortalService

    async def decide(tap: Tap, door: Door, rule: DoorRule) -> Decision:
        return await gw.decider.decide(tap, door, rule)

    return PortalService(
        cfg,
        client,
        gw.cfg.gateway.state_dir,
        on_signed_in=lambda mac, check_in: signed_in(gw, mac, check_in),
        decide=decide,
        on_checked_in=gw.attendance.checked_in,
        checked_in_until=lambda mac: checked_in_until(gw, mac),
    )


async def run_portal(gw: Gateway) -> None:
    assert gw.portal is not None
    try:
        await gw.portal.run()
    except GatewayError:
        gw.portal = None  # the Wi-Fi sign-in is down; the doors must not be
        raise


def checked_in_until(gw: Gateway, mac: str) -> datetime | None:
    """Until when the member this MAC is registered to is checked in (or None)."""
    from gateway.readers.mac.address import token_spellings

    for spelling in token_spellings(mac):
        member = gw.cache.lookup(spelling)
        if member is not None:
            return gw.attendance.until(member.id)
    return None


async def signed_in(gw: Gateway, mac: str, check_in: CheckIn) -> None:
    """A member signed in (decided through the decider, which told Attendance) and Cobot
    registered the MAC: the device is a token from now on."""
    if check_in.membership is not None:
        await gw.cache.add(mac, check_in.membership)


def returning_device(gw: Gateway) -> DecisionHook:
    """A registered device seen by a MAC presence reader is let out through the portal's
    firewall without seeing the page (and shut out on check-out)."""

    def hook(decision: Decision) -> None:
        tap, portal = decision.tap, gw.portal
        if portal is None or tap.reader not in gw.mac_readers:
            return
        if decision.outcome in _ADMITTED and decision.membership is not None:
            until = gw.attendance.until(decision.membership.id)
            if until is not None:
                gw.spawn(_authorise(portal, tap.token, until, decision.membership.id))
        elif decision.outcome in (Outcome.CHECKED_OUT, Outcome.CHECK_OUT_QUEUED):
            gw.spawn(portal.revoke(tap.token))

    return hook


async def _authorise(portal: PortalService, mac: str, until: datetime, membership_id: str) -> None:
    try:
        await portal.wait_started()
        await portal.authorise(mac, until, membership_id=membership_id)
    except (GatewayError, ValueError) as exc:
        log.error("portal_authorise_failed", mac=redact(mac), error=str(exc))
