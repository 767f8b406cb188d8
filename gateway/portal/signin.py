"""What a sign-in against Cobot can come to: the outcomes the page explains.

A sign-in is a preview, then the firewall, then the check-in that registers the MAC
(``decision.py``): a refused sign-in (wrong password, no time passes) never creates
anything, and the real check-in is sent only when Cobot has just said it would take it
and the device is out. Cobot's refusals are turned into a few plain outcomes the page
can explain; anything else keeps the API's own words.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.cobot.answers import CheckInResult
from gateway.cobot.errors import Refused
from gateway.model import CheckIn

# Seconds for each of the two requests, rate-limit wait included: a person is waiting.
REQUEST_DEADLINE = 10.0


class SignInOutcome(enum.StrEnum):
    SIGNED_IN = "signed-in"
    WRONG_PASSWORD = "wrong-password"
    NO_TIME_PASSES = "no-time-passes"
    NOT_CONFIRMED = "not-confirmed"
    REFUSED = "refused"  # another refusal: shown in the API's words
    UNAVAILABLE = "unavailable"  # Cobot unreachable, slow or garbled
    BUSY = "busy"  # no rate-limit slot in time, or Cobot's Retry-After in force
    MISCONFIGURED = "misconfigured"  # our access token is refused (401/403)
    # Decided by the portal before or after asking Cobot:
    THROTTLED = "throttled"  # too many failures for this MAC, IP or login
    UNKNOWN_DEVICE = "unknown-device"  # no MAC for the client's address
    ENDED = "ended"  # Cobot returned a check-in that is already over
    NETWORK_FAILED = "network-failed"  # the firewall could not let the device out: not billed

    @property
    def counts_as_failure(self) -> bool:
        """Refusals count against the throttle; our own trouble does not."""
        return self in _FAILURES


_FAILURES = frozenset(
    {
        SignInOutcome.WRONG_PASSWORD,
        SignInOutcome.NO_TIME_PASSES,
        SignInOutcome.NOT_CONFIRMED,
        SignInOutcome.REFUSED,
    }
)


@dataclass(frozen=True, slots=True)
class SignIn:
    outcome: SignInOutcome
    check_in: CheckIn | None = None
    reason: str = ""  # the API's words, for REFUSED and the log
    # Cobot checked the member in but did not register the MAC: it is someone else's.
    warning: str | None = None


class CheckInApi(Protocol):
    """What the portal needs of ``CobotClient``."""

    async def check_in(
        self,
        *,
        token: str | None = None,
        login: str | None = None,
        password: str | None = None,
        preview: bool = False,
        deadline: float | None = None,
    ) -> CheckInResult: ...


# Keywords in a 422's error keys and messages, in the order they are tried. Cobot's
# documented example is {"login": "Login or password incorrect."}; the other cases are
# named in its docs without their wording, so the match is loose and falls back to
# showing the API's own text.
_REFUSALS: tuple[tuple[SignInOutcome, tuple[str, ...]], ...] = (
    (SignInOutcome.NO_TIME_PASSES, ("time pass", "time_pass", "timepass", "no passes")),
    (SignInOutcome.NOT_CONFIRMED, ("confirm",)),
    (SignInOutcome.WRONG_PASSWORD, ("password", "incorrect", "login")),
)


def classify(refused: Refused) -> SignInOutcome:
    words = " ".join(
        [refused.reason, *map(str, refused.errors.keys()), *map(str, refused.errors.values())]
    ).lower()
    for outcome, keywords in _REFUSALS:
        if any(k in words for k in keywords):
            return outcome
    return SignInOutcome.REFUSED


@dataclass(frozen=True, slots=True)
class ClientState:
    """A client as the portal sees it."""

    ip: str
    mac: str | None
    until: datetime | None  # let out until then; None: captive


@dataclass(frozen=True, slots=True)
class Attempt:
    """What became of one sign-in, for the page."""

    outcome: SignInOutcome
    sign_in: SignIn | None = None
    until: datetime | None = None
    retry_after: float = 0.0
