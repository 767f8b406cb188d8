"""Throttling failed sign-ins per MAC, per IP and per login.

Each key keeps the times of its recent failures. A *device* key (MAC, IP) with
``max_failures`` failures inside ``window`` seconds is locked until the oldest of them
leaves the window, so a guesser gets ``max_failures`` tries per window however it spreads
them, and a person who mistyped twice is not locked at all. Changing one (a new random
MAC, a new DHCP lease) does not reset the count of the other.

A *login* key is only a slowdown, never a lock-out (OWASP Authentication Cheat Sheet,
"Account Lockout": a lock anyone can trigger lets an attacker keep the member out). A
login with ``max_failures`` recent failures refuses attempts from devices that have
failed themselves within the window, so an attacker must bring a fresh MAC *and* a fresh
IP address for every further guess; a device with no failures (the member's own phone)
is let through and its right password signs in at once.

Pure: no I/O, an injectable clock, and bounded memory (the least recently failed keys
are forgotten first beyond ``max_keys``).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

MAX_KEYS = 10_000
_LOGIN = "login:"


def keys_for(*, mac: str | None, ip: str | None, login: str | None) -> tuple[str, ...]:
    """The throttle keys of one sign-in attempt (logins compare case-insensitively)."""
    keys = []
    if mac:
        keys.append(f"mac:{mac.lower()}")
    if ip:
        keys.append(f"ip:{ip}")
    if login:
        keys.append(f"{_LOGIN}{login.strip().casefold()}")
    return tuple(keys)


def is_login_key(key: str) -> bool:
    return key.startswith(_LOGIN)


class Throttle:
    def __init__(
        self,
        max_failures: int,
        window: float,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self._max = max_failures
        self._window = window
        self._max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until an attempt with ``keys`` (from ``keys_for``) is allowed (0: now).

        Device keys lock on their own; a login's lock applies only when one of the
        device keys has a failure of its own in the window."""
        now = self._clock()
        wait = 0.0
        device_failed = False
        logins = []
        for key in keys:
            if key.startswith(_LOGIN):
                logins.append(key)
                continue
            times = self._recent(key, now)
            if times is not None:
                device_failed = True
                wait = max(wait, self._lock(times, now))
        if device_failed:
            for key in logins:
                times = self._recent(key, now)
                if times is not None:
                    wait = max(wait, self._lock(times, now))
        return wait

    def _lock(self, times: deque[float], now: float) -> float:
        return times[0] + self._window - now if len(times) >= self._max else 0.0

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            times = self._recent(key, now)
            if times is None:
                times = deque(maxlen=self._max)
                self._failures[key] = times
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def clear(self, keys: Iterable[str]) -> None:
        """Forget ``keys``' failures. After a good sign-in the portal clears only the
        login's key: a right password proves nothing about other logins tried from the
        same device, so its MAC and IP keys keep counting."""
        for key in keys:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def __len__(self) -> int:
        return len(self._failures)
