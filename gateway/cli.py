"""Command line: ``checkin-gateway run|check-config|status|queue|doctor|demo``.

``async def main(argv)`` does the work and returns the exit code; ``run()`` is the thin
synchronous entry point. Tests call ``main([...])`` directly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import structlog

from gateway import __version__
from gateway.config import load_access_token, load_config
from gateway.errors import ConfigError, GatewayError
from gateway.log import configure
from gateway.systemd import Notifier, status_line
from gateway.systemd.lifecycle import run_notified

if TYPE_CHECKING:
    from gateway.app import Gateway

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="checkin-gateway",
        description="Turns members' arrival (RFID, NFC, Wi-Fi) into Cobot check-ins.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the gateway in the foreground (systemd runs this)")
    run.add_argument("--config", "-c", required=True, type=Path)
    chk = sub.add_parser("check-config", help="validate a config file and exit")
    chk.add_argument("--config", "-c", required=True, type=Path)
    st = sub.add_parser("status", help="show readers, API, queue and rate limits")
    st.add_argument("--config", "-c", required=True, type=Path)
    st.add_argument("--json", action="store_true")
    q = sub.add_parser("queue", help="list, retry or drop queued check-ins")
    q.add_argument("--config", "-c", required=True, type=Path)
    q.add_argument("action", choices=["list", "retry", "drop"])
    q.add_argument("id", nargs="?", type=int)
    q.add_argument("--all", action="store_true", help="list: include delivered entries")
    doc = sub.add_parser(
        "doctor", help="check config, devices, permissions, API token and clock; say what to fix"
    )
    doc.add_argument("--config", "-c", type=Path, default=Path("/etc/checkin-gateway/config.toml"))
    demo = sub.add_parser("demo", help="a gateway on a simulated Cobot, keyboard reader")
    demo.add_argument("--state-dir", type=Path, default=None)
    return p


async def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(list(argv))
    try:
        match args.command:
            case "run":
                return await _run(args.config)
            case "check-config":
                return _check_config(args.config, out)
            case "status":
                return await _status(args.config, out, as_json=args.json)
            case "queue":
                return await _queue(args.config, args.action, args.id, args.all, out)
            case "doctor":
                from gateway.doctor import run_doctor

                return await run_doctor(args.config, out)
            case "demo":
                from gateway.demo import run_demo

                return await run_demo(args.state_dir, out)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_FAILURE


def _check_config(path: Path, out: TextIO) -> int:
    cfg = load_config(path)
    load_access_token(cfg)
    print(
        f"{path}: OK ({len(cfg.readers)} reader(s), {len(cfg.doors)} door(s), "
        f"offline policy {cfg.gateway.offline_policy.value})",
        file=out,
    )
    return EXIT_OK


async def _run(path: Path) -> int:
    from gateway.app import Gateway

    cfg = load_config(path)
    configure(cfg.gateway.log_level, cfg.gateway.log_format)
    token = load_access_token(cfg)
    # systemd's Type=notify: READY=1 once readers and cache are up, a status line,
    # the watchdog from this loop. All no-ops outside systemd.
    notifier = Notifier.from_environ()
    gateway = Gateway(cfg, token, on_ready=lambda: notifier.ready(_status_line(gateway)))
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    stopping = False

    def stop(signame: str) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            log.info("stopping", signal=signame)
            notifier.stopping()
            main_task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        await run_notified(gateway.run, notifier, lambda: _status_line(gateway))
    except asyncio.CancelledError:
        if not stopping:
            raise
        # A stop we asked for: a clean exit, not an error.
        main_task.uncancel()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return EXIT_OK


def _status_line(gateway: Gateway) -> str | None:
    """What `systemctl status` shows; None until the gateway is up."""
    from gateway.breaker import BreakerState

    if not gateway.ready.is_set():
        return None
    return status_line(
        {r.name: r.state for r in gateway.readers},
        online=gateway.breaker.state is BreakerState.CLOSED,
        queued=gateway.outbox.depth,
    )


async def _status(path: Path, out: TextIO, *, as_json: bool) -> int:
    from gateway.bookings.doors import describe_rooms
    from gateway.outbox import Outbox
    from gateway.store import open_db

    cfg = load_config(path)
    status_file = cfg.gateway.state_dir / "status.json"
    daemon: dict[str, object] | None = None
    with contextlib.suppress(OSError, ValueError):
        daemon = json.loads(status_file.read_text(encoding="utf-8"))
    db = await open_db(cfg.gateway.state_dir)
    try:
        outbox = Outbox(db, cfg.queue.max_entries)
        queue = await outbox.stats()
    finally:
        await db.close()
    report = {"daemon": daemon, "queue": queue}
    if as_json:
        print(json.dumps(report, indent=2), file=out)
        return EXIT_OK
    if daemon is None:
        print("daemon: no status file (not running, or never started)", file=out)
    else:
        age = time.time() - float(daemon.get("time", 0))  # type: ignore[arg-type]
        fresh = "running" if age < 30 else f"status is {age:.0f}s old: not running?"
        print(f"daemon: pid {daemon.get('pid')} ({fresh})", file=out)
        for name, r in dict(daemon.get("readers", {})).items():  # type: ignore[call-overload]
            err = f" - {r['error']}" if r.get("error") else ""
            print(f"  reader {name}: {r['state']}{err}", file=out)
        api = dict(daemon.get("api", {}))  # type: ignore[call-overload]
        print(
            f"  api: breaker {api.get('breaker')}"
            f"{', auth failing' if api.get('auth_failed') else ''}"
            f"{', last error: ' + str(api['last_error']) if api.get('last_error') else ''}",
            file=out,
        )
        print(f"  tokens cached: {daemon.get('tokens')}", file=out)
        if daemon.get("storage_error"):
            print(f"  STORAGE FAILING: {daemon['storage_error']}", file=out)
        for g in daemon.get("rate_limits", []):  # type: ignore[attr-defined]
            blocked = f", blocked {g['blocked_for_s']}s" if g["blocked_for_s"] else ""
            print(
                f"  rate limit {g['group']}: {g['used']}/{g['limit']} in the last minute"
                f"{blocked}, {g['waiting']} waiting",
                file=out,
            )
        for line in describe_rooms(dict(daemon.get("rooms") or {})):  # type: ignore[call-overload]
            print(line, file=out)
    print(
        f"queue: {queue['depth']} waiting (bound {queue['bound']}), "
        f"oldest {queue['oldest_age_s']}s, {queue['failed']} failed, "
        f"last error: {queue['last_error'] or '-'}",
        file=out,
    )
    return EXIT_OK


async def _queue(
    path: Path, action: str, entry_id: int | None, include_done: bool, out: TextIO
) -> int:
    from gateway.outbox import Outbox
    from gateway.redact import redact
    from gateway.store import open_db

    cfg = load_config(path)
    if action in ("retry", "drop") and entry_id is None:
        print(f"queue {action} needs an entry id (see 'queue list')", file=sys.stderr)
        return EXIT_CONFIG
    db = await open_db(cfg.gateway.state_dir)
    try:
        outbox = Outbox(db, cfg.queue.max_entries)
        if action == "list":
            entries = await outbox.list(include_done=include_done)
            print(
                f"{'id':>6} {'state':<9} {'kind':<9} {'tapped at (UTC)':<20} {'tries':>5} "
                f"{'member':<12} {'token':<14} last error",
                file=out,
            )
            for e in entries:
                print(
                    f"{e.id:>6} {e.state.value:<9} {e.kind.value:<9} "
                    f"{e.tapped_at.strftime('%Y-%m-%d %H:%M:%S'):<20} {e.attempts:>5} "
                    f"{(e.membership_id or '-')[:12]:<12} {redact(e.token):<14} "
                    f"{e.last_error or ''}",
                    file=out,
                )
            if not entries:
                print("(queue is empty)", file=out)
            return EXIT_OK
        assert entry_id is not None
        done = await (outbox.retry(entry_id) if action == "retry" else outbox.drop(entry_id))
        if not done:
            print(f"no open or failed entry {entry_id}", file=sys.stderr)
            return EXIT_FAILURE
        print(
            f"entry {entry_id}: {'will be retried' if action == 'retry' else 'dropped'}", file=out
        )
        return EXIT_OK
    finally:
        await db.close()


def run() -> None:
    """Console-script entry point."""
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main(sys.argv[1:])))
    sys.exit(130)
