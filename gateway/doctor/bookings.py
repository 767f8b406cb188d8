"""The doctor's look at booking doors: does each door's ``resource_id`` name a Cobot
resource (its name shown), and may the token read its bookings (``read_bookings``) and,
for walk-up booking, write them (``write_bookings``)?

Only reads, and one harmless write probe: ``PUT /api/bookings/<an id no booking has>``
answers 404 when the scope is granted and 403 when not; nothing is ever booked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.cobot.bookings import get_resource, list_resource_bookings
from gateway.cobot.client import CobotClient
from gateway.cobot.endpoints import ENDPOINTS
from gateway.cobot.errors import ApiError, NotFound, Unauthorized
from gateway.cobot.ratelimit import Priority
from gateway.config.model import Config
from gateway.doctor.report import Report, Status

PROBE_BOOKING = "checkin-gateway-doctor-probe"  # a booking id no one has
SCOPE_FIX = "give the access token the scopes read_resources and read_bookings"
DEADLINE = 30.0
# A person waits at the terminal: LIVE, so the doctor's small limiter does not pace these.


def _scope_problem(exc: Unauthorized, scope: str) -> str:
    if "insufficient_scope" in str(exc):
        return f"the token lacks the scope {scope}"
    return f"the token may not use the {scope} endpoints (HTTP {exc.status})"


async def check_booking_doors(report: Report, cfg: Config, client: CobotClient) -> None:
    doors = [d for d in cfg.doors if d.access == "booking"]
    if not doors:
        return
    now = datetime.now(UTC)
    walk_up = False
    for door in doors:
        name = f"door {door.name} room"
        rid = door.resource_id or ""
        try:
            resource = await get_resource(client, rid, priority=Priority.LIVE, deadline=DEADLINE)
        except NotFound:
            report.add(
                name,
                Status.FIX,
                f"Cobot has no resource {rid!r} (doors.resource_id)",
                "set resource_id to one of the ids GET /api/resources lists",
            )
            continue
        except Unauthorized as exc:
            report.add(name, Status.FIX, _scope_problem(exc, "read_resources"), SCOPE_FIX)
            continue
        except ApiError as exc:
            report.add(name, Status.UNKNOWN, f"resource {rid!r}: {exc}")
            continue
        try:
            bookings = await list_resource_bookings(
                client,
                rid,
                now - timedelta(hours=12),
                now + timedelta(hours=12),
                priority=Priority.LIVE,
                deadline=DEADLINE,
            )
        except Unauthorized as exc:
            report.add(name, Status.FIX, _scope_problem(exc, "read_bookings"), SCOPE_FIX)
            continue
        except ApiError as exc:
            report.add(name, Status.UNKNOWN, f"{resource.name}: bookings unreadable: {exc}")
            continue
        units = f", {resource.units} units" if resource.units > 1 else ""
        report.add(
            name,
            Status.OK,
            f"{resource.name} (resource {rid}{units}): {len(bookings)} booking(s) within 12 h",
        )
        walk_up = walk_up or door.walk_up_minutes > 0
    if walk_up:
        await _check_write_scope(report, client)


async def _check_write_scope(report: Report, client: CobotClient) -> None:
    try:
        await client._request(  # the client's one door to the API
            ENDPOINTS["end_booking"],
            {"id": PROBE_BOOKING},
            json_body={},
            priority=Priority.LIVE,
            deadline=DEADLINE,
        )
    except NotFound:
        report.add("scope write_bookings", Status.OK, "granted: walk-up booking")
        return
    except Unauthorized as exc:
        report.add(
            "scope write_bookings",
            Status.FIX,
            f"{_scope_problem(exc, 'write_bookings')}; walk-up booking needs it",
            "give the token the scope write_bookings, or set walk_up_minutes = 0",
        )
        return
    except ApiError as exc:
        report.add("scope write_bookings", Status.UNKNOWN, f"unexpected answer: {exc}")
        return
    report.add("scope write_bookings", Status.UNKNOWN, "the probe booking exists?")
