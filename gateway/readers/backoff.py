"""Capped exponential backoff for links that come and go (a USB reader pulled, an NFC
reader that stops answering).

Pure: it only computes delays. The caller sleeps (with a sleep it can inject), so tests
drive it by calling ``next_delay`` instead of waiting.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays ``initial``, ``initial*factor``, ... capped at ``maximum``; ``reset`` after a
    success starts over.

    ``jitter`` (0..1) spreads each delay downwards by up to that fraction, so that many
    gateways that lost the same network service do not retry in lockstep; local devices
    leave it at 0.
    """

    __slots__ = ("_current", "_factor", "_failures", "_initial", "_jitter", "_maximum", "_rng")

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        factor: float = 2.0,
        *,
        jitter: float = 0.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {initial}, {maximum}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be within 0..1, got {jitter}")
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._jitter = jitter
        self._rng = rng
        self._current = initial
        self._failures = 0

    @property
    def failures(self) -> int:
        """Delays handed out since the last reset: the number of consecutive failures."""
        return self._failures

    def next_delay(self) -> float:
        """The wait before the next attempt; each call counts one more failure."""
        delay = self._current
        self._failures += 1
        self._current = min(self._current * self._factor, self._maximum)
        if self._jitter:
            delay -= delay * self._jitter * self._rng()
        return delay

    def reset(self) -> None:
        self._current = self._initial
        self._failures = 0
