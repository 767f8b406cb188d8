"""The door rules chosen per door from the config (``access``), and what booking doors
need around them: one snapshot refresher each (a supervised part) and their status.

``app.py`` calls ``DoorRules.build(...)`` in ``_build``, hands ``rules`` to the Decider
(and ``hooks()`` to its hooks: walk-ups whose door failed are taken back, undo.py),
adds ``parts()`` to the runner and ``status()`` to the daemon's status. Doors with the default
``access = "check-in"`` get no entry: the Decider's default rule serves them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.attendance import Attendance
from gateway.bookings.refresh import RoomRefresher
from gateway.bookings.snapshot import BookingSnapshot
from gateway.bookings.undo import WalkUpUndo
from gateway.breaker import Breaker
from gateway.cache import TokenCache
from gateway.cobot.bookings import BOOKING_WRITES_RPM
from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import Group
from gateway.config.model import Config
from gateway.decide import DecisionHook
from gateway.redact import redact
from gateway.rules.base import DoorRule
from gateway.rules.booking import BookingRule, RoomDoor, hhmm
from gateway.rules.member import MemberRule
from gateway.runner import Part


def booking_rate_limits(cfg: Config) -> dict[Group, int]:
    """The limiter's extra group: booking writes (10 a minute), when a door walks up."""
    if any(d.access == "booking" and d.walk_up_minutes > 0 for d in cfg.doors):
        return {Group.BOOKING_WRITES: BOOKING_WRITES_RPM}
    return {}


def room_doors(cfg: Config) -> list[RoomDoor]:
    return [
        RoomDoor(
            door=d.name,
            resource_id=d.resource_id or "",
            grace_before=d.grace_before,
            grace_after=d.grace_after,
            check_in=d.check_in,
            walk_up_minutes=d.walk_up_minutes,
        )
        for d in cfg.doors
        if d.access == "booking"
    ]


class DoorRules:
    def __init__(
        self,
        rules: dict[str, DoorRule],
        refreshers: list[RoomRefresher],
        snapshot: BookingSnapshot,
        now: Callable[[], datetime],
        undo: WalkUpUndo | None = None,
    ) -> None:
        self.rules = rules
        self.refreshers = refreshers
        self.snapshot = snapshot
        self._now = now
        self.undo = undo

    @classmethod
    def build(
        cls,
        cfg: Config,
        *,
        cache: TokenCache,
        attendance: Attendance,
        snapshot: BookingSnapshot,
        client: CobotClient,
        breaker: Breaker,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> DoorRules:
        rules: dict[str, DoorRule] = {}
        refreshers = []
        rooms = room_doors(cfg)
        undo = WalkUpUndo(client, snapshot) if any(r.walk_up_minutes > 0 for r in rooms) else None
        for door in cfg.doors:
            if door.access == "member":
                rules[door.name] = MemberRule(cache)
        for room in rooms:
            refresher = RoomRefresher(
                snapshot,
                client,
                breaker,
                door=room.door,
                resource_id=room.resource_id,
                interval=cfg.bookings.refresh_interval,
                now=now,
            )
            refreshers.append(refresher)
            rules[room.door] = BookingRule(
                room,
                cache,
                snapshot,
                attendance,
                client,
                breaker,
                max_age=cfg.bookings.max_age,
                look_deadline=cfg.gateway.decision_deadline,
                refresh_soon=refresher.request,
                on_walk_up=undo.made if undo is not None and room.walk_up_minutes > 0 else None,
            )
        return cls(rules, refreshers, snapshot, now, undo)

    def parts(self) -> list[Part]:
        parts = [Part(f"bookings-{r.door}", r.run) for r in self.refreshers]
        if self.undo is not None:
            parts.append(Part("walk-up-undo", self.undo.run))
        return parts

    def hooks(self) -> list[DecisionHook]:
        """Decision hooks: a walk-up booking whose door failed is deleted."""
        return [self.undo.decided] if self.undo is not None else []

    def status(self) -> dict[str, Any]:
        """Per booking door: the room, the snapshot's age, the current or next booking
        (member names redacted like tokens; membership ids are not secret)."""
        now = self._now()
        out: dict[str, Any] = {}
        for r in self.refreshers:
            snap = self.snapshot.room(r.resource_id)
            entry: dict[str, Any] = {
                "resource_id": r.resource_id,
                "room": r.resource.name if r.resource else (snap.name if snap else None),
                "snapshot_age_s": round(snap.age(now)) if snap else None,
                "bookings": len(snap.bookings) if snap else 0,
                "error": r.last_error,
            }
            if snap is not None:
                current = snap.current(now)
                shown = current[-1] if current else snap.next_of(None, now)
                if shown is not None:
                    entry["current" if current else "next"] = {
                        "from": hhmm(shown.start),
                        "to": hhmm(shown.end),
                        "member": redact(shown.membership.name) if shown.membership else None,
                        "membership_id": shown.membership.id if shown.membership else None,
                    }
            out[r.door] = entry
        return out


def describe_rooms(rooms: dict[str, Any]) -> list[str]:
    """``status``'s lines for the rooms part of the daemon's status."""
    lines = []
    for door, r in rooms.items():
        room = r.get("room") or f"resource {r.get('resource_id')}"
        age = r.get("snapshot_age_s")
        fetched = "no snapshot yet" if age is None else f"snapshot {age}s old"
        line = f"  room {door} ({room}): {fetched}, {r.get('bookings', 0)} booking(s)"
        for key in ("current", "next"):
            b = r.get(key)
            if b:
                who = b.get("member") or "blocked (no member)"
                line += f"; {key} {b['from']}-{b['to']} {who}"
        if r.get("error"):
            line += f" - {r['error']}"
        lines.append(line)
    return lines
