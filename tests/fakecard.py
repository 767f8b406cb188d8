"""A fake ISO 14443-A card on the far side of nfcpy's UDP driver.

nfcpy's ``udp:HOST:PORT`` device speaks the NFC Forum Digital protocol as text
datagrams (``b"106A 26"``: bit rate and type, then the frame in hex) and expects the
card's answers in the same form. ``CardField`` is that far side: a UDP socket on
loopback served by a thread (answers must come within nfcpy's 5-10 ms Type 2 Tag
timeouts, whatever the test's event loop is doing). Put a ``Card`` in the field with
``present``, take it away with ``lift``; ``polls`` counts the reader's sense rounds so
tests wait for rounds, not for wall-clock time.

The card follows ISO 14443-3: REQA/WUPA -> ATQA, anticollision and select per cascade
level (4-, 7- and 10-byte UIDs), and once selected, Type 2 Tag READ from its memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from operator import xor

CASCADE_TAG = 0x88
SAK_CASCADE = 0x04  # "UID not complete" bit of SAK
SEL = (0x93, 0x95, 0x97)  # cascade levels 1-3


def bcc(part: bytes) -> int:
    return reduce(xor, part, 0)


def cascade_parts(uid: bytes) -> list[bytes]:
    """The 4 bytes each cascade level answers to anticollision (without BCC)."""
    if len(uid) == 4:
        return [uid]
    if len(uid) == 7:
        return [bytes([CASCADE_TAG]) + uid[:3], uid[3:]]
    if len(uid) == 10:
        return [bytes([CASCADE_TAG]) + uid[:3], bytes([CASCADE_TAG]) + uid[3:6], uid[6:]]
    raise ValueError("an ISO 14443-A UID has 4, 7 or 10 bytes")


def _default_atqa(uid: bytes) -> bytes:
    # ATQA bits 7-6 give the UID size; nfcpy wants byte 0 & 0x1F != 0 (not a Topaz).
    return bytes([{4: 0x04, 7: 0x44, 10: 0x84}[len(uid)], 0x00])


@dataclass
class Card:
    uid: bytes
    sak: int = 0x08  # MIFARE Classic 1K: not a Type 2/4 tag nfcpy would activate
    atqa: bytes | None = None
    memory: bytes | None = None  # Type 2 Tag memory (4-byte pages) for READ
    # A phone emulating a card draws a new random UID at every activation.
    next_uid: Callable[[], bytes] | None = None
    # A card held at the edge of the field: this many times, once selected, it stops
    # answering until it has let one more REQA pass unanswered.
    dropouts: int = 0

    def __post_init__(self) -> None:
        cascade_parts(self.uid)  # validates the length
        if self.atqa is None:
            self.atqa = _default_atqa(self.uid)


def type2_memory(uid: bytes, ndef_message: bytes, data_pages: int = 36) -> bytes:
    """A formatted Type 2 Tag (7-byte UID) holding one NDEF message."""
    assert len(uid) == 7
    head = bytes([*uid[:3], CASCADE_TAG ^ bcc(uid[:3])]) + uid[3:7]
    head += bytes([bcc(uid[3:7]), 0x48, 0x00, 0x00])  # BCC1, internal, lock bytes
    head += bytes([0xE1, 0x10, data_pages * 4 // 8, 0x00])  # CC: NDEF 1.0, size, r/w
    tlv = bytes([0x03, len(ndef_message)]) + ndef_message + b"\xfe"
    data = tlv.ljust(data_pages * 4, b"\x00")
    assert len(data) == data_pages * 4, "message too long for the tag"
    return head + data


def random_uid() -> bytes:
    return b"\x08" + os.urandom(3)


@dataclass
class _Session:
    """The card's ISO 14443-3 state while it sits in the field."""

    level: int = 0  # next cascade level to select
    active: bool = False
    uid: bytes = b""


@dataclass
class CardField:
    """The reader's RF field as seen from the card: answer nfcpy's UDP driver."""

    host: str = "127.0.0.1"
    polls: int = 0  # REQA/WUPA received: one per sense round
    answered: int = 0  # ... of which a card answered
    _card: Card | None = None
    _session: _Session = field(default_factory=_Session)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _wake: tuple[socket.socket, socket.socket] | None = None
    _dropping: bool = False
    present_since: float | None = None  # time.monotonic() of the last present()

    def start(self) -> CardField:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((self.host, 0))
        self._wake = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="fakecard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None or self._wake is None or self._sock is None:
            return
        self._wake[1].send(b"x")
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "fake card thread did not stop"
        for s in (self._sock, *self._wake):
            s.close()
        self._thread = None

    def __enter__(self) -> CardField:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    @property
    def device(self) -> str:
        return f"udp:{self.host}:{self.port}"

    def present(self, card: Card) -> None:
        with self._lock:
            self._card = card
            self._session = _Session(uid=card.uid)
            self._dropping = False
            self.present_since = time.monotonic()

    def lift(self) -> None:
        with self._lock:
            self._card = None
            self._session = _Session()

    async def rounds(self, n: int, *, timeout: float = 15.0, answered: bool = False) -> None:
        """Wait (without blocking the loop) until the reader has polled ``n`` more times
        (``answered``: ``n`` more times with a card in the field)."""

        def count() -> int:
            return self.answered if answered else self.polls

        target = count() + n
        deadline = time.monotonic() + timeout
        while count() < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reader polled {count()} < {target} times in {timeout}s")
            await asyncio.sleep(0.01)

    # -- the card side, in the thread ---------------------------------------------

    def _serve(self) -> None:
        assert self._sock is not None and self._wake is not None
        while True:
            ready, _, _ = select.select([self._sock, self._wake[0]], [], [])
            if self._wake[0] in ready:
                return
            with contextlib.suppress(OSError):
                datagram, addr = self._sock.recvfrom(1024)
                answer = self._handle(datagram)
                if answer is not None:
                    self._sock.sendto(b"106A " + answer.hex().encode(), addr)

    def _handle(self, datagram: bytes) -> bytes | None:
        if datagram.startswith(b"RFOFF"):  # field off: the card loses power
            with self._lock:
                self._session = _Session(uid=self._card.uid if self._card else b"")
            return None
        try:
            brty, hexdata = datagram.split()
            frame = bytes.fromhex(hexdata.decode())
        except ValueError:
            return None
        if brty != b"106A" or not frame:
            return None
        with self._lock:
            return self._answer(frame)

    def _answer(self, frame: bytes) -> bytes | None:
        card, s = self._card, self._session
        if frame in (b"\x26", b"\x52"):  # REQA / WUPA: a new sense round
            self.polls += 1
            if card is None:
                return None
            if self._dropping:
                self._dropping = False
                card.dropouts -= 1
                return None
            self.answered += 1
            uid = card.next_uid() if card.next_uid else card.uid
            self._session = _Session(uid=uid)
            assert card.atqa is not None
            return card.atqa
        if card is None or self._dropping:
            return None
        parts = cascade_parts(s.uid)
        if len(frame) == 2 and frame[0] in SEL and frame[1] == 0x20:  # anticollision
            level = SEL.index(frame[0])
            if level < len(parts):
                return parts[level] + bytes([bcc(parts[level])])
            return None
        if len(frame) == 7 and frame[0] in SEL and frame[1] == 0x70:  # select
            level = SEL.index(frame[0])
            if level >= len(parts) or frame[2:7] != parts[level] + bytes([bcc(parts[level])]):
                return None
            if level + 1 < len(parts):
                return bytes([SAK_CASCADE])
            s.active = True
            self._dropping = card.dropouts > 0
            return bytes([card.sak & ~SAK_CASCADE & 0xFF])
        if s.active and frame[0] == 0x30 and len(frame) == 2 and card.memory:  # T2T READ
            start = frame[1] * 4
            if start >= len(card.memory):
                return b"\x00"  # NAK
            wrapped = card.memory + card.memory
            return wrapped[start : start + 16]
        s.active = False  # anything else: a real tag goes mute and back to idle
        return None
