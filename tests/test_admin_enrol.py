"""Enrolling a card by tapping it: a pty serial reader in enrolment mode hands the next
unknown card to the admin page; registered through the simulated Cobot
(``POST /api/check_in_tokens``), the card's next tap opens the door."""

from __future__ import annotations

import asyncio
import os
import re
import tty

import pytest

from gateway.doors.base import EnrolSignal
from gateway.sim.seed import ADA, GRACE
from tests.admin_support import admin_rig, csrf_of, login
from tests.harness import eventually

pytestmark = pytest.mark.real

NEW_CARD = "DEADBEEF01"
GRACES_OTHER_CARD = "CAFEBABE02"


@pytest.fixture
def pty():
    master, slave = os.openpty()
    tty.setraw(master)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def capture_id(page: str) -> str:
    match = re.search(r'action="/enrol/([A-Za-z0-9_-]+)/register"', page)
    assert match, "no captured card on the page"
    return match.group(1)


async def capture_card(rig, client, master: int, card: str) -> str:
    """Sign in, arm reader "front" from the page, tap ``card``: the page with it."""
    gw = rig.gateway
    await eventually(lambda: gw.status()["readers"]["front"]["state"] == "ready")
    await login(client)
    async with client.get("/enrol") as r:
        page = await r.text()
    await client.post("/enrol/start", data={"csrf": csrf_of(page), "reader": "front"})
    os.write(master, f"{card}\n".encode())
    await eventually(lambda: gw.admin is not None and gw.admin.enrolment.captures())
    async with client.get("/enrol") as r:
        return str(await r.text())


async def test_enrol_a_card_by_tapping_it(tmp_path, pty):
    master, port = pty
    async with admin_rig(tmp_path, serial_port=port) as rig, rig.client() as client:
        gw = rig.gateway
        await eventually(lambda: gw.status()["readers"]["front"]["state"] == "ready")
        await login(client)
        async with client.get("/enrol") as r:
            page = await r.text()
        async with client.post(
            "/enrol/start", data={"csrf": csrf_of(page), "reader": "front"}
        ) as r:
            assert "waits for a new card" in await r.text()
        async with client.get("/events") as stream:
            await stream.content.readuntil(b"\n\n")  # the first status
            os.write(master, f"{NEW_CARD}\n".encode())
            async with asyncio.timeout(5):
                chunk = b""
                while b"event: enrol" not in chunk:
                    chunk = await stream.content.readuntil(b"\n\n")
            assert NEW_CARD not in chunk.decode() and NEW_CARD[-2:].encode() in chunk
        # Captured, not decided: no door, no tap in the log.
        assert rig.door.opened == 0 and not gw.admin.feed.recent  # type: ignore[union-attr]
        async with client.get("/enrol") as r:
            page = await r.text()
        assert NEW_CARD not in page and "Ada Lovelace" in page
        async with client.post(
            f"/enrol/{capture_id(page)}/register",
            data={"csrf": csrf_of(page), "membership_id": ADA},
        ) as r:
            done = await r.text()
        assert "is registered for Ada Lovelace" in done, done
        assert rig.space.tokens[NEW_CARD] == ADA  # at Cobot
        member = gw.cache.lookup(NEW_CARD)
        assert member is not None and member.id == ADA  # and here, before any sync
        # Enrolment mode ended with the capture: the next tap is decided and opens.
        await asyncio.sleep(0.3)  # past the reader's debounce
        os.write(master, f"{NEW_CARD}\n".encode())
        await eventually(lambda: rig.door.opened == 1)
        # The door opens before the decision's hooks run: wait for the feed too.
        await eventually(lambda: len(gw.admin.feed.recent) == 1)  # type: ignore[union-attr]
        assert gw.admin.feed.recent[-1].member == "Ada Lovelace"  # type: ignore[union-attr]

        # Revoke it from the page (asked first): gone at Cobot and here at once.
        async with client.get("/enrol") as r:
            page = await r.text()
        refs = re.findall(r'action="/cards/([0-9a-f]{24})/revoke"', page)
        assert NEW_CARD not in page and "********01" in page
        assert rig.gateway.admin is not None
        ref = next(
            ref for ref, shown, _m in await rig.gateway.admin.cards() if shown.endswith("01")
        )
        assert ref in refs
        async with client.post(f"/cards/{ref}/revoke", data={"csrf": csrf_of(page)}) as r:
            assert "stops opening the door" in await r.text()
        assert NEW_CARD in rig.space.tokens
        async with client.post(
            f"/cards/{ref}/revoke", data={"csrf": csrf_of(page), "confirm": "yes"}
        ) as r:
            assert "is revoked" in await r.text()
        assert NEW_CARD not in rig.space.tokens and gw.cache.lookup(NEW_CARD) is None
        await asyncio.sleep(0.3)
        os.write(master, f"{NEW_CARD}\n".encode())
        await eventually(lambda: len(gw.admin.feed.recent) == 2)  # type: ignore[union-attr]
        assert rig.door.opened == 1 and not gw.admin.feed.recent[-1].opened  # type: ignore[union-attr]


async def test_a_card_registered_to_someone_else_is_refused_with_whose(tmp_path, pty):
    master, port = pty
    async with admin_rig(tmp_path, serial_port=port) as rig, rig.client() as client:
        gw = rig.gateway
        rig.space.create_token(GRACE, GRACES_OTHER_CARD)  # at Cobot, not yet synced here
        page = await capture_card(rig, client, master, GRACES_OTHER_CARD)
        async with client.post(
            f"/enrol/{capture_id(page)}/register",
            data={"csrf": csrf_of(page), "membership_id": ADA},
        ) as r:
            answer = await r.text()
        note = re.search(r'<p class="msg err" role="status">([^<]*)</p>', answer)
        assert note, answer
        # Whose, redacted like a card number: "**********er".
        assert note.group(1).startswith("Not registered: card already registered to ")
        assert "Grace" not in note.group(1) and note.group(1).endswith("er")
        assert rig.space.tokens[GRACES_OTHER_CARD] == GRACE
        assert gw.cache.lookup(GRACES_OTHER_CARD) is None
        # The reader's door showed it all: waiting, the card read, then the refusal.
        await eventually(lambda: len(rig.door.signals) == 3)
        assert rig.door.signals == [EnrolSignal.WAITING, EnrolSignal.CAPTURED, EnrolSignal.ENDED]
        # An unknown membership id is not sent to Cobot at all.
        async with client.post(
            f"/enrol/{capture_id(page)}/register",
            data={"csrf": csrf_of(page), "membership_id": "nobody"},
        ) as r:
            assert "Pick a member" in await r.text()


async def test_a_member_without_a_card_by_membership_id(tmp_path, pty):
    master, port = pty
    mary = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
    async with admin_rig(tmp_path, serial_port=port) as rig, rig.client() as client:
        gw = rig.gateway
        rig.space.add_member("Mary Jackson", "mary@example.com", "mary-demo", id=mary)
        page = await capture_card(rig, client, master, NEW_CARD)
        assert "Mary Jackson" not in page  # no card: the cache does not know her
        form = {"csrf": csrf_of(page), "membership_id": ADA, "other_id": "0" * 32}
        async with client.post(f"/enrol/{capture_id(page)}/register", data=form) as r:
            assert "Not registered: Cobot refused" in await r.text()
        form["other_id"] = mary
        async with client.post(f"/enrol/{capture_id(page)}/register", data=form) as r:
            assert "is registered for Mary Jackson" in await r.text()
        member = gw.cache.lookup(NEW_CARD)
        assert member is not None and member.id == mary and member.name == "Mary Jackson"


async def test_find_a_member_by_email_only_while_checked_in(tmp_path, pty):
    """Cobot has no member search; ``GET /api/check_in?login=:email`` (scope checkin)
    finds a member through their active check-in, and 404s when they have none."""
    master, port = pty
    mary = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
    async with admin_rig(tmp_path, serial_port=port) as rig, rig.client() as client:
        gw = rig.gateway
        rig.space.add_member("Mary Jackson", "mary@example.com", "mary-demo", id=mary)
        page = await capture_card(rig, client, master, NEW_CARD)
        cid = capture_id(page)
        assert f'action="/enrol/{cid}/find"' in page

        async def find(email: str) -> str:
            async with client.post(
                f"/enrol/{cid}/find", data={"csrf": csrf_of(page), "email": email}
            ) as r:
                assert r.status == 200
                return await r.text()

        asked = len(rig.space.requests)
        assert "not an e-mail address" in await find("mary at example")
        assert len(rig.space.requests) == asked, "nothing sent to Cobot for that"
        answer = await find("mary@example.com")
        assert (
            "Cobot only finds a member by e-mail while they are checked in; ask them to check "
            "in, or pick them from the known memberships / type the membership id." in answer
        )
        searched = [q for q in rig.space.requests if q.path == "/api/check_in"]
        assert searched and searched[-1].status == 404
        # Cobot failing is not "not checked in": the page says Cobot could not be asked.
        rig.space.faults.set("error", status=503, paths=["/api/check_in"])
        assert "Cobot could not be asked: " in await find("mary@example.com")
        rig.space.faults.set(None)
        # Checked in (over HTTP, as the portal would): now Cobot finds her.
        await gw.client.check_in(login="mary@example.com", password="mary-demo")
        answer = await find("Mary@Example.com")
        assert "Found Mary Jackson (checked in)" in answer
        assert f'<option value="{mary}" selected>Mary Jackson (found by e-mail)</option>' in answer
        async with client.post(
            f"/enrol/{cid}/register", data={"csrf": csrf_of(answer), "membership_id": mary}
        ) as r:
            assert "is registered for Mary Jackson" in await r.text()
        assert rig.space.tokens[NEW_CARD] == mary
        member = gw.cache.lookup(NEW_CARD)
        assert member is not None and member.id == mary
        # An id nobody found or knows is still refused before any call.
        assert gw.admin is not None and gw.admin.found_member("0" * 32) is None
        assert "mary@example.com" not in "".join(str(e) for e in gw.admin.feed.recent)
