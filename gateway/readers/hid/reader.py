"""A USB keyboard-wedge reader through evdev, grabbed so its digits go nowhere else.

The device (``/dev/input/by-id/...-event-kbd``, or found by ``vendor:product``) is
opened, its event timestamps switched to CLOCK_MONOTONIC, and grabbed with
``EVIOCGRAB``: while we hold it, no console, getty or X session sees a card number.
Events are read on the loop (``add_reader`` on its fd, no thread). An unplugged reader
fails its read with ENODEV; the link loop reopens it when it is back.

``open_device`` is the seam: ``evdev.InputDevice`` by default; tests hand in a device
fed with evdev's own ``InputEvent`` objects, or a real ``uinput`` device where the kernel
has one (tests/test_hid_reader.py says which ran).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from gateway.config.model import HidReaderConfig
from gateway.readers.base import Debouncer, ReaderState, TapSink, make_tap
from gateway.readers.fdwatch import FdWatch
from gateway.readers.hid.keymap import LAYOUTS
from gateway.readers.hid.tokens import KeyTokenizer
from gateway.readers.link import LOST, PERMISSION, LinkFault, LinkPolicy, LinkSupervisor
from gateway.redact import redact

log = structlog.get_logger(__name__)

EV_KEY = 1  # linux/input-event-codes.h
EVIOCSCLOCKID = 0x400445A0  # _IOW('E', 0xa0, int): the clock of event timestamps
CLOCK_MONOTONIC = 1
# Right after plug-in the event node exists before udev has given it to group input: a
# few EACCES in a row are that race; more mean the permission is really missing.
LINK_POLICY = LinkPolicy(first_delay=0.5, cap=30.0, stable_after=10.0, permission_attempts=5)
PERMISSION_HINT = (
    "permission denied on {device}: the service user needs the 'input' group "
    "(SupplementaryGroups=input in the unit; hardware/udev/60-checkin-gateway.rules)"
)


class InputDeviceLike(Protocol):
    """What we use of ``evdev.InputDevice``."""

    @property
    def fd(self) -> int: ...
    def read(self) -> Iterator[Any]: ...
    def grab(self) -> None: ...
    def ungrab(self) -> None: ...
    def close(self) -> None: ...


OpenDevice = Callable[[str], InputDeviceLike]


def open_evdev(spec: str) -> InputDeviceLike:
    """``evdev.InputDevice`` for a path, or the first keyboard-like device with this
    ``vendor:product``. Raises ``FileNotFoundError`` when there is none, ``OSError``."""
    import evdev

    # Read-only: we never write to the reader (no LEDs), and the unit admits input
    # devices read-only; EVIOCGRAB works on a read-only descriptor.
    if spec.startswith("/"):
        return evdev.InputDevice(spec, readonly=True)
    vendor, product = (int(part, 16) for part in spec.split(":"))
    for path in evdev.list_devices():
        with contextlib.suppress(OSError):
            device = evdev.InputDevice(path, readonly=True)
            keys = device.capabilities().get(EV_KEY, [])
            if (device.info.vendor, device.info.product) == (vendor, product) and (
                evdev.ecodes.KEY_ENTER in keys
            ):
                return device
            device.close()
    raise FileNotFoundError(errno.ENOENT, f"no input device {spec} with an Enter key", spec)


@dataclass(frozen=True, slots=True)
class HidReaderStats:
    state: ReaderState
    taps: int  # after debouncing
    tokens: int  # Enter-terminated tokens typed
    partial: int  # half tokens dropped after a pause
    unmapped_keys: int  # keys the layout does not map (ignored)
    too_long: int  # tokens over 64 characters (dropped)
    opens: int  # times the device was opened and grabbed
    last_error: str | None


class HidReader:
    def __init__(
        self,
        cfg: HidReaderConfig,
        *,
        open_device: OpenDevice = open_evdev,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        policy: LinkPolicy | None = None,
    ) -> None:
        self._cfg = cfg
        self._open_device = open_device
        self._clock_ns = clock_ns
        self._tokens = KeyTokenizer(LAYOUTS[cfg.layout], int(cfg.token_timeout * 1e9))
        self._debounce = Debouncer(cfg.debounce)
        self._link = LinkSupervisor(
            policy or LINK_POLICY, events="hid_reader", reader=cfg.name, device=cfg.device
        )
        self._log = log.bind(reader=cfg.name)
        self._sink: TapSink | None = None
        self.taps = 0

    @property
    def name(self) -> str:
        return self._cfg.name

    @property
    def state(self) -> ReaderState:
        return self._link.state

    @property
    def counts(self) -> dict[str, int]:
        """Tokens read, partial tokens dropped, unmapped keys, over-long tokens."""
        return dict(self._tokens.counts)

    @property
    def stats(self) -> HidReaderStats:
        """For ``status``: counters since start, across reopens."""
        counts = self._tokens.counts
        return HidReaderStats(
            state=self.state,
            taps=self.taps,
            tokens=counts["tokens"],
            partial=counts["partial"],
            unmapped_keys=counts["unmapped"],
            too_long=counts["too-long"],
            opens=self._link.stats.opens,
            last_error=self._link.stats.last_error,
        )

    async def run(self, sink: TapSink) -> None:
        """Read taps into ``sink`` until cancelled; reopen the device when it is back.
        Raises ``ReaderError`` when it can never be used (see ``LINK_POLICY``)."""
        self._sink = sink
        try:
            await self._link.run(self._attempt)
        finally:
            self._sink = None

    async def _attempt(self) -> None:
        """One life of the device: open and grab it, read until it fails."""
        device = self._open()
        watch = FdWatch(device.fd, clock_ns=self._clock_ns)

        def on_readable() -> None:
            try:
                events = list(device.read())
            except BlockingIOError:
                return
            except OSError as exc:  # ENODEV: unplugged
                watch.lost(LinkFault(LOST, f"{self._cfg.device}: {exc.strerror or exc}"))
                return
            self.feed(events)
            watch.wake_at(self._tokens.deadline_ns(), on_pause)

        def on_pause() -> None:
            if self._tokens.expire(self._clock_ns()):
                self._log.info("hid_partial_token_dropped")
            else:  # a key came since: wait for the new deadline
                watch.wake_at(self._tokens.deadline_ns(), on_pause)

        try:
            await watch.serve(on_readable, self._link.up)
        finally:
            self._tokens.reset()
            with contextlib.suppress(OSError):
                device.ungrab()
            with contextlib.suppress(OSError):
                device.close()

    def _open(self) -> InputDeviceLike:
        spec = self._cfg.device
        try:
            device = self._open_device(spec)
        except ImportError as exc:
            raise LinkFault(
                "no-library", "the hid reader needs python-evdev: pip install evdev", fatal=True
            ) from exc
        except OSError as exc:
            raise _fault(spec, exc, "cannot open") from exc
        try:
            _monotonic_timestamps(device.fd)
            device.grab()
        except OSError as exc:
            with contextlib.suppress(OSError):
                device.close()
            if exc.errno == errno.EBUSY:
                raise LinkFault(
                    "busy", f"{spec} is grabbed by another program (a second gateway?)"
                ) from exc
            raise _fault(spec, exc, "cannot grab") from exc
        return device

    def feed(self, events: list[Any]) -> None:
        """Events as read from the device (``evdev.InputEvent``): taps go to the sink.
        Called from the loop's reader callback; never raises."""
        try:
            for event in events:
                if event.type != EV_KEY:
                    continue
                ts_ns = event.sec * 1_000_000_000 + event.usec * 1_000
                token = self._tokens.key(event.code, event.value, ts_ns)
                if token is None or not self._debounce.accept(token):
                    continue
                self.taps += 1
                self._log.debug("hid_tap", token=redact(token))
                if self._sink is not None:
                    self._sink(make_tap(self._cfg.name, token, self._cfg.direction))
        except Exception:  # noqa: BLE001 - logged with its traceback; the device stays open
            self._log.exception("hid_tap_failed")


def _monotonic_timestamps(fd: int) -> None:
    """Event times on CLOCK_MONOTONIC (default: the wall clock, which NTP steps at boot).
    Best effort: a fake device without the ioctl keeps its own clock."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, EVIOCSCLOCKID, struct.pack("i", CLOCK_MONOTONIC))


def _fault(spec: str, exc: OSError, doing: str) -> LinkFault:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return LinkFault(PERMISSION, PERMISSION_HINT.format(device=spec))
    if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return LinkFault("no-device", f"{spec}: no such device (reader unplugged?)")
    return LinkFault("unavailable", f"{spec}: {doing}: {exc.strerror or exc}")
