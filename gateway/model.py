"""Values that cross module boundaries: taps, members, check-ins, outcomes."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


class OfflinePolicy(enum.StrEnum):
    KNOWN_TOKENS = "known-tokens"
    DENY = "deny"


class TokenFormat(enum.StrEnum):
    HEX = "hex"  # "0A1B2C3D4E": uppercase hex of all bytes (RDM6300 default, NFC UID)
    HEX_REVERSED = "hex-reversed"  # bytes reversed: how some readers print NFC UIDs
    DECIMAL = "decimal"  # the id as a decimal number, zero-padded to 10 digits
    DECIMAL_REVERSED = "decimal-reversed"  # the byte-reversed id as a decimal number
    WIEGAND26 = "wiegand26"  # "FFF,NNNNN": facility code and card number, as on cards


class RecordKind(enum.StrEnum):
    """What a tap records at a backend (an outbox entry's kind)."""

    CHECK_IN = "check_in"
    CHECK_OUT = "check_out"
    TOUCH = "touch"  # a MOCO time-clock tap: opens or closes the user's presence


class ClockQuality(enum.StrEnum):
    """How far a tap's wall-clock time can be trusted (a Pi has no real-time clock and
    boots with an old time until NTP syncs)."""

    SYNCED = "synced"  # read on a synchronised clock
    UNSYNCED = "unsynced"  # read before the clock was synchronised: may be any day
    CORRECTED = "corrected"  # re-computed from the monotonic clock after the sync
    NOW = "now"  # its day cannot be known: recorded as of delivery, never back-dated


class Signal(enum.StrEnum):
    """Feedback a door shows the person at the reader."""

    GRANTED = "granted"
    REFUSED = "refused"
    OFFLINE = "offline"  # let in on the local cache while the API was unreachable
    CLOCKED_IN = "clocked-in"  # a staff tap opened a MOCO presence (one beep)
    CLOCKED_OUT = "clocked-out"  # a staff tap closed it (two beeps)


class Outcome(enum.StrEnum):
    """What became of one tap; logged once per decision."""

    OPENED_CACHED = "opened-cached"  # still checked in today: no API call
    OPENED_ONLINE = "opened-online"  # preview accepted
    OPENED_OFFLINE = "opened-offline"  # API unreachable, token known locally
    OPENED_MEMBER = "opened-member"  # a door open to any known member: nothing recorded
    REFUSED = "refused"  # the API said no (its reason is logged)
    DENIED_OFFLINE = "denied-offline"  # API unreachable and policy/caches say no
    UNKNOWN_TOKEN = "unknown-token"  # exit reader: token not in the cache
    DOOR_FAILED = "door-failed"  # decided to open, but the door could not be driven
    CHECKED_OUT = "checked-out"
    STAFF = "staff"  # a staff card (a MOCO user) on a reader recording to MOCO: clocked
    CHECK_OUT_QUEUED = "check-out-queued"
    OPENED_BOOKING = "opened-booking"  # a booking door: the member's booking holds now
    OPENED_WALK_UP = "opened-walk-up"  # a booking door: booked it now for the member
    WALK_UP_ENDED = "walk-up-ended"  # the member's second tap ended their walk-up early
    NO_BOOKING = "no-booking"  # a booking door: no booking of the member's holds now


@dataclass(frozen=True, slots=True)
class Tap:
    """One token read by one reader.

    ``at`` is wall-clock UTC (what Cobot is told); ``mono`` is ``time.monotonic()`` at
    the read, used for latency and debouncing, and with ``boot_id`` to correct ``at``
    once the clock is synchronised when ``clock`` says it was not.
    """

    reader: str
    token: str
    direction: Direction
    at: datetime
    mono: float
    clock: ClockQuality = ClockQuality.SYNCED
    boot_id: str | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class CheckIn:
    """A Cobot check-in (the API also calls it a work session).

    ``id`` and ``membership`` are None for admins and guests, whom Cobot does not track.
    """

    id: str | None
    valid_from: datetime
    valid_until: datetime
    membership: Membership | None
    time_pass_id: str | None = None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token: str
    membership: Membership
