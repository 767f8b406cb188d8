"""The simulated endpoints, declared as data: method, path template, required scope and
whether only admins may call it. Handlers only translate HTTP into ``SimSpace`` calls.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl

from aiohttp import web

from gateway.sim.model import BadRequest, Scope, SimAccessToken, SimRefusal
from gateway.sim.space import SimSpace
from gateway.sim.timefmt import parse_time
from gateway.sim.wire import check_in as wire_check_in
from gateway.sim.wire import check_in_answer, check_ins
from gateway.sim.wire import token as wire_token

MAX_BODY = 64 * 1024  # no legitimate request comes near this


@dataclass(frozen=True, slots=True)
class Call:
    space: SimSpace
    access: SimAccessToken
    request: web.Request


Handler = Callable[[Call], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str  # in the docs' notation: "/api/check_ins/:id"
    handler: Handler
    scope: Scope
    admin_only: bool
    # The rate-limit window it counts in when not its own template's (booking writes).
    limit_key: str | None = None


class UnsupportedMediaType(SimRefusal):
    status = 415

    def __init__(self, content_type: str) -> None:
        super().__init__({"error": f"unsupported content type {content_type!r}"})


def ok(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


# --- request parsing ---------------------------------------------------------------


async def body_bytes(request: web.Request) -> bytes:
    """The request body, empty for none or only whitespace; 400 beyond ``MAX_BODY``."""
    if not request.body_exists:
        return b""
    raw = await request.content.read(MAX_BODY + 1)
    while len(raw) <= MAX_BODY and (more := await request.content.read(MAX_BODY + 1 - len(raw))):
        raw += more  # read(n) returns what has arrived so far
    if len(raw) > MAX_BODY:
        raise BadRequest("request body too large")
    return raw if raw.strip() else b""


async def params(request: web.Request) -> dict[str, str]:
    """The body's parameters: JSON or form-encoded, as the General page allows.

    Strict: malformed JSON, a non-object, or a non-string value is 400 (Rails would
    often coerce; a client relying on that would break elsewhere), another content
    type 415. An empty body is no parameters.
    """
    raw = await body_bytes(request)
    if not raw:
        return {}
    ctype = request.content_type
    if ctype == "application/json":
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("malformed JSON body") from None
        if not isinstance(data, dict):
            raise BadRequest("the JSON body must be an object")
        bad = [k for k, v in data.items() if not isinstance(v, str)]
        if bad:
            raise BadRequest(f"parameters must be strings: {', '.join(sorted(bad))}")
        return data
    if ctype == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("malformed form body") from None
        return dict(pairs)
    raise UnsupportedMediaType(ctype)


def query_time(call: Call, key: str) -> datetime:
    """A required time in the query. Missing or unreadable is 400, not 422: the request
    itself is malformed (the docs mark from/to "required"); nothing was validated."""
    value = call.request.query.get(key)
    if value is None:
        raise BadRequest(f"{key} is required")
    parsed = parse_time(value, call.space.zone)
    if parsed is None:
        raise BadRequest(f"{key}: unreadable time {value[:40]!r}")
    return parsed


def opt(data: dict[str, str], key: str) -> str | None:
    value = data.get(key)
    return value if value else None


# --- handlers ----------------------------------------------------------------------


async def post_check_ins(call: Call) -> web.Response:
    data = await params(call.request)
    # Only the documented query parameter ``preview=true`` previews; "1", "yes" or a
    # body field would check the member in for real at Cobot, so they do here too.
    preview = call.request.query.get("preview") == "true"
    answer = call.space.check_in(
        call.access,
        login=opt(data, "login"),
        password=data.get("password"),
        token=opt(data, "token"),
        preview=preview,
    )
    return ok(check_in_answer(call.space, answer), answer.status)


async def get_check_in_status(call: Call) -> web.Response:
    query = call.request.query
    found = call.space.check_in_status(login=query.get("login"), token=query.get("token"))
    return ok(wire_check_in(call.space, found))


async def get_check_in(call: Call) -> web.Response:
    found = call.space.get_check_in(call.request.match_info["id"])
    return ok(wire_check_in(call.space, found))


async def get_todays_check_ins(call: Call) -> web.Response:
    return ok(check_ins(call.space, call.space.todays_check_ins()))


async def get_work_sessions(call: Call) -> web.Response:
    start, end = query_time(call, "from"), query_time(call, "to")
    return ok(check_ins(call.space, call.space.work_sessions(call.access, start, end)))


async def get_membership_check_ins(call: Call) -> web.Response:
    start, end = query_time(call, "from"), query_time(call, "to")
    found = call.space.membership_check_ins(call.request.match_info["id"], start, end)
    return ok(check_ins(call.space, found))


async def post_work_session(call: Call) -> web.Response:
    data = await params(call.request)
    raw = opt(data, "valid_from")
    valid_from = None
    if raw is not None:
        valid_from = parse_time(raw, call.space.zone)
        if valid_from is None:
            raise BadRequest(f"valid_from: unreadable time {raw[:40]!r}")
    created = call.space.create_work_session(call.access, call.request.match_info["id"], valid_from)
    return ok(wire_check_in(call.space, created), 201)


async def delete_current_check_in(call: Call) -> web.Response:
    ended = call.space.check_out(call.access, call.request.match_info["id"])
    return ok(wire_check_in(call.space, ended))


async def get_tokens(call: Call) -> web.Response:
    return ok([wire_token(t, m) for t, m in call.space.list_tokens()])


async def post_token(call: Call) -> web.Response:
    data = await params(call.request)
    token = data.get("token", "")
    member = call.space.create_token(data.get("membership_id", ""), token)
    return ok(wire_token(token, member), 201)


async def get_token(call: Call) -> web.Response:
    token = call.request.match_info["token"]
    return ok(wire_token(token, call.space.get_token(token)))


async def delete_token(call: Call) -> web.Response:
    call.space.delete_token(call.request.match_info["token"])
    return web.Response(status=204)


def _r(method: str, template: str, handler: Handler, scope: Scope, *, admin: bool) -> Route:
    return Route(method, template, handler, scope, admin)


# Who may call what, from the check-in page. GET /api/memberships/:id/check_ins is also
# open to team members with scope "team"; teams are not simulated, so it is admin-only.
ROUTES: tuple[Route, ...] = (
    _r("POST", "/api/check_ins", post_check_ins, Scope.CHECKIN, admin=False),
    _r("GET", "/api/check_ins", get_todays_check_ins, Scope.READ_CHECK_INS, admin=False),
    _r("GET", "/api/check_ins/:id", get_check_in, Scope.CHECKIN, admin=True),
    _r("GET", "/api/check_in", get_check_in_status, Scope.CHECKIN, admin=True),
    _r("GET", "/api/work_sessions", get_work_sessions, Scope.READ_CHECK_INS, admin=False),
    _r(
        "GET",
        "/api/memberships/:id/check_ins",
        get_membership_check_ins,
        Scope.READ_CHECK_INS,
        admin=True,
    ),
    _r("POST", "/api/memberships/:id/work_sessions", post_work_session, Scope.WRITE, admin=False),
    _r(
        "DELETE",
        "/api/memberships/:id/check_ins/current",
        delete_current_check_in,
        Scope.CHECKIN,
        admin=False,
    ),
    _r("GET", "/api/check_in_tokens", get_tokens, Scope.CHECKIN_TOKENS, admin=True),
    _r("POST", "/api/check_in_tokens", post_token, Scope.CHECKIN_TOKENS, admin=True),
    _r("GET", "/api/check_in_tokens/:token", get_token, Scope.CHECKIN_TOKENS, admin=True),
    _r("DELETE", "/api/check_in_tokens/:token", delete_token, Scope.CHECKIN_TOKENS, admin=True),
)


def refusal_response(refusal: SimRefusal) -> web.Response:
    return ok(refusal.body, refusal.status)


__all__ = ["ROUTES", "Call", "Route", "ok", "refusal_response"]
