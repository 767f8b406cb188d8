"""Where a tap becomes a door decision and a record: the one path every tap takes.

    tap -> the door's rule (rules/) -> verdict
        -> refused: feedback, done
        -> admitted: each record backend holds the record (records/), the door opens,
           then the records are released to delivery, or discarded if the door did not
           open, so what Cobot is told always agrees with what the door did
        -> Attendance hears who is checked in, once the record is stored or delivered

The decider owns no state of its own besides its background feedback tasks; rules decide,
backends record, ``Attendance`` remembers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.attendance import Attendance
from gateway.doors.base import Door
from gateway.errors import DoorError
from gateway.model import Membership, Outcome, RecordKind, Signal, Tap
from gateway.records.base import Hold, RecordBackend, SelectiveBackend
from gateway.redact import redact
from gateway.rules.base import DoorRule, Verdict

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    tap: Tap
    outcome: Outcome
    membership: Membership | None
    reason: str | None  # the API's words on a refusal, or why we decided locally
    opened: bool
    latency_ms: float  # tap read -> door command issued (or refusal known)
    preview_ms: float | None = None


DecisionHook = Callable[[Decision], None]


class Decider:
    def __init__(
        self,
        rule: DoorRule,
        backends: Sequence[RecordBackend],
        attendance: Attendance,
        *,
        door_rules: Mapping[str, DoorRule] | None = None,
        hooks: list[DecisionHook] | None = None,
        journal: list[DecisionHook] | None = None,
        reader_backends: Mapping[str, Sequence[RecordBackend]] | None = None,
    ) -> None:
        self._rule = rule
        self._door_rules = dict(door_rules or {})
        self._backends = list(backends)
        # Readers whose ``record`` names other backends than the default (e.g. MOCO).
        self._reader_backends = {k: list(v) for k, v in (reader_backends or {}).items()}
        self._attendance = attendance
        self._hooks = hooks or []
        # Called before the records are released or discarded (hooks: after everything),
        # so what they attach to the database (the access log's row, Database.attach)
        # is committed in the record's own transaction.
        self._journal = journal or []
        self._background: set[asyncio.Task[object]] = set()

    @property
    def storage_error(self) -> str | None:
        """The last failure to store a record, until one is stored again."""
        every = [*self._backends, *(b for bs in self._reader_backends.values() for b in bs)]
        return next((b.storage_error for b in every if b.storage_error), None)

    def rule_for(self, door: Door | None) -> DoorRule:
        """The rule a tap at ``door`` is judged by (a reader's own rule may wrap it)."""
        return (self._door_rules.get(door.name) if door else None) or self._rule

    async def decide(self, tap: Tap, door: Door | None, rule: DoorRule | None = None) -> Decision:
        rule = rule or (self._door_rules.get(door.name) if door else None) or self._rule
        verdict = await rule.judge(tap)
        if verdict.admits:
            return await self._admit(tap, door, verdict)
        await self._signal(door, Signal.REFUSED)
        decision = self._done(tap, verdict, None)
        self._call(self._journal, decision)
        return self._announce(decision)

    def _announce(self, decision: Decision) -> Decision:
        """Log the decision and tell the hooks (who is in is already known then)."""
        tap = decision.tap
        log.info(
            "tap",
            reader=tap.reader,
            token=redact(tap.token),
            membership_id=decision.membership.id if decision.membership else None,
            outcome=decision.outcome.value,
            opened=decision.opened,
            reason=decision.reason,
            latency_ms=round(decision.latency_ms, 2),
            preview_ms=None if decision.preview_ms is None else round(decision.preview_ms, 1),
        )
        self._call(self._hooks, decision)
        return decision

    @staticmethod
    def _call(hooks: list[DecisionHook], decision: Decision) -> None:
        for hook in hooks:
            try:
                hook(decision)
            except Exception:  # a hook's fault must not undo a decision already made
                log.exception("decision_hook_failed", hook=getattr(hook, "__name__", repr(hook)))

    async def _admit(self, tap: Tap, door: Door | None, verdict: Verdict) -> Decision:
        holds: list[tuple[RecordBackend, Hold]] = []
        for backend in self._reader_backends.get(tap.reader, self._backends):
            if isinstance(backend, SelectiveBackend):
                if not backend.takes(verdict.record, tap):
                    continue
            elif verdict.record is None:
                continue
            kind = verdict.record or RecordKind.TOUCH
            holds.append((backend, await backend.hold(kind, tap, verdict.member)))
        opened_at = await self._open(door, verdict.signal)
        if door is not None and opened_at is None:
            failed = Verdict(Outcome.DOOR_FAILED, verdict.member, "door did not open")
            decision = self._done(tap, failed, None, verdict.preview_ms)
            self._call(self._journal, decision)
            for backend, hold in holds:
                await backend.discard(hold)
            return self._announce(decision)
        decision = self._done(tap, verdict, opened_at)
        self._call(self._journal, decision)
        for backend, hold in holds:
            await backend.release(hold, live=verdict.live)
        # Attendance is about check-ins: a MOCO touch not stored does not change it.
        checks = [hold for _, hold in holds if hold.kind is not RecordKind.TOUCH]
        await self._tell_attendance(tap, verdict, checks)
        return self._announce(decision)

    async def _tell_attendance(self, tap: Tap, verdict: Verdict, holds: list[Hold]) -> None:
        member = verdict.member
        if member is None:
            return
        if verdict.record is RecordKind.CHECK_OUT:
            await self._attendance.checked_out(member.id, tap.at)
        elif verdict.until is not None and all(h.stored for h in holds):
            # Only what was stored (or, for a record kept in memory, delivered: the
            # backend tells Attendance then) counts as checked in.
            await self._attendance.checked_in(member.id, verdict.until, tap.at)

    async def _open(self, door: Door | None, signal: Signal) -> float | None:
        """Open the door; the moment it was commanded (for latency), or None."""
        if door is None:
            return None
        try:
            await door.open()
        except DoorError as exc:
            log.error("door_failed", door=door.name, error=str(exc))
            return None
        opened_at = time.monotonic()
        await self._signal(door, signal)
        return opened_at

    async def _signal(self, door: Door | None, signal: Signal) -> None:
        if door is not None:
            self._spawn(door.signal(signal))  # feedback must not delay the next tap

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _done(
        self,
        tap: Tap,
        verdict: Verdict,
        opened_at: float | None,
        preview_ms: float | None = None,
    ) -> Decision:
        """The decision; its latency ends when the door was commanded (bookkeeping after
        that, like remembering the check-in, does not keep anyone waiting)."""
        return Decision(
            tap=tap,
            outcome=verdict.outcome,
            membership=verdict.member,
            reason=verdict.reason,
            opened=opened_at is not None,
            latency_ms=((opened_at or time.monotonic()) - tap.mono) * 1000,
            preview_ms=verdict.preview_ms if preview_ms is None else preview_ms,
        )

    async def aclose(self) -> None:
        """Let door feedback finish briefly."""
        if self._background:
            await asyncio.wait(self._background, timeout=2.0)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


async def decide_queue(
    decider: Decider,
    reader: str,
    queue: asyncio.Queue[Tap],
    door: Door | None,
    rule: DoorRule | None,
) -> None:
    """One reader's decisions, in the order its taps came (a supervised part). One bad
    tap does not stop the reader; taps read but not decided when it stops are logged."""
    try:
        while True:
            tap = await queue.get()
            try:
                await decider.decide(tap, door, rule)
            except Exception:  # one bad tap must not stop the reader
                log.exception("decision_crashed", reader=reader)
            finally:
                queue.task_done()
    except asyncio.CancelledError:
        while not queue.empty():  # read but never decided: say so
            left = queue.get_nowait()
            queue.task_done()
            log.warning("tap_dropped_at_stop", reader=reader, token=redact(left.token))
        raise
