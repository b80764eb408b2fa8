"""Differential tests: SSE/SSE2/SSE3/SSE4.1 floating point against the host
CPU under all rounding modes, DAZ/FTZ, with signed zeros, denormals,
infinities, QNaN/SNaN payloads and conversion overflow; XMM registers and
MXCSR (exception flags) are compared."""
from __future__ import annotations

import random
import struct

import difftest
import sse_helpers as su

N = 200

# (name, prefix, opcode, kind, memory size); map 1 unless given
FP2 = []
for _nm, _opc in (("sqrt", 0x51), ("add", 0x58), ("mul", 0x59), ("sub", 0x5C), ("min", 0x5D),
                  ("div", 0x5E), ("max", 0x5F)):
    FP2 += [(_nm + "ps", None, _opc, "f32", 16), (_nm + "pd", 0x66, _opc, "f64", 16),
            (_nm + "ss", 0xF3, _opc, "f32", 4), (_nm + "sd", 0xF2, _opc, "f64", 8)]
FP2 += [
    ("rsqrtps", None, 0x52, "f32", 16), ("rsqrtss", 0xF3, 0x52, "f32", 4),
    ("rcpps", None, 0x53, "f32", 16), ("rcpss", 0xF3, 0x53, "f32", 4),
    ("cvtps2pd", None, 0x5A, "f32", 8), ("cvtpd2ps", 0x66, 0x5A, "f64", 16),
    ("cvtss2sd", 0xF3, 0x5A, "f32", 4), ("cvtsd2ss", 0xF2, 0x5A, "f64", 8),
    ("cvtdq2ps", None, 0x5B, "int", 16), ("cvtps2dq", 0x66, 0x5B, "f32", 16),
    ("cvttps2dq", 0xF3, 0x5B, "f32", 16),
    ("cvttpd2dq", 0x66, 0xE6, "f64", 16), ("cvtpd2dq", 0xF2, 0xE6, "f64", 16),
    ("cvtdq2pd", 0xF3, 0xE6, "int", 8),
    ("haddpd", 0x66, 0x7C, "f64", 16), ("haddps", 0xF2, 0x7C, "f32", 16),
    ("hsubpd", 0x66, 0x7D, "f64", 16), ("hsubps", 0xF2, 0x7D, "f32", 16),
    ("addsubpd", 0x66, 0xD0, "f64", 16), ("addsubps", 0xF2, 0xD0, "f32", 16),
    ("andps", None, 0x54, "f32", 16), ("andpd", 0x66, 0x54, "f64", 16),
    ("andnps", None, 0x55, "f32", 16), ("andnpd", 0x66, 0x55, "f64", 16),
    ("orps", None, 0x56, "f32", 16), ("orpd", 0x66, 0x56, "f64", 16),
    ("xorps", None, 0x57, "f32", 16), ("xorpd", 0x66, 0x57, "f64", 16),
    ("unpcklps", None, 0x14, "f32", 16), ("unpcklpd", 0x66, 0x14, "f64", 16),
    ("unpckhps", None, 0x15, "f32", 16), ("unpckhpd", 0x66, 0x15, "f64", 16),
    ("movhlps/movlps", None, 0x12, "f32", 8), ("movlhps/movhps", None, 0x16, "f32", 8),
]
FPI = [
    ("cmpps", None, 1, 0xC2, "f32", 16), ("cmppd", 0x66, 1, 0xC2, "f64", 16),
    ("cmpss", 0xF3, 1, 0xC2, "f32", 4), ("cmpsd", 0xF2, 1, 0xC2, "f64", 8),
    ("shufps", None, 1, 0xC6, "f32", 16), ("shufpd", 0x66, 1, 0xC6, "f64", 16),
    ("roundps", 0x66, 3, 0x08, "f32", 16), ("roundpd", 0x66, 3, 0x09, "f64", 16),
    ("roundss", 0x66, 3, 0x0A, "f32", 4), ("roundsd", 0x66, 3, 0x0B, "f64", 8),
    ("blendps", 0x66, 3, 0x0C, "f32", 16), ("blendpd", 0x66, 3, 0x0D, "f64", 16),
    ("dpps", 0x66, 3, 0x40, "f32", 16), ("dppd", 0x66, 3, 0x41, "f64", 16),
    ("insertps", 0x66, 3, 0x21, "f32", 4),
]
FLG = [("ucomiss", None, 0x2E, "f32"), ("ucomisd", 0x66, 0x2E, "f64"),
       ("comiss", None, 0x2F, "f32"), ("comisd", 0x66, 0x2F, "f64")]


def _imm_fp(name):
    if name.startswith("cmp"):
        return lambda rng: rng.randrange(8) if rng.random() < 0.8 else rng.randrange(256)
    if name.startswith("round"):
        return lambda rng: rng.randrange(16)
    return "rand"


@difftest.needs_native
def test_fp_binary():
    for i, (name, pfx, opc, kind, ms) in enumerate(FP2):
        su.run_form(name, pfx, 1, opc, kind, N, 1000 + i, msize=ms)


@difftest.needs_native
def test_fp_imm():
    for i, (name, pfx, m, opc, kind, ms) in enumerate(FPI):
        su.run_form(name, pfx, m, opc, kind, N, 2000 + i, msize=ms, imm=_imm_fp(name))


@difftest.needs_native
def test_blendv():
    for i, (name, opc, kind) in enumerate((("blendvps", 0x14, "f32"), ("blendvpd", 0x15, "f64"))):
        su.run_form(name, 0x66, 2, opc, kind, N, 2100 + i)


@difftest.needs_native
def test_comis():
    for i, (name, pfx, opc, kind) in enumerate(FLG):
        su.run_form(name, pfx, 1, opc, kind, N, 3000 + i, flags=True)


def _gpr_regs(bits):
    def f(rng):
        out = {}
        for name in ("rax", "rbx", "rcx", "rdx", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"):
            out[name] = difftest.random_value(rng, bits)
        return out
    return f


@difftest.needs_native
def test_cvtsi2f():
    for i, (name, pfx, w) in enumerate((("cvtsi2ss r32", 0xF3, False), ("cvtsi2ss r64", 0xF3, True),
                                         ("cvtsi2sd r32", 0xF2, False), ("cvtsi2sd r64", 0xF2, True))):
        su.run_form(name, pfx, 1, 0x2A, "f32" if pfx == 0xF3 else "f64", N, 4000 + i, rexw=w,
                    regs_fn=_gpr_regs(64 if w else 32), msize=8 if w else 4)


@difftest.needs_native
def test_cvtf2si():
    """CVT[T]SS2SI/CVT[T]SD2SI to r32/r64: integer indefinite on overflow/NaN."""
    rng = random.Random(4100)
    addr, buf = su.scratch()
    for pfx, kind in ((0xF3, "f32"), (0xF2, "f64")):
        for opc in (0x2C, 0x2D):
            for w in (False, True):
                n = 0
                for k in range(2 * N):
                    mem = k >= N
                    reg, rm = rng.randrange(16), rng.randrange(16)
                    if reg == 6:
                        reg = 7
                    code = su.encode(pfx, 1, opc, reg, rm, mem, None, w)
                    xmm = [su.VEC[kind](rng) for _ in range(16)]
                    init = bytearray(256)
                    init[64:80] = su.VEC[kind](rng)
                    difftest.check(code, {"rsi": addr + 64, "rax": rng.getrandbits(64)},
                                   scratch=[(addr, buf, bytes(init))] if mem else None,
                                   xmm=xmm, mxcsr=rng.choice(su.MXCSR_MODES))
                    n += 1
                name = "%s%s2si r%d" % ("cvtt" if opc == 0x2C else "cvt", "ss" if pfx == 0xF3 else "sd", 64 if w else 32)
                difftest.covered(name, n)


def test_unmasked_exception_is_xm():
    """Division by zero with ZM clear: #XM, destination unchanged, ZE flag set."""
    side = difftest.emu_side()
    v = side.m.vcpu
    v.set_xmm(0, struct.pack("<4f", 1, 1, 1, 1))
    v.set_xmm(1, struct.pack("<4f", 0, 1, 1, 1))
    v.mxcsr = 0x1F80 & ~0x200
    ex, v = difftest.emu_only(bytes.fromhex("0f5ec1"), {})
    assert ex.name == "EXCEPTION" and ex.vector == 19
    assert v.get_xmm(0) == struct.pack("<4f", 1, 1, 1, 1)
    assert v.mxcsr & 0x4
    # masked: the result is written and only the flag is set
    v.mxcsr = 0x1F80
    ex, v = difftest.emu_only(bytes.fromhex("0f5ec1"), {})
    assert ex.name == "BUDGET"
    assert v.get_xmm(0) == struct.pack("<4f", float("inf"), 1, 1, 1)
    assert v.mxcsr == 0x1F84
    v.mxcsr = 0x1F80


def test_ldmxcsr_reserved_bits_gp():
    side = difftest.emu_side()
    side.ensure_mapped(0x10001000, 16)
    side.m.write(0x10001000, struct.pack("<I", 0x10000))
    ex, v = difftest.emu_only(bytes.fromhex("0fae16"), {"rsi": 0x10001000})
    assert ex.name == "EXCEPTION" and ex.vector == 13


def test_mxcsr_changes_between_operations_and_host_mxcsr_restored():
    """The core keeps the guest's MXCSR in the host register across SSE
    operations (ops_sse_int.pxi): a LDMXCSR between two operations must take
    effect at once, an unmasked exception must still fault, and the host's
    MXCSR (Python's own floating point) must be back after the run."""
    import math

    import emu
    # movsd/addsd 1.0 + 2^-60 three times: round to nearest, LDMXCSR round up, LDMXCSR
    # back; STMXCSR; LDMXCSR with PE unmasked; addsd again (#XM); ud2
    code = bytes.fromhex("f20f1006f20f584608f20f11070fae5610f20f100ef20f584e08f20f114f080fae5614"
                         "f20f1016f20f585608f20f1157100fae5f180fae5618f20f101ef20f585e080f0b")
    m = emu.Machine(16 << 20)
    m.map(0x400000, 0x1000)
    m.map(0x600000, 0x1000)
    m.write(0x400000, code)
    up = 0x1F80 | (2 << 13)
    m.write(0x600000, struct.pack("<ddIII", 1.0, 2.0 ** -60, up, 0x1F80, 0x1F80 & ~0x1000))
    v = m.vcpu
    v.rip, v.rsi, v.rdi = 0x400000, 0x600000, 0x600100
    ex = v.run()
    assert ex.name == "EXCEPTION" and ex.vector == 19 and ex.rip == 0x400000 + 0x3d   # the last addsd
    nearest, rounded_up, back = struct.unpack("<ddd", m.read(0x600100, 24))
    assert nearest == 1.0 and rounded_up == math.nextafter(1.0, 2.0) and back == 1.0
    assert struct.unpack("<I", m.read(0x600118, 4))[0] == 0x1F80 | 0x20      # PE raised and kept
    # the host's rounding is untouched: 1.0 + 2^-60 rounds to 1.0 here
    assert 1.0 + 2.0 ** -60 == 1.0 and math.fsum([0.1] * 10) == 1.0
