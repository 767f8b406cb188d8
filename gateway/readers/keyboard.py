"""Tokens typed on standard input, one per line: the demo's reader, and USB readers that
present themselves as a keyboard ("keyboard wedge") when run on a console. Under the
systemd service (no console) such a reader is ``type = "hid"`` (gateway/readers/hid),
which reads and grabs the device itself.

Lines go through the serial line reader's parser (``LineParser``): over-long lines are
dropped whole, and tokens are normalised by the rule every text reader shares
(``gateway.readers.tokens.normalize_text_token``: zero-width characters removed,
surrounding white space stripped, lines with control characters rejected).

Standard input must be something the event loop can wait on: a terminal or a pipe.
``/dev/null``, a regular file or a closed stdin (a service started without a console)
is a ``ReaderError`` at once, saying so: the gateway logs it once and runs on without
this reader, instead of restarting it in a loop.
"""

from __future__ import annotations

import asyncio
import selectors
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import structlog

from gateway.config.model import KeyboardReaderConfig
from gateway.errors import ReaderError
from gateway.readers.base import Debouncer, ReaderState, TapSink, make_tap
from gateway.readers.serial.frames import LineParser

log = structlog.get_logger(__name__)
MAX_LINE = 256  # bytes; a keyboard wedge types a card number, not a paragraph
_CHUNK = 4096

_STDIN_HINT = (
    "run the gateway on a console, or remove the keyboard reader from the configuration "
    '(a USB reader that types like a keyboard is type = "hid": it is read and grabbed '
    "directly, no console needed)"
)


@dataclass(frozen=True, slots=True)
class KeyboardReaderStats:
    """For status output. Counters since the reader was made."""

    state: ReaderState
    lines: int  # token lines read
    taps: int  # after debouncing
    too_long: int  # lines over MAX_LINE, dropped
    invalid: int  # lines with control characters or not UTF-8, dropped


class KeyboardReader:
    def __init__(
        self,
        cfg: KeyboardReaderConfig,
        stream: asyncio.StreamReader | None = None,
        *,
        stdin: TextIO | None = None,
    ) -> None:
        self._cfg = cfg
        self._stream = stream
        self._stdin = stdin
        self._state = ReaderState.CONNECTING
        self._debounce = Debouncer(cfg.debounce)
        self._lines = LineParser(MAX_LINE)
        self._taps = 0

    @property
    def name(self) -> str:
        return self._cfg.name

    @property
    def state(self) -> ReaderState:
        return self._state

    @property
    def stats(self) -> KeyboardReaderStats:
        s = self._lines.stats
        return KeyboardReaderStats(self._state, s.lines_ok, self._taps, s.too_long, s.invalid)

    async def _open_stdin(self) -> asyncio.StreamReader:
        stdin = self._stdin or sys.stdin
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_CHUNK)
        try:
            check_pollable(stdin)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
        except (OSError, ValueError, AttributeError) as exc:
            raise ReaderError(
                f"keyboard reader {self.name!r}: standard input is {_describe(stdin)}, "
                f"which cannot be read as a keyboard ({exc}); {_STDIN_HINT}"
            ) from exc
        return reader

    async def run(self, sink: TapSink) -> None:
        try:
            stream = self._stream or await self._open_stdin()
        except ReaderError:
            self._state = ReaderState.FAILED
            raise
        self._state = ReaderState.READY
        try:
            while True:
                chunk = await stream.read(_CHUNK)
                if not chunk:
                    self._take(b"\n", sink)  # a last line without its line end
                    log.info("keyboard_eof", reader=self.name)
                    self._state = ReaderState.STOPPED
                    await asyncio.Event().wait()  # stdin closed: stay idle until stopped
                self._take(chunk, sink)
        finally:
            self._state = ReaderState.STOPPED

    def _take(self, chunk: bytes, sink: TapSink) -> None:
        too_long = self._lines.stats.too_long
        for token in self._lines.feed(chunk):
            if self._debounce.accept(token):
                self._taps += 1
                sink(make_tap(self.name, token, self._cfg.direction))
        if self._lines.stats.too_long > too_long:
            log.warning("keyboard_line_too_long", reader=self.name, max_bytes=MAX_LINE)


def check_pollable(stdin: TextIO) -> None:
    """Raise if the event loop cannot wait on ``stdin``: epoll refuses /dev/null and
    regular files (EPERM), and asyncio would only find out in a callback, after
    ``connect_read_pipe`` returned, leaving the reader waiting forever. A closed or
    missing stdin has no fileno (ValueError, AttributeError)."""
    with selectors.DefaultSelector() as selector:
        selector.register(stdin.fileno(), selectors.EVENT_READ)


def _describe(stdin: TextIO | None) -> str:
    """What stdin is, for the error: its path (``/dev/null``, a file) when it has one."""
    try:
        fd = stdin.fileno() if stdin is not None else -1
    except (OSError, ValueError, AttributeError):
        return "closed"
    if fd < 0:
        return "closed"
    try:
        return str(Path(f"/proc/self/fd/{fd}").readlink())
    except OSError:
        return f"file descriptor {fd}"
