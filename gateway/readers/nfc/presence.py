"""When a card on an NFC reader is a new tap: present / lifted, from the sense rounds.

The worker senses in rounds; each round finds one card or none. A card resting on the
reader shows up in every round, sometimes with a gap (the field is switched off
between rounds, and a card at the edge of the field misses one now and then). So a
card counts again only after it was *observed* absent for ``lift_time`` seconds: a
round must run without it after that long. A gap in which no rounds ran at all (the
device was being reopened) proves nothing, and the card still counts as resting.

Pure and clock-free: the caller passes the time of each round, so tests drive it
without nfcpy or sleeping.
"""

from __future__ import annotations

# ISO 14443-3: a 4-byte NFCID1 starting with 0x08 is a random id, new at every
# activation (phones emulating a card do this). Such ids cannot tell one phone from
# the next, nor one round from the next for the same phone: they share one key, so
# a phone held to the reader is one tap, not one per round.
RANDOM_UID_PREFIX = 0x08
RANDOM_KEY = b"\x08"


def card_key(uid: bytes) -> bytes:
    """The identity presence tracks: the UID, or one shared key for random UIDs."""
    if len(uid) == 4 and uid[0] == RANDOM_UID_PREFIX:
        return RANDOM_KEY
    return uid


class CardPresence:
    """Tracks the cards seen lately; ``observe`` says which sightings are arrivals."""

    __slots__ = ("_last_seen", "_lift_time")

    def __init__(self, lift_time: float) -> None:
        if lift_time < 0:
            raise ValueError("lift_time must not be negative")
        self._lift_time = lift_time
        self._last_seen: dict[bytes, float] = {}

    def observe(self, key: bytes | None, now: float) -> bool:
        """Record one sense round that found ``key`` (``None``: no card) at ``now``.

        Returns True when ``key`` is an arrival: not resting on the reader already.
        """
        # This round saw every other tracked card absent; those gone long enough
        # are lifted. Only a round can prove absence, so expiry happens here.
        lifted = [
            k for k, seen in self._last_seen.items() if k != key and now - seen >= self._lift_time
        ]
        for k in lifted:
            del self._last_seen[k]
        if key is None:
            return False
        arrived = key not in self._last_seen
        self._last_seen[key] = now
        return arrived

    def forget(self, key: bytes) -> None:
        """Undo an arrival that could not be handled (e.g. its NDEF read failed), so
        the next round that sees the card reports it as an arrival again."""
        self._last_seen.pop(key, None)

    def resting(self) -> frozenset[bytes]:
        """The cards currently considered on the reader (for logs and tests)."""
        return frozenset(self._last_seen)
