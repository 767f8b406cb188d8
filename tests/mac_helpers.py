"""Shared by the MAC reader tests: a clock the test moves, and the listener's socket."""

from __future__ import annotations

import socket
from collections.abc import Callable

from gateway.readers.mac.sniff import open_packet_socket
from tests.netns import Lan


class FakeClock:
    """DevicePresence time, moved by the test (sockets and the event loop run in real time)."""

    def __init__(self, wall: float = 1_900_000_000.0) -> None:
        self.mono = 1000.0
        self.wall = wall

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def listener_opener(lan: Lan) -> Callable[[str], socket.socket]:
    """The reader's real opener, run inside the LAN's listener namespace."""
    return lambda interface: lan.in_listener(lambda: open_packet_socket(interface))
