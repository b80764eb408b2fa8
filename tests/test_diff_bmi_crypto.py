"""Differential tests (host CPU vs emu): BMI1 and BMI2 (every form, 32 and
64 bits, register and memory operands, edge values), the legacy-encoded
AES-NI, PCLMULQDQ and SHA instructions, and FSGSBASE. (The VEX.128 AES and
PCLMULQDQ forms are in test_diff_avx.py.)"""
from __future__ import annotations

import random

import pytest

import difftest
import native
import sse_helpers as su
import vex_helpers as vh
from test_diff_avx import iced_len

GPRS = [r for r in range(16) if r not in (4, 6)]
NAMES = native.REG_NAMES
CF, PF, AF, ZF, SF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x800
ARITH = CF | PF | AF | ZF | SF | OF


def host_flags(*names):
    try:
        with open("/proc/cpuinfo") as f:
            fl = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return all(n in fl for n in names)


# (name, map, pp, opc, /n or None, operands: which of reg / vvvv / rm are used, imm, defined flags)
BMI = [
    ("andn", 2, 0, 0xF2, None, "r,v,m", False, ZF | SF | CF | OF),
    ("blsr", 2, 0, 0xF3, 1, "v,m", False, ZF | SF | CF | OF),
    ("blsmsk", 2, 0, 0xF3, 2, "v,m", False, ZF | SF | CF | OF),
    ("blsi", 2, 0, 0xF3, 3, "v,m", False, ZF | SF | CF | OF),
    ("bextr", 2, 0, 0xF7, None, "r,m,v", False, ZF | CF | OF),
    ("bzhi", 2, 0, 0xF5, None, "r,m,v", False, ZF | SF | CF | OF),
    ("pdep", 2, 3, 0xF5, None, "r,v,m", False, 0),
    ("pext", 2, 2, 0xF5, None, "r,v,m", False, 0),
    ("mulx", 2, 3, 0xF6, None, "r,v,m", False, 0),
    ("rorx", 3, 3, 0xF0, None, "r,m", True, 0),
    ("sarx", 2, 2, 0xF7, None, "r,m,v", False, 0),
    ("shlx", 2, 1, 0xF7, None, "r,m,v", False, 0),
    ("shrx", 2, 3, 0xF7, None, "r,m,v", False, 0),
]


def gpr_value(rng):
    if rng.random() < 0.3:
        return rng.choice((0, 1, 2, 0xFF, 0x8000, 0xFFFFFFFF, 0x80000000, 1 << 63, (1 << 64) - 1,
                           0x0000FF00, 0x1F08, 0x3F3F, 0x2010, rng.randrange(0, 80) | rng.randrange(0, 80) << 8))
    return rng.getrandbits(64)


@pytest.mark.skipif(not (native.available() and host_flags("bmi1", "bmi2")), reason="needs a host with BMI1/BMI2")
@pytest.mark.parametrize("form", BMI, ids=lambda f: f[0])
def test_bmi(form):
    name, opmap, pp, opc, grp, ops, imm, defined = form
    rng = random.Random(hash(name) & 0xFFFF)
    addr, buf = vh.scratch()
    n = 0
    for w in (0, 1):
        for mem in (False, True):
            for _ in range(60):
                reg = grp if grp is not None else rng.choice(GPRS)
                vvvv = rng.choice(GPRS) if "v" in ops else 0
                rm = rng.choice(GPRS)
                regs = {NAMES[i]: gpr_value(rng) for i in GPRS}
                regs["rsi"] = addr + 64
                scr = None
                if mem:
                    init = gpr_value(rng).to_bytes(8, "little") * 4
                    scr = [(addr, buf, bytes(64) + init)]
                code = vh.vex(opmap, pp, opc, reg, None if mem else rm, vvvv, 0, w,
                              mem=vh.MEM_RSI if mem else None, imm=rng.randrange(256) if imm else None)
                assert iced_len(code) == len(code), code.hex()
                difftest.check(code, regs, 0x202 | (rng.getrandbits(12) & 0x8D5), flags_mask=defined,
                               scratch=scr, note=name)
                n += 1
    difftest.covered("%s r32/r64 (reg, mem)" % name.upper(), n)


@pytest.mark.skipif(not (native.available() and host_flags("aes", "pclmulqdq")), reason="needs AES-NI")
@pytest.mark.parametrize("name,opmap,opc,imm", [("aesenc", 2, 0xDC, None), ("aesenclast", 2, 0xDD, None),
                                                ("aesdec", 2, 0xDE, None), ("aesdeclast", 2, 0xDF, None),
                                                ("aesimc", 2, 0xDB, None), ("aeskeygenassist", 3, 0xDF, "rand"),
                                                ("pclmulqdq", 3, 0x44, "rand")])
def test_aes_pclmul(name, opmap, opc, imm):
    su.run_form(name, 0x66, opmap, opc, "int", 60, hash(name) & 0xFFFF, imm=imm)


@pytest.mark.skipif(not (native.available() and host_flags("sha_ni")), reason="needs the SHA extensions")
@pytest.mark.parametrize("name,opmap,opc,imm", [("sha1nexte", 2, 0xC8, None), ("sha1msg1", 2, 0xC9, None),
                                                ("sha1msg2", 2, 0xCA, None), ("sha256rnds2", 2, 0xCB, None),
                                                ("sha256msg1", 2, 0xCC, None), ("sha256msg2", 2, 0xCD, None),
                                                ("sha1rnds4", 3, 0xCC, "rand")])
def test_sha(name, opmap, opc, imm):
    su.run_form(name, None, opmap, opc, "int", 60, hash(name) & 0xFFFF, imm=imm)


@pytest.mark.skipif(not (native.available() and host_flags("fsgsbase")), reason="needs FSGSBASE")
def test_fsgsbase_read():
    """RDFSBASE/RDGSBASE r32/r64: the host process's own FS base (glibc's TCB)
    and GS base are what emu reads back when given the same bases."""
    rng = random.Random(3)
    bases = {}
    for w in (1, 0):                      # the 64-bit reads first: they give the full bases
        for sub in (0, 1):
            for _ in range(10):
                r = rng.choice(GPRS)
                code = (b"\xF3" + (bytes((0x48 | (r >> 3),)) if w else (bytes((0x41,)) if r >= 8 else b"")) +
                        bytes((0x0F, 0xAE, 0xC0 | (sub << 3) | (r & 7))))
                regs = {NAMES[i]: rng.getrandbits(64) for i in GPRS}
                res = native.run(code, regs)
                if w:
                    bases[sub] = res.regs[NAMES[r]]
                side = difftest.emu_side()
                v = side.m.vcpu
                v.set_seg_base(4 + sub, bases[sub])
                ex = side.run(code, res.code_addr, regs, 0x202, [], 1)
                v.set_seg_base(4 + sub, 0)
                assert ex.name == "BUDGET"
                assert v.get_gpr(r) == res.regs[NAMES[r]], (code.hex(), hex(v.get_gpr(r)), hex(res.regs[NAMES[r]]))
    difftest.covered("RDFSBASE/RDGSBASE", 40)


def test_fsgsbase_write_and_rules():
    """WRFSBASE/WRGSBASE set the base (a non-canonical one is #GP(0)), the
    32-bit forms zero-extend; #UD with CR4.FSGSBASE clear or without the
    CPUID bit (x86-64-v3 model)."""
    import emu
    m = emu.Machine(1 << 22)
    m.map(0x1000, 0x1000)
    v = m.vcpu
    assert v.cr4 & (1 << 16)                       # user mode: enabled, as Linux does
    def run(code, **regs):
        m.write(0x1000, code)
        for k, val in regs.items():
            setattr(v, k, val)
        v.rip = 0x1000
        return v.run(1)
    assert run(bytes.fromhex("f3480faed0"), rax=0x7f0012345678).name == "BUDGET"        # wrfsbase rax
    assert v.fs_base == 0x7f0012345678
    assert run(bytes.fromhex("f3480faec1"), rcx=0).name == "BUDGET" and v.rcx == 0x7f0012345678
    assert run(bytes.fromhex("f30faed8"), rax=0xFFFFFFFF12345678).name == "BUDGET"      # wrgsbase eax
    assert v.get_seg_base(5) == 0x12345678
    ex = run(bytes.fromhex("f3480faed0"), rax=0x0000800000000000)                       # non-canonical
    assert ex.name == "EXCEPTION" and ex.vector == 13
    v.cr4 = v.cr4 & ~(1 << 16)
    ex = run(bytes.fromhex("f3480faec1"))
    assert ex.name == "EXCEPTION" and ex.vector == 6
    m3 = emu.Machine(1 << 22, cpu="x86-64-v3")
    assert not m3.vcpu.cr4 & (1 << 16) and not m3.vcpu.cpuid(7, 0)[1] & 1
