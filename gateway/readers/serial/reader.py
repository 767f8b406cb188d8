"""A serial RFID reader: owns the port, turns frames into taps, reopens a pulled reader.

The port is read by pyserial-asyncio-fast's transport (``add_reader`` on the tty, no
thread); each chunk goes through the pure parser, the debouncer and the sink inside the
transport's callback. Opening and closing the port run in the default executor under a
deadline.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import serial
import structlog
from serial_asyncio_fast import connection_for_serial

from gateway.config.model import SerialReaderConfig
from gateway.errors import ReaderError
from gateway.readers.backoff import Backoff
from gateway.readers.base import Debouncer, ReaderState, TapSink, make_tap
from gateway.readers.serial.decode import Decoder, make_decoder
from gateway.redact import redact

log = structlog.get_logger(__name__)

# Deadlines and backoff, in seconds; module constants so that tests can shrink them.
OPEN_TIMEOUT = 5.0  # opening a tty does not block (O_NONBLOCK), a hung USB stack might
CLOSE_TIMEOUT = 2.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
# The backoff starts over only once the port has stayed open this long: a flapping cable
# must not reopen at full rate forever.
STABLE_AFTER = 10.0
# Right after plug-in the tty node exists before udev has given it its group: a few
# EACCES in a row are that race; more mean the permission is really missing.
PERMISSION_ATTEMPTS = 5

PERMISSION_HINT = (
    "permission denied on {port}: add the gateway's user to the 'dialout' group "
    "(usermod -aG dialout USER, then restart the service) or add a udev rule such as "
    'SUBSYSTEM=="tty", ATTRS{{idVendor}}=="XXXX", GROUP="dialout", MODE="0660"'
)
BUSY_HINT = "{port} is locked by another program (a second gateway? ModemManager?)"

SerialFactory = Callable[..., serial.SerialBase]
Sleep = Callable[[float], Awaitable[None]]


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
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self._serial_factory = serial_factory
        self._sleep = sleep
        self._clock = clock
        self._decoder: Decoder = make_decoder(cfg.protocol, cfg.token_format)
        self._debounce = Debouncer(cfg.debounce)
        self._state = ReaderState.CONNECTING
        self._taps = 0
        self._reconnects = 0
        self._was_open = False
        self._last_error: str | None = None
        self._sink: TapSink | None = None
        self._log = log.bind(reader=cfg.name, port=cfg.port)

    @property
    def name(self) -> str:
        return self._cfg.name

    @property
    def state(self) -> ReaderState:
        return self._state

    @property
    def stats(self) -> SerialReaderStats:
        counts = self._decoder.counts()
        return SerialReaderStats(
            state=self._state,
            frames=counts.ok,
            bad=counts.bad,
            ghosts=counts.ghosts,
            garbage_bytes=counts.garbage_bytes,
            taps=self._taps,
            reconnects=self._reconnects,
            last_error=self._last_error,
        )

    async def run(self, sink: TapSink) -> None:
        """Read taps into ``sink`` until cancelled; reopen the port whenever it goes."""
        self._sink = sink
        backoff = Backoff(BACKOFF_INITIAL, BACKOFF_MAX)
        try:
            while True:
                transport, protocol = await self._open_with_retries(backoff)
                self._state = ReaderState.READY
                opened_at = self._clock()
                lost = await self._until_lost(transport, protocol)
                if self._clock() - opened_at >= STABLE_AFTER:
                    backoff.reset()
                # Half a frame from before the loss must not be glued to the next bytes.
                self._decoder.reset()
                self._state = ReaderState.RECONNECTING
                self._last_error = f"{self._cfg.port} lost: {lost or 'closed'}"
                level = self._log.warning if backoff.failures == 0 else self._log.info
                level("serial_reader_lost", error=self._last_error)
                await self._sleep(backoff.next_delay())
        finally:
            if self._state is not ReaderState.FAILED:
                self._state = ReaderState.STOPPED
            self._sink = None

    async def _open_with_retries(
        self, backoff: Backoff
    ) -> tuple[asyncio.BaseTransport, _PortProtocol]:
        """Open the port, waiting out failures; raise only what retrying cannot fix."""
        denied = 0
        while True:
            try:
                opened = await self._open()
            except ReaderError as exc:
                denied = denied + 1 if _errno(exc) == errno.EACCES else 0
                if denied >= PERMISSION_ATTEMPTS or isinstance(exc.__cause__, ValueError):
                    self._state = ReaderState.FAILED
                    self._log.error("serial_reader_failed", error=str(exc))
                    raise
                self._state = ReaderState.RECONNECTING
                self._last_error = str(exc)
                # Warn on the first failure of a series, debug on the retries.
                level = self._log.warning if backoff.failures == 0 else self._log.debug
                level("serial_reader_unavailable", error=str(exc))
                await self._sleep(backoff.next_delay())
                continue
            if not self._was_open:
                self._was_open = True
                self._log.info("serial_reader_ready", protocol=self._cfg.protocol)
            else:
                self._reconnects += 1
                self._log.info("serial_reader_reconnected", attempts=backoff.failures)
            return opened

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
            raise ReaderError(f"opening {self._cfg.port} took over {OPEN_TIMEOUT} s") from exc
        except serial.SerialException as exc:
            raise _open_error(self._cfg.port, exc) from exc
        except ValueError as exc:  # a port name or setting pyserial cannot use: final
            raise ReaderError(f"cannot open {self._cfg.port}: {exc}") from exc
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
            for token in self._decoder.feed(data):
                if not self._debounce.accept(token):
                    continue
                self._taps += 1
                self._log.debug("serial_tap", token=redact(token))
                if self._sink is not None:
                    self._sink(make_tap(self._cfg.name, token, self._cfg.direction))
        except Exception:  # noqa: BLE001 - logged with its traceback; the port stays open
            self._log.exception("serial_tap_failed")


def _errno(exc: BaseException) -> int | None:
    cause = exc.__cause__
    return getattr(cause, "errno", None) if cause is not None else None


def _open_error(port: str, exc: serial.SerialException) -> ReaderError:
    code = exc.errno
    if code == errno.EACCES:
        return ReaderError(PERMISSION_HINT.format(port=port))
    if code in (errno.EAGAIN, errno.EWOULDBLOCK) and "lock" in str(exc):
        return ReaderError(BUSY_HINT.format(port=port))
    if code == errno.ENOENT:
        return ReaderError(f"{port} does not exist (reader unplugged?)")
    return ReaderError(f"cannot open {port}: {exc}")


def _close_when_opened(fut: asyncio.Future[Any]) -> None:
    """An open that finished after we gave up on it: close the port it opened."""
    if not fut.cancelled() and fut.exception() is None:
        fut.result().close()
