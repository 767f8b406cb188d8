"""Key events -> tokens: what a keyboard-wedge reader typed, one token per Enter. Pure.

A reader types a whole token in tens of milliseconds and ends it with Enter. Keys are
taken on key-down (value 1); auto-repeats (2) and key-ups (0) only track Shift. A
partial token followed by a pause of ``timeout_ns`` is dropped: half a read, or someone
leaning on a keyboard, must not glue to the next card. Times are the kernel's event
timestamps (the reader sets them to CLOCK_MONOTONIC so an NTP step cannot matter).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from gateway.readers.hid.keymap import ENTER, SHIFT, char_for

KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2
MAX_TOKEN = 64


class KeyTokenizer:
    __slots__ = ("_buf", "_last_ns", "_layout", "_shift", "_timeout", "counts")

    def __init__(self, layout: Mapping[int, tuple[str, str]], timeout_ns: int) -> None:
        self._layout = layout
        self._timeout = timeout_ns
        self._buf: list[str] = []
        self._last_ns = 0
        self._shift: set[int] = set()
        # "tokens", "partial" (dropped after a pause), "too-long", "unmapped" keys.
        self.counts: Counter[str] = Counter()

    def key(self, code: int, value: int, ts_ns: int) -> str | None:
        """One EV_KEY event; the token it completes (on Enter), if any."""
        if code in SHIFT:
            if value == KEY_UP:
                self._shift.discard(code)
            else:
                self._shift.add(code)
            return None
        if value != KEY_DOWN:
            return None
        self.expire(ts_ns)
        if code in ENTER:
            token, self._buf = "".join(self._buf), []
            if token:
                self.counts["tokens"] += 1
                return token
            return None
        char = char_for(self._layout, code, bool(self._shift))
        if char is None:
            self.counts["unmapped"] += 1
            return None
        self._last_ns = ts_ns
        if len(self._buf) >= MAX_TOKEN:
            self.counts["too-long"] += 1
            self._buf = []
            return None
        self._buf.append(char)
        return None

    def deadline_ns(self) -> int | None:
        """When a waiting partial token expires, or None."""
        return self._last_ns + self._timeout if self._buf else None

    def expire(self, now_ns: int) -> bool:
        """Drop a partial token not continued within the timeout; True if one was."""
        if self._buf and now_ns - self._last_ns >= self._timeout:
            self._buf = []
            self.counts["partial"] += 1
            return True
        return False

    def reset(self) -> None:
        """The device went away: forget a half-typed token and held modifiers."""
        self._buf = []
        self._shift.clear()
