"""Every answer the portal gives is its own page: caps, security headers, error pages.

Two places can fail a request. In the app, the ``guard`` middleware caps the request,
refuses clients outside the LAN, and turns whatever a handler raises into a page in the
visitor's language (``GatewayError``, an expected trouble such as the neighbour table or
the store failing: 503 "try again in a moment", logged without a traceback; an aiohttp
``HTTPException`` raised while reading the request: its status with our page; anything
else is a bug: 500, logged with its traceback). Below the app, aiohttp's HTTP parser
rejects a request line over ``max_line_size``, a malformed header or method before any
handler runs, and answers with its own ``text/plain`` body that echoes part of the
request; ``PortalRunner`` replaces that answer with the portal's minimal 400 page and
the security headers (the language is the configured one: the headers that would say
the visitor's were not parsed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.config.model import PortalSection
from gateway.errors import GatewayError
from gateway.portal.i18n import DEFAULT, Lang, negotiate, parse_lang
from gateway.portal.pages import CONTENT_SECURITY_POLICY, notice_page

log = structlog.get_logger(__name__)

CONFIG = web.AppKey("portal_config", PortalSection)

MAX_BODY = 4096  # bytes of a sign-in form; a login and password fit many times
MAX_TARGET = 1024  # bytes of path + query

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# Seconds a visitor is told to wait after a 503 (RFC 9110 10.2.3).
RETRY_AFTER = 10

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- building answers --------------------------------------------------------------


def html(body: bytes, *, status: int = 200) -> web.Response:
    response = web.Response(body=body, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def lang_of(request: web.Request, cfg: PortalSection) -> Lang:
    """The visitor's language: ``?lang=``, else the configured one, else Accept-Language."""
    chosen = parse_lang(request.query.get("lang"))
    if chosen is not None:
        return chosen
    if cfg.language != "auto":
        return Lang(cfg.language)
    return negotiate(request.headers.get("Accept-Language"))


def notice(
    request: web.Request,
    message_key: str,
    status: int,
    *,
    lang: Lang | None = None,
    title_key: str | None = None,
) -> web.Response:
    """A page with one message and no form, in the visitor's language."""
    cfg = request.app[CONFIG]
    if title_key is None:
        title_key = {404: "title_not_found", 500: "title_problem", 503: "title_problem"}.get(
            status, "title_error"
        )
    body = notice_page(
        lang or lang_of(request, cfg), cfg.space_name, title_key=title_key, message_key=message_key
    )
    response = html(body, status=status)
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


# --- the middleware ------------------------------------------------------------------


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    try:
        if len(request.raw_path) > MAX_TARGET:
            response: web.StreamResponse = notice(request, "too_large", 414)
        elif (request.content_length or 0) > MAX_BODY:
            # Said up front: refused before a byte of it is read.
            response = notice(request, "too_large", 413)
        elif not _from_lan(request, cfg):
            response = notice(request, "not_here", 403)
        else:
            response = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        response = notice(request, "too_large", 413)
    except web.HTTPException as exc:
        if exc.status < 400:
            exc.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k not in exc.headers})
            raise
        # aiohttp's own error (e.g. a body it could not read): its status, our page.
        log.info("portal_request_refused", status=exc.status, path=request.path[:100])
        response = notice(request, "bad_request" if exc.status < 500 else "try_again", exc.status)
    except GatewayError as exc:
        # Expected trouble on our side (neighbour table, store, firewall): no traceback.
        log.warning("portal_request_unavailable", path=request.path[:100], error=str(exc))
        response = notice(request, "try_again", 503)
    except Exception:  # a bug: a client must never take the portal down
        log.exception("portal_request_failed", path=request.path[:100])
        response = notice(request, "internal_error", 500)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _from_lan(request: web.Request, cfg: PortalSection) -> bool:
    if not cfg.lan_subnets:
        return True
    try:
        address = ipaddress.ip_address((request.remote or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(s, strict=False) for s in cfg.lan_subnets)


# --- below the app: the HTTP parser's errors -----------------------------------------------


def parser_error_page(cfg: PortalSection) -> bytes:
    lang = Lang(cfg.language) if cfg.language != "auto" else DEFAULT
    return notice_page(lang, cfg.space_name, title_key="title_error", message_key="bad_request")


class _PortalRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering parser-level errors with our page.

    ``handle_error`` is what aiohttp calls for a request its parser rejected (and for an
    exception that escaped the app, which ``guard`` prevents). aiohttp's version logs a
    traceback and answers ``text/plain`` with the parser's message, which quotes the
    request; ours logs one line and answers the portal's page."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error page")
        if status >= 500 and exc is not None:  # escaped the app: a bug, with its traceback
            log.error("portal_request_failed", status=status, exc_info=exc)
        else:
            log.info(
                "portal_request_unparsable",
                status=status,
                error=type(exc).__name__ if exc is not None else None,
                remote=request.remote,
            )
        server = self._manager
        page = server.error_page if isinstance(server, _PortalServer) else b""
        response = web.Response(
            body=page, status=status if status >= 400 else 400, content_type="text/html"
        )
        response.charset = "utf-8"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers.update(SECURITY_HEADERS)
        response.force_close()
        return response


class _PortalServer(web.Server):
    def __init__(self, handler: Any, *, error_page: bytes, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.error_page = error_page

    def __call__(self) -> RequestHandler:
        return _PortalRequestHandler(self, loop=self._loop, **self._kwargs)


class PortalRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parser errors with the portal's page."""

    def __init__(self, app: web.Application, *, error_page: bytes, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._error_page = error_page

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _PortalServer(
            server.request_handler,
            error_page=self._error_page,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            **self._kwargs,
        )
