"""Who is here: devices seen on the LAN, and the members they belong to.

Sightings come in at packet rate; what leaves is rare: a member ARRIVED (a device of
theirs is here and they are not checked in: their first device appeared, or they are
still here on a new day, when yesterday's check-in has expired) or DEPARTED (their last
device has been silent for ``away_after`` while they are checked in). Everything is in
memory and synchronous; ``store.py`` persists the device table so that a restart does not
forget who was here.

Whether a member is checked in, was checked out today or was refused today is not kept
here: the gateway's one owner of that, ``Attendance``, is asked (``PresenceQuestions``),
so a member checked in at the door is not announced again by their phone, and one
checked out at the exit is not checked in again by it, whatever reader did it and across
restarts as far as Attendance itself remembers. The only memory of our own is when this
stay's last IN tap was sent (``ASK_AGAIN``): its decision takes a moment to reach
Attendance, and a tap refused for a reason Attendance does not keep (offline policy)
is not repeated at packet rate.

Silence alone is not departure: with a ``Confirmer`` (``confirm.py``), a registered
device silent for ``away_after`` is first asked once (a unicast ARP request to its last
IPv4 address) and stays present until ``confirm.CONFIRM_WAIT`` has passed without an
answer.

A member checked out (by departure or at an exit) who comes back the same local day is
not checked in again by their devices: Cobot counts one check-in per member per day
("already checked in for that day") and a second one would use a second time pass. It is
logged; a card or the portal checks them in again on purpose.

Durations use the monotonic clock (a Pi without a real-time clock jumps hours when NTP
syncs after boot, and that must not send everyone home); wall-clock times are kept for
people reading the table and for restoring it after a restart.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import structlog

from gateway.model import Membership
from gateway.readers.base import NOBODY_CHECKED_IN, PresenceQuestions
from gateway.readers.mac.address import is_locally_administered, token_spellings
from gateway.readers.mac.confirm import CONFIRM_WAIT, Asking, Confirmer
from gateway.readers.mac.packets import DeviceSighting, Source
from gateway.redact import redact

log = structlog.get_logger(__name__)

# An absent device is forgotten after this long: bounds the table (phones pick a new
# random MAC per network or per day) while keeping last week's devices known.
FORGET_AFTER = 30 * 86400.0
# The in-memory table's bound; past it the absent devices seen longest ago go first.
MAX_DEVICES = 20_000
# Seconds before a member still not checked in after our IN tap is announced again (the
# tap's decision was not an admission Attendance heard of, e.g. offline and refused by
# the offline policy). A refusal by Cobot and a check-out are asked of Attendance.
ASK_AGAIN = 900.0


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


class Change(enum.StrEnum):
    ARRIVED = "arrived"
    DEPARTED = "departed"


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    change: Change
    token: str  # the spelling registered in Cobot, for the tap
    member_id: str
    mac: str  # the device that arrived or left last


@dataclass(slots=True, kw_only=True)
class Device:
    """One row of the presence table. Times are wall-clock seconds (``time.time()``)."""

    mac: str
    first_seen: float
    last_seen: float
    arrived: float  # start of the current (or last) stay
    present: bool
    source: Source
    ip: str | None = None
    hostname: str | None = None
    client_id: str | None = None
    token: str | None = None  # the registered spelling, if the device is registered
    member_id: str | None = None
    # In memory only:
    last_mono: float = 0.0
    next_lookup: float = 0.0

    @property
    def randomised(self) -> bool:
        return is_locally_administered(self.mac)


@dataclass(slots=True)
class MemberStay:
    """A member with at least one present device (or about to be found gone)."""

    member_id: str
    token: str
    devices: set[str] = field(default_factory=set)
    # In memory only: when (monotonic) this stay's last IN tap was sent, until
    # Attendance is seen to know the member is checked in; and why the last arrival
    # was not announced (logged once per reason).
    asked: float | None = None
    quiet: str | None = None


@dataclass(slots=True)
class Changes:
    """What to write since the last flush."""

    devices: list[Device]
    forgotten: list[str]
    members: list[MemberStay]
    gone: list[str]  # member ids

    def __bool__(self) -> bool:
        return bool(self.devices or self.forgotten or self.members or self.gone)


class DevicePresence:
    def __init__(
        self,
        *,
        reader: str,
        lookup: Callable[[str], Membership | None],
        attendance: PresenceQuestions | None = None,
        away_after: float,
        lookup_interval: float,
        ignore: Iterable[str] = (),
        checkout_on_departure: bool = False,
        clock: Clock | None = None,
        max_devices: int = MAX_DEVICES,
        confirm: Confirmer | None = None,
        confirm_wait: float = CONFIRM_WAIT,
        ask_again: float = ASK_AGAIN,
    ) -> None:
        self._log = log.bind(reader=reader)
        self._lookup = lookup
        self._away = away_after
        self._lookup_interval = lookup_interval
        self._ignore = frozenset(ignore)
        self._checkout = checkout_on_departure
        self._clock: Clock = clock or SystemClock()
        # Not ``or``: an Attendance with nobody checked in is falsy (it has a length).
        self._attendance = NOBODY_CHECKED_IN if attendance is None else attendance
        self._ask_again = ask_again
        self._max = max_devices
        self._devices: dict[str, Device] = {}
        self._present: set[str] = set()
        self._members: dict[str, MemberStay] = {}
        self._dirty: set[str] = set()
        self._forgotten: set[str] = set()
        self._members_dirty: set[str] = set()
        self._members_gone: set[str] = set()
        self.asking = Asking(confirm, wait=confirm_wait, reader=reader)

    # -- queries -------------------------------------------------------------------

    def device(self, mac: str) -> Device | None:
        return self._devices.get(mac)

    def present_members(self) -> dict[str, frozenset[str]]:
        return {m.member_id: frozenset(m.devices) for m in self._members.values() if m.devices}

    @property
    def present_count(self) -> int:
        return len(self._present)

    def __len__(self) -> int:
        return len(self._devices)

    # -- sightings -----------------------------------------------------------------

    def observe(self, s: DeviceSighting) -> PresenceEvent | None:
        """Record a sighting; the ARRIVED event if it makes a member present (or present
        on a new day)."""
        mac = s.mac
        if mac in self._ignore:
            return None
        now, wall = self._clock.monotonic(), self._clock.time()
        dev = self._devices.get(mac)
        if dev is None:
            dev = self._new_device(s, wall)
        self.asking.heard(mac)
        dev.last_seen, dev.last_mono, dev.source = wall, now, s.source
        if s.ip is not None:
            dev.ip = s.ip
        if s.hostname is not None:
            dev.hostname = s.hostname
        if s.client_id is not None:
            dev.client_id = s.client_id
        self._dirty.add(mac)
        arriving = not dev.present
        if arriving:
            dev.present, dev.arrived = True, wall
            self._present.add(mac)
            if dev.member_id is not None:
                self._attach(dev)
        if arriving or now >= dev.next_lookup:
            dev.next_lookup = now + self._lookup_interval
            self._refresh(dev)
        if dev.member_id is None:
            if arriving and dev.randomised:
                # A private address changes per network or per day: it can only ever
                # mean someone if its owner registers it (the portal does that).
                self._log.debug("mac_randomised_unregistered", mac=redact(mac))
            return None
        return self._announce(self._members[dev.member_id], dev, wall)

    def _new_device(self, s: DeviceSighting, wall: float) -> Device:
        if len(self._devices) >= self._max:
            self._evict()
        dev = Device(
            mac=s.mac, first_seen=wall, last_seen=wall, arrived=wall, present=False, source=s.source
        )
        self._devices[s.mac] = dev
        self._forgotten.discard(s.mac)
        self._log.info(
            "mac_device_new", mac=redact(s.mac), source=s.source, randomised=dev.randomised
        )
        return dev

    def _refresh(self, dev: Device) -> None:
        """Look the device up again: it may have been registered (or moved) meanwhile."""
        token, member = None, None
        for spelling in token_spellings(dev.mac):
            member = self._lookup(spelling)
            if member is not None:
                token = spelling
                break
        member_id = member.id if member else None
        if member_id == dev.member_id and token == dev.token:
            return
        if dev.member_id is not None:
            self._detach(dev, reason="registration changed")
        dev.member_id, dev.token = member_id, token
        self._dirty.add(dev.mac)
        if member_id is not None:
            self._attach(dev)

    def _attach(self, dev: Device) -> None:
        assert dev.member_id is not None and dev.token is not None
        stay = self._members.get(dev.member_id)
        if stay is None:
            stay = self._members[dev.member_id] = MemberStay(dev.member_id, dev.token)
            self._members_gone.discard(dev.member_id)
        stay.devices.add(dev.mac)
        self._members_dirty.add(dev.member_id)

    def _detach(self, dev: Device, *, reason: str) -> None:
        """The device no longer counts for its member; a stay with no device left ends
        silently (a departure is a matter of time, not of registration)."""
        assert dev.member_id is not None
        stay = self._members.get(dev.member_id)
        if stay is None:
            return
        stay.devices.discard(dev.mac)
        if not stay.devices:
            self._end_stay(stay)
            self._log.info("mac_member_stay_ended", member=stay.member_id, reason=reason)

    def _announce(self, stay: MemberStay, dev: Device, wall: float) -> PresenceEvent | None:
        """ARRIVED unless Attendance says the member needs no check-in now."""
        now = self._clock.monotonic()
        at = datetime.fromtimestamp(wall, UTC)
        if self._attendance.until(stay.member_id, at) is not None:
            stay.asked = None  # checked in (by us or anyone): our tap, if any, is decided
            return None
        if stay.asked is not None and now - stay.asked < self._ask_again:
            return None  # our tap is still being decided, or was refused a moment ago
        quiet = self._quiet(stay, at)
        if quiet is not None:
            if stay.quiet != quiet:
                stay.quiet = quiet
                self._log.info(quiet, member=stay.member_id, mac=redact(dev.mac), **_WHY[quiet])
            return None
        stay.asked, stay.quiet, stay.token = now, None, dev.token or stay.token
        self._members_dirty.add(stay.member_id)
        self._log.info(
            "mac_member_arrived",
            member=stay.member_id,
            mac=redact(dev.mac),
            source=dev.source,
            randomised=dev.randomised,
        )
        return PresenceEvent(Change.ARRIVED, stay.token, stay.member_id, dev.mac)

    def _quiet(self, stay: MemberStay, at: datetime) -> str | None:
        """Why a member who is not checked in is not announced (a log event), or None."""
        if self._attendance.checked_out_today(stay.member_id, at):
            return "mac_member_returned_after_checkout"
        if self._attendance.refusal(stay.token, at) is not None:
            return "mac_member_refused_today"
        return None

    # -- time passing --------------------------------------------------------------

    def sweep(self) -> list[PresenceEvent]:
        """Devices silent for ``away_after`` are gone; a member whose last device went
        DEPARTED (reported only with ``checkout_on_departure``). Absent devices unseen for
        ``FORGET_AFTER`` are dropped from the table."""
        now, wall = self._clock.monotonic(), self._clock.time()
        events: list[PresenceEvent] = []
        for mac in [m for m in self._present if now - self._devices[m].last_mono >= self._away]:
            dev = self._devices[mac]
            if dev.member_id is not None and self.asking.still_asking(mac, dev.ip, now):
                continue  # only a registered device's departure means anything
            dev.present = False
            self._present.discard(mac)
            self._dirty.add(mac)
            if dev.member_id is None:
                continue
            stay = self._members.get(dev.member_id)
            if stay is None:
                continue
            stay.devices.discard(mac)
            if not stay.devices:
                events.extend(self._depart(stay, dev.mac))
        for stay in [s for s in self._members.values() if not s.devices]:
            events.extend(self._depart(stay, ""))  # restored stays whose devices left
        stale = [
            m
            for m, d in self._devices.items()
            if not d.present and wall - d.last_seen >= FORGET_AFTER
        ]
        for mac in stale:
            del self._devices[mac]
            self._forget(mac)
        return events

    def _depart(self, stay: MemberStay, mac: str) -> list[PresenceEvent]:
        self._end_stay(stay)
        self._log.info("mac_member_departed", member=stay.member_id, checkout=self._checkout)
        if not self._checkout:
            return []
        at = datetime.fromtimestamp(self._clock.time(), UTC)
        if self._attendance.until(stay.member_id, at) is None:
            return []  # not checked in (e.g. came back after today's check-out): nothing to end
        return [PresenceEvent(Change.DEPARTED, stay.token, stay.member_id, mac)]

    def _end_stay(self, stay: MemberStay) -> None:
        del self._members[stay.member_id]
        self._members_dirty.discard(stay.member_id)
        self._members_gone.add(stay.member_id)

    def _evict(self) -> None:
        """Make room: drop the absent devices seen longest ago (a flood of made-up
        source addresses must not grow memory without bound)."""
        absent = sorted((d.last_seen, m) for m, d in self._devices.items() if not d.present)
        for _, mac in absent[: max(1, len(self._devices) // 10)]:
            del self._devices[mac]
            self._forget(mac)
        if len(self._devices) >= self._max:  # all present: drop the quietest anyway
            quiet = min(self._present, key=lambda m: self._devices[m].last_mono)
            self._present.discard(quiet)
            dev = self._devices.pop(quiet)
            if dev.member_id is not None:
                self._detach(dev, reason="table full")
            self._forget(quiet)
        self._log.warning("mac_table_full", devices=len(self._devices), bound=self._max)

    def _forget(self, mac: str) -> None:
        self.asking.forget(mac)
        self._dirty.discard(mac)
        self._forgotten.add(mac)

    # -- persistence ---------------------------------------------------------------

    def restore(self, devices: Iterable[Device], members: Iterable[MemberStay]) -> None:
        """Load the table saved before a restart. Silence is counted from the saved
        ``last_seen``, so a device gone while the gateway was down leaves at the first
        sweep (and its member is checked out, if so configured and still checked in)."""
        now, wall = self._clock.monotonic(), self._clock.time()
        for stay in members:
            stay.devices = set()
            self._members[stay.member_id] = stay
        for dev in devices:
            if dev.mac in self._ignore:
                self._forgotten.add(dev.mac)
                continue
            dev.last_mono = now - max(0.0, wall - dev.last_seen)
            dev.next_lookup = now  # the cache may have changed while we were down
            self._devices[dev.mac] = dev
            if dev.present:
                self._present.add(dev.mac)
                if dev.member_id is not None and dev.token is not None:
                    self._attach(dev)
        self._members_dirty.clear()

    def requeue(self, changes: Changes) -> None:
        """Mark again what a failed save did not write (unless it changed since)."""
        self._dirty.update(d.mac for d in changes.devices if d.mac in self._devices)
        self._forgotten.update(m for m in changes.forgotten if m not in self._devices)
        self._members_dirty.update(
            s.member_id for s in changes.members if s.member_id in self._members
        )
        self._members_gone.update(m for m in changes.gone if m not in self._members)

    def take_changes(self) -> Changes:
        changes = Changes(
            devices=[self._devices[m] for m in self._dirty],
            forgotten=list(self._forgotten),
            members=[self._members[m] for m in self._members_dirty],
            gone=list(self._members_gone),
        )
        self._dirty.clear()
        self._forgotten.clear()
        self._members_dirty.clear()
        self._members_gone.clear()
        return changes


# What the log says when an arriving member is not announced.
_WHY: dict[str, dict[str, str]] = {
    "mac_member_returned_after_checkout": {
        "action": "not checked in again today (a second check-in uses a second pass)"
    },
    "mac_member_refused_today": {"action": "not asked again today: Cobot refused earlier"},
}
