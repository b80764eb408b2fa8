"""Differential tests for control transfer and stack instructions: JMP,
CALL and RET (direct, indirect, RET imm16), LOOP/LOOPcc/JRCXZ, PUSH and POP
(register, immediate, memory, 16-bit), LEAVE. Jcc, SETcc and CMOVcc are in
test_diff_alu.py."""
import random
import struct

import pytest

import difftest
import native
from arith_helpers import REGS, insn, mem_setup, pick_base, rand_flags, rand_regs, scratch

pytestmark = difftest.needs_native
N = 200


def code_addr_for(length: int) -> int:
    """Where native.run places code of this length (stable between runs), so
    absolute branch targets can be computed before the run."""
    return native.run(b"\x90" * length).code_addr


def stack_in_scratch(rng, regs, words):
    """Point RSP into scratch memory holding `words` (qwords) at the top."""
    addr, buf = scratch()
    off = 2048 + 8 * rng.randrange(0, 64)
    init = bytearray(rng.randbytes(4096))
    for i, w in enumerate(words):
        struct.pack_into("<Q", init, off + 8 * i, w)
    regs["rsp"] = addr + off
    return [(addr, buf, bytes(init))]


def test_jmp_rel():
    rng = random.Random(1)
    for i in range(N):
        if i % 2:
            d = rng.randrange(2, 128)
            code = b"\xeb" + bytes([d])
        else:
            d = rng.randrange(2, 1 << 20)
            code = b"\xe9" + struct.pack("<i", d)
        res = difftest.check(code, rand_regs(rng), rand_flags(rng), taken_disp=d, flags_mask=difftest.ALL_FLAGS)
        assert res.exit == "taken"
    difftest.covered("jmp rel8/rel32", N)


def test_call_rel32():
    rng = random.Random(2)
    for i in range(N):
        d = rng.randrange(2, 1 << 16)
        res = difftest.check(b"\xe8" + struct.pack("<i", d), rand_regs(rng), rand_flags(rng), taken_disp=d)
        assert res.exit == "taken"
    difftest.covered("call rel32", N)


@pytest.mark.parametrize("ext,name", [(2, "call"), (4, "jmp")])
def test_indirect_register_and_memory(ext, name):
    rng = random.Random(3 + ext)
    for i in range(N):
        regs = rand_regs(rng)
        d = rng.randrange(2, 100)
        if i % 2:
            r = rng.choice([k for k in range(16) if k != 4])
            code = insn(b"\xff", ext, r)
            regs[REGS[r]] = code_addr_for(len(code)) + len(code) + d
            difftest.check(code, regs, rand_flags(rng), taken_disp=d)
        else:
            base = pick_base(rng)
            mem, scr, at = mem_setup(rng, regs, base)
            code = insn(b"\xff", ext, mem=mem)
            init = bytearray(scr[0][2])
            struct.pack_into("<Q", init, at - scr[0][0], code_addr_for(len(code)) + len(code) + d)
            difftest.check(code, regs, rand_flags(rng), taken_disp=d, scratch=[(scr[0][0], scr[0][1], bytes(init))])
    difftest.covered("%s r/m64" % name, N)


@pytest.mark.parametrize("imm", [None, 0, 8, 24, 0x100])
def test_ret(imm):
    rng = random.Random(5 + (imm or 0))
    code = b"\xc3" if imm is None else b"\xc2" + struct.pack("<H", imm)
    for i in range(N):
        regs = rand_regs(rng)
        d = rng.randrange(2, 100)
        target = code_addr_for(len(code)) + len(code) + d
        scr = stack_in_scratch(rng, regs, [target])
        assert difftest.check(code, regs, rand_flags(rng), taken_disp=d, scratch=scr).exit == "taken"
    difftest.covered("ret" if imm is None else "ret imm16", N)


@pytest.mark.parametrize("opc,name", [(0xE0, "loopne"), (0xE1, "loope"), (0xE2, "loop"), (0xE3, "jrcxz")])
@pytest.mark.parametrize("a32", [False, True])
def test_loops(opc, name, a32):
    rng = random.Random(opc * 2 + a32)
    exits = set()
    for i in range(N):
        regs = rand_regs(rng)
        regs["rcx"] = rng.choice([0, 1, 2, 0xFFFFFFFF, 0x100000000, 0x100000001, (1 << 64) - 1,
                                  rng.getrandbits(64)])
        d = rng.randrange(2, 100)
        code = (b"\x67" if a32 else b"") + bytes([opc, d])
        exits.add(difftest.check(code, regs, rand_flags(rng), taken_disp=d, flags_mask=difftest.ALL_FLAGS).exit)
    assert exits == {"fall", "taken"}, "the cases must take the branch and fall through"
    difftest.covered("%s%s rel8" % (name, " (67)" if a32 else ""), N)


@pytest.mark.parametrize("sz", [2, 8])
def test_push_pop_register(sz):
    rng = random.Random(10 + sz)
    pfx = b"\x66" if sz == 2 else b""
    for op, name in ((0x50, "push"), (0x58, "pop")):
        for i in range(N):
            regs = rand_regs(rng)
            r = rng.randrange(16)
            code = pfx + (b"\x41" if r >= 8 else b"") + bytes([op + (r & 7)])
            scr = stack_in_scratch(rng, regs, [rng.getrandbits(64) for _ in range(4)])
            difftest.check(code, regs, rand_flags(rng), scratch=scr, flags_mask=difftest.ALL_FLAGS)
        difftest.covered("%s r%d" % (name, sz * 8), N)


def test_push_immediates():
    rng = random.Random(20)
    for form in ("imm8", "imm32", "imm16"):
        for i in range(N):
            regs = rand_regs(rng)
            if form == "imm8":
                code = b"\x6a" + bytes([rng.getrandbits(8)])
            elif form == "imm32":
                code = b"\x68" + rng.randbytes(4)
            else:
                code = b"\x66\x68" + rng.randbytes(2)
            scr = stack_in_scratch(rng, regs, [rng.getrandbits(64)])
            difftest.check(code, regs, rand_flags(rng), scratch=scr)
        difftest.covered("push %s" % form, N)


def test_push_pop_memory():
    rng = random.Random(21)
    for ext, opc, name in ((6, b"\xff", "push m64"), (0, b"\x8f", "pop m64")):
        for i in range(N):
            regs = rand_regs(rng)
            scr = stack_in_scratch(rng, regs, [rng.getrandbits(64) for _ in range(2)])
            if i % 4 == 0:
                # [rsp + disp]: POP computes the address after incrementing RSP
                code = insn(opc, ext, mem=(4, 8 * rng.randrange(-2, 3)))
            else:
                # a second scratch area for the memory operand
                base = pick_base(rng)
                addr, buf = scratch()
                disp = rng.randrange(-64, 64)
                regs[REGS[base]] = addr + 256 + 8 * rng.randrange(0, 16) - disp
                code = insn(opc, ext, mem=(base, disp))
            difftest.check(code, regs, rand_flags(rng), scratch=scr)
        difftest.covered(name, N)


@pytest.mark.parametrize("sz", [2, 8])
def test_leave(sz):
    rng = random.Random(30 + sz)
    for i in range(N):
        regs = rand_regs(rng)
        addr, buf = scratch()
        scr = stack_in_scratch(rng, regs, [])
        if sz == 8:
            regs["rbp"] = addr + 1024 + 8 * rng.randrange(0, 64)
        else:
            # 16-bit LEAVE: SP = BP, then pop BP: keep the upper bits of RSP pointing at scratch
            regs["rbp"] = (regs["rsp"] & ~0xFFFF) | ((regs["rsp"] + 8 * rng.randrange(0, 16)) & 0xFFFF)
        code = (b"\x66" if sz == 2 else b"") + b"\xc9"
        difftest.check(code, regs, rand_flags(rng), scratch=scr)
    difftest.covered("leave (o%d)" % (sz * 8), N)
