"""Doors: a relay pulse (GPIO) or a command, behind the ``Door`` protocol."""

from __future__ import annotations

from gateway.config.model import CommandDoorConfig, DoorBase
from gateway.doors.base import Door


def build_door(cfg: DoorBase) -> Door:
    if isinstance(cfg, CommandDoorConfig):
        from gateway.doors.command import CommandDoor

        return CommandDoor(cfg)
    raise TypeError(f"no door for {type(cfg).__name__}")  # config validation prevents this
