"""Differential tests (host CPU vs emu) for the shifts and rotates:
group 2 (C0 C1 D0 D1 D2 D3 /0../7) and SHLD/SHRD (0F A4 A5 AC AD).

Flags are masked only where the SDM leaves them undefined: AF after a
shift with a non-zero count, OF unless the masked count is 1, CF of SHL/SHR
when the count is >= the operand width, everything after a 16-bit
SHLD/SHRD with a count above 16 (whose result is undefined too)."""
import random

import pytest

import difftest
from arith_helpers import (ARITH, AF, BITS, CF, OF, REGS, SIZES, imm_bytes, insn, mem_setup,
                           pick_base, pick_reg, rand_flags, rand_regs, run_form, size_pfx)

NAMES = ("ROL", "ROR", "RCL", "RCR", "SHL", "SHR", "SAL", "SAR")
N = 200


def counts_for(rng, sz, i):
    """Raw count byte: cycle through the edges, then random."""
    bits = BITS[sz]
    edges = [0, 1, 2, bits - 1, bits, bits + 1, 31, 32, 33, 63, 64, 65, 0xFF, 0x80, 0x21, 9, 17]
    if i < len(edges):
        return edges[i] & 0xFF
    return rng.choice([rng.randrange(0, 256), rng.randrange(0, bits + 2)])


def grp2_mask(op, sz, raw):
    bits = BITS[sz]
    n = raw & (0x3F if sz == 8 else 0x1F)
    if n == 0:
        return ARITH
    m = ARITH
    if op >= 4:                 # shifts: AF undefined
        m &= ~AF
    if n != 1:
        m &= ~OF
    if op in (4, 5, 6) and n >= bits:
        m &= ~CF
    return m


def make_grp2(rng, op, sz, kind, mem):
    """kind: 'imm' (C0/C1), 'one' (D0/D1), 'cl' (D2/D3)."""
    base_opc = {"imm": 0xC0, "one": 0xD0, "cl": 0xD2}[kind] + (0 if sz == 1 else 1)
    pfx, w = size_pfx(sz)

    def make(i):
        regs = rand_regs(rng)
        raw = 1 if kind == "one" else counts_for(rng, sz, i)
        if kind == "cl":
            regs["rcx"] = (regs["rcx"] & ~0xFF) | raw
        imm = imm_bytes(raw, 1) if kind == "imm" else b""
        kw = {"flags_mask": grp2_mask(op, sz, raw)}
        if mem:
            base = pick_base(rng, avoid=(1,))
            m, scratch, _ = mem_setup(rng, regs, base)
            code = insn(bytes([base_opc]), op, mem=m, w=w, pfx=pfx, imm=imm)
            kw["scratch"] = scratch
        else:
            rm = pick_reg(rng, allow_rsp=(sz == 1))
            rex = sz == 1 and rng.random() < 0.5
            code = insn(bytes([base_opc]), op, rm, w=w, rex=rex, pfx=pfx, imm=imm)
        return code, regs, rand_flags(rng), kw
    return make


@difftest.needs_native
@pytest.mark.parametrize("op", range(8), ids=NAMES)
def test_group2(op):
    rng = random.Random(1000 + op)
    for sz in SIZES:
        for kind in ("imm", "one", "cl"):
            for mem in (False, True):
                form = "%s %s%d, %s" % (NAMES[op], "m" if mem else "r", BITS[sz],
                                        {"imm": "imm8", "one": "1", "cl": "CL"}[kind])
                run_form(form, N, make_grp2(rng, op, sz, kind, mem))


def make_dshift(rng, right, sz, use_cl, mem):
    opc = (0xAC if right else 0xA4) + (1 if use_cl else 0)
    pfx, w = size_pfx(sz)
    bits = BITS[sz]

    def make(i):
        regs = rand_regs(rng)
        raw = counts_for(rng, sz, i)
        if use_cl:
            regs["rcx"] = (regs["rcx"] & ~0xFF) | raw
        imm = b"" if use_cl else imm_bytes(raw, 1)
        n = raw & (0x3F if sz == 8 else 0x1F)
        kw = {"flags_mask": ARITH if n == 0 else ARITH & ~AF & ~(0 if n == 1 else OF)}
        undefined = n > bits
        src = pick_reg(rng, avoid=(1,) if use_cl else ())
        if mem:
            base = pick_base(rng, avoid=(1, src))
            m, scratch, _ = mem_setup(rng, regs, base)
            code = insn(bytes([0x0F, opc]), src, mem=m, w=w, pfx=pfx, imm=imm)
            if undefined:                 # result undefined: nothing to compare in memory
                return insn(bytes([0x0F, opc]), src, 0, w=w, pfx=pfx, imm=imm), regs, \
                    rand_flags(rng), {"flags_mask": 0, "ignore_regs": ("rax",)}
            kw["scratch"] = scratch
        else:
            rm = pick_reg(rng, avoid=(1,) if use_cl else ())
            code = insn(bytes([0x0F, opc]), src, rm, w=w, pfx=pfx, imm=imm)
            if undefined:
                kw = {"flags_mask": 0, "ignore_regs": (REGS[rm],)}
        return code, regs, rand_flags(rng), kw
    return make


@difftest.needs_native
@pytest.mark.parametrize("right", (False, True), ids=("SHLD", "SHRD"))
def test_double_shift(right):
    rng = random.Random(2000 + right)
    for sz in (2, 4, 8):
        for use_cl in (False, True):
            for mem in (False, True):
                form = "%s %s%d, r%d, %s" % ("SHRD" if right else "SHLD", "m" if mem else "r",
                                             BITS[sz], BITS[sz], "CL" if use_cl else "imm8")
                run_form(form, N, make_dshift(rng, right, sz, use_cl, mem))


@difftest.needs_native
def test_count_zero_keeps_flags_and_zero_extends():
    """Masked count 0 (CL = 0, 32, 64...) changes no flag; a 32-bit register
    destination is still zero-extended."""
    rng = random.Random(3)
    n = 0
    for op in range(8):
        for sz in SIZES:
            pfx, w = size_pfx(sz)
            for raw in (0, 32, 64, 96, 128, 0xE0) if sz != 8 else (0, 64, 128, 0xC0):
                for fl in (0x202, 0x202 | ARITH):
                    regs = rand_regs(rng)
                    regs["rcx"] = raw
                    code = insn(bytes([0xD2 if sz == 1 else 0xD3]), op, 0, w=w, pfx=pfx)
                    difftest.check(code, regs, fl, flags_mask=ARITH)
                    n += 1
    difftest.covered("group 2 count 0", n)


def test_shift_fault_leaves_state():
    """A shift of an unmapped memory operand faults (#PF) without touching flags."""
    code = bytes.fromhex("48d3 23".replace(" ", ""))  # shl qword [rbx], cl
    ex, v = difftest.emu_only(code, {"rbx": 0x7ff000000000, "rcx": 3})
    assert ex.name == "EXCEPTION" and ex.vector == 14


@difftest.needs_native
@pytest.mark.parametrize("right", (False, True), ids=("SHLD", "SHRD"))
def test_double_shift_16bit_count_above_16(right):
    """16-bit SHLD/SHRD with a count of 17..31: the SDM calls result and flags
    undefined; emu follows the host's vendor (Intel shifts dest:src:dest,
    AMD rotates the source in), so result, CF, SF, ZF and PF match the host
    (AF and OF stay undefined, as for any count above 1)."""
    rng = random.Random(4000 + right)
    for use_cl in (False, True):
        for mem in (False, True):
            opc = (0xAC if right else 0xA4) + (1 if use_cl else 0)

            def make(i, use_cl=use_cl, mem=mem, opc=opc):
                regs = rand_regs(rng)
                raw = 17 + i % 15 if i < 60 else rng.choice((17, 31, rng.randrange(17, 32), 0x20 | rng.randrange(17, 32)))
                if use_cl:
                    regs["rcx"] = (regs["rcx"] & ~0xFF) | raw
                imm = b"" if use_cl else imm_bytes(raw, 1)
                src = pick_reg(rng, avoid=(1,) if use_cl else ())
                kw = {"flags_mask": ARITH & ~AF & ~OF}
                if mem:
                    base = pick_base(rng, avoid=(1, src))
                    m, scratch, _ = mem_setup(rng, regs, base)
                    code = insn(bytes([0x0F, opc]), src, mem=m, w=False, pfx=b"\x66", imm=imm)
                    kw["scratch"] = scratch
                else:
                    rm = pick_reg(rng, avoid=(1,) if use_cl else ())
                    code = insn(bytes([0x0F, opc]), src, rm, w=False, pfx=b"\x66", imm=imm)
                return code, regs, rand_flags(rng), kw
            form = "%s %s16, r16, %s (count 17-31)" % ("SHRD" if right else "SHLD", "m" if mem else "r",
                                                      "CL" if use_cl else "imm8")
            run_form(form, N, make)
