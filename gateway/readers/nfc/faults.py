"""What went wrong with an NFC reader, and what the person at the Pi should do about it.

nfcpy reports trouble in several shapes: ``open()`` returning False (nothing found, or
a partial path such as ``"usb"`` that skipped a device it could not use), ``IOError``
with an errno (EACCES, EBUSY, ENODEV, ETIMEDOUT, EIO), ``ImportError`` when libusb1 is
not installed, and the ``OSError`` libusb1 raises when the C library libusb-1.0 is
missing. ``classify`` turns each into a ``Fault`` whose message names the fix.
"""

from __future__ import annotations

import enum
import errno
import re
from dataclasses import dataclass

UDEV_RULES = "hardware/udev/60-checkin-gateway.rules"
SERVICE_GROUP = "checkin-gateway"  # the rules give USB NFC readers to this group
ACR122U = (0x072F, 0x2200)


class FaultKind(enum.StrEnum):
    NO_DEVICE = "no-device"  # not plugged in, or unplugged: retried
    BUSY = "busy"  # another process or a kernel driver holds it: retried
    PERMISSION = "permission"  # udev rule / group missing: fatal once it persists
    UNRESPONSIVE = "unresponsive"  # there, but not answering (a wedged ACR122U): retried
    NO_LIBUSB = "no-libusb"  # the C library libusb-1.0 is missing: fatal
    MISSING_MODULE = "missing-module"  # nfcpy or libusb1 not installed: fatal
    UNSUPPORTED = "unsupported"  # bad device string or a reader that can't do 106A: fatal
    UNEXPECTED = "unexpected"  # a bug somewhere: logged with traceback, retried


FATAL = frozenset({FaultKind.NO_LIBUSB, FaultKind.MISSING_MODULE, FaultKind.UNSUPPORTED})


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    message: str  # what is wrong and how to fix it, for the log and `status`

    @property
    def fatal(self) -> bool:
        return self.kind in FATAL


def _is_tty(device: str) -> bool:
    return device.startswith(("tty", "com"))


def _tty_port(device: str) -> str:
    """The port nfcpy opens for ``tty:NAME[:driver]``: /dev/ttyNAME for the usual
    kinds (``AMA0``; ``USB`` alone means any ttyUSB), else /dev/NAME (``serial0``)."""
    parts = device.split(":")
    name = parts[1] if len(parts) > 1 else ""
    if not name:
        return "the serial port"
    if re.fullmatch(r"(S|ACM|AMA|USB)\d+", name):
        return f"/dev/tty{name}"
    if name in ("S", "ACM", "AMA", "USB"):
        return f"/dev/tty{name}*"
    return f"/dev/{name}"


def not_found(device: str) -> Fault:
    """``open()`` returned False: nothing answered on ``device``."""
    if _is_tty(device):
        hint = (
            f"no PN532 answered on {_tty_port(device)}: check the wiring and the module's "
            "HSU (UART) mode switches, and that no serial console uses the port "
            "(raspi-config: serial login shell off, serial hardware on)"
        )
    elif device.startswith("usb"):
        hint = (
            f"no NFC reader found at {device!r}: is it plugged in? 'lsusb' should list it "
            "(an ACR122U is 072f:2200)"
        )
    else:
        hint = f"no NFC reader found at {device!r}"
    return Fault(FaultKind.NO_DEVICE, hint)


def permission(device: str) -> Fault:
    if _is_tty(device):
        fix = (
            f"no permission to open {_tty_port(device)}: add the gateway's user to the "
            "dialout group ('usermod -aG dialout USER'; the service's user is in it) or "
            f"give the port that group in {UDEV_RULES}, then restart the gateway"
        )
    else:
        fix = (
            f"no permission to use the NFC reader at {device!r}: install {UDEV_RULES} "
            "('make install' does; by hand: copy it to /etc/udev/rules.d/ and run "
            "'udevadm control --reload-rules && udevadm trigger'), which gives USB NFC "
            f"readers to the group {SERVICE_GROUP} (mode 0660); run the gateway as that "
            f"user (the systemd unit does) or add yours to the group ('usermod -aG "
            f"{SERVICE_GROUP} USER'), then restart the gateway (hardware/acr122u.md)"
        )
    return Fault(FaultKind.PERMISSION, fix)


def busy(device: str) -> Fault:
    return Fault(
        FaultKind.BUSY,
        f"the NFC reader at {device!r} is in use by something else: the kernel's NFC "
        "driver (blacklist pn533_usb, pn533 and nfc, see hardware/acr122u.md), pcscd "
        "('systemctl disable --now pcscd.socket pcscd') or another gateway process",
    )


def unresponsive(device: str, detail: str) -> Fault:
    return Fault(
        FaultKind.UNRESPONSIVE,
        f"the NFC reader at {device!r} does not answer ({detail}); retrying. An ACR122U "
        "that stays like this needs replugging",
    )


def _is_libusb_missing(exc: OSError) -> bool:
    # libusb1 raises OSError(ENOENT, "cannot find a suitable libusb-1.0", [...]) when
    # the C library is absent; a broken one gives dlopen's OSError naming the file.
    return "libusb" in str(exc).lower()


def classify(exc: BaseException, device: str) -> Fault:
    """The fault behind an exception from ``import nfc``, ``open()`` or ``sense()``."""
    if isinstance(exc, ImportError):
        return _import_fault(exc, device)
    if isinstance(exc, OSError):
        if _is_libusb_missing(exc):
            return Fault(
                FaultKind.NO_LIBUSB,
                "the C library libusb-1.0 is missing, which USB NFC readers need: "
                f"'apt install libusb-1.0-0' ({exc})",
            )
        match exc.errno:
            case errno.EACCES | errno.EPERM:
                return permission(device)
            case errno.EBUSY:
                return busy(device)
            case errno.ENODEV | errno.ENOENT | errno.ENXIO:
                return not_found(device)
            case _:
                return unresponsive(device, exc.strerror or str(exc) or type(exc).__name__)
    if type(exc).__name__ == "UnsupportedTargetError":
        return Fault(
            FaultKind.UNSUPPORTED,
            f"the NFC reader at {device!r} cannot read ISO 14443-A cards at 106 kbit/s ({exc})",
        )
    if isinstance(exc, ValueError | TypeError):
        return Fault(FaultKind.UNSUPPORTED, f"nfcpy rejects the device {device!r}: {exc}")
    return Fault(FaultKind.UNEXPECTED, f"unexpected {type(exc).__name__} from nfcpy: {exc}")


def _import_fault(exc: ImportError, device: str) -> Fault:
    name = exc.name or ""
    if name.startswith("nfc.clf."):  # "tty:AMA0:pn5xx": nfcpy loads drivers by name
        return Fault(
            FaultKind.UNSUPPORTED,
            f"nfcpy has no driver {name.removeprefix('nfc.clf.')!r} (from {device!r}); "
            "serial readers use 'pn532' or 'arygon', e.g. 'tty:AMA0:pn532'",
        )
    if name == "usb1" or "usb1" in str(exc) or "libusb1" in str(exc):
        return Fault(
            FaultKind.MISSING_MODULE,
            f"the Python package libusb1 is missing: 'pip install libusb1' ({exc})",
        )
    return Fault(
        FaultKind.MISSING_MODULE,
        f"cannot import nfcpy: reinstall the gateway with its dependencies, or "
        f"'pip install nfcpy' ({exc})",
    )
