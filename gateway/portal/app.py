"""The portal's HTTP side (aiohttp): the sign-in page, the probes, the captive API.

Every request from the LAN lands here: the portal's own pages when addressed to the
portal, and any other plain-HTTP request a captive device makes (redirected by the
firewall). Those get a redirect to the portal, or, for a device that is let out, the
answer its OS's probe expects. The redirect always goes to the portal's own root:
nothing of the request (host, path, a ``return_to``) is ever used as a target.

Whatever a client sends, the answer is a page: sizes are capped by the HTTP parser and
the app, forms are parsed defensively, and every failure is the portal's own page
(``guard.py``), never a crash.

The web layer depends on the service only through ``PortalBackend`` (what it asks of
it); ``service.py`` composes the two, so the domain never imports this module back.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import structlog
from aiohttp import HttpVersion11, web

from gateway.config.model import PortalSection
from gateway.errors import GatewayError
from gateway.portal.captive_api import CONTENT_TYPE as CAPTIVE_API_TYPE
from gateway.portal.captive_api import PATH as CAPTIVE_API_PATH
from gateway.portal.captive_api import captive_state, render
from gateway.portal.csrf import COOKIE, MAX_AGE, CsrfGuard, new_session, valid_session
from gateway.portal.guard import (
    CONFIG,
    MAX_BODY,
    RETRY_AFTER,
    PortalRunner,
    guard,
    html,
    lang_of,
    notice,
    parser_error_page,
)
from gateway.portal.i18n import Lang, parse_lang, text
from gateway.portal.pages import (
    MAX_FIELD,
    Message,
    PageKind,
    format_until,
    notice_page,
    online_page,
    sign_in_page,
)
from gateway.portal.probes import Action, find_probe, normalise_host
from gateway.portal.signin import Attempt, ClientState, SignInOutcome

log = structlog.get_logger(__name__)


class PortalBackend(Protocol):
    """What the web layer asks of the portal service."""

    @property
    def cfg(self) -> PortalSection: ...

    def now(self) -> datetime: ...

    async def client_state(self, ip: str) -> ClientState: ...

    async def sign_in(self, client: ClientState, login: str, password: str) -> Attempt: ...


SERVICE = web.AppKey("service", PortalBackend)
GUARD = web.AppKey("csrf", CsrfGuard)

BODY_DEADLINE = 10.0  # seconds a client gets to send its (small) form
# aiohttp's parser limits: request line, one header, header count.
HANDLER_ARGS: dict[str, Any] = {
    "max_line_size": 2048,
    "max_field_size": 4096,
    "max_headers": 64,
    "keepalive_timeout": 15.0,
    "auto_decompress": False,
}
# Seconds in-flight requests get to finish when the portal stops.
SHUTDOWN_TIMEOUT = 2.0
SIGN_IN_PATH = "/sign-in"
_FORM = "application/x-www-form-urlencoded"

# What the page says for each outcome, and with which HTTP status.
_OUTCOME_PAGES: dict[SignInOutcome, tuple[str, int]] = {
    # 403, not 401: there is no HTTP authentication scheme to offer (RFC 9110 15.5.2).
    SignInOutcome.WRONG_PASSWORD: ("wrong_password", 403),
    SignInOutcome.NO_TIME_PASSES: ("no_time_passes", 403),
    SignInOutcome.NOT_CONFIRMED: ("not_confirmed", 403),
    SignInOutcome.REFUSED: ("refused", 403),
    SignInOutcome.UNAVAILABLE: ("unavailable", 503),
    SignInOutcome.BUSY: ("busy", 503),
    SignInOutcome.MISCONFIGURED: ("misconfigured", 503),
    SignInOutcome.THROTTLED: ("throttled", 429),
    SignInOutcome.UNKNOWN_DEVICE: ("unknown_device", 400),
    SignInOutcome.ENDED: ("check_in_ended", 403),
    # The firewall failed before anything was billed: our trouble, try again shortly.
    SignInOutcome.NETWORK_FAILED: ("network_failed", 503),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(service: PortalBackend) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[guard])
    app[SERVICE] = service
    app[CONFIG] = service.cfg
    app[GUARD] = CsrfGuard()
    app.router.add_route("*", "/{tail:.*}", _dispatch, expect_handler=_expect)
    return app


async def serve(
    app: web.Application, cfg: PortalSection
) -> tuple[web.AppRunner, list[tuple[str, int]]]:
    """Start the sites; returns the runner (cleanup it) and the bound addresses."""
    runner = PortalRunner(
        app,
        error_page=parser_error_page(cfg),
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        **HANDLER_ARGS,
    )
    await runner.setup()
    try:
        for host in cfg.listen:
            await web.TCPSite(runner, host, cfg.port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        raise PortalError(f"portal: cannot listen on port {cfg.port}: {exc}") from exc
    addresses = [(str(a[0]), int(a[1])) for a in runner.addresses]
    return runner, addresses


class PortalError(GatewayError):
    """The portal cannot start (its port is taken, its address is not configured)."""


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect:`` is answered before the middleware runs: aiohttp's own handler would
    answer an unknown expectation with text that echoes the header."""
    if request.version == HttpVersion11:
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the body of the answer has not started
            return None
        return notice(request, "bad_request", 417)
    return None


# --- routing -----------------------------------------------------------------------


async def _dispatch(request: web.Request) -> web.StreamResponse:
    base = portal_url(request)
    if normalise_host(request.host) != normalise_host(_host_of(base)):
        return await _captive_request(request, base)
    route = (request.method, request.path)
    if route in (("GET", "/"), ("HEAD", "/")):
        return await _index(request)
    if route == ("POST", SIGN_IN_PATH):
        return await _sign_in(request)
    if route in (("GET", CAPTIVE_API_PATH), ("HEAD", CAPTIVE_API_PATH)):
        return await _captive_api(request, base)
    if request.method in ("GET", "HEAD"):
        # e.g. a reload of /sign-in: the form lives at the root.
        return _redirect(base, 303)
    return notice(request, "title_not_found", 404)


def portal_url(request: web.Request) -> str:
    """The portal's root as this client reaches it: the configured URL, else the
    address and port the client's connection arrived at."""
    service = request.app[SERVICE]
    if service.cfg.url:
        return service.cfg.url if service.cfg.url.endswith("/") else service.cfg.url + "/"
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return f"http://{request.host}/"
    host, port = str(sockname[0]), int(sockname[1])
    if host.startswith("::ffff:"):
        host = host.removeprefix("::ffff:")
    if ":" in host:
        host = "[" + host.replace("%", "%25") + "]"
    return f"http://{host}/" if port == 80 else f"http://{host}:{port}/"


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[1]
    return rest.split("/", 1)[0]


async def _captive_request(request: web.Request, base: str) -> web.StreamResponse:
    """A request to anywhere else: a probe, or a page the device tried to open."""
    service = request.app[SERVICE]
    state = await _client(request)
    probe = find_probe(request.host, request.path)
    if probe is not None and state.until is not None:
        if probe.action is Action.STATUS_PAGE:
            return _redirect(base)
        response = web.Response(status=probe.status, body=probe.body or None)
        if probe.body:
            response.content_type = probe.content_type
        for name, value in probe.headers:
            response.headers[name] = value
        return response
    if request.method in ("GET", "HEAD"):
        # 302 is what every OS's probe logic takes as "captive, open this".
        return _redirect(base)
    # RFC 6585: a non-GET to a captive network gets 511 with a link to sign in.
    lang = lang_of(request, service.cfg)
    body = notice_page(
        lang, service.cfg.space_name, title_key="title_sign_in", message_key="not_here"
    )
    return html(body, status=511)


async def _captive_api(request: web.Request, base: str) -> web.Response:
    service = request.app[SERVICE]
    state = await _client(request)
    body = render(captive_state(portal_url=base, until=state.until, now=service.now()))
    return web.Response(body=body, headers={"Content-Type": CAPTIVE_API_TYPE})


async def _client(request: web.Request) -> ClientState:
    return await request.app[SERVICE].client_state(request.remote or "")


# --- the pages ---------------------------------------------------------------------


async def _index(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    lang = lang_of(request, service.cfg)
    state = await _client(request)
    if state.until is not None:
        return html(_online(service, lang, state.until, None, None))
    message = None
    if state.mac is None:
        message = Message(PageKind.WARNING, text(lang, "unknown_device"))
    return _form(request, lang, message=message)


async def _sign_in(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    if request.content_type != _FORM:
        return notice(request, "bad_request", 415)
    try:
        async with asyncio.timeout(BODY_DEADLINE):
            form = await request.post()
    except (ValueError, LookupError):  # UnicodeDecodeError; LookupError: unknown charset
        return notice(request, "bad_request", 400)
    except TimeoutError:
        return notice(request, "bad_request", 408)
    fields = {name: form.get(name) for name in ("csrf", "lang", "login", "password")}
    values = {k: v if isinstance(v, str) else "" for k, v in fields.items()}
    lang = parse_lang(values["lang"]) or lang_of(request, service.cfg)
    login = values["login"].strip()[:MAX_FIELD]
    password = values["password"]
    session = request.cookies.get(COOKIE)
    if not _same_origin(request) or not request.app[GUARD].check(session, values["csrf"]):
        message = Message(PageKind.ERROR, text(lang, "form_expired"))
        return _form(request, lang, login=login, message=message, status=403)
    if not login or not password or len(password) > MAX_FIELD:
        message = Message(PageKind.ERROR, text(lang, "missing_fields"))
        return _form(request, lang, login=login, message=message, status=400)
    state = await _client(request)
    attempt = await service.sign_in(state, login, password)
    if attempt.outcome is SignInOutcome.SIGNED_IN:
        return _signed_in(service, lang, attempt)
    key, status = _OUTCOME_PAGES[attempt.outcome]
    words = text(
        lang,
        key,
        reason=attempt.sign_in.reason if attempt.sign_in else "",
        minutes=str(max(1, math.ceil(attempt.retry_after / 60))),
    )
    headers = {}
    if attempt.outcome is SignInOutcome.THROTTLED:
        headers["Retry-After"] = str(max(1, math.ceil(attempt.retry_after)))
    elif status == 503:
        headers["Retry-After"] = str(RETRY_AFTER)
    response = _form(
        request, lang, login=login, message=Message(PageKind.ERROR, words), status=status
    )
    response.headers.update(headers)
    return response


def _signed_in(service: PortalBackend, lang: Lang, attempt: Attempt) -> web.Response:
    assert attempt.sign_in is not None and attempt.sign_in.check_in is not None
    check_in = attempt.sign_in.check_in
    name = check_in.membership.name if check_in.membership else None
    assert attempt.until is not None
    warning = None
    if attempt.sign_in.warning is not None:
        # Cobot's warning: the MAC was not registered. For a member that means it is
        # someone else's; guests and admins (no membership) cannot register any.
        key = "other_member" if check_in.membership is not None else "device_not_saved"
        warning = Message(PageKind.WARNING, text(lang, key))
    return html(_online(service, lang, attempt.until, name, warning))


def _online(
    service: PortalBackend,
    lang: Lang,
    until: datetime,
    name: str | None,
    message: Message | None,
) -> bytes:
    return online_page(
        lang,
        service.cfg.space_name,
        until=format_until(until, service.now()),
        name=name,
        message=message,
    )


def _form(
    request: web.Request,
    lang: Lang,
    *,
    login: str = "",
    message: Message | None = None,
    status: int = 200,
) -> web.Response:
    service = request.app[SERVICE]
    session = request.cookies.get(COOKIE)
    fresh = not valid_session(session)
    if fresh:
        session = new_session()
    assert session is not None
    body = sign_in_page(
        lang,
        service.cfg.space_name,
        csrf=request.app[GUARD].issue(session),
        login=login,
        message=message,
    )
    response = html(body, status=status)
    if fresh:
        response.set_cookie(
            COOKIE,
            session,
            httponly=True,
            samesite="Strict",
            path="/",
            max_age=int(MAX_AGE),
        )
    return response


def _redirect(url: str, status: int = 302) -> web.Response:
    return web.Response(status=status, headers={"Location": url})


def _same_origin(request: web.Request) -> bool:
    """A browser's Origin must name the portal itself (a form on another site fails)."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True  # some captive sheets send none; the CSRF token still applies
    scheme, sep, host = origin.partition("://")
    if not sep or scheme not in ("http", "https"):
        return False
    return normalise_host(host) == normalise_host(request.host)
