"""Small instruction encoder and case drivers shared by the integer
differential tests (test_diff_alu/shift/muldiv/bit.py).

The host CPU is the oracle, so the encoder only has to produce valid bytes:
which register a byte-register number names (AH vs SPL) is decided by the
REX byte exactly as the hardware decides it.
"""
from __future__ import annotations

import random

import difftest
import native

REGS = native.REG_NAMES            # hardware encoding order
SIZES = (1, 2, 4, 8)
BITS = {1: 8, 2: 16, 4: 32, 8: 64}
ARITH = difftest.ARITH
CF, PF, AF, ZF, SF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x800

_scratch = None
SCRATCH_SIZE = 4096


def scratch():
    """(address, buffer) of a page of scratch memory for memory operands."""
    global _scratch
    if _scratch is None:
        _scratch = native.scratch(SCRATCH_SIZE)
    return _scratch


def rand_regs(rng: random.Random, bits: int = 64) -> dict:
    """Every GPR but RSP random (high bits matter for zero-extension)."""
    return {n: difftest.random_value(rng, bits) for n in REGS if n != "rsp"}


def rand_flags(rng: random.Random) -> int:
    return 0x202 | (rng.getrandbits(12) & ARITH)


def insn(opcode: bytes, reg: int = 0, rm: int = 0, *, mem: tuple | None = None,
         w: bool = False, rex: bool = False, pfx: bytes = b"", imm: bytes = b"",
         modrm: bool = True) -> bytes:
    """Encode pfx [REX] opcode ModRM [SIB/disp] imm.

    reg, rm: register numbers 0..15. mem: (base, disp8) gives [base + disp8]
    (mod 01; base 4/12 get a SIB byte). w: REX.W. rex: emit REX even if no
    bit is needed (turns AH..BH into SPL..DIL)."""
    rr = (reg >> 3) & 1
    base = mem[0] if mem is not None else rm
    bb = (base >> 3) & 1
    need = w or rr or bb or rex
    out = bytearray(pfx)
    if need:
        out.append(0x40 | (8 if w else 0) | (rr << 2) | bb)
    out += opcode
    if modrm:
        if mem is not None:
            out.append(0x40 | ((reg & 7) << 3) | (base & 7))
            if base & 7 == 4:
                out.append(0x24)                 # SIB: no index, base
            out.append(mem[1] & 0xFF)
        else:
            out.append(0xC0 | ((reg & 7) << 3) | (rm & 7))
    out += imm
    return bytes(out)


def size_pfx(sz: int) -> tuple[bytes, bool]:
    """(legacy prefix, REX.W) for operand size sz (1 handled by the opcode)."""
    if sz == 2:
        return b"\x66", False
    if sz == 8:
        return b"", True
    return b"", False


def imm_bytes(v: int, n: int) -> bytes:
    return (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


def pick_reg(rng: random.Random, avoid=(), allow_rsp: bool = False) -> int:
    choices = [i for i in range(16) if i not in avoid and (allow_rsp or i != 4)]
    return rng.choice(choices)


def pick_base(rng: random.Random, avoid=()) -> int:
    """A base register for a scratch memory operand (not RSP)."""
    return rng.choice([i for i in range(16) if i != 4 and i not in avoid])


def mem_setup(rng: random.Random, regs: dict, base: int, size: int = 16,
              disp: int | None = None, init: bytes | None = None):
    """Point base at scratch memory; returns (mem tuple, scratch list)."""
    addr, buf = scratch()
    if disp is None:
        disp = rng.randrange(-64, 64)
    off = 1024 + rng.randrange(0, 512)        # room on both sides
    regs[REGS[base]] = addr + off - disp
    if init is None:
        init = rng.randbytes(SCRATCH_SIZE)
    return (base, disp), [(addr, buf, init)], addr + off


def run_form(name: str, n: int, make) -> None:
    """Run n cases made by make(i) -> (code, regs, rflags, kwargs)."""
    for i in range(n):
        code, regs, rflags, kw = make(i)
        difftest.check(code, regs, rflags, **kw)
    difftest.covered(name, n)
