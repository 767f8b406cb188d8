"""Living under systemd: the sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING)."""

from gateway.systemd.notify import Notifier
from gateway.systemd.status import status_line

__all__ = ["Notifier", "status_line"]
