"""``python -m gateway.sim``: the simulated Cobot server, standalone.

    python -m gateway.sim [--host 127.0.0.1] [--port 8180] [--seed demo]
                          [--timezone UTC] [--no-rate-limit] [--log-level info]

Prints the base URL and the admin access token, serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn
from zoneinfo import ZoneInfoNotFoundError

from gateway.log import configure as configure_logging
from gateway.sim.model import Role
from gateway.sim.seed import SEEDS
from gateway.sim.server import run_sim

# Not 8080: that is the captive portal's default port, and both run on one Pi in a try-out.
DEFAULT_PORT = 8180
LOG_LEVELS = ("debug", "info", "warning", "error")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, not usage plus error: ``python -m gateway.sim: error: ...``."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0-65535; 0: any free)")
    return port


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m gateway.sim",
        description="The simulated Cobot server with demo data. Prints its base URL and "
        "the admin access token; serves until SIGINT/SIGTERM.",
    )
    # Loopback by default: demo data and a known admin token must not face a network.
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"TCP port ({DEFAULT_PORT}); 0 picks a free one",
    )
    parser.add_argument(
        "--seed", choices=sorted(SEEDS), default="demo", help="the space's data (demo)"
    )
    parser.add_argument("--timezone", default="UTC", help="the space's time zone (UTC)")
    parser.add_argument(
        "--no-rate-limit", action="store_true", help="serve every request (benchmarks)"
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="debug shows every request (to stderr)",
    )
    return parser.parse_args(argv)


async def main(argv: Sequence[str], *, stop: asyncio.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM, or until ``stop`` is set (tests)."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        space = SEEDS[args.seed](timezone=args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"unknown time zone {args.timezone!r} (e.g. UTC, Europe/Berlin)", file=sys.stderr)
        return 2
    space.rate_limit.enabled = not args.no_rate_limit
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with run_sim(space, args.host, args.port) as url:
            admins = [t.token for t in space.access_tokens.values() if t.role is Role.ADMIN]
            print(f"Cobot simulator at {url}", flush=True)
            print(f"admin access token: {admins[0] if admins else '(none)'}", flush=True)
            await stop.wait()
    except OSError as exc:
        # A port in use, a privileged port, an address not on this machine.
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"cannot listen on {args.host}:{args.port}: {why}", file=sys.stderr)
        return 2
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def run() -> None:
    sys.exit(asyncio.run(main(sys.argv[1:])))


if __name__ == "__main__":
    run()
