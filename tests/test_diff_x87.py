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
import sse_helpers as su

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


def x87_state(rng, nvalid=None, top=None, cws=None) -> bytes:
    img = bytearray(512)
    top = rng.randrange(8) if top is None else top
    nvalid = rng.randint(0, 8) if nvalid is None else nvalid
    abr = 0
    for i in range(8):        # ST(i) lives in physical register (top + i) & 7
        if i < nvalid:
            abr |= 1 << ((top + i) & 7)
        img[32 + 16 * i:42 + 16 * i] = rand80(rng) if i < nvalid else bytes(10)
    fsw = (top << 11) | (rng.getrandbits(4) << 8 & 0x4700)     # C0-C3 leftovers
    struct.pack_into("<HHBBH", img, 0, rng.choice(cws or CW), fsw, abr, 0, 0)
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


def run(name, codes, n=N, seed=0, mem=None, nvalid=None, flags=False, ints=None, cws=None):
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
        st = x87_state(rng, nv, cws=cws)
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


# ---- transcendentals, constants, BCD, environment and state images ----

@difftest.needs_native
def test_transcendentals_and_constants():
    for nm, code in (("f2xm1", b"\xD9\xF0"), ("fyl2x", b"\xD9\xF1"), ("fptan", b"\xD9\xF2"),
                     ("fpatan", b"\xD9\xF3"), ("fxtract", b"\xD9\xF4"), ("fprem1", b"\xD9\xF5"),
                     ("fyl2xp1", b"\xD9\xF9"), ("fsincos", b"\xD9\xFB"), ("fsin", b"\xD9\xFE"),
                     ("fcos", b"\xD9\xFF"), ("fldl2t", b"\xD9\xE9"), ("fldl2e", b"\xD9\xEA"),
                     ("fldpi", b"\xD9\xEB"), ("fldlg2", b"\xD9\xEC"), ("fldln2", b"\xD9\xED")):
        run(nm, [code], nvalid=mostly_full)


@difftest.needs_native
def test_register_aliases():
    """The aliases hardware accepts: FSTPNCE (D9 D8+i), FSTP (DF D0+i, DF D8+i),
    FXCH (DD C8+i, DF C8+i), FCOM/FCOMP (DC D0+i, DC D8+i, DE D0+i)."""
    run("fstpnce st(i)", regs_forms(0xD9, 0xD8), nvalid=mostly_full)
    run("fstp st(i) (df d0/d8)", regs_forms(0xDF, 0xD0) + regs_forms(0xDF, 0xD8), nvalid=mostly_full)
    run("fxch st(i) (dd c8/df c8)", regs_forms(0xDD, 0xC8) + regs_forms(0xDF, 0xC8), nvalid=mostly_full)
    run("fcom/fcomp st(i) (dc d0/d8, de d0)", regs_forms(0xDC, 0xD0) + regs_forms(0xDC, 0xD8)
        + regs_forms(0xDE, 0xD0), nvalid=mostly_full)
    run("ffreep st(i)", regs_forms(0xDF, 0xC0), nvalid=mostly_full)
    run("fneni/fndisi/fnsetpm", [b"\xDB\xE0", b"\xDB\xE1", b"\xDB\xE4"], nvalid=mostly_full)


def test_reserved_register_forms_ud():
    """Every ModRM >= C0 slot of D8-DF that SDM A.4.2 leaves empty is #UD."""
    valid = {0xD8: [range(0xC0, 0x100)],
             0xD9: [range(0xC0, 0xD1), range(0xD8, 0xE2), (0xE4, 0xE5), range(0xE8, 0xEF), range(0xF0, 0x100)],
             0xDA: [range(0xC0, 0xE0), (0xE9,)], 0xDB: [range(0xC0, 0xE5), range(0xE8, 0xF8)],
             0xDC: [range(0xC0, 0x100)], 0xDD: [range(0xC0, 0xF0)],
             0xDE: [range(0xC0, 0xD8), (0xD9,), range(0xE0, 0x100)], 0xDF: [range(0xC0, 0xE1), range(0xE8, 0xF8)]}
    n = 0
    for op1, rs in valid.items():
        ok = {x for r in rs for x in r}
        for modrm in range(0xC0, 0x100):
            ex, _ = difftest.emu_only(bytes([op1, modrm]))
            if modrm in ok:
                assert ex.name == "BUDGET", (hex(op1), hex(modrm), ex)
            else:
                assert ex.name == "EXCEPTION" and ex.vector == 6, (hex(op1), hex(modrm), ex)
            n += 1
    for code in (b"\xD9\x0E", b"\xDB\x26", b"\xDB\x36", b"\xDD\x2E"):
        ex, _ = difftest.emu_only(code, {"rsi": 0x10000000})
        assert ex.name == "EXCEPTION" and ex.vector == 6, code.hex()
    difftest.covered("x87 reserved encodings #UD", n + 4)


def rand_bcd(rng) -> bytes:
    k = rng.random()
    if k < 0.8:
        digits = [rng.randrange(10) for _ in range(18)]
    else:
        digits = [rng.randrange(16) for _ in range(18)]       # invalid digits too
    b = bytearray(10)
    for i in range(9):
        b[i] = digits[2 * i] | (digits[2 * i + 1] << 4)
    b[9] = rng.choice((0, 0x80, rng.getrandbits(8)))
    return bytes(b)


@difftest.needs_native
def test_bcd():
    rng = random.Random(87)
    addr, buf = su.scratch()
    for k in range(N):
        init = bytearray(64)
        init[16:26] = rand_bcd(rng)
        st = x87_state(rng, rng.choice([0, 3, 7, 8]))
        difftest.check(b"\xDF\x26", {"rsi": addr + 16}, scratch=[(addr, buf, bytes(init))], fxstate=st, note="fbld")
    difftest.covered("fbld m80bcd", N)
    for k in range(2 * N):
        init = bytearray(rng.getrandbits(8) for _ in range(64))
        st = bytearray(x87_state(rng, mostly_full(rng)))
        if rng.random() < 0.6:        # ST0 an integer-ish value in BCD range, or just beyond
            v = rng.choice([rng.uniform(-1e18, 1e18), rng.uniform(-1e6, 1e6), float(rng.choice([-1, 1]) * (10 ** 18 - 1)),
                            float(10 ** 18), -1e18 - 1e4, rng.uniform(-2, 2)])
            st[32:42] = f64_to_80(struct.unpack("<Q", struct.pack("<d", v))[0])
        difftest.check(b"\xDF\x36", {"rsi": addr + 16}, scratch=[(addr, buf, bytes(init))], fxstate=bytes(st),
                       note="fbstp")
    difftest.covered("fbstp m80bcd", 2 * N)


def env_image(rng, st: bytes, size16: bool) -> bytes:
    """A random FLDENV/FRSTOR environment (exceptions flagged only when masked)."""
    cw = rng.choice(CW) | (rng.getrandbits(6) if rng.random() < 0.3 else 0x3F)
    flags = rng.getrandbits(7) & (cw | 0x40) & 0x7F
    sw = (rng.getrandbits(3) << 11) | (rng.getrandbits(4) << 8 & 0x4700) | flags
    if flags & 0x3F & ~cw:
        sw |= 0x8080
    tw = 0
    for i in range(8):
        tw |= (3 if rng.random() < 0.4 else rng.randrange(3)) << (2 * i)
    if size16:
        return struct.pack("<HHHHHHH", cw, sw, tw, rng.getrandbits(16), 0x33, rng.getrandbits(16), 0x2B)
    return struct.pack("<HHHHHHIHHIHH", cw, 0xFFFF, sw, 0xFFFF, tw, 0xFFFF, rng.getrandbits(32), 0x33,
                       rng.getrandbits(11), rng.getrandbits(32), 0x2B, 0xFFFF)


@difftest.needs_native
def test_environment_and_state_images():
    rng = random.Random(880)
    addr, buf = su.scratch()
    n = 0
    for k in range(2 * N):
        p16 = rng.random() < 0.3
        save = rng.random() < 0.5
        st = x87_state(rng, rng.randint(0, 8))
        # FNSTENV / FNSAVE: the pointer fields (FIP, FCS, FOP, FDP, FDS) are not compared
        code = (b"\x66" if p16 else b"") + (b"\xDD\x36" if save else b"\xD9\x36")
        ign = [(addr + 16 + 6, 8)] if p16 else [(addr + 16 + 12, 16)]
        init = bytes(rng.getrandbits(8) for _ in range(128))
        scr = (addr, buf, init + bytes(64))
        difftest.check(code, {"rsi": addr + 16}, scratch=[scr], fxstate=st, ignore_mem=ign, note="fnstenv/fnsave")
        # FLDENV / FRSTOR
        env = env_image(rng, st, p16)
        regs = b"".join(rand80(rng) for _ in range(8)) if save else b""
        init = bytearray(192)
        init[16:16 + len(env) + len(regs)] = env + regs
        code = (b"\x66" if p16 else b"") + (b"\xDD\x26" if save else b"\xD9\x26")
        difftest.check(code, {"rsi": addr + 16}, scratch=[(addr, buf, bytes(init))], fxstate=st, note="fldenv/frstor")
        n += 1
    difftest.covered("fnstenv/fnsave m28/m14/m108/m94", n)
    difftest.covered("fldenv/frstor m28/m14/m108/m94", n)


# control words with exceptions unmasked: the instruction then runs whole on
# the host FPU (no store on invalid/zero-divide, biased results on overflow
# and underflow, ES and B set); the pending #MF itself is not delivered
CW_UNMASKED = [0x0360, 0x0372, 0x037E, 0x035F, 0x0B60, 0x0F7B, 0x037D, 0x0377, 0x036F, 0x0340]


@difftest.needs_native
def test_unmasked_exceptions():
    fa = [bytes([op, 0xC0 + 8 * j + i]) for op in (0xD8, 0xDC, 0xDE) for j in (0, 1, 4, 5, 6, 7) for i in range(8)]
    run("x87 arith st(i) (unmasked)", fa, n=2 * N, nvalid=mostly_full, cws=CW_UNMASKED)
    run("x87 arith m64 (unmasked)", [bytes([0xDC, 0x06 | (j << 3)]) for j in range(8)], mem=8,
        nvalid=mostly_full, cws=CW_UNMASKED)
    run("x87 arith m32int (unmasked)", [bytes([0xDA, 0x06 | (j << 3)]) for j in range(8)], mem=4, ints=True,
        nvalid=mostly_full, cws=CW_UNMASKED)
    run("fst/fstp m32/m64, fist/fistp/fisttp (unmasked)", [b"\xD9\x16", b"\xD9\x1E", b"\xDD\x16", b"\xDD\x1E",
        b"\xDB\x16", b"\xDB\x1E", b"\xDF\x3E", b"\xDD\x0E"], mem=8, nvalid=mostly_full, cws=CW_UNMASKED)
    run("fld m32/m64/m80 (unmasked)", [b"\xD9\x06", b"\xDD\x06", b"\xDB\x2E"], mem=10,
        nvalid=lambda r: r.choice([0, 3, 7, 8]), cws=CW_UNMASKED)
    run("fsqrt/frndint/fscale/fprem/ftst/fxam (unmasked)", [b"\xD9\xFA", b"\xD9\xFC", b"\xD9\xFD", b"\xD9\xF8",
        b"\xD9\xE4", b"\xD9\xE5"], nvalid=mostly_full, cws=CW_UNMASKED)
    run("fsin/fcos/fptan/fpatan/fyl2x/f2xm1 (unmasked)", [b"\xD9\xFE", b"\xD9\xFF", b"\xD9\xF2", b"\xD9\xF3",
        b"\xD9\xF1", b"\xD9\xF0"], nvalid=mostly_full, cws=CW_UNMASKED)
    run("fcom/fucom/fcomi/fucomip (unmasked)", regs_forms(0xD8, 0xD0) + regs_forms(0xDD, 0xE0)
        + regs_forms(0xDB, 0xF0) + regs_forms(0xDF, 0xE8), nvalid=mostly_full, cws=CW_UNMASKED)
    codes = [bytes([op1, base + i]) for op1 in (0xDA, 0xDB) for base in (0xC0, 0xC8, 0xD0, 0xD8) for i in range(8)]
    run("fcmovcc (unmasked)", codes, nvalid=mostly_full, cws=CW_UNMASKED)


@difftest.needs_native
def test_partial_remainder_and_out_of_range():
    """FPREM/FPREM1 with exponent differences beyond 63 (C2 = 1, partial
    remainder) and FSIN/FCOS/FPTAN/FSINCOS with |x| >= 2^63 (C2 = 1, operand
    unchanged)."""
    rng = random.Random(63)
    addr, buf = su.scratch()
    n = 0
    for k in range(2 * N):
        code = rng.choice([b"\xD9\xF8", b"\xD9\xF5", b"\xD9\xFE", b"\xD9\xFF", b"\xD9\xF2", b"\xD9\xFB"])
        st = bytearray(x87_state(rng, rng.choice([2, 3, 8]), top=rng.randrange(8)))
        e0 = rng.choice([0x403E, 0x403F, 0x4040, 0x4100, 0x43FF, 0x7FFE, 0x3FFF + rng.randrange(200)])
        st[32:42] = struct.pack("<QH", (1 << 63) | rng.getrandbits(63), (rng.getrandbits(1) << 15) | e0)
        st[48:58] = struct.pack("<QH", (1 << 63) | rng.getrandbits(63), rng.choice([0x3FFF, 0x3FFE, 0x4000, 0x3F00]))
        difftest.check(code, {"rsi": addr + 16}, fxstate=bytes(st), note="fprem/fsin large")
        n += 1
    difftest.covered("fprem/fprem1 partial, fsin/fcos/fptan/fsincos out of range", n)


def test_pending_exception_mf():
    """With ES set (an unmasked exception flagged), waiting x87 instructions
    take #MF before doing anything; the no-wait ones and FLDCW/FLDENV/FRSTOR
    do not; FNCLEX clears the condition."""
    side = difftest.emu_side()
    base = 0x10050000
    side.ensure_mapped(base, 0x1000)
    side.m.write(base, struct.pack("<H", 0x037F) + bytes(126))
    v = side.m.vcpu
    img = bytearray(x87_state(random.Random(16), 3))
    struct.pack_into("<HH", img, 0, 0x0372, 0x8081 | (7 << 11))   # IE flagged, unmasked: ES, B
    n = 0
    waiting = [b"\xD8\xC1", b"\xD9\xE8", b"\xDD\x06", b"\xDB\x06", b"\xD9\xFE", b"\xDF\x36", b"\xDD\xD1", b"\x9B"]
    nowait = [b"\xDB\xE2", b"\xDB\xE3", b"\xDF\xE0", b"\xD9\x3E", b"\xDD\x3E", b"\xD9\x36", b"\xDD\x36",
              b"\xD9\x2E", b"\xD9\x26", b"\xDD\x26"]
    for code in waiting + nowait:
        v.fxrstor(bytes(img))
        ex, _ = difftest.emu_only(code, {"rsi": base})
        if code in waiting:
            assert ex.name == "EXCEPTION" and ex.vector == 16, (code.hex(), ex)
            assert v.fpu_state["fsw"] == 0x8081 | (7 << 11)          # nothing done
        else:
            assert ex.name == "BUDGET", (code.hex(), ex)
        n += 1
    v.fxrstor(bytes(img))
    ex, _ = difftest.emu_only(b"\xDB\xE2\x9B", {}, budget=2)        # FNCLEX; FWAIT
    assert ex.name == "BUDGET" and not v.fpu_state["fsw"] & 0x8080
    v.fxrstor(x87_state(random.Random(17), 0))
    difftest.covered("x87 pending exception #MF / no-wait forms (emu)", n + 1)
