"""The demo's MOCO part: a staff card that clocks in and out at a simulated MOCO.

Kept apart from demo.py (the Cobot side's narration) so each stays small; demo.py wires
it: the front reader records to Cobot and MOCO, ``offline``/``online`` switch both.
"""

from __future__ import annotations

from typing import Any

from gateway.moco.keys import MocoKeys
from gateway.moco_sim import ACCOUNT_KEY, MocoSpace, demo_moco, run_moco_sim
from gateway.model import Signal

STAFF_CARD = "5E00000001"  # MOCO user 933590696 (John Doe); no Cobot member
STAFF_USER = 933590696
CARD_LINE = f"{STAFF_CARD:<18} {'John Doe (staff)':<20} MOCO user {STAFF_USER}: a time clock"
KEYS = MocoKeys(ACCOUNT_KEY)

__all__ = [
    "CARD_LINE",
    "KEYS",
    "STAFF_CARD",
    "MocoSpace",
    "clock_words",
    "demo_moco",
    "moco_section",
    "run_moco_sim",
]


def moco_section(url: str) -> dict[str, Any]:
    """The demo config's ``[moco]``."""
    return {"base_url": url, "users": [{"token": STAFF_CARD, "user_id": STAFF_USER}]}


def clock_words(signal: Signal) -> str | None:
    """What the door's feedback for a staff tap means, in words (None: not MOCO's)."""
    if signal is Signal.CLOCKED_IN:
        return "  moco   clocked IN: a presence opened (one beep)"
    if signal is Signal.CLOCKED_OUT:
        return "  moco   clocked OUT: the presence closed (two beeps)"
    return None
