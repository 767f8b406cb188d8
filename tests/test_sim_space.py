"""``SimSpace`` and the time helpers without HTTP: pure calls on a frozen clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sim import Plan, Role, SimAccessToken, SimSpace
from gateway.sim.model import ALREADY_CHECKED_IN, NO_TIME_PASSES, Forbidden, Invalid, Missing
from gateway.sim.seed import ADA, ADA_TOKEN, ADMIN_TOKEN, KATHERINE, PASS_TOKEN, demo_space
from gateway.sim.timefmt import end_of_business_day, format_time, parse_time
from tests.sim_helpers import MORNING

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def space() -> SimSpace:
    s = demo_space()
    s.set_time(MORNING)
    return s


def admin(space: SimSpace) -> SimAccessToken:
    token = space.authenticate(ADMIN_TOKEN)
    assert token is not None
    return token


# --- times -------------------------------------------------------------------------------


def test_format_is_the_api_format_in_utc() -> None:
    moment = datetime(2012, 10, 25, 12, 5, 24, tzinfo=BERLIN)
    assert format_time(moment) == "2012/10/25 10:05:24 +0000"


@pytest.mark.parametrize(
    "text",
    [
        "2012/10/25 10:05:24 +0000",
        "2012/10/25 12:05:24 +0200",
        "2012-10-25 10:05:24 +0000",
        "2012-10-25T10:05:24+00:00",
        "2012-10-25T10:05:24Z",
        " 2012/10/25 10:05:24 +0000 ",
    ],
)
def test_parse_accepts_the_api_and_iso_forms(text: str) -> None:
    assert parse_time(text, UTC) == datetime(2012, 10, 25, 10, 5, 24, tzinfo=UTC)


def test_a_time_without_offset_is_in_the_spaces_zone() -> None:
    assert parse_time("2012/10/25 12:05:24", BERLIN) == datetime(
        2012, 10, 25, 10, 5, 24, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["", "soon", "2012/10/25 10:05:24  0000", "2012/13/01 00:00:00"])
def test_unreadable_times_are_none(text: str) -> None:
    assert parse_time(text, UTC) is None


@given(st.datetimes(timezones=st.just(UTC), min_value=datetime(1971, 1, 1)))
def test_format_then_parse_round_trips_to_the_second(moment: datetime) -> None:
    assert parse_time(format_time(moment), UTC) == moment.replace(microsecond=0)


def test_end_of_day_across_a_dst_change() -> None:
    # 29 March 2026: Berlin moves from +01:00 to +02:00 at 02:00.
    before = end_of_business_day(datetime(2026, 3, 28, 12, tzinfo=UTC), BERLIN)
    after = end_of_business_day(datetime(2026, 3, 29, 12, tzinfo=UTC), BERLIN)
    assert before == datetime(2026, 3, 28, 22, 59, 59, tzinfo=UTC)
    assert after == datetime(2026, 3, 29, 21, 59, 59, tzinfo=UTC)


# --- the clock -----------------------------------------------------------------------------


def test_frozen_clock_moves_only_when_told(space: SimSpace) -> None:
    assert space.now() == MORNING
    space.advance(61.5)
    assert space.now() == MORNING + timedelta(seconds=61.5)
    assert space.today() == date(2026, 3, 2)
    space.advance(15 * 3600)
    assert space.today() == date(2026, 3, 3)


def test_running_clock_follows_the_wall_clock() -> None:
    wall = [datetime(2030, 1, 1, tzinfo=UTC)]
    space = SimSpace(clock=lambda: wall[0])
    space.set_time(MORNING, running=True)
    wall[0] += timedelta(seconds=5)
    assert space.now() == MORNING + timedelta(seconds=5)


def test_set_time_needs_an_aware_datetime(space: SimSpace) -> None:
    with pytest.raises(ValueError, match="aware"):
        space.set_time(datetime(2026, 3, 2, 9))


# --- operations -------------------------------------------------------------------------


def test_check_in_by_token_then_original_then_next_day(space: SimSpace) -> None:
    first = space.check_in(admin(space), token=PASS_TOKEN)
    assert (first.status, first.saved, first.tracked) == (201, True, True)
    assert first.check_in.time_pass_id is not None
    again = space.check_in(admin(space), token=PASS_TOKEN)
    assert (again.status, again.check_in) == (200, first.check_in)
    space.advance(86400)
    third = space.check_in(admin(space), token=PASS_TOKEN)
    assert third.status == 201
    assert space.check_in_creations == {
        (KATHERINE, date(2026, 3, 2)): 1,
        (KATHERINE, date(2026, 3, 3)): 1,
    }
    assert len(space.member(KATHERINE).time_passes) == 1


def test_member_actor_is_limited_to_themselves(space: SimSpace) -> None:
    ada = space.authenticate(ADA_TOKEN)
    assert ada is not None and ada.role is Role.MEMBER
    with pytest.raises(Forbidden):
        space.check_in(ada, token=PASS_TOKEN)
    with pytest.raises(Forbidden):
        space.create_work_session(ada, KATHERINE, None)
    with pytest.raises(Forbidden):
        space.check_out(ada, KATHERINE)
    assert space.check_in(ada, login="ada@example.com", password="ada-demo").status == 201


def test_work_session_refusals_leave_no_trace(space: SimSpace) -> None:
    member = space.add_member("Pat", "pat@example.com", "pw", plan=Plan.TIME_PASSES)
    with pytest.raises(Invalid) as refused:
        space.create_work_session(admin(space), member.id, None)
    assert refused.value.errors == NO_TIME_PASSES
    assert not space.check_ins
    space.add_time_passes(member.id, 1)
    space.create_work_session(admin(space), member.id, MORNING - timedelta(hours=3))
    with pytest.raises(Invalid) as again:
        space.create_work_session(admin(space), member.id, MORNING + timedelta(hours=5))
    assert again.value.errors == ALREADY_CHECKED_IN
    assert space.member(member.id).time_passes == []
    assert space.doubled() == {}


def test_check_out_then_status(space: SimSpace) -> None:
    space.check_in(admin(space), login="ada@example.com", password="ada-demo")
    space.advance(10)
    ended = space.check_out(admin(space), ADA)
    assert ended.valid_until == ended.checked_out_at == MORNING + timedelta(seconds=10)
    with pytest.raises(Missing):
        space.check_out(admin(space), ADA)
    with pytest.raises(Missing):
        space.check_in_status(login="ada@example.com", token=None)


def test_set_up_helpers_refuse_duplicates(space: SimSpace) -> None:
    with pytest.raises(ValueError, match="exists"):
        space.add_member("Ada 2", "ADA@example.com", "x")
    with pytest.raises(ValueError, match="exists"):
        space.add_account("ada@example.com", "x")
    with pytest.raises(ValueError, match="taken"):
        space.register_token(PASS_TOKEN, ADA)
    with pytest.raises(ValueError, match="no membership"):
        space.register_token("fresh", "0" * 32)
    with pytest.raises(ValueError, match="membership_id"):
        space.add_access_token(role=Role.MEMBER, membership_id="nope")


def test_ids_look_like_the_docs_and_repeat_with_the_seed() -> None:
    one, two = SimSpace(seed=7), SimSpace(seed=7)
    a = one.add_member("A", "a@example.com", "pw")
    b = two.add_member("A", "a@example.com", "pw")
    assert a.id == b.id
    assert len(a.id) == 32
    assert int(a.id, 16) >= 0
