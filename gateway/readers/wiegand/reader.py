"""A Wiegand reader on two GPIO lines: falling edges through libgpiod v2, on the loop.

The lines are requested as inputs with pull-ups, falling-edge detection, no debounce
(a bit is a 20-100 us pulse) and a deep kernel event buffer; the request's file
descriptor is read with ``loop.add_reader``, no thread. Frames are split on the
kernel's edge timestamps (``FrameSplitter``); a loop timer ends the last frame once the
line has been silent for the gap and as long again as edges have lately taken to reach
us (at least ``LATE_EDGE_MIN_NS``), so a tap follows the last bit by about 27 ms.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from gateway.config.model import WiegandReaderConfig
from gateway.doors.gpio_lines import CONSUMER, ChipLike, OpenChip, RequestLike, load_gpiod
from gateway.errors import DoorError
from gateway.gpiochip import open_chip_by_name
from gateway.readers.base import Debouncer, ReaderState, TapSink, make_tap
from gateway.readers.fdwatch import FdWatch
from gateway.readers.link import LOST, PERMISSION, LinkFault, LinkPolicy, LinkSupervisor
from gateway.readers.wiegand.formats import formats_for
from gateway.readers.wiegand.frames import Frame, FrameSplitter
from gateway.readers.wiegand.session import WiegandSession, WiegandTokenFormat
from gateway.redact import redact

log = structlog.get_logger(__name__)

# The kernel keeps up to this many edges for us between reads (a 37-bit frame is 37
# edges): a stalled loop loses nothing unless ~27 cards arrive meanwhile. 1024 is the
# kernel's limit (16 per line x 64 lines, gpiolib-cdev).
EVENT_BUFFER = 1024
# The kernel stamps an edge in its interrupt handler but queues it from the line's
# interrupt thread, which can run milliseconds later on a busy system (up to ~11 ms seen
# in the emulated test VM, tests/vm/). The timer that ends a frame waits past the gap as
# long as the current frame's edges took from their timestamp to our read (bounded),
# so that a bit stamped inside the gap but queued late still joins its frame instead of
# cutting it short. The gap itself stays 25 ms of kernel time.
LATE_EDGE_MIN_NS = 2_000_000
LATE_EDGE_MAX_NS = 15_000_000
PERMISSION_HINT = "permission denied on {chip}: the service user needs the gpio group"
# A chip does not come and go like a USB device; a GPIO expander on USB or I2C might.
# Permission: udev may set a fresh node's group a moment after it appears.
LINK_POLICY = LinkPolicy(first_delay=0.5, cap=30.0, stable_after=10.0, permission_attempts=3)


@dataclass(frozen=True, slots=True)
class WiegandReaderStats:
    state: ReaderState
    taps: int  # after debouncing
    cards: int  # frames decoded as cards
    keys: int  # keypad keys
    pins: int  # PINs submitted (keypad = true)
    rejected: dict[str, int]  # dropped frames by reason (parity, wrong-length, overflow...)
    swapped_suspected: bool  # D0/D1 look swapped (logged with the fix)
    opens: int  # times the lines were requested
    last_error: str | None


class WiegandReader:
    def __init__(
        self,
        cfg: WiegandReaderConfig,
        *,
        open_chip: OpenChip | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        policy: LinkPolicy | None = None,
    ) -> None:
        self._cfg = cfg
        self._open_chip = open_chip
        self._clock_ns = clock_ns  # the kernel's event clock: CLOCK_MONOTONIC
        self._session = WiegandSession(
            cfg.name,
            formats_for(cfg.format),
            WiegandTokenFormat(cfg.token_format),
            keypad=cfg.keypad,
        )
        self._splitter = FrameSplitter()
        self._debounce = Debouncer(cfg.debounce)
        self._link = LinkSupervisor(
            policy or LINK_POLICY, events="wiegand_reader", reader=cfg.name, chip=cfg.chip
        )
        self._log = log.bind(reader=cfg.name)
        self._sink: TapSink | None = None
        self._d0 = self._d1 = -1
        self._lag_ns = 0  # the longest an edge of this frame took to reach us
        self.taps = 0

    @property
    def name(self) -> str:
        return self._cfg.name

    @property
    def state(self) -> ReaderState:
        return self._link.state

    @property
    def stats(self) -> WiegandReaderStats:
        """For ``status``: counters since start, across reopens."""
        session = self._session.stats
        return WiegandReaderStats(
            state=self.state,
            taps=self.taps,
            cards=session.cards,
            keys=session.keys,
            pins=session.pins,
            rejected=session.rejected,
            swapped_suspected=session.swapped_suspected,
            opens=self._link.stats.opens,
            last_error=self._link.stats.last_error,
        )

    async def run(self, sink: TapSink) -> None:
        """Read taps into ``sink`` until cancelled; re-request the lines if the chip goes.
        Raises ``ReaderError`` when the lines cannot be had at all."""
        self._sink = sink
        try:
            await self._link.run(self._attempt)
        finally:
            self._sink = None

    async def _attempt(self) -> None:
        """One life of the line request: request, read edges until the fd fails."""
        request = self._request()
        watch = FdWatch(request.fd, clock_ns=self._clock_ns)

        def on_readable() -> None:
            try:
                events = request.read_edge_events()
            except OSError as exc:
                watch.lost(LinkFault(LOST, f"{self._cfg.chip}: edges lost: {exc}"))
                return
            if events:
                lag = self._clock_ns() - min(e.timestamp_ns for e in events)
                self._lag_ns = max(self._lag_ns, lag)
            self._edges(events)
            watch.wake_at(silence_ends(), on_silence)

        def grace() -> int:
            return min(max(self._lag_ns, LATE_EDGE_MIN_NS), LATE_EDGE_MAX_NS)

        def silence_ends() -> int | None:
            deadline = self._splitter.deadline_ns()
            return None if deadline is None else deadline + grace()

        def on_silence() -> None:
            frame = self._splitter.flush(self._clock_ns() - grace())
            if frame is not None:
                self._lag_ns = 0
                self._frame(frame)
            else:  # woke a little early: wait on
                watch.wake_at(silence_ends(), on_silence)

        try:
            await watch.serve(on_readable, self._link.up)
        finally:
            self._splitter = FrameSplitter()  # half a frame must not glue to the next
            request.release()

    def _request(self) -> RequestLike:
        try:
            gpiod = load_gpiod()
        except DoorError as exc:
            raise LinkFault(
                "no-library", str(exc).replace("gpio door", "wiegand reader"), fatal=True
            ) from exc
        line = gpiod.line
        opener: OpenChip = self._open_chip or open_chip_by_name
        chip_name = self._cfg.chip
        try:
            chip: ChipLike = opener(chip_name)
        except OSError as exc:
            raise _fault(chip_name, exc, "cannot open the GPIO chip") from exc
        try:
            try:
                self._d0 = chip.line_offset_from_id(self._cfg.d0_line)
                self._d1 = chip.line_offset_from_id(self._cfg.d1_line)
            except (OSError, ValueError) as exc:
                raise LinkFault(
                    "no-line",
                    f"{chip_name}: no line {self._cfg.d0_line!r} or {self._cfg.d1_line!r} "
                    "(gpioinfo lists them)",
                    fatal=True,
                ) from exc
            if self._d0 == self._d1:
                raise LinkFault(
                    "no-line", f"{chip_name}: d0_line and d1_line are one line", fatal=True
                )
            settings = gpiod.LineSettings(
                direction=line.Direction.INPUT,
                edge_detection=line.Edge.FALLING,
                bias=line.Bias.PULL_UP,
                debounce_period=timedelta(0),
            )
            config: dict[Any, Any] = {self._d0: settings, self._d1: settings}
            try:
                return chip.request_lines(config, consumer=CONSUMER, event_buffer_size=EVENT_BUFFER)
            except OSError as exc:
                raise _fault(chip_name, exc, "cannot request D0/D1") from exc
        finally:
            chip.close()

    def _edges(self, events: list[Any]) -> None:
        for event in events:
            if event.line_offset == self._d0:
                bit = 0
            elif event.line_offset == self._d1:
                bit = 1
            else:
                continue
            frame = self._splitter.feed(bit, event.timestamp_ns, event.global_seqno)
            if frame is not None:
                self._frame(frame)

    def _frame(self, frame: Frame) -> None:
        # Called from loop callbacks: nothing may raise out of here.
        try:
            token = self._session.frame(frame)
            if token is None or not self._debounce.accept(token):
                return
            self.taps += 1
            self._log.debug("wiegand_tap", token=redact(token), bits=frame.length)
            if self._sink is not None:
                self._sink(make_tap(self._cfg.name, token, self._cfg.direction))
        except Exception:  # noqa: BLE001 - logged with its traceback; the lines stay open
            self._log.exception("wiegand_tap_failed")


def _fault(chip: str, exc: OSError, doing: str) -> LinkFault:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return LinkFault(PERMISSION, PERMISSION_HINT.format(chip=chip))
    if exc.errno == errno.EBUSY:
        return LinkFault("busy", f"{chip}: D0 or D1 is in use by another program (gpioinfo)")
    if exc.errno == errno.ENOENT:
        return LinkFault("no-device", f"{chip}: no such GPIO chip (gpiodetect lists them)")
    return LinkFault("unavailable", f"{chip}: {doing}: {exc.strerror or exc}")
