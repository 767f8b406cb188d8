"""The Captive Portal API (RFC 8908): a device asks whether it is captive.

A client learns the API's URL from DHCP option 114 or the IPv6 RA option 37 (RFC 8910)
and reads ``application/captive+json``. The RFC asks for HTTPS; operating systems that
enforce it ignore a plain-HTTP API and fall back to the probes, which always work.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

CONTENT_TYPE = "application/captive+json"
PATH = "/api/captive"


def captive_state(*, portal_url: str, until: datetime | None, now: datetime) -> dict[str, object]:
    """The API object for a device let out until ``until`` (None: not let out)."""
    remaining = (until - now).total_seconds() if until is not None else 0.0
    if remaining <= 0:
        return {"captive": True, "user-portal-url": portal_url}
    return {
        "captive": False,
        "user-portal-url": portal_url,
        # An integer per the RFC; rounded down so a device never believes it has longer.
        "seconds-remaining": math.floor(remaining),
        # Extending means signing in again tomorrow: a check-in is per business day.
        "can-extend-session": False,
    }


def render(state: dict[str, object]) -> bytes:
    return json.dumps(state, separators=(",", ":")).encode()
