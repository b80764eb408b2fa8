"""Flag instructions CLC STC CMC CLD STD LAHF SAHF PUSHF POPF and ENTER:
differential against the host CPU (alone, and after an arithmetic
instruction so the lazy-flag paths are used); POPF privilege rules at CPL 0
in emu only."""
from __future__ import annotations

import random

import difftest
import native

CF, PF, AF, ZF, SF, TF, IF, DF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800
ARITH = CF | PF | AF | ZF | SF | OF
IOPL, NT, RF, VM, AC, VIF, VIP, ID = 0x3000, 0x4000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000
# every flag we can observe natively (TF would trap)
OBSERVABLE = ARITH | DF | IF | IOPL | NT | RF | VM | AC | VIF | VIP | ID | 2
M64 = (1 << 64) - 1
REGS = native.REG_NAMES

# arithmetic instructions run first so the flag instruction sees lazy flags
PRE = [
    b"",
    b"\x48\x01\xd8",      # add rax, rbx
    b"\x48\x29\xd8",      # sub rax, rbx
    b"\x00\xd8",          # add al, bl
    b"\x66\x29\xd8",      # sub ax, bx
    b"\x48\x21\xd8",      # and rax, rbx
    b"\x48\xff\xc0",      # inc rax
    b"\xff\xc8",          # dec eax
    b"\x48\x11\xd8",      # adc rax, rbx
    b"\x48\x19\xd8",      # sbb rax, rbx
]


def random_regs(rng):
    regs = {name: difftest.random_value(rng, 64) for name in REGS if name != "rsp"}
    return regs


def random_flags(rng):
    return 0x202 | (rng.getrandbits(12) & (ARITH | DF))


def run_simple(rng, code, name, cases=200, mask=ARITH | DF):
    """code alone, then after each arithmetic prefix instruction."""
    n = 0
    for i in range(cases):
        pre = PRE[i % len(PRE)]
        regs = random_regs(rng)
        if i < 28:
            regs["rax"] = difftest.edge_values(64)[i % 14]
            regs["rbx"] = difftest.edge_values(64)[(i // 2) % 14]
        difftest.check(pre + code, regs, random_flags(rng), flags_mask=mask,
                       budget=2 if pre else 1, note=name)
        n += 1
    difftest.covered(name, n)


@difftest.needs_native
def test_clc_stc_cmc_cld_std():
    rng = random.Random(0xF1A6)
    for code, name in ((b"\xf8", "clc"), (b"\xf9", "stc"), (b"\xf5", "cmc"),
                       (b"\xfc", "cld"), (b"\xfd", "std")):
        run_simple(rng, code, name)


@difftest.needs_native
def test_lahf_sahf():
    rng = random.Random(0x1A4F)
    run_simple(rng, b"\x9f", "lahf")
    run_simple(rng, b"\x9e", "sahf")
    # SAHF then LAHF round trip, and SAHF followed by a flag consumer (SETcc)
    run_simple(rng, b"\x9e\x9f", "sahf; lahf", cases=0)
    n = 0
    for i in range(200):
        regs = random_regs(rng)
        for code, budget in ((b"\x9e\x9f", 2), (b"\x9e\x0f\x92\xc1", 2), (b"\x48\x01\xd8\x9e\x0f\x97\xc1", 3)):
            difftest.check(code, regs, random_flags(rng), flags_mask=ARITH | DF, budget=budget)
            n += 1
    difftest.covered("sahf/lahf sequences", n)


@difftest.needs_native
def test_pushf():
    rng = random.Random(0x9C)
    run_simple(rng, b"\x9c", "pushfq")
    run_simple(rng, b"\x66\x9c", "pushfw")
    run_simple(rng, b"\x48\x9c", "rex.w pushfq")


@difftest.needs_native
def test_popf_cpl3():
    """POPF at CPL 3 (IOPL 0): IF and IOPL keep their values, RF is cleared,
    VM/VIF/VIP are unaffected; everything else is loaded."""
    rng = random.Random(0x9D)
    # push rcx; popf (the arithmetic prefixes do not touch RCX)
    for code, name in ((b"\x51\x9d", "popfq"), (b"\x51\x66\x9d", "popfw"), (b"\x51\x48\x9d", "rex.w popfq"),
                       (b"\x51\x66\x48\x9d", "66 rex.w popfq")):
        n = 0
        for i in range(250):
            pre = PRE[i % len(PRE)]
            regs = random_regs(rng)
            v = regs["rcx"]
            if i % 3 == 0:
                v = rng.getrandbits(22)
            if i % 5 == 0:
                v = M64 if i % 2 else 0
            regs["rcx"] = v & ~TF & M64
            difftest.check(pre + code, regs, random_flags(rng), flags_mask=OBSERVABLE,
                           budget=3 if pre else 2, note=name)
            n += 1
        difftest.covered(name, n)


def test_popf_privilege_emu():
    """CPL 0 may change IF and IOPL; CPL 3 with IOPL 3 may change IF only;
    RF is always cleared, VM/VIF/VIP never change (emu only: the host runs
    us at CPL 3 with IOPL 0)."""
    side = difftest.emu_side()
    v = side.m.vcpu
    rng = random.Random(5)
    n = 0
    try:
        for cpl, iopl in ((0, 0), (0, 3), (3, 3), (3, 0), (3, 2)):
            v.cpl = cpl
            for _ in range(50):
                val = rng.getrandbits(22) & ~TF | rng.choice([0, VM | VIF | VIP | RF])
                before = 0x2 | (iopl << 12) | (rng.getrandbits(12) & (ARITH | DF)) | rng.choice([0, IF])
                for code, width in ((b"\x50\x9d", 64), (b"\x50\x66\x9d", 16)):
                    ex, vc = difftest.emu_only(code, {"rax": val}, rflags=before, budget=2)
                    assert ex.name == "BUDGET", ex
                    allowed = ARITH | TF | DF | NT | AC | ID | IF | IOPL
                    if cpl > 0:
                        allowed &= ~IOPL
                    if cpl > iopl:
                        allowed &= ~IF
                    if width == 16:
                        allowed &= 0xFFFF
                    want = ((before & ~allowed) | (val & allowed) | 2) & ~RF
                    assert vc.rflags == want, (cpl, iopl, hex(val), hex(before), hex(vc.rflags), hex(want))
                    n += 1
    finally:
        v.cpl = 3
        v.rflags = 0x202
    difftest.covered("popf privilege rules (emu)", n)


@difftest.needs_native
def test_enter():
    """ENTER imm16, level: levels 0, 1 and 2..31, 64- and 16-bit operand size.
    RBP points into a scratch frame so the copied frame pointers are data."""
    rng = random.Random(0xC8)
    addr, buf = native.scratch(1024)
    # ENTER probes the new stack top for writing: all of the 64 KiB native
    # stack must exist on the emu side too, and imm16 must keep RSP inside it
    stack, _ = native.default_stack()
    difftest.emu_side().ensure_mapped(stack, 65536)
    for osz in (8, 2):
        for kind in ("level 0", "level 1", "level >1"):
            n = 0
            for i in range(200):
                if kind == "level 0":
                    level = 0 if i % 4 else 32 * rng.randint(1, 7)     # imm8 is taken mod 32
                elif kind == "level 1":
                    level = 1 if i % 4 else 33
                else:
                    level = rng.randint(2, 31)
                alloc = rng.choice([0, 1, 2, 7, 8, 0x7000, 0x1000, rng.getrandbits(14)])
                code = (b"\x66" if osz == 2 else b"") + b"\xc8" + alloc.to_bytes(2, "little") + bytes([level & 0xFF])
                regs = random_regs(rng)
                regs["rbp"] = addr + 1024 - rng.randrange(0, 64) * (1 if osz == 2 else 8) - 8
                if osz == 2 and rng.random() < 0.3:
                    regs["rbp"] = addr + 1024 - 2 * rng.randrange(0, 40) - 2
                init = rng.randbytes(1024)
                difftest.check(code, regs, random_flags(rng), flags_mask=ARITH | DF,
                               scratch=[(addr, buf, init)], note="enter")
                n += 1
            difftest.covered("enter %s o%d" % (kind, osz * 8), n)


def test_enter_faults_emu():
    """A fault in ENTER (the frame-pointer copy reading an unmapped page, or
    the new stack top not writable) leaves RSP and RBP unchanged."""
    side = difftest.emu_side()
    stack = 0x30000000
    side.ensure_mapped(stack, 0x2000)          # stack+0x2000.. and below stack unmapped
    n = 0
    for code, regs, cr2_page in (
            # imm16 moves RSP below the mapped stack: write-probe #PF there
            (b"\xc8\x00\x10\x00", {"rsp": stack + 0x800, "rbp": stack + 0x1000}, stack - 0x1000),
            (b"\x66\xc8\x00\x10\x00", {"rsp": stack + 0x800, "rbp": stack + 0x1000}, stack - 0x1000),
            # level 3 copies [rbp-8], [rbp-16] from an unmapped page
            (b"\xc8\x08\x00\x03", {"rsp": stack + 0x1000, "rbp": 0x7000000}, 0x6fff000)):
        ex, v = difftest.emu_only(code, regs)
        assert ex.name == "EXCEPTION" and ex.vector == 14, (code.hex(), ex)
        assert ex.cr2 & ~0xFFF == cr2_page, hex(ex.cr2)
        assert v.rsp == regs["rsp"] and v.rbp == regs["rbp"] and v.rip == 0x10000000
        n += 1
    # and the probe of a good new top does not change memory there
    side.m.write(stack + 0x400, b"\x5a" * 16)
    ex, v = difftest.emu_only(b"\xc8\xf8\x03\x00", {"rsp": stack + 0x800, "rbp": 1})
    assert ex.name == "BUDGET" and v.rsp == stack + 0x400
    assert side.m.read(stack + 0x400, 16) == b"\x5a" * 16
    assert side.m.read(stack + 0x7f8, 8) == (1).to_bytes(8, "little")
    difftest.covered("enter faults (emu)", n + 1)
