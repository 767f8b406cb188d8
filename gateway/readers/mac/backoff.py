"""Capped exponential backoff for reopening the packet socket (interface gone or down)."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """``first``, ``first*factor``, ... up to ``cap`` seconds, each with +-``jitter``
    spread so that several gateways rebooted by one power cut do not retry in step;
    ``reset`` after a successful open starts over."""

    __slots__ = ("_cap", "_factor", "_first", "_jitter", "_next", "_random")

    def __init__(
        self,
        first: float,
        cap: float,
        *,
        factor: float = 2.0,
        jitter: float = 0.1,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < first <= cap or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need 0 < first <= cap, factor >= 1, 0 <= jitter < 1")
        self._first, self._cap, self._factor = first, cap, factor
        self._jitter, self._random = jitter, rng
        self._next = first

    def next(self) -> float:
        """The delay before the next attempt; each call lengthens the following one."""
        delay = self._next
        self._next = min(self._cap, self._next * self._factor)
        spread = delay * self._jitter * (2 * self._random() - 1)
        return min(self._cap, max(0.0, delay + spread))

    def reset(self) -> None:
        self._next = self._first
