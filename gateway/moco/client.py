"""MOCO presences client (aiohttp), moco-presences.txt.

Every request carries ``Authorization: Token token=KEY`` (the user's own key, or the
account key with ``X-IMPERSONATE-USER-ID``), goes through the shared rate limiter in its
own group (``Group.MOCO``), and has a deadline. Failures are the typed errors of
gateway/cobot/errors.py plus ``Locked`` (423). Keys are never logged.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from datetime import date, time
from time import monotonic
from typing import Any

import aiohttp
import structlog

from gateway.clock import SystemClock
from gateway.cobot.answers import MAX_BODY, api_session, parse_retry_after, read_json
from gateway.cobot.client import RequestObserver
from gateway.cobot.errors import (
    MalformedResponse,
    NoSlot,
    NotFound,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
)
from gateway.cobot.headers import http_date
from gateway.cobot.ratelimit import Group, Priority, RateLimiter
from gateway.moco.errors import Locked
from gateway.moco.keys import MocoKeys
from gateway.moco.model import Presence, fmt_time, parse_presence, parse_presences
from gateway.redact import redact_text

log = structlog.get_logger(__name__)

API = "/api/v1"
REQUEST_TIMEOUT = 10.0


class MocoClient:
    def __init__(
        self,
        base_url: str,
        keys: MocoKeys,
        limiter: RateLimiter,
        *,
        timeout: float = REQUEST_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        clock: SystemClock | None = None,
        observe: RequestObserver | None = None,
    ) -> None:
        """``observe`` hears of every request sent (metrics), as the Cobot client's."""
        self._observe = observe
        self._clock = clock  # told MOCO's Date: a right clock without NTP is trusted
        self._base = base_url.rstrip("/") + API
        self._keys = keys
        self._limiter = limiter
        self._timeout = timeout
        self._session = session
        self._own_session = session is None
        self.auth_failed: str | None = None  # the last 401/403, until a request succeeds

    async def __aenter__(self) -> MocoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    # --- the endpoints -------------------------------------------------------------

    async def touch(
        self, user_id: int, *, priority: Priority = Priority.LIVE, deadline: float | None = None
    ) -> Presence:
        """``POST /users/presences/touch``: opens a presence now, or closes the open one.
        Raises ``Locked`` on 423 (conflict with an existing presence)."""
        body = await self._request(
            "POST", "/users/presences/touch", user_id, priority=priority, deadline=deadline
        )
        return parse_presence(body, "touch")

    async def presences(
        self,
        user_id: int | None,
        start: date,
        end: date,
        *,
        priority: Priority = Priority.REPLAY,
    ) -> list[Presence]:
        """``GET /users/presences?from=&to=&user_id=``: the user's presences of the days
        (``user_id`` None: what the account key itself sees; the doctor's cheap read)."""
        params = {"from": start.isoformat(), "to": end.isoformat()}
        if user_id is not None:
            params["user_id"] = str(user_id)
        body = await self._request(
            "GET", "/users/presences", user_id, priority=priority, params=params
        )
        found = parse_presences(body)
        return found if user_id is None else [p for p in found if p.user_id in (None, user_id)]

    async def create(
        self,
        user_id: int,
        day: date,
        start: time,
        end: time | None,
        *,
        priority: Priority = Priority.REPLAY,
    ) -> Presence:
        """``POST /users/presences`` (for the user the key belongs to or impersonates)."""
        body: dict[str, str] = {"date": day.isoformat(), "from": fmt_time(start)}
        if end is not None:
            body["to"] = fmt_time(end)
        answer = await self._request(
            "POST",
            "/users/presences",
            user_id,
            priority=priority,
            json_body=body,
            expect=(200, 201),
        )
        return parse_presence(answer, "create")

    async def update(
        self, user_id: int, presence_id: int, end: time, *, priority: Priority = Priority.REPLAY
    ) -> Presence:
        """``PUT /users/presences/{id}`` with ``to``."""
        answer = await self._request(
            "PUT",
            f"/users/presences/{presence_id}",
            user_id,
            priority=priority,
            json_body={"to": fmt_time(end)},
        )
        return parse_presence(answer, "update")

    async def delete(
        self, user_id: int, presence_id: int, *, priority: Priority = Priority.REPLAY
    ) -> None:
        await self._request(
            "DELETE",
            f"/users/presences/{presence_id}",
            user_id,
            priority=priority,
            expect=(200, 204),
        )

    # --- plumbing --------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = api_session(4)
            self._own_session = True
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        user_id: int | None,
        *,
        priority: Priority,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> Any:
        """One request acting as ``user_id``. ``deadline`` bounds the slot wait and the
        exchange (a person at the reader); without it only the exchange is bounded."""
        key, impersonate = self._keys.credentials(user_id)
        headers = {"Authorization": f"Token token={key}"}
        if impersonate is not None:
            headers["X-IMPERSONATE-USER-ID"] = str(impersonate)
        sent = False
        started = 0.0
        try:
            async with asyncio.timeout(deadline):
                await self._limiter.acquire(Group.MOCO, priority)
                sent, started = True, monotonic()
                async with asyncio.timeout(self._timeout):
                    status, raw, retry_after = await self._exchange(
                        method, path, headers, params, json_body
                    )
        except TimeoutError:
            if not sent:
                raise NoSlot(f"MOCO {method} {path}: no rate-limit slot in time") from None
            self._observed(path, "timeout", started)
            raise Unavailable(
                f"MOCO {method} {path}: no answer in time", outcome_unknown=True
            ) from None
        except Unavailable:
            self._observed(path, "error", started)
            raise
        self._observed(path, str(status), started)
        return self._answer(f"MOCO {method} {path}", method, status, raw, retry_after, expect)

    async def _exchange(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        json_body: Mapping[str, Any] | None,
    ) -> tuple[int, bytes, str | None]:
        """One HTTP exchange: (status, body, Retry-After); Unavailable when none."""
        what = f"MOCO {method} {path}"
        try:
            async with self._http().request(
                method,
                self._base + path,
                params=params,
                json=json_body,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                raw = await resp.content.read(MAX_BODY + 1)
                self._saw_date(resp.headers.get("Date"))
                return resp.status, raw, resp.headers.get("Retry-After")
        except aiohttp.ClientConnectorError as exc:
            raise Unavailable(f"{what}: {exc}", outcome_unknown=False) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"{what}: {exc}", outcome_unknown=True) from exc

    def _answer(
        self,
        what: str,
        method: str,
        status: int,
        raw: bytes,
        retry_after: str | None,
        expect: tuple[int, ...],
    ) -> Any:
        if len(raw) > MAX_BODY:
            raise MalformedResponse(f"{what}: answer larger than {MAX_BODY} bytes")
        if status in expect:
            self.auth_failed = None
            if not raw.strip():
                if status == 204 or method == "DELETE":
                    return None
                raise MalformedResponse(f"{what}: empty answer")
            return read_json(raw, what)
        return self._fail(what, status, raw, retry_after)

    def _observed(self, path: str, code: str, started: float) -> None:
        """Metrics hear of it by path template (a presence id is not a label)."""
        if self._observe is not None:
            template = API + _PRESENCE_ID.sub("/:id", path)
            self._observe(template, Group.MOCO.value, code, monotonic() - started)

    def _saw_date(self, value: str | None) -> None:
        """MOCO's ``Date``: a right clock without NTP is trusted this way."""
        when = http_date(value)
        if when is not None and self._clock is not None:
            self._clock.observe(when)

    def _fail(self, what: str, status: int, raw: bytes, retry_after: str | None) -> Any:
        detail = _detail(raw)
        if status == 423:
            raise Locked(detail)
        if status == 422:
            raise Refused(detail)
        if status == 404:
            raise NotFound(f"{what}: not found")
        if status == 429:
            seconds = parse_retry_after(retry_after)
            self._limiter.block(Group.MOCO, seconds)
            raise RateLimited(seconds)
        if status in (401, 403):
            if self.auth_failed is None:
                log.error(
                    "moco_auth_failed",
                    status=status,
                    request=what,
                    detail=detail,
                    fix="check the MOCO API key (and that the account key may impersonate)",
                )
            self.auth_failed = f"HTTP {status}: {detail}"
            raise Unauthorized(status, f"{what}: {detail}")
        if status >= 500:
            raise Unavailable(f"{what}: HTTP {status}", outcome_unknown=True, status=status)
        raise MalformedResponse(f"{what}: unexpected HTTP {status}: {detail}")


_PRESENCE_ID = re.compile(r"/\d+(?=/|$)")


def _detail(raw: bytes) -> str:
    """The server's message in a few words (MOCO answers {"message": ...} or text)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return redact_text(raw[:200].decode(errors="replace").strip())
    if isinstance(body, dict):
        for key in ("message", "error", "errors"):
            if key in body:
                return redact_text(str(body[key])[:200])
    return redact_text(str(body)[:200])
