"""Doctor: each configured reader's device, by reader type."""

from __future__ import annotations

from gateway.config.model import (
    HidReaderConfig,
    KeyboardReaderConfig,
    ReaderBase,
    SerialReaderConfig,
    WiegandReaderConfig,
)
from gateway.doctor.devices import check_generic, check_port
from gateway.doctor.report import Report, Status
from gateway.doctor.system import System
from gateway.doctor.wedge import check_hid, check_wiegand


def check_readers(report: Report, readers: tuple[ReaderBase, ...], system: System) -> None:
    if not readers:
        report.add("readers", Status.WARN, "no readers configured: nobody can check in")
    for reader in readers:
        name = f"reader {reader.name}"
        if isinstance(reader, SerialReaderConfig):
            check_port(report, name, reader.port, system)
        elif isinstance(reader, HidReaderConfig):
            check_hid(report, name, reader, system)
        elif isinstance(reader, WiegandReaderConfig):
            check_wiegand(report, name, reader, system)
        elif isinstance(reader, KeyboardReaderConfig):
            report.add(
                name,
                Status.WARN,
                "reads standard input, which the systemd service does not have",
                "use it with `checkin-gateway run` on a terminal, not under systemd",
            )
        else:
            check_generic(report, name, reader, system)
