"""Run-time status over a local unix socket, never on the SD card.

The daemon answers on ``socket_path(state_dir)`` (``StatusServer``); ``checkin-gateway
status`` asks there (``ask``). Nothing is written to the state directory for status.
"""

from gateway.status.client import StatusUnavailable, ask
from gateway.status.paths import runtime_dir, socket_path
from gateway.status.server import StatusServer

__all__ = ["StatusServer", "StatusUnavailable", "ask", "runtime_dir", "socket_path"]
