"""The admin page over real HTTP against a running gateway and the simulated Cobot:
sessions, CSRF, throttling, the live stream, the queue, the access log, the door test,
and that no secret leaves in any answer."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.admin.password import load_hash
from gateway.admin.web import STATUS_INTERVAL
from gateway.errors import ConfigError
from gateway.outbox import State
from gateway.sim import ADMIN_TOKEN
from gateway.sim.seed import NFC_TOKEN, RDM_TOKEN
from tests.admin_support import PASSWORD, admin_rig, csrf_of, login
from tests.harness import eventually

SECRETS = (RDM_TOKEN, PASSWORD, ADMIN_TOKEN)


def assert_no_secret(text: str, extra: tuple[str, ...] = ()) -> None:
    for secret in (*SECRETS, *extra):
        assert secret not in text, f"a secret leaked: {secret[:4]}..."


async def test_no_password_file_keeps_the_page_down_and_says_why(tmp_path):
    async with admin_rig(tmp_path, password=None) as rig:
        await eventually(lambda: rig.gateway.runner.states["admin"].stopped_because)
        part = rig.gateway.status()["parts"]["admin"]
        assert part["running"] is False
        assert "password_file" in part["error"] and "admin-password" in part["error"]
        # The doors do not depend on it.
        decision = await rig.tap(RDM_TOKEN)
        assert decision.opened


def test_password_file_must_hold_a_hash(tmp_path):
    path = tmp_path / "hash"
    path.write_text("admin\n")
    with pytest.raises(ConfigError, match="no argon2 hash"):
        load_hash(path)
    with pytest.raises(ConfigError, match="not set"):
        load_hash(None)


async def test_nothing_without_a_session(tmp_path):
    async with admin_rig(tmp_path) as rig, rig.client() as client:
        for path in ("/", "/readers", "/queue", "/log", "/log.csv", "/rooms"):
            async with client.get(path, allow_redirects=False) as r:
                assert r.status == 303, path
                assert r.headers["Location"] == "/login"
                assert r.headers["X-Frame-Options"] == "DENY"
        async with client.get("/events") as r:
            assert r.status == 401
            assert r.content_type != "text/event-stream"
        for path in ("/queue/1/retry", "/queue/1/drop", "/doors/front/test", "/logout"):
            async with client.post(path, data={"confirm": "yes"}) as r:
                assert r.status == 401, path
        assert rig.door.opened == 0


async def test_login_sets_a_strict_cookie_and_headers(tmp_path):
    async with admin_rig(tmp_path) as rig, rig.client() as client:
        async with client.get("/login") as r:
            assert r.status == 200
            csp = r.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
            for name in ("X-Content-Type-Options", "Referrer-Policy", "Cache-Control"):
                assert name in r.headers
        r = await login(client)
        assert r.status == 303 and r.headers["Location"] == "/"
        cookie = next(v for v in r.headers.getall("Set-Cookie") if v.startswith("admin_session="))
        assert "SameSite=Strict" in cookie and "HttpOnly" in cookie
        async with client.get("/") as r:
            assert r.status == 200
            page = await r.text()
            assert "Last taps" in page and "online" in page
        # Logout needs the CSRF token too, and ends the session.
        async with client.post("/logout", data={}) as r:
            assert r.status == 403
        async with client.post("/logout", data={"csrf": csrf_of(page)}, allow_redirects=False) as r:
            assert r.status == 303
        async with client.get("/", allow_redirects=False) as r:
            assert r.status == 303


async def test_login_needs_csrf_and_is_throttled(tmp_path):
    async with admin_rig(tmp_path, max_failures=3) as rig, rig.client() as client:
        async with client.post("/login", data={"password": PASSWORD}) as r:
            assert r.status == 403  # no CSRF token: not even a right password counts
        for _ in range(3):
            r = await login(client, "wrong password")
            assert r.status == 403
        r = await login(client)  # the right one, but locked now
        assert r.status == 429
        assert int(r.headers["Retry-After"]) > 0
        async with client.get("/", allow_redirects=False) as r:
            assert r.status == 303


async def test_csrf_on_every_post(tmp_path):
    async with admin_rig(tmp_path) as rig, rig.client() as client:
        await login(client)
        await rig.tap(RDM_TOKEN)
        entry = (await rig.gateway.outbox.list(include_done=True))[0]
        for path in (f"/queue/{entry.id}/drop", "/doors/front/test"):
            async with client.post(path, data={"confirm": "yes", "csrf": "1.abc"}) as r:
                assert r.status == 403, path
        assert rig.door.opened == 1  # the tap's own opening only


async def test_live_tap_reaches_the_event_stream(tmp_path):
    async with admin_rig(tmp_path) as rig, rig.client() as client:
        await login(client)
        async with client.get("/events") as stream:
            assert stream.status == 200
            assert stream.content_type == "text/event-stream"
            first = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5)
            assert first.startswith(b"event: status\n")
            await rig.tap(RDM_TOKEN)
            chunk = b""
            async with asyncio.timeout(5):
                while b"event: tap" not in chunk:
                    chunk = await stream.content.readuntil(b"\n\n")
            event = json.loads(chunk.split(b"data: ", 1)[1])
            assert event["member"] == "Ada Lovelace"
            assert event["outcome"] == "opened-online" and event["opened"] is True
            assert event["token"].endswith(RDM_TOKEN[-2:]) and RDM_TOKEN not in chunk.decode()
        # A closed page is noticed at the next status event (every STATUS_INTERVAL s).
        admin = rig.gateway.admin
        assert admin is not None
        await eventually(lambda: admin.feed.streams == 0, timeout=STATUS_INTERVAL + 5)


async def test_queue_retry_and_drop_as_the_cli_does(tmp_path):
    async with admin_rig(tmp_path) as rig, rig.client() as client:
        await login(client)
        outbox = rig.gateway.outbox
        first, second = await rig.add_failed(), await rig.add_failed()
        async with client.get("/queue") as r:
            page = await r.text()
            assert "refused: test" in page and "failed" in page
            assert_no_secret(page, (NFC_TOKEN,))
        token = csrf_of(page)
        async with client.post(f"/queue/{second}/drop", data={"csrf": token}) as r:
            assert f"Entry {second} was dropped" in await r.text()
        dropped = await outbox.get(second)
        assert dropped is not None and dropped.state is State.DROPPED
        async with client.get("/queue", params={"all": "1"}) as r:
            assert "dropped by admin page" in await r.text()
        async with client.post(f"/queue/{first}/retry", data={"csrf": token}) as r:
            assert r.status == 200
            assert f"Entry {first} will be retried" in await r.text()
        # Back in the queue, and delivered by the drainer like any entry.
        async with asyncio.timeout(5):
            while (entry := await outbox.get(first)) and entry.state is not State.DELIVERED:
                await asyncio.sleep(0.02)
        async with client.post("/queue/999999/drop", data={"csrf": token}) as r:
            assert "is not waiting or failed" in await r.text()


async def test_access_log_search_and_csv(tmp_path):
    async with admin_rig(tmp_path) as rig, rig.client() as client:
        await login(client)
        await rig.tap(RDM_TOKEN)
        await rig.tap("FFFFFFFF99")  # unknown to Cobot: refused
        assert rig.gateway.admin is not None
        log = rig.gateway.admin.access_log
        await eventually(lambda: log.logged == 2)
        async with client.get("/log", params={"q": "Ada"}) as r:
            page = await r.text()
            assert "Ada Lovelace" in page and "opened-online" in page
            assert "refused" not in page.split("<tbody>", 1)[1]
            assert_no_secret(page, ("FFFFFFFF99",))
        async with client.get("/log.csv") as r:
            assert r.headers["Content-Disposition"].startswith("attachment")
            text = await r.text()
        lines = text.strip().splitlines()
        assert lines[0].startswith("at,reader,token,member")
        assert len(lines) == 3
        assert_no_secret(text, ("FFFFFFFF99",))
        async with client.get("/log", params={"day": "not-a-day"}) as r:
            assert r.status == 400


async def test_test_door_asks_first(tmp_path):
    async with admin_rig(tmp_path) as rig, rig.client() as client:
        await login(client)
        async with client.get("/readers") as r:
            page = await r.text()
        token = csrf_of(page)
        async with client.post("/doors/front/test", data={"csrf": token}) as r:
            assert "Anyone standing there" in await r.text()
        assert rig.door.opened == 0
        async with client.post("/doors/front/test", data={"csrf": token, "confirm": "yes"}) as r:
            assert "was opened" in await r.text()
        assert rig.door.opened == 1
        async with client.post("/doors/back/test", data={"csrf": token, "confirm": "yes"}) as r:
            assert r.status == 404


async def test_german_and_extra_routes(tmp_path):
    from aiohttp import web

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text="gateway_up 1\n")

    async with admin_rig(tmp_path, language="de") as rig, rig.client() as client:
        async with client.get("/login") as r:
            assert "Passwort" in await r.text()
        assert rig.gateway.admin is not None
        with pytest.raises(RuntimeError):
            rig.gateway.admin.add_route("GET", "/metrics", metrics, public=True)


async def test_extra_route_added_before_start(tmp_path):
    """``AdminService.add_route`` before the part starts: served, public or not."""
    from aiohttp import web

    from gateway.admin.service import AdminService
    from gateway.config.integrations import AdminSection
    from tests.admin_support import free_port

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text="gateway_up 1\n")

    async with admin_rig(tmp_path) as rig:
        port = free_port()
        cfg = AdminSection(port=port, password_file=rig.password_file)
        service = AdminService(cfg, rig.gateway)
        service.add_route("GET", "/metrics", metrics, public=True)
        service.add_route("GET", "/private", metrics)
        task = asyncio.create_task(service.run())
        try:
            await eventually(lambda: service.addresses)
            import aiohttp

            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as client:
                async with client.get("/metrics") as r:
                    assert r.status == 200 and await r.text() == "gateway_up 1\n"
                    assert r.headers["X-Content-Type-Options"] == "nosniff"
                async with client.get("/private", allow_redirects=False) as r:
                    assert r.status == 303
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
