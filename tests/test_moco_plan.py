"""The MOCO replay plan, pure: taps and presences in, writes out."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from gateway.moco.model import Presence
from gateway.moco.plan import Create, Fail, PlannedTap, Settle, Update, plan_day

DAY = date(2026, 11, 30)


def at(hhmm: str, day: date = DAY, second: int = 10) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, h, m, second).astimezone()


def t(hhmm: str) -> time:
    h, m = map(int, hhmm.split(":"))
    return time(h, m)


def taps(*times: str, sent: tuple[int, ...] = ()) -> list[PlannedTap]:
    return [PlannedTap(i + 1, at(x), i + 1 in sent) for i, x in enumerate(times)]


def test_a_day_of_taps_becomes_one_post_per_pair_and_an_open_one() -> None:
    plan = plan_day(DAY, taps("08:00", "12:00", "13:00", "17:30", "18:00"), [])
    assert plan.ops == [
        Create(DAY, t("08:00"), t("12:00"), [1, 2]),
        Create(DAY, t("13:00"), t("17:30"), [3, 4]),
        Create(DAY, t("18:00"), None, [5]),
    ]
    assert plan.clocked_in == {1: True, 2: False, 3: True, 4: False, 5: True}


def test_an_open_presence_is_closed_by_the_first_tap() -> None:
    open_ = Presence(7, DAY, t("08:00"), None)
    plan = plan_day(DAY, taps("12:00", "13:00"), [open_])
    assert plan.ops == [Update(7, t("12:00"), [1]), Create(DAY, t("13:00"), None, [2])]


def test_sent_taps_found_in_moco_are_not_written_again() -> None:
    # A pair POST landed, then the gateway died before marking it.
    done = Presence(7, DAY, t("08:00"), t("12:00"))
    plan = plan_day(DAY, taps("08:00", "12:00", "13:00", sent=(1, 2)), [done])
    assert [type(op) for op in plan.ops] == [Settle, Settle, Create]
    # A live touch that opened, answer lost: the closer goes on as an update.
    opened = Presence(8, DAY, t("08:00"), None)
    plan = plan_day(DAY, taps("08:00", "09:00", sent=(1,)), [opened])
    assert plan.ops[1:] == [Update(8, t("09:00"), [2])]
    # Sent, but nothing landed: written now.
    plan = plan_day(DAY, taps("08:00", sent=(1,)), [])
    assert plan.ops == [Create(DAY, t("08:00"), None, [1])]


def test_a_tap_inside_an_existing_presence_conflicts() -> None:
    plan = plan_day(DAY, taps("09:00"), [Presence(7, DAY, t("08:00"), t("12:00"))])
    assert isinstance(plan.ops[0], Fail) and "08:00-12:00" in plan.ops[0].reason
    # Closing across another presence conflicts too.
    existing = [Presence(7, DAY, t("10:00"), t("11:00"))]
    plan = plan_day(DAY, taps("09:00", "12:00"), existing)
    assert isinstance(plan.ops[1], Fail) and "overlap" in plan.ops[1].reason


def test_in_and_out_within_one_minute_is_discarded_like_touch() -> None:
    same = [PlannedTap(1, at("08:00", second=5)), PlannedTap(2, at("08:00", second=50))]
    plan = plan_day(DAY, same, [])
    assert len(plan.ops) == 1 and isinstance(plan.ops[0], Settle)
    assert plan.ops[0].entries == [1, 2] and "discarded" in plan.ops[0].note


def test_crossing_midnight_is_split_at_23_59() -> None:
    yesterday = DAY - timedelta(days=1)
    open_ = Presence(7, yesterday, t("22:00"), None)
    plan = plan_day(DAY, taps("02:00", "08:00"), [open_])
    assert plan.ops == [
        Create(DAY, t("00:00"), t("02:00"), [], [1]),  # 1 is marked sending before it
        Update(7, t("23:59"), [1]),
        Create(DAY, t("08:00"), None, [2]),
    ]
    assert any("midnight" in n for n in plan.notes)


def test_a_forgotten_clock_out_is_not_a_night_shift() -> None:
    yesterday = DAY - timedelta(days=1)
    open_ = Presence(7, yesterday, t("08:00"), None)
    plan = plan_day(DAY, taps("08:30"), [open_])
    assert plan.ops == [Create(DAY, t("08:30"), None, [1])]
    assert any("still open" in n for n in plan.notes)


def test_a_split_already_half_done_finishes_without_a_second_post() -> None:
    yesterday = DAY - timedelta(days=1)
    presences = [
        Presence(7, yesterday, t("22:00"), None),
        Presence(8, DAY, t("00:00"), t("02:00")),
    ]
    plan = plan_day(DAY, taps("02:00", sent=(1,)), presences)
    assert plan.ops == [Update(7, t("23:59"), [1])]
