"""Reader and door devices: present, open to the service user, admitted by the unit."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import stat
from pathlib import Path

from gateway.config.model import (
    CommandDoorConfig,
    DoorBase,
    GpioDoorConfig,
    ReaderBase,
)
from gateway.doctor.access import DEVICE_ALLOW, READ, WRITE, char_drivers, group_name, may
from gateway.doctor.report import Report, Status
from gateway.doctor.system import System

UDEV_RULES = "hardware/udev/60-checkin-gateway.rules"
# USB NFC readers nfcpy drives (vendor, product), as in the udev rules.
# nfcpy's own list (nfc/clf/device.py usb_device_map); the udev rules cover the same.
NFC_USB_IDS = {
    ("072f", "2200"): "ACR122U",
    ("054c", "0193"): "PN531",
    ("04cc", "0531"): "PN531",
    ("04e6", "5593"): "SCL3712",
    ("054c", "02e1"): "RC-S330",
    ("04e6", "5591"): "SCL3711",
    ("04cc", "2533"): "PN533",
    ("054c", "06c1"): "RC-S380",
    ("054c", "06c3"): "RC-S380",
}


def check_device(
    report: Report,
    name: str,
    path: str,
    system: System,
    missing_fix: str,
    *,
    need: int = READ | WRITE,
    group_fix: str | None = None,
) -> None:
    """``need``: READ | WRITE, or READ for a device only read (input devices);
    ``group_fix`` replaces the generic advice when a permission is missing."""
    who = system.principal
    verb = "read and write" if need & WRITE else "read"
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        report.add(name, Status.FIX, f"{path}: no such device", missing_fix)
        return
    except OSError as exc:
        report.add(name, Status.FIX, f"{path}: {exc.strerror}")
        return
    shown = path
    if Path(path).is_symlink():
        shown = f"{path} -> {Path(path).resolve()}"
    if not stat.S_ISCHR(st.st_mode):
        report.add(name, Status.FIX, f"{shown}: not a character device")
        return
    if not may(who, st, need):
        group = group_name(st.st_gid)
        report.add(
            name,
            Status.FIX,
            f"{shown}: {who.name} may not {verb} it (mode {st.st_mode & 0o777:o}, group {group})",
            group_fix
            or f"give the device to group {group} with mode 0660 and the service that group, "
            f"or add a rule to {UDEV_RULES}",
        )
        return
    drivers = char_drivers(st, system.proc_devices)
    if not set(drivers) & set(DEVICE_ALLOW):
        driver = drivers[0] if drivers else f"major {os.major(st.st_rdev)}"
        report.add(
            name,
            Status.FIX,
            f"{shown}: a {driver} device, which the unit's DevicePolicy=closed refuses",
            f"add a drop-in with [Service] DeviceAllow=char-{driver} rw",
        )
        return
    report.add(name, Status.OK, f"{shown}: {who.name} may {verb} it")


def check_port(report: Report, name: str, port: str, system: System) -> None:
    if "://" in port:
        report.add(name, Status.SKIP, f"{port}: a network port, not a device")
        return
    check_device(
        report,
        name,
        port,
        system,
        f"is the reader plugged in? A stable name comes from {UDEV_RULES}; "
        "the Pi's UART must be enabled (hardware/rdm6300.md)",
    )


def check_generic(report: Report, name: str, reader: ReaderBase, system: System) -> None:
    """Readers whose config this module does not know by type: check what looks like a
    device (a /dev path, an nfcpy ``usb``/``tty:`` path, a network interface)."""
    checked = False
    for f in dataclasses.fields(reader):
        value = getattr(reader, f.name)
        if not isinstance(value, str):
            continue
        if value.startswith("/dev/"):
            check_port(report, name, value, system)
        elif f.name == "interface":
            _check_interface(report, name, value, system)
        elif value == "usb" or value.startswith("usb:"):
            _check_usb(report, name, value, system)
        elif value.startswith("tty:"):
            _check_nfc_tty(report, name, value, system)
        elif value.startswith("udp:"):
            report.add(name, Status.SKIP, f"{value}: a simulated reader over UDP")
        else:
            continue
        checked = True
    if not checked:
        report.add(name, Status.SKIP, f"no device check for readers of type {reader.type!r}")


def _check_interface(report: Report, name: str, interface: str, system: System) -> None:
    if not (system.sys_class_net / interface).exists():
        present = sorted(p.name for p in system.sys_class_net.iterdir() if p.name != "lo")
        report.add(
            name,
            Status.FIX,
            f"no network interface {interface!r}",
            f"use one of: {', '.join(present) or 'none found'}",
        )
        return
    if system.unit.exists() and not system.dropin("mac-presence").exists():
        report.add(
            name,
            Status.FIX,
            f"{interface}: present, but the service lacks CAP_NET_RAW to watch it",
            "sudo make install WITH=mac-presence (adds the drop-in granting CAP_NET_RAW)",
        )
        return
    report.add(name, Status.OK, f"{interface}: present")


# nfcpy's own reading of its device strings (nfc/clf/transport.py): "usb:VVVV[:PPPP]"
# is vendor[:product] in hex, "usb:B[:A]" (1-3 digits) bus[:address] in decimal.
_USB_VID_PID = re.compile(r"^usb:([0-9a-fA-F]{4})(?::([0-9a-fA-F]{4}))?$")
_USB_BUS_ADR = re.compile(r"^usb:([0-9]{1,3})(?::([0-9]{1,3}))?$")
# "tty:AMA0" is /dev/ttyAMA0, "tty:USB" any /dev/ttyUSB<n>, anything else /dev/<name>.
_TTY_ONE = re.compile(r"^(S|ACM|AMA|USB)\d+$")
_TTY_ANY = re.compile(r"^(S|ACM|AMA|USB)$")


def nfc_tty_paths(path: str, dev: Path) -> list[Path]:
    """The device nodes nfcpy would try for ``tty:NAME[:driver]``, as it globs them."""
    part = path.split(":")[1] if ":" in path else ""
    if _TTY_ONE.match(part):
        return [dev / f"tty{part}"]
    if _TTY_ANY.match(part) or not part:
        prefix = f"tty{part}" if part else "tty"
        return sorted(p for p in dev.glob(f"{prefix}*") if p.name[len(prefix) :].isdigit())
    return [dev / part]


def _check_nfc_tty(report: Report, name: str, path: str, system: System) -> None:
    candidates = nfc_tty_paths(path, system.dev)
    if len(candidates) == 1:
        check_port(report, name, str(candidates[0]), system)
    elif candidates:
        report.add(name, Status.OK, f"{path}: nfcpy will try {', '.join(map(str, candidates))}")
    else:
        report.add(
            name,
            Status.FIX,
            f"{path}: no matching serial port",
            "is the PN532 wired and the UART enabled? (hardware/pn532.md)",
        )


def _usb_matches(path: str, ids: tuple[str, str], bus: int, num: int) -> bool:
    if m := _USB_VID_PID.match(path):
        vid, pid = m.group(1).lower(), (m.group(2) or "").lower()
        return ids[0] == vid and (not pid or ids[1] == pid)
    if m := _USB_BUS_ADR.match(path):
        return int(m.group(1)) == bus and (m.group(2) is None or int(m.group(2)) == num)
    return ids in NFC_USB_IDS  # plain "usb": any reader nfcpy supports


def _check_usb(report: Report, name: str, path: str, system: System) -> None:
    found: list[tuple[str, str]] = []
    for dev in sorted(system.sys_usb_devices.glob("*")):
        try:
            ids = ((dev / "idVendor").read_text().strip(), (dev / "idProduct").read_text().strip())
            bus = int((dev / "busnum").read_text())
            num = int((dev / "devnum").read_text())
        except (OSError, ValueError):
            continue
        if _usb_matches(path, ids, bus, num):
            found.append((NFC_USB_IDS.get(ids, ":".join(ids)), f"/dev/bus/usb/{bus:03}/{num:03}"))
    if not found:
        report.add(
            name,
            Status.FIX,
            f"{path}: no USB NFC reader found",
            "plug it in; `lsusb` should list it (hardware/acr122u.md)",
        )
        return
    model, node = found[0]
    check_device(report, f"{name} ({model})", node, system, "")


def check_doors(report: Report, doors: tuple[DoorBase, ...], system: System) -> None:
    for door in doors:
        name = f"door {door.name}"
        if isinstance(door, GpioDoorConfig):
            check_device(report, name, door.chip, system, "ls /dev/gpiochip*: which chip is it?")
            _check_gpio_lines(report, name, door)
        elif isinstance(door, CommandDoorConfig):
            # One row per program: a script often serves as command and feedback.
            programs: dict[str, list[str]] = {}
            for key, argv in (
                ("command", door.command),
                ("feedback_command", door.feedback_command),
            ):
                if argv:
                    programs.setdefault(argv[0], []).append(key)
            for program, keys in programs.items():
                _check_command(report, name, program, " and ".join(keys))


def _check_command(report: Report, name: str, program: str, keys: str) -> None:
    found = shutil.which(program) if "/" not in program else program
    if found is None or not os.access(found, os.X_OK):
        report.add(name, Status.FIX, f"{keys}: {program}: not found or not executable")
    else:
        report.add(name, Status.OK, f"{keys}: {found}: executable")


def _check_gpio_lines(report: Report, name: str, door: GpioDoorConfig) -> None:
    try:
        import gpiod
    except ImportError:
        report.add(
            f"{name} lines",
            Status.FIX,
            "libgpiod's Python bindings are missing",
            "pip install 'checkin-gateway[gpio]' (make install does)",
        )
        return
    try:
        chip = gpiod.Chip(door.chip)
    except OSError:
        return  # reported by the device check
    problems: list[str] = []
    held = False
    with chip:
        for key, line in door.lines().items():
            try:
                info = chip.get_line_info(chip.line_offset_from_id(line))
            except (OSError, ValueError):
                problems.append(f"{key} = {line!r}: no such line")
                continue
            if info.used and info.consumer == "checkin-gateway":
                held = True
            elif info.used:
                problems.append(f"{key} = {line!r}: in use by {info.consumer or 'another program'}")
    if problems:
        report.add(f"{name} lines", Status.FIX, "; ".join(problems), "gpioinfo lists the lines")
    else:
        state = "held by the running gateway" if held else "present and free"
        report.add(f"{name} lines", Status.OK, f"{len(door.lines())} lines {state}")
