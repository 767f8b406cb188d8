"""Issue 12 cases 8 and 9: every failure is the portal's own page (in the visitor's
language, with the security headers, no traceback in the log), never aiohttp's bare
500 or its parser's text that echoes the request. Over real HTTP against the simulated
Cobot server."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from structlog.testing import capture_logs

from gateway.cobot.errors import NotFound
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.errors import GatewayError
from tests.portal_support import csrf_of, running_portal, sign_in

SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def assert_own_page(headers: object, body: str) -> None:
    for name, value in SECURITY.items():
        assert headers[name] == value, name  # type: ignore[index]
    assert headers["Content-Type"].startswith("text/html")  # type: ignore[index]
    assert "Content-Security-Policy" in headers  # type: ignore[operator]
    assert "<!doctype html>" in body.lower()
    assert "Traceback" not in body


def no_traceback(logs: list[dict[str, object]]) -> None:
    assert not [e for e in logs if e.get("exc_info") or e["log_level"] in ("error", "critical")]


@pytest.mark.parametrize("why", ["retry-after", "burst"])
async def test_no_rate_limit_slot_is_a_503_page_in_the_visitors_language(tmp_path, why):
    # Real limiter: a 429's Retry-After in force, or the 120/min check-in budget spent
    # (scaled down: two requests, i.e. one sign-in's preview and check-in).
    limiter = RateLimiter({Group.CHECK_INS: 2 if why == "burst" else 120, Group.DEFAULT: 60})
    if why == "retry-after":
        limiter.block(Group.CHECK_INS, 60)
    async with running_portal(tmp_path, limiter=limiter) as portal:
        if why == "burst":
            async with portal.session("127.0.0.2") as first:
                status, _ = await sign_in(first, portal.url, "ada@example.com", "ada-demo")
                assert status == 200
        with capture_logs() as logs:
            async with portal.session("127.0.0.1", **{"Accept-Language": "de"}) as s:
                async with s.get(portal.url + "/") as page:
                    token = csrf_of(await page.text())
                form = {"csrf": token, "login": "grace@example.com", "password": "grace-demo"}
                started = time.monotonic()
                async with s.post(portal.url + "/sign-in", data=form) as resp:
                    body = await resp.text()
                    assert resp.status == 503
                    assert_own_page(resp.headers, body)
                # At once: the limiter knows no slot comes within the 10 s deadline.
                assert time.monotonic() - started < 2.0
        assert "Gerade melden sich viele an" in body
        assert 'lang="de"' in body
        no_traceback(logs)
        # Nothing was counted against the member.
        assert portal.service.throttle.retry_after(["login:grace@example.com"]) == 0


async def test_every_api_failure_is_a_page(tmp_path, monkeypatch):
    """An API error the page has no words for (here a 404) is "try again", not a 500."""
    async with running_portal(tmp_path) as portal:
        client = portal.service._client

        async def not_found(**_kw: object) -> object:
            raise NotFound("HTTP 404")

        monkeypatch.setattr(client, "check_in", not_found)
        with capture_logs() as logs:
            async with portal.session() as s:
                status, body = await sign_in(s, portal.url, "ada@example.com", "ada-demo")
        assert status == 503
        assert "cannot be reached right now" in body
        no_traceback(logs)


@pytest.mark.parametrize("charset", ["x-no-such-charset", "x-user-defined"])
async def test_unknown_form_charset_is_a_400_page(tmp_path, charset):
    async with running_portal(tmp_path) as portal:
        with capture_logs() as logs:
            async with portal.session(**{"Accept-Language": "de-AT, en;q=0.5"}) as s:
                async with s.get(portal.url + "/") as page:
                    token = csrf_of(await page.text())
                async with s.post(
                    portal.url + "/sign-in",
                    data=f"csrf={token}&login=ada%40example.com&password=x".encode(),
                    headers={
                        "Content-Type": f"application/x-www-form-urlencoded; charset={charset}"
                    },
                ) as resp:
                    body = await resp.text()
                    assert resp.status == 400
                    assert_own_page(resp.headers, body)
        assert "Diese Anfrage konnte nicht gelesen werden" in body
        no_traceback(logs)


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        # Expected trouble (``ip neigh`` timing out): 503, no traceback.
        (GatewayError("ip neigh: timed out"), 503, "Bitte versuch es gleich noch einmal"),
        # A bug: 500, the traceback only in the log.
        (RuntimeError("boom"), 500, "Im Portal ist ein Fehler passiert"),
    ],
)
async def test_a_failure_inside_is_the_portals_page(tmp_path, monkeypatch, error, status, words):
    async with running_portal(tmp_path) as portal:

        async def broken(ip: str) -> object:
            raise error

        monkeypatch.setattr(portal.service, "client_state", broken)
        with capture_logs() as logs:
            async with portal.session() as s, s.get(portal.url + "/?lang=de") as resp:
                body = await resp.text()
                assert resp.status == status
                assert_own_page(resp.headers, body)
                assert resp.headers.get("Retry-After") == ("10" if status == 503 else None)
        assert words in body
        assert str(error) not in body
        traced = [e["event"] for e in logs if e.get("exc_info")]
        assert traced == ([] if status == 503 else ["portal_request_failed"])


PARSER_ERRORS = {
    "request line over the limit": b"GET /" + b"A" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header without a colon": b"GET / HTTP/1.1\r\nHost: x\r\nSECRET-no-colon\r\n\r\n",
    "header over the limit": b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"B" * 20_000 + b"\r\n\r\n",
    "bad method": b"G<E>T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad version": b"GET / HTTP/9.Z\r\nHost: x\r\n\r\n",
    "chunk size not hex": b"POST /sign-in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n\r\nzz\r\nSECRET\r\n0\r\n\r\n",
    "bad content length": b"POST /sign-in HTTP/1.1\r\nHost: x\r\nContent-Length: SECRET\r\n\r\n",
    "NUL in the host": b"GET / HTTP/1.1\r\nHost: SECRET\x00\r\n\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "too many headers": b"GET / HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-SECRET-%d: 1\r\n" % i for i in range(100))
    + b"\r\n",
}


@pytest.mark.parametrize("raw", PARSER_ERRORS.values(), ids=PARSER_ERRORS.keys())
async def test_parser_errors_are_the_portals_400_page(tmp_path, raw):
    async with running_portal(tmp_path, language="de") as portal:
        host, port = portal.service.addresses[0]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)  # the connection is closed
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 400 ", head), head
        headers = dict(
            line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if line
        )
        assert_own_page(headers, body.decode())
        assert "Diese Anfrage konnte nicht gelesen werden" in body.decode()
        # Nothing of the request is echoed.
        for echo in (b"AAAA", b"BBBB", b"SECRET", b"G<E>T", b"9.Z"):
            assert echo not in body
        # And the portal keeps serving.
        async with portal.session() as s, s.get(portal.url + "/") as resp:
            assert resp.status == 200


async def test_an_unknown_expectation_is_the_portals_417_page(tmp_path):
    """aiohttp answers ``Expect:`` before any middleware, with text echoing the header."""
    async with running_portal(tmp_path, language="de") as portal:
        host, port = portal.service.addresses[0]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /sign-in HTTP/1.1\r\nHost: %s:%d\r\nExpect: 100-SECRET\r\n"
            b"Content-Length: 3\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Connection: close\r\n\r\nabc" % (host.encode(), port)
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 417 "), head
        headers = dict(
            line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if line
        )
        assert_own_page(headers, body.decode())
        assert b"SECRET" not in body
    # 100-continue still works: the form is read and answered.
    async with running_portal(tmp_path / "b") as portal, portal.session() as s:
        async with s.get(portal.url + "/") as page:
            token = csrf_of(await page.text())
        form = {"csrf": token, "login": "ada@example.com", "password": "ada-demo"}
        async with s.post(portal.url + "/sign-in", data=form, expect100=True) as resp:
            assert resp.status == 200
