"""The sd_notify protocol, spoken directly: one AF_UNIX datagram per message.

systemd's ``Type=notify`` gives the service ``$NOTIFY_SOCKET`` (a path, or ``@name`` for
the abstract namespace) and, with ``WatchdogSec=``, ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``). Everything here is a no-op without ``$NOTIFY_SOCKET``, so the
gateway runs the same from a terminal, and a notification that cannot be delivered is
logged, never raised: telling systemd how we are must not be what stops us.

The watchdog is pinged from a task on the event loop, not from a thread, on purpose:
a loop stuck in a blocking call stops pinging, and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, MutableMapping

import structlog

log = structlog.get_logger(__name__)

_ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def parse_address(value: str) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as an address for ``sendto``; None when unusable here.

    ``@name`` is Linux's abstract namespace (a leading NUL byte); an absolute path is a
    socket file. Anything else (``vsock:...`` of newer systemd, a relative path) is not
    something this service can be given by the units we ship.
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def parse_watchdog(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout in seconds, if systemd asked *this* process to ping."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    wanted_pid = env.get("WATCHDOG_PID", "")
    if wanted_pid and (not wanted_pid.isdigit() or int(wanted_pid) != pid):
        return None  # meant for another process (e.g. we are a child of the service)
    return int(usec) / 1_000_000


def _clean(text: str) -> str:
    # A status is one assignment; a newline would let the text set other variables
    # (say, READY=1), so the whole value is flattened to one line.
    return " ".join(text.split())


class Notifier:
    """Reports to systemd. Build it with ``Notifier.from_environ()`` early in ``main``.

    ``ready()`` once readers and cache are up, ``status(text)`` whenever what a person
    should see in ``systemctl status`` changes, ``stopping()`` on SIGTERM, and run
    ``watchdog()`` as a task for as long as the loop runs.
    """

    def __init__(self, address: str | bytes | None, watchdog_timeout: float | None = None) -> None:
        self._address = address
        self._watchdog_timeout = watchdog_timeout if address is not None else None
        self._sock: socket.socket | None = None
        self._failing = False
        self._last_status: str | None = None

    @classmethod
    def from_environ(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = True
    ) -> Notifier:
        """Read ``$NOTIFY_SOCKET`` and the watchdog variables.

        With ``unset`` (the default) they are removed from the environment so that the
        commands the gateway runs (a door script) do not inherit them and talk to
        systemd in our name.
        """
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = parse_address(raw) if raw else None
        if raw and address is None:
            log.warning("notify_socket_unsupported", notify_socket=raw)
        watchdog = parse_watchdog(env, os.getpid())
        if unset:
            for key in _ENV_KEYS:
                env.pop(key, None)
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half the timeout, as sd_watchdog_enabled(3) advises."""
        return None if self._watchdog_timeout is None else self._watchdog_timeout / 2

    def ready(self, status: str | None = None) -> None:
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        text = _clean(text)
        if text != self._last_status:  # unchanged status lines are not worth a syscall
            self._send(None, text)

    def stopping(self, status: str | None = "Stopping") -> None:
        self._send("STOPPING=1", status)

    def extend_timeout(self, seconds: float) -> None:
        """Ask for more start-up (or stop) time, e.g. while a first token sync runs."""
        self._send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}", None)

    def ping(self) -> None:
        self._send("WATCHDOG=1", None)

    async def watchdog(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Ping every ``watchdog_interval`` until cancelled; returns at once when systemd
        did not ask for a watchdog."""
        interval = self.watchdog_interval
        if interval is None:
            return
        log.debug("watchdog_started", interval=interval)
        while True:
            self.ping()
            await sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, head: str | None, status: str | None) -> None:
        if self._address is None:
            return
        lines = [head] if head else []
        if status is not None:
            status = _clean(status)
            lines.append(f"STATUS={status}")
            self._last_status = status
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the loop on a full socket: a lost ping is followed by the
                # next one well within the timeout.
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            # Warn once per episode: a notify socket that went away should not flood the
            # journal twice per watchdog interval.
            if not self._failing:
                self._failing = True
                log.warning("notify_failed", message=lines[0], error=str(exc))
            return
        if self._failing:
            self._failing = False
            log.info("notify_recovered")
