"""Doors: a relay pulse (GPIO) or a command, behind the ``Door`` protocol."""

from __future__ import annotations

from gateway.config.model import CommandDoorConfig, DoorBase, GpioDoorConfig
from gateway.doors.base import Door


def build_door(cfg: DoorBase) -> Door:
    if isinstance(cfg, CommandDoorConfig):
        from gateway.doors.command import CommandDoor

        return CommandDoor(cfg)
    if isinstance(cfg, GpioDoorConfig):
        # gpiod is imported only here: a gateway without GPIO doors never loads it.
        # Builds inside the running loop (input edges arrive through add_reader).
        from gateway.doors.gpio import GpioDoor

        return GpioDoor(cfg)
    raise TypeError(f"no door for {type(cfg).__name__}")  # config validation prevents this
