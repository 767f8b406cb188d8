"""The MOCO side ([moco]): is there a key, does MOCO accept it, and may the gateway act
for each mapped user? Probes only read (today's presences), never touch."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import date

from gateway.cobot.errors import ApiError, MalformedResponse, RateLimited, Unauthorized, Unavailable
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.config.model import Config
from gateway.doctor.report import Report, Status
from gateway.errors import ConfigError
from gateway.moco.client import MocoClient
from gateway.moco.keys import load_moco_keys

KEY_HELP = (
    "create an API key in MOCO (your profile: Integrations) and put it in the file "
    "moco.api_key_file names, or in MOCO_API_KEY"
)


async def check_moco(report: Report, cfg: Config, env: Mapping[str, str] | None = None) -> None:
    assert cfg.moco is not None
    try:
        keys = load_moco_keys(cfg, env)
    except ConfigError as exc:
        report.add("moco key", Status.FIX, str(exc), KEY_HELP)
        return
    report.add("moco key", Status.OK, "found" + (" (account key)" if keys.account else ""))
    limiter = RateLimiter({Group.MOCO: min(cfg.moco.rpm, 30)})
    today = date.today()
    async with MocoClient(
        cfg.moco.base_url, keys, limiter, timeout=cfg.moco.request_timeout
    ) as client:
        if keys.account is not None:
            started = time.monotonic()
            try:
                await client.presences(None, today, today)
            except ApiError as exc:
                _failed(report, "moco", cfg.moco.base_url, exc, "the account key")
                if isinstance(exc, Unavailable | MalformedResponse | RateLimited):
                    return
            else:
                ms = (time.monotonic() - started) * 1000
                report.add("moco", Status.OK, f"{cfg.moco.base_url} accepted the key ({ms:.0f} ms)")
        for user in cfg.moco.users:
            how = "own key" if user.user_id in keys.per_user else "account key impersonating"
            try:
                await client.presences(user.user_id, today, today)
            except ApiError as exc:
                _failed(report, f"moco user {user.user_id}", cfg.moco.base_url, exc, how)
                continue
            report.add(f"moco user {user.user_id}", Status.OK, f"presences readable ({how})")


def _failed(report: Report, name: str, url: str, exc: ApiError, who: str) -> None:
    if isinstance(exc, Unavailable):
        report.add(
            name, Status.FIX, f"{url}: no answer ({exc})", "check the network and moco.base_url"
        )
    elif isinstance(exc, MalformedResponse):
        report.add(
            name,
            Status.FIX,
            f"{url} answered, but not as MOCO does: {exc}",
            "is moco.base_url your account's https://<name>.mocoapp.com?",
        )
    elif isinstance(exc, RateLimited):
        report.add(name, Status.WARN, f"rate limited, retry after {exc.retry_after:.0f}s")
    elif isinstance(exc, Unauthorized) and exc.status == 401:
        report.add(name, Status.FIX, f"MOCO refused {who} (401): wrong or revoked", KEY_HELP)
    elif isinstance(exc, Unauthorized):
        report.add(
            name,
            Status.FIX,
            f"MOCO forbids {who} (403)",
            "impersonation (X-IMPERSONATE-USER-ID) needs an administrator's key and an "
            "existing user_id; or give the user their own api_key_file",
        )
    else:
        report.add(name, Status.UNKNOWN, f"unexpected answer: {exc}")
