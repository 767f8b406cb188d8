"""Cobot API client (aiohttp): check-ins, check-outs and check-in tokens.

Every request carries ``Authorization: Bearer <token>``, goes through the shared rate
limiter, and has a deadline. Failures come back as the typed errors in ``errors.py``;
the caller decides what each means for a door or a queued check-in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp
import structlog

from gateway.clock import SystemClock
from gateway.cobot.answers import (
    AnswerLog,
    CheckInResult,
    Headers,
    answer_404,
    api_session,
    json_or_text,
    parse_retry_after,
    read_body,
    read_json,
)
from gateway.cobot.endpoints import ENDPOINTS, Endpoint
from gateway.cobot.errors import (
    MalformedResponse,
    NoSlot,
    NotFound,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
)
from gateway.cobot.headers import (
    http_date,
    missing_scope,
    retry_after,
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
from gateway.redact import redact_text, redact_url, remember

log = structlog.get_logger(__name__)

RequestObserver = Callable[[str, str, str, float], None]
"""(path template, rate-limit group, HTTP status or "error"/"timeout", seconds)."""

REQUEST_TIMEOUT = 10.0  # seconds; a request that takes longer is treated as unanswered


class CobotClient:
    def __init__(
        self,
        base_url: str,
        access_token: str,
        limiter: RateLimiter | None,
        *,
        timeout: float = REQUEST_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        quiet: bool = False,
        clock: SystemClock | None = None,
        observe: RequestObserver | None = None,
    ) -> None:
        """``limiter``: None sends without client-side pacing (a handful of one-off
        requests: doctor, login). ``quiet``: the caller reports failures itself, so auth
        failures and odd answers are logged at debug only. ``clock`` hears the API's
        ``Date`` (a right clock without NTP is trusted this way). ``observe`` hears of
        every request sent (metrics: path template, group, status or "error"/"timeout",
        seconds); it must be quick and must not raise."""
        self._observe = observe
        self._clock = clock
        self._base = base_url.rstrip("/")
        self._auth = f"Bearer {access_token}"
        remember(access_token, pin=True)
        # None: no client-side pacing, for a handful of one-off requests (doctor, login).
        self._limiter = limiter
        self._timeout = timeout
        self._session = session
        self._own_session = session is None
        self._answers = AnswerLog(quiet=quiet)

    @property
    def limiter(self) -> RateLimiter | None:
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
            self._session = api_session(8)
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
            remember(login)
        if password is not None:
            body["password"] = password
            remember(password)
        if token is not None:
            # With no login, "sending the token as login works, too"; we send ``token``.
            body["token"] = token
            remember(token)  # masked should an answer or an error quote it
        if not body:
            raise ValueError("check_in needs a token or a login")
        params = {"preview": "true"} if preview else None
        data = await self._request(
            ENDPOINTS["check_in"],
            {},
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
        remember(token or login)
        try:
            data = await self._request(
                ENDPOINTS["check_in_status"],
                {},
                params=params,
                priority=priority,
                deadline=deadline,
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
                ENDPOINTS["check_out"],
                {"id": membership_id},
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
            ENDPOINTS["create_work_session"],
            {"id": membership_id},
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
            ENDPOINTS["list_check_ins"],
            {"id": membership_id},
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
            ENDPOINTS["list_tokens"], {}, priority=priority, deadline=deadline
        )
        return parse_token_list(data)

    async def get_token(
        self, token: str, *, priority: Priority = Priority.SYNC, deadline: float | None = None
    ) -> TokenRecord | None:
        remember(token)
        try:
            data = await self._request(
                ENDPOINTS["get_token"], {"token": token}, priority=priority, deadline=deadline
            )
        except NotFound:
            return None
        return parse_token_list([data])[0]

    async def create_token(
        self,
        membership_id: str,
        token: str,
        *,
        priority: Priority = Priority.SYNC,
        deadline: float | None = None,
    ) -> TokenRecord:
        data = await self._request(
            ENDPOINTS["create_token"],
            {},
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
            ENDPOINTS["delete_token"],
            {"token": token},
            priority=priority,
            deadline=deadline,
            expect=(200, 204),
        )

    # --- plumbing --------------------------------------------------------------------

    async def _request(
        self,
        endpoint: Endpoint,
        values: Mapping[str, str],
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
        path = endpoint.path(**values)
        group = group_for(path)
        # What error messages and logs say about the request: never the token in a path.
        what = f"{endpoint.method} {redact_url(path)}"
        if (
            deadline is not None
            and self._limiter is not None
            and (wait := self._limiter.known_wait(group, priority)) > deadline
        ):
            # A Retry-After in force, or a full window: waiting would only end in NoSlot.
            raise NoSlot(f"{what}: no rate-limit slot within {deadline}s (next in {wait:.1f}s)")
        sent = False
        started = 0.0
        try:
            async with asyncio.timeout(deadline):
                if self._limiter is not None:
                    await self._limiter.acquire(group, priority)
                sent, started = True, time.monotonic()
                async with asyncio.timeout(self._timeout):
                    return await self._exchange(
                        endpoint, path, what, group, params, json_body, expect
                    )
        except TimeoutError:
            if not sent:
                raise NoSlot(f"{what}: no rate-limit slot within {deadline}s") from None
            self._observed(endpoint, group, "timeout", started)
            raise Unavailable(f"{what}: no answer in time", outcome_unknown=True) from None

    async def _exchange(
        self,
        endpoint: Endpoint,
        path: str,
        what: str,
        group: Group,
        params: Mapping[str, str] | None,
        json_body: Mapping[str, Any] | None,
        expect: tuple[int, ...],
    ) -> Any:
        started = time.monotonic()
        try:
            async with self._http().request(
                endpoint.method,
                self._base + path,
                params=params,
                json=json_body,
                headers={"Authorization": self._auth},
                allow_redirects=False,
            ) as resp:
                raw = await read_body(resp.content)
                status = resp.status
                headers = Headers(
                    retry_after=resp.headers.get("Retry-After"),
                    date=resp.headers.get("Date"),
                    www_authenticate=resp.headers.get("WWW-Authenticate"),
                )
                self._saw_date(headers.date)
        except aiohttp.ClientConnectorError as exc:
            self._observed(endpoint, group, "error", started)
            # Never connected: the request certainly did not reach Cobot.
            raise Unavailable(f"{what}: {redact_text(str(exc))}", outcome_unknown=False) from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            self._observed(endpoint, group, "error", started)
            # ValueError: aiohttp refusing a malformed status line or header it read.
            raise Unavailable(f"{what}: {redact_text(str(exc))}", outcome_unknown=True) from exc
        self._observed(endpoint, group, str(status), started)
        if status in expect:
            self._answers.auth_ok()
            return read_json(raw, what, allow_empty=status == 204)
        return self._fail(endpoint, what, group, status, raw, headers)

    def _fail(
        self,
        endpoint: Endpoint,
        what: str,
        group: Group,
        status: int,
        raw: bytes,
        headers: Headers,
    ) -> Any:
        if status == 422:
            self._answers.auth_ok()
            reason, errors = refusal_reason(json_or_text(raw))
            raise Refused(reason, errors)
        if status == 404:
            raise answer_404(endpoint.answers_404, what, raw)
        if status == 429:
            delay = retry_after(headers.retry_after, headers.date)
            if delay.problem is not None:
                self._answers.odd("retry_after", delay.problem, request=what, using_s=delay.seconds)
            if self._limiter is not None:
                self._limiter.block(group, delay.seconds)
            raise RateLimited(delay.seconds)
        if status in (401, 403):
            detail = json_or_text(raw)
            scope = missing_scope(headers.www_authenticate, detail) if status == 403 else None
            self._answers.auth_error(status, what, detail, endpoint.scope)
            raise Unauthorized(
                status, f"{what}: {redact_text(str(detail)[:200])}", scope=scope or None
            )
        if status >= 500:
            # The server got the request; a 5xx may still have done the work.
            raise Unavailable(f"{what}: HTTP {status}", outcome_unknown=True, status=status)
        detail = redact_text(str(json_or_text(raw))[:200])
        raise MalformedResponse(f"{what}: unexpected HTTP {status}: {detail}", status=status)

    def _observed(self, endpoint: Endpoint, group: Group, code: str, started: float) -> None:
        if self._observe is not None:
            self._observe(endpoint.template, group.value, code, time.monotonic() - started)

    def _saw_date(self, value: str | None) -> None:
        """Tell the clock what time the API says it is (garbage is ignored)."""
        when = http_date(value)
        if when is not None and self._clock is not None:
            self._clock.observe(when)

    @property
    def auth_failed(self) -> bool:
        return self._answers.auth_failed


__all__ = ["CheckInResult", "CobotClient", "NoSlot", "parse_retry_after"]
