"""Differential tests: SSE2/SSSE3/SSE4.1/SSE4.2 packed-integer instructions
(register and memory forms) against the host CPU."""
from __future__ import annotations

import random

import difftest
import sse_helpers as su

N = 200

# (name, prefix, map, opcode, memory operand size)
INT2 = [
    ("punpcklbw", 0x66, 1, 0x60), ("punpcklwd", 0x66, 1, 0x61), ("punpckldq", 0x66, 1, 0x62),
    ("packsswb", 0x66, 1, 0x63), ("pcmpgtb", 0x66, 1, 0x64), ("pcmpgtw", 0x66, 1, 0x65),
    ("pcmpgtd", 0x66, 1, 0x66), ("packuswb", 0x66, 1, 0x67), ("punpckhbw", 0x66, 1, 0x68),
    ("punpckhwd", 0x66, 1, 0x69), ("punpckhdq", 0x66, 1, 0x6A), ("packssdw", 0x66, 1, 0x6B),
    ("punpcklqdq", 0x66, 1, 0x6C), ("punpckhqdq", 0x66, 1, 0x6D), ("pcmpeqb", 0x66, 1, 0x74),
    ("pcmpeqw", 0x66, 1, 0x75), ("pcmpeqd", 0x66, 1, 0x76), ("psrlw", 0x66, 1, 0xD1),
    ("psrld", 0x66, 1, 0xD2), ("psrlq", 0x66, 1, 0xD3), ("paddq", 0x66, 1, 0xD4),
    ("pmullw", 0x66, 1, 0xD5), ("psubusb", 0x66, 1, 0xD8), ("psubusw", 0x66, 1, 0xD9),
    ("pminub", 0x66, 1, 0xDA), ("pand", 0x66, 1, 0xDB), ("paddusb", 0x66, 1, 0xDC),
    ("paddusw", 0x66, 1, 0xDD), ("pmaxub", 0x66, 1, 0xDE), ("pandn", 0x66, 1, 0xDF),
    ("pavgb", 0x66, 1, 0xE0), ("psraw", 0x66, 1, 0xE1), ("psrad", 0x66, 1, 0xE2),
    ("pavgw", 0x66, 1, 0xE3), ("pmulhuw", 0x66, 1, 0xE4), ("pmulhw", 0x66, 1, 0xE5),
    ("psubsb", 0x66, 1, 0xE8), ("psubsw", 0x66, 1, 0xE9), ("pminsw", 0x66, 1, 0xEA),
    ("por", 0x66, 1, 0xEB), ("paddsb", 0x66, 1, 0xEC), ("paddsw", 0x66, 1, 0xED),
    ("pmaxsw", 0x66, 1, 0xEE), ("pxor", 0x66, 1, 0xEF), ("psllw", 0x66, 1, 0xF1),
    ("pslld", 0x66, 1, 0xF2), ("psllq", 0x66, 1, 0xF3), ("pmuludq", 0x66, 1, 0xF4),
    ("pmaddwd", 0x66, 1, 0xF5), ("psadbw", 0x66, 1, 0xF6), ("psubb", 0x66, 1, 0xF8),
    ("psubw", 0x66, 1, 0xF9), ("psubd", 0x66, 1, 0xFA), ("psubq", 0x66, 1, 0xFB),
    ("paddb", 0x66, 1, 0xFC), ("paddw", 0x66, 1, 0xFD), ("paddd", 0x66, 1, 0xFE),
    ("pshufb", 0x66, 2, 0x00), ("phaddw", 0x66, 2, 0x01), ("phaddd", 0x66, 2, 0x02),
    ("phaddsw", 0x66, 2, 0x03), ("pmaddubsw", 0x66, 2, 0x04), ("phsubw", 0x66, 2, 0x05),
    ("phsubd", 0x66, 2, 0x06), ("phsubsw", 0x66, 2, 0x07), ("psignb", 0x66, 2, 0x08),
    ("psignw", 0x66, 2, 0x09), ("psignd", 0x66, 2, 0x0A), ("pmulhrsw", 0x66, 2, 0x0B),
    ("pabsb", 0x66, 2, 0x1C), ("pabsw", 0x66, 2, 0x1D), ("pabsd", 0x66, 2, 0x1E),
    ("pmovsxbw", 0x66, 2, 0x20), ("pmovsxbd", 0x66, 2, 0x21), ("pmovsxbq", 0x66, 2, 0x22),
    ("pmovsxwd", 0x66, 2, 0x23), ("pmovsxwq", 0x66, 2, 0x24), ("pmovsxdq", 0x66, 2, 0x25),
    ("pmuldq", 0x66, 2, 0x28), ("pcmpeqq", 0x66, 2, 0x29), ("packusdw", 0x66, 2, 0x2B),
    ("pmovzxbw", 0x66, 2, 0x30), ("pmovzxbd", 0x66, 2, 0x31), ("pmovzxbq", 0x66, 2, 0x32),
    ("pmovzxwd", 0x66, 2, 0x33), ("pmovzxwq", 0x66, 2, 0x34), ("pmovzxdq", 0x66, 2, 0x35),
    ("pcmpgtq", 0x66, 2, 0x37), ("pminsb", 0x66, 2, 0x38), ("pminsd", 0x66, 2, 0x39),
    ("pminuw", 0x66, 2, 0x3A), ("pminud", 0x66, 2, 0x3B), ("pmaxsb", 0x66, 2, 0x3C),
    ("pmaxsd", 0x66, 2, 0x3D), ("pmaxuw", 0x66, 2, 0x3E), ("pmaxud", 0x66, 2, 0x3F),
    ("pmulld", 0x66, 2, 0x40), ("phminposuw", 0x66, 2, 0x41),
    ("pblendvb", 0x66, 2, 0x10), ("ptest", 0x66, 2, 0x17),
]
INTI = [
    ("pshufd", 0x66, 1, 0x70), ("pshufhw", 0xF3, 1, 0x70), ("pshuflw", 0xF2, 1, 0x70),
    ("pblendw", 0x66, 3, 0x0E), ("palignr", 0x66, 3, 0x0F), ("mpsadbw", 0x66, 3, 0x42),
]


@difftest.needs_native
def test_int_binary():
    for i, (name, pfx, m, opc) in enumerate(INT2):
        su.run_form(name + " xmm, xmm/m128", pfx, m, opc, "int", N, 100 + i)


@difftest.needs_native
def test_int_imm():
    for i, (name, pfx, m, opc) in enumerate(INTI):
        su.run_form(name + " xmm, xmm/m128, imm8", pfx, m, opc, "int", N, 200 + i, imm="rand")


@difftest.needs_native
def test_shift_by_count_edges():
    """PSRLW/PSLLQ/PSRAD... with counts 0, 1, size-1, size, huge."""
    rng = random.Random(7)
    addr, buf = su.scratch()
    n = 0
    for name, opc, bits in (("psrlw", 0xD1, 16), ("psrld", 0xD2, 32), ("psrlq", 0xD3, 64),
                            ("psraw", 0xE1, 16), ("psrad", 0xE2, 32), ("psllw", 0xF1, 16),
                            ("pslld", 0xF2, 32), ("psllq", 0xF3, 64)):
        for cnt in (0, 1, bits - 1, bits, bits + 1, 255, 1 << 32, (1 << 64) - 1):
            xmm = [su.vec_int(rng) for _ in range(16)]
            xmm[1] = cnt.to_bytes(8, "little") + rng.getrandbits(64).to_bytes(8, "little")
            difftest.check(su.encode(0x66, 1, opc, 0, 1), {}, xmm=xmm, mxcsr=0x1F80)
            n += 1
    difftest.covered("psrl/psra/psll count edges", n)


@difftest.needs_native
def test_shift_imm_groups():
    rng = random.Random(8)
    for opc, subs in ((0x71, (2, 4, 6)), (0x72, (2, 4, 6)), (0x73, (2, 3, 6, 7))):
        for sub in subs:
            n = 0
            for k in range(N):
                imm = rng.choice([0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 128, 255]) \
                    if k < 60 else rng.randrange(256)
                rm = rng.randrange(16)
                code = su.encode(0x66, 1, opc, sub, rm, imm=imm)
                xmm = [su.vec_int(rng) for _ in range(16)]
                difftest.check(code, {}, xmm=xmm, mxcsr=0x1F80)
                n += 1
            difftest.covered("66 0F %02X /%d ib" % (opc, sub), n)


def _len_regs(rng):
    def one():
        return rng.choice([0, 1, 5, 8, 15, 16, 17, 100, -1, -8, -16, -17, 1 << 31, (1 << 32) - 3,
                           (1 << 63), (1 << 64) - 5, rng.getrandbits(64)]) & ((1 << 64) - 1)
    return {"rax": one(), "rdx": one(), "rcx": rng.getrandbits(64)}


@difftest.needs_native
def test_pcmpstr():
    for i, (name, opc) in enumerate((("pcmpestrm", 0x60), ("pcmpestri", 0x61),
                                     ("pcmpistrm", 0x62), ("pcmpistri", 0x63))):
        su.run_form(name, 0x66, 3, opc, "int", N, 300 + i, imm="rand", regs_fn=_len_regs, misalign=3)
        if opc < 0x62:
            su.run_form(name + " REX.W", 0x66, 3, opc, "int", N // 2, 310 + i, imm="rand",
                        regs_fn=_len_regs, rexw=True)


@difftest.needs_native
def test_crc32():
    rng = random.Random(9)
    addr, buf = su.scratch()
    n = 0
    for opc, rexw, pfx66 in ((0xF0, False, False), (0xF1, False, True), (0xF1, False, False), (0xF1, True, False),
                             (0xF0, True, False)):
        for k in range(N):
            reg, rm = rng.randrange(16), rng.randrange(16)
            mem = k % 2 == 1
            code = bytearray()
            if pfx66:
                code.append(0x66)
            code += su.encode(0xF2, 2, opc, reg, rm, mem, None, rexw)
            regs = {difftest.emu.GPR_NAMES[j]: difftest.random_value(rng) for j in range(16) if j != 4}
            regs["rsi"] = addr + 64
            init = bytearray(256)
            init[64:72] = rng.getrandbits(64).to_bytes(8, "little")
            if not mem and rm == 6:
                continue
            difftest.check(bytes(code), regs, scratch=[(addr, buf, bytes(init))] if mem else None)
            n += 1
    difftest.covered("crc32", n)


def test_aligned_operand_faults():
    """A misaligned m128 operand of a legacy SSE instruction is #GP(0)."""
    ex, v = difftest.emu_only(su.encode(0x66, 1, 0xFC, 1, 0, True), {"rsi": 0x10000008})
    assert ex.name == "EXCEPTION" and ex.vector == 13
