"""`checkin-gateway login` (issue 13, case 9): the whole OAuth flow, the CLI as a real
process, a real headless Chromium signing in on the simulated Cobot's pages; and the
simulator's authorization server refusing what a strict server refuses."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import parse_config
from gateway.login.oauth import Pkce
from gateway.login.scopes import required_scopes
from gateway.sim import demo_space, run_sim
from gateway.sim.model import Role
from tests.configs import daemon_config
from tests.conftest import require
from tests.daemon import REPO
from tests.test_portal_browser import CHROMIUM, CHROMIUM_ARGS

KEYBOARD = 'name = "front"\ntype = "keyboard"'
ALL_FOUR = ("checkin", "checkin_tokens", "read_check_ins", "write")


@pytest.fixture
async def browser() -> Any:
    require(Path(CHROMIUM).exists(), "Debian's chromium is not installed")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        require(False, "playwright is not installed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def start_login(cfg: Path) -> tuple[asyncio.subprocess.Process, str, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "login",
        "--config",
        str(cfg),
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "COBOT_ACCESS_TOKEN"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"login exited early: {lines}"
            lines.append(line.rstrip("\n"))
            if line.startswith("Waiting for the browser"):
                break
    url = next(x.strip() for x in lines if x.startswith("  http"))
    return proc, url, lines


@pytest.mark.real
async def test_login_in_chromium_stores_a_working_token(browser: Any, tmp_path: Path) -> None:
    space = demo_space()
    async with run_sim(space) as base_url:
        cfg = daemon_config(tmp_path, base_url, KEYBOARD)
        proc, url, lines = await start_login(cfg)
        assert lines[0] == f"Signing in to {base_url} for the scopes: {' '.join(ALL_FOUR)}"
        port = url.split("redirect_uri=http%3A%2F%2F127.0.0.1%3A", 1)[1].split("%2F", 1)[0]
        assert any(x.startswith(f"  ssh -L {port}:127.0.0.1:{port} ") for x in lines)
        assert "code_challenge_method=S256" in url
        page = await browser.new_page()
        await page.goto(url)
        assert "checkin" in await page.inner_text("ul")
        await page.fill("input[name=login]", "admin@example.com")
        await page.fill("input[name=password]", "wrong")
        await page.click("button[value=allow]")
        await page.wait_for_selector("text=Wrong e-mail or password.")
        await page.fill("input[name=login]", "admin@example.com")
        await page.fill("input[name=password]", "admin-demo")
        await page.click("button[value=allow]")
        await page.wait_for_selector("text=checkin-gateway is signed in")
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        text = out.decode()
        assert proc.returncode == 0, text + err.decode()
        token_file = tmp_path / "cobot-token"
        assert f"Token stored in {token_file} (mode 0600)." in text
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        access = space.access_tokens[token]
        assert access.role is Role.ADMIN
        assert access.scopes == frozenset(ALL_FOUR)
        assert "api token valid" in text and "FIX" not in text  # the doctor's checks
        assert token not in text + err.decode()  # never printed


@pytest.mark.real
async def test_login_refused_in_the_browser_stores_nothing(browser: Any, tmp_path: Path) -> None:
    async with run_sim(demo_space()) as base_url:
        cfg = daemon_config(tmp_path, base_url, KEYBOARD)
        proc, url, _ = await start_login(cfg)
        page = await browser.new_page()
        await page.goto(url)
        await page.click("button[value=deny]")
        await page.wait_for_selector("text=Login refused")
        async with asyncio.timeout(60):
            _, err = await proc.communicate()
    assert proc.returncode == 1
    assert err.decode().strip() == "error: authorization refused: the user said no"
    assert not (tmp_path / "cobot-token").exists()


def test_scopes_follow_the_configured_features(tmp_path: Path) -> None:
    base = {
        "gateway": {"state_dir": str(tmp_path)},
        "cobot": {"base_url": "https://co-up.cobot.me"},
        "readers": [{"name": "f", "type": "keyboard"}],
    }
    assert required_scopes(parse_config(base, "x")) == ALL_FOUR
    no_backdating = {**base, "queue": {"replay_with_valid_from": False}}
    assert required_scopes(parse_config(no_backdating, "x")) == ALL_FOUR[:3]


async def test_the_simulated_authorization_server_is_strict() -> None:
    space = demo_space()
    async with run_sim(space) as url, aiohttp.ClientSession() as http:
        async with http.get(url + "/.well-known/openid-configuration") as r:
            md = await r.json()
        assert md["code_challenge_methods_supported"] == ["S256"]
        reg = md["registration_endpoint"]
        for bad in ("http://localhost:8000/cb", "http://192.0.2.1/cb", "https://x/cb#frag"):
            async with http.post(
                reg, json={"redirect_uris": [bad], "token_endpoint_auth_method": "none"}
            ) as r:
                assert (r.status, (await r.json())["error"]) == (400, "invalid_redirect_uri")
        async with http.post(reg, json={"redirect_uris": ["http://127.0.0.1:5000/cb"]}) as r:
            assert r.status == 400  # a confidential client: not offered
        async with http.post(
            reg,
            json={
                "redirect_uris": ["http://127.0.0.1:5000/cb"],
                "token_endpoint_auth_method": "none",
            },
        ) as r:
            assert r.status == 201
            client_id = (await r.json())["client_id"]
        pkce = Pkce.new()
        base = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": "http://127.0.0.1:6123/cb",  # another port: RFC 8252 §7.3
            "scope": "checkin",
            "state": "s1",
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
        auth = md["authorization_endpoint"]

        async def authorize(**change: str) -> aiohttp.ClientResponse:
            return await http.get(auth, params={**base, **change}, allow_redirects=False)

        r = await authorize(code_challenge_method="plain")
        assert r.status == 302 and "error=invalid_request" in r.headers["Location"]
        assert "state=s1" in r.headers["Location"]
        r = await authorize(redirect_uri="http://127.0.0.1:6123/other")
        assert r.status == 400  # never redirected to an unregistered URI
        r = await authorize(scope="checkin admin")
        assert "error=invalid_scope" in r.headers["Location"]
        r = await authorize()
        assert r.status == 200
        request_id = (await r.text()).split('name="request_id" value="', 1)[1].split('"', 1)[0]
        async with http.post(
            auth,
            data={
                "request_id": request_id,
                "login": "admin@example.com",
                "password": "admin-demo",
                "decision": "allow",
            },
            allow_redirects=False,
        ) as r:
            location = r.headers["Location"]
        assert location.startswith("http://127.0.0.1:6123/cb?code=")
        code = location.split("code=", 1)[1].split("&", 1)[0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1:6123/cb",
            "client_id": client_id,
            "code_verifier": Pkce.new().verifier,  # not the one behind the challenge
        }
        async with http.post(md["token_endpoint"], json=form) as r:
            assert (r.status, (await r.json())["error"]) == (400, "invalid_request")
        async with http.post(md["token_endpoint"], data=form) as r:
            assert (r.status, (await r.json())["error"]) == (400, "invalid_grant")
        async with http.post(
            md["token_endpoint"], data={**form, "code_verifier": pkce.verifier}
        ) as r:
            assert (await r.json())["error"] == "invalid_grant"  # a code works once
