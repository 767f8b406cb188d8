"""The admin page's pure parts: enrolment mode, sessions, the live feed, CSV cells."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.admin.accesslog import _cell
from gateway.admin.enrol import CARD_WINDOW, WINDOW, Enrolment
from gateway.admin.feed import QUEUE_SIZE, LiveFeed
from gateway.admin.sessions import Sessions
from gateway.decide import Decision
from gateway.model import Direction, Membership, Outcome, Tap
from tests.sim_helpers import FakeMonotonic

ADA = Membership("ada", "Ada Lovelace")


def tap(token: str, reader: str = "front") -> Tap:
    return Tap(reader, token, Direction.IN, datetime(2026, 1, 5, 9, tzinfo=UTC), 0.0)


def enrolment(clock: FakeMonotonic, cards: frozenset[str] = frozenset()) -> Enrolment:
    known = {"KNOWN": ADA}

    async def add(token: str, member: Membership) -> None:
        known[token] = member

    return Enrolment(known.get, add, admin_cards=cards, clock=clock)


def test_an_armed_reader_captures_the_next_unknown_card_only():
    clock = FakeMonotonic()
    e = enrolment(clock)
    assert not e.offer(tap("NEWCARD001"))  # not armed: decided as usual
    e.arm("front")
    assert not e.offer(tap("NEWCARD001", reader="back"))  # another reader
    assert not e.offer(tap("KNOWN"))  # a known card opens as usual
    assert e.offer(tap("NEWCARD001"))
    assert not e.offer(tap("NEWCARD002"))  # one card per arming
    (capture,) = e.captures()
    assert (
        capture.token == "NEWCARD001"
        and capture.shown.endswith("01")
        and "NEWCARD001" not in capture.shown
    )


def test_the_window_closes():
    clock = FakeMonotonic()
    e = enrolment(clock)
    e.arm("front")
    assert e.armed() == {"front": WINDOW}
    clock.advance(WINDOW + 0.1)
    assert e.armed() == {}
    assert not e.offer(tap("NEWCARD001"))


def test_an_admin_card_arms_its_reader_and_opens_nothing():
    clock = FakeMonotonic()
    e = enrolment(clock, frozenset({"ADMINCARD"}))
    assert e.offer(tap("ADMINCARD"))  # captured: not decided
    assert e.armed() == {"front": CARD_WINDOW}
    assert e.offer(tap("NEWCARD001"))
    assert [c.token for c in e.captures()] == ["NEWCARD001"]


def test_sessions_end_when_idle_and_at_logout():
    clock = FakeMonotonic()
    sessions = Sessions(60, clock=clock)
    s = sessions.create()
    assert sessions.touch(s) and not sessions.touch("forged") and not sessions.touch(None)
    clock.advance(59)
    assert sessions.touch(s, use=False)
    clock.advance(2)  # idle 61 s: the stream's look did not count as a use
    assert not sessions.touch(s)
    s2 = sessions.create()
    sessions.end(s2)
    assert not sessions.touch(s2)


def test_a_slow_page_loses_its_oldest_taps_never_blocks():
    feed = LiveFeed()
    queue = feed.subscribe()
    decision = Decision(tap("KNOWN"), Outcome.OPENED_CACHED, ADA, None, True, 0.01)
    for _ in range(QUEUE_SIZE + 5):
        feed.hook(decision)
    assert queue.qsize() == QUEUE_SIZE
    event = queue.get_nowait()
    assert event is not None and "KNOWN" not in str(event)
    feed.close()
    assert queue.qsize() == QUEUE_SIZE  # full: the end replaced the oldest tap


def test_csv_cells_never_run_as_formulas():
    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _cell("@SUM") == "'@SUM" and _cell("Ada") == "Ada" and _cell(None) == ""


def test_the_now_page_says_when_nothing_is_stored() -> None:
    """Found by a first-time user: running from memory was said only in the log and in
    `status`; the page a manager opens first says it too, in both languages."""
    from gateway.admin.pages import now_page
    from gateway.portal.i18n import Lang

    status = {"state_problem": "/var/lib/x: the file system is mounted read-only"}
    en = now_page(Lang.EN, "csrf", status, []).decode()
    assert 'id="not-durable"' in en and "runs from memory" in en and "read-only" in en
    de = now_page(Lang.DE, "csrf", status, []).decode()
    assert "nur im Speicher" in de
    assert 'id="not-durable"' not in now_page(Lang.EN, "csrf", {}, []).decode()


def test_metrics_say_when_nothing_is_stored() -> None:
    from gateway.metrics.view import StatusCollector

    for problem, want in ((None, 1.0), ("read-only", 0.0)):
        view = StatusCollector()
        view.update({"state_problem": problem, "unsaved_records": 2}, {})
        fams = {f.name: f for f in view.collect()}
        assert fams["checkin_gateway_state_durable"].samples[0].value == want
        assert fams["checkin_gateway_records_in_memory"].samples[0].value == 2
