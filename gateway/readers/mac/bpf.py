"""The kernel-side filter: only ARP and DHCP frames of the untagged LAN reach Python.

A LAN carries thousands of frames a second; the few that tell who is here (ARP, and DHCP
on UDP ports 67/68) are chosen in the kernel by a classic BPF program attached to the
packet socket, so the rest never wake the event loop. The program is data, generated
once (libpcap 1.10.3, tcpdump 4.99.3) on a live Linux Ethernet interface with:

    tcpdump -i IF -dd -s 2048 '(arp or (udp and (port 67 or port 68))) and not vlan'

``not vlan`` comes last on purpose: libpcap shifts the offsets of everything after a
``vlan`` test, even a negated one. On a live interface it compiles to the kernel's
"VLAN tag present" ancillary load as well, because most drivers (veth included) strip
the tag before packet sockets see the frame: without it, ARP from every VLAN trunked to
the port would count as presence on this LAN. To have a VLAN counted, configure its
interface (``eth0.7``), where frames arrive untagged.

It accepts IPv4 and IPv6 UDP on either port (non-first IPv4 fragments are dropped) and
returns at most ``SNAPLEN`` bytes of each frame: more than any DHCP message on Ethernet.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SNAPLEN = 2048
SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>; not exported by Python's socket module
SKF_AD_VLAN_TAG_PRESENT = -0x1000 + 48  # ancillary load: 1 if the driver took a tag off

# (code, jt, jf, k) as `tcpdump -dd` prints them; `tcpdump -d` shows the assembler:
#  0 ldh [12]; jeq ARP -> 22; jeq IPv4 -> 3 else 13
#  3 IPv4: ldb [23]; jeq UDP; ldh [20]; jset 0x1fff (a later fragment) -> drop;
#    ldxb 4*([14]&0xf); sport or dport 67/68 -> 22
# 13 jeq IPv6; next header UDP; sport or dport 67/68 -> 22
# 22 ldb [vlanp]; jeq 1 -> drop; ldh [12]; jeq 0x8100/0x88a8/0x9100 -> drop
# 28 ret SNAPLEN; 29 ret 0 (drop)
FILTER: tuple[tuple[int, int, int, int], ...] = (
    (0x28, 0, 0, 0x0000000C),
    (0x15, 20, 0, 0x00000806),
    (0x15, 0, 10, 0x00000800),
    (0x30, 0, 0, 0x00000017),
    (0x15, 0, 24, 0x00000011),
    (0x28, 0, 0, 0x00000014),
    (0x45, 22, 0, 0x00001FFF),
    (0xB1, 0, 0, 0x0000000E),
    (0x48, 0, 0, 0x0000000E),
    (0x15, 12, 0, 0x00000043),
    (0x15, 11, 0, 0x00000044),
    (0x48, 0, 0, 0x00000010),
    (0x15, 9, 8, 0x00000043),
    (0x15, 0, 15, 0x000086DD),
    (0x30, 0, 0, 0x00000014),
    (0x15, 0, 13, 0x00000011),
    (0x28, 0, 0, 0x00000036),
    (0x15, 4, 0, 0x00000043),
    (0x15, 3, 0, 0x00000044),
    (0x28, 0, 0, 0x00000038),
    (0x15, 1, 0, 0x00000043),
    (0x15, 0, 7, 0x00000044),
    (0x30, 0, 0, SKF_AD_VLAN_TAG_PRESENT & 0xFFFFFFFF),
    (0x15, 5, 0, 0x00000001),
    (0x28, 0, 0, 0x0000000C),
    (0x15, 3, 0, 0x00008100),
    (0x15, 2, 0, 0x000088A8),
    (0x15, 1, 0, 0x00009100),
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
