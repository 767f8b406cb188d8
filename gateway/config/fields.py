"""Field metadata shared by the config sections (bounds checked by schema.py)."""

from __future__ import annotations


def _bounds(low: float | None = None, high: float | None = None) -> dict[str, float | None]:
    return {"min": low, "max": high}
