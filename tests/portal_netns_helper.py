"""Processes the portal's namespace tests run inside their namespaces.

    python tests/portal_netns_helper.py serve --http 80 --tcp 5000 --udp 53,5353
    python tests/portal_netns_helper.py gateway --state-dir D --table T [--day-ends-in S]
    python tests/portal_netns_helper.py client '{"do": "http", "url": "..."}' ...

``gateway`` runs the real PortalService (nftables, the kernel neighbour table) against
the simulated Cobot on the namespace's own loopback. With ``--day-ends-in S`` the
simulated space's time zone is chosen so that its business day, and so a check-in's
valid_until, ends S seconds after start: expiry is tested with the real clock.
``client`` prints one JSON line per action (stdlib only: it starts fast).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

INTERNET_BODY = b"hello from the internet"


# --- serve: the "internet" (and a DNS stand-in) ------------------------------------


async def serve(args: argparse.Namespace) -> None:
    async def http_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(INTERNET_BODY), INTERNET_BODY)
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()

    async def tcp_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"tcp ok\n")
        await writer.drain()
        writer.close()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(b"echo:" + data, addr)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    servers = []
    for host in ("0.0.0.0", "::"):
        if args.http:
            servers.append(await asyncio.start_server(http_client, host, args.http))
        if args.tcp:
            servers.append(await asyncio.start_server(tcp_client, host, args.tcp))
        for port in filter(None, (args.udp or "").split(",")):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, int(port)))
            await loop.create_datagram_endpoint(Echo, sock=sock)
    print("READY", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


# --- gateway: the portal with nftables, against the simulated Cobot --------------------


def zone_ending_in(seconds: float) -> timezone:
    """A fixed-offset zone whose day ends ``seconds`` from now."""
    now = datetime.now(UTC)
    midnight_utc = now.replace(hour=0, minute=0, second=0, microsecond=0)
    wanted_local = timedelta(hours=23, minutes=59, seconds=59) - timedelta(seconds=seconds)
    offset = (wanted_local - (now - midnight_utc)).total_seconds() % 86400
    if offset > 43200:
        offset -= 86400
    return timezone(timedelta(seconds=round(offset)))


async def gateway(args: argparse.Namespace) -> None:
    from gateway.cobot.client import CobotClient
    from gateway.cobot.ratelimit import Group, RateLimiter
    from gateway.config.model import PortalSection
    from gateway.log import configure
    from gateway.portal.service import PortalService
    from gateway.sim.seed import ADMIN_TOKEN, demo_space
    from gateway.sim.server import run_sim

    configure("info", "console")
    space = demo_space(timezone=zone_ending_in(args.day_ends_in) if args.day_ends_in else "UTC")
    space.rate_limit.enabled = False
    cfg = PortalSection(
        space_name="Namespace Space",
        interface=args.interface,
        listen=("0.0.0.0", "::"),
        port=args.port,
        table=args.table,
        firewall=True,
    )
    loop = asyncio.get_running_loop()
    async with run_sim(space, "127.0.0.1", 0) as url:
        limiter = RateLimiter({Group.CHECK_INS: 100_000, Group.DEFAULT: 100_000})
        async with CobotClient(url, ADMIN_TOKEN, limiter) as client:
            service = PortalService(cfg, client, Path(args.state_dir))
            task = asyncio.create_task(service.run())
            started = asyncio.create_task(service.wait_started())
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
            print("READY", flush=True)
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await task
    print("STOPPED", flush=True)


# --- client: actions from a client namespace ------------------------------------------


def _http(url: str, host: str | None = None, timeout: float = 3.0) -> dict[str, object]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        headers = {"Host": host} if host else {}
        conn.request("GET", parts.path or "/", headers=headers)
        resp = conn.getresponse()
        body = resp.read(500)
        return {
            "status": resp.status,
            "location": resp.getheader("Location"),
            "body": body.decode(errors="replace"),
        }
    except OSError as exc:
        return {"error": type(exc).__name__}
    finally:
        conn.close()


def _tcp(host: str, port: int, timeout: float = 2.0) -> dict[str, object]:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return {"open": sock.recv(100).decode(errors="replace")}
    except OSError as exc:
        return {"error": type(exc).__name__}


def _udp(host: str, port: int, timeout: float = 0.5, tries: int = 8) -> dict[str, object]:
    # Retried like a resolver does: the very first datagram through a fresh link can be
    # lost while the gateway resolves its next hop's neighbour entry.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    error = "none"
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        for _ in range(tries):
            try:
                sock.send(b"ping")
                return {"reply": sock.recv(100).decode(errors="replace")}
            except OSError as exc:
                error = type(exc).__name__
    return {"error": error}


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _sign_in(portal: str, login: str, password: str) -> dict[str, object]:
    parts = urllib.parse.urlsplit(portal)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=15)
    try:
        conn.request("GET", "/")
        page = conn.getresponse()
        text = page.read().decode()
        cookie = (page.getheader("Set-Cookie") or "").split(";", 1)[0]
        token = _CSRF.search(text)
        if token is None:
            return {"error": "no form", "status": page.status}
        form = urllib.parse.urlencode(
            {"csrf": token.group(1), "login": login, "password": password}
        )
        submitted = time.monotonic()
        conn.request(
            "POST",
            "/sign-in",
            body=form,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        )
        resp = conn.getresponse()
        body = resp.read().decode()
        return {
            "status": resp.status,
            "online": "This device is online until" in body,
            "seconds": time.monotonic() - submitted,
        }
    except OSError as exc:
        return {"error": type(exc).__name__}
    finally:
        conn.close()


def _race(portal: str, login: str, password: str, host: str, port: int) -> dict[str, object]:
    """Submit a sign-in and, meanwhile, try a connection out every millisecond or so:
    how long after the submit the first packet got through, and when the page came."""
    result: dict[str, object] = {}
    start = time.monotonic()

    def submit() -> None:
        result.update(_sign_in(portal, login, password))
        result["page_after"] = time.monotonic() - start

    thread = threading.Thread(target=submit)
    thread.start()
    first = None
    while time.monotonic() - start < 15:
        if "open" in _tcp(host, port, timeout=0.5):
            first = time.monotonic() - start
            break
        time.sleep(0.001)
    thread.join()
    result["forwarded_after"] = first
    return result


def _dhcp(interface: str) -> dict[str, object]:
    proc = subprocess.run(
        [
            "busybox",
            "udhcpc",
            "-i",
            interface,
            "-n",
            "-q",
            "-f",
            "-t",
            "3",
            "-T",
            "1",
            "-s",
            "/bin/true",
        ],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    return {"lease": proc.returncode == 0, "output": (proc.stdout + proc.stderr)[-300:]}


def client(actions: list[str]) -> None:
    for raw in actions:
        action = json.loads(raw)
        kind = action.pop("do")
        if kind == "http":
            result = _http(**action)
        elif kind == "tcp":
            result = _tcp(**action)
        elif kind == "udp":
            result = _udp(**action)
        elif kind == "signin":
            result = _sign_in(**action)
        elif kind == "race":
            result = _race(**action)
        elif kind == "dhcp":
            result = _dhcp(**action)
        else:
            raise SystemExit(f"unknown action {kind}")
        print(json.dumps({"do": kind, **action, **result}), flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--http", type=int)
    p.add_argument("--tcp", type=int)
    p.add_argument("--udp")
    p = sub.add_parser("gateway")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--interface", default="lan0")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--day-ends-in", type=float)
    p = sub.add_parser("client")
    p.add_argument("actions", nargs="+")
    args = parser.parse_args(argv)
    if args.role == "serve":
        asyncio.run(serve(args))
    elif args.role == "gateway":
        asyncio.run(gateway(args))
    else:
        client(args.actions)


if __name__ == "__main__":
    main(sys.argv[1:])
