"""``checkin-gateway status``: is the daemon running, what does it say, what is queued.

Reads only: the lock file (is a process holding it?), the daemon's status socket, and
the database opened read-only. Exit codes follow the LSB's ``status`` convention:
0 running, 1 running but not answering, 3 not running, 4 unknown (no permission to look).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TextIO

from gateway.bookings.doors import describe_rooms
from gateway.config.model import Config
from gateway.moco.service import describe_moco
from gateway.ops.queue import queue_summary
from gateway.readers.report import reader_stats_lines
from gateway.statedir import holder
from gateway.status import StatusUnavailable, ask
from gateway.status.paths import candidates
from gateway.store import NoDatabase, open_db_readonly

EXIT_RUNNING = 0
EXIT_NOT_ANSWERING = 1
EXIT_NOT_RUNNING = 3
EXIT_UNKNOWN = 4


async def status_command(cfg: Config, out: TextIO, *, as_json: bool) -> int:
    state_dir = cfg.gateway.state_dir
    try:
        pid = holder(state_dir)
    except PermissionError:
        print(
            f"status unknown: {state_dir} is not readable by uid {os.geteuid()} "
            "(it is the service's own); try: sudo checkin-gateway status",
            file=out,
        )
        return EXIT_UNKNOWN
    daemon, problem = await _ask_daemon(state_dir)
    if pid is None:
        # No lock held: not running, unless a daemon answers that could not take the
        # lock because its state directory is unusable (it runs from memory then).
        pid = daemon.get("pid") if daemon is not None else None
        problem = None
    queue, queue_note = await _queue(cfg)
    if daemon is not None and daemon.get("state_problem"):
        # Running from memory: the file on disk (if any) is not the daemon's queue.
        queue, queue_note = (
            None,
            (
                f"{daemon.get('queue_depth', 0)} waiting, in the daemon's memory only "
                "(the state directory is unusable)"
            ),
        )
    code = (
        EXIT_NOT_RUNNING
        if pid is None
        else EXIT_RUNNING
        if daemon is not None
        else EXIT_NOT_ANSWERING
    )
    if as_json:
        report = {
            "running": pid is not None,
            "pid": pid,
            "daemon": daemon,
            "daemon_problem": problem,
            "queue": queue,
        }
        print(json.dumps(report, indent=2, default=str), file=out)
        return code
    if pid is None:
        print(f"daemon: not running (no process holds {state_dir}/gateway.lock)", file=out)
    elif daemon is None:
        print(
            f"daemon: pid {pid or '?'} holds {state_dir} but does not answer: {problem}", file=out
        )
    else:
        _print_daemon(daemon, out)
    if queue is None:
        print(f"queue: {queue_note}", file=out)
    else:
        _print_queue(queue, out)
    return code


async def _ask_daemon(state_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The daemon's answer, or None and why there was none."""
    problem: str | None = None
    for path in candidates(state_dir):
        try:
            return await ask(path), None
        except StatusUnavailable as exc:
            problem = problem or str(exc)
    return None, problem


async def _queue(cfg: Config) -> tuple[dict[str, Any] | None, str | None]:
    """The queue summary, or None and why (no database yet)."""
    try:
        db = await open_db_readonly(cfg.gateway.state_dir)
    except NoDatabase as exc:
        return None, str(exc)
    try:
        return await queue_summary(db, cfg.queue.max_entries), None
    finally:
        await db.close()


def _storage_lines(daemon: dict[str, Any]) -> list[str]:
    """What is not safely on disk, in the words a manager acts on."""
    lines = []
    if daemon.get("state_problem"):
        lines.append(
            f"STATE NOT DURABLE: {daemon['state_problem']}; running from memory (queued "
            "check-ins are lost if the gateway stops): fix it, then restart"
        )
    if daemon.get("unsaved_records"):
        lines.append(
            f"{daemon['unsaved_records']} check-in(s) held in memory only (database busy or "
            "full): lost if the gateway stops now"
        )
    if daemon.get("storage_error"):
        lines.append(f"STORAGE FAILING: {daemon['storage_error']}")
    return lines


def _print_daemon(daemon: dict[str, Any], out: TextIO) -> None:
    print(f"daemon: running, pid {daemon.get('pid')}", file=out)
    if daemon.get("starting"):
        print("  starting up (readers and token cache not ready yet)", file=out)
        return
    for name, r in dict(daemon.get("readers") or {}).items():
        err = f" - {r['error']}" if r.get("error") else ""
        print(f"  reader {name}: {r.get('state')}{err}", file=out)
        for line in reader_stats_lines(r.get("stats") or {}):
            print(f"    {line}", file=out)
    if not daemon.get("clock_synchronized", True):
        print("  clock: NOT synchronised (taps are marked and corrected once it is)", file=out)
    for part, state in dict(daemon.get("parts") or {}).items():
        if state.get("restarts") or not state.get("running", True):
            print(
                f"  part {part}: {'running' if state.get('running') else 'stopped'}, "
                f"{state.get('restarts', 0)} restart(s), last error: {state.get('error') or '-'}",
                file=out,
            )
    api = dict(daemon.get("api") or {})
    online = api.get("breaker") == "closed"
    words = "online (Cobot answers)" if online else "offline (Cobot does not answer)"
    if api.get("auth_failed"):
        words += ", the access token is refused (401/403)"
    # The last error is news only while it lasts: after recovery it would mislead.
    if not online and api.get("last_error"):
        words += f"; last error: {api['last_error']}"
    print(f"  api: {words}", file=out)
    print(f"  tokens cached: {daemon.get('tokens')}", file=out)
    for line in _storage_lines(daemon):
        print(f"  {line}", file=out)
    for g in daemon.get("rate_limits") or []:
        blocked = f", blocked {g['blocked_for_s']}s" if g.get("blocked_for_s") else ""
        print(
            f"  rate limit {g['group']}: {g['used']}/{g['limit']} in the last minute"
            f"{blocked}, {g['waiting']} waiting",
            file=out,
        )
    rooms = describe_rooms(dict(daemon.get("rooms") or {}))
    for line in [*rooms, *describe_moco(daemon.get("moco"))]:
        print(line, file=out)


def _print_queue(q: dict[str, Any], out: TextIO) -> None:
    oldest = "-" if q["oldest_age_s"] is None else _age(float(q["oldest_age_s"]))
    print(
        f"queue: {q['depth']} waiting (bound {q['bound']}), oldest {oldest}, "
        f"{q['failed']} failed, {q['dropped']} dropped",
        file=out,
    )
    if q["open_error"]:
        print(f"  last error of a waiting entry: {q['open_error']}", file=out)
    if q["failed"]:
        print("  failed entries: see `checkin-gateway queue list`", file=out)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
