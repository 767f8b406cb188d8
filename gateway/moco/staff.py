"""Who the gateway believes is clocked in at MOCO, and the card -> user mapping.

The belief comes from MOCO's answers (touch, replay writes, a read at start) and, while
MOCO is out of reach, from the taps themselves (a tap toggles, as touch would). It gives
the person at the reader "in" or "out" and ``status`` its list; MOCO stays the truth:
every replay reads the user's presences before it writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time

from gateway.config.model import MocoUser
from gateway.moco.model import Presence, fmt_time
from gateway.redact import redact


def normalize_token(token: str) -> str:
    """Cards are compared ignoring case and surrounding blanks ("0a1b" == "0A1B")."""
    return token.strip().upper()


@dataclass(frozen=True, slots=True)
class Clocked:
    clocked_in: bool
    day: date
    since: time | None  # the open presence's start
    name: str | None = None  # from MOCO's answer (user's first and last name)


class StaffBook:
    def __init__(self, users: Iterable[MocoUser]) -> None:
        self._by_token = {normalize_token(u.token): u.user_id for u in users}
        self._state: dict[int, Clocked] = {}

    def user_for(self, token: str) -> int | None:
        return self._by_token.get(normalize_token(token))

    @property
    def user_ids(self) -> list[int]:
        return sorted(set(self._by_token.values()))

    def state(self, user_id: int) -> Clocked | None:
        return self._state.get(user_id)

    def seen(self, user_id: int, presence: Presence) -> None:
        known = self._state.get(user_id)
        self._state[user_id] = Clocked(
            presence.open,
            presence.date,
            presence.start if presence.open else None,
            presence.user_name or (known.name if known else None),
        )

    def set(self, user_id: int, clocked_in: bool, at: datetime) -> None:
        local = at.astimezone()
        known = self._state.get(user_id)
        since = time(local.hour, local.minute) if clocked_in else None
        self._state[user_id] = Clocked(
            clocked_in, local.date(), since, known.name if known else None
        )

    def predict(self, user_id: int, at: datetime) -> bool:
        """Whether a tap at ``at`` clocks in (True) or out, as far as we know."""
        known = self._state.get(user_id)
        return not (known is not None and known.clocked_in)

    def open_since_earlier_day(self, user_id: int, at: datetime) -> bool:
        known = self._state.get(user_id)
        return known is not None and known.clocked_in and known.day < at.astimezone().date()

    def clocked_in_today(self, today: date) -> list[dict[str, object]]:
        """For status: users clocked in today (names redacted as card numbers are)."""
        return [
            {
                "user_id": uid,
                "name": redact(s.name) if s.name else None,
                "since": fmt_time(s.since) if s.since else None,
            }
            for uid, s in sorted(self._state.items())
            if s.clocked_in and s.day == today
        ]
