"""Capped exponential backoff for reopening the reader.

Same interface as the shared ``gateway.readers.backoff.Backoff`` that the serial
reader brings (``Backoff(initial=, maximum=)``, ``next_delay()``, ``reset()``); kept
here until that lands, then this module becomes an import of it.
"""

from __future__ import annotations


class Backoff:
    __slots__ = ("_factor", "_initial", "_maximum", "_next")

    def __init__(self, *, initial: float, maximum: float, factor: float = 2.0) -> None:
        if not 0 < initial <= maximum or factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._next = initial

    def next_delay(self) -> float:
        """The wait before the next attempt; grows by ``factor`` up to ``maximum``."""
        delay = self._next
        self._next = min(self._maximum, self._next * self._factor)
        return delay

    def reset(self) -> None:
        """After a success: the next failure retries quickly again."""
        self._next = self._initial
