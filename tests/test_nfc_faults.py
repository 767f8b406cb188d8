"""What nfcpy does when things go wrong, and the fault (and fix) we make of it.

Wherever this machine can produce the real failure, the test does: nfcpy with no
reader attached, libusb-1.0 missing (the real libusb1 loader failing), the libusb1
package missing, a serial port without permission. The errno shapes that need USB
hardware (EBUSY from a claimed interface...) are built exactly as nfcpy's transport
raises them.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gateway.readers.nfc.faults import UDEV_RULES, Fault, FaultKind, classify
from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent


# libusb1 loads libusb-1.0 with ctypes on first use: make every attempt fail as on a
# system without the library; the real nfcpy and libusb1 code runs after this.
WITHOUT_LIBUSB = """
import ctypes, ctypes.util
real_cdll, real_find = ctypes.CDLL, ctypes.util.find_library
def cdll(name, *a, **k):
    if name and "usb" in str(name):
        raise OSError(f"{name}: cannot open shared object file: No such file or directory")
    return real_cdll(name, *a, **k)
ctypes.CDLL = cdll
ctypes.util.find_library = lambda n: None if "usb" in n else real_find(n)
"""


def _run(code: str, prelude: str = "") -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (libusb and imports are per process); it
    prints one JSON object."""
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _libusb_present() -> bool:
    try:
        import usb1

        usb1.getVersion()
    except OSError:
        return False
    return True


# -- real nfcpy behaviour ----------------------------------------------------------------


@pytest.mark.real
def test_no_usb_reader_attached_is_no_device() -> None:
    require(_libusb_present(), "libusb-1.0 (Debian libusb-1.0-0) not installed")
    import nfc

    from gateway.readers.nfc.frontend import open_reader, usb_readers

    clf = nfc.ContactlessFrontend()
    require(not usb_readers("usb"), "an NFC reader is attached to this machine")
    assert clf.open("usb") is False  # nfcpy's answer: not an exception
    fault = open_reader(clf, "usb")
    assert fault is not None and fault.kind is FaultKind.NO_DEVICE
    assert "lsusb" in fault.message and "072f:2200" in fault.message
    assert not fault.fatal


@pytest.mark.real
def test_no_serial_reader_is_no_device_with_wiring_hint() -> None:
    import nfc

    from gateway.readers.nfc.frontend import open_reader

    fault = open_reader(nfc.ContactlessFrontend(), "tty:USB9:pn532")
    assert fault is not None and fault.kind is FaultKind.NO_DEVICE
    assert "/dev/ttyUSB9" in fault.message and "serial console" in fault.message


@pytest.mark.real
def test_missing_libusb_library_is_fatal_and_names_the_package() -> None:
    result = _run(
        """
        import json
        import nfc
        from gateway.readers.nfc.frontend import open_reader
        fault = open_reader(nfc.ContactlessFrontend(), "usb:072f:2200")
        print(json.dumps({"kind": fault.kind, "message": fault.message}))
        """,
        WITHOUT_LIBUSB,
    )
    assert result["kind"] == FaultKind.NO_LIBUSB
    assert "apt install libusb-1.0-0" in result["message"]
    assert "cannot find a suitable libusb-1.0" in result["message"]  # libusb1's own words


@pytest.mark.real
def test_missing_libusb_library_fails_the_reader_at_once() -> None:
    result = _run(
        """
        import asyncio, json, threading
        from gateway.config.model import NfcReaderConfig
        from gateway.errors import ReaderError
        from gateway.readers.nfc.reader import NfcReader
        reader = NfcReader(NfcReaderConfig(name="door", device="usb"))
        try:
            asyncio.run(asyncio.wait_for(reader.run(lambda tap: None), 30))
        except ReaderError as exc:
            print(json.dumps({
                "error": str(exc),
                "state": reader.state,
                "threads": [t.name for t in threading.enumerate()],
            }))
        """,
        WITHOUT_LIBUSB,
    )
    assert result["error"].startswith("NFC reader 'door': the C library libusb-1.0 is missing")
    assert "apt install libusb-1.0-0" in result["error"]
    assert result["state"] == "failed" and result["threads"] == ["MainThread"]


@pytest.mark.real
def test_missing_libusb1_package_is_fatal() -> None:
    result = _run(
        """
        import json, sys
        sys.modules["usb1"] = None  # as if pip never installed libusb1
        from gateway.readers.nfc.faults import classify
        try:
            import gateway.readers.nfc.frontend
        except ImportError as exc:
            fault = classify(exc, "usb")
            print(json.dumps({"kind": fault.kind, "message": fault.message}))
        else:
            print(json.dumps({"kind": "imported"}))
        """
    )
    assert result["kind"] == FaultKind.MISSING_MODULE
    assert "pip install libusb1" in result["message"]


@pytest.mark.real
def test_serial_port_without_permission_names_the_dialout_group() -> None:
    require(os.geteuid() == 0, "needs root to drop to an unprivileged user")
    require(Path("/dev/ttyS0").exists(), "no /dev/ttyS0")
    result = _run(
        """
        import json, os
        import nfc
        from gateway.readers.nfc.frontend import open_reader
        clf = nfc.ContactlessFrontend()
        os.setegid(65534); os.seteuid(65534)  # nobody: /dev/ttyS0 is root's
        try:
            clf.open("tty:S0:pn532")
        except OSError as exc:
            raised = exc.errno
        fault = open_reader(clf, "tty:S0:pn532")
        print(json.dumps({"errno": raised, "kind": fault.kind, "message": fault.message}))
        """
    )
    assert result["errno"] == errno.EACCES
    assert result["kind"] == FaultKind.PERMISSION
    assert "dialout" in result["message"] and "/dev/ttyS0" in result["message"]


@pytest.mark.parametrize(
    ("device", "port"),
    [
        ("tty:AMA0:pn532", "/dev/ttyAMA0"),
        ("tty:USB0", "/dev/ttyUSB0"),
        ("tty:USB:pn532", "/dev/ttyUSB*"),
        ("tty:serial0:pn532", "/dev/serial0"),
    ],
)
def test_serial_messages_name_the_port_nfcpy_opens(device: str, port: str) -> None:
    assert f"{port}:" in classify(_nfcpy_ioerror(errno.EACCES), device).message
    assert f" {port}:" in classify(_nfcpy_ioerror(errno.ENODEV), device).message


def test_unknown_driver_module_is_unsupported() -> None:
    with pytest.raises(ImportError) as info:  # how nfcpy loads "tty:AMA0:<driver>"
        importlib.import_module("nfc.clf.pn5xx")
    fault = classify(info.value, "tty:AMA0:pn5xx")
    assert fault.kind is FaultKind.UNSUPPORTED and fault.fatal
    assert "'pn532'" in fault.message


# -- errno shapes as nfcpy raises them ----------------------------------------------------


def _nfcpy_ioerror(code: int) -> OSError:
    return OSError(code, os.strerror(code))  # nfc/clf/transport.py and device.py


def test_usb_permission_names_the_udev_rule_and_group() -> None:
    fault = classify(_nfcpy_ioerror(errno.EACCES), "usb:072f:2200")
    assert fault.kind is FaultKind.PERMISSION
    assert UDEV_RULES in fault.message and "usermod -aG checkin-gateway" in fault.message
    assert UDEV_RULES == "hardware/udev/60-checkin-gateway.rules"


def test_busy_names_pcscd_and_the_kernel_driver() -> None:
    fault = classify(_nfcpy_ioerror(errno.EBUSY), "usb")
    assert fault.kind is FaultKind.BUSY and not fault.fatal
    assert "pcscd" in fault.message and "pn533_usb" in fault.message


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (errno.ENODEV, FaultKind.NO_DEVICE),
        (errno.ETIMEDOUT, FaultKind.UNRESPONSIVE),
        (errno.EIO, FaultKind.UNRESPONSIVE),
        (errno.EPERM, FaultKind.PERMISSION),
    ],
)
def test_errno_classes(code: int, kind: FaultKind) -> None:
    assert classify(_nfcpy_ioerror(code), "usb").kind is kind


def test_other_failures() -> None:
    import nfc.clf

    unsupported = classify(nfc.clf.UnsupportedTargetError("no 106A"), "usb")
    assert unsupported.kind is FaultKind.UNSUPPORTED and unsupported.fatal
    assert classify(ValueError("bad path"), "usb").kind is FaultKind.UNSUPPORTED
    unexpected = classify(RuntimeError("boom"), "usb")
    assert unexpected.kind is FaultKind.UNEXPECTED and not unexpected.fatal


def test_partial_usb_path_asks_each_reader_for_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nfcpy's open("usb") skips a reader it may not open and says False; opening it
    by bus:address makes nfcpy raise EACCES, which names the fix."""
    from gateway.readers.nfc import frontend

    class Clf:
        device = None
        opened: list[str] = []  # noqa: RUF012

        def open(self, path: str) -> bool:
            self.opened.append(path)
            if path == "usb":
                return False
            raise _nfcpy_ioerror(errno.EACCES)

    monkeypatch.setattr(frontend, "usb_readers", lambda device: [(0x072F, 0x2200, 1, 7)])
    clf = Clf()
    fault = frontend.open_reader(clf, "usb")  # type: ignore[arg-type]
    assert clf.opened == ["usb", "usb:001:007"]
    assert fault is not None and fault.kind is FaultKind.PERMISSION


@pytest.mark.real
def test_usb_reset_without_readers_resets_nothing() -> None:
    require(_libusb_present(), "libusb-1.0 not installed")
    from gateway.readers.nfc.frontend import reset_acr122u, usb_readers

    require(not usb_readers("usb"), "an NFC reader is attached to this machine")
    assert reset_acr122u("usb") == 0


# -- closing without putting the PN532 to sleep ------------------------------------------


class _Transport:
    TYPE = "USB"

    def __init__(self) -> None:
        self.closed = 0
        self.baudrate = 460800

    def close(self) -> None:
        self.closed += 1


class _Chipset:
    def __init__(self, transport: _Transport, *, fail: bool = False) -> None:
        self.transport = transport
        self.calls: list[str] = []
        self._fail = fail

    def send_ack(self) -> None:
        self.calls.append("ack")
        if self._fail:
            raise _nfcpy_ioerror(errno.ENODEV)

    def set_serial_baudrate(self, baudrate: int) -> None:
        self.calls.append(f"baud {baudrate}")

    def power_down(self, wakeup_enable: Any) -> None:
        self.calls.append("power_down")

    def close(self) -> None:
        self.calls.append("close")
        self.transport.close()


class _Clf:
    def __init__(self, device: object) -> None:
        import threading

        self.device = device
        self.lock = threading.Lock()


def _driver_device(module: str, chipset: _Chipset) -> Any:
    cls = importlib.import_module(module).Device
    device = cls.__new__(cls)  # nfcpy's own class, without talking to hardware
    device.chipset = chipset
    return device


@pytest.mark.parametrize("module", ["nfc.clf.acr122", "nfc.clf.pn532"])
def test_pn532_family_is_closed_without_power_down(module: str) -> None:
    from gateway.readers.nfc.frontend import close_reader

    # What nfcpy's own close does, which leaves an ACR122U unable to reopen:
    stock = _Chipset(_Transport())
    _driver_device(module, stock).close()
    assert "power_down" in stock.calls

    ours = _Chipset(_Transport())
    clf = _Clf(_driver_device(module, ours))
    close_reader(clf)  # type: ignore[arg-type]
    assert ours.calls == ["ack", "close"]
    assert ours.transport.closed >= 1 and clf.device is None


def test_serial_pn532_goes_back_to_115200_baud_on_close() -> None:
    from gateway.readers.nfc.frontend import close_reader

    transport = _Transport()
    transport.TYPE = "TTY"
    chipset = _Chipset(transport)
    close_reader(_Clf(_driver_device("nfc.clf.pn532", chipset)))  # type: ignore[arg-type]
    assert chipset.calls == ["ack", "baud 115200", "close"]
    assert transport.baudrate == 115200


def test_close_of_a_vanished_reader_still_releases_the_transport() -> None:
    from gateway.readers.nfc.frontend import close_reader

    chipset = _Chipset(_Transport(), fail=True)
    clf = _Clf(_driver_device("nfc.clf.acr122", chipset))
    close_reader(clf)  # type: ignore[arg-type]  # must not raise
    assert chipset.transport.closed == 1 and clf.device is None
    close_reader(clf)  # type: ignore[arg-type]  # idempotent


def test_fault_is_a_value() -> None:
    assert Fault(FaultKind.BUSY, "x") == Fault(FaultKind.BUSY, "x")
