"""A serial RFID reader: owns the port, turns frames into taps, reopens a pulled reader.

The port is read by pyserial-asyncio-fast's transport (``add_reader`` on the tty, no
thread); each chunk goes through the pure parser (``decode``), the confirmation rule and
the garbage watch (``session``), the debouncer and the sink inside the transport's
callback. Opening and closing the port run in the default executor under a deadline;
reopening after a loss is the link supervisor's (``gateway.readers.link``).
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import serial
import structlog
from serial_asyncio_fast import connection_for_serial

from gateway.config.model import SerialReaderConfig
from gateway.readers.base import Debouncer, ReaderState, TapSink, make_tap
from gateway.readers.link import (
    LOST,
    PERMISSION,
    Clock,
    LinkFault,
    LinkPolicy,
    LinkSupervisor,
    Sleep,
)
from gateway.readers.serial.decode import Decoder, make_decoder
from gateway.readers.serial.session import Confirmer, GarbageWatch
from gateway.redact import redact

log = structlog.get_logger(__name__)

# Deadlines, in seconds; module constants so that tests can shrink them.
OPEN_TIMEOUT = 5.0  # opening a tty does not block (O_NONBLOCK), a hung USB stack might
CLOSE_TIMEOUT = 2.0
# Reopening: the backoff starts over only once the port has stayed open 10 s (a flapping
# cable must not reopen at full rate forever). Right after plug-in the tty node exists
# before udev has given it its group: a few EACCES in a row are that race; 5 mean the
# permission is really missing.
LINK_POLICY = LinkPolicy(first_delay=0.5, cap=30.0, stable_after=10.0, permission_attempts=5)

PERMISSION_HINT = (
    "permission denied on {port}: add the gateway's user to the 'dialout' group "
    "(usermod -aG dialout USER, then restart the service) or add a udev rule such as "
    'SUBSYSTEM=="tty", ATTRS{{idVendor}}=="XXXX", GROUP="dialout", MODE="0660"'
)
BUSY_HINT = "{port} is locked by another program (a second gateway? ModemManager?)"

SerialFactory = Callable[..., serial.SerialBase]


@dataclass(frozen=True, slots=True)
class SerialReaderStats:
    """For status output. Counters run since the reader was made, across reconnects."""

    state: ReaderState
    frames: int  # frames or lines decoded
    bad: int  # bad checksums, over-long or unprintable lines
    ghosts: int  # all-zero ids dropped
    garbage_bytes: int
    taps: int  # after debouncing
    reconnects: int  # successful reopens after a loss
    last_error: str | None
    opens: int = 0  # times the port was opened
    failures: int = 0  # failed opens and losses
    unconfirmed: int = 0  # reads of a card never confirmed by a repeat (phantom IDs)
    warning: str | None = None  # only garbage so far: what is probably misconfigured
    protocol: str = ""  # rdm6300, id12la, line: what "bad" means (a checksum or a line)


class _PortProtocol(asyncio.Protocol):
    """Feeds every chunk to the reader; reports the loss of the port once."""

    def __init__(self, on_data: Callable[[bytes], None]) -> None:
        self._on_data = on_data
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class SerialReader:
    def __init__(
        self,
        cfg: SerialReaderConfig,
        *,
        serial_factory: SerialFactory = serial.serial_for_url,
        policy: LinkPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self._serial_factory = serial_factory
        self._decoder: Decoder = make_decoder(cfg.protocol, cfg.token_format)
        self._debounce = Debouncer(cfg.debounce)
        self._confirm = Confirmer(cfg.reads_to_confirm, cfg.confirm_window, clock)
        self._watch = GarbageWatch(cfg.protocol, cfg.baudrate, cfg.token_format)
        self._link = LinkSupervisor(
            policy or LINK_POLICY,
            events="serial_reader",
            clock=clock,
            sleep=sleep,
            reader=cfg.name,
            port=cfg.port,
        )
        self._taps = 0
        self._sink: TapSink | None = None
        self._log = log.bind(reader=cfg.name, port=cfg.port)

    @property
    def name(self) -> str:
        return self._cfg.name

    @property
    def state(self) -> ReaderState:
        return self._link.state

    @property
    def stats(self) -> SerialReaderStats:
        counts = self._decoder.counts()
        link = self._link.stats
        return SerialReaderStats(
            state=link.state,
            frames=counts.ok,
            bad=counts.bad,
            ghosts=counts.ghosts,
            garbage_bytes=counts.garbage_bytes,
            taps=self._taps,
            reconnects=link.reconnects,
            last_error=link.last_error,
            opens=link.opens,
            failures=link.failures,
            unconfirmed=self._confirm.dropped,
            warning=self._watch.warning,
            protocol=self._cfg.protocol,
        )

    async def run(self, sink: TapSink) -> None:
        """Read taps into ``sink`` until cancelled; reopen the port whenever it goes.
        Raises ``ReaderError`` when the port cannot be used at all (see LINK_POLICY)."""
        self._sink = sink
        try:
            await self._link.run(self._attempt)
        finally:
            self._sink = None

    async def _attempt(self) -> None:
        """One life of the port: open it, read until it is lost (a ``LinkFault``)."""
        transport, protocol = await self._open()
        self._link.up()
        lost = await self._until_lost(transport, protocol)
        # Half a frame from before the loss must not be glued to the next bytes.
        self._decoder.reset()
        raise LinkFault(LOST, f"{self._cfg.port} lost: {lost or 'closed'}")

    async def _open(self) -> tuple[asyncio.BaseTransport, _PortProtocol]:
        loop = asyncio.get_running_loop()
        factory = partial(
            self._serial_factory,
            self._cfg.port,
            baudrate=self._cfg.baudrate,
            # flock the tty: a second gateway (or anything else locking) is refused
            # instead of both silently stealing each other's bytes.
            exclusive=True,
        )
        pending = loop.run_in_executor(None, factory)
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                port = await asyncio.shield(pending)
        except TimeoutError as exc:
            pending.add_done_callback(_close_when_opened)
            raise LinkFault(
                "timeout", f"opening {self._cfg.port} took over {OPEN_TIMEOUT} s"
            ) from exc
        except serial.SerialException as exc:
            raise _open_error(self._cfg.port, exc) from exc
        except ValueError as exc:  # a port name or setting pyserial cannot use: final
            raise LinkFault("unusable", f"cannot open {self._cfg.port}: {exc}", fatal=True) from exc
        except BaseException:
            pending.add_done_callback(_close_when_opened)  # cancelled while opening
            raise
        protocol = _PortProtocol(self._on_data)
        try:
            transport, _ = await connection_for_serial(loop, lambda: protocol, port)
        except BaseException:
            port.close()
            raise
        return transport, protocol

    async def _until_lost(
        self, transport: asyncio.BaseTransport, protocol: _PortProtocol
    ) -> Exception | None:
        """Wait for the port to go; on cancellation close it and wait for the close."""
        try:
            return await asyncio.shield(protocol.lost)
        finally:
            if not protocol.lost.done():
                transport.close()
                try:
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await protocol.lost
                except TimeoutError:
                    self._log.warning("serial_close_timeout")

    def _on_data(self, data: bytes) -> None:
        # Runs inside the transport's read callback: nothing may raise out of here, or
        # the transport would be torn down over a bug elsewhere.
        try:
            tokens = self._decoder.feed(data)
            if self._watch.watching:
                counts = self._decoder.counts()
                warning = self._watch.feed(data, counts.ok, counts.garbage_bytes)
                if warning is not None:
                    self._log.warning("serial_reader_garbage", problem=warning)
            for token in tokens:
                if not self._confirm.accept(token) or not self._debounce.accept(token):
                    continue
                self._taps += 1
                self._log.debug("serial_tap", token=redact(token))
                if self._sink is not None:
                    self._sink(make_tap(self._cfg.name, token, self._cfg.direction))
        except Exception:  # noqa: BLE001 - logged with its traceback; the port stays open
            self._log.exception("serial_tap_failed")


def _open_error(port: str, exc: serial.SerialException) -> LinkFault:
    code = exc.errno
    if code == errno.EACCES:
        return LinkFault(PERMISSION, PERMISSION_HINT.format(port=port))
    if code in (errno.EAGAIN, errno.EWOULDBLOCK) and "lock" in str(exc):
        return LinkFault("busy", BUSY_HINT.format(port=port))
    if code == errno.ENOENT:
        return LinkFault("no-device", f"{port} does not exist (reader unplugged?)")
    return LinkFault("unavailable", f"cannot open {port}: {exc}")


def _close_when_opened(fut: asyncio.Future[Any]) -> None:
    """An open that finished after we gave up on it: close the port it opened."""
    if not fut.cancelled() and fut.exception() is None:
        fut.result().close()
