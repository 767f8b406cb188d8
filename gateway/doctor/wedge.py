"""Doctor checks for the Wiegand (GPIO) and keyboard-wedge (evdev) readers."""

from __future__ import annotations

from pathlib import Path

from gateway.config.model import HidReaderConfig, WiegandReaderConfig
from gateway.doctor.access import READ
from gateway.doctor.devices import UDEV_RULES, check_device
from gateway.doctor.report import Report, Status
from gateway.doctor.system import System
from gateway.gpiochip import chip_path

INPUT_GROUP_FIX = (
    "input devices belong to group 'input' (udev's default rules): the unit's "
    "SupplementaryGroups= must list input, and the node must be mode 0660 "
    f"(see {UDEV_RULES})"
)


def input_nodes(vendor_product: str, sys_class_input: Path, dev: Path) -> list[Path]:
    """The event nodes of input devices with this ``vendor:product`` (hex)."""
    vendor, product = vendor_product.lower().split(":")
    found = []
    for event in sorted(sys_class_input.glob("event*")):
        ids = event / "device" / "id"
        try:
            v = (ids / "vendor").read_text().strip().lower()
            p = (ids / "product").read_text().strip().lower()
        except OSError:
            continue
        if (v, p) == (vendor, product):
            found.append(dev / "input" / event.name)
    return found


def check_hid(report: Report, name: str, reader: HidReaderConfig, system: System) -> None:
    device = reader.device
    if device.startswith("/"):
        paths = [Path(device)]
    else:
        paths = input_nodes(device, system.sys_class_input, system.dev)
        if not paths:
            report.add(
                name,
                Status.FIX,
                f"{device}: no input device with this vendor:product",
                "plug the reader in; `lsusb` and `ls /dev/input/by-id/` should list it",
            )
            return
    for path in paths:
        check_device(
            report,
            name,
            str(path),
            system,
            "plug the reader in; `ls /dev/input/by-id/` lists keyboards as ...-event-kbd",
            need=READ,
            group_fix=INPUT_GROUP_FIX,
        )


def check_wiegand(report: Report, name: str, reader: WiegandReaderConfig, system: System) -> None:
    try:
        path = chip_path(reader.chip, system.dev)
    except (OSError, ImportError) as exc:
        report.add(
            name,
            Status.FIX,
            f"{reader.chip}: {exc}",
            "`gpiodetect` lists the chips and their labels (hardware/wiegand.md)",
        )
        return
    check_device(
        report,
        name,
        path,
        system,
        "`gpiodetect` lists the chips; on a Pi 5 the header is labelled pinctrl-rp1",
    )
