"""The kernel-side filter: only ARP and DHCP frames reach Python.

A LAN carries thousands of frames a second; the few that tell who is here (ARP, and DHCP
on UDP ports 67/68) are chosen in the kernel by a classic BPF program attached to the
packet socket, so the rest never wake the event loop. The program is data, generated
once (libpcap 1.10.3, tcpdump 4.99.3) with:

    tcpdump -dd -s 2048 'arp or (udp and (port 67 or port 68))'

It accepts IPv4 and IPv6 UDP on either port (non-first IPv4 fragments are dropped) and
returns at most ``SNAPLEN`` bytes of each frame: more than any DHCP message on Ethernet.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SNAPLEN = 2048
SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>; not exported by Python's socket module

# (code, jt, jf, k) as `tcpdump -dd` prints them; `tcpdump -d` shows the same program
# in assembler: ldh [12]; jeq #0x806 (ARP) -> accept; jeq #0x800 (IPv4) -> proto 17,
# not a fragment, either port 67/68; jeq #0x86dd (IPv6) -> next header 17, either port.
FILTER: tuple[tuple[int, int, int, int], ...] = (
    (0x28, 0, 0, 0x0000000C),
    (0x15, 20, 0, 0x00000806),
    (0x15, 0, 10, 0x00000800),
    (0x30, 0, 0, 0x00000017),
    (0x15, 0, 18, 0x00000011),
    (0x28, 0, 0, 0x00000014),
    (0x45, 16, 0, 0x00001FFF),
    (0xB1, 0, 0, 0x0000000E),
    (0x48, 0, 0, 0x0000000E),
    (0x15, 12, 0, 0x00000043),
    (0x15, 11, 0, 0x00000044),
    (0x48, 0, 0, 0x00000010),
    (0x15, 9, 8, 0x00000043),
    (0x15, 0, 9, 0x000086DD),
    (0x30, 0, 0, 0x00000014),
    (0x15, 0, 7, 0x00000011),
    (0x28, 0, 0, 0x00000036),
    (0x15, 4, 0, 0x00000043),
    (0x15, 3, 0, 0x00000044),
    (0x28, 0, 0, 0x00000038),
    (0x15, 1, 0, 0x00000043),
    (0x15, 0, 1, 0x00000044),
    (0x06, 0, 0, SNAPLEN),
    (0x06, 0, 0, 0x00000000),
)


def attach_filter(sock: socket.socket, program: tuple[tuple[int, int, int, int], ...]) -> None:
    """``SO_ATTACH_FILTER``: hand the kernel a ``struct sock_fprog``.

    The struct holds a pointer to the instructions, so they live in a ctypes buffer that
    outlives the call (the kernel copies them during it). ``"HP"`` in native mode lays out
    ``{unsigned short len; struct sock_filter *filter;}`` with the platform's padding,
    on 32-bit Raspberry Pi OS as on 64-bit.
    """
    insns = b"".join(struct.pack("HBBI", code, jt, jf, k) for code, jt, jf, k in program)
    buf = ctypes.create_string_buffer(insns, len(insns))
    fprog = struct.pack("HP", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
