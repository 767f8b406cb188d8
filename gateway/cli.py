"""Command line: ``checkin-gateway run|check-config|status|queue|doctor|login|admin-password|demo``.

``async def main(argv)`` does the work and returns the exit code; ``run()`` is the thin
synchronous entry point. Tests call ``main([...])`` directly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from gateway import __version__
from gateway.config import config_warnings, load_access_token, load_config
from gateway.errors import ConfigError, DoorError, GatewayError
from gateway.log import configure
from gateway.statedir import StateDirBusy, StateDirError, StateLock, prepare
from gateway.systemd import Notifier, status_line
from gateway.systemd.lifecycle import run_notified

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.status import StatusServer

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


DEFAULT_CONFIG = Path("/etc/checkin-gateway/config.toml")


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"the gateway's TOML config (default: {DEFAULT_CONFIG})",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="checkin-gateway",
        description="Turns members' arrival (RFID, NFC, Wi-Fi) into Cobot check-ins.",
    )
    p.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the gateway in the foreground (systemd runs this)")
    _config_arg(run)
    chk = sub.add_parser("check-config", help="validate a config file and exit")
    _config_arg(chk)
    st = sub.add_parser(
        "status",
        help="is the daemon running; readers, API, queue (exit 0 running, 3 not running)",
    )
    _config_arg(st)
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    q = sub.add_parser("queue", help="list, retry or drop queued check-ins")
    qsub = q.add_subparsers(dest="action", required=True, metavar="ACTION")
    ql = qsub.add_parser("list", help="list waiting and failed entries (or the ones named)")
    _config_arg(ql)
    ql.add_argument("ids", nargs="*", type=int, metavar="ID", help="show only these entries")
    ql.add_argument("--all", action="store_true", help="include delivered and dropped entries")
    ql.add_argument(
        "--limit", type=int, default=200, metavar="N", help="show at most N entries (200)"
    )
    qr = qsub.add_parser("retry", help="send a failed or waiting entry again, now")
    _config_arg(qr)
    qr.add_argument("id", type=int, metavar="ID", help="the entry's id (see `queue list`)")
    qd = qsub.add_parser("drop", help="give up on an entry; it stays listed as dropped")
    _config_arg(qd)
    qd.add_argument("id", type=int, metavar="ID", help="the entry's id (see `queue list`)")
    qd.add_argument(
        "--by", metavar="NAME", help="who drops it, for the record (default: your login)"
    )
    doc = sub.add_parser(
        "doctor", help="check config, devices, permissions, API token and clock; say what to fix"
    )
    _config_arg(doc)
    login = sub.add_parser(
        "login", help="get a Cobot access token in the browser (OAuth) and store it"
    )
    _config_arg(login)
    login.add_argument(
        "--port",
        type=int,
        default=0,
        metavar="PORT",
        help="loopback port for the browser's redirect (default: any free one; fix it "
        "for `ssh -L`)",
    )
    login.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the browser (default 600)",
    )
    enrol = sub.add_parser(
        "enrol", help="put a reader in enrolment mode: its next unknown card goes to the admin page"
    )
    _config_arg(enrol)
    enrol.add_argument("--reader", required=True, metavar="NAME", help="the reader's name")
    adm = sub.add_parser(
        "admin-password", help="set the admin page's password (an argon2 hash in a file)"
    )
    _config_arg(adm)
    adm.add_argument(
        "--stdin",
        action="store_true",
        help="read the password from standard input (one line) instead of asking twice",
    )
    demo = sub.add_parser("demo", help="a gateway on a simulated Cobot, keyboard reader")
    demo.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the demo's database here (default: a temporary directory)",
    )
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
                from gateway.ops.status import status_command

                return await status_command(load_config(args.config), out, as_json=args.json)
            case "queue":
                return await _queue(args, out)
            case "doctor":
                from gateway.doctor import run_doctor

                return await run_doctor(args.config, out)
            case "login":
                from gateway.login import run_login

                return await run_login(args.config, out, port=args.port, wait=args.timeout)
            case "enrol":
                return await _enrol(args.config, args.reader, out)
            case "admin-password":
                return _admin_password(args.config, out, from_stdin=args.stdin)
            case "demo":
                from gateway.demo import run_demo

                return await run_demo(args.state_dir, out)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (StateDirError, DoorError) as exc:
        # The environment is wrong (state dir, a door's device): restarting will not
        # fix it, so the unit's RestartPreventExitStatus=2 applies.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_FAILURE


async def _enrol(path: Path, reader: str, out: TextIO) -> int:
    """Ask the running daemon (status socket) to put ``reader`` in enrolment mode."""
    from gateway.status import StatusUnavailable, ask
    from gateway.status.paths import candidates

    cfg = load_config(path)
    if cfg.admin is None:
        raise ConfigError(f"{path}: enrolment needs the admin page: add an [admin] table")
    problem = "no status socket"
    for socket in candidates(cfg.gateway.state_dir):
        try:
            answer = await ask(socket, request=f"enrol {reader}")
        except StatusUnavailable as exc:
            problem = str(exc)
            continue
        if "error" in answer:
            print(f"error: {answer['error']}", file=sys.stderr)
            return EXIT_FAILURE
        print(
            f"reader {reader} waits {answer['window_s']:.0f} s for a new card; tap it, then "
            "pick the member on the admin page (Enrol a card)",
            file=out,
        )
        return EXIT_OK
    print(f"error: the gateway is not running ({problem})", file=sys.stderr)
    return EXIT_FAILURE


def _enrol_command(gateway: Gateway, reader: str) -> dict[str, Any]:
    """The status socket's ``enrol <reader>``."""
    from gateway.admin.enrol import WINDOW

    if not gateway.ready.is_set() or gateway.admin is None:
        return {"error": "the admin page is not configured or the gateway is starting"}
    ok, words = gateway.admin.start_enrolment(reader)
    return {"reader": reader, "window_s": WINDOW} if ok else {"error": words}


def _admin_password(path: Path, out: TextIO, *, from_stdin: bool) -> int:
    """Ask for the admin page's password and store its argon2 hash in
    ``[admin] password_file`` (mode 0600)."""
    import getpass

    from gateway.admin.password import write_hash_file

    cfg = load_config(path)
    if cfg.admin is None or cfg.admin.password_file is None:
        raise ConfigError(f'{path}: set [admin] password_file = "/path/to/file" first')
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New admin password: ")
        if getpass.getpass("Again: ") != password:
            print("error: the two passwords differ; nothing changed", file=sys.stderr)
            return EXIT_FAILURE
    try:
        write_hash_file(cfg.admin.password_file, password)
    except ValueError as exc:
        print(f"error: {exc}; nothing changed", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"error: cannot write {cfg.admin.password_file}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"admin password hash written to {cfg.admin.password_file}", file=out)
    return EXIT_OK


def _check_config(path: Path, out: TextIO) -> int:
    cfg = load_config(path)
    for warning in config_warnings(cfg):
        print(f"warning: {warning}", file=out)
    print(
        f"{path}: OK ({len(cfg.readers)} reader(s), {len(cfg.doors)} door(s), "
        f"offline policy {cfg.gateway.offline_policy.value})",
        file=out,
    )
    try:
        load_access_token(cfg)
        if cfg.moco is not None:
            from gateway.moco.keys import load_moco_keys

            load_moco_keys(cfg)
    except ConfigError as exc:
        if os.environ.get("INVOCATION_ID"):
            raise  # under systemd (ExecStartPre): the service cannot start without it
        # A fresh install has no token yet; `run` refuses without one (exit 2).
        print(f"note: {exc}", file=out)
        print(
            f"      get one with: sudo checkin-gateway login --config {path}",
            file=out,
        )
    return EXIT_OK


async def _run(path: Path) -> int:
    from gateway.app import Gateway
    from gateway.status import StatusServer, socket_path

    # Everything that can be wrong with the config or the environment is found before
    # the first log line, and ends the process with one line and exit 2.
    cfg = load_config(path)
    token = load_access_token(cfg)
    os.umask(0o077)  # card numbers and MACs: every file we create is ours alone
    state_dir = cfg.gateway.state_dir
    lock = StateLock(state_dir)
    try:
        prepare(state_dir)
        lock.acquire()
        state_problem = None
    except StateDirBusy:
        raise
    except StateDirError as exc:
        # Full, read-only, not ours: the doors keep deciding from memory (store.py's
        # open_state says how, and the log, status and systemd's status line say so).
        state_problem = str(exc)
        print(f"error: {exc}; running from memory, nothing is stored", file=sys.stderr)
        lock.acquire(best_effort=True)
    try:
        configure(cfg.gateway.log_level, cfg.gateway.log_format)
        for warning in config_warnings(cfg):
            log.warning("config_warning", warning=warning)
        # systemd's Type=notify: READY=1 once readers and cache are up, a status line,
        # the watchdog from this loop. All no-ops outside systemd.
        notifier = Notifier.from_environ()
        gateway = Gateway(
            cfg,
            token,
            on_ready=lambda: notifier.ready(_status_line(gateway)),
            state_problem=state_problem,
        )
        status_server = StatusServer(
            socket_path(state_dir),
            lambda: _status(gateway),
            state_dir=state_dir,
            commands={"enrol": lambda reader: _enrol_command(gateway, reader)},
        )
        return await _serve(gateway, status_server, notifier)
    finally:
        lock.release()


def _status(gateway: Gateway) -> dict[str, Any]:
    if not gateway.ready.is_set():
        return {"starting": True}
    return gateway.status()


async def _serve_status(server: StatusServer) -> None:
    """The status socket is a convenience: failing to make it is logged, not fatal."""
    try:
        await server.run()
    except OSError as exc:
        log.error("status_socket_failed", path=str(server.path), error=str(exc))


async def _serve(gateway: Gateway, status_server: StatusServer, notifier: Notifier) -> int:
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

    async def run_all() -> None:
        status_task = asyncio.create_task(_serve_status(status_server), name="status-socket")
        try:
            await gateway.run()
        finally:
            status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status_task

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        await run_notified(run_all, notifier, lambda: _status_line(gateway))
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
    line = status_line(
        {r.name: r.state for r in gateway.readers},
        online=gateway.breaker.state is BreakerState.CLOSED,
        queued=gateway.outbox.depth,
    )
    return line if gateway.state_problem is None else f"NOT DURABLE (state dir unusable); {line}"


async def _queue(args: argparse.Namespace, out: TextIO) -> int:
    from gateway.ops import queue
    from gateway.store import open_db, open_db_readonly

    cfg = load_config(args.config)
    bound = cfg.queue.max_entries
    if args.action == "list":
        if args.limit < 1:
            raise ConfigError(f"--limit: expected 1 or more, got {args.limit}")
        db = await open_db_readonly(cfg.gateway.state_dir)
        try:
            return await queue.list_entries(
                db, bound, out, ids=args.ids, include_done=args.all, limit=args.limit
            )
        finally:
            await db.close()
    db = await open_db(cfg.gateway.state_dir)
    try:
        if args.action == "retry":
            return await queue.retry_entry(db, bound, args.id, out)
        return await queue.drop_entry(db, bound, args.id, args.by or queue.operator(), out)
    finally:
        await db.close()


def run() -> None:
    """Console-script entry point."""
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main(sys.argv[1:])))
    sys.exit(130)
