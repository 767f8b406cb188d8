"""What the client reads off an HTTP answer: the headers it keeps, JSON bodies (bounded,
never raising anything but ``MalformedResponse``) and the check-in result."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiohttp
import structlog

from gateway.cobot.endpoints import Scope
from gateway.cobot.errors import MalformedResponse, NotFound
from gateway.cobot.headers import retry_after
from gateway.model import CheckIn
from gateway.redact import redact_text

log = structlog.get_logger("gateway.cobot.client")

MAX_BODY = 4 * 1024 * 1024  # a token list of tens of thousands fits; garbage beyond is cut


class CheckInResult:
    """A check-in and any warning Cobot attached (e.g. token registered to another)."""

    __slots__ = ("check_in", "warning")

    def __init__(self, check_in: CheckIn, warning: str | None) -> None:
        self.check_in = check_in
        self.warning = warning


class Headers:
    """The response headers the client reads, as sent (parsed later, never raising)."""

    __slots__ = ("date", "retry_after", "www_authenticate")

    def __init__(
        self, *, retry_after: str | None, date: str | None, www_authenticate: str | None
    ) -> None:
        self.retry_after = retry_after
        self.date = date
        self.www_authenticate = www_authenticate


def api_session(connections: int) -> aiohttp.ClientSession:
    """The HTTP session of an API client (Cobot's, MOCO's): JSON asked for, our name
    given, and connections kept warm (a tap's request should not pay for a handshake)."""
    return aiohttp.ClientSession(
        headers={"Accept": "application/json", "User-Agent": "checkin-gateway"},
        connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=55),
    )


def read_json(raw: bytes, what: str, *, allow_empty: bool = False) -> Any:
    if len(raw) > MAX_BODY:
        raise MalformedResponse(f"{what}: answer larger than {MAX_BODY} bytes")
    if not raw.strip():
        if allow_empty:
            return None
        raise MalformedResponse(f"{what}: empty answer")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: "[[[[..." nested deeper than the interpreter's stack allows.
        raise MalformedResponse(f"{what}: not JSON: {redact_text(repr(raw[:60]))}") from exc


def json_or_text(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return raw[:200].decode(errors="replace")


def parse_retry_after(
    value: str | None, now: datetime | None = None, *, date: str | None = None
) -> float:
    """Seconds to wait for a ``Retry-After``; see ``headers.retry_after`` (never raises,
    at most ``MAX_RETRY_AFTER``, ``DEFAULT_RETRY_AFTER`` for garbage)."""
    return retry_after(value, date, now).seconds


def answer_404(documented: bool, what: str, raw: bytes) -> NotFound | MalformedResponse:
    """A 404: ``NotFound`` only where the API page documents one and the body is JSON.

    Cobot answers everything in JSON (the General page). An HTML 404 is a proxy's or a
    wrong base_url's: reading it as "not checked in" could send a check-in twice."""
    cobots = isinstance(json_or_text(raw), dict | list)
    if documented and cobots:
        return NotFound(f"{what}: not found")
    return MalformedResponse(
        f"{what}: unexpected HTTP 404"
        + ("" if cobots else f": not Cobot's answer {redact_text(repr(raw[:60]))}"),
        status=404,
        json_body=cobots,
    )


async def read_body(content: aiohttp.StreamReader) -> bytes:
    """The whole body, cut after ``MAX_BODY + 1`` bytes. ``read(n)`` alone returns what
    has arrived so far: a body larger than one chunk (a long token or booking list) would
    be cut short and read as "not JSON"."""
    raw = bytearray()
    while len(raw) <= MAX_BODY:
        chunk = await content.read(MAX_BODY + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    return bytes(raw)


class AnswerLog:
    """How the client logs what went wrong with answers: an odd answer is a warning the
    first time per kind, debug after (a proxy that keeps sending garbage must not flood
    the log); an auth failure is loud once per episode (an operator must fix the token;
    repeating it every tap would drown the log). ``quiet``: the caller reports failures
    itself (doctor, login), so these are debug only."""

    __slots__ = ("_noted", "_quiet", "auth_failed")

    def __init__(self, *, quiet: bool) -> None:
        self._noted: set[str] = set()
        self._quiet = quiet
        self.auth_failed = False

    def odd(self, kind: str, problem: str, **fields: object) -> None:
        level = log.debug if kind in self._noted or self._quiet else log.warning
        self._noted.add(kind)
        level("cobot_odd_answer", problem=problem, **fields)

    def auth_error(self, status: int, what: str, detail: object, scope: Scope) -> None:
        if not self.auth_failed:
            self.auth_failed = True
            (log.debug if self._quiet else log.error)(
                "cobot_auth_failed",
                status=status,
                request=what,
                detail=redact_text(str(detail)[:200]),
                fix=(
                    f"this request needs the scope {scope.value}; "
                    "`checkin-gateway doctor` names every scope the configuration needs"
                ),
            )

    def auth_ok(self) -> None:
        if self.auth_failed:
            self.auth_failed = False
            log.info("cobot_auth_recovered")
