"""A door driven by GPIO lines: the strike's relay, and optionally a door contact, an
exit button, a green and a red LED and a buzzer (libgpiod v2, ``type = "gpio"``).

Everything runs on the event loop without threads: input edges arrive through
``loop.add_reader`` on the line request's file descriptor, the relock and the held-open
alarm are loop timers, feedback patterns are one owned task. The door must therefore
be built inside the running loop (``build_door`` in the gateway's ``async main``).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from gateway.config.model import GpioDoorConfig
from gateway.doors.base import DoorSignal
from gateway.doors.feedback import (
    CUE_FOR_SIGNAL,
    ENDS_MODE,
    MODE_LIMIT,
    MODE_START,
    PATTERNS,
    Cue,
    play,
)
from gateway.doors.gpio_lines import FEEDBACK, GpioLines, LineSpec, OpenChip, Role
from gateway.doors.watch import DoorEvent, DoorWatch, Report
from gateway.errors import DoorError

log = structlog.get_logger(__name__)


def line_specs(cfg: GpioDoorConfig) -> dict[Role, LineSpec]:
    polarity = {
        Role.LOCK: cfg.active_low,
        Role.CONTACT: cfg.contact_active_low,
        Role.EXIT_BUTTON: cfg.exit_button_active_low,
        **dict.fromkeys(FEEDBACK, cfg.feedback_active_low),
    }
    return {Role(key): LineSpec(line, polarity[Role(key)]) for key, line in cfg.lines().items()}


class GpioDoor:
    def __init__(self, cfg: GpioDoorConfig, *, open_chip: OpenChip | None = None) -> None:
        self._cfg = cfg
        self._log = log.bind(door=cfg.name)
        self._loop = asyncio.get_running_loop()
        self._lines = GpioLines(
            cfg.name,
            cfg.chip,
            line_specs(cfg),
            bias=cfg.input_bias,
            debounce=cfg.debounce,
            open_chip=open_chip,
        )
        self._watch = DoorWatch(held_open_alarm=cfg.held_open_alarm, clock=self._loop.time)
        self._relock: asyncio.TimerHandle | None = None
        self._alarm: asyncio.TimerHandle | None = None
        self._feedback: asyncio.Task[None] | None = None
        self._mode: Cue | None = None  # shown between cues until ended (enrolment)
        self._mode_until = 0.0  # loop time
        self._closed = False
        self._reading = False
        if self._lines.inputs:
            if self._lines.has(Role.CONTACT):
                self._watch.start(self._lines.get(Role.CONTACT))
                self._arm_alarm()
            self._loop.add_reader(self._lines.fd, self._on_edges)
            self._reading = True
        self._log.info("door_ready", chip=cfg.chip, lines=cfg.lines(), open=self._watch.is_open)

    @property
    def name(self) -> str:
        return self._cfg.name

    @property
    def is_open(self) -> bool | None:
        """The contact's last word: True open, False shut, None without a contact."""
        return self._watch.is_open

    @property
    def unlocked(self) -> bool:
        return self._relock is not None

    async def open(self) -> None:
        self._pulse()

    async def signal(self, signal: DoorSignal) -> None:
        self._cue(CUE_FOR_SIGNAL[signal])

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reading:
            self._loop.remove_reader(self._lines.fd)
        for handle in (self._relock, self._alarm):
            if handle is not None:
                handle.cancel()
        self._relock = self._alarm = None
        if self._feedback is not None:
            self._feedback.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feedback
        self._lines.close()  # strike locked, LEDs off, lines released
        self._log.info("door_closed_down")

    # --- the strike ------------------------------------------------------------------

    def _pulse(self) -> None:
        """Unlock for ``pulse`` seconds; a pulse during a pulse extends it."""
        if self._closed:
            raise DoorError(f"door {self.name}: closed")
        self._lines.set(Role.LOCK, True)
        if self._relock is not None:
            self._relock.cancel()
        self._relock = self._loop.call_later(self._cfg.pulse, self._relock_now)
        self._watch.unlocked(self._cfg.pulse)

    def _relock_now(self) -> None:
        self._relock = None
        try:
            self._lines.set(Role.LOCK, False)
        except DoorError as exc:
            # Nothing else to try: the request is released at shutdown, and a
            # fail-secure strike relocks when the relay loses power.
            self._log.error("relock_failed", error=str(exc))

    # --- feedback --------------------------------------------------------------------

    def _cue(self, cue: Cue) -> None:
        if self._closed or not any(self._lines.has(r) for r in FEEDBACK):
            return
        if cue in MODE_START:  # a mode: its start once, then its pattern until ended
            self._mode, self._mode_until = cue, self._loop.time() + MODE_LIMIT
            first = MODE_START[cue]
        else:
            if cue in ENDS_MODE:
                self._mode = None
            first = cue
        if self._feedback is not None:
            self._feedback.cancel()  # the newest outcome is the one to show
        self._feedback = self._loop.create_task(
            self._play(first), name=f"door-{self.name}-feedback"
        )

    async def _play(self, cue: Cue) -> None:
        try:
            await play(self._lines, PATTERNS[cue])
            # Back to the mode (enrolment waits on) after the cue, until it is ended.
            while self._mode is not None and self._loop.time() < self._mode_until:
                await play(self._lines, PATTERNS[self._mode])
            self._mode = None
        except DoorError as exc:
            # Feedback is a courtesy; a broken LED must not affect the door.
            self._log.warning("feedback_failed", cue=cue.value, error=str(exc))

    # --- inputs ----------------------------------------------------------------------

    def _on_edges(self) -> None:
        try:
            edges = self._lines.read_edges()
        except DoorError as exc:
            # A request whose fd keeps failing would spin the loop: stop watching.
            self._log.error("inputs_failed", error=str(exc))
            self._loop.remove_reader(self._lines.fd)
            self._reading = False
            return
        for edge in edges:
            if edge.role is Role.CONTACT:
                self._report(self._watch.contact(edge.active))
                self._arm_alarm()
            elif edge.role is Role.EXIT_BUTTON:
                self._report(self._watch.exit_button(edge.active))

    def _arm_alarm(self) -> None:
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None
        deadline = self._watch.next_deadline()
        if deadline is not None and not self._closed:
            self._alarm = self._loop.call_at(deadline, self._on_alarm)

    def _on_alarm(self) -> None:
        self._alarm = None
        self._report(self._watch.poll())
        self._arm_alarm()

    def _report(self, reports: list[Report]) -> None:
        for report in reports:
            event = report.event
            if event is DoorEvent.EXIT_PRESSED:
                self._log.info("exit_button_pressed")
                try:
                    self._pulse()
                except DoorError as exc:
                    self._log.error("exit_open_failed", error=str(exc))
            elif event is DoorEvent.HELD_OPEN:
                self._log.warning("door_held_open", seconds=round(report.open_for or 0, 1))
                self._cue(Cue.HELD_OPEN)
            elif event is DoorEvent.CLOSED:
                emit = self._log.warning if report.alarmed else self._log.info
                emit(
                    "door_shut", open_for=round(report.open_for or 0, 1), after_alarm=report.alarmed
                )
            elif event is DoorEvent.OPENED_WITHOUT_UNLOCK:
                # A key, a free-egress handle, or force: worth a line, not an alarm.
                self._log.info("door_opened_without_unlock")
            else:
                self._log.info("door_opened")
