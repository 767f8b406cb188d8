"""The simulated Cobot server over real HTTP on loopback: every documented behaviour."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.sim import Role, SimSpace
from gateway.sim.model import ALREADY_CHECKED_IN
from gateway.sim.seed import (
    ADA,
    ADA_TOKEN,
    ADMIN_TOKEN,
    ALAN,
    GRACE,
    HEDY,
    KATHERINE,
    LIMITED_TOKEN,
    MAC_TOKEN,
    NFC_TOKEN,
    NO_PASS_TOKEN,
    PASS_TOKEN,
    RDM_TOKEN,
    UNCONFIRMED_TOKEN,
    demo_space,
)
from tests.sim_helpers import MORNING, Answer, Sim, serve

TIME_RE = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} \+0000$")
END_OF_MORNING_DAY = "2026/03/02 23:59:59 +0000"


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with serve() as s:
        yield s


def created(sim: Sim) -> int:
    return sum(sim.space.check_in_creations.values())


# --- authentication and permissions ------------------------------------------------


async def test_missing_or_unknown_bearer_is_401_json(sim: Sim) -> None:
    for token in (None, "not-a-token"):
        answer = await sim.call("POST", "/api/check_ins", token=token, json_body={"token": "x"})
        assert answer.status == 401
        assert answer.body["error"] == "invalid_token"
        assert "Bearer" in answer.headers["WWW-Authenticate"]
    basic = await sim.call(
        "GET", "/api/check_in_tokens", token=None, headers={"Authorization": "Basic abc"}
    )
    assert basic.status == 401
    assert created(sim) == 0


async def test_missing_scope_is_403_json(sim: Sim) -> None:
    answer = await sim.call("GET", "/api/check_in_tokens", token=LIMITED_TOKEN)
    assert answer.status == 403
    assert answer.body == {"error": "insufficient_scope", "scope": "checkin_tokens"}
    write = await sim.call("POST", f"/api/memberships/{ADA}/work_sessions", token=LIMITED_TOKEN)
    assert write.status == 403
    assert not sim.space.check_ins


async def test_admin_only_endpoints_refuse_members(sim: Sim) -> None:
    for method, path in [
        ("GET", "/api/check_in_tokens"),
        ("POST", "/api/check_in_tokens"),
        ("GET", f"/api/check_in_tokens/{RDM_TOKEN}"),
        ("DELETE", f"/api/check_in_tokens/{RDM_TOKEN}"),
        ("GET", "/api/check_in?token=" + RDM_TOKEN),
        ("GET", "/api/check_ins/0123456789"),
        ("GET", f"/api/memberships/{ADA}/check_ins?from=2026-03-01&to=2026-03-03"),
    ]:
        answer = await sim.call(method, path, token=ADA_TOKEN)
        assert answer.status == 403, (method, path)
        assert answer.body["error"] == "forbidden"
    assert RDM_TOKEN in sim.space.tokens


async def test_member_checks_in_only_themselves_and_registers_no_tokens(sim: Sim) -> None:
    other = await sim.call(
        "POST", "/api/check_ins", token=ADA_TOKEN, json_body={"token": NFC_TOKEN}
    )
    assert other.status == 403
    register = await sim.call(
        "POST",
        "/api/check_ins",
        token=ADA_TOKEN,
        json_body={"login": "ada@example.com", "password": "ada-demo", "token": "NEW1"},
    )
    assert register.status == 403
    assert "NEW1" not in sim.space.tokens
    guest = await sim.call(
        "POST",
        "/api/check_ins",
        token=ADA_TOKEN,
        json_body={"login": "guest@example.com", "password": "guest-demo"},
    )
    assert guest.status == 403
    own = await sim.call("POST", "/api/check_ins", token=ADA_TOKEN, json_body={"token": RDM_TOKEN})
    assert own.status == 201
    assert own.body["membership"]["id"] == ADA
    assert created(sim) == 1


async def test_member_work_sessions_and_check_out_only_for_themselves(sim: Sim) -> None:
    other = await sim.call("POST", f"/api/memberships/{GRACE}/work_sessions", token=ADA_TOKEN)
    assert other.status == 403
    own = await sim.call("POST", f"/api/memberships/{ADA}/work_sessions", token=ADA_TOKEN)
    assert own.status == 201
    out_other = await sim.call(
        "DELETE", f"/api/memberships/{GRACE}/check_ins/current", token=ADA_TOKEN
    )
    assert out_other.status == 403
    out_own = await sim.call("DELETE", f"/api/memberships/{ADA}/check_ins/current", token=ADA_TOKEN)
    assert out_own.status == 200


# --- POST /api/check_ins ---------------------------------------------------------------


async def test_check_in_with_login_and_password_has_the_documented_shape(sim: Sim) -> None:
    answer = await sim.call(
        "POST", "/api/check_ins", json_body={"login": "ada@example.com", "password": "ada-demo"}
    )
    assert answer.status == 201
    body = answer.body
    assert set(body) == {"id", "valid_from", "valid_until", "membership"}
    assert re.fullmatch(r"[0-9a-f]{10}", body["id"])
    assert body["valid_from"] == "2026/03/02 09:00:00 +0000"
    assert body["valid_until"] == END_OF_MORNING_DAY
    assert body["membership"] == {"id": ADA, "name": "Ada Lovelace"}
    assert sim.space.check_in_creations == {(ADA, MORNING.date()): 1}
    assert answer.headers["Content-Type"].startswith("application/json")


async def test_login_is_case_insensitive_password_is_not(sim: Sim) -> None:
    ok = await sim.call(
        "POST", "/api/check_ins", json_body={"login": "Ada@Example.COM", "password": "ada-demo"}
    )
    assert ok.status == 201
    wrong = await sim.call(
        "POST", "/api/check_ins", json_body={"login": "grace@example.com", "password": "GRACE-DEMO"}
    )
    assert wrong.status == 422


@pytest.mark.parametrize(
    "body",
    [
        {"login": "ada@example.com", "password": "wrong"},
        {"login": "nobody@example.com", "password": "ada-demo"},
        {"login": "ada@example.com", "password": ""},
        {"login": "ada@example.com"},  # no password, and not a token either
        {},
    ],
)
async def test_wrong_credentials_are_the_documented_422(sim: Sim, body: dict[str, str]) -> None:
    answer = await sim.call("POST", "/api/check_ins", json_body=body)
    assert answer.status == 422
    assert answer.body == {"errors": {"login": "Login or password incorrect."}}
    assert created(sim) == 0


async def test_unknown_token_is_422(sim: Sim) -> None:
    answer = await sim.call("POST", "/api/check_ins", json_body={"token": "FFFFFFFFFF"})
    assert answer.status == 422
    assert answer.body == {"errors": {"token": "Token unknown."}}


async def test_token_and_token_as_login_check_in(sim: Sim) -> None:
    by_token = await sim.call("POST", "/api/check_ins", json_body={"token": NFC_TOKEN})
    assert by_token.status == 201
    assert by_token.body["membership"]["id"] == GRACE
    as_login = await sim.call("POST", "/api/check_ins", json_body={"login": MAC_TOKEN})
    assert as_login.status == 201
    assert as_login.body["membership"]["name"] == "Margaret Hamilton"


async def test_tokens_compare_exactly(sim: Sim) -> None:
    answer = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN.lower()})
    assert answer.status == 422


async def test_preview_creates_nothing_and_uses_no_time_pass(sim: Sim) -> None:
    passes = list(sim.space.member(KATHERINE).time_passes)
    answer = await sim.call(
        "POST", "/api/check_ins", params={"preview": "true"}, json_body={"token": PASS_TOKEN}
    )
    assert answer.status == 200
    assert "id" not in answer.body  # nothing was created, so there is nothing to name
    assert "time_pass" not in answer.body
    assert answer.body["membership"]["id"] == KATHERINE
    assert answer.body["valid_until"] == END_OF_MORNING_DAY
    assert sim.space.member(KATHERINE).time_passes == passes
    assert not sim.space.check_ins
    assert created(sim) == 0


async def test_preview_only_when_exactly_true(sim: Sim) -> None:
    # Anything but the documented "true" is a real check-in at Cobot: here too.
    answer = await sim.call(
        "POST", "/api/check_ins", params={"preview": "1"}, json_body={"token": RDM_TOKEN}
    )
    assert answer.status == 201
    assert created(sim) == 1


async def test_preview_refusals_match_real_ones(sim: Sim) -> None:
    for token, errors in [
        (NO_PASS_TOKEN, {"base": "No time passes left."}),
        (UNCONFIRMED_TOKEN, {"membership": "Membership not confirmed yet."}),
    ]:
        for params in ({"preview": "true"}, None):
            answer = await sim.call(
                "POST", "/api/check_ins", params=params, json_body={"token": token}
            )
            assert answer.status == 422
            assert answer.body == {"errors": errors}
    assert created(sim) == 0


async def test_already_checked_in_returns_the_original_with_200(sim: Sim) -> None:
    first = await sim.call("POST", "/api/check_ins", json_body={"token": PASS_TOKEN})
    assert first.status == 201
    assert first.body["time_pass"] == {"id": sim.space.member(KATHERINE).used_time_passes[0]}
    sim.space.advance(3600)
    again = await sim.call("POST", "/api/check_ins", json_body={"token": PASS_TOKEN})
    assert again.status == 200
    assert again.body == first.body
    preview = await sim.call(
        "POST", "/api/check_ins", params={"preview": "true"}, json_body={"token": PASS_TOKEN}
    )
    assert preview.status == 200
    assert preview.body == first.body
    member = sim.space.member(KATHERINE)
    assert (len(member.time_passes), len(member.used_time_passes)) == (2, 1)
    assert sim.space.check_in_creations == {(KATHERINE, MORNING.date()): 1}


async def test_time_passes_run_out_day_by_day(sim: Sim) -> None:
    used = []
    for _day in range(3):
        answer = await sim.call("POST", "/api/check_ins", json_body={"token": PASS_TOKEN})
        assert answer.status == 201
        used.append(answer.body["time_pass"]["id"])
        sim.space.advance(86400)
    assert len(set(used)) == 3
    answer = await sim.call("POST", "/api/check_ins", json_body={"token": PASS_TOKEN})
    assert answer.status == 422
    assert answer.body == {"errors": {"base": "No time passes left."}}


async def test_unlimited_check_in_has_no_time_pass(sim: Sim) -> None:
    answer = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    assert "time_pass" not in answer.body


async def test_a_new_business_day_means_a_new_check_in(sim: Sim) -> None:
    first = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    sim.space.advance(15 * 3600)  # 00:00 the next day
    second = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    assert second.status == 201
    assert second.body["id"] != first.body["id"]
    assert second.body["valid_until"] == "2026/03/03 23:59:59 +0000"


async def with_token(
    sim: Sim, login: str, password: str, token: str, *, preview: bool = False
) -> Answer:
    """POST /api/check_ins with login, password and a token to register."""
    return await sim.call(
        "POST",
        "/api/check_ins",
        params={"preview": "true"} if preview else None,
        json_body={"login": login, "password": password, "token": token},
    )


async def test_login_password_token_registers_the_token(sim: Sim) -> None:
    answer = await with_token(sim, "ada@example.com", "ada-demo", "12345")
    assert answer.status == 201
    assert "warning" not in answer.body
    assert sim.space.tokens["12345"] == ADA
    sim.space.advance(86400)
    by_token = await sim.call("POST", "/api/check_ins", json_body={"token": "12345"})
    assert by_token.status == 201
    assert by_token.body["membership"]["id"] == ADA


async def test_token_of_someone_else_checks_in_but_warns(sim: Sim) -> None:
    answer = await with_token(sim, "ada@example.com", "ada-demo", NFC_TOKEN)
    assert answer.status == 201
    assert answer.body["membership"]["id"] == ADA
    assert isinstance(answer.body["warning"], str)
    assert "already registered" in answer.body["warning"]
    assert sim.space.tokens[NFC_TOKEN] == GRACE


async def test_preview_does_not_register_a_token(sim: Sim) -> None:
    answer = await with_token(sim, "ada@example.com", "ada-demo", "99999", preview=True)
    assert answer.status == 200
    assert "99999" not in sim.space.tokens


async def test_a_refused_check_in_registers_no_token(sim: Sim) -> None:
    answer = await with_token(sim, "alan@example.com", "alan-demo", "77777")
    assert answer.status == 422
    assert "77777" not in sim.space.tokens


async def test_guest_and_admin_accounts_are_checked_in_untracked(sim: Sim) -> None:
    for login, password in [
        ("guest@example.com", "guest-demo"),
        ("admin@example.com", "admin-demo"),
    ]:
        answer = await sim.call(
            "POST", "/api/check_ins", json_body={"login": login, "password": password}
        )
        assert answer.status == 201
        assert set(answer.body) == {"valid_from", "valid_until"}
        assert answer.body["valid_until"] == END_OF_MORNING_DAY
    preview = await sim.call(
        "POST",
        "/api/check_ins",
        params={"preview": "true"},
        json_body={"login": "guest@example.com", "password": "guest-demo"},
    )
    assert (preview.status, set(preview.body)) == (200, {"valid_from", "valid_until"})
    assert not sim.space.check_ins
    assert sim.space.guest_check_ins == 2


async def test_guest_with_a_token_is_checked_in_with_a_warning(sim: Sim) -> None:
    answer = await with_token(sim, "guest@example.com", "guest-demo", "g1")
    assert answer.status == 201
    assert "not supported" in answer.body["warning"]
    assert "g1" not in sim.space.tokens


async def test_unconfirmed_membership_is_refused(sim: Sim) -> None:
    answer = await sim.call(
        "POST", "/api/check_ins", json_body={"login": "hedy@example.com", "password": "hedy-demo"}
    )
    assert answer.status == 422
    assert answer.body == {"errors": {"membership": "Membership not confirmed yet."}}


async def test_form_encoded_body_works(sim: Sim) -> None:
    answer = await sim.call(
        "POST", "/api/check_ins", data={"login": "grace@example.com", "password": "grace-demo"}
    )
    assert answer.status == 201
    assert answer.body["membership"]["id"] == GRACE


@pytest.mark.parametrize(
    ("raw", "ctype", "status"),
    [
        (b'{"token": "0A1B2C3D4E"', "application/json", 400),
        (b'["0A1B2C3D4E"]', "application/json", 400),
        (b'{"token": 12345}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"token=0A1B2C3D4E", "text/plain", 415),
    ],
)
async def test_malformed_bodies_are_refused(sim: Sim, raw: bytes, ctype: str, status: int) -> None:
    answer = await sim.call("POST", "/api/check_ins", data=raw, headers={"Content-Type": ctype})
    assert answer.status == status
    assert "error" in answer.body
    assert created(sim) == 0


# --- the other check-in endpoints ----------------------------------------------------


async def test_check_in_status_by_token_and_login(sim: Sim) -> None:
    assert (await sim.call("GET", "/api/check_in", params={"token": RDM_TOKEN})).status == 404
    made = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    for params in ({"token": RDM_TOKEN}, {"login": "ada@example.com"}):
        answer = await sim.call("GET", "/api/check_in", params=params)
        assert answer.status == 200
        assert answer.body == made.body
    missing = await sim.call("GET", "/api/check_in")
    assert missing.status == 400
    guest = await sim.call("GET", "/api/check_in", params={"login": "guest@example.com"})
    assert guest.status == 404


async def test_get_check_in_by_id(sim: Sim) -> None:
    made = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    answer = await sim.call("GET", f"/api/check_ins/{made.body['id']}")
    assert (answer.status, answer.body) == (200, made.body)
    assert (await sim.call("GET", "/api/check_ins/ffffffffff")).status == 404


async def test_todays_check_ins_for_admins_and_members(sim: Sim) -> None:
    await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    sim.space.advance(86400)
    today = await sim.call("POST", "/api/check_ins", json_body={"token": NFC_TOKEN})
    for token in (ADMIN_TOKEN, ADA_TOKEN):
        answer = await sim.call("GET", "/api/check_ins", token=token)
        assert answer.status == 200
        assert answer.body == [today.body]


async def test_work_sessions_for_admin_and_member(sim: Sim) -> None:
    ada = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    grace = await sim.call("POST", "/api/check_ins", json_body={"token": NFC_TOKEN})
    window = {"from": "2026-03-02 00:00:00 +0000", "to": "2026/03/02 23:59:59 +0000"}
    admin = await sim.call("GET", "/api/work_sessions", params=window)
    assert admin.body == [ada.body, grace.body]
    member = await sim.call("GET", "/api/work_sessions", token=ADA_TOKEN, params=window)
    assert member.body == [ada.body]
    earlier = {"from": "2026-03-01T00:00:00+00:00", "to": "2026-03-02T08:59:59+00:00"}
    assert (await sim.call("GET", "/api/work_sessions", params=earlier)).body == []


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-03-02 00:00:00 +0000"},
        {"to": "2026-03-02 00:00:00 +0000"},
        {"from": "yesterday", "to": "2026-03-02 00:00:00 +0000"},
    ],
)
async def test_from_and_to_are_required_and_readable(sim: Sim, params: dict[str, str]) -> None:
    for path in ("/api/work_sessions", f"/api/memberships/{ADA}/check_ins"):
        answer = await sim.call("GET", path, params=params)
        assert answer.status == 400, path
        assert "error" in answer.body


async def test_an_unencoded_plus_in_the_query_is_unreadable(sim: Sim) -> None:
    # "+0000" sent raw arrives as " 0000": a client must encode it.
    raw = "/api/work_sessions?from=2026-03-02 00:00:00 +0000&to=2026-03-03 00:00:00 +0000"
    answer = await sim.call("GET", raw.replace(" ", "%20"))
    assert answer.status == 400


async def test_membership_check_ins(sim: Sim) -> None:
    made = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    await sim.call("POST", "/api/check_ins", json_body={"token": NFC_TOKEN})
    window = {"from": "2026/03/02 00:00:00 +0000", "to": "2026/03/03 00:00:00 +0000"}
    for path in (f"/api/memberships/{ADA}/check_ins", f"/api/memberships/{ADA}/check_ins/"):
        answer = await sim.call("GET", path, params=window)
        assert (answer.status, answer.body) == (200, [made.body])
    unknown = await sim.call("GET", "/api/memberships/" + "0" * 32 + "/check_ins", params=window)
    assert unknown.status == 404
    templates = {r.template for r in sim.space.requests if r.method == "GET"}
    assert templates == {"/api/memberships/:id/check_ins"}


async def test_work_session_now_and_back_dated(sim: Sim) -> None:
    now = await sim.call("POST", f"/api/memberships/{ADA}/work_sessions")
    assert now.status == 201
    assert now.body["valid_from"] == "2026/03/02 09:00:00 +0000"
    for valid_from in ("2026/02/27 07:30:00 +0000", "2026-02-26T07:30:00+00:00"):
        back = await sim.call(
            "POST", f"/api/memberships/{GRACE}/work_sessions", json_body={"valid_from": valid_from}
        )
        assert back.status == 201
        assert back.body["valid_until"].startswith(valid_from[:10].replace("-", "/"))
        assert back.body["valid_until"].endswith("23:59:59 +0000")
    # A back-dated check-in is long over: it does not make Grace checked in now.
    assert sim.space.active_check_in(GRACE) is None
    assert len(sim.space.check_in_creations) == 3


async def work_session(sim: Sim, membership_id: str, valid_from: str | None) -> Answer:
    body = {"valid_from": valid_from} if valid_from else None
    return await sim.call("POST", f"/api/memberships/{membership_id}/work_sessions", json_body=body)


async def test_work_session_twice_the_same_day_is_the_recognisable_422(sim: Sim) -> None:
    first = await work_session(sim, ADA, "2026/03/02 07:00:00 +0000")
    assert first.status == 201
    # Later the same day, by either endpoint's record: refused.
    again = await work_session(sim, ADA, "2026/03/02 18:00:00 +0000")
    assert again.status == 422
    assert again.body == {"errors": ALREADY_CHECKED_IN}
    assert again.body == {"errors": {"base": "Already checked in for that day."}}
    # Even after a check-out: the member WAS checked in for that day.
    await sim.call("DELETE", f"/api/memberships/{ADA}/check_ins/current")
    after = await work_session(sim, ADA, None)
    assert after.status == 422
    # Another day is fine.
    other_day = await work_session(sim, ADA, "2026/03/01 18:00:00 +0000")
    assert other_day.status == 201
    assert sim.space.doubled() == {}


async def test_work_session_after_a_live_check_in_is_422(sim: Sim) -> None:
    await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    answer = await sim.call("POST", f"/api/memberships/{ADA}/work_sessions")
    assert answer.status == 422
    assert answer.body == {"errors": ALREADY_CHECKED_IN}


async def test_work_session_refusals(sim: Sim) -> None:
    unknown = await sim.call("POST", "/api/memberships/" + "0" * 32 + "/work_sessions")
    assert unknown.status == 404
    no_pass = await sim.call("POST", f"/api/memberships/{ALAN}/work_sessions")
    assert (no_pass.status, no_pass.body) == (422, {"errors": {"base": "No time passes left."}})
    unconfirmed = await sim.call("POST", f"/api/memberships/{HEDY}/work_sessions")
    assert unconfirmed.status == 422
    bad_time = await sim.call(
        "POST", f"/api/memberships/{ADA}/work_sessions", json_body={"valid_from": "soon"}
    )
    assert bad_time.status == 400
    assert not sim.space.check_ins


async def test_work_session_uses_a_time_pass(sim: Sim) -> None:
    answer = await sim.call("POST", f"/api/memberships/{KATHERINE}/work_sessions")
    assert answer.status == 201
    assert answer.body["time_pass"]["id"] in sim.space.member(KATHERINE).used_time_passes
    assert len(sim.space.member(KATHERINE).time_passes) == 2


async def test_check_out(sim: Sim) -> None:
    path = f"/api/memberships/{ADA}/check_ins/current"
    assert (await sim.call("DELETE", path)).status == 404
    made = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    sim.space.advance(3600 + 5)
    out = await sim.call("DELETE", path)
    assert out.status == 200
    assert out.body["id"] == made.body["id"]
    assert out.body["valid_from"] == made.body["valid_from"]
    assert out.body["valid_until"] == "2026/03/02 10:00:05 +0000"
    assert (await sim.call("DELETE", path)).status == 404
    assert (await sim.call("GET", "/api/check_in", params={"token": RDM_TOKEN})).status == 404
    unknown = await sim.call("DELETE", "/api/memberships/" + "0" * 32 + "/check_ins/current")
    assert unknown.status == 404


async def test_check_in_after_check_out_the_same_day_is_a_new_one(sim: Sim) -> None:
    first = await sim.call("POST", "/api/check_ins", json_body={"token": PASS_TOKEN})
    await sim.call("DELETE", f"/api/memberships/{KATHERINE}/check_ins/current")
    second = await sim.call("POST", "/api/check_ins", json_body={"token": PASS_TOKEN})
    assert second.status == 201
    assert second.body["id"] != first.body["id"]
    assert second.body["time_pass"] != first.body["time_pass"]
    assert sim.space.doubled() == {(KATHERINE, MORNING.date()): 2}


# --- check-in tokens -------------------------------------------------------------------


async def test_token_endpoints(sim: Sim) -> None:
    listed = await sim.call("GET", "/api/check_in_tokens")
    assert listed.status == 200
    assert {"token": RDM_TOKEN, "membership": {"id": ADA, "name": "Ada Lovelace"}} in listed.body
    assert len(listed.body) == len(sim.space.tokens)

    made = await sim.call(
        "POST", "/api/check_in_tokens", json_body={"membership_id": ADA, "token": "124d3a8"}
    )
    assert made.status == 201
    assert made.body == {"token": "124d3a8", "membership": {"id": ADA, "name": "Ada Lovelace"}}
    got = await sim.call("GET", "/api/check_in_tokens/124d3a8")
    assert (got.status, got.body) == (200, made.body)

    taken = await sim.call(
        "POST", "/api/check_in_tokens", json_body={"membership_id": GRACE, "token": "124d3a8"}
    )
    assert (taken.status, taken.body) == (422, {"errors": {"token": "has already been taken"}})
    unknown = await sim.call(
        "POST", "/api/check_in_tokens", json_body={"membership_id": "nope", "token": "555"}
    )
    assert unknown.status == 422
    assert "membership_id" in unknown.body["errors"]

    deleted = await sim.call("DELETE", "/api/check_in_tokens/124d3a8")
    assert (deleted.status, deleted.raw) == (204, b"")
    assert (await sim.call("GET", "/api/check_in_tokens/124d3a8")).status == 404
    assert (await sim.call("DELETE", "/api/check_in_tokens/124d3a8")).status == 404


async def test_a_mac_token_in_the_path(sim: Sim) -> None:
    answer = await sim.call("GET", "/api/check_in_tokens/aa%3Abb%3Acc%3Add%3Aee%3A01")
    assert answer.status == 200
    assert answer.body["token"] == MAC_TOKEN


# --- routing, time zones, the request log ---------------------------------------------


async def test_unknown_paths_and_methods_are_json(sim: Sim) -> None:
    missing = await sim.call("GET", "/api/invoices")  # /api/bookings exists (issue 14)
    assert (missing.status, missing.body) == (404, {"error": "Not Found"})
    wrong = await sim.call("PUT", "/api/check_ins")
    assert wrong.status == 405
    assert "POST" in wrong.headers["Allow"]
    assert wrong.body == {"error": "Method Not Allowed"}


async def test_the_business_day_ends_in_the_spaces_time_zone() -> None:
    # The docs' own example: a check-in at 08:37 UTC valid until 03:59:59 UTC next day.
    space = demo_space(timezone="America/New_York")
    space.set_time(datetime(2011, 7, 27, 8, 37, tzinfo=UTC))
    async with serve(space) as sim:
        answer = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
        assert answer.body["valid_from"] == "2011/07/27 08:37:00 +0000"
        assert answer.body["valid_until"] == "2011/07/28 03:59:59 +0000"
        # 02:00 UTC on the 28th is still the 27th in New York: the same check-in.
        space.set_time(datetime(2011, 7, 28, 2, 0, tzinfo=UTC))
        again = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
        assert (again.status, again.body["id"]) == (200, answer.body["id"])
        space.advance(2 * 3600)  # 04:00 UTC: the 28th in New York
        third = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
        assert third.status == 201


async def test_every_time_on_the_wire_is_in_the_api_format(sim: Sim) -> None:
    await sim.call("POST", "/api/check_ins", json_body={"token": PASS_TOKEN})
    await sim.call("DELETE", f"/api/memberships/{KATHERINE}/check_ins/current")
    answer = await sim.call("GET", "/api/check_ins")
    for item in answer.body:
        assert TIME_RE.match(item["valid_from"])
        assert TIME_RE.match(item["valid_until"])
        assert isinstance(item["id"], str)


async def test_the_request_log(sim: Sim) -> None:
    await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
    await sim.call("GET", f"/api/check_in_tokens/{RDM_TOKEN}", token=ADA_TOKEN)
    await sim.call("GET", "/nowhere", token=None)
    log = [(r.method, r.path, r.template, r.status, r.user) for r in sim.space.requests]
    assert log == [
        ("POST", "/api/check_ins", "/api/check_ins", 201, "admin"),
        ("GET", f"/api/check_in_tokens/{RDM_TOKEN}", "/api/check_in_tokens/:token", 403, "ada"),
        ("GET", "/nowhere", None, 404, None),
    ]
    times = [r.at for r in sim.space.requests]
    assert times == sorted(times)


async def test_state_changed_by_the_test_is_seen_by_the_server(sim: Sim) -> None:
    member = sim.space.add_member("Joe", "joe@example.com", "test", tokens=["J1"])
    token = sim.space.add_access_token(role=Role.MEMBER, membership_id=member.id)
    answer = await sim.call("POST", "/api/check_ins", token=token.token, json_body={"token": "J1"})
    assert answer.status == 201
    assert re.fullmatch(r"[0-9a-f]{32}", member.id)


async def test_the_clock_runs_when_asked() -> None:
    space = SimSpace()
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    space.set_time(start, running=True)
    assert start <= space.now() < start + timedelta(seconds=60)
    space.set_time(start)
    space.advance(90)
    assert space.now() == start + timedelta(seconds=90)
