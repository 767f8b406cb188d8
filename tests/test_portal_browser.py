"""The sign-in flow in a real headless Chromium (Debian's, driven by Playwright).

The portal runs on loopback with the neighbour table injected: 127.0.0.1 is a LAN
client with a fixed MAC (tests/test_portal_netns.py covers the kernel's table). Set
PORTAL_SCREENSHOTS=DIR to keep the screenshots (docs/portal.png is made that way).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gateway.sim.seed import ADA
from tests.conftest import require
from tests.portal_support import CLIENTS, running_portal

pytestmark = pytest.mark.real

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
async def browser():
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


def _keep(shot: Path) -> None:
    target = os.environ.get("PORTAL_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


async def test_sign_in_in_chromium(browser, tmp_path):
    async with running_portal(tmp_path / "state", space_name="Co-Up Coworking") as portal:
        context = await browser.new_context(
            viewport={"width": 390, "height": 760},
            device_scale_factor=1,
            locale="en-GB",
            is_mobile=True,
        )
        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))

        # A probe from the captive device lands on the sign-in page.
        await page.goto(portal.url + "/generate_204")
        assert page.url == portal.url + "/"
        assert await page.title() == "Sign in to the Wi-Fi · Co-Up Coworking"
        heading = page.get_by_role("heading", name="Sign in to the Wi-Fi")
        assert await heading.is_visible()
        shot = tmp_path / "portal.png"
        await page.screenshot(path=str(shot), full_page=True)
        _keep(shot)

        # Wrong password: the reason, announced, and the login kept.
        await page.get_by_label("E-mail or username").fill("ada@example.com")
        await page.get_by_label("Password").fill("not-her-password")
        await page.get_by_role("button", name="Sign in and check in").click()
        alert = page.get_by_role("alert")
        assert await alert.inner_text() == "The login or password is wrong."
        assert await page.get_by_label("E-mail or username").input_value() == "ada@example.com"
        assert await page.get_by_label("Password").input_value() == ""
        shot = tmp_path / "portal-wrong-password.png"
        await page.screenshot(path=str(shot), full_page=True)
        _keep(shot)
        assert portal.firewall.allowed == {}

        # Right password, submitted from the keyboard: checked in and online.
        await page.get_by_label("Password").fill("ada-demo")
        await page.get_by_label("Password").press("Enter")
        status = page.get_by_role("status")
        await status.first.wait_for()
        assert await status.first.inner_text() == "Welcome, Ada Lovelace. You are checked in."
        assert "This device is online until" in await page.content()
        shot = tmp_path / "portal-online.png"
        await page.screenshot(path=str(shot), full_page=True)
        _keep(shot)
        assert CLIENTS["127.0.0.1"] in portal.firewall.allowed
        assert portal.space.tokens[CLIENTS["127.0.0.1"]] == ADA

        # The inline stylesheet is allowed by the CSP (no violation reported), and the
        # page loads nothing else. (Chromium also logs the refusal's 403 as an error.)
        blocked = [p for p in problems if "Content Security Policy" in p or "failed:" in p]
        assert blocked == []
        await context.close()


async def test_german_page_in_chromium(browser, tmp_path):
    async with running_portal(tmp_path / "state") as portal:
        context = await browser.new_context(locale="de-DE")
        page = await context.new_page()
        await page.goto(portal.url + "/")
        assert await page.get_attribute("html", "lang") == "de"
        await page.get_by_label("E-Mail-Adresse oder Benutzername").fill("alan@example.com")
        await page.get_by_label("Passwort").fill("alan-demo")
        await page.get_by_role("button", name="Anmelden und einchecken").click()
        alert = page.get_by_role("alert")
        assert "keine Zeitpässe mehr" in await alert.inner_text()
        # The language link switches to English, and the form keeps working.
        await page.get_by_role("link", name="English").click()
        assert await page.get_attribute("html", "lang") == "en"
        await context.close()


async def test_busy_and_broken_pages_in_chromium(browser, tmp_path, monkeypatch):
    """Issue 12 case 8 in a real browser: no rate-limit slot (a Retry-After in force)
    shows the portal's own 503 page in German, styled (CSP allows it), no traceback; a
    failing neighbour table shows the "try again" page, not a bare 500."""
    from gateway.cobot.ratelimit import Group, RateLimiter
    from gateway.errors import GatewayError

    limiter = RateLimiter({Group.CHECK_INS: 120, Group.DEFAULT: 60})
    limiter.block(Group.CHECK_INS, 60)
    async with running_portal(tmp_path / "state", limiter=limiter) as portal:
        context = await browser.new_context(locale="de-DE")
        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        await page.goto(portal.url + "/")
        await page.get_by_label("E-Mail-Adresse oder Benutzername").fill("ada@example.com")
        await page.get_by_label("Passwort").fill("ada-demo")
        async with page.expect_response(portal.url + "/sign-in") as answer:
            await page.get_by_role("button", name="Anmelden und einchecken").click()
        assert (await answer.value).status == 503
        alert = page.get_by_role("alert")
        assert "Gerade melden sich viele an" in await alert.inner_text()
        assert await page.get_attribute("html", "lang") == "de"
        # The form is still there to try again.
        assert await page.get_by_label("Passwort").is_visible()
        assert "Traceback" not in await page.content()
        shot = tmp_path / "portal-busy.png"
        await page.screenshot(path=str(shot), full_page=True)
        _keep(shot)

        async def broken(ip: str) -> object:
            raise GatewayError("ip neigh: timed out")

        monkeypatch.setattr(portal.service, "client_state", broken)
        response = await page.goto(portal.url + "/")
        assert response is not None
        assert response.status == 503
        assert await page.title() == "Etwas ist schiefgelaufen · Co-Up <Test> & Friends"
        assert "Bitte versuch es gleich noch einmal" in await page.get_by_role("alert").inner_text()
        blocked = [p for p in problems if "Content Security Policy" in p]
        assert blocked == []
        await context.close()
