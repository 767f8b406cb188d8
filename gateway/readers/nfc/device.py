"""The NFC device seam: what the worker thread asks of nfcpy, as types only.

``frontend.py`` implements ``NfcCalls`` with nfcpy (and imports it, ~0.1 s); this
module imports nothing heavy, so the worker, the reader and the tests can name the types
without loading nfcpy, and the dependency runs one way: worker -> device <- frontend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import ReaderError
from gateway.readers.nfc.faults import Fault


class Frontend(Protocol):
    """What we use of ``nfc.ContactlessFrontend`` (tests subclass the real one)."""

    device: Any
    lock: Any

    def open(self, path: str) -> bool: ...

    def sense(self, *targets: Any, **options: Any) -> Any: ...

    def close(self) -> None: ...


FrontendFactory = Callable[[], Frontend]


@dataclass(frozen=True, slots=True)
class CardSighting:
    uid: bytes
    target: Any  # the nfc.clf.RemoteTarget, needed to activate the tag for NDEF


class NdefUnreadable(ReaderError):
    """The card left, or did not answer, while its NDEF message was being read."""


class NfcCalls(Protocol):
    """The blocking nfcpy calls the worker makes (``gateway.readers.nfc.frontend``)."""

    def new_frontend(self) -> Frontend: ...

    def open_reader(self, clf: Frontend, device: str) -> Fault | None: ...

    def sense_card(self, clf: Frontend) -> CardSighting | None: ...

    def read_text_token(self, clf: Frontend, sighting: CardSighting) -> str | None: ...

    def close_reader(self, clf: Frontend) -> None: ...

    def reset_acr122u(self, device: str) -> int: ...
