"""The seam every door implements: open it, and show the person what happened."""

from __future__ import annotations

from typing import Protocol

from gateway.model import Signal


class Door(Protocol):
    @property
    def name(self) -> str: ...

    async def open(self) -> None:
        """Unlock for one pulse; raise ``DoorError`` when the door could not be driven."""

    async def signal(self, signal: Signal) -> None:
        """LEDs/buzzer; doors without feedback hardware do nothing. Never raises."""

    async def aclose(self) -> None:
        """Release the hardware (lines, processes); idempotent."""
