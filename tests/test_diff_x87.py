"""Differential tests: x87 loads/stores, arithmetic, compares and control
instructions against the host CPU. The starting x87 state (TOP, tags,
80-bit registers, control word with every precision and rounding setting)
is loaded with FXRSTOR64 on both sides; the control/status/tag words and
ST0-7 are compared afterwards, plus GPRs, flags and memory."""
from __future__ import annotations

import random
import struct
import zlib

import difftest
import test_diff_sse_util as su

N = 200


def f64_to_80(q: int) -> bytes:
    sign = q >> 63
    e = (q >> 52) & 0x7FF
    m = q & ((1 << 52) - 1)
    if e == 0x7FF:
        e80, m80 = 0x7FFF, (1 << 63) | (m << 11)
    elif e == 0:
        if m == 0:
            e80, m80 = 0, 0
        else:      # normalise the double denormal
            sh = 53 - m.bit_length()
            e80 = 1 - 1023 + 16383 - sh + 1 - 1
            m80 = m << (11 + sh)
            e80 = 16383 - 1022 - sh
            m80 = (m << (sh + 11))
    else:
        e80, m80 = e - 1023 + 16383, (1 << 63) | (m << 11)
    return struct.pack("<QH", m80 & ((1 << 64) - 1), (sign << 15) | e80)


SPECIAL80 = [
    bytes(10), struct.pack("<QH", 0, 0x8000),                                  # +-0
    struct.pack("<QH", 1 << 63, 0x3FFF), struct.pack("<QH", 1 << 63, 0xBFFF),  # +-1
    struct.pack("<QH", 1 << 63, 0x7FFF), struct.pack("<QH", 1 << 63, 0xFFFF),  # +-inf
    struct.pack("<QH", 0xC000000000000000, 0x7FFF), struct.pack("<QH", 0xC000000000000000, 0xFFFF),
    struct.pack("<QH", 0xC000000000012345, 0x7FFF), struct.pack("<QH", 0xA000000000000000, 0x7FFF),  # SNaN
    struct.pack("<QH", 0x8000000000000001, 0xFFFF),
    struct.pack("<QH", 0x0000000000000001, 0x0000), struct.pack("<QH", 0x7FFFFFFFFFFFFFFF, 0x8000),  # denormals
    struct.pack("<QH", 0x8000000000000000, 0x0001), struct.pack("<QH", 0xFFFFFFFFFFFFFFFF, 0x7FFE),
    struct.pack("<QH", 0xFFFFFFFFFFFFFFFF, 0x3FFE), struct.pack("<QH", 0x8000000000000000, 0x403E),  # 2^63
    struct.pack("<QH", 0xFFFFFFFFFFFFFFFF, 0x403D), struct.pack("<QH", 0xC000000000000000, 0x4000),
    struct.pack("<QH", 0x8000000000000400, 0x3FFF), struct.pack("<QH", 0x8000000000000800, 0x3FFF),  # rounding
    struct.pack("<QH", 0x8000008000000000, 0x3FFF), struct.pack("<QH", 0x8000000000000000, 0x400D),
]


def rand80(rng) -> bytes:
    k = rng.random()
    if k < 0.3:
        return rng.choice(SPECIAL80)
    if k < 0.7:
        return f64_to_80(su.rand_f64(rng)) if rng.random() < 0.5 else \
            f64_to_80(struct.unpack("<Q", struct.pack("<d", rng.uniform(-1e6, 1e6)))[0])
    if k < 0.9:
        return struct.pack("<QH", (1 << 63) | rng.getrandbits(63), (rng.getrandbits(1) << 15) | rng.randint(0x3F00, 0x40FF))
    return struct.pack("<QH", rng.getrandbits(64), rng.getrandbits(16))


CW = [0x037F, 0x027F, 0x007F, 0x077F, 0x0B7F, 0x0F7F, 0x067F, 0x0E7F, 0x0C7F]


def x87_state(rng, nvalid=None, top=None) -> bytes:
    img = bytearray(512)
    top = rng.randrange(8) if top is None else top
    nvalid = rng.randint(0, 8) if nvalid is None else nvalid
    abr = 0
    for i in range(8):        # ST(i) lives in physical register (top + i) & 7
        if i < nvalid:
            abr |= 1 << ((top + i) & 7)
        img[32 + 16 * i:42 + 16 * i] = rand80(rng) if i < nvalid else bytes(10)
    fsw = (top << 11) | (rng.getrandbits(4) << 8 & 0x4700)     # C0-C3 leftovers
    struct.pack_into("<HHBBH", img, 0, rng.choice(CW), fsw, abr, 0, 0)
    struct.pack_into("<I", img, 24, 0x1F80)
    return bytes(img)


def mem_value(rng, size):
    if size == 4:
        return struct.pack("<I", su.rand_f32(rng))
    if size == 8:
        return struct.pack("<Q", su.rand_f64(rng))
    if size == 10:
        return rand80(rng)
    return rng.getrandbits(8 * size).to_bytes(size, "little")


def run(name, codes, n=N, seed=0, mem=None, nvalid=None, flags=False, ints=None):
    """codes: list of instruction byte strings (one picked per case)."""
    rng = random.Random(seed or zlib.crc32(name.encode()))
    addr, buf = su.scratch()
    for k in range(n):
        code = rng.choice(codes)
        init = bytearray(64)
        if mem:
            if ints and rng.random() < 0.5:
                v = rng.choice(difftest.edge_values(8 * mem)).to_bytes(mem, "little")
            else:
                v = mem_value(rng, mem)
            init[16:16 + len(v)] = v
        nv = nvalid(rng) if callable(nvalid) else nvalid
        st = x87_state(rng, nv)
        difftest.check(code, {"rsi": addr + 16, "rax": rng.getrandbits(64)}, 0x202 | (rng.getrandbits(12) & 0x8D5),
                       scratch=[(addr, buf, bytes(init))], fxstate=st, note=name)
    difftest.covered(name, n)


def regs_forms(op1, base):
    return [bytes([op1, base + i]) for i in range(8)]


def mostly_full(rng):
    return rng.choice([2, 3, 5, 7, 8, 8, 1, 0])


@difftest.needs_native
def test_arith_register_forms():
    for j, nm in enumerate(("fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr")):
        run(nm + " st0, st(i)", regs_forms(0xD8, 0xC0 + 8 * j), nvalid=mostly_full)
        if j not in (2, 3):
            run(nm + " st(i), st0", regs_forms(0xDC, 0xC0 + 8 * j), nvalid=mostly_full)
            run(nm + "p st(i), st0", regs_forms(0xDE, 0xC0 + 8 * j), nvalid=mostly_full)


@difftest.needs_native
def test_arith_memory_forms():
    for j, nm in enumerate(("fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr")):
        modrm = 0x06 | (j << 3)
        run(nm + " m32", [bytes([0xD8, modrm])], mem=4, nvalid=mostly_full)
        run(nm + " m64", [bytes([0xDC, modrm])], mem=8, nvalid=mostly_full)
        run("fi" + nm[1:] + " m32int", [bytes([0xDA, modrm])], mem=4, nvalid=mostly_full, ints=True)
        run("fi" + nm[1:] + " m16int", [bytes([0xDE, modrm])], mem=2, nvalid=mostly_full, ints=True)


@difftest.needs_native
def test_loads_stores():
    run("fld m32", [b"\xD9\x06"], mem=4, nvalid=lambda r: r.choice([0, 3, 7, 8]))
    run("fld m64", [b"\xDD\x06"], mem=8, nvalid=lambda r: r.choice([0, 3, 7, 8]))
    run("fld m80", [b"\xDB\x2E"], mem=10, nvalid=lambda r: r.choice([0, 3, 7, 8]))
    run("fst/fstp m32", [b"\xD9\x16", b"\xD9\x1E"], mem=4, nvalid=mostly_full)
    run("fst/fstp m64", [b"\xDD\x16", b"\xDD\x1E"], mem=8, nvalid=mostly_full)
    run("fstp m80", [b"\xDB\x3E"], mem=10, nvalid=mostly_full)
    run("fild m16/m32/m64", [b"\xDF\x06", b"\xDB\x06", b"\xDF\x2E"], mem=8, ints=True, nvalid=lambda r: r.choice([0, 3, 8]))
    run("fist/fistp m16", [b"\xDF\x16", b"\xDF\x1E"], mem=2, nvalid=mostly_full)
    run("fist/fistp m32", [b"\xDB\x16", b"\xDB\x1E"], mem=4, nvalid=mostly_full)
    run("fistp m64", [b"\xDF\x3E"], mem=8, nvalid=mostly_full)
    run("fisttp m16/m32/m64", [b"\xDF\x0E", b"\xDB\x0E", b"\xDD\x0E"], mem=8, nvalid=mostly_full)
    run("fld st(i)", regs_forms(0xD9, 0xC0), nvalid=mostly_full)
    run("fst st(i)", regs_forms(0xDD, 0xD0), nvalid=mostly_full)
    run("fstp st(i)", regs_forms(0xDD, 0xD8), nvalid=mostly_full)
    run("fxch st(i)", regs_forms(0xD9, 0xC8), nvalid=mostly_full)
    run("ffree st(i)", regs_forms(0xDD, 0xC0), nvalid=mostly_full)


@difftest.needs_native
def test_unary_and_constants():
    for nm, code in (("fchs", b"\xD9\xE0"), ("fabs", b"\xD9\xE1"), ("ftst", b"\xD9\xE4"), ("fxam", b"\xD9\xE5"),
                     ("fld1", b"\xD9\xE8"), ("fldz", b"\xD9\xEE"), ("fdecstp", b"\xD9\xF6"),
                     ("fincstp", b"\xD9\xF7"), ("fprem", b"\xD9\xF8"), ("fsqrt", b"\xD9\xFA"),
                     ("frndint", b"\xD9\xFC"), ("fscale", b"\xD9\xFD"), ("fnop", b"\xD9\xD0")):
        run(nm, [code], nvalid=mostly_full)


@difftest.needs_native
def test_compares():
    run("fucom/fucomp st(i)", regs_forms(0xDD, 0xE0) + regs_forms(0xDD, 0xE8), nvalid=mostly_full)
    run("fucompp/fcompp", [b"\xDA\xE9", b"\xDE\xD9"], nvalid=mostly_full)
    run("fucomi/fcomi st(i)", regs_forms(0xDB, 0xE8) + regs_forms(0xDB, 0xF0), nvalid=mostly_full)
    run("fucomip/fcomip st(i)", regs_forms(0xDF, 0xE8) + regs_forms(0xDF, 0xF0), nvalid=mostly_full)
    codes = []
    for op1 in (0xDA, 0xDB):
        for base in (0xC0, 0xC8, 0xD0, 0xD8):
            codes += regs_forms(op1, base)
    run("fcmovcc", codes, n=4 * N, nvalid=mostly_full)


@difftest.needs_native
def test_control():
    run("fnstcw m16", [b"\xD9\x3E"], mem=2)
    run("fldcw m16", [b"\xD9\x2E"], mem=2, ints=False)
    run("fnstsw ax / m16", [b"\xDF\xE0", b"\xDD\x3E"], mem=2)
    run("fnclex/fninit", [b"\xDB\xE2", b"\xDB\xE3"])


def test_fldcw_arbitrary_words():
    """FLDCW keeps every bit of the written control word's defined fields."""
    side = difftest.emu_side()
    side.ensure_mapped(0x10002000, 16)
    side.m.write(0x10002000, struct.pack("<H", 0x0C7F))
    ex, v = difftest.emu_only(b"\xD9\x2E", {"rsi": 0x10002000})
    assert ex.name == "BUDGET" and v.fpu_state["fcw"] == 0x0C7F
