"""Shared helpers of the VEX differential tests: VEX encoding (two- and
three-byte forms), 256-bit operand values, and the YMM starting state."""
from __future__ import annotations

import random
import struct

import native
import sse_helpers as su

PP_BYTE = {0: None, 1: 0x66, 2: 0xF3, 3: 0xF2}


def vex(opmap: int, pp: int, opc: int, reg: int, rm: int | None, vvvv: int = 0, l: int = 0, w: int = 0,
        mem: bytes | None = None, imm: int | None = None, two_byte: bool | None = None,
        x: int = 0) -> bytes:
    """VEX-encoded instruction. rm: a register (mod 11), or mem: the ModRM
    mod/rm byte pieces for a memory operand (e.g. b"\\x06" for [rsi]: mod 00
    rm 110, given as the low 3 bits + any SIB/disp bytes after ModRM:
    mem = bytes((modrm_low,)) + rest). two_byte: use C5 when possible (None:
    when possible)."""
    r_ = (reg >> 3) & 1
    b_ = 0 if mem is not None else (rm >> 3) & 1
    can2 = opmap == 1 and w == 0 and b_ == 0 and x == 0
    if two_byte is None:
        two_byte = can2
    out = bytearray()
    if two_byte:
        assert can2
        out += bytes((0xC5, ((1 - r_) << 7) | ((~vvvv & 15) << 3) | (l << 2) | pp))
    else:
        out += bytes((0xC4, ((1 - r_) << 7) | ((1 - x) << 6) | ((1 - b_) << 5) | opmap,
                      (w << 7) | ((~vvvv & 15) << 3) | (l << 2) | pp))
    out.append(opc)
    if mem is not None:
        out.append(((reg & 7) << 3) | mem[0])
        out += mem[1:]
    else:
        out.append(0xC0 | ((reg & 7) << 3) | (rm & 7))
    if imm is not None:
        out.append(imm & 0xFF)
    return bytes(out)


MEM_RSI = b"\x06"                 # [rsi]


def rand_vec(rng: random.Random, kind: str) -> bytes:
    """32 bytes of operand data: floats with specials, or integer patterns."""
    gen = su.VEC[kind]
    return gen(rng) + gen(rng)


def rand_ymm(rng: random.Random, kind: str) -> dict:
    return {i: rand_vec(rng, kind) for i in range(16)}


def ymm_regs(m, rng, kind):
    return rand_ymm(rng, kind)


_scratch = None


def scratch():
    """(address, buffer) of 3 pages: page-crossing operands end near 0x1000/0x2000."""
    global _scratch
    if _scratch is None:
        _scratch = native.scratch(3 * 4096)
    return _scratch


def f32_words(b: bytes) -> list:
    return list(struct.unpack("<%dI" % (len(b) // 4), b))
