"""``checkin-gateway queue list|retry|drop`` and the queue summary ``status`` prints.

``list`` and the summary open the database read-only; ``retry`` and ``drop`` edit it
(SQLite's WAL lets them while the daemon runs). ``drop`` keeps the row, in state
``dropped`` with who and when, so ``list --all`` still accounts for every tap.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.outbox import Entry, Outbox, State, summary
from gateway.redact import redact
from gateway.store import Database, schema_version

DROPPED_COLUMNS_SINCE = 2  # schema version that added dropped_by / dropped_at


def clean_error(text: str | None) -> str | None:
    """An error as the operator should read it: aiohttp's connector errors say
    ``ssl:default`` even for plain http, which only misleads."""
    if text is None:
        return None
    return re.sub(r" ssl:(default|None|True|False)\b", "", text)


async def queue_summary(db: Database, bound: int) -> dict[str, Any]:
    """The outbox's ``summary``, its error as the operator should read it."""
    found = await summary(db, bound)
    found["open_error"] = clean_error(found["open_error"])
    return found


async def list_entries(
    db: Database,
    bound: int,
    out: TextIO,
    *,
    ids: Sequence[int] = (),
    include_done: bool = False,
    limit: int = 200,
) -> int:
    """Print entries (``ids``, or the open and failed ones, or all with
    ``include_done``); returns the exit code (1 when an asked-for id does not exist)."""
    outbox = Outbox(db, bound)
    missing: list[int] = []
    entries: list[Entry] = []
    if ids:
        for entry_id in ids:
            entry = await outbox.get(entry_id)
            if entry is None:
                missing.append(entry_id)
            else:
                entries.append(entry)
    else:
        entries = await outbox.list(include_done=include_done, limit=limit)
    dropped = await _dropped(db, [e.id for e in entries if e.state is State.DROPPED])
    print(
        f"{'id':>6} {'state':<9} {'kind':<9} {'tapped at (UTC)':<19} {'tries':>5} "
        f"{'member':<12} {'token':<14} note",
        file=out,
    )
    for e in entries:
        print(
            f"{e.id:>6} {e.state.value:<9} {e.kind.value:<9} "
            f"{e.tapped_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S'):<19} {e.attempts:>5} "
            f"{(e.membership_id or '-')[:12]:<12} {redact(e.token):<14} {_note(e, dropped)}",
            file=out,
        )
    if not entries and not missing:
        what = "no entries" if include_done else "nothing waiting or failed (--all shows more)"
        print(f"({what})", file=out)
    for entry_id in missing:
        print(f"no entry {entry_id}", file=out)
    if len(entries) == limit and not ids:
        print(f"(first {limit} shown; --limit N shows more)", file=out)
    return 1 if missing else 0


async def entry_notes(db: Database, entries: Sequence[Entry]) -> dict[int, str]:
    """What ``queue list`` says of each entry in its note column (the admin page too)."""
    dropped = await _dropped(db, [e.id for e in entries if e.state is State.DROPPED])
    return {e.id: _note(e, dropped) for e in entries}


def _note(e: Entry, dropped: dict[int, tuple[str | None, float | None]]) -> str:
    if e.state is State.DROPPED:
        by, at = dropped.get(e.id, (None, None))
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "?"
        return f"dropped by {by or '?'} at {when}"
    if e.state is State.DELIVERED:
        return f"delivered (Cobot id {e.result_id})" if e.result_id else "delivered"
    if e.state is State.FAILED:
        return f"refused: {clean_error(e.last_error) or '?'}"
    if e.last_error:
        return f"last try: {clean_error(e.last_error)}"
    return ""


async def _dropped(db: Database, ids: list[int]) -> dict[int, tuple[str | None, float | None]]:
    if not ids or await schema_version(db) < DROPPED_COLUMNS_SINCE:
        return {}
    marks = ",".join("?" * len(ids))
    rows = await db.fetchall(
        f"SELECT id, dropped_by, dropped_at FROM outbox WHERE id IN ({marks})", ids
    )
    return {int(i): (by, None if at is None else float(at)) for i, by, at in rows}


def operator() -> str:
    """Who is dropping: the person behind sudo, else the login."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


async def retry_entry(db: Database, bound: int, entry_id: int, out: TextIO) -> int:
    if await Outbox(db, bound).retry(entry_id):
        print(f"entry {entry_id}: will be retried", file=out)
        return 0
    print(f"entry {entry_id}: no waiting or failed entry with this id", file=out)
    return 1


async def drop_entry(db: Database, bound: int, entry_id: int, by: str, out: TextIO) -> int:
    if await Outbox(db, bound).mark_dropped(entry_id, by):
        print(f"entry {entry_id}: dropped by {by} (kept in `queue list --all`)", file=out)
        return 0
    print(f"entry {entry_id}: no waiting or failed entry with this id", file=out)
    return 1
