"""A small encoder for the ACPI Machine Language (ACPI 6.4, chapter 20, "AML
Specification"): the named objects, packages, buffers and resource
descriptors (chapter 6.4) a DSDT needs to describe fixed devices. Only what
our tables use; every encoding follows the grammar's productions."""
from __future__ import annotations

import struct

ZERO_OP, ONE_OP, ONES_OP = 0x00, 0x01, 0xFF
BYTE_PREFIX, WORD_PREFIX, DWORD_PREFIX, STRING_PREFIX, QWORD_PREFIX = 0x0A, 0x0B, 0x0C, 0x0D, 0x0E
NAME_OP, SCOPE_OP, BUFFER_OP, PACKAGE_OP, METHOD_OP, RETURN_OP = 0x08, 0x10, 0x11, 0x12, 0x14, 0xA4
EXT_OP_PREFIX, DEVICE_OP = 0x5B, 0x82
DUAL_NAME_PREFIX, MULTI_NAME_PREFIX, ROOT_CHAR, PARENT_PREFIX = 0x2E, 0x2F, 0x5C, 0x5E


def pkg_length(n: int) -> bytes:
    """PkgLength for a body of n bytes (the encoding counts its own bytes)."""
    if n + 1 < 0x40:
        return bytes([n + 1])
    for extra in (1, 2, 3):
        total = n + 1 + extra
        if total < 1 << (4 + 8 * extra):
            out = [(extra << 6) | (total & 0xF)]
            total >>= 4
            for _ in range(extra):
                out.append(total & 0xFF)
                total >>= 8
            return bytes(out)
    raise ValueError("AML package too large")


def name_seg(s: str) -> bytes:
    s = s.upper()
    if not 1 <= len(s) <= 4 or not (s[0].isalpha() or s[0] == "_") \
            or not all(ch.isalnum() or ch == "_" for ch in s):
        raise ValueError("bad ACPI name segment %r" % s)
    return s.ljust(4, "_").encode()


def name_string(path: str) -> bytes:
    """\\_SB.COM1 style paths: a root or parent prefix, then segments."""
    out = b""
    if path.startswith("\\"):
        out, path = bytes([ROOT_CHAR]), path[1:]
    while path.startswith("^"):
        out, path = out + bytes([PARENT_PREFIX]), path[1:]
    segs = [name_seg(p) for p in path.split(".")] if path else []
    if not segs:
        return out + b"\0"
    if len(segs) == 1:
        return out + segs[0]
    if len(segs) == 2:
        return out + bytes([DUAL_NAME_PREFIX]) + segs[0] + segs[1]
    return out + bytes([MULTI_NAME_PREFIX, len(segs)]) + b"".join(segs)


def integer(v: int) -> bytes:
    if v == 0:
        return bytes([ZERO_OP])
    if v == 1:
        return bytes([ONE_OP])
    if v < 0 or v >= 1 << 64:
        raise ValueError("AML integer out of range")
    if v < 1 << 8:
        return bytes([BYTE_PREFIX, v])
    if v < 1 << 16:
        return bytes([WORD_PREFIX]) + struct.pack("<H", v)
    if v < 1 << 32:
        return bytes([DWORD_PREFIX]) + struct.pack("<I", v)
    return bytes([QWORD_PREFIX]) + struct.pack("<Q", v)


def string(s: str) -> bytes:
    b = s.encode("ascii")
    if b"\0" in b:
        raise ValueError("NUL in an AML string")
    return bytes([STRING_PREFIX]) + b + b"\0"


def eisa_id(s: str) -> bytes:
    """EisaId("PNP0501"): three letters in 5 bits each and four hex digits, as a DWORD."""
    if len(s) != 7:
        raise ValueError("bad EISA id %r" % s)
    c = [ord(ch) - 0x40 for ch in s[:3]]
    v = (c[0] << 26) | (c[1] << 21) | (c[2] << 16) | int(s[3:], 16)
    return integer(int.from_bytes(v.to_bytes(4, "big"), "little"))


def _data(v) -> bytes:
    if isinstance(v, bytes):
        return v                          # already encoded
    if isinstance(v, bool):
        return integer(int(v))
    if isinstance(v, int):
        return integer(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (list, tuple)):
        return package(v)
    raise TypeError("cannot encode %r in AML" % (v,))


def name(n: str, value) -> bytes:
    return bytes([NAME_OP]) + name_string(n) + _data(value)


def package(items) -> bytes:
    body = bytes([len(items)]) + b"".join(_data(i) for i in items)
    return bytes([PACKAGE_OP]) + pkg_length(len(body)) + body


def buffer(data: bytes) -> bytes:
    body = integer(len(data)) + data
    return bytes([BUFFER_OP]) + pkg_length(len(body)) + body


def scope(n: str, *terms: bytes) -> bytes:
    body = name_string(n) + b"".join(terms)
    return bytes([SCOPE_OP]) + pkg_length(len(body)) + body


def device(n: str, *terms: bytes) -> bytes:
    body = name_string(n) + b"".join(terms)
    return bytes([EXT_OP_PREFIX, DEVICE_OP]) + pkg_length(len(body)) + body


def method(n: str, nargs: int, *terms: bytes, serialized: bool = False) -> bytes:
    body = name_string(n) + bytes([(nargs & 7) | (8 if serialized else 0)]) + b"".join(terms)
    return bytes([METHOD_OP]) + pkg_length(len(body)) + body


def return_(value) -> bytes:
    return bytes([RETURN_OP]) + _data(value)


# ---- resource descriptors (ACPI 6.4, 6.4.2 small and 6.4.3 large items)

def res_io(base: int, length: int, align: int = 1) -> bytes:
    """IO(Decode16, base, base, align, length)."""
    return struct.pack("<BBHHBB", 0x47, 1, base, base, align, length)


def res_irq_noflags(*irqs: int) -> bytes:
    """IRQNoFlags(){irqs}: ISA edge, active high."""
    mask = 0
    for i in irqs:
        mask |= 1 << i
    return struct.pack("<BH", 0x22, mask)


def res_memory32_fixed(base: int, length: int, writable: bool = True) -> bytes:
    return struct.pack("<BHBII", 0x86, 9, 1 if writable else 0, base, length)


def res_interrupt(gsi: int, level: bool = True, active_low: bool = False, shared: bool = False) -> bytes:
    """Interrupt(ResourceConsumer, Level/Edge, ActiveHigh/Low, Exclusive/Shared){gsi}."""
    flags = 1 | (0 if level else 2) | (4 if active_low else 0) | (8 if shared else 0)
    return struct.pack("<BHBBI", 0x89, 6, flags, 1, gsi)


def resource_template(*descs: bytes) -> bytes:
    """ResourceTemplate(){...}: the descriptors and an end tag, as a Buffer."""
    body = b"".join(descs)
    end = bytes([0x79, 0])                # checksum 0: "treated as correct"
    return buffer(body + end)
