"""The Cobot side: is there a token, does the API answer, and may the token do what the
gateway does? Probes only read: a check-in status and a check-in token that do not
exist (404 means allowed), so the doctor never checks anyone in."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.cobot.client import CobotClient
from gateway.cobot.errors import ApiError, MalformedResponse, RateLimited, Unauthorized, Unavailable
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.config.loader import load_access_token
from gateway.config.model import Config
from gateway.doctor.bookings import check_booking_doors
from gateway.doctor.report import Report, Status
from gateway.doctor.system import System
from gateway.errors import ConfigError

PROBE_TOKEN = "checkin-gateway-doctor-probe"  # a check-in token no one has
TOKEN_HELP = (
    "create an access token for a space admin with scopes checkin and checkin_tokens "
    "(Cobot: your space's API settings) and put it in "
)


@dataclass(frozen=True, slots=True)
class Probe:
    scope: str
    what: str  # what the gateway needs the scope for
    call: Callable[[CobotClient], Awaitable[Any]]


PROBES = (
    Probe(
        "checkin",
        "check-ins and check-outs",
        lambda c: c.check_in_status(token=PROBE_TOKEN),
    ),
    Probe(
        "checkin_tokens",
        "the token list behind the offline cache",
        lambda c: c.get_token(PROBE_TOKEN),
    ),
)


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


async def check_api(
    report: Report, cfg: Config, system: System, env: Mapping[str, str] | None = None
) -> None:
    try:
        token, source = find_token(cfg, system, env)
    except ConfigError as exc:
        report.add("api token", Status.FIX, str(exc), TOKEN_HELP + str(system.credential_file))
        report.add("api", Status.SKIP, "no token to try")
        return
    report.add("api token", Status.OK, f"found in {source}")
    limiter = RateLimiter({Group.CHECK_INS: cfg.cobot.check_in_rpm, Group.DEFAULT: 10})
    async with CobotClient(
        cfg.cobot.base_url, token, limiter, timeout=cfg.cobot.request_timeout
    ) as client:
        for i, probe in enumerate(PROBES):
            started = time.monotonic()
            try:
                await probe.call(client)
            except ApiError as exc:
                if not _failed(report, cfg, probe, exc, first=i == 0):
                    return
                continue
            if i == 0:
                ms = (time.monotonic() - started) * 1000
                report.add("api", Status.OK, f"{cfg.cobot.base_url} answered in {ms:.0f} ms")
                report.add("api token valid", Status.OK, "accepted (no 401)")
            report.add(f"scope {probe.scope}", Status.OK, f"granted: {probe.what}")
        await check_booking_doors(report, cfg, client)


def _failed(report: Report, cfg: Config, probe: Probe, exc: ApiError, *, first: bool) -> bool:
    """Report one failed probe; False when the following probes are pointless."""
    url = cfg.cobot.base_url
    if isinstance(exc, Unavailable):
        report.add(
            "api",
            Status.FIX,
            f"{url}: no answer ({exc})",
            "check the network, DNS and cobot.base_url; the door still works offline",
        )
        return False
    if isinstance(exc, MalformedResponse):
        report.add(
            "api",
            Status.FIX,
            f"{url} answered, but not as Cobot does: {exc}",
            "is cobot.base_url your space's https://<space>.cobot.me?",
        )
        return False
    if isinstance(exc, RateLimited):
        report.add("api", Status.WARN, f"{url}: rate limited, retry after {exc.retry_after:.0f}s")
        return False
    if first:
        report.add("api", Status.OK, f"{url} answered")
    if isinstance(exc, Unauthorized) and exc.status == 401:
        report.add(
            "api token valid",
            Status.FIX,
            "the API refused the token (401): it is wrong, expired or revoked",
            TOKEN_HELP + "the token file",
        )
        return False
    if isinstance(exc, Unauthorized):
        if first:
            report.add("api token valid", Status.OK, "accepted (no 401)")
        why = (
            f"the token lacks the scope {probe.scope}"
            if "insufficient_scope" in str(exc)
            else f"the token may not use {probe.scope} endpoints (403): not a space admin's, "
            "or the scope is missing"
        )
        report.add(
            f"scope {probe.scope}",
            Status.FIX,
            f"{why}; the gateway needs it for {probe.what}",
            "create a token for a space admin with scopes checkin and checkin_tokens",
        )
        return True
    report.add(f"scope {probe.scope}", Status.UNKNOWN, f"unexpected answer: {exc}")
    return True
