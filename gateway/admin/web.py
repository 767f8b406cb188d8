"""The admin page's HTTP side (aiohttp): sign-in, the pages, the event stream.

Every path but ``/login`` (and routes added with ``public=True``, e.g. ``/metrics``)
needs a signed-in session: pages redirect to ``/login``, the event stream and other
requests get 401. Every POST needs a CSRF token signed for the session (for ``/login``:
for a pre-session cookie), on top of ``SameSite=Strict``. Failed logins are throttled
per client address (``gateway.portal.throttle``). Every answer carries the portal's
security headers (``gateway.portal.guard.SECURITY_HEADERS``) and the page's own CSP.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date
from typing import Any

import structlog
from aiohttp import web

from gateway.admin import pages
from gateway.admin.accesslog import Query
from gateway.admin.feed import TapEvent, TooManyStreams
from gateway.admin.sessions import COOKIE, Sessions
from gateway.errors import DoorError, GatewayError
from gateway.portal.csrf import CsrfGuard, new_session, valid_session
from gateway.portal.guard import SECURITY_HEADERS
from gateway.portal.i18n import Lang, negotiate, parse_lang
from gateway.portal.throttle import Throttle, keys_for
from gateway.redact import redact

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PRE_COOKIE = "admin_pre"  # the login form's CSRF session, before a login
LANG_COOKIE = "admin_lang"
MAX_BODY = 8192  # bytes of a form
STATUS_INTERVAL = 5.0  # seconds between status events (and the stream's keep-alive)
DOOR_DEADLINE = 10.0  # seconds a test opening may take
OPERATOR = "admin page"  # who dropped an entry, as `queue list --all` shows it
_PUBLIC = frozenset({"/login"})


@dataclass(frozen=True, slots=True)
class ExtraRoute:
    """A route another part adds to the admin listener (e.g. Prometheus ``/metrics``).
    ``public``: reachable without a session (only for answers with no secret in them)."""

    method: str
    path: str
    handler: Handler
    public: bool = False


@dataclass(slots=True)
class AdminState:
    backend: Any  # gateway.admin.service.AdminBackend
    sessions: Sessions
    csrf: CsrfGuard
    throttle: Throttle
    language: str
    public: frozenset[str]
    nav: tuple[tuple[str, str], ...] = pages.NAV


STATE = web.AppKey("admin_state", AdminState)


def make_app(
    state: AdminState,
    extra: list[ExtraRoute],
    more: Callable[[web.UrlDispatcher], None] | None = None,
) -> web.Application:
    public = set(_PUBLIC) | {r.path for r in extra if r.public}
    state.public = frozenset(public)
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_guard])
    app[STATE] = state
    r = app.router
    r.add_get("/login", _login_form)
    r.add_post("/login", _login)
    r.add_post("/logout", _logout)
    r.add_get("/", _now)
    r.add_get("/events", _events)
    r.add_get("/readers", _readers)
    r.add_post("/doors/{name}/test", _test_door)
    r.add_get("/queue", _queue)
    r.add_post("/queue/{id:[0-9]{1,18}}/{op:retry|drop}", _queue_op)
    r.add_get("/log", _log)
    r.add_get("/log.csv", _log_csv)
    r.add_get("/rooms", _rooms)
    if more is not None:
        more(r)  # pages built on this module's helpers (enrol_web.py)
    for route in extra:
        r.add_route(route.method, route.path, route.handler)
    return app


# --- the middleware --------------------------------------------------------------


def _headers(response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", pages.CONTENT_SECURITY_POLICY)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        response = await _checked(request, handler, state)
    except web.HTTPException as exc:
        if exc.status < 400:
            _headers(exc)
            raise
        response = html_page(
            request, pages.notice_page(lang_of(request), _error_key(exc.status), None), exc.status
        )
    except GatewayError as exc:
        log.warning("admin_request_unavailable", path=request.path[:100], error=str(exc))
        response = html_page(request, pages.notice_page(lang_of(request), "unavailable", None), 503)
    except Exception:  # a bug: the page must never take the gateway down
        log.exception("admin_request_failed", path=request.path[:100])
        response = html_page(
            request, pages.notice_page(lang_of(request), "internal_error", None), 500
        )
    if not response.prepared:
        _headers(response)
    return response


def _error_key(status: int) -> str:
    return {404: "not_found", 405: "bad_request", 413: "bad_request"}.get(
        status, "bad_request" if status < 500 else "internal_error"
    )


async def _checked(request: web.Request, handler: Handler, state: AdminState) -> web.StreamResponse:
    pages.SHOWN_NAV.set(state.nav)  # this request's task only
    if request.path in state.public:
        return await handler(request)
    if not state.sessions.touch(request.cookies.get(COOKIE)):
        if request.method == "GET" and request.path != "/events":
            raise web.HTTPSeeOther("/login")
        return web.Response(status=401, text="sign in first\n")
    if request.method == "POST":
        form = await request.post()
        if not state.csrf.check(request.cookies.get(COOKIE), form_field(form, "csrf")):
            return html_page(
                request, pages.notice_page(lang_of(request), "csrf", csrf_for(request)), 403
            )
    return await handler(request)


def form_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def lang_of(request: web.Request) -> Lang:
    state = request.app[STATE]
    for choice in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        lang = parse_lang(choice)
        if lang is not None:
            return lang
    if state.language != "auto":
        return Lang(state.language)
    return negotiate(request.headers.get("Accept-Language"))


def html_page(request: web.Request, body: bytes, status: int = 200) -> web.Response:
    response = web.Response(body=body, status=status, content_type="text/html", charset="utf-8")
    chosen = parse_lang(request.query.get("lang"))
    if chosen is not None:
        response.set_cookie(
            LANG_COOKIE, chosen.value, httponly=True, samesite="Strict", max_age=365 * 86_400
        )
    _headers(response)
    return response


def csrf_for(request: web.Request) -> str:
    return str(request.app[STATE].csrf.issue(request.cookies.get(COOKIE, "")))


def _session_cookie(
    response: web.StreamResponse, name: str, value: str, request: web.Request
) -> None:
    response.set_cookie(
        name, value, httponly=True, samesite="Strict", path="/", secure=request.secure
    )


# --- sign-in -------------------------------------------------------------------------


async def _login_form(
    request: web.Request, note: str | None = None, status: int = 200
) -> web.StreamResponse:
    state = request.app[STATE]
    if state.sessions.touch(request.cookies.get(COOKIE)):
        raise web.HTTPSeeOther("/")
    pre = request.cookies.get(PRE_COOKIE)
    if not valid_session(pre):
        pre = new_session()
    assert pre is not None
    response = html_page(
        request, pages.login_page(lang_of(request), state.csrf.issue(pre), note), status
    )
    _session_cookie(response, PRE_COOKIE, pre, request)
    return response


async def _login(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    lang = lang_of(request)
    form = await request.post()
    if not state.csrf.check(request.cookies.get(PRE_COOKIE), form_field(form, "csrf")):
        return await _login_form(request, pages.t(lang, "expired"), 403)
    keys = keys_for(mac=None, ip=request.remote, login="admin")
    wait = state.throttle.retry_after(keys)
    if wait > 0:
        response = await _login_form(
            request, pages.t(lang, "throttled", seconds=math.ceil(wait)), 429
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    password = form_field(form, "password") or ""
    if not password or len(password) > 1024 or not await state.backend.verify(password):
        state.throttle.failed(keys)
        log.warning("admin_login_failed", remote=request.remote)
        return await _login_form(request, pages.t(lang, "wrong_password"), 403)
    state.throttle.clear(keys[-1:])  # the login's key; the address keeps counting
    session = state.sessions.create()
    log.info("admin_login", remote=request.remote)
    response = web.HTTPSeeOther("/")
    _session_cookie(response, COOKIE, session, request)
    response.del_cookie(PRE_COOKIE, path="/")
    raise response


async def _logout(request: web.Request) -> web.StreamResponse:
    request.app[STATE].sessions.end(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# --- pages -----------------------------------------------------------------------------


async def _now(request: web.Request) -> web.StreamResponse:
    backend = request.app[STATE].backend
    taps = [ev.as_dict() for ev in backend.feed.recent]
    body = pages.now_page(lang_of(request), csrf_for(request), backend.status(), taps)
    return html_page(request, body)


def _status_event(lang: Lang, status: dict[str, Any], staff: str | None) -> dict[str, Any]:
    text, online = pages.api_state(lang, status)
    event = {"api": text, "online": online, "queue_depth": status.get("queue_depth", 0)}
    if staff is not None:
        event["staff"] = staff  # the Staff page reloads when it changes
    return event


async def _events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``tap`` for each decision, ``status`` every few seconds (which
    also keeps proxies from closing an idle stream). Ends when the session does."""
    state = request.app[STATE]
    session = request.cookies.get(COOKIE)
    lang = lang_of(request)
    try:
        queue = state.backend.feed.subscribe()
    except TooManyStreams:
        return web.Response(status=503, text="too many open pages\n", headers={"Retry-After": "30"})
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    _headers(response)
    try:
        await response.prepare(request)
        await _send(
            response,
            "status",
            _status_event(lang, state.backend.status(), state.backend.staff_version()),
        )
        while state.sessions.touch(session, use=False):
            try:
                async with asyncio.timeout(STATUS_INTERVAL):
                    event = await queue.get()
            except TimeoutError:
                await _send(
                    response,
                    "status",
                    _status_event(lang, state.backend.status(), state.backend.staff_version()),
                )
                continue
            if event is None:  # the page is stopping
                break
            await _send(
                response, "tap" if isinstance(event, TapEvent) else "enrol", event.as_dict()
            )
    except (ConnectionResetError, ConnectionError):
        pass  # the page was closed
    finally:
        state.backend.feed.unsubscribe(queue)
    return response


async def _send(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
    payload = json.dumps(data, separators=(",", ":"))
    await response.write(f"event: {name}\ndata: {payload}\n\n".encode())


async def _readers(
    request: web.Request, note: str | None = None, error: bool = False
) -> web.StreamResponse:
    backend = request.app[STATE].backend
    body = pages.readers_page(
        lang_of(request), csrf_for(request), backend.status(), sorted(backend.doors), note, error
    )
    return html_page(request, body)


async def _test_door(request: web.Request) -> web.StreamResponse:
    backend = request.app[STATE].backend
    lang = lang_of(request)
    name = request.match_info["name"]
    door = backend.doors.get(name)
    if door is None:
        return html_page(request, pages.notice_page(lang, "no_such_door", csrf_for(request)), 404)
    form = await request.post()
    if form_field(form, "confirm") != "yes":
        return html_page(request, pages.confirm_door_page(lang, csrf_for(request), name))
    try:
        async with asyncio.timeout(DOOR_DEADLINE):
            await door.open()
    except (DoorError, TimeoutError) as exc:
        log.error("admin_door_test_failed", door=name, error=str(exc) or "timeout")
        return await _readers(
            request, pages.t(lang, "door_failed", door=name, error=str(exc) or "timeout"), True
        )
    log.info("admin_door_test", door=name, remote=request.remote)
    return await _readers(request, pages.t(lang, "door_opened", door=name))


async def _queue(
    request: web.Request, note: str | None = None, error: bool = False
) -> web.StreamResponse:
    from gateway.ops.queue import entry_notes

    backend = request.app[STATE].backend
    show_all = request.query.get("all") == "1"
    entries = await backend.outbox.list(include_done=show_all, limit=200)
    notes = await entry_notes(backend.db, entries)
    shown = [
        {
            "id": str(en.id),
            "state": en.state.value,
            "kind": en.kind.value,
            "tapped_at": en.tapped_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "attempts": str(en.attempts),
            "member": en.membership_id or "-",
            "token": redact(en.token),
            "note": notes.get(en.id, ""),
        }
        for en in reversed(entries)
    ]
    body = pages.queue_page(
        lang_of(request), csrf_for(request), shown, show_all=show_all, note=note, error=error
    )
    return html_page(request, body)


async def _queue_op(request: web.Request) -> web.StreamResponse:
    backend = request.app[STATE].backend
    lang = lang_of(request)
    entry_id, op = int(request.match_info["id"]), request.match_info["op"]
    if op == "retry":
        done = await backend.outbox.retry(entry_id)
        if done:
            backend.wake_delivery()
    else:
        done = await backend.outbox.mark_dropped(entry_id, OPERATOR)
    log.info("admin_queue", op=op, entry=entry_id, done=done, remote=request.remote)
    if not done:
        return await _queue(request, pages.t(lang, "not_open", id=entry_id), True)
    return await _queue(
        request, pages.t(lang, "retried" if op == "retry" else "dropped", id=entry_id)
    )


def _query(request: web.Request) -> tuple[Query, str]:
    text = request.query.get("q", "").strip()[:100]
    reader = request.query.get("reader", "").strip()[:100]
    day_text = request.query.get("day", "").strip()[:10]
    day = None
    if day_text:
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            raise web.HTTPBadRequest from None
    return Query(text=text, reader=reader, day=day), day_text


async def _log(request: web.Request) -> web.StreamResponse:
    backend = request.app[STATE].backend
    query, day_text = _query(request)
    rows = await backend.access_log.search(query)
    csv_href = "/log.csv?" + request.query_string if request.query_string else "/log.csv"
    body = pages.log_page(
        lang_of(request),
        csrf_for(request),
        rows,
        text=query.text,
        reader=query.reader,
        day=day_text,
        readers=await backend.access_log.readers(),
        days=backend.access_log_days,
        csv_href=csv_href,
    )
    return html_page(request, body)


async def _log_csv(request: web.Request) -> web.StreamResponse:
    query, day_text = _query(request)
    text = await request.app[STATE].backend.access_log.csv(query)
    name = f"access-log-{day_text or 'all'}.csv"
    response = web.Response(text=text, content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


async def _rooms(request: web.Request) -> web.StreamResponse:
    backend = request.app[STATE].backend
    rooms = backend.status().get("rooms") or {}
    return html_page(request, pages.rooms_page(lang_of(request), csrf_for(request), rooms))
