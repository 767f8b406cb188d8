"""The simulated space's records and the refusals its operations raise.

Refusals carry the HTTP status and JSON body the server sends, so the space's
operations stay pure (no aiohttp) and the server is a thin translation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Plan(enum.StrEnum):
    UNLIMITED = "unlimited"
    TIME_PASSES = "time-passes"  # every check-in (one per day) uses one pass


class Role(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class AccountKind(enum.StrEnum):
    """Login accounts without a membership: Cobot does not track their check-ins."""

    GUEST = "guest"
    ADMIN = "admin"


class Scope(enum.StrEnum):
    CHECKIN = "checkin"
    CHECKIN_TOKENS = "checkin_tokens"
    READ_CHECK_INS = "read_check_ins"
    WRITE = "write"
    READ_RESOURCES = "read_resources"
    READ_BOOKINGS = "read_bookings"
    WRITE_BOOKINGS = "write_bookings"


ALL_SCOPES = frozenset(Scope)


@dataclass(slots=True, kw_only=True)
class SimMember:
    id: str  # 32 hex digits, like the docs' "fdc00612c086d003fab5d99539153f68"
    name: str
    login: str  # an e-mail address
    password: str
    confirmed: bool = True
    plan: Plan = Plan.UNLIMITED
    time_passes: list[str] = field(default_factory=list)  # ids of the unused passes
    used_time_passes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimAccount:
    login: str
    password: str
    kind: AccountKind = AccountKind.GUEST
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimAccessToken:
    """An OAuth bearer token: whose it is and what it may do."""

    token: str
    role: Role
    membership_id: str | None = None  # for Role.MEMBER: the member it belongs to
    scopes: frozenset[str] = ALL_SCOPES
    user: str = ""  # a label for the request log

    @property
    def label(self) -> str:
        return self.user or (self.membership_id or self.role.value)


@dataclass(slots=True, kw_only=True)
class SimCheckIn:
    id: str  # 10 hex digits, like the docs' "479c76a975"
    membership_id: str
    valid_from: datetime  # UTC
    valid_until: datetime  # UTC; the check-out time once checked out
    time_pass_id: str | None = None
    checked_out_at: datetime | None = None

    def active_at(self, moment: datetime) -> bool:
        return self.checked_out_at is None and self.valid_from <= moment <= self.valid_until


# --- refusals -----------------------------------------------------------------------


class SimRefusal(Exception):
    """An operation's refusal: the status and JSON body the server answers with."""

    status = 400

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.body = body


class BadRequest(SimRefusal):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__({"error": message})


class Forbidden(SimRefusal):
    status = 403

    def __init__(self, message: str) -> None:
        super().__init__({"error": "forbidden", "error_description": message})


class Missing(SimRefusal):
    status = 404

    def __init__(self, message: str) -> None:
        super().__init__({"error": message})


class Invalid(SimRefusal):
    """422 with Cobot's documented shape ``{"errors": {field: message}}``."""

    status = 422

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__({"errors": errors})
        self.errors = errors


# 422 bodies. The first is the docs' own; the others are ours (the docs name the cases,
# not the words) and are what callers may match on.
LOGIN_INCORRECT = {"login": "Login or password incorrect."}
TOKEN_UNKNOWN = {"token": "Token unknown."}
NO_TIME_PASSES = {"base": "No time passes left."}
NOT_CONFIRMED = {"membership": "Membership not confirmed yet."}
# "422 if the check-in could not be created because the coworker was already checked
# in for that day": the answer a replaying client treats as "already delivered".
ALREADY_CHECKED_IN = {"base": "Already checked in for that day."}
TOKEN_TAKEN = {"token": "has already been taken"}
# The "warning" of a check-in whose token could not be registered. The docs say a
# warning is returned but not its form: a top-level "warning" string in the check-in.
WARNING_TOKEN_TAKEN = "Token is already registered to another member; it was not registered."
WARNING_TOKEN_UNSUPPORTED = "Tokens are not supported for this account; it was not registered."
