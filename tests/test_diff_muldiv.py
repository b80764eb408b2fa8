"""Differential tests (host CPU vs emu) for MUL/IMUL (F6/F7 /4 /5, 0F AF,
69, 6B) and DIV/IDIV (F6/F7 /6 /7), plus the #DE cases (checked in emu
alone: the host would take the fault).

Flags: after MUL/IMUL only CF and OF are defined; after DIV/IDIV none."""
import random

import pytest

import difftest
from arith_helpers import (BITS, CF, OF, REGS, SIZES, imm_bytes, insn, mem_setup, pick_base,
                           rand_flags, rand_regs, run_form, size_pfx)

N = 200
MULF = CF | OF


def sx(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def operand_value(rng, bits, i):
    edges = difftest.edge_values(bits)
    if i < len(edges):
        return edges[i]
    return difftest.random_value(rng, bits) & ((1 << bits) - 1)


def place(regs, idx, sz, rex, val):
    """Write val into register operand idx of size sz (AH..BH without REX)."""
    if sz == 1 and not rex and 4 <= idx < 8:
        name = REGS[idx - 4]
        regs[name] = (regs[name] & ~0xFF00) | ((val & 0xFF) << 8)
    else:
        m = (1 << (8 * sz)) - 1
        regs[REGS[idx]] = (regs[REGS[idx]] & ~m) | (val & m)


def mem_write_val(scratch_list, addr, val, sz):
    a0, buf, init = scratch_list[0]
    init = bytearray(init)
    init[addr - a0:addr - a0 + sz] = (val & ((1 << (8 * sz)) - 1)).to_bytes(sz, "little")
    scratch_list[0] = (a0, buf, bytes(init))


def make_onearg(rng, ext, sz, mem, ops=None):
    """F6/F7 /ext with the source operand set from ops(i) -> (rax, rdx, src)
    (or random values)."""
    pfx, w = size_pfx(sz)
    opc = bytes([0xF6 if sz == 1 else 0xF7])
    bits = BITS[sz]

    def make(i):
        regs = rand_regs(rng)
        if ops:
            a, d, s = ops(i)
            place(regs, 0, 2 if sz == 1 else sz, False, a)
            if sz > 1:
                place(regs, 2, sz, False, d)
        else:
            place(regs, 0, sz, False, operand_value(rng, bits, i))
            s = operand_value(rng, bits, (i * 7) % 50)
        kw = {"flags_mask": MULF if ext < 6 else 0}
        if mem:
            base = pick_base(rng, avoid=(0, 2))
            m, scratch, addr = mem_setup(rng, regs, base)
            mem_write_val(scratch, addr, s, sz)
            kw["scratch"] = scratch
            code = insn(opc, ext, mem=m, w=w, pfx=pfx)
        else:
            rex = sz == 1 and rng.random() < 0.5
            avoid = (0, 2) if (sz > 1 or rex) else (0, 2, 4)
            rm = rng.choice([k for k in range(16) if k not in avoid and k != 4])
            if sz == 1 and not rex and rm >= 8:
                rex = True
            place(regs, rm, sz, rex, s)
            code = insn(opc, ext, rm, w=w, rex=rex, pfx=pfx)
        return code, regs, rand_flags(rng), kw
    return make


@difftest.needs_native
@pytest.mark.parametrize("ext", (4, 5), ids=("MUL", "IMUL"))
def test_mul_one_operand(ext):
    rng = random.Random(10 + ext)
    for sz in SIZES:
        for mem in (False, True):
            run_form("%s %s%d" % ("MUL" if ext == 4 else "IMUL", "m" if mem else "r", BITS[sz]),
                     N, make_onearg(rng, ext, sz, mem))


def div_ops(rng, sz, signed):
    """Dividend/divisor pairs whose quotient fits (no #DE)."""
    bits = BITS[sz]
    m = (1 << bits) - 1

    def ops(i):
        while True:
            k = rng.random()
            if k < 0.3:
                s = rng.choice(difftest.edge_values(bits)) or 1
            else:
                s = rng.getrandbits(rng.randint(1, bits)) or 1
            if signed:
                sd = sx(s, bits)
                lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
                q = rng.choice([lo, hi, 0, 1, -1, rng.randint(lo, hi), rng.randint(-100, 100)])
                r = rng.randrange(abs(sd))
                if rng.random() < 0.5:
                    r = -r
                n = q * sd + r
                if n and (n < 0) != (r < 0) and r:
                    r = -r
                    n = q * sd + r
                # the remainder takes the dividend's sign; keep only consistent pairs
                if n == 0 or r == 0 or (n < 0) == (r < 0):
                    if abs(n) < (1 << (2 * bits - 1)) and lo <= int(n / sd) <= hi:
                        break
            else:
                q = rng.choice([m, 0, 1, rng.getrandbits(bits)])
                r = rng.randrange(s)
                n = q * s + r
                break
        n &= (1 << (2 * bits)) - 1
        return n & m if sz > 1 else n, n >> bits, s
    return ops


@difftest.needs_native
@pytest.mark.parametrize("ext", (6, 7), ids=("DIV", "IDIV"))
def test_div(ext):
    rng = random.Random(20 + ext)
    for sz in SIZES:
        for mem in (False, True):
            run_form("%s %s%d" % ("DIV" if ext == 6 else "IDIV", "m" if mem else "r", BITS[sz]),
                     N, make_onearg(rng, ext, sz, mem, div_ops(rng, sz, ext == 7)))


def make_imul2(rng, sz, form, mem):
    """form: 'AF' (reg *= r/m), '69' (reg = r/m * imm16/32), '6B' (imm8)."""
    pfx, w = size_pfx(sz)
    bits = BITS[sz]

    def make(i):
        regs = rand_regs(rng)
        reg = rng.choice([k for k in range(16) if k != 4])
        a = operand_value(rng, bits, i)
        b = operand_value(rng, bits, (i * 5 + 3) % 60)
        if form == "AF":
            opc, imm = b"\x0f\xaf", b""
        elif form == "69":
            n = 2 if sz == 2 else 4
            opc, imm = b"\x69", imm_bytes(difftest.random_value(rng, 8 * n), n)
        else:
            opc, imm = b"\x6b", imm_bytes(difftest.random_value(rng, 8), 1)
        place(regs, reg, sz, True, a)
        kw = {"flags_mask": MULF}
        if mem:
            base = pick_base(rng, avoid=(reg,))
            m, scratch, addr = mem_setup(rng, regs, base)
            mem_write_val(scratch, addr, b, sz)
            kw["scratch"] = scratch
            code = insn(opc, reg, mem=m, w=w, pfx=pfx, imm=imm)
        else:
            rm = rng.choice([k for k in range(16) if k != 4])
            if rm != reg:
                place(regs, rm, sz, True, b)
            code = insn(opc, reg, rm, w=w, pfx=pfx, imm=imm)
        return code, regs, rand_flags(rng), kw
    return make


@difftest.needs_native
@pytest.mark.parametrize("form", ("AF", "69", "6B"))
def test_imul_multi_operand(form):
    rng = random.Random(hash(form) & 0xFFFF)
    for sz in (2, 4, 8):
        for mem in (False, True):
            name = {"AF": "IMUL r%d, %s%d", "69": "IMUL r%d, %s%d, imm", "6B": "IMUL r%d, %s%d, imm8"}[form]
            run_form(name % (BITS[sz], "m" if mem else "r", BITS[sz]), N, make_imul2(rng, sz, form, mem))


# ---- #DE (emu only) ----

def _de_cases():
    """(code, regs, why) for each size: divide by zero, quotient overflow,
    IDIV of the most negative dividend by -1."""
    out = []
    for sz in SIZES:
        pfx, w = size_pfx(sz)
        bits = BITS[sz]
        opc = bytes([0xF6 if sz == 1 else 0xF7])
        for ext in (6, 7):
            div = insn(opc, ext, 3, w=w, pfx=pfx)        # DIV/IDIV bl/bx/ebx/rbx
            m = (1 << bits) - 1
            if sz == 1:
                out.append((div, {"rax": 0x1234, "rbx": 0}, "zero"))
                out.append((div, {"rax": 0x1234, "rbx": 0x12}, "overflow"))
                if ext == 7:
                    out.append((div, {"rax": 0x8000, "rbx": 0xFF}, "min/-1"))
                    out.append((div, {"rax": 0x0080, "rbx": 0x01}, "+128"))
                    out.append((div, {"rax": 0xFF7F, "rbx": 0x01}, "-129"))
            else:
                out.append((div, {"rax": 5, "rdx": 0, "rbx": 0}, "zero"))
                out.append((div, {"rax": 0, "rdx": 7, "rbx": 7 if ext == 6 else 3}, "overflow"))
                out.append((div, {"rax": 0, "rdx": m, "rbx": m if ext == 6 else 0}, "hi"))
                if ext == 7:
                    out.append((div, {"rax": 0, "rdx": 1 << (bits - 1), "rbx": m}, "min/-1"))
                    out.append((div, {"rax": 1 << (bits - 1), "rdx": 0, "rbx": 1}, "+2^(n-1)"))
                    out.append((div, {"rax": 1 << (bits - 1), "rdx": m, "rbx": m}, "-2^(n-1)/-1"))
                    out.append((div, {"rax": (1 << (bits - 1)) - 1, "rdx": m, "rbx": 1}, "below min"))
                    out.append((div, {"rax": 0, "rdx": 1, "rbx": 2}, "2^n/2"))
    return out


def BITS_OF_CODE(code):
    return 64 if code[0] & 0xF8 == 0x48 else 32


def test_divide_error():
    n = 0
    for code, regs, why in _de_cases():
        rng = random.Random(len(code) * 131 + len(why))
        for k in range(4):
            regs2 = dict(regs)
            if k and BITS_OF_CODE(code) < 64:
                # junk above the operand size must not matter
                for name in ("rax", "rdx", "rbx"):
                    if name in regs2:
                        regs2[name] |= rng.getrandbits(32) << 32
            ex, v = difftest.emu_only(code, regs2)
            assert ex.name == "EXCEPTION" and ex.vector == 0, (code.hex(), regs, why, ex)
            assert v.rip == 0x10000000, "#DE is a fault: RIP stays on the instruction"
            for name, val in regs2.items():
                if name != "rsp":
                    assert getattr(v, name) == val, (code.hex(), why, name)
            n += 1
    difftest.covered("DIV/IDIV #DE", n)


@difftest.needs_native
def test_idiv_boundaries_native():
    """The quotient limits themselves do not fault."""
    n = 0
    for sz in SIZES:
        pfx, w = size_pfx(sz)
        bits = BITS[sz]
        m = (1 << bits) - 1
        opc = bytes([0xF6 if sz == 1 else 0xF7])
        code = insn(opc, 7, 3, w=w, pfx=pfx)
        cases = []
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        for n_, d in ((lo, 1), (hi, 1), (-hi, -1), (lo * 2, 2), (hi * 2 + 1, 2), (lo * 3 - 2, 3),
                      (1 << (bits - 1), -1), (7, -2), (-7, 2), (-7, -2)):
            cases.append((n_, d))
        for n_, d in cases:
            nn = n_ & ((1 << (2 * bits)) - 1)
            regs = {"rbx": d & m}
            if sz == 1:
                regs["rax"] = nn
            else:
                regs["rax"], regs["rdx"] = nn & m, nn >> bits
            difftest.check(code, regs, 0x202, flags_mask=0)
            n += 1
    difftest.covered("IDIV quotient limits", n)
