"""The portal's web side over real HTTP on loopback, against the simulated Cobot.

The neighbour table is a static one for the loopback addresses (127.0.0.x stand for
LAN clients) and the firewall records what it is told; tests/test_portal_netns.py
drives the real neighbour table and nftables.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from datetime import timedelta

import aiohttp
import pytest

from gateway.portal import captive_api
from gateway.sim.seed import ADA, MAC_TOKEN
from tests.portal_support import (
    CLIENTS,
    Clock,
    RecordingFirewall,
    csrf_of,
    running_portal,
    sign_in,
)

MAC1 = CLIENTS["127.0.0.1"]


@pytest.fixture
async def portal(tmp_path):
    async with running_portal(tmp_path) as portal:
        yield portal


async def test_captive_device_is_redirected_to_the_portal_root(portal):
    async with portal.session() as s:
        await _sent_to_portal(s, portal, "connectivitycheck.gstatic.com", "/generate_204")
        # Any other page the device opens: the same fixed target, never the original.
        await _sent_to_portal(
            s, portal, "evil.example", "/login?return_to=http://evil.example/&next=//evil.example"
        )


async def _sent_to_portal(s: aiohttp.ClientSession, portal, host: str, target: str) -> None:
    async with s.get(portal.url + target, headers={"Host": host}, allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["Location"] == portal.url + "/"


async def test_sign_in_page_renders_escaped_and_localised(portal):
    german = {"Accept-Language": "de-DE,de;q=0.9"}
    async with portal.session() as s, s.get(portal.url + "/", headers=german) as r:
        page = await r.text()
        assert r.status == 200
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert r.headers["Cache-Control"] == "no-store"
        assert "portal_session" in r.cookies
    assert '<html lang="de">' in page
    assert "Im WLAN anmelden" in page
    # The space name from config, escaped: its '<' and '&' are text, not markup.
    assert "Co-Up &lt;Test&gt; &amp; Friends" in page
    assert "<Test>" not in page
    assert 'autocomplete="current-password"' in page


async def test_wrong_password_shows_the_reason_and_lets_nothing_out(portal):
    async with portal.session() as s:
        status, page = await sign_in(s, portal.url, "ada@example.com", "wrong")
    assert status == 403
    assert "The login or password is wrong." in page
    assert 'value="ada@example.com"' in page  # the login is kept, the password is not
    assert "wrong" not in page.replace("is wrong", "")
    assert portal.firewall.allowed == {}
    assert portal.signed_in == []


@pytest.mark.parametrize(
    ("login", "password", "words"),
    [
        ("alan@example.com", "alan-demo", "You have no time passes left."),
        ("hedy@example.com", "hedy-demo", "Your membership is not confirmed yet."),
    ],
)
async def test_api_refusals_in_plain_words(portal, login, password, words):
    async with portal.session() as s:
        status, page = await sign_in(s, portal.url, login, password)
    assert status == 403
    assert words in page
    assert portal.firewall.allowed == {}


async def test_right_password_checks_in_registers_the_mac_and_lets_the_device_out(portal):
    async with portal.session() as s:
        status, page = await sign_in(s, portal.url, "ada@example.com", "ada-demo")
        assert status == 200, page
        assert "Welcome, Ada Lovelace." in page
        assert "This device is online until" in page
        # The device is out before the page is served, and its connections were flushed.
        assert MAC1 in portal.firewall.allowed
        assert ("forget", ("127.0.0.1",)) in portal.firewall.events
        # Cobot has the check-in and the MAC as Ada's token.
        assert portal.space.tokens[MAC1] == ADA
        assert len(portal.space.check_ins_of(ADA)) == 1
        assert portal.signed_in[0][0] == MAC1
        # The probes now say "online", so the OS closes its sign-in sheet.
        async with s.get(
            portal.url + "/hotspot-detect.html", headers={"Host": "captive.apple.com"}
        ) as resp:
            assert resp.status == 200
            assert "<BODY>Success</BODY>" in await resp.text()
        async with s.get(portal.url + "/", allow_redirects=False) as resp:
            assert "You&#x27;re online" in await resp.text()


async def test_mac_registered_to_someone_else_is_said_so(portal):
    portal.space.register_token(MAC1, ADA)
    async with portal.session() as s:
        status, page = await sign_in(s, portal.url, "grace@example.com", "grace-demo")
    assert status == 200
    assert "registered to another member" in page
    # Grace is checked in and let out, but the app is not told to map Ada's MAC to her.
    assert MAC1 in portal.firewall.allowed
    assert portal.signed_in == []


async def test_guest_signs_in_without_a_registered_device(portal):
    async with portal.session() as s:
        status, page = await sign_in(s, portal.url, "guest@example.com", "guest-demo")
    assert status == 200
    assert "You are checked in." in page
    assert "cannot register devices" in page
    assert MAC1 in portal.firewall.allowed


async def test_csrf_token_and_cookie_are_required(portal):
    async with portal.session() as s:
        async with s.get(portal.url + "/") as resp:
            token = csrf_of(await resp.text())
        form = {"login": "ada@example.com", "password": "ada-demo"}
        for bad in ({}, {"csrf": "1.deadbeef"}, {"csrf": token + "0"}):
            async with s.post(portal.url + "/sign-in", data={**form, **bad}) as resp:
                assert resp.status == 403
                assert "The form had expired" in await resp.text()
        # Another site's page posting the form (its Origin) fails even with a token.
        async with s.post(
            portal.url + "/sign-in",
            data={**form, "csrf": token},
            headers={"Origin": "http://evil.example"},
        ) as resp:
            assert resp.status == 403
    # A token without its session cookie (another browser) fails too.
    async with (
        portal.session() as other,
        other.post(portal.url + "/sign-in", data={**form, "csrf": token}) as resp,
    ):
        assert resp.status == 403
    assert portal.firewall.allowed == {}
    assert portal.space.check_ins_of(ADA) == []


async def test_failed_sign_ins_are_throttled_per_login_ip_and_mac(tmp_path):
    async with running_portal(tmp_path, max_failures=3, failure_window=600) as portal:
        async with portal.session("127.0.0.1") as s:
            for _ in range(3):
                status, _page = await sign_in(s, portal.url, "ada@example.com", "nope")
                assert status == 403
            # Locked: even the right password is not tried against Cobot.
            before = len(portal.space.requests)
            status, page = await sign_in(s, portal.url, "ada@example.com", "ada-demo")
            assert status == 429
            assert "Too many failed attempts" in page
            assert len(portal.space.requests) == before
        # Ada's login does not lock Ada out of a device with no failures (issue 12 case
        # 7): see test_attacker_cannot_lock_a_member_out_of_their_own_device.
        # The first device is locked for other logins (its MAC and IP).
        async with portal.session("127.0.0.1") as s:
            status, _page = await sign_in(s, portal.url, "grace@example.com", "grace-demo")
            assert status == 429
        # A third device with another login is not affected.
        async with portal.session("127.0.0.3") as s:
            status, _page = await sign_in(s, portal.url, "grace@example.com", "grace-demo")
            assert status == 200


async def test_attacker_cannot_lock_a_member_out_of_their_own_device(tmp_path):
    """OWASP account lockout: five wrong passwords for Ada's login from one device do
    not keep Ada, on her own device, from signing in at once."""
    async with running_portal(tmp_path, max_failures=5, failure_window=900) as portal:
        async with portal.session("127.0.0.2") as attacker:
            for _ in range(5):
                status, _page = await sign_in(attacker, portal.url, "ada@example.com", "guess")
                assert status == 403
            status, _page = await sign_in(attacker, portal.url, "ada@example.com", "guess")
            assert status == 429
        async with portal.session("127.0.0.1") as own:
            status, page = await sign_in(own, portal.url, "ada@example.com", "ada-demo")
        assert status == 200, page
        assert MAC1 in portal.firewall.allowed
        assert len(portal.space.check_ins_of(ADA)) == 1


async def test_a_guess_in_flight_for_a_login_does_not_refuse_its_member(tmp_path):
    """Attempts for one login go one at a time, in line: the member's right password
    waits for the attacker's slow guess instead of being refused."""
    async with running_portal(tmp_path) as portal:
        portal.space.faults.set("slow", paths=["/api/check_ins"], count=1, delay=1.0)
        async with portal.session("127.0.0.2") as attacker, portal.session("127.0.0.1") as own:
            guess = asyncio.create_task(sign_in(attacker, portal.url, "ada@example.com", "guess"))
            while not portal.service._in_flight:
                await asyncio.sleep(0.01)
            status, page = await sign_in(own, portal.url, "ada@example.com", "ada-demo")
            assert status == 200, page
            assert (await guess)[0] == 403
        assert MAC1 in portal.firewall.allowed


async def test_parallel_guesses_do_not_slip_past_the_throttle(tmp_path):
    async with running_portal(tmp_path, max_failures=2, failure_window=600) as portal:
        async with portal.session("127.0.0.1") as s:
            async with s.get(portal.url + "/") as resp:
                token = csrf_of(await resp.text())

            async def guess(n: int) -> int:
                form = {"csrf": token, "login": "ada@example.com", "password": f"guess{n}"}
                async with s.post(portal.url + "/sign-in", data=form) as resp:
                    return resp.status

            statuses = await asyncio.gather(*(guess(n) for n in range(20)))
        checks = [r for r in portal.space.requests if r.path == "/api/check_ins"]
        assert len(checks) <= 2, statuses
        assert statuses.count(429) >= 18


async def test_unknown_device_cannot_sign_in(portal):
    async with portal.session("127.0.0.9") as s:
        async with s.get(portal.url + "/") as resp:
            assert "could not be identified" in await resp.text()
        status, _page = await sign_in(s, portal.url, "ada@example.com", "ada-demo")
    assert status == 400
    assert portal.space.check_ins_of(ADA) == []


async def test_probe_answers_for_a_device_that_is_out(portal):
    await portal.service.authorise(MAC1, portal.clock() + timedelta(hours=1))
    cases = [
        ("connectivitycheck.gstatic.com", "/generate_204", 204, b""),
        ("www.msftconnecttest.com", "/connecttest.txt", 200, b"Microsoft Connect Test"),
        ("detectportal.firefox.com", "/success.txt", 200, b"success\n"),
        ("nmcheck.gnome.org", "/check_network_status.txt", 200, b"NetworkManager is online\n"),
    ]
    async with portal.session() as s:
        for host, path, status, body in cases:
            async with s.get(portal.url + path, headers={"Host": host}) as resp:
                assert (resp.status, await resp.read()) == (status, body), host
        # Windows opens /redirect in a browser: it goes to the portal's status page.
        await _sent_to_portal(s, portal, "www.msftconnecttest.com", "/redirect")


async def test_captive_api_rfc8908(portal):
    async with portal.session() as s:
        async with s.get(portal.url + captive_api.PATH) as resp:
            assert resp.headers["Content-Type"] == "application/captive+json"
            assert json.loads(await resp.read()) == {
                "captive": True,
                "user-portal-url": portal.url + "/",
            }
        await portal.service.authorise(MAC1, portal.clock() + timedelta(seconds=90.5))
        async with s.get(portal.url + captive_api.PATH) as resp:
            state = json.loads(await resp.read())
    assert state["captive"] is False
    assert state["seconds-remaining"] == 90


async def test_expiry_shuts_the_device_out_and_flushes_its_connections(tmp_path):
    clock = Clock()
    async with running_portal(tmp_path, clock=clock) as portal:
        until = await portal.service.authorise(MAC1, clock() + timedelta(minutes=5), ip="127.0.0.1")
        assert until is not None
        clock.advance(299)
        assert await portal.service.expire_due() == 0
        clock.advance(2)
        portal.firewall.events.clear()
        assert await portal.service.expire_due() == 1
        assert portal.firewall.events == [("revoke", MAC1), ("forget", ("127.0.0.1",))]
        assert portal.service.store.get(MAC1) is None


async def test_authorisation_is_capped_and_restored_after_a_restart(tmp_path):
    clock = Clock()
    firewall = RecordingFirewall(clock)
    async with running_portal(tmp_path, clock=clock, firewall=firewall, max_session=3600) as p:
        granted = await p.service.authorise(MAC_TOKEN, clock() + timedelta(days=3))
        assert granted == clock() + timedelta(seconds=3600)
        await p.service.authorise(CLIENTS["127.0.0.2"], clock() + timedelta(seconds=60))
        assert await p.service.authorise(CLIENTS["127.0.0.3"], clock() - timedelta(1)) is None
    clock.advance(120)  # the second one expires while the gateway is down
    async with running_portal(tmp_path, clock=clock, firewall=firewall) as p:
        assert firewall.installed[-1] == [(MAC_TOKEN, 3600 - 120)]
        assert p.service.store.get(CLIENTS["127.0.0.2"]) is None


async def test_firewall_failure_bills_nobody_and_says_so(tmp_path):
    """The firewall is the portal's door: it moves before the check-in is sent, so when
    it fails nobody is billed, and the visitor is told in their language (503)."""
    clock = Clock()
    firewall = RecordingFirewall(clock, fail=True)
    async with (
        running_portal(tmp_path, clock=clock, firewall=firewall) as portal,
        portal.session(**{"Accept-Language": "de"}) as s,
    ):
        status, page = await sign_in(s, portal.url, "ada@example.com", "ada-demo")
        assert portal.space.check_ins_of(ADA) == []
        assert portal.signed_in == []
    assert status == 503
    assert "deshalb wurdest du nicht eingecheckt" in page


async def test_cobot_down_is_explained(portal):
    portal.space.faults.mode = "error"
    async with portal.session() as s:
        status, page = await sign_in(s, portal.url, "ada@example.com", "ada-demo")
    assert status == 503
    assert "Cobot cannot be reached" in page


async def test_language_choice_by_link_and_form(portal):
    async with portal.session() as s:
        async with s.get(portal.url + "/?lang=de") as resp:
            page = await resp.text()
        assert 'name="lang" value="de"' in page
        assert 'href="/?lang=en"' in page
        # A made-up language falls back, it is never reflected.
        async with s.get(portal.url + "/?lang=%3Cscript%3E") as resp:
            page = await resp.text()
        assert "<script>" not in page
        assert '<html lang="en">' in page
        status, page = await sign_in(s, portal.url, "ada@example.com", "x", lang="de")
    assert status == 403
    assert "Login oder Passwort ist falsch." in page


async def test_login_is_escaped_when_shown_again(portal):
    evil = '"><script>alert(1)</script>'
    async with portal.session() as s:
        _status, page = await sign_in(s, portal.url, evil, "x")
    assert "<script>alert(1)</script>" not in page
    assert html.escape(evil, quote=True) in page


async def test_oversize_and_malformed_requests_get_answers_not_crashes(portal):
    async with portal.session() as s:
        async with s.get(portal.url + "/") as resp:
            token = csrf_of(await resp.text())
        big = {"csrf": token, "login": "a" * 10_000, "password": "x"}
        async with s.post(portal.url + "/sign-in", data=big) as resp:
            assert resp.status == 413
        async with s.get(portal.url + "/?" + "q" * 1500) as resp:
            assert resp.status == 414
        async with s.post(
            portal.url + "/sign-in",
            data=b"\xff\xfe\x00garbage",
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        ) as resp:
            assert resp.status in (400, 403)
        async with s.post(portal.url + "/sign-in", json={"login": "a"}) as resp:
            assert resp.status == 415
        async with s.put(portal.url + "/sign-in") as resp:
            assert resp.status == 404
    # Raw garbage, an endless header and a request line far too long: each connection
    # gets an error or is closed, and the portal keeps serving.
    host, port = portal.service.addresses[0]
    for raw in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 200,  # a TLS hello
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /sign-in HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: 99999999\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\nabc" % (host.encode(), port),
    ):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(200), 5)
        assert answer == b"" or re.match(rb"HTTP/1\.[01] 4\d\d ", answer), answer
        writer.close()
    async with portal.session() as s, s.get(portal.url + "/") as resp:
        assert resp.status == 200


async def test_requests_from_outside_the_lan_subnets_are_refused(tmp_path):
    async with (
        running_portal(tmp_path, lan_subnets=("10.0.0.0/8",)) as portal,
        portal.session() as s,
        s.get(portal.url + "/") as resp,
    ):
        assert resp.status == 403


async def test_passwords_are_never_logged(portal, capsys):
    import structlog

    with structlog.testing.capture_logs() as logs:
        async with portal.session() as s:
            await sign_in(s, portal.url, "ada@example.com", "s3cret-Passw0rd")
            await sign_in(s, portal.url, "ada@example.com", "ada-demo")
    text = repr(logs) + capsys.readouterr().err
    assert "s3cret-Passw0rd" not in text
    assert "ada-demo" not in text
    assert MAC1 not in text
    assert any(e["event"] == "portal_sign_in" for e in logs)


async def test_stops_cleanly_without_leaking_tasks(tmp_path):
    before = set(asyncio.all_tasks())
    async with (
        running_portal(tmp_path) as portal,
        portal.session() as s,
        s.get(portal.url + "/") as resp,
    ):
        assert resp.status == 200
    await asyncio.sleep(0)
    leaked = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert not leaked, leaked


async def test_port_in_use_is_a_clear_error(tmp_path):
    async with running_portal(tmp_path / "a") as first:
        port = first.service.addresses[0][1]
        with pytest.raises(Exception, match=f"cannot listen on port {port}"):
            async with running_portal(tmp_path / "b", port=port):
                pass


async def test_session_cookie_is_strict(portal):
    async with portal.session() as s, s.get(portal.url + "/") as resp:
        cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


async def test_client_error_does_not_escape(portal, monkeypatch):
    async def broken(ip: str):
        raise RuntimeError("boom")

    monkeypatch.setattr(portal.service, "client_state", broken)
    async with portal.session() as s, s.get(portal.url + "/") as resp:
        assert resp.status == 500
    monkeypatch.undo()
    async with portal.session() as s, s.get(portal.url + "/") as resp:
        assert resp.status == 200


async def test_a_body_that_never_comes_times_out(portal, monkeypatch):
    from gateway.portal import app as portal_app

    monkeypatch.setattr(portal_app, "BODY_DEADLINE", 0.2)
    host, port = portal.service.addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /sign-in HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: 100\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\nlog" % (host.encode(), port)
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(100), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


# -- the firewall is the portal's door: preview, firewall, then the check-in ----------


class CountingFirewall(RecordingFirewall):
    """Notes how many check-ins Cobot had when the device was let out; ``then`` runs
    right after (a fault injected between the firewall and the check-in)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.space: object = None
        self.check_ins_when_allowed: list[int] = []
        self.then: object = None

    async def allow(self, mac: str, seconds: float) -> None:
        await super().allow(mac, seconds)
        self.check_ins_when_allowed.append(len(self.space.check_ins_of(ADA)))  # type: ignore[attr-defined]
        if callable(self.then):
            self.then()


async def test_the_device_is_let_out_before_the_member_is_billed(tmp_path):
    clock = Clock()
    firewall = CountingFirewall(clock)
    async with running_portal(tmp_path, clock=clock, firewall=firewall) as portal:
        firewall.space = portal.space
        async with portal.session() as s:
            status, page = await sign_in(s, portal.url, "ada@example.com", "ada-demo")
        assert status == 200, page
        assert firewall.check_ins_when_allowed == [0]  # out first, billed after
        assert len(portal.space.check_ins_of(ADA)) == 1


async def test_a_check_in_failing_after_the_firewall_shuts_the_device_out_again(tmp_path):
    clock = Clock()
    firewall = CountingFirewall(clock)
    async with running_portal(tmp_path, clock=clock, firewall=firewall) as portal:
        firewall.space = portal.space
        firewall.then = lambda: setattr(portal.space.faults, "mode", "error")
        async with portal.session() as s:
            status, page = await sign_in(s, portal.url, "ada@example.com", "ada-demo")
        portal.space.faults.mode = None
        assert status == 503
        assert "Cobot cannot be reached" in page
        assert portal.space.check_ins_of(ADA) == []
        assert MAC1 not in firewall.allowed  # let out for the check-in, shut out again
        assert [e[0] for e in firewall.events if e[0] != "forget"] == ["allow", "revoke"]
        assert portal.signed_in == []


async def test_a_device_of_a_member_checked_in_elsewhere_is_let_out_when_it_asks(tmp_path):
    """Checked in by card at the door: their registered phone is not announced again by
    the presence reader, so the portal lets it out on its first request (the captive
    probe) without the page and without a second check-in."""
    clock = Clock()
    until = clock() + timedelta(hours=8)
    known = {MAC1: until}
    async with (
        running_portal(tmp_path, clock=clock, checked_in_until=known.get) as portal,
        portal.session() as s,
    ):
        async with s.get(
            portal.url + "/hotspot-detect.html", headers={"Host": "captive.apple.com"}
        ) as resp:
            assert "<BODY>Success</BODY>" in await resp.text()
        assert portal.firewall.allowed == {MAC1: until}
        assert portal.space.check_ins_of(ADA) == []
    async with (
        running_portal(tmp_path / "other", clock=clock, checked_in_until={}.get) as portal,
        portal.session() as s,
        s.get(
            portal.url + "/hotspot-detect.html",
            headers={"Host": "captive.apple.com"},
            allow_redirects=False,
        ) as resp,
    ):
        assert resp.status == 302  # not checked in: captive, sent to the page
        assert portal.firewall.allowed == {}
