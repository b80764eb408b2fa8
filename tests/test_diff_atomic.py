"""CMPXCHG, CMPXCHG8B/16B and XADD, with and without LOCK, register and
memory destinations, all operand sizes: differential against the host CPU;
the faults (#UD, #GP) in emu only."""
from __future__ import annotations

import random

import difftest
import native

CF, PF, AF, ZF, SF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x800
ARITH = CF | PF | AF | ZF | SF | OF
M64 = (1 << 64) - 1
REGS = native.REG_NAMES


def encode(opc: bytes, sz: int, reg: int, rm: int | None, *, lock=False, rex_byte=False, disp=0) -> bytes:
    """opc (after 0F) with ModRM: register rm, or [rbx+disp8] when rm is None."""
    pfx = b"\xf0" if lock else b""
    if sz == 2:
        pfx += b"\x66"
    rex = 0x40 if (rex_byte or sz == 8 or reg >= 8 or (rm or 0) >= 8) else 0
    if sz == 8:
        rex |= 8
    if reg >= 8:
        rex |= 4
    if rm is not None and rm >= 8:
        rex |= 1
    if rex:
        pfx += bytes([rex])
    if rm is None:
        modrm = bytes([0x40 | ((reg & 7) << 3) | 3, disp & 0xFF])
    else:
        modrm = bytes([0xC0 | ((reg & 7) << 3) | (rm & 7)])
    return pfx + b"\x0f" + opc + modrm


def pick_reg(rng, sz, rex_byte):
    """A register operand number that never names RSP/SPL (the stack)."""
    while True:
        r = rng.randrange(16)
        if r == 4 and (sz != 1 or rex_byte):
            continue
        if sz == 1 and not rex_byte and r >= 8:
            continue
        return r


def reg_bits(regs, r, sz, rex_byte):
    """Current value of register operand r of size sz."""
    if sz == 1 and not rex_byte and 4 <= r < 8:
        return (regs[REGS[r - 4]] >> 8) & 0xFF
    return regs[REGS[r]] & ((1 << (8 * sz)) - 1)


def random_regs(rng):
    return {name: difftest.random_value(rng, 64) for name in REGS if name != "rsp"}


def run_rm_form(rng, opc, sz, kind, cases, name, want_equal):
    """kind: 'reg', 'mem' or 'lock'."""
    addr, buf = native.scratch(64)
    bits = 8 * sz
    for i in range(cases):
        rex_byte = sz == 1 and rng.random() < 0.5
        reg = pick_reg(rng, sz, rex_byte)
        regs = random_regs(rng)
        if i < 14 * 2:
            # edge operands: rAX/reg/dest from the edge values
            edges = difftest.edge_values(bits)
            regs["rax"] = (regs["rax"] & ~((1 << bits) - 1)) | edges[i % 14]
        mem_init = rng.randbytes(64)
        if kind == "reg":
            rm = pick_reg(rng, sz, rex_byte)
            code = encode(opc, sz, reg, rm, rex_byte=rex_byte)
            if want_equal and rng.random() < 0.5:
                # make rAX equal to the destination (when they are not the same register)
                v = reg_bits(regs, rm, sz, rex_byte)
                if not (sz == 1 and not rex_byte and rm == 4):
                    regs["rax"] = (regs["rax"] & ~((1 << bits) - 1)) | v
            scratch = None
        else:
            disp = rng.randrange(0, 64 - sz)
            regs["rbx"] = addr
            if reg == 3 and not (sz == 1 and not rex_byte):
                reg = 2
            code = encode(opc, sz, reg, None, lock=(kind == "lock"), rex_byte=rex_byte, disp=disp)
            if want_equal and rng.random() < 0.5:
                v = int.from_bytes(mem_init[disp:disp + sz], "little")
                regs["rax"] = (regs["rax"] & ~((1 << bits) - 1)) | v
            scratch = [(addr, buf, mem_init)]
        difftest.check(code, regs, 0x202 | (rng.getrandbits(12) & ARITH), flags_mask=ARITH,
                       scratch=scratch, note=name)
    difftest.covered(name, cases)


@difftest.needs_native
def test_cmpxchg():
    rng = random.Random(0xC3)
    for sz in (1, 2, 4, 8):
        opc = b"\xb0" if sz == 1 else b"\xb1"
        for kind in ("reg", "mem", "lock"):
            run_rm_form(rng, opc, sz, kind, 200, "%scmpxchg r/m%d %s" % (
                "lock " if kind == "lock" else "", 8 * sz, "reg" if kind == "reg" else "mem"), True)


@difftest.needs_native
def test_xadd():
    rng = random.Random(0xADD)
    for sz in (1, 2, 4, 8):
        opc = b"\xc0" if sz == 1 else b"\xc1"
        for kind in ("reg", "mem", "lock"):
            run_rm_form(rng, opc, sz, kind, 200, "%sxadd r/m%d %s" % (
                "lock " if kind == "lock" else "", 8 * sz, "reg" if kind == "reg" else "mem"), False)


@difftest.needs_native
def test_cmpxchg8b_16b():
    rng = random.Random(0x8B16)
    addr, buf = native.scratch(64)
    for wide in (False, True):
        for lock in (False, True):
            n = 200
            for i in range(n):
                regs = random_regs(rng)
                mem_init = rng.randbytes(64)
                disp = rng.randrange(0, 48) & (~15 if wide else ~0)
                regs["rbx"] = addr if rng.random() < 0.5 else regs["rbx"]
                # [rsi+disp8] so RBX stays a free operand
                regs["rsi"] = addr
                code = (b"\xf0" if lock else b"") + (b"\x48" if wide else b"") + \
                    b"\x0f\xc7" + bytes([0x4E, disp])
                k = rng.random()
                if wide:
                    lo = int.from_bytes(mem_init[disp:disp + 8], "little")
                    hi = int.from_bytes(mem_init[disp + 8:disp + 16], "little")
                    if k < 0.5:
                        regs["rax"], regs["rdx"] = lo, hi
                    elif k < 0.7:
                        regs["rax"] = lo        # only one half equal
                else:
                    m = int.from_bytes(mem_init[disp:disp + 8], "little")
                    if k < 0.5:
                        # upper halves of RAX/RDX are ignored
                        regs["rax"] = (regs["rax"] & ~0xFFFFFFFF) | (m & 0xFFFFFFFF)
                        regs["rdx"] = (regs["rdx"] & ~0xFFFFFFFF) | (m >> 32)
                    elif k < 0.7:
                        regs["rdx"] = (regs["rdx"] & ~0xFFFFFFFF) | (m >> 32)
                difftest.check(code, regs, 0x202 | (rng.getrandbits(12) & ARITH), flags_mask=ARITH,
                               scratch=[(addr, buf, mem_init)])
            difftest.covered("%scmpxchg%s" % ("lock " if lock else "", "16b" if wide else "8b"), n)


def test_faults_emu_only():
    side = difftest.emu_side()
    data = 0x20000000
    side.ensure_mapped(data, 0x1000)
    n = 0
    # CMPXCHG16B on a misaligned address: #GP(0); CMPXCHG8B needs no alignment
    for off in (1, 4, 8, 12):
        ex, v = difftest.emu_only(b"\x48\x0f\xc7\x0e", {"rsi": data + off})
        assert ex.name == "EXCEPTION" and ex.vector == 13 and ex.error_code == 0, ex
        assert v.rip == 0x10000000
        ex, v = difftest.emu_only(b"\x0f\xc7\x0e", {"rsi": data + off})
        assert ex.name == "BUDGET", ex
        n += 2
    # register operand: #UD
    for code in (b"\x0f\xc7\xc8", b"\x48\x0f\xc7\xc9", b"\xf0\x0f\xc7\xc8"):
        ex, _ = difftest.emu_only(code)
        assert ex.name == "EXCEPTION" and ex.vector == 6, (code.hex(), ex)
        n += 1
    # LOCK with a register destination: #UD; with memory: fine
    for code in (b"\xf0\x0f\xb1\xd8", b"\xf0\x0f\xc1\xd8", b"\xf0\x0f\xb0\xd8", b"\xf0\x48\x0f\xc1\xc0"):
        ex, _ = difftest.emu_only(code)
        assert ex.name == "EXCEPTION" and ex.vector == 6, (code.hex(), ex)
        n += 1
    for code in (b"\xf0\x0f\xb1\x1e", b"\xf0\x0f\xc1\x1e", b"\xf0\x48\x0f\xc7\x0e"):
        ex, _ = difftest.emu_only(code, {"rsi": data})
        assert ex.name == "BUDGET", (code.hex(), ex)
        n += 1
    # a failed CMPXCHG still writes its destination: a read-only page faults
    # with a write #PF even when the comparison fails
    ro = 0x20100000
    side.m.map(ro, 0x1000, prot=1)
    side.mapped.add(ro)
    for code in (b"\x0f\xb1\x1e", b"\x0f\xc7\x0e", b"\x0f\xc1\x1e"):
        ex, _ = difftest.emu_only(code, {"rsi": ro, "rax": 12345})
        assert ex.name == "EXCEPTION" and ex.vector == 14 and ex.error_code & 2, (code.hex(), ex)
        n += 1
    difftest.covered("cmpxchg/xadd faults (emu)", n)
