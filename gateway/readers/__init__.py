"""Readers: each an async source of taps behind the ``Reader`` protocol.

``build_reader`` imports a reader's module only when it is configured, so a gateway
pays only for the readers it has (one without NFC never imports nfcpy).
"""

from __future__ import annotations

from gateway.config.model import (
    HidReaderConfig,
    KeyboardReaderConfig,
    MacReaderConfig,
    NfcReaderConfig,
    ReaderBase,
    SerialReaderConfig,
    WiegandReaderConfig,
)
from gateway.readers.base import Reader, ReaderContext


def build_reader(cfg: ReaderBase, ctx: ReaderContext) -> Reader:
    if isinstance(cfg, SerialReaderConfig):
        from gateway.readers.serial.reader import SerialReader

        return SerialReader(cfg)
    if isinstance(cfg, NfcReaderConfig):
        from gateway.readers.nfc.reader import NfcReader

        return NfcReader(cfg)
    if isinstance(cfg, KeyboardReaderConfig):
        from gateway.readers.keyboard import KeyboardReader

        return KeyboardReader(cfg)
    if isinstance(cfg, MacReaderConfig):
        from gateway.readers.mac.reader import MacReader

        return MacReader(cfg, ctx)
    if isinstance(cfg, WiegandReaderConfig):
        # gpiod is imported only when the lines are requested.
        from gateway.readers.wiegand.reader import WiegandReader

        return WiegandReader(cfg)
    if isinstance(cfg, HidReaderConfig):
        # evdev is imported only when the device is opened.
        from gateway.readers.hid.reader import HidReader

        return HidReader(cfg)
    raise TypeError(f"no reader for {type(cfg).__name__}")  # config validation prevents this
