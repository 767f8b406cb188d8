"""Tokens typed on standard input, one per line: the demo's reader, and a console.

A systemd service has no standard input (it reads /dev/null: end of file at once), so
this reader cannot serve a USB reader that types like a keyboard under the service:
that is ``type = "hid"`` (gateway/readers/hid), which reads the device itself."""

from __future__ import annotations

import asyncio
import sys

import structlog

from gateway.config.model import KeyboardReaderConfig
from gateway.readers.base import Debouncer, ReaderState, TapSink, make_tap

log = structlog.get_logger(__name__)
MAX_LINE = 256


class KeyboardReader:
    def __init__(self, cfg: KeyboardReaderConfig, stream: asyncio.StreamReader | None = None):
        self._cfg = cfg
        self._stream = stream
        self._state = ReaderState.CONNECTING
        self._debounce = Debouncer(cfg.debounce)

    @property
    def name(self) -> str:
        return self._cfg.name

    @property
    def state(self) -> ReaderState:
        return self._state

    async def _open_stdin(self) -> asyncio.StreamReader:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_LINE * 4)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        return reader

    async def run(self, sink: TapSink) -> None:
        stream = self._stream or await self._open_stdin()
        self._state = ReaderState.READY
        try:
            while True:
                try:
                    raw = await stream.readline()
                except ValueError:  # an over-long line: skip it, keep reading
                    log.warning("keyboard_line_too_long", reader=self.name)
                    continue
                if not raw:
                    log.warning(
                        "keyboard_eof",
                        reader=self.name,
                        hint="standard input is closed (a service has none); for a USB "
                        'reader that types like a keyboard use type = "hid"',
                    )
                    self._state = ReaderState.STOPPED
                    await asyncio.Event().wait()  # stdin closed: stay idle until stopped
                token = raw.decode(errors="replace").strip()
                if not token or len(token) > MAX_LINE or not token.isprintable():
                    continue
                if self._debounce.accept(token):
                    sink(make_tap(self.name, token, self._cfg.direction))
        finally:
            self._state = ReaderState.STOPPED
