"""The admin page in a real headless Chromium (Debian's, driven by Playwright) against
a running gateway and the simulated Cobot: log in, see a tap appear live, retry a failed
queue entry, download the CSV; enrol a card, found by e-mail; the Staff page with MOCO.
Set ADMIN_SCREENSHOTS=DIR to keep the screenshots (docs/admin*.png are made that way)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from gateway.sim.seed import RDM_TOKEN
from tests.admin_support import PASSWORD, admin_rig, staff_rig
from tests.harness import eventually
from tests.moco_helpers import STAFF, USER
from tests.test_portal_browser import browser  # noqa: F401 - the Chromium fixture

pytestmark = pytest.mark.real


def _keep(shot: Path) -> None:
    target = os.environ.get("ADMIN_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


async def sign_in(page, url: str, path: str = "/login") -> None:
    await page.goto(url + path)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(url + "/")


async def tap_to_enrol(page, master: int, card: str) -> None:
    """On *Enrol a card*: arm reader "front", tap ``card`` on the pty; the page reloads
    itself with the captured card."""
    await page.get_by_role("link", name="Enrol a card").click()
    await page.get_by_role("button", name="Wait for a card").click()
    await page.get_by_text("Reader front waits for a new card").first.wait_for()
    await page.wait_for_function("document.readyState === 'complete'")
    await asyncio.sleep(0.3)  # the page's event stream is open
    os.write(master, f"{card}\n".encode())
    await page.get_by_role("button", name="Register").wait_for()


async def test_admin_page_in_chromium(browser, tmp_path):  # noqa: F811
    async with admin_rig(tmp_path) as rig:
        context = await browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=1,
            locale="en-GB",
            is_mobile=True,
            accept_downloads=True,
        )
        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))

        await page.goto(rig.url + "/")
        assert page.url == rig.url + "/login"
        await page.get_by_label("Password").fill("not the password")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_text("Wrong password.").wait_for()
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(rig.url + "/")
        problems.clear()  # the wrong password's 403 above was meant
        await page.get_by_role("heading", name="Now").wait_for()
        await page.wait_for_selector("#live.ok")  # the event stream is open

        # A tap appears without a reload.
        await rig.tap(RDM_TOKEN)
        row = page.locator("#taps tr.tap").first
        await row.wait_for()
        text = await row.inner_text()
        assert "Ada Lovelace" in text and "opened-online" in text
        assert RDM_TOKEN not in await page.content()
        shot = tmp_path / "admin.png"
        await page.screenshot(path=str(shot), full_page=True)
        _keep(shot)

        # Retry a failed queue entry.
        entry_id = await rig.add_failed()
        await page.get_by_role("link", name="Queue").click()
        await page.wait_for_url(rig.url + "/queue")
        await page.get_by_text("refused: test").wait_for()
        await page.get_by_role("button", name="Retry").click()
        await page.get_by_text(f"Entry {entry_id} will be retried.").wait_for()
        got = await rig.gateway.outbox.get(entry_id)
        assert got is not None and got.state.value != "failed"

        # The access log, and its CSV.
        await page.get_by_role("link", name="Access log").click()
        await page.get_by_label("Member name or id").fill("Ada")
        await page.get_by_role("button", name="Search").click()
        await page.get_by_text("Ada Lovelace").first.wait_for()
        async with page.expect_download() as info:
            await page.get_by_role("link", name="Download CSV").click()
        download = await info.value
        csv_path = tmp_path / "log.csv"
        await download.save_as(csv_path)
        csv_text = csv_path.read_text()
        assert "Ada Lovelace" in csv_text and RDM_TOKEN not in csv_text

        # German, then sign out: the page is gone.
        await page.get_by_role("link", name="Deutsch").click()
        await page.get_by_role("heading", name="Zutrittsprotokoll").wait_for()
        await page.get_by_role("button", name="Abmelden").click()
        await page.wait_for_url(rig.url + "/login")
        # Leaving a page aborts its event stream; nothing else may fail.
        assert [p for p in problems if not p.endswith("/events")] == []
        await context.close()


async def test_enrol_a_card_in_chromium(browser, tmp_path):  # noqa: F811
    import tty

    master, slave = os.openpty()
    tty.setraw(master)
    new_card = "DEADBEEF01"
    try:
        async with admin_rig(tmp_path, serial_port=os.ttyname(slave)) as rig:
            gw = rig.gateway
            context = await browser.new_context(
                viewport={"width": 390, "height": 844}, locale="de-DE", is_mobile=True
            )
            page = await context.new_page()
            await sign_in(page, rig.url, "/login?lang=en")
            await tap_to_enrol(page, master, new_card)
            assert new_card not in await page.content()
            await page.get_by_label("Member", exact=True).select_option(label="Ada Lovelace")
            await page.get_by_role("button", name="Register").click()
            await page.get_by_text("is registered for Ada Lovelace").wait_for()
            await asyncio.sleep(0.3)  # past the reader's debounce
            os.write(master, f"{new_card}\n".encode())
            await eventually(lambda: rig.door.opened == 1)
            assert gw.admin is not None
            await eventually(lambda: len(gw.admin.feed.recent) == 1)  # hooks run after the door
            assert gw.admin.feed.recent[-1].member == "Ada Lovelace"
            await context.close()
    finally:
        os.close(master)
        os.close(slave)


async def test_staff_page_in_chromium(browser, tmp_path):  # noqa: F811
    """With [moco]: a staff card tapped shows up as clocked in, without a reload."""
    async with staff_rig(tmp_path) as rig:
        context = await browser.new_context(
            viewport={"width": 390, "height": 844}, locale="en-GB", is_mobile=True
        )
        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        await sign_in(page, rig.url)
        await page.get_by_role("link", name="Staff").click()
        await page.get_by_role("heading", name="Staff").wait_for()
        row = page.locator("#clocked tr", has_text=str(USER))
        assert "not clocked in" in await row.inner_text()
        await page.wait_for_function("document.readyState === 'complete'")
        await asyncio.sleep(0.3)  # the page's event stream is open

        rig.clock.to_minute_start()
        await rig.tap(STAFF)
        # The page reloads itself at the next status event (every 5 s at most).
        await page.locator("#clocked tr", has_text="John Doe").wait_for(timeout=15_000)
        text = await page.locator("#clocked tr", has_text="John Doe").inner_text()
        assert "clocked in" in text and "not clocked in" not in text
        assert await page.locator("#staff-count").inner_text() == "1"
        assert STAFF not in await page.content()
        shot = tmp_path / "admin-staff.png"
        await page.screenshot(path=str(shot), full_page=True)
        _keep(shot)
        await page.get_by_role("link", name="Deutsch").click()
        await page.get_by_role("heading", name="Personal").wait_for()
        assert (
            "eingestempelt" in await page.locator("#clocked tr", has_text="John Doe").inner_text()
        )
        assert [p for p in problems if "events" not in p] == []
        await context.close()


async def test_find_a_member_by_email_in_chromium(browser, tmp_path):  # noqa: F811
    """The e-mail search on a captured card: nobody while the member is not checked in
    (said plainly), then found and offered once they are; the card then opens."""
    import tty

    master, slave = os.openpty()
    tty.setraw(master)
    new_card = "DEADBEEF02"
    mary = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
    try:
        async with admin_rig(tmp_path, serial_port=os.ttyname(slave)) as rig:
            gw = rig.gateway
            rig.space.add_member("Mary Jackson", "mary@example.com", "mary-demo", id=mary)
            context = await browser.new_context(
                viewport={"width": 390, "height": 844}, locale="en-GB", is_mobile=True
            )
            page = await context.new_page()
            await sign_in(page, rig.url)
            await tap_to_enrol(page, master, new_card)
            email = page.get_by_label("Find a member by e-mail")
            await email.fill("mary@example.com")
            await page.get_by_role("button", name="Find").click()
            await page.get_by_text("Cobot only finds a member by e-mail while they are").wait_for()
            await gw.client.check_in(login="mary@example.com", password="mary-demo")
            await page.get_by_label("Find a member by e-mail").fill("mary@example.com")
            await page.get_by_role("button", name="Find").click()
            await page.get_by_text("Found Mary Jackson (checked in)").wait_for()
            chosen = page.get_by_label("Member", exact=True)
            assert await chosen.input_value() == mary
            shot = tmp_path / "admin-enrol.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot)
            await page.get_by_role("button", name="Register").click()
            await page.get_by_text("is registered for Mary Jackson").wait_for()
            await asyncio.sleep(0.3)  # past the reader's debounce
            os.write(master, f"{new_card}\n".encode())
            await eventually(lambda: rig.door.opened == 1)
            await context.close()
    finally:
        os.close(master)
        os.close(slave)
