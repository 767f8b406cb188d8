"""The browser's way back: a one-shot HTTP listener on 127.0.0.1 (RFC 8252 §7.3).

Listens on loopback only (never on the LAN), accepts the redirect on ``/callback`` whose
``state`` matches, and answers the browser with a short page. A wrong ``state`` is
refused (400) and the wait goes on: it is someone else's request, or a forgery.
"""

from __future__ import annotations

import asyncio
import html

from aiohttp import web

from gateway.login.oauth import LoginError

PATH = "/callback"
_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{text}</p></body></html>"""


class LoopbackReceiver:
    def __init__(self, state: str, port: int = 0) -> None:
        self._state = state
        self._port = port
        self._result: asyncio.Future[str] | None = None
        self._runner: web.AppRunner | None = None
        self.redirect_uri = ""

    async def __aenter__(self) -> LoopbackReceiver:
        self._result = asyncio.get_running_loop().create_future()
        app = web.Application()
        app.router.add_get(PATH, self._callback)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise LoginError(
                f"cannot listen on 127.0.0.1:{self._port} for the browser: {exc.strerror}"
            ) from exc
        port = self._runner.addresses[0][1]
        self.redirect_uri = f"http://127.0.0.1:{port}{PATH}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def port(self) -> int:
        return int(self.redirect_uri.rsplit(":", 1)[1].split("/")[0])

    async def code(self) -> str:
        """The authorization code; raises LoginError when the browser brings an error."""
        assert self._result is not None
        return await self._result

    async def _callback(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("state") != self._state:
            return _page(400, "Not this login", "This answer does not belong to this login.")
        assert self._result is not None
        if "error" in q:
            words = q.get("error_description") or q["error"]
            if not self._result.done():
                self._result.set_exception(LoginError(f"authorization refused: {words}"))
            return _page(200, "Login refused", f"Cobot said: {words}. Nothing was stored.")
        code = q.get("code")
        if not code:
            return _page(400, "No code", "The answer has no authorization code.")
        if not self._result.done():
            self._result.set_result(code)
        return _page(
            200,
            "checkin-gateway is signed in",
            "The gateway received the authorization. You can close this tab.",
        )


def _page(status: int, title: str, text: str) -> web.Response:
    body = _PAGE.format(title=html.escape(title), text=html.escape(text))
    return web.Response(status=status, text=body, content_type="text/html")
