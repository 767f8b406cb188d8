"""The simulated MOCO server over real HTTP: ``make_moco_app(space)``, ``run_moco_sim``.

Per request, in order: a fault in front of MOCO (``faults.commit`` False), the key
(401) and impersonation (403), the rate limit (429 with Retry-After; one window per
key), the JSON body (415/422), the handler (404/422/423 or success), a fault after the
work was done (``faults.commit`` True). Every request lands in ``space.requests``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from gateway.moco_sim.space import TEMPLATE, MocoSpace, Record, SimError
from gateway.sim.faults import FaultMode
from gateway.sim.server import Dropped, apply_fault  # the Cobot sim's faults

SPACE = web.AppKey("moco_space", MocoSpace)
STOPPING = web.AppKey("moco_stopping", asyncio.Event)
PREFIX = "/api/v1/users/presences"

Handler = Callable[[MocoSpace, Any, web.Request, dict[str, Any]], Any]


def make_moco_app(space: MocoSpace) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SPACE] = space
    app[STOPPING] = asyncio.Event()
    routes: list[tuple[str, str, Handler, bool]] = [
        ("GET", PREFIX, lambda s, c, r, b: s.list(c, dict(r.query)), False),
        ("POST", PREFIX, lambda s, c, r, b: s.create(c, b), True),
        ("POST", PREFIX + "/touch", lambda s, c, r, b: s.touch(c, b), False),
        ("GET", PREFIX + "/{id:\\d+}", lambda s, c, r, b: s.get(c, _id(r)), False),
        ("PUT", PREFIX + "/{id:\\d+}", lambda s, c, r, b: s.update(c, _id(r), b), True),
        ("DELETE", PREFIX + "/{id:\\d+}", lambda s, c, r, b: s.delete(c, _id(r)), False),
    ]
    for method, path, handler, needs_body in routes:
        app.router.add_route(method, path, _endpoint(handler, needs_body=needs_body))
    return app


@asynccontextmanager
async def run_moco_sim(
    space: MocoSpace, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``space`` on real TCP; yields the base URL (the API is under /api/v1)."""
    app = make_moco_app(space)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        app[STOPPING].set()
        await runner.cleanup()


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


def _endpoint(
    handler: Handler, *, needs_body: bool
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        space = request.app[SPACE]
        record = Record(request.method, request.path, None, None, False, time.monotonic())
        space.requests.append(record)
        template = (
            request.match_info.route.resource.canonical
            if request.match_info.route.resource
            else request.path
        )
        methods = space.fault_methods
        fault = (
            space.faults.take(request.path, template)
            if methods is None or request.method in methods
            else None
        )
        if fault is not None and not space.faults.commit:
            early = await _fault(request, space, fault, template)
            if early is not None:
                record.status = early.status
                return early
        response = await _serve(request, space, handler, record, needs_body=needs_body)
        if fault is not None and space.faults.commit:
            late = await _fault(request, space, fault, template)
            if late is not None:
                response = late
        record.status = response.status
        return response

    return endpoint


async def _serve(
    request: web.Request, space: MocoSpace, handler: Handler, record: Record, *, needs_body: bool
) -> web.Response:
    try:
        caller = space.authenticate(
            request.headers.get("Authorization", ""),
            request.headers.get("X-IMPERSONATE-USER-ID"),
        )
        record.user_id = caller.user_id
        record.impersonated = "X-IMPERSONATE-USER-ID" in request.headers
        decision = space.rate_limit.hit(caller.key, TEMPLATE)
        if not decision.allowed:
            response = _json({"message": "Too Many Requests"}, 429)
            response.headers["Retry-After"] = str(decision.retry_after)
            record.retry_after = decision.retry_after
            return response
        body = await _body(request, needs_body=needs_body)
        result = handler(space, caller, request, body)
    except SimError as exc:
        return _json({"message": exc.message}, exc.status)
    if result is None:
        return web.Response(status=204)
    return _json(result, 200)


async def _body(request: web.Request, *, needs_body: bool) -> dict[str, Any]:
    """The JSON object sent; POST and PUT of a presence must send one (strict: 415
    without ``Content-Type: application/json``, as the page's examples send it)."""
    if not request.can_read_body:
        if needs_body:
            raise SimError(422, "a JSON body is required")
        return {}
    if needs_body and request.content_type != "application/json":
        raise SimError(415, "Content-Type must be application/json")
    try:
        parsed = json.loads(await request.read() or b"{}")
    except ValueError:
        raise SimError(400, "body is not JSON") from None
    if not isinstance(parsed, dict):
        raise SimError(422, "body must be a JSON object")
    return parsed


async def _fault(
    request: web.Request, space: MocoSpace, fault: FaultMode, template: str
) -> web.Response | None:
    """The Cobot sim's fault behaviour; a request dropped at stop closes unanswered."""
    try:
        return await apply_fault(space.faults, fault, request.app[STOPPING], request.path, template)
    except Dropped:
        raise asyncio.CancelledError from None


def _json(body: object, status: int) -> web.Response:
    return web.json_response(body, status=status)
