"""Shared by the MAC reader tests: a clock the test moves, and the listener's socket."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.model import Direction, Membership, Tap
from gateway.readers.mac.presence import Change, PresenceEvent
from gateway.readers.mac.sniff import open_packet_socket
from tests.netns import Lan


class FakeClock:
    """DevicePresence time, moved by the test (sockets and the event loop run in real time)."""

    def __init__(self, wall: float = 1_900_000_000.0) -> None:
        self.mono = 1000.0
        self.wall = wall

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def listener_opener(lan: Lan) -> Callable[[str], socket.socket]:
    """The reader's real opener, run inside the LAN's listener namespace."""
    return lambda interface: lan.in_listener(lambda: open_packet_socket(interface))


def day_end(at: datetime) -> datetime:
    return at.replace(hour=23, minute=59, second=59, microsecond=0)


class Desk:
    """Attendance as the gateway keeps it (a check-in lasts to the end of the UTC day),
    with the decision's part played here: every ARRIVED is admitted (``admit``) and every
    DEPARTED checks the member out. It answers ``PresenceQuestions`` like ``Attendance``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.admit = True
        self.checked_in: dict[str, datetime] = {}
        self.out: dict[str, datetime] = {}
        self.refused: dict[str, datetime] = {}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.time(), UTC)

    def until(self, membership_id: str, at: datetime | None = None) -> datetime | None:
        until = self.checked_in.get(membership_id)
        return until if until is not None and until > (at or self.now()) else None

    def checked_out_today(self, membership_id: str, at: datetime) -> bool:
        return self.out.get(membership_id) == day_end(at)

    def refusal(self, token: str, at: datetime) -> str | None:
        return "no time passes" if self.refused.get(token) == day_end(at) else None

    def check_in(self, member: Membership) -> None:
        self.checked_in[member.id] = day_end(self.now())
        self.out.pop(member.id, None)

    def check_out(self, member_id: str) -> None:
        self.checked_in.pop(member_id, None)
        self.out[member_id] = day_end(self.now())

    def hear(self, event: PresenceEvent | None) -> None:
        if event is None:
            return
        if event.change is Change.DEPARTED:
            self.check_out(event.member_id)
        elif self.admit:
            self.check_in(Membership(event.member_id, ""))

    def deciding(
        self, taps: list[Tap], lookup: Callable[[str], Membership | None]
    ) -> Callable[[Tap], None]:
        """A reader's sink that keeps the taps and decides them at once, as above."""

        def sink(tap: Tap) -> None:
            taps.append(tap)
            member = lookup(tap.token)
            if member is None:
                return
            if tap.direction is Direction.OUT:
                self.check_out(member.id)
            elif self.admit:
                self.check_in(member)

        return sink
