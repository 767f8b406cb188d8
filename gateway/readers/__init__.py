"""Readers: each an async source of taps behind the ``Reader`` protocol.

``build_reader`` imports a reader's module only when it is configured, so a gateway
without a MAC reader never pays for scapy, and one without NFC never imports nfcpy.
"""

from __future__ import annotations

from gateway.config.model import (
    KeyboardReaderConfig,
    NfcReaderConfig,
    ReaderBase,
    SerialReaderConfig,
)
from gateway.readers.base import Reader, ReaderContext


def build_reader(cfg: ReaderBase, ctx: ReaderContext) -> Reader:
    del ctx  # used by readers that need it (presence)
    if isinstance(cfg, SerialReaderConfig):
        from gateway.readers.serial.reader import SerialReader

        return SerialReader(cfg)
    if isinstance(cfg, NfcReaderConfig):
        from gateway.readers.nfc.reader import NfcReader

        return NfcReader(cfg)
    if isinstance(cfg, KeyboardReaderConfig):
        from gateway.readers.keyboard import KeyboardReader

        return KeyboardReader(cfg)
    raise TypeError(f"no reader for {type(cfg).__name__}")  # config validation prevents this
