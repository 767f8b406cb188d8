"""Cobot API client (aiohttp): check-ins, check-outs and check-in tokens.

Every request carries ``Authorization: Bearer <token>``, goes through the shared rate
limiter, and has a deadline. Failures come back as the typed errors in ``errors.py``;
the caller decides what each means for a door or a queued check-in.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog

from gateway.clock import SystemClock
from gateway.cobot.errors import (
    ApiError,
    MalformedResponse,
    NoSlot,
    NotFound,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
)
from gateway.cobot.parse import (
    format_time,
    parse_check_in,
    parse_token_list,
    parse_warning,
    refusal_reason,
)
from gateway.cobot.ratelimit import Group, Priority, RateLimiter, group_for
from gateway.model import CheckIn, Membership, TokenRecord

log = structlog.get_logger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds; a request that takes longer is treated as unanswered
MAX_BODY = 4 * 1024 * 1024  # a token list of tens of thousands fits; garbage beyond is cut
DEFAULT_RETRY_AFTER = 60.0  # a 429 without a usable Retry-After waits a whole window


def parse_retry_after(value: str | None, now: datetime | None = None) -> float:
    """Retry-After is seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return DEFAULT_RETRY_AFTER
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class CheckInResult:
    """A check-in and any warning Cobot attached (e.g. token registered to another)."""

    __slots__ = ("check_in", "warning")

    def __init__(self, check_in: CheckIn, warning: str | None) -> None:
        self.check_in = check_in
        self.warning = warning


class CobotClient:
    def __init__(
        self,
        base_url: str,
        access_token: str,
        limiter: RateLimiter,
        *,
        timeout: float = REQUEST_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        clock: SystemClock | None = None,
    ) -> None:
        self._clock = clock
        self._base = base_url.rstrip("/")
        self._auth = f"Bearer {access_token}"
        self._limiter = limiter
        self._timeout = timeout
        self._session = session
        self._own_session = session is None
        self._auth_failed = False

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    async def __aenter__(self) -> CobotClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json", "User-Agent": "checkin-gateway"},
                # Keep connections warm: a tap's preview should not pay for a handshake.
                connector=aiohttp.TCPConnector(limit=8, keepalive_timeout=55),
            )
            self._own_session = True
        return self._session

    # --- the endpoints -------------------------------------------------------------

    async def check_in(
        self,
        *,
        token: str | None = None,
        login: str | None = None,
        password: str | None = None,
        preview: bool = False,
        priority: Priority = Priority.LIVE,
        deadline: float | None = None,
    ) -> CheckInResult:
        """``POST /api/check_ins``: by token, or by login + password (+ token to register).

        Raises ``Refused`` with the API's reason on 422. A member already checked in gets
        their original check-in back (Cobot's documented behaviour).
        """
        body: dict[str, str] = {}
        if login is not None:
            body["login"] = login
        if password is not None:
            body["password"] = password
        if token is not None:
            # With no login, "sending the token as login works, too"; we send ``token``.
            body["token"] = token
        if not body:
            raise ValueError("check_in needs a token or a login")
        params = {"preview": "true"} if preview else None
        data = await self._request(
            "POST",
            "/api/check_ins",
            json_body=body,
            params=params,
            priority=priority,
            deadline=deadline,
            expect=(200,) if preview else (200, 201),
        )
        return CheckInResult(parse_check_in(data), parse_warning(data))

    async def check_in_status(
        self,
        *,
        token: str | None = None,
        login: str | None = None,
        priority: Priority = Priority.REPLAY,
        deadline: float | None = None,
    ) -> CheckIn | None:
        """``GET /api/check_in``: the active check-in, or None when not checked in."""
        if token is None and not login:
            raise ValueError("check_in_status needs a token or a login")
        params = {"token": token} if token is not None else {"login": login or ""}
        try:
            data = await self._request(
                "GET", "/api/check_in", params=params, priority=priority, deadline=deadline
            )
        except NotFound:
            return None
        return parse_check_in(data)

    async def check_out(
        self,
        membership_id: str,
        *,
        priority: Priority = Priority.LIVE,
        deadline: float | None = None,
    ) -> CheckIn | None:
        """``DELETE /api/memberships/:id/check_ins/current``; None if not checked in."""
        try:
            data = await self._request(
                "DELETE",
                f"/api/memberships/{_seg(membership_id)}/check_ins/current",
                priority=priority,
                deadline=deadline,
            )
        except NotFound:
            return None
        return parse_check_in(data)

    async def create_work_session(
        self,
        membership_id: str,
        *,
        valid_from: datetime | None = None,
        priority: Priority = Priority.REPLAY,
        deadline: float | None = None,
    ) -> CheckIn:
        """``POST /api/memberships/:id/work_sessions``, optionally back-dated."""
        body = {"valid_from": format_time(valid_from)} if valid_from else {}
        data = await self._request(
            "POST",
            f"/api/memberships/{_seg(membership_id)}/work_sessions",
            json_body=body,
            priority=priority,
            deadline=deadline,
            expect=(200, 201),
        )
        return parse_check_in(data)

    async def list_check_ins(
        self,
        membership_id: str,
        start: datetime,
        end: datetime,
        *,
        priority: Priority = Priority.REPLAY,
        deadline: float | None = None,
    ) -> list[CheckIn]:
        """``GET /api/memberships/:id/check_ins?from=&to=`` (admin)."""
        data = await self._request(
            "GET",
            f"/api/memberships/{_seg(membership_id)}/check_ins",
            params={"from": format_time(start), "to": format_time(end)},
            priority=priority,
            deadline=deadline,
        )
        if not isinstance(data, list):
            raise MalformedResponse("check_ins: expected a list")
        return [parse_check_in(item) for item in data]

    async def list_tokens(
        self, *, priority: Priority = Priority.SYNC, deadline: float | None = None
    ) -> list[TokenRecord]:
        data = await self._request(
            "GET", "/api/check_in_tokens", priority=priority, deadline=deadline
        )
        return parse_token_list(data)

    async def get_token(
        self, token: str, *, priority: Priority = Priority.SYNC, deadline: float | None = None
    ) -> TokenRecord | None:
        try:
            data = await self._request(
                "GET",
                f"/api/check_in_tokens/{_seg(token)}",
                priority=priority,
                deadline=deadline,
            )
        except NotFound:
            return None
        records = parse_token_list([data])
        return records[0]

    async def create_token(
        self,
        membership_id: str,
        token: str,
        *,
        priority: Priority = Priority.SYNC,
        deadline: float | None = None,
    ) -> TokenRecord:
        data = await self._request(
            "POST",
            "/api/check_in_tokens",
            json_body={"membership_id": membership_id, "token": token},
            priority=priority,
            deadline=deadline,
            expect=(200, 201),
        )
        if isinstance(data, dict) and "token" in data:
            return parse_token_list([data])[0]
        return TokenRecord(token=token, membership=Membership(membership_id, ""))

    async def delete_token(
        self, token: str, *, priority: Priority = Priority.SYNC, deadline: float | None = None
    ) -> None:
        await self._request(
            "DELETE",
            f"/api/check_in_tokens/{_seg(token)}",
            priority=priority,
            deadline=deadline,
            expect=(200, 204),
        )

    # --- plumbing --------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        priority: Priority,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> Any:
        """One request. ``deadline`` bounds everything including the wait for a rate
        limit slot (what a person at the door can afford); without it the slot wait is
        unbounded (replays, syncs) and the HTTP exchange gets ``self._timeout``."""
        group = group_for(path)
        sent = False
        try:
            async with asyncio.timeout(deadline):
                await self._limiter.acquire(group, priority)
                sent = True
                async with asyncio.timeout(self._timeout):
                    return await self._exchange(method, path, group, params, json_body, expect)
        except TimeoutError:
            if not sent:
                raise NoSlot(f"{method} {path}: no rate-limit slot within {deadline}s") from None
            raise Unavailable(f"{method} {path}: no answer in time", outcome_unknown=True) from None

    async def _exchange(
        self,
        method: str,
        path: str,
        group: Group,
        params: Mapping[str, str] | None,
        json_body: Mapping[str, Any] | None,
        expect: tuple[int, ...],
    ) -> Any:
        try:
            async with self._http().request(
                method,
                self._base + path,
                params=params,
                json=json_body,
                headers={"Authorization": self._auth},
                allow_redirects=False,
            ) as resp:
                raw = await _read_body(resp.content)
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                self._saw_date(resp.headers.get("Date"))
        except aiohttp.ClientConnectorError as exc:
            # Never connected: the request certainly did not reach Cobot.
            raise Unavailable(f"{method} {path}: {exc}", outcome_unknown=False) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"{method} {path}: {exc}", outcome_unknown=True) from exc
        if status in expect:
            self._auth_ok()
            return _json(raw, f"{method} {path}", allow_empty=status == 204)
        return self._fail(method, path, group, status, raw, retry_after)

    def _fail(
        self,
        method: str,
        path: str,
        group: Group,
        status: int,
        raw: bytes,
        retry_after: str | None,
    ) -> Any:
        what = f"{method} {path}"
        if status == 422:
            self._auth_ok()
            reason, errors = refusal_reason(_json_or_text(raw))
            raise Refused(reason, errors)
        if status == 404:
            raise NotFound(f"{what}: not found")
        if status == 429:
            seconds = parse_retry_after(retry_after)
            self._limiter.block(group, seconds)
            raise RateLimited(seconds)
        if status in (401, 403):
            detail = _json_or_text(raw)
            self._auth_error(status, what, detail)
            raise Unauthorized(status, f"{what}: {str(detail)[:200]}")
        if status >= 500:
            # The server got the request; a 5xx may still have done the work.
            raise Unavailable(f"{what}: HTTP {status}", outcome_unknown=True, status=status)
        detail = str(_json_or_text(raw))[:200]
        raise MalformedResponse(f"{what}: unexpected HTTP {status}: {detail}")

    def _saw_date(self, value: str | None) -> None:
        """Tell the clock what time the API says it is (a right clock without NTP is
        trusted this way; garbage is ignored)."""
        if value is None or self._clock is None:
            return
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return
        if when.tzinfo is not None:
            self._clock.observe(when)

    def _auth_error(self, status: int, what: str, detail: object) -> None:
        # Loud once per episode: an operator must fix the token; repeating it every tap
        # would drown the log.
        if not self._auth_failed:
            self._auth_failed = True
            log.error(
                "cobot_auth_failed",
                status=status,
                request=what,
                detail=str(detail)[:200],
                fix="check the access token and its scopes (checkin, checkin_tokens)",
            )

    def _auth_ok(self) -> None:
        if self._auth_failed:
            self._auth_failed = False
            log.info("cobot_auth_recovered")

    @property
    def auth_failed(self) -> bool:
        return self._auth_failed


async def _read_body(content: aiohttp.StreamReader) -> bytes:
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


def _seg(value: str) -> str:
    return quote(value, safe="")


def _json(raw: bytes, what: str, *, allow_empty: bool = False) -> Any:
    if len(raw) > MAX_BODY:
        raise MalformedResponse(f"{what}: answer larger than {MAX_BODY} bytes")
    if not raw.strip():
        if allow_empty:
            return None
        raise MalformedResponse(f"{what}: empty answer")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"{what}: not JSON: {raw[:60]!r}") from exc


def _json_or_text(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw[:200].decode(errors="replace")


__all__ = [
    "ApiError",
    "CheckInResult",
    "CobotClient",
    "MalformedResponse",
    "NoSlot",
    "NotFound",
    "RateLimited",
    "Refused",
    "Unauthorized",
    "Unavailable",
    "parse_retry_after",
]
