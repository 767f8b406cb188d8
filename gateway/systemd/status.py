"""The one line a person reads in ``systemctl status``: what works, what does not."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.readers.base import ReaderState

_MAX_NAMES = 3  # systemctl shows one line; name the first few troubled readers only


def status_line(readers: Mapping[str, ReaderState], *, online: bool | None, queued: int = 0) -> str:
    """E.g. ``"1/2 readers ready (nfc-front: reconnecting); Cobot unreachable, deciding
    offline; 12 check-ins queued"``. ``online`` is None before the first API answer."""
    parts = [_readers(readers)]
    if online is None:
        parts.append("Cobot not contacted yet")
    elif online:
        parts.append("Cobot reachable")
    else:
        parts.append("Cobot unreachable, deciding offline")
    if queued:
        parts.append(f"{queued} check-in{'s' if queued != 1 else ''} queued")
    return "; ".join(parts)


def _readers(readers: Mapping[str, ReaderState]) -> str:
    if not readers:
        return "no readers configured"
    ready = sum(1 for s in readers.values() if s is ReaderState.READY)
    troubled = [f"{n}: {s.value}" for n, s in readers.items() if s is not ReaderState.READY]
    if not troubled:
        return f"{ready} reader{'s' if ready != 1 else ''} ready"
    names = ", ".join(troubled[:_MAX_NAMES])
    if len(troubled) > _MAX_NAMES:
        names += f", +{len(troubled) - _MAX_NAMES} more"
    return f"{ready}/{len(readers)} readers ready ({names})"
