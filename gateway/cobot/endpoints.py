"""Every Cobot endpoint the client calls, with the OAuth scope the API pages require.

One table, used by the client (it builds every request path from here, so it cannot
call an endpoint the table does not list) and by ``doctor`` and ``login`` (which scopes
to check or to ask for). Source: /work/shared/api/cobot-check-ins.txt, cobot-resources.txt
and cobot-bookings.txt, "Scope required" of each endpoint.

``FEATURES`` says which part of the gateway makes which calls; ``scopes_for(cfg)`` turns
a configuration into the scopes its features need. A test walks the gateway's source
for calls on the client and fails when one is missing here.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from gateway.config.model import Config


class Scope(enum.StrEnum):
    CHECKIN = "checkin"
    CHECKIN_TOKENS = "checkin_tokens"
    READ_CHECK_INS = "read_check_ins"
    WRITE = "write"
    READ_RESOURCES = "read_resources"  # cobot-resources.txt
    READ_BOOKINGS = "read_bookings"  # cobot-bookings.txt
    WRITE_BOOKINGS = "write_bookings"


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    template: str  # in the docs' notation: "/api/check_in_tokens/:token"
    scope: Scope
    title: str  # the endpoint's heading on the API page
    # 404 is one of its documented answers (not checked in, no such token or
    # membership). Elsewhere a 404 is not Cobot's answer (a wrong base_url, a proxy):
    # the client reports it as MalformedResponse, never as a final "not found".
    answers_404: bool = False

    def path(self, **values: str) -> str:
        """The template with each ``:name`` replaced by its percent-encoded value."""

        def fill(m: re.Match[str]) -> str:
            return quote(values[m.group(1)], safe="")

        return re.sub(r":(\w+)", fill, self.template)


# Keyed by the CobotClient method that calls the endpoint.
ENDPOINTS: dict[str, Endpoint] = {
    "check_in": Endpoint("POST", "/api/check_ins", Scope.CHECKIN, "Check in with credentials"),
    "check_in_status": Endpoint(
        "GET", "/api/check_in", Scope.CHECKIN, "Get check-in status", answers_404=True
    ),
    "check_out": Endpoint(
        "DELETE",
        "/api/memberships/:id/check_ins/current",
        Scope.CHECKIN,
        "Check out",
        answers_404=True,
    ),
    "create_work_session": Endpoint(
        "POST", "/api/memberships/:id/work_sessions", Scope.WRITE, "Check in"
    ),
    "list_check_ins": Endpoint(
        "GET",
        "/api/memberships/:id/check_ins",
        Scope.READ_CHECK_INS,
        "List check-ins of a single member",
        answers_404=True,  # an unknown membership
    ),
    "list_tokens": Endpoint(
        "GET", "/api/check_in_tokens", Scope.CHECKIN_TOKENS, "List check-in tokens"
    ),
    "get_token": Endpoint(
        "GET",
        "/api/check_in_tokens/:token",
        Scope.CHECKIN_TOKENS,
        "Get check-in token",
        answers_404=True,
    ),
    "create_token": Endpoint(
        "POST", "/api/check_in_tokens", Scope.CHECKIN_TOKENS, "Create check-in token"
    ),
    "delete_token": Endpoint(
        "DELETE",
        "/api/check_in_tokens/:token",
        Scope.CHECKIN_TOKENS,
        "Delete check-in token",
        answers_404=True,
    ),
    # gateway/cobot/bookings.py (meeting-room doors)
    "get_resource": Endpoint(
        "GET", "/api/resources/:id", Scope.READ_RESOURCES, "Get resource", answers_404=True
    ),
    "list_resource_bookings": Endpoint(
        "GET",
        "/api/resources/:id/bookings",
        Scope.READ_BOOKINGS,
        "List bookings of a resource",
        answers_404=True,
    ),
    "create_booking": Endpoint(
        "POST", "/api/resources/:id/bookings", Scope.WRITE_BOOKINGS, "Create booking"
    ),
    # The page's example URL lacks /api; its heading has it, which we follow.
    "end_booking": Endpoint(
        "PUT", "/api/bookings/:id", Scope.WRITE_BOOKINGS, "Update booking", answers_404=True
    ),
    # A walk-up booking whose door then failed to open is taken back (bookings/undo.py).
    "delete_booking": Endpoint(
        "DELETE", "/api/bookings/:id", Scope.WRITE_BOOKINGS, "Delete booking", answers_404=True
    ),
}


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    what: str  # what it does for the space, for messages
    calls: tuple[str, ...]  # CobotClient methods it calls (keys of ENDPOINTS)


# Which part of the gateway calls what (decide.py, drain.py, sync.py, portal/signin.py).
DOOR = Feature(
    "door",
    "deciding taps at the door (preview) and their check-ins",
    ("check_in", "check_in_status"),
)
TOKEN_SYNC = Feature(
    "token sync",
    "the token list behind the offline cache and check-out lookups",
    ("list_tokens", "get_token"),
)
REPLAY = Feature(
    "replay",
    "finding a queued check-in's earlier delivery, so nobody is billed twice",
    ("list_check_ins", "check_in_status"),
)
BACKDATED = Feature(
    "back-dated replay",
    "replaying offline check-ins at the time of the tap (queue.replay_with_valid_from)",
    ("create_work_session",),
)
CHECK_OUT = Feature(
    "check-out", "check-outs (direction = out, or mac checkout_on_departure)", ("check_out",)
)
PORTAL = Feature("portal", "captive-portal sign-in with login and password", ("check_in",))
BOOKING_DOOR = Feature(
    "booking door",
    "meeting-room doors: the room's resource and its bookings (access = booking)",
    ("get_resource", "list_resource_bookings"),
)
WALK_UP = Feature(
    "walk-up booking",
    "booking a free room by tapping at its door (walk_up_minutes)",
    ("create_booking", "end_booking", "delete_booking"),
)
TOKEN_ADMIN = Feature(
    "card enrolment",
    "registering and revoking cards on the admin page ([admin]), finding a checked-in "
    "member by e-mail (check_in_status with login)",
    ("create_token", "delete_token", "get_token", "check_in_status"),
)

FEATURES: tuple[Feature, ...] = (
    DOOR,
    TOKEN_SYNC,
    REPLAY,
    BACKDATED,
    CHECK_OUT,
    PORTAL,
    BOOKING_DOOR,
    WALK_UP,
    TOKEN_ADMIN,
)


def features_for(cfg: Config) -> list[Feature]:
    """The features a configuration turns on, in a stable order."""
    used = [DOOR, TOKEN_SYNC, REPLAY]
    if cfg.queue.replay_with_valid_from:
        used.append(BACKDATED)
    # A check-out may be queued by any reader with direction out, a mac reader's
    # departure, or the operator (`checkin-gateway` tools): always check it.
    used.append(CHECK_OUT)
    portal = getattr(cfg, "portal", None)
    if portal is not None and getattr(portal, "enabled", True):
        used.append(PORTAL)
    rooms = [d for d in cfg.doors if getattr(d, "access", "check-in") == "booking"]
    if rooms:
        used.append(BOOKING_DOOR)
    if any(getattr(d, "walk_up_minutes", 0) for d in rooms):
        used.append(WALK_UP)
    if getattr(cfg, "admin", None) is not None:
        used.append(TOKEN_ADMIN)
    return used


def scopes_of(features: Iterable[Feature]) -> dict[Scope, list[Feature]]:
    """Each scope the features need, with the features that need it (scope order)."""
    need: dict[Scope, list[Feature]] = {}
    for feature in features:
        for call in feature.calls:
            scope = ENDPOINTS[call].scope
            if feature not in need.setdefault(scope, []):
                need[scope].append(feature)
    return {s: need[s] for s in Scope if s in need}


def scopes_for(cfg: Config) -> list[Scope]:
    return list(scopes_of(features_for(cfg)))
