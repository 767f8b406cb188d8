"""A reader's counters from the status file, as the lines ``checkin-gateway status``
prints under the reader (the JSON form has them all as they are)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def reader_stats_lines(stats: Mapping[str, Any]) -> list[str]:
    """A reader's counters from the status file as text (``status`` without ``--json``):
    what came in, what was dropped and why, and what the reader suspects is wrong."""
    lines: list[str] = []
    if "garbage_bytes" in stats:  # serial readers
        lines.append(
            f"frames {stats.get('frames', 0)}, taps {stats.get('taps', 0)}, "
            f"garbage {stats['garbage_bytes']} bytes; dropped: {stats.get('bad', 0)} bad, "
            f"{stats.get('ghosts', 0)} ghost, {stats.get('unconfirmed', 0)} unconfirmed"
        )
    elif "taps" in stats:
        lines.append(f"taps {stats['taps']}")
    if stats.get("opens") or stats.get("failures"):
        lines.append(
            f"link: opened {stats.get('opens', 0)}x, {stats.get('failures', 0)} failures"
            + (f", last error: {stats['last_error']}" if stats.get("last_error") else "")
        )
    if stats.get("warning"):
        lines.append(f"WARNING: {stats['warning']}")
    return lines
