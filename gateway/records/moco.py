"""MOCO as a record backend: staff taps become presences (moco-presences.txt).

A tap of a mapped card is committed ``held`` (kind ``touch``, backend ``moco``) before
the door moves, like a check-in (records/cobot.py). Once released:

- online, fresh, and answerable within the tap's own minute: ``POST .../touch``. The
  answer says whether it opened or closed a presence: the reader's feedback tells
  clocking in (one beep) from clocking out (two), and the log gives the presence's times.
  A 423 Locked is final: the day's presences are read and the conflict logged in words.
- otherwise (MOCO out of reach, the tap older, the user's earlier tap still queued, an
  open presence from an earlier day): the tap waits in the outbox and is replayed with
  its own time (gateway/moco/replay.py), never touched, since touch has no time.

A second tap of one user within ``min_interval`` is ignored (``takes`` says no): MOCO
discards a presence started and stopped within one minute, and a double tap is not
meant as "in and out". A record the database refuses is kept in memory and stored as
soon as it can be (then replayed); it is lost only if the gateway stops first (logged).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import structlog

from gateway.breaker import Breaker
from gateway.clock import Clock
from gateway.cobot.errors import (
    ApiError,
    NoSlot,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
)
from gateway.cobot.ratelimit import Priority
from gateway.errors import StorageError
from gateway.moco.client import MocoClient
from gateway.moco.errors import Locked
from gateway.moco.model import Presence, fmt_time, minute_of
from gateway.moco.replay import NAME, Replayer
from gateway.moco.staff import StaffBook
from gateway.model import ClockQuality, Membership, RecordKind, Signal, Tap
from gateway.outbox import Outbox, State
from gateway.records.background import Background
from gateway.records.base import Hold
from gateway.records.keeper import Keeper, Unsaved
from gateway.redact import redact

log = structlog.get_logger(__name__)

LIVE_DEADLINE = 5.0  # seconds a live touch may take at most (slot wait + answer)
# A touch must be answered this long before the tap's minute ends (the clocks of the
# gateway and MOCO may differ a little): then MOCO's minute is the tap's minute, which
# is how a crash mid-touch is recognised later (gateway/moco/plan.py).
MINUTE_MARGIN = 2.0
AUTH_PAUSE = 300.0
CLOSE_GRACE = 2.0

Feedback = Callable[[str, Signal], None]
"""(reader name, signal): shown by that reader's door, if it has one."""


class MocoRecords:
    def __init__(
        self,
        outbox: Outbox,
        client: MocoClient,
        staff: StaffBook,
        breaker: Breaker,
        clock: Clock,
        *,
        min_interval: float,
        feedback: Feedback | None = None,
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._staff = staff
        self._breaker = breaker
        self._clock = clock
        self._min_interval = min_interval
        self._feedback = feedback
        self.replayer = Replayer(outbox, client, staff, breaker, clock)
        self._last_tap: dict[int, float] = {}  # user -> monotonic time of their last tap
        self._keeper = Keeper(outbox, NAME, self.replayer.wake)
        self._background = Background()

    @property
    def name(self) -> str:
        return NAME

    @property
    def storage_error(self) -> str | None:
        return self._keeper.storage_error

    @property
    def staff(self) -> StaffBook:
        return self._staff

    @property
    def unsaved(self) -> int:
        return self._keeper.unsaved

    # --- the tap path -----------------------------------------------------------------

    def takes(self, kind: RecordKind | None, tap: Tap) -> bool:
        """Whether this tap is clocked at all: a mapped card, not within ``min_interval``
        of the same user's last tap."""
        del kind  # any admitted tap of a staff card toggles, whatever the door records
        user_id = self._staff.user_for(tap.token)
        if user_id is None:
            return False
        last = self._last_tap.get(user_id)
        if last is not None and tap.mono - last < self._min_interval:
            log.info(
                "moco_tap_ignored",
                reader=tap.reader,
                user_id=user_id,
                token=redact(tap.token),
                reason=f"within min_interval ({self._min_interval:.0f} s) of the last tap",
            )
            return False
        return True

    async def hold(self, kind: RecordKind, tap: Tap, member: Membership | None) -> Hold:
        user_id = self._staff.user_for(tap.token)
        assert user_id is not None, "hold() without takes()"
        self._last_tap[user_id] = tap.mono
        entry_id = await self._keeper.hold(RecordKind.TOUCH, tap, str(user_id))
        return Hold(NAME, RecordKind.TOUCH, tap, member, entry_id)

    async def release(self, hold: Hold, *, live: bool) -> None:
        """Deliver now if MOCO is reachable (its own breaker: ``live`` is the door
        rule's view of Cobot)."""
        del live
        user_id = self._staff.user_for(hold.tap.token)
        assert user_id is not None
        if hold.entry_id is None:
            self._keeper.keep(Unsaved(RecordKind.TOUCH, hold.tap, str(user_id)))
            self._predicted(hold.tap, user_id, "not stored yet")
        elif not await self._keeper.release(hold.entry_id):
            self._predicted(hold.tap, user_id, "queued")
        else:
            self._background.spawn(self._deliver_live(hold.entry_id, hold.tap, user_id))

    async def discard(self, hold: Hold) -> None:
        user_id = self._staff.user_for(hold.tap.token)
        if user_id is not None and self._last_tap.get(user_id) == hold.tap.mono:
            del self._last_tap[user_id]  # the door failed: a retry tap must count
        if hold.entry_id is not None:
            await self._keeper.discard(hold.entry_id)

    # --- live delivery -------------------------------------------------------------

    async def _deliver_live(self, entry_id: int, tap: Tap, user_id: int) -> None:
        if self._breaker.is_open:
            self._predicted(tap, user_id, "MOCO unreachable: queued")
            self.replayer.wake()
            return
        async with self.replayer.lock(user_id):
            self.replayer.changed(user_id)
            try:
                entry = await self._outbox.get(entry_id)
                if entry is None or entry.state is not State.PENDING:
                    return
                budget = self._touch_budget(tap, user_id)
                if budget is not None and not await self._outbox.has_older_open(entry):
                    await self._touch(entry_id, tap, user_id, budget)
                    return
                # Not a moment for touch: write it with its own time, now.
                outcomes = await self.replayer.replay_user(user_id, Priority.LIVE)
            except StorageError as exc:
                log.error("moco_outbox_write_failed", entry=entry_id, error=str(exc))
                self.replayer.wake()
                return
        result = outcomes.get(entry_id, "waiting")
        if result in ("in", "out"):
            self._show(tap, user_id, result == "in", how="written with the tap's time")
        elif result == "failed":
            self._signal(tap.reader, Signal.REFUSED)
        else:
            self._predicted(tap, user_id, "queued")
            self.replayer.wake()

    def _touch_budget(self, tap: Tap, user_id: int) -> float | None:
        """Seconds a touch may take so that MOCO answers within the tap's minute; None
        when there is no such time (or the tap's clock is not to be trusted)."""
        if tap.clock is not ClockQuality.SYNCED or self._staff.open_since_earlier_day(
            user_id, tap.at
        ):
            return None
        local = tap.at.astimezone()
        left = 60.0 - local.second - local.microsecond / 1e6
        left -= self._clock.monotonic() - tap.mono + MINUTE_MARGIN
        if left < 0.5:
            return None
        return min(left, LIVE_DEADLINE)

    async def _touch(self, entry_id: int, tap: Tap, user_id: int, budget: float) -> None:
        await self._outbox.mark_sending(entry_id)
        try:
            presence = await self._client.touch(user_id, priority=Priority.LIVE, deadline=budget)
        except Locked as exc:
            self._breaker.record_success()
            reason = await self._explain_conflict(user_id, tap, exc)
            await self._outbox.mark_failed(entry_id, reason)
            self._signal(tap.reader, Signal.REFUSED)
            return
        except Refused as exc:
            await self._outbox.mark_failed(entry_id, f"MOCO refused the touch: {exc.reason}")
            self._signal(tap.reader, Signal.REFUSED)
            return
        except ApiError as exc:
            await self._touch_failed(entry_id, tap, user_id, exc)
            return
        self._breaker.record_success()
        await self._outbox.mark_delivered(entry_id, str(presence.id))
        self._staff.seen(user_id, presence)
        self._show(tap, user_id, presence.open, how="touch", presence=presence)

    async def _touch_failed(self, entry_id: int, tap: Tap, user_id: int, exc: ApiError) -> None:
        if isinstance(exc, NoSlot | RateLimited):
            # Nothing reached MOCO: replay it with its own time.
            delay = exc.retry_after if isinstance(exc, RateLimited) else 0.0
            await self._outbox.defer(entry_id, str(exc), delay, outcome_unknown=False)
        elif isinstance(exc, Unauthorized):
            await self._outbox.defer(entry_id, str(exc), AUTH_PAUSE, outcome_unknown=False)
        else:
            if isinstance(exc, Unavailable):
                self._breaker.record_failure(str(exc))
            unknown = not isinstance(exc, Unavailable) or exc.outcome_unknown
            # Maybe touched: the replay looks in MOCO before writing (plan.py).
            await self._outbox.defer(entry_id, str(exc), 1.0, outcome_unknown=unknown)
        self._predicted(tap, user_id, f"queued ({exc})")
        self.replayer.wake()

    async def _explain_conflict(self, user_id: int, tap: Tap, exc: Locked) -> str:
        """The 423 in plain words: what the touch at this minute ran into."""
        day = tap.at.astimezone().date()
        at = fmt_time(minute_of(tap.at))
        try:
            today = await self._client.presences(user_id, day, day, priority=Priority.LIVE)
        except ApiError as read_exc:
            reason = (
                f"MOCO refused the touch at {at} (423 Locked: {exc.detail}); "
                f"its presences could not be read: {read_exc}"
            )
        else:
            m = minute_of(tap.at)
            clash = [
                p
                for p in today
                if (p.end is not None and p.start <= m < p.end) or (p.open and p.start > m)
            ]
            what = (
                "it falls inside " + ", ".join(p.describe() for p in clash)
                if clash
                else "it conflicts with an existing presence"
            )
            shown = ", ".join(p.describe() for p in today) or "none"
            reason = (
                f"MOCO refused the touch at {at} (423 Locked): {what}. The day's presences: "
                f"{shown}. Not retried: correct the presences in MOCO"
            )
        log.warning("moco_touch_conflict", user_id=user_id, reader=tap.reader, reason=reason)
        return reason

    # --- feedback ---------------------------------------------------------------------

    def _show(
        self,
        tap: Tap,
        user_id: int,
        clocked_in: bool,
        *,
        how: str,
        presence: Presence | None = None,
    ) -> None:
        if presence is None:
            self._staff.set(user_id, clocked_in, tap.at)
        log.info(
            "clocked_in" if clocked_in else "clocked_out",
            reader=tap.reader,
            user_id=user_id,
            how=how,
            presence=presence.describe() if presence else None,
            tapped_at=fmt_time(minute_of(tap.at)),
            latency_ms=round((self._clock.monotonic() - tap.mono) * 1000, 1),
        )
        self._signal(tap.reader, Signal.CLOCKED_IN if clocked_in else Signal.CLOCKED_OUT)

    def _predicted(self, tap: Tap, user_id: int, why: str) -> None:
        """MOCO cannot answer now: tell the person what the queued tap will do."""
        clocked_in = self._staff.predict(user_id, tap.at)
        self._staff.set(user_id, clocked_in, tap.at)
        log.info(
            "clocked_in" if clocked_in else "clocked_out",
            reader=tap.reader,
            user_id=user_id,
            how="predicted",
            why=why,
            tapped_at=fmt_time(minute_of(tap.at)),
        )
        self._signal(tap.reader, Signal.CLOCKED_IN if clocked_in else Signal.CLOCKED_OUT)

    def _signal(self, reader: str, signal: Signal) -> None:
        if self._feedback is not None:
            try:
                self._feedback(reader, signal)
            except Exception:  # feedback must never undo a record
                log.exception("moco_feedback_failed", reader=reader)

    # --- the supervised part -----------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._refresh_state(), name="moco-state")
            tg.create_task(self.replayer.run(), name="moco-replay")
            tg.create_task(self._keeper.run(), name="moco-save")

    async def _refresh_state(self) -> None:
        """Who is clocked in today, from MOCO (for feedback and status), once at start."""
        today = self._clock.now().astimezone().date()
        for user_id in self._staff.user_ids:
            try:
                found = await self._client.presences(
                    user_id, today - timedelta(days=1), today, priority=Priority.SYNC
                )
            except ApiError as exc:
                log.info("moco_state_unknown", user_id=user_id, error=str(exc))
                return
            if found:
                self._staff.seen(user_id, max(found, key=lambda p: (p.date, p.start)))

    async def aclose(self) -> None:
        await self._background.close(CLOSE_GRACE)
        await self._keeper.close()
