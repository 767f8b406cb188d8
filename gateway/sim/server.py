"""The simulated Cobot server over real HTTP: ``make_app(space)`` and ``run_sim``.

Per routed request, in order: the ``on_request`` hook, a fault placed in front of
Cobot (``faults.commit`` False), the bearer token (401), the rate limit (429), the
route's role and scope (403), the handler (400/404/415/422 or success), a fault after
the work was done (``faults.commit`` True). Every request, routed or not, lands in
``space.requests`` with the status it got (None when dropped unanswered).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from aiohttp import web

from gateway.sim.booking_routes import BOOKING_ROUTES
from gateway.sim.faults import GARBAGE_BODY, FaultMode, Faults, SimRequest
from gateway.sim.model import Role, SimRefusal
from gateway.sim.oauth import add_oauth_routes
from gateway.sim.routes import ROUTES, Call, Route, ok, refusal_response
from gateway.sim.space import RequestRecord, SimSpace

log = structlog.get_logger(__name__)

SPACE = web.AppKey("sim_space", SimSpace)
STOPPING = web.AppKey("sim_stopping", asyncio.Event)
# Backstop for stopping: in-flight requests get this long before they are cancelled
# (hung ones are woken and dropped at once; see _wait_fault).
SHUTDOWN_TIMEOUT = 1.0


@dataclass(slots=True)
class _Exchange:
    """What the request log needs to know about one request, filled in as it goes."""

    arrived: float
    template: str | None = None
    user: str | None = None


EXCHANGE = web.RequestKey("sim_exchange", _Exchange)


class Dropped(Exception):
    """The server is stopping under a hung request: close without answering."""


def make_app(space: SimSpace) -> web.Application:
    app = web.Application(middlewares=[_record], client_max_size=1024 * 1024)
    app[SPACE] = space
    app[STOPPING] = asyncio.Event()
    add_oauth_routes(app, space)
    for route in (*ROUTES, *BOOKING_ROUTES):
        path = re.sub(r":(\w+)", r"{\1}", route.template)
        endpoint = _endpoint(route)
        # The docs write some paths with a trailing slash ("/check_ins/?from="): both
        # forms are the same endpoint and share its rate-limit window.
        app.router.add_route(route.method, path, endpoint)
        app.router.add_route(route.method, path + "/", endpoint)
    return app


@asynccontextmanager
async def run_sim(space: SimSpace, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``space`` on real TCP; yields the base URL (``http://127.0.0.1:PORT``)."""
    app = make_app(space)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        url = f"http://{shown}:{bound[1]}"
        log.debug("sim_started", url=url)
        yield url
    finally:
        app[STOPPING].set()
        await runner.cleanup()


# --- the request pipeline -------------------------------------------------------------


@web.middleware
async def _record(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    space = request.app[SPACE]
    exchange = _Exchange(arrived=space.monotonic())
    request[EXCHANGE] = exchange
    status: int | None = None
    try:
        try:
            response = await handler(request)
        except ConnectionResetError:
            # The client gave up on a hung request and left: nobody to answer, and
            # nothing worth a traceback in the log.
            raise asyncio.CancelledError from None
        except Dropped:
            space.faults.dropped += 1
            # aiohttp treats a handler's CancelledError as a vanished client: it closes
            # the connection without writing anything, which is the point.
            raise asyncio.CancelledError from None
        except web.HTTPException as exc:
            # Routing's own 404/405 (our endpoints answer JSON themselves).
            response = ok({"error": exc.reason}, exc.status)
            if exc.status == 405:
                response.headers["Allow"] = exc.headers.get("Allow", "")
        status = response.status
        return response
    finally:
        space.requests.append(
            RequestRecord(
                exchange.arrived,
                request.method,
                request.path,
                exchange.template,
                status,
                exchange.user,
            )
        )
        log.debug("sim_request", method=request.method, template=exchange.template, status=status)


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        space = request.app[SPACE]
        request[EXCHANGE].template = route.template
        faults = space.faults
        access = space.authenticate(_bearer(request))
        if access is not None:
            request[EXCHANGE].user = access.label
        await faults.call_hook(
            SimRequest(
                request.method,
                request.path,
                route.template,
                dict(request.query),
                access.label if access else None,
            )
        )
        fault = faults.take(request.path, route.template)
        if fault is not None and not faults.commit:
            early = await apply_fault(
                faults, fault, request.app[STOPPING], request.path, route.template
            )
            if early is not None:
                return early
        response = await _serve(request, route, space)
        if fault is not None and faults.commit:
            late = await apply_fault(
                faults, fault, request.app[STOPPING], request.path, route.template
            )
            if late is not None:
                return late
        return response

    endpoint.__name__ = f"sim_{route.method.lower()}_{route.template}"
    return endpoint


async def _serve(request: web.Request, route: Route, space: SimSpace) -> web.Response:
    access = space.authenticate(_bearer(request))
    if access is None:
        response = ok(
            {"error": "invalid_token", "error_description": "missing or unknown access token"},
            401,
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="cobot", error="invalid_token"'
        return response
    request[EXCHANGE].user = access.label
    # Counted before the role/scope check: a forbidden request is still a request.
    decision = space.rate_limit.hit(access.token, route.limit_key or route.template)
    if not decision.allowed:
        response = ok({"error": "Rate limit exceeded.", "retry_after": decision.retry_after}, 429)
        response.headers["Retry-After"] = str(decision.retry_after)
        return response
    if route.admin_only and access.role is not Role.ADMIN:
        return ok({"error": "forbidden", "error_description": "space admins only"}, 403)
    if route.scope not in access.scopes:
        body = {"error": "insufficient_scope", "scope": route.scope.value}
        response = ok(body, 403)
        response.headers["WWW-Authenticate"] = (
            f'Bearer realm="cobot", error="insufficient_scope", scope="{route.scope.value}"'
        )
        return response
    try:
        return await route.handler(Call(space, access, request))
    except SimRefusal as refusal:
        return refusal_response(refusal)


async def apply_fault(
    faults: Faults, fault: FaultMode, stopping: asyncio.Event, path: str, template: str
) -> web.Response | None:
    """The fault's answer, or None once a hang/slow fault has waited it out; ``Dropped``
    when the server stops meanwhile. Shared with the simulated MOCO (moco_sim)."""
    if fault == "garbage":
        return web.Response(status=200, body=GARBAGE_BODY, content_type="text/html")
    if fault == "error":
        return web.Response(status=faults.status, text="Service Unavailable\n")
    if fault == "slow":
        await _until(stopping, asyncio.sleep(faults.delay))
    else:
        while faults.hanging(path, template) and not stopping.is_set():
            await _until(stopping, faults.changed())
    if stopping.is_set():
        raise Dropped
    return None


async def _until(stopping: asyncio.Event, work: Awaitable[None]) -> None:
    """Await ``work``, or stop early when the server is stopping."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stop):
            t.cancel()
        await asyncio.gather(task, stop, return_exceptions=True)


def _bearer(request: web.Request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
