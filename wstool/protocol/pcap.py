"""Capture files for ``frame-dump --pcap``: pcap/pcapng in, TCP byte streams out.

Pure (stdlib only, no event loop). Why a small reader of our own rather than an
optional extra (dpkt, scapy, pyshark): reading the two formats and the few
link layers a loopback or LAN capture uses is ~200 lines of ``struct``, while
the libraries are either large (scapy), wrap an external tshark (pyshark), or
would still leave TCP reassembly to us (dpkt, pypcapkit's is unmaintained).
What we need from a capture is narrow: the TCP payloads of each connection in
sequence order, and that part is ours either way.

* ``read_packets`` yields the link-layer frames of a pcap (either byte order,
  micro- or nanosecond) or pcapng (SHB/IDB/EPB/SPB and the obsolete PB) file.
* ``tcp_segment`` unpacks Ethernet (with 802.1Q tags), Linux cooked (SLL, SLL2),
  BSD loopback (NULL, LOOP) and raw IPv4/IPv6 down to a TCP segment.
* ``TcpReassembler`` puts each direction of each connection back in order:
  out-of-order segments wait for the gap to fill, retransmitted and
  overlapping data is dropped (the first copy wins, as most stacks do), and
  32-bit sequence wrap-around is handled.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

from wstool.errors import ProtocolFailure

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<",  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",  # nanoseconds
    b"\xa1\xb2\x3c\x4d": ">",
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP = 0, 1, 101, 108
LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2 = 113, 228, 229, 276
# Raw IP shows up as 12 or 14 on some systems (DLT_RAW before LINKTYPE_RAW).
_RAW_LINKTYPES = frozenset({LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6})

TCP_FIN, TCP_SYN, TCP_RST = 0x01, 0x02, 0x04


# A whole capture: bytes, or a read-only mmap of the file (slices are bytes).
Buffer: TypeAlias = bytes | mmap.mmap


class CaptureError(ProtocolFailure):
    """A capture file that cannot be read (exit status 6, like other undecodable input)."""


@dataclass(frozen=True, slots=True)
class Packet:
    index: int  # 1-based, as Wireshark numbers them
    linktype: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Segment:
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    flags: int
    payload: bytes


def read_packets(data: Buffer) -> Iterator[Packet]:
    """The link-layer frames of a pcap or pcapng capture, in file order."""
    if len(data) >= 4 and struct.unpack("<I", data[:4])[0] == PCAPNG_SHB:
        yield from _read_pcapng(data)
    elif data[:4] in PCAP_MAGICS:
        yield from _read_pcap(data)
    else:
        raise CaptureError("not a pcap or pcapng capture (unknown magic number "
                           f"{data[:4].hex() or 'in an empty file'})")


def _read_pcap(data: Buffer) -> Iterator[Packet]:
    order = PCAP_MAGICS[data[:4]]
    if len(data) < 24:
        raise CaptureError("pcap file shorter than its 24-byte header")
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    pos = 24
    index = 0
    record = struct.Struct(order + "IIII")
    while pos < len(data):
        if pos + 16 > len(data):
            raise CaptureError(f"pcap record header truncated at offset {pos}")
        _sec, _frac, incl_len, _orig_len = record.unpack_from(data, pos)
        pos += 16
        if pos + incl_len > len(data):
            raise CaptureError(f"pcap record {index + 1} truncated at offset {pos}")
        index += 1
        yield Packet(index, linktype, data[pos : pos + incl_len])
        pos += incl_len


def _read_pcapng(data: Buffer) -> Iterator[Packet]:
    pos = 0
    order = "<"
    linktypes: list[int] = []
    index = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise CaptureError(f"pcapng block truncated at offset {pos}")
        block_type = struct.unpack_from(order + "I", data, pos)[0]
        if block_type == PCAPNG_SHB:
            # Each section sets its own byte order (pcapng §4.1).
            magic = data[pos + 8 : pos + 12]
            if struct.unpack("<I", magic)[0] == PCAPNG_BYTE_ORDER_MAGIC:
                order = "<"
            elif struct.unpack(">I", magic)[0] == PCAPNG_BYTE_ORDER_MAGIC:
                order = ">"
            else:
                raise CaptureError(f"pcapng section at offset {pos} has no byte-order magic")
            linktypes = []
        block_len = struct.unpack_from(order + "I", data, pos + 4)[0]
        if block_len < 12 or block_len % 4 or pos + block_len > len(data):
            raise CaptureError(f"pcapng block at offset {pos} has a bad length {block_len}")
        body = data[pos + 8 : pos + block_len - 4]
        if block_type == 1:  # Interface Description Block
            linktypes.append(struct.unpack_from(order + "H", body, 0)[0])
        elif block_type == 6:  # Enhanced Packet Block
            iface, _hi, _lo, cap_len, _orig = struct.unpack_from(order + "IIIII", body, 0)
            index += 1
            yield Packet(index, _linktype(linktypes, iface, pos), body[20 : 20 + cap_len])
        elif block_type == 3:  # Simple Packet Block: interface 0, length from the block
            orig_len = struct.unpack_from(order + "I", body, 0)[0]
            index += 1
            yield Packet(index, _linktype(linktypes, 0, pos),
                         body[4 : 4 + min(orig_len, len(body) - 4)])
        elif block_type == 2:  # obsolete Packet Block
            iface, _drops, _hi, _lo, cap_len, _orig = struct.unpack_from(order + "HHIIII",
                                                                         body, 0)
            index += 1
            yield Packet(index, _linktype(linktypes, iface, pos), body[20 : 20 + cap_len])
        pos += block_len


def _linktype(linktypes: list[int], iface: int, pos: int) -> int:
    if iface >= len(linktypes):
        raise CaptureError(f"pcapng packet at offset {pos} names unknown interface {iface}")
    return linktypes[iface]


def _ip_payload(linktype: int, frame: bytes) -> bytes | None:
    """Strip the link layer; None for anything that is not IPv4/IPv6."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        ethertype = struct.unpack_from(">H", frame, 12)[0]
        pos = 14
        while ethertype in (0x8100, 0x88A8) and len(frame) >= pos + 4:  # VLAN tags
            ethertype = struct.unpack_from(">H", frame, pos + 2)[0]
            pos += 4
        return frame[pos:] if ethertype in (0x0800, 0x86DD) else None
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        proto = struct.unpack_from(">H", frame, 14)[0]
        return frame[16:] if proto in (0x0800, 0x86DD) else None
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        proto = struct.unpack_from(">H", frame, 0)[0]
        return frame[20:] if proto in (0x0800, 0x86DD) else None
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return frame[4:] if len(frame) > 4 else None  # the family is checked by version
    if linktype in _RAW_LINKTYPES:
        return frame
    return None


def _ipv6_text(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.IPv6Address(raw))


def tcp_segment(linktype: int, frame: bytes) -> Segment | None:
    """The TCP segment inside a link-layer frame, or None (not TCP, fragment, short)."""
    ip = _ip_payload(linktype, frame)
    if not ip:
        return None
    version = ip[0] >> 4
    if version == 4:
        if len(ip) < 20:
            return None
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        frag = struct.unpack_from(">H", ip, 6)[0]
        if ip[9] != 6 or frag & 0x3FFF:  # not TCP, or an IP fragment
            return None
        src_ip = ".".join(str(b) for b in ip[12:16])
        dst_ip = ".".join(str(b) for b in ip[16:20])
        # total 0: TCP segmentation offload in captures of outgoing packets.
        tcp = ip[ihl:total] if total else ip[ihl:]
    elif version == 6:
        if len(ip) < 40:
            return None
        next_header = ip[6]
        length = struct.unpack_from(">H", ip, 4)[0]
        src_ip, dst_ip = _ipv6_text(ip[8:24]), _ipv6_text(ip[24:40])
        rest = ip[40 : 40 + length] if length else ip[40:]
        while next_header in (0, 43, 60) and len(rest) >= 8:  # extension headers
            next_header, ext_len = rest[0], (rest[1] + 1) * 8
            rest = rest[ext_len:]
        if next_header != 6:
            return None
        tcp = rest
    else:
        return None
    if len(tcp) < 20:
        return None
    src_port, dst_port, seq, _ack, off_flags = struct.unpack_from(">HHIIH", tcp, 0)
    data_offset = (off_flags >> 12) * 4
    if data_offset < 20 or data_offset > len(tcp):
        return None
    return Segment((src_ip, src_port), (dst_ip, dst_port), seq, off_flags & 0x3F,
                   tcp[data_offset:])


@dataclass
class StreamState:
    """One direction of a TCP connection being put back in order."""

    next_seq: int | None = None
    pending: dict[int, bytes] = field(default_factory=dict)
    fin_seq: int | None = None
    finished: bool = False
    delivered: int = 0

    def add(self, seq: int, flags: int, payload: bytes) -> bytes:
        """Take one segment; return the bytes that are now contiguous (maybe none)."""
        if flags & TCP_SYN:
            self.next_seq = (seq + 1) & 0xFFFFFFFF
            seq = self.next_seq
        if self.next_seq is None:  # the capture started mid-connection
            self.next_seq = seq
        if flags & TCP_FIN:
            self.fin_seq = (seq + len(payload)) & 0xFFFFFFFF
        if payload:
            offset = _seq_diff(seq, self.next_seq)
            if offset < 0:  # retransmitted or overlapping: keep only the new part
                payload = payload[-offset:]
                seq = self.next_seq
                offset = 0
            if payload:
                existing = self.pending.get(seq)
                if existing is None or len(existing) < len(payload):
                    self.pending[seq] = payload
        out = []
        while self.next_seq in self.pending:
            chunk = self.pending.pop(self.next_seq)
            out.append(chunk)
            self.next_seq = (self.next_seq + len(chunk)) & 0xFFFFFFFF
            # Drop what the new data already covers, trim what it partly covers.
            for seq_pending in list(self.pending):
                delta = _seq_diff(seq_pending, self.next_seq)
                if delta < 0:
                    piece = self.pending.pop(seq_pending)
                    if len(piece) > -delta:
                        rest = piece[-delta:]
                        if len(self.pending.get(self.next_seq, b"")) < len(rest):
                            self.pending[self.next_seq] = rest
        if self.fin_seq is not None and self.next_seq == self.fin_seq:
            self.finished = True
        data = b"".join(out)
        self.delivered += len(data)
        return data

    @property
    def gap(self) -> int | None:
        """Sequence offset of missing data, when later data is waiting behind it."""
        return self.delivered if self.pending else None


def _seq_diff(a: int, b: int) -> int:
    """``a - b`` in 32-bit sequence space (RFC 9293 §3.4: comparisons modulo 2**32)."""
    diff = (a - b) & 0xFFFFFFFF
    return diff - (1 << 32) if diff >= 1 << 31 else diff


@dataclass
class TcpConnection:
    """Both directions of one TCP connection, keyed by (a, b) endpoints."""

    number: int
    first: tuple[str, int]  # who sent the first segment we saw
    second: tuple[str, int]
    client: tuple[str, int] | None = None  # the side that sent SYN (without ACK) or GET
    streams: dict[tuple[str, int], StreamState] = field(default_factory=dict)

    def stream(self, sender: tuple[str, int]) -> StreamState:
        if sender not in self.streams:
            self.streams[sender] = StreamState()
        return self.streams[sender]


class TcpReassembler:
    """Feed segments in capture order; get back (connection, sender, new bytes)."""

    def __init__(self) -> None:
        self.connections: dict[frozenset[tuple[str, int]], TcpConnection] = {}
        self._count = 0

    def add(self, seg: Segment) -> tuple[TcpConnection, bytes]:
        key = frozenset((seg.src, seg.dst))
        conn = self.connections.get(key)
        if conn is None or (seg.flags & TCP_SYN and not seg.flags & 0x10
                            and conn.stream(seg.src).delivered):
            # A new connection (or the same ports reused after a finished one).
            self._count += 1
            conn = TcpConnection(self._count, seg.src, seg.dst)
            self.connections[key] = conn
        if conn.client is None and seg.flags & TCP_SYN and not seg.flags & 0x10:
            conn.client = seg.src
        data = conn.stream(seg.src).add(seg.seq, seg.flags, seg.payload)
        return conn, data
