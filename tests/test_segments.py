"""Descriptor-checking instructions and far pointers in 64-bit mode
(emu/core/system.pxi; SDM Vol. 2 LAR, LSL, VERR, VERW, LSS/LFS/LGS, JMP,
CALL; Vol. 3A 5.8 and 5.10):

- in system mode with a real GDT (and an LDT) at CPL 0 and CPL 3: each
  instruction's success and failure paths, ZF, destinations left alone,
  faults with their error codes, far JMP/CALL (code segments and call
  gates) and the way back through RET far;
- in user mode (no GDT loaded, not system mode) descriptor reads see the
  GDT Linux gives a 64-bit process: LAR/LSL/VERR/VERW are checked against
  the host CPU on the same selectors, and LSS with the user data selector.

AMD hosts read far JMP/CALL and LSS with REX.W as m16:32 (Intel: m16:64,
which emu follows), so the m16:64 forms and far branches are emu-only."""
from __future__ import annotations

import os
import random
import struct

import pytest

import difftest
import emu
import native
from test_system_mode import (CPUID, GDT, GP, KCODE, KCS, KDATA, KDS, NOTPRESENT_SEL, FSBASE_SEL, NP, PF,
                              RSP0, SS_, TSS, TSS_LIMIT, TSS_SEL, UCODE, UCS, UCS32, UD, UDATA, UDS, UNMAPPED,
                              USP, Kernel, at, gate, tss_descriptor)

ZF = 0x40
SENTINEL = 0x1111222233334444
GATE_TARGET = KCODE + 0x3000          # the code call gates lead to (ring 0)
MAIN = KCODE + 0x2000
LDT = KDATA + 0x400

# descriptors added after the Kernel's GDT (which ends at 0x4F)
CONF0 = 0x00AF9F000000FFFF           # 0x60 conforming readable code, DPL 0, L=1
XONLY3 = 0x00AFF9000000FFFF          # 0x68 execute-only code, DPL 3, L=1
RODATA3 = 0x0041F10000002345         # 0x70 read-only data, DPL 3, byte limit 0x12345
LD_CODE3 = 0x00EFFB000000FFFF        # 0x98 code DPL 3 with L=1 and D=1
NP_CODE0 = 0x00AF1B000000FFFF        # 0xA0 code DPL 0, not present
FSDATA3 = 0x0ACFF3BCD000FFFF         # 0xC8 data DPL 3, base 0x0ABCD000
LDT_SEL, CONF_SEL, XONLY_SEL, RO_SEL, GATE3_SEL, GATE0_SEL = 0x50, 0x60, 0x68, 0x70, 0x78, 0x88
LD_SEL, NPCODE_SEL, IGATE_SEL, BADGATE_SEL, FSDATA_SEL, TSS2_SEL = 0x98, 0xA0, 0xA8, 0xB8, 0xC8, 0xD0
GDT_LIMIT = 0xDF
LDT_DATA3 = 0x00CFF3000000FFFF       # LDT entry 0 (selector 0x07)
LDT_CODE3 = 0x00AFFB000000FFFF       # LDT entry 1 (selector 0x0F)


def seg_kernel():
    k = Kernel()
    w = k.m.write
    lo, hi = tss_descriptor(LDT, 15, typ=2)
    w(KDATA + LDT_SEL, struct.pack("<QQ", lo, hi))
    for sel, d in ((CONF_SEL, CONF0), (XONLY_SEL, XONLY3), (RO_SEL, RODATA3), (LD_SEL, LD_CODE3),
                   (NPCODE_SEL, NP_CODE0), (FSDATA_SEL, FSDATA3)):
        w(KDATA + sel, struct.pack("<Q", d))
    w(KDATA + GATE3_SEL, gate(GATE_TARGET, typ=0xC, dpl=3))
    w(KDATA + GATE0_SEL, gate(GATE_TARGET, typ=0xC, dpl=0))
    w(KDATA + IGATE_SEL, gate(GATE_TARGET, typ=0xE, dpl=3))
    glo, ghi = struct.unpack("<QQ", gate(GATE_TARGET, typ=0xC, dpl=3))
    w(KDATA + BADGATE_SEL, struct.pack("<QQ", glo, ghi | (0xC << 40)))   # upper type field not 0
    lo, hi = tss_descriptor(TSS, 0x67)
    w(KDATA + TSS2_SEL, struct.pack("<QQ", lo, hi))
    w(LDT, struct.pack("<QQ", LDT_DATA3, LDT_CODE3))
    k.v.gdtr = (KDATA, GDT_LIMIT)
    k.hgp = k.handler(GP, CPUID)
    k.hnp = k.handler(NP, CPUID, slot=1)
    k.hss = k.handler(SS_, CPUID, slot=2)
    k.hpf = k.handler(PF, CPUID, slot=3)
    k.hud = k.handler(UD, CPUID, slot=4)
    return k


def desc(k, sel):
    base = LDT if sel & 4 else KDATA
    return struct.unpack("<Q", k.m.read(base + (sel & ~7), 8))[0]


def limit_of(d):
    lim = (d & 0xFFFF) | (((d >> 48) & 0xF) << 16)
    return (lim << 12) | 0xFFF if d >> 55 & 1 else lim


def run_at(k, cpl, code, rflags=0x202, **regs):
    """Run code then CPUID at CPL 0 (kernel page) or CPL 3 (user page)."""
    if cpl == 0:
        k.m.write(MAIN, code + CPUID)
        k.kernel_mode(MAIN, rflags=rflags)
        start = MAIN
    else:
        k.m.write(UCODE, code + CPUID)
        k.user_mode(rflags=rflags)
        start = UCODE
    for r, val in regs.items():
        setattr(k.v, r, val)
    return k.run(), start


# ---- LAR, LSL, VERR, VERW ----

# selector, CPL, then whether LAR, LSL, VERR, VERW succeed (SDM: visible when
# DPL >= max(CPL, RPL) or conforming code; IA-32e types: LAR code/data,
# 64-bit TSS, call gate; LSL code/data, LDT, 64-bit TSS; VERR readable,
# VERW writable data)
CASES = [
    (0, 0, 0, 0, 0, 0), (3, 3, 0, 0, 0, 0),                       # null
    (KCS, 0, 1, 1, 1, 0), (KCS, 3, 0, 0, 0, 0), (KCS | 3, 0, 0, 0, 0, 0),
    (KDS, 0, 1, 1, 1, 1), (KDS | 1, 0, 0, 0, 0, 0), (KDS, 3, 0, 0, 0, 0),
    (UCS32, 0, 1, 1, 1, 0), (UCS32 | 3, 3, 1, 1, 1, 0),
    (UDS, 3, 1, 1, 1, 1), (UDS & ~3, 3, 1, 1, 1, 1), (UDS, 0, 1, 1, 1, 1),
    (UCS, 3, 1, 1, 1, 0),
    (TSS_SEL, 0, 1, 1, 0, 0), (TSS_SEL | 3, 0, 0, 0, 0, 0), (TSS_SEL, 3, 0, 0, 0, 0),
    (NOTPRESENT_SEL, 3, 1, 1, 1, 1),                               # P is not checked
    (FSBASE_SEL, 0, 1, 1, 1, 1),
    (LDT_SEL, 0, 0, 1, 0, 0), (LDT_SEL, 3, 0, 0, 0, 0),           # LDT: LSL only
    (CONF_SEL, 0, 1, 1, 1, 0), (CONF_SEL | 3, 3, 1, 1, 1, 0),     # conforming: any CPL/RPL
    (XONLY_SEL | 3, 3, 1, 1, 0, 0), (RO_SEL | 3, 3, 1, 1, 1, 0),
    (GATE3_SEL | 3, 3, 1, 0, 0, 0), (GATE3_SEL, 0, 1, 0, 0, 0),
    (GATE0_SEL, 0, 1, 0, 0, 0), (GATE0_SEL | 3, 0, 0, 0, 0, 0), (GATE0_SEL, 3, 0, 0, 0, 0),
    (LD_SEL | 3, 3, 1, 1, 1, 0), (NPCODE_SEL, 0, 1, 1, 1, 0),
    (IGATE_SEL, 0, 0, 0, 0, 0), (IGATE_SEL | 3, 3, 0, 0, 0, 0),   # interrupt gate: never
    (BADGATE_SEL, 0, 0, 0, 0, 0),                                  # upper type field not 0
    (TSS2_SEL, 0, 1, 1, 0, 0), (TSS2_SEL, 3, 0, 0, 0, 0),
    (TSS2_SEL + 8, 0, 0, 0, 0, 0),                                 # its upper half: type 0
    (GDT_LIMIT + 1, 0, 0, 0, 0, 0), (0xFFFB, 3, 0, 0, 0, 0),      # beyond the GDT limit
    (0x07, 3, 1, 1, 1, 1), (0x0F, 3, 1, 1, 1, 0), (0x17, 3, 0, 0, 0, 0),   # the LDT
]

# (name, code with the selector in CX / at [RDX], operand size, kind)
FORMS = [
    ("lar r64", "480f02c1", 8, 0), ("lar r32", "0f02c1", 4, 0), ("lar r16", "660f02c1", 2, 0),
    ("lar r64 mem", "480f0202", 8, 0), ("lsl r64", "480f03c1", 8, 1), ("lsl r32", "0f03c1", 4, 1),
    ("lsl r16", "660f03c1", 2, 1), ("lsl r32 mem", "0f0302", 4, 1),
    ("verr", "0f00e1", 0, 2), ("verw", "0f00e9", 0, 3), ("verr mem", "0f0022", 0, 2), ("verw mem", "0f002a", 0, 3),
]


def expected_value(k, sel, osz, kind):
    d = desc(k, sel)
    v = (d >> 32) & (0xFF00 if osz == 2 else 0x00FFFF00) if kind == 0 else limit_of(d)
    if osz == 2:
        return (SENTINEL & ~0xFFFF) | (v & 0xFFFF)
    return v


def test_lar_lsl_verr_verw_in_system_mode():
    k = seg_kernel()
    v = k.v
    v.ldtr = (LDT_SEL, LDT, 15)
    flags_in = 0x202 | 0x895                 # CF PF SF OF set, ZF clear: only ZF may change
    n = 0
    for sel, cpl, *ok in CASES:
        for name, code, osz, kind in FORMS:
            k.m.write(UDATA, struct.pack("<Q", sel | 0xABCD0000))
            for zf_in in (0, ZF):
                ex, start = run_at(k, cpl, bytes.fromhex(code), rflags=flags_in | zf_in,
                                   rax=SENTINEL, rcx=sel | 0x77770000, rdx=UDATA)
                what = "%s sel %#x cpl %d" % (name, sel, cpl)
                at(ex, "CPUID", start + len(code) // 2)
                assert v.rflags & ~ZF == flags_in, what
                assert (v.rflags & ZF) == (ZF if ok[kind] else 0), what
                if kind < 2 and ok[kind]:
                    assert v.rax == expected_value(k, sel, osz, kind), (what, hex(v.rax))
                else:
                    assert v.rax == SENTINEL, what
                n += 1
    assert n == len(CASES) * len(FORMS) * 2
    # the values: LAR keeps bits 23:8 of the second doubleword, LSL scales by G
    ex, _ = run_at(k, 3, bytes.fromhex("480f02c1"), rcx=RO_SEL | 3)
    assert v.rax == 0x0041F100
    ex, _ = run_at(k, 3, bytes.fromhex("480f03c1"), rcx=RO_SEL | 3)
    assert v.rax == 0x12345
    ex, _ = run_at(k, 0, bytes.fromhex("0f03c1"), rax=SENTINEL, rcx=KDS)
    assert v.rax == 0xFFFFFFFF
    ex, _ = run_at(k, 0, bytes.fromhex("0f02c1"), rax=SENTINEL, rcx=TSS_SEL)
    assert v.rax == 0x8900
    # without an LDT an LDT selector is just not valid (no fault)
    v.ldtr = (0, 0, 0)
    for code in ("0f02c1", "0f03c1", "0f00e1", "0f00e9"):
        ex, start = run_at(k, 3, bytes.fromhex(code), rflags=0x202 | ZF, rax=SENTINEL, rcx=0x07)
        at(ex, "CPUID", start + 3)
        assert not v.rflags & ZF and v.rax == SENTINEL


def test_lar_lsl_verr_verw_faults():
    k = seg_kernel()
    v = k.v
    # a descriptor on a page that is not mapped: #PF as a supervisor read (error code 0)
    v.gdtr = (KDATA, 0x3FFF)
    for code in ("0f02c1", "0f03c1", "0f00e1", "0f00e9"):
        ex, start = run_at(k, 3, bytes.fromhex(code), rax=SENTINEL, rcx=0x3003)
        at(ex, "CPUID", k.hpf)
        assert k.frame()[0] == 0 and v.cr2 == KDATA + 0x3000 and k.frame()[1] == start
        assert v.rax == SENTINEL
    v.gdtr = (KDATA, GDT_LIMIT)
    # the selector operand in memory that is not mapped: #PF, user read
    ex, start = run_at(k, 3, bytes.fromhex("0f0202"), rdx=UNMAPPED)
    at(ex, "CPUID", k.hpf)
    assert k.frame()[0] == 4 and v.cr2 == UNMAPPED
    # a non-canonical operand address: #GP(0); LOCK: #UD
    ex, start = run_at(k, 0, bytes.fromhex("0f0302"), rdx=0x0000800000000000)
    at(ex, "CPUID", k.hgp)
    assert k.frame()[0] == 0
    for code in ("f00f02c1", "f00f03c1", "f00f00e1", "f00f00e9"):
        ex, start = run_at(k, 3, bytes.fromhex(code))
        at(ex, "CPUID", k.hud)


# ---- LSS, LFS, LGS ----

def test_load_far_pointers():
    k = seg_kernel()
    v = k.v
    ptr = UDATA + 0x100
    m = k.m
    # lfs rax, [rdx] (m16:64): FS base from the descriptor
    m.write(ptr, struct.pack("<QH", 0x123456789ABCDEF0, FSBASE_SEL))
    v.fs_base = 0x5555
    ex, start = run_at(k, 0, bytes.fromhex("480fb402"), rax=SENTINEL, rdx=ptr)
    at(ex, "CPUID", start + 4)
    assert v.rax == 0x123456789ABCDEF0 and v.get_seg_sel(4) == FSBASE_SEL and v.fs_base == 0x12345000
    # lgs ecx, [rdx] (m16:32) at CPL 3 with a DPL-3 data segment
    m.write(ptr, struct.pack("<IH", 0x89ABCDEF, FSDATA_SEL | 3))
    ex, start = run_at(k, 3, bytes.fromhex("0fb50a"), rcx=SENTINEL, rdx=ptr)
    at(ex, "CPUID", start + 3)
    assert v.rcx == 0x89ABCDEF and v.get_seg_sel(5) == FSDATA_SEL | 3 and v.gs_base == 0x0ABCD000
    # lss bx, [rdx] (m16:16): SS and the low word of RBX
    m.write(ptr, struct.pack("<HH", 0xBEEF, KDS))
    ex, start = run_at(k, 0, bytes.fromhex("660fb21a"), rbx=SENTINEL, rdx=ptr)
    at(ex, "CPUID", start + 4)
    assert v.rbx == (SENTINEL & ~0xFFFF) | 0xBEEF and v.get_seg_sel(2) == KDS
    # lgs with a null selector: GS base 0; lss with a null selector at CPL 0 (RPL 0)
    v.gs_base = 0x7777
    m.write(ptr, struct.pack("<QH", 5, 0))
    ex, start = run_at(k, 0, bytes.fromhex("480fb502 480fb21a"), rdx=ptr)
    at(ex, "CPUID", start + 8)
    assert v.gs_base == 0 and v.get_seg_sel(5) == 0 and v.get_seg_sel(2) == 0 and v.rax == 5 and v.rbx == 5

    def fails(cpl, code, sel, vector, err, reg="rax"):
        m.write(ptr, struct.pack("<QH", 0x42, sel))
        before = [v.get_seg_sel(i) for i in range(6)]
        ex, start = run_at(k, cpl, bytes.fromhex(code), rax=SENTINEL, rbx=SENTINEL, rdx=ptr)
        at(ex, "CPUID", {GP: k.hgp, NP: k.hnp, SS_: k.hss}[vector])
        assert k.frame()[0] == err and k.frame()[1] == start, (code, hex(sel))
        assert getattr(v, reg) == SENTINEL, (code, hex(sel))
        sr = {"b2": 2, "b4": 4, "b5": 5}[code[-4:-2]]
        if sr == 2:                          # the SS the handler's frame saved
            assert k.frame()[5] == (KDS if cpl == 0 else UDS), (code, hex(sel))
        else:
            assert v.get_seg_sel(sr) == before[sr], (code, hex(sel))

    fails(0, "480fb202", 3, GP, 0)                        # null SS with RPL != CPL
    fails(3, "480fb202", 3, GP, 0)                        # null SS at CPL 3
    fails(0, "480fb202", UDS, GP, UDS & ~3)               # SS: DPL != CPL
    fails(3, "480fb202", NOTPRESENT_SEL, SS_, NOTPRESENT_SEL & ~3)
    fails(0, "480fb402", XONLY_SEL, GP, XONLY_SEL)        # execute-only code into FS
    fails(0, "480fb402", NOTPRESENT_SEL, NP, NOTPRESENT_SEL & ~3)
    fails(3, "480fb502", KDS, GP, KDS)                    # DPL 0 data at CPL 3
    fails(3, "480fb502", TSS_SEL | 3, GP, TSS_SEL)        # a system descriptor
    fails(0, "480fb502", 0x200, GP, 0x200)                # beyond the GDT limit
    fails(3, "480fb502", 0x17, GP, 0x14)                  # LDT selector with no LDT
    # a register operand is #UD; a read fault leaves everything alone
    for code in ("0fb2c1", "0fb4c1", "480fb5c1"):
        ex, start = run_at(k, 0, bytes.fromhex(code))
        at(ex, "CPUID", k.hud)
    ex, start = run_at(k, 3, bytes.fromhex("0fb402"), rax=SENTINEL, rdx=UNMAPPED - 2)
    at(ex, "CPUID", k.hpf)
    assert v.rax == SENTINEL


# ---- far JMP and CALL ----

def write_ptr(k, osz, off, sel, at_=UDATA + 0x200):
    fmt = {2: "<HH", 4: "<IH", 8: "<QH"}[osz]
    k.m.write(at_, struct.pack(fmt, off, sel))
    return at_


def test_far_jmp_and_call_to_code_segments():
    k = seg_kernel()
    v = k.v
    m = k.m
    tgt = KCODE + 0x2800
    m.write(tgt, CPUID)
    # jmp far [rdx] (m16:64) to the kernel's code segment
    ptr = write_ptr(k, 8, tgt, KCS)
    ex, _ = run_at(k, 0, bytes.fromhex("48ff2a"), rdx=ptr)
    at(ex, "CPUID", tgt)
    assert v.get_seg_sel(1) == KCS and v.rsp == RSP0 - 0x100
    # call far [rdx] (m16:64): pushes CS and RIP as quadwords; retfq returns
    m.write(tgt, CPUID + bytes.fromhex("48cb"))
    ex, start = run_at(k, 0, bytes.fromhex("48ff1a"), rdx=ptr)
    at(ex, "CPUID", tgt)
    assert k.q(v.rsp, 2) == (start + 3, KCS) and v.rsp == RSP0 - 0x110
    at(k.run(), "CPUID", start + 3)
    assert v.rsp == RSP0 - 0x100 and v.get_seg_sel(1) == KCS
    # m16:32: the offset is zero-extended; doublewords pushed (CS padded with zeros); retf returns
    ptr = write_ptr(k, 4, tgt, KCS)
    m.write(tgt, CPUID + bytes.fromhex("cb"))
    ex, start = run_at(k, 0, bytes.fromhex("ff1a"), rdx=ptr)
    at(ex, "CPUID", tgt)
    assert v.rsp == RSP0 - 0x108 and struct.unpack("<II", m.read(v.rsp, 8)) == (start + 2, KCS)
    at(k.run(), "CPUID", start + 2)
    assert v.rsp == RSP0 - 0x100
    # m16:16: IP and CS as words; the target is IP-sized
    low = 0x8000
    m.map(low, 0x1000, user=False)
    m.write(low, CPUID)
    ptr = write_ptr(k, 2, low, KCS)
    ex, start = run_at(k, 0, bytes.fromhex("66ff1a"), rdx=ptr)
    at(ex, "CPUID", low)
    assert v.rsp == RSP0 - 0x104 and struct.unpack("<HH", m.read(v.rsp, 4)) == ((start + 3) & 0xFFFF, KCS)
    # conforming DPL-0 code from CPL 3: CPL stays 3, CS.RPL = 3
    utgt = UCODE + 0x800
    m.write(utgt, CPUID)
    ptr = write_ptr(k, 8, utgt, CONF_SEL)
    ex, _ = run_at(k, 3, bytes.fromhex("48ff2a"), rdx=ptr)
    at(ex, "CPUID", utgt)
    assert v.cpl == 3 and v.get_seg_sel(1) == CONF_SEL | 3
    # a 64-bit user code segment from CPL 3 (call), and back with retfq
    m.write(utgt, CPUID + bytes.fromhex("48cb"))
    ptr = write_ptr(k, 8, utgt, UCS)
    ex, start = run_at(k, 3, bytes.fromhex("48ff1a"), rdx=ptr)
    at(ex, "CPUID", utgt)
    assert k.q(v.rsp, 2) == (start + 3, UCS) and v.rsp == USP - 16
    at(k.run(), "CPUID", start + 3)
    assert v.rsp == USP and v.get_seg_sel(1) == UCS
    # a 32-bit user code segment: compatibility mode (m16:64 and m16:32 pointers;
    # the offset is 32 bits there), and back to 64-bit code with a far return
    for code, osz in (("48ff2a", 8), ("ff2a", 4)):
        m.write(utgt, CPUID)
        ptr = write_ptr(k, osz, utgt, UCS32)
        ex, _ = run_at(k, 3, bytes.fromhex(code), rdx=ptr)
        at(ex, "CPUID", utgt)
        assert v.cs32 and v.get_seg_sel(1) == UCS32 | 3
        v.cs32 = False

    def fails(cpl, code, osz, off, sel, vector, err):
        ptr = write_ptr(k, osz, off, sel)
        ex, start = run_at(k, cpl, bytes.fromhex(code), rdx=ptr)
        at(ex, "CPUID", {GP: k.hgp, NP: k.hnp, PF: k.hpf}[vector])
        f = k.frame()
        assert f[0] == err and f[1] == start and f[2] == (KCS if cpl == 0 else UCS), (code, hex(sel))
        assert f[4] == (RSP0 - 0x100 if cpl == 0 else USP), (code, hex(sel))   # nothing pushed

    for code in ("48ff2a", "48ff1a"):
        fails(0, code, 8, tgt, 0, GP, 0)                            # null selector
        fails(0, code, 8, tgt, 3, GP, 0)
        fails(3, code, 8, tgt, KCS, GP, KCS)                        # DPL 0 < CPL 3
        fails(0, code, 8, tgt, KCS | 3, GP, KCS)                    # RPL > CPL
        fails(0, code, 8, tgt, UCS, GP, UCS & ~3)                   # non-conforming DPL 3 != CPL 0
        fails(3, code, 8, utgt, LD_SEL | 3, GP, LD_SEL)             # L and D set
        fails(0, code, 8, tgt, NPCODE_SEL, NP, NPCODE_SEL)          # not present
        fails(3, code, 8, utgt, UDS, GP, UDS & ~3)                  # data segment
        fails(3, code, 8, utgt, TSS_SEL, GP, TSS_SEL)               # TSS (no task switch in IA-32e)
        fails(0, code, 8, tgt, IGATE_SEL, GP, IGATE_SEL)            # interrupt gate
        fails(0, code, 8, tgt, 0x400, GP, 0x400)                    # beyond the GDT limit
        fails(0, code, 8, 0x0000800000000000, KCS, GP, 0)           # non-canonical offset
    # the pointer not readable; the call's pushes fault: CS and RSP unchanged
    ex, start = run_at(k, 3, bytes.fromhex("48ff1a"), rdx=UNMAPPED)
    at(ex, "CPUID", k.hpf)
    ptr = write_ptr(k, 8, utgt, UCS)
    ex, start = run_at(k, 3, bytes.fromhex("48ff1a"), rdx=ptr, rsp=UNMAPPED + 0x10)
    at(ex, "CPUID", k.hpf)
    assert k.frame()[0] == 6 and k.frame()[2] == UCS and k.frame()[4] == UNMAPPED + 0x10
    # register operands: #UD
    for code in ("ffd8", "48ffd8", "ffe8", "48ffe8"):
        ex, start = run_at(k, 0, bytes.fromhex(code))
        at(ex, "CPUID", k.hud)


def test_far_call_through_call_gates():
    k = seg_kernel()
    v = k.v
    m = k.m
    # the ring-0 side: a checkpoint, then retfq back to the caller
    m.write(GATE_TARGET, CPUID + bytes.fromhex("48cb"))
    # CPL 3 -> call gate DPL 3 -> DPL-0 code: stack switch to RSP0, SS null with RPL 0
    for sr, sel in ((3, UDS), (0, UDS)):
        v.set_seg_sel(sr, sel)
    ptr = write_ptr(k, 8, 0xDEAD, GATE3_SEL | 3)          # the offset is ignored
    ex, start = run_at(k, 3, bytes.fromhex("48ff1a"), rdx=ptr)
    at(ex, "CPUID", GATE_TARGET)
    assert v.cpl == 0 and v.get_seg_sel(1) == KCS and v.get_seg_sel(2) == 0
    assert v.rsp == RSP0 - 32 and k.q(v.rsp, 4) == (start + 3, UCS, USP, UDS)
    # retfq returns to ring 3 and reloads SS:RSP
    at(k.run(), "CPUID", start + 3)
    assert v.cpl == 3 and v.rsp == USP and v.get_seg_sel(2) == UDS and v.get_seg_sel(1) == UCS
    # the same gate from CPL 0: no stack switch, CS and RIP pushed as quadwords
    ptr32 = write_ptr(k, 4, 0xDEAD, GATE3_SEL | 3, at_=UDATA + 0x300)
    ex, start = run_at(k, 0, bytes.fromhex("ff1a"), rdx=ptr32)   # m16:32: still 64-bit slots
    at(ex, "CPUID", GATE_TARGET)
    assert v.rsp == RSP0 - 0x110 and k.q(v.rsp, 2) == (start + 2, KCS)
    at(k.run(), "CPUID", start + 2)
    # JMP through the gate: same privilege only
    ex, start = run_at(k, 0, bytes.fromhex("48ff2a"), rdx=ptr)
    at(ex, "CPUID", GATE_TARGET)
    assert v.rsp == RSP0 - 0x100 and v.get_seg_sel(1) == KCS

    def fails(cpl, code, sel, vector, err, gate_code_sel=None):
        ptr = write_ptr(k, 8, 0, sel)
        ex, start = run_at(k, cpl, bytes.fromhex(code), rdx=ptr)
        at(ex, "CPUID", {GP: k.hgp, NP: k.hnp}[vector])
        assert k.frame()[0] == err and k.frame()[1] == start, (code, hex(sel))

    fails(3, "48ff2a", GATE3_SEL | 3, GP, KCS)            # jmp to a more privileged segment
    fails(3, "48ff1a", GATE0_SEL | 3, GP, GATE0_SEL)      # gate DPL < CPL
    fails(0, "48ff1a", GATE0_SEL | 3, GP, GATE0_SEL)      # gate DPL < RPL
    fails(0, "48ff1a", BADGATE_SEL, GP, BADGATE_SEL)      # upper half type field not 0
    # a not-present gate, a gate to a data segment, to a null selector, to a 32-bit segment
    for sel, gd, vector, err in ((0xE0, gate(GATE_TARGET, typ=0xC, dpl=3, present=False), NP, 0xE0),
                                 (0xE0, gate(GATE_TARGET, sel=KDS, typ=0xC, dpl=3), GP, KDS),
                                 (0xE0, gate(GATE_TARGET, sel=0, typ=0xC, dpl=3), GP, 0),
                                 (0xE0, gate(GATE_TARGET, sel=UCS32, typ=0xC, dpl=3), GP, UCS32 & ~3),
                                 (0xE0, gate(GATE_TARGET, sel=NPCODE_SEL, typ=0xC, dpl=3), NP, NPCODE_SEL),
                                 (0xE0, gate(0x0000800000000000, typ=0xC, dpl=3), GP, 0)):
        m.write(KDATA + 0xE0, gd)
        v.gdtr = (KDATA, 0xEF)
        fails(3, "48ff1a", sel | 3, vector, err)
    # the gate's 16 bytes must lie inside the GDT
    v.gdtr = (KDATA, 0xE7)
    fails(0, "48ff1a", 0xE0, GP, 0xE0)
    # a non-canonical RSP0 for the stack switch: #SS(0), nothing changed
    v.gdtr = (KDATA, GDT_LIMIT)
    m.write(TSS + 4, struct.pack("<Q", 0x0000800000000000))
    hss = k.handler(SS_, CPUID, slot=5, ist=1)
    ptr = write_ptr(k, 8, 0, GATE3_SEL | 3)
    ex, start = run_at(k, 3, bytes.fromhex("48ff1a"), rdx=ptr)
    at(ex, "CPUID", hss)
    assert k.frame()[:3] == (0, start, UCS) and k.frame()[4] == USP
    m.write(TSS + 4, struct.pack("<Q", RSP0))


# ---- user mode: Linux's GDT ----

def user_machine():
    m = emu.Machine(16 << 20, cpl=3)
    m.map(UCODE, 0x2000)
    m.map(USP - 0xF00, 0x1000)
    m.map(UDATA, 0x1000)
    return m, m.vcpu


def run_user(m, code, budget=1, **regs):
    v = m.vcpu
    m.write(UCODE, code)
    v.rip, v.rsp, v.rflags = UCODE, USP, 0x202
    for r, val in regs.items():
        setattr(v, r, val)
    return v.run(budget)


def test_user_mode_sees_the_linux_gdt():
    m, v = user_machine()
    assert v.gdtr == (0, 0) and not v.system_mode
    # lar / lsl / verr / verw on the user selectors
    for code, sel, zf, rax in (("480f02c1", 0x33, 1, 0x00AFFB00), ("480f02c1", 0x2B, 1, 0x00CFF300),
                               ("480f02c1", 0x23, 1, 0x00CFFB00), ("480f02c1", 0x10, 0, SENTINEL),
                               ("480f02c1", 0x43, 0, SENTINEL), ("480f03c1", 0x2B, 1, 0xFFFFFFFF),
                               ("0f00e9", 0x33, 0, SENTINEL), ("0f00e9", 0x2B, 1, SENTINEL)):
        ex = run_user(m, bytes.fromhex(code), rax=SENTINEL, rcx=sel)
        assert ex.name == "BUDGET" and (v.rflags & ZF != 0) == zf and v.rax == rax, (code, hex(sel))
    # LSL on the CPU/node segment returns TSC_AUX (RDTSCP's ECX), as Linux keeps them equal
    v.tsc_aux = 0x1003
    ex = run_user(m, bytes.fromhex("0f03c1"), rcx=0x7B)
    assert v.rflags & ZF and v.rax == 0x1003
    # mov ds / mov ss with the user data selector; far jmp to the user code selector
    ex = run_user(m, bytes.fromhex("8ed8 8ed0"), budget=2, rax=0x2B)
    assert ex.name == "BUDGET" and v.get_seg_sel(3) == 0x2B and v.get_seg_sel(2) == 0x2B
    m.write(UDATA, struct.pack("<QH", UCODE + 0x100, 0x33))
    ex = run_user(m, bytes.fromhex("48ff2a"), rdx=UDATA)
    assert ex.name == "BUDGET" and v.rip == UCODE + 0x100 and v.get_seg_sel(1) == 0x33
    # far call and retfq back
    m.write(UCODE + 0x100, bytes.fromhex("48cb"))
    ex = run_user(m, bytes.fromhex("48ff1a"), budget=2, rdx=UDATA)
    assert ex.name == "BUDGET" and v.rip == UCODE + 3 and v.rsp == USP and v.get_seg_sel(1) == 0x33
    # the 32-bit user code selector: compatibility mode (how Linux runs i386 programs)
    m.write(UDATA, struct.pack("<QH", UCODE + 0x100, 0x23))
    ex = run_user(m, bytes.fromhex("48ff2a"), rdx=UDATA)
    assert ex.name == "BUDGET" and v.rip == UCODE + 0x100 and v.get_seg_sel(1) == 0x23 and v.cs32
    v.cs32 = False
    # kernel code, the TSS, the CPU/node segment: #GP(selector)
    for sel, err in ((0x10, 0x10), (0x40, 0x40), (0x7B, 0x78)):
        m.write(UDATA, struct.pack("<QH", UCODE + 0x100, sel))
        ex = run_user(m, bytes.fromhex("48ff2a"), rdx=UDATA)
        assert ex.name == "EXCEPTION" and ex.vector == GP and ex.error_code == err, hex(sel)
    # lfs with the user data selector: FS base from its descriptor (0)
    v.fs_base = 0x1234
    m.write(UDATA, struct.pack("<IH", 7, 0x2B))
    ex = run_user(m, bytes.fromhex("0fb402"), rdx=UDATA)
    assert ex.name == "BUDGET" and v.fs_base == 0 and v.get_seg_sel(4) == 0x2B and v.rax == 7
    # with a GDT loaded (even outside system mode) that table is used
    gdt = UDATA + 0x800
    m.write(gdt, struct.pack("<3Q", 0, 0x00AFFB000000FFFF, 0x0040F30000000FFF))
    v.gdtr = (gdt, 23)
    ex = run_user(m, bytes.fromhex("480f03c1"), rcx=0x13)
    assert v.rflags & ZF and v.rax == 0xFFF
    ex = run_user(m, bytes.fromhex("480f03c1"), rcx=0x2B)
    assert not v.rflags & ZF


@difftest.needs_native
def test_descriptor_checks_match_the_host():
    """LAR/LSL/VERR/VERW at CPL 3 on Linux's GDT, emu against the host. The
    CPU/node segment (0x7B) holds the CPU number in its limit: the test runs
    pinned to one CPU and gives emu that CPU's TSC_AUX value."""
    rng = random.Random(0x5E6)
    v = difftest.emu_side().m.vcpu
    old_aff, old_aux = os.sched_getaffinity(0), v.tsc_aux
    cpu = min(old_aff)
    addr, buf = native.scratch(64)
    try:
        os.sched_setaffinity(0, {cpu})
        v.tsc_aux = native.run(bytes.fromhex("0f03c1"), {"rcx": 0x7B}).regs["rax"]
        sels = list(range(0, 0x90)) + [rng.getrandbits(16) for _ in range(60)] + [0xFFFF, 0xFFFB]
        forms = [("LAR r64, r16", "480f02c1"), ("LAR r32, r16", "0f02c1"), ("LAR r16, r16", "660f02c1"),
                 ("LAR r64, m16", "480f0203"), ("LSL r64, r16", "480f03c1"), ("LSL r32, r16", "0f03c1"),
                 ("LSL r16, r16", "660f03c1"), ("LSL r32, m16", "0f0303"), ("VERR r16", "0f00e1"),
                 ("VERW r16", "0f00e9"), ("VERR m16", "0f0023"), ("VERW m16", "0f002b")]
        for name, code in forms:
            n = 0
            for sel in sels:
                flags = rng.choice((0x202, 0x202 | 0x8D5, 0x202 | 0x895))
                regs = {"rax": difftest.random_value(rng), "rcx": sel | (rng.getrandbits(48) << 16),
                        "rbx": addr}
                difftest.check(bytes.fromhex(code), regs, flags, flags_mask=difftest.ARITH,
                               scratch=[(addr, buf, struct.pack("<H", sel) + rng.randbytes(6))])
                n += 1
            difftest.covered(name, n)
    finally:
        os.sched_setaffinity(0, old_aff)
        v.tsc_aux = old_aux


@difftest.needs_native
def test_lss_with_the_user_data_selector_matches_the_host():
    """lss with 0x2B (what SS holds on Linux already): the offset into the
    register (m16:32 and m16:16; AMD reads REX.W as m16:32, so no m16:64)."""
    rng = random.Random(0x155)
    addr, buf = native.scratch(64)
    n = 0
    for code, fmt in (("0fb203", "<IH"), ("0fb20b", "<IH"), ("660fb203", "<HH"), ("660fb213", "<HH")):
        for _ in range(100):
            off = rng.getrandbits(32 if fmt == "<IH" else 16)
            regs = {"rax": difftest.random_value(rng), "rcx": difftest.random_value(rng),
                    "rdx": difftest.random_value(rng), "rbx": addr}
            difftest.check(bytes.fromhex(code), regs, 0x202, scratch=[(addr, buf, struct.pack(fmt, off, 0x2B))])
            n += 1
    difftest.covered("LSS r32/r16, m16:32/m16:16", n)
