"""MOCO inside the gateway: its client, record backend, rule and status in one place,
so the daemon's top level (app.py) wires it with a few lines.

``async with MocoService(cfg, keys, limiter, clock, feedback) as moco:`` opens the HTTP
session; ``moco.records`` is the record backend (a supervised part: ``records.run``),
``moco.rule(fallback)`` the rule of a reader recording to MOCO, ``moco.status()`` what
``status`` shows (who is clocked in today, names redacted).
"""

from __future__ import annotations

from typing import Any

from gateway.breaker import Breaker
from gateway.clock import SystemClock
from gateway.cobot.client import RequestObserver
from gateway.cobot.ratelimit import RateLimiter
from gateway.config.model import MocoSection
from gateway.moco.client import MocoClient
from gateway.moco.keys import MocoKeys
from gateway.moco.staff import StaffBook
from gateway.outbox import Outbox
from gateway.records.moco import Feedback, MocoRecords
from gateway.rules.base import DoorRule
from gateway.rules.staff import StaffRule


class MocoService:
    def __init__(
        self,
        cfg: MocoSection,
        keys: MocoKeys,
        limiter: RateLimiter,
        outbox: Outbox,
        clock: SystemClock,
        feedback: Feedback | None = None,
        observe: RequestObserver | None = None,
    ) -> None:
        self.client = MocoClient(
            cfg.base_url, keys, limiter, timeout=cfg.request_timeout, clock=clock, observe=observe
        )
        self.breaker = Breaker()
        self.staff = StaffBook(cfg.users)
        self._clock = clock
        self.records = MocoRecords(
            outbox,
            self.client,
            self.staff,
            self.breaker,
            clock,
            min_interval=cfg.min_interval,
            feedback=feedback,
        )

    async def __aenter__(self) -> MocoService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    def rule(self, fallback: DoorRule | None) -> DoorRule:
        return StaffRule(self.staff, fallback)

    def status(self) -> dict[str, Any]:
        return {
            "breaker": self.breaker.state.value,
            "last_error": self.breaker.last_error,
            "auth_failed": self.client.auth_failed,
            "clocked_in_today": self.staff.clocked_in_today(self._clock.now().astimezone().date()),
            "delivered": self.records.replayer.delivered,
            "failed": self.records.replayer.failed,
            "unsaved_records": self.records.unsaved,
        }


def describe_moco(moco: dict[str, Any] | None) -> list[str]:
    """``status`` lines for the daemon's ``moco`` part: MOCO's state, and who is clocked
    in today (user ids; names redacted)."""
    if not moco:
        return []
    auth = f", key failing: {moco['auth_failed']}" if moco.get("auth_failed") else ""
    err = f", last error: {moco['last_error']}" if moco.get("last_error") else ""
    lines = [f"  moco: breaker {moco.get('breaker')}{auth}{err}"]
    staff = moco.get("clocked_in_today") or []
    if not staff:
        lines.append("  clocked in today: nobody")
    for s in staff:
        lines.append(
            f"  clocked in today: user {s['user_id']} ({s.get('name') or '-'}) "
            f"since {s.get('since') or '?'}"
        )
    return lines
