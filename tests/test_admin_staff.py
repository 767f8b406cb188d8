"""The *Staff* page over real HTTP: a gateway with ``[moco]`` against the simulated
Cobot and MOCO. Who is clocked in and since when, what waits for MOCO while it fails,
MOCO online/offline, English and German; no page and no link without ``[moco]``."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from gateway.moco.model import fmt_time, minute_of
from gateway.moco.service import MocoService
from gateway.moco_sim import ACCOUNT_KEY
from tests.admin_support import admin_rig, login, staff_rig
from tests.harness import eventually
from tests.moco_helpers import OWN_KEY, STAFF, STAFF_OWN_KEY, USER, USER_OWN

pytestmark = pytest.mark.real


def clocked_in(moco: MocoService, user_id: int) -> bool:
    known = moco.staff.state(user_id)
    return known is not None and known.clocked_in


def cells(page: str, user_id: int) -> list[str]:
    """The text of the cells of ``user_id``'s row in the staff table."""
    body = page.split('<tbody id="clocked">', 1)[1].split("</tbody>", 1)[0]
    for row in re.findall(r"<tr>(.*?)</tr>", body):
        found = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", row)]
        if found[1] == str(user_id):
            return found
    raise AssertionError(f"no row for user {user_id}")


async def test_staff_page_without_moco_is_not_there(tmp_path):
    async with admin_rig(tmp_path) as rig, rig.client() as client:
        await login(client)
        async with client.get("/") as r:
            assert 'href="/staff"' not in await r.text()
        async with client.get("/staff") as r:
            assert r.status == 404


async def test_staff_page_shows_who_is_clocked_in_and_what_waits(tmp_path):
    async with staff_rig(tmp_path) as r, r.client() as client:
        async with client.get("/staff", allow_redirects=False) as resp:
            assert resp.status == 303  # no page without a session
        await login(client)
        async with client.get("/") as resp:
            assert 'href="/staff"' in await resp.text()
        async with client.get("/staff") as resp:
            page = await resp.text()
        assert resp.status == 200
        assert '<span id="moco" class="pill ok">online</span>' in page
        assert cells(page, USER)[2] == "not clocked in"
        assert "Every staff tap has reached MOCO." in page

        r.clock.to_minute_start()
        tapped = r.clock.now()
        await r.tap(STAFF)
        moco = r.gateway.moco
        assert moco is not None
        await eventually(lambda: r.moco.of(USER) != [])
        await eventually(lambda: clocked_in(moco, USER))  # MOCO's answer has arrived
        async with client.get("/staff") as resp:
            page = await resp.text()
        assert cells(page, USER) == [
            "John Doe",
            str(USER),
            "clocked in",
            fmt_time(minute_of(tapped)),
        ]
        assert cells(page, USER_OWN)[2] == "not clocked in"
        assert '<dd id="staff-count">1</dd>' in page

        # MOCO fails: the next staff tap waits, listed with its user and time.
        r.moco.faults.set("error", status=503)
        r.clock.advance(120)
        await r.tap(STAFF_OWN_KEY)
        await eventually(lambda: moco.breaker.is_open and clocked_in(moco, USER_OWN))
        await eventually(lambda: r.gateway.outbox.depth >= 1)
        async with client.get("/staff") as resp:
            page = await resp.text()
        assert '<span id="moco" class="pill no">offline</span>' in page
        assert "503" in page  # MOCO's last error, as the breaker has it
        waiting = page.split("Waiting for MOCO", 1)[1]
        assert str(USER_OWN) in waiting and STAFF_OWN_KEY not in page and STAFF not in page
        assert ACCOUNT_KEY not in page and OWN_KEY not in page  # no secret on the page
        assert cells(page, USER_OWN)[2] == "clocked in"  # what the queued tap will do

        # The event stream tells an open Staff page that something changed.
        async with client.get("/events") as stream:
            first = await stream.content.readuntil(b"\n\n")
            version = json.loads(first.decode().split("data: ", 1)[1])["staff"]
            assert f'data-v="{version}"' in page
            r.moco.faults.clear()
            moco.breaker.probe_soon()
            moco.records.replayer.wake()
            await eventually(lambda: r.gateway.outbox.depth == 0, timeout=20)
            async with asyncio.timeout(15):
                while True:
                    chunk = (await stream.content.readuntil(b"\n\n")).decode()
                    if chunk.startswith("event: status"):
                        data = json.loads(chunk.split("data: ", 1)[1])
                        if data["staff"] != version:
                            break
        async with client.get("/staff?lang=de") as resp:
            page = await resp.text()
        assert '<span id="moco" class="pill ok">online</span>' in page
        assert "Alle Personalkarten sind bei MOCO angekommen." in page
        assert cells(page, USER_OWN)[2] == "eingestempelt" and ">Personal</a>" in page
