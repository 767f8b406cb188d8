"""The Cobot side: is there a token, does the API answer, and may the token do what the
configured features do?

The scopes come from ``gateway.cobot.endpoints``: the features this configuration turns
on, the client methods they call, the scope the API page gives each endpoint. Each
scope is probed with one request that cannot change anything at Cobot: a token, a
check-in status or a membership that does not exist (404, or a 422, means the scope was
granted: Cobot checks the scope first). The probes go out together, without the
gateway's rate limiter (four requests are far below any limit; its pacing would make
the doctor wait seconds), so the doctor answers in about one round trip.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.cobot.client import CobotClient
from gateway.cobot.endpoints import Feature, Scope, features_for, scopes_of
from gateway.cobot.errors import (
    ApiError,
    MalformedResponse,
    NotFound,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
)
from gateway.config.loader import load_access_token
from gateway.config.model import Config
from gateway.doctor.bookings import check_booking_doors
from gateway.doctor.report import Report, Status
from gateway.doctor.system import System
from gateway.errors import ConfigError

PROBE_TOKEN = "checkin-gateway-doctor-probe"  # a check-in token no one has
# Not 32 hex digits, so it can never be a real membership's id: nobody is checked in.
PROBE_MEMBERSHIP = "checkin-gateway-doctor-probe"


def token_help(scopes: list[Scope]) -> str:
    return (
        "create an access token for a space admin with the scopes "
        f"{' '.join(s.value for s in scopes)} (Cobot: your space's API settings) and put it in "
    )


def _day() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(days=1), now


@dataclass(frozen=True, slots=True)
class Probe:
    scope: Scope
    call: Callable[[CobotClient], Awaitable[Any]]


PROBES: dict[Scope, Probe] = {
    Scope.CHECKIN: Probe(Scope.CHECKIN, lambda c: c.check_in_status(token=PROBE_TOKEN)),
    Scope.CHECKIN_TOKENS: Probe(Scope.CHECKIN_TOKENS, lambda c: c.get_token(PROBE_TOKEN)),
    Scope.READ_CHECK_INS: Probe(
        Scope.READ_CHECK_INS, lambda c: c.list_check_ins(PROBE_MEMBERSHIP, *_day())
    ),
    # A POST, but for a membership that cannot exist: Cobot answers 403 without the
    # scope, 404 with it, and creates nothing either way.
    Scope.WRITE: Probe(Scope.WRITE, lambda c: c.create_work_session(PROBE_MEMBERSHIP)),
}


def find_token(cfg: Config, system: System, env: Mapping[str, str] | None) -> tuple[str, str]:
    """(token, where it came from); raises ConfigError saying where it was looked for."""
    env = os.environ if env is None else env
    try:
        token = load_access_token(cfg, env)
    except ConfigError:
        # `sudo checkin-gateway doctor` runs outside the unit, without its credential
        # directory: read the file LoadCredential= would hand the service.
        path = system.credential_file
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError:
            raise ConfigError(
                "no access token: not in the config, not in COBOT_ACCESS_TOKEN, "
                f"and {path} cannot be read"
            ) from None
        if not token:
            raise ConfigError(f"no access token: {path} is empty") from None
        return token, f"{path} (LoadCredential)"
    source = cfg.cobot.access_token_file or (
        "COBOT_ACCESS_TOKEN" if env.get("COBOT_ACCESS_TOKEN") else "$CREDENTIALS_DIRECTORY"
    )
    return token, str(source)


async def _outcome(client: CobotClient, probe: Probe) -> tuple[ApiError | None, float]:
    started = time.monotonic()
    try:
        await probe.call(client)
    except (NotFound, Refused):
        pass  # past the scope check: the probe's made-up token/membership is unknown
    except MalformedResponse as exc:
        # Cobot's JSON 404 for the made-up membership, where the page documents none.
        if not (exc.status == 404 and exc.json_body):
            return exc, time.monotonic() - started
    except ApiError as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


async def check_api(
    report: Report, cfg: Config, system: System, env: Mapping[str, str] | None = None
) -> None:
    need = scopes_of(features_for(cfg))
    scopes = list(need)
    try:
        token, source = find_token(cfg, system, env)
    except ConfigError as exc:
        report.add(
            "api token", Status.FIX, str(exc), token_help(scopes) + str(system.credential_file)
        )
        report.add("api", Status.SKIP, "no token to try")
        return
    report.add("api token", Status.OK, f"found in {source}")
    async with CobotClient(
        cfg.cobot.base_url, token, None, timeout=cfg.cobot.request_timeout, quiet=True
    ) as client:
        # The booking scopes are checked with the rooms' own resources (doctor/bookings.py).
        probed = [s for s in scopes if s in PROBES]
        results = await asyncio.gather(*(_outcome(client, PROBES[s]) for s in probed))
    outcomes = dict(zip(probed, results, strict=True))
    url = cfg.cobot.base_url
    errors = [exc for exc, _ in results if exc is not None]
    down = next((e for e in errors if isinstance(e, Unavailable | MalformedResponse)), None)
    if isinstance(down, Unavailable):
        report.add(
            "api",
            Status.FIX,
            f"{url}: no answer ({down})",
            "check the network, DNS and cobot.base_url; the door still works offline",
        )
        return
    if isinstance(down, MalformedResponse):
        report.add(
            "api",
            Status.FIX,
            f"{url} answered, but not as Cobot does: {down}",
            "is cobot.base_url your space's https://<space>.cobot.me?",
        )
        return
    fastest = min(seconds for _, seconds in results)
    report.add("api", Status.OK, f"{url} answered in {fastest * 1000:.0f} ms")
    if any(isinstance(e, Unauthorized) and e.status == 401 for e in errors):
        report.add(
            "api token valid",
            Status.FIX,
            "the API refused the token (401): it is wrong, expired or revoked",
            token_help(scopes) + "the token file",
        )
        return
    report.add("api token valid", Status.OK, "accepted (no 401)")
    for scope, (failure, _) in outcomes.items():
        _scope_row(report, scope, need[scope], failure, scopes)
    if any(d.access == "booking" for d in cfg.doors):
        async with CobotClient(
            cfg.cobot.base_url, token, None, timeout=cfg.cobot.request_timeout, quiet=True
        ) as client:
            await check_booking_doors(report, cfg, client)


def _scope_row(
    report: Report, scope: Scope, features: list[Feature], exc: ApiError | None, all_: list[Scope]
) -> None:
    what = "; ".join(f.what for f in features)
    name = f"scope {scope.value}"
    if exc is None:
        report.add(name, Status.OK, f"granted: {what}")
    elif isinstance(exc, RateLimited):
        report.add(name, Status.UNKNOWN, f"rate limited, retry after {exc.retry_after:.0f}s")
    elif isinstance(exc, Unauthorized):
        if exc.scope is not None and exc.scope != scope.value:
            # Cobot names another scope than the API page: believe Cobot, say both.
            why = f"the token lacks the scope {exc.scope} (the API pages say {scope.value})"
        elif exc.scope is not None or "insufficient_scope" in str(exc):
            why = f"the token lacks the scope {scope.value}"
        else:
            why = (
                f"the token may not use {scope.value} endpoints (403): not a space admin's, "
                f"or the scope {scope.value} is missing"
            )
        report.add(
            name,
            Status.FIX,
            f"{why}; the gateway needs it for {what}",
            f"create a token for a space admin with the scopes {' '.join(s.value for s in all_)}",
        )
    else:
        report.add(name, Status.UNKNOWN, f"unexpected answer: {exc}")
