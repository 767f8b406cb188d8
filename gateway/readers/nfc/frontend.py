"""The nfcpy calls the worker thread makes: open, sense, read NDEF, close, reset.

Importing this module imports nfcpy (~7 MiB, ~0.1 s), so only the worker thread does,
and only when an NFC reader is configured. Everything here blocks; nothing here may
run on the event loop.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import nfc
import nfc.clf
import nfc.tag
import structlog

from gateway.readers.nfc.device import CardSighting, Frontend, NdefUnreadable
from gateway.readers.nfc.faults import ACR122U, Fault, FaultKind, classify, not_found
from gateway.readers.nfc.ndeftext import text_token
from gateway.readers.nfc.presence import RANDOM_KEY, card_key

log = structlog.get_logger(__name__)

_PN532_SETTLE = 0.01  # nfcpy's own pause after cancelling a PN532 command on close


def _quiet_nfcpy() -> None:
    # `import nfc` sets its logger to INFO, and nfcpy logs every failed open at ERROR:
    # while a reader is unplugged that would be a line per retry. We classify and log
    # its failures ourselves; a debugging session that set a verbose level keeps it.
    logger = logging.getLogger("nfc")
    if not logging.NOTSET < logger.level < logging.INFO:
        logger.setLevel(logging.CRITICAL)


_quiet_nfcpy()


def new_frontend() -> Frontend:
    frontend: Frontend = nfc.ContactlessFrontend()
    return frontend


def open_reader(clf: Frontend, device: str) -> Fault | None:
    """Open ``device``; None on success, else the fault, with its cause found out."""
    try:
        if clf.open(device):
            return None
        if not device.startswith("usb"):
            return not_found(device)
        # With a partial path ("usb", "usb:072f") nfcpy skips a reader it cannot use
        # (no permission, busy, wedged) and just says False. Opening each reader on
        # the bus by its exact bus:address makes nfcpy raise the reason instead.
        for _vid, _pid, bus, address in usb_readers(device):
            if clf.open(f"usb:{bus:03d}:{address:03d}"):
                return None
    except Exception as exc:  # every nfcpy failure becomes a Fault
        fault = classify(exc, device)
        if fault.kind is FaultKind.UNEXPECTED:
            log.exception("nfc_open_crashed", device=device)
        return fault
    return not_found(device)


def usb_readers(device: str) -> list[tuple[int, int, int, int]]:
    """(vid, pid, bus, address) of the readers nfcpy has a driver for, on ``device``."""
    from nfc.clf import device as nfc_device
    from nfc.clf import transport

    found = transport.USB.find(device) or []
    return [f for f in found if (f[0], f[1]) in nfc_device.usb_device_map]


def sense_card(clf: Frontend) -> CardSighting | None:
    """One sense round for an ISO 14443-A card; the UID comes from anticollision.

    The card is not activated, so any card works, whatever its memory or crypto.
    ``sense`` switches the field off before it starts: a card left on the reader is
    reset every round and answers again, which is how we see that it is still there.
    Raises OSError when the device is gone.
    """
    found = clf.sense(nfc.clf.RemoteTarget("106A"), iterations=1)
    if found is None or not found.sdd_res:
        return None
    return CardSighting(bytes(found.sdd_res), found)


def read_text_token(clf: Frontend, sighting: CardSighting) -> str | None:
    """The token in the card's NDEF text record, None if it has none.

    Raises ``NdefUnreadable`` when the card could not be activated or left halfway
    through the read; OSError (device gone) passes through.
    """
    try:
        tag = nfc.tag.activate(clf, sighting.target)
        if tag is None:
            raise NdefUnreadable("activation failed")
        ndef = tag.ndef
        if ndef is not None:
            return text_token(ndef.records)
        # nfcpy says None both for "no NDEF" and for "read failed" (the card was
        # pulled away): select the card again by its UID, which works for any card,
        # to tell them apart. A random UID is new at every activation: no check.
        if card_key(sighting.uid) == RANDOM_KEY or _still_there(clf, sighting.uid):
            return None
        raise NdefUnreadable("the card left while its NDEF message was read")
    except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
        raise NdefUnreadable(str(exc)) from exc


def _still_there(clf: Frontend, uid: bytes) -> bool:
    target = nfc.clf.RemoteTarget("106A", sel_req=bytearray(uid))
    return clf.sense(target, iterations=1) is not None


def close_reader(clf: Frontend) -> None:
    """Close the device, leaving a PN532 awake, and never raise.

    nfcpy's close sends a PN532 into power-down; the PN532 inside an ACR122U (and
    some PN532 boards on a UART) then does not wake up for the next open, which is
    the "works once, then needs replugging" ACR122U problem. We do what nfcpy's
    close does except that power-down.
    """
    with clf.lock:
        device, clf.device = clf.device, None
    if device is None:
        return
    try:
        if _powers_down_on_close(device):
            _close_awake(device)
        else:
            device.close()
    except Exception as exc:  # noqa: BLE001  (the device may be half gone: close is best effort)
        log.debug("nfc_close_failed", error=repr(exc))


def _powers_down_on_close(device: object) -> bool:
    # acr122.Device derives from pn532.Device; nfcpy loads drivers lazily, so match
    # by name rather than importing every driver module.
    return any(
        c.__module__ == "nfc.clf.pn532" and c.__name__ == "Device" for c in type(device).__mro__
    )


def _close_awake(device: Any) -> None:
    chipset = device.chipset
    transport = chipset.transport
    try:
        chipset.send_ack()  # cancel a command that may still be running
        time.sleep(_PN532_SETTLE)
        if transport.TYPE == "TTY":  # next open starts at 115.2 kbaud
            chipset.set_serial_baudrate(115200)
            transport.baudrate = 115200
        chipset.close()
    finally:
        transport.close()  # idempotent in nfcpy's USB and TTY transports


def reset_acr122u(device: str) -> int:
    """USB-reset the ACR122Us ``device`` matches; how many were reset.

    A best-effort cure for an ACR122U left asleep by another program (nfcpy's own
    close, or a crash mid-command): the reset makes its controller start over.
    """
    import usb1  # type: ignore[import-untyped]  # libusb1 ships no type information

    targets = {(bus, addr) for vid, pid, bus, addr in usb_readers(device) if (vid, pid) == ACR122U}
    if not targets:
        return 0
    count = 0
    with usb1.USBContext() as context:
        for dev in context.getDeviceList(skip_on_error=True):
            if (dev.getBusNumber(), dev.getDeviceAddress()) not in targets:
                continue
            try:
                handle = dev.open()
                try:
                    handle.resetDevice()
                finally:
                    handle.close()
                count += 1
            except usb1.USBError as exc:  # gone, or re-enumerated by the reset itself
                log.debug("nfc_usb_reset_failed", error=repr(exc))
    return count
