"""The *Staff* page (only with ``[moco]``): who is clocked in at MOCO now and since when,
the presences still waiting to reach MOCO, and whether MOCO answers.

"Clocked in" is the gateway's belief (``gateway.moco.staff.StaffBook``): MOCO's answers
to touches and replays, a read at start, and while MOCO is out of reach the queued taps
themselves. MOCO stays the truth: a waiting presence is checked against MOCO before it
is written (gateway/moco/replay.py). The page reloads itself when that belief, the
waiting presences or MOCO's state change (``version`` in the event stream's status).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.admin import staff_pages
from gateway.admin.web import STATE, csrf_for, html_page, lang_of
from gateway.moco.model import fmt_time
from gateway.moco.replay import NAME as MOCO
from gateway.outbox import State

if TYPE_CHECKING:
    from gateway.moco.service import MocoService
    from gateway.outbox import Outbox

WAITING = (State.HELD, State.PENDING, State.SENDING, State.FAILED)
MAX_LISTED = 1000  # open outbox entries looked through for MOCO's


@dataclass(frozen=True, slots=True)
class StaffRow:
    user_id: int
    name: str | None  # as MOCO names the user (first and last name), once it answered
    clocked_in: bool
    since: str | None  # "08:05"; with the day ("2026-11-29 08:05") if not today


@dataclass(frozen=True, slots=True)
class MocoState:
    online: bool
    breaker: str
    auth_failed: str | None
    last_error: str | None
    unsaved: int  # taps the database has not taken yet (kept in memory)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/staff", _staff)


def staff_rows(moco: MocoService, today: date) -> list[StaffRow]:
    """Every configured MOCO user, clocked-in ones first (longest in first)."""
    rows = []
    for user_id in moco.staff.user_ids:
        known = moco.staff.state(user_id)
        since = None
        if known is not None and known.clocked_in and known.since is not None:
            since = fmt_time(known.since)
            if known.day != today:
                since = f"{known.day.isoformat()} {since}"
        rows.append(
            StaffRow(
                user_id,
                known.name if known else None,
                bool(known and known.clocked_in),
                since,
            )
        )
    return sorted(rows, key=lambda r: (not r.clocked_in, r.since or "", r.name or "", r.user_id))


def moco_state(moco: MocoService) -> MocoState:
    auth = moco.client.auth_failed
    return MocoState(
        online=not moco.breaker.is_open and auth is None,
        breaker=moco.breaker.state.value,
        auth_failed=auth,
        last_error=moco.breaker.last_error,
        unsaved=moco.records.unsaved,
    )


async def waiting_presences(outbox: Outbox) -> list[dict[str, str]]:
    """MOCO's entries in the outbox that have not reached it: waiting, being sent, or
    failed (those need a look: retry or drop them on *Queue*)."""
    entries = await outbox.list(limit=MAX_LISTED)
    return [
        {
            "id": str(en.id),
            "user_id": en.membership_id or "-",
            "reader": en.reader,
            "tapped_at": en.tapped_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            "state": en.state.value,
            "attempts": str(en.attempts),
            "error": en.last_error or "",
        }
        for en in entries
        if en.backend == MOCO and en.state in WAITING
    ]


def version(moco: MocoService, outbox_depth: int, today: date) -> str:
    """Changes whenever what the page shows may have: for the event stream."""
    shown = [staff_rows(moco, today), moco_state(moco), outbox_depth]
    text = json.dumps(shown, default=dataclasses.asdict, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def _staff(request: web.Request) -> web.StreamResponse:
    backend = request.app[STATE].backend
    moco = backend.moco
    if moco is None:
        raise web.HTTPNotFound
    today = backend.today()
    body = staff_pages.staff_page(
        lang_of(request),
        csrf_for(request),
        rows=staff_rows(moco, today),
        state=moco_state(moco),
        waiting=await waiting_presences(backend.outbox),
        version=version(moco, backend.outbox.depth, today),
    )
    return html_page(request, body)
