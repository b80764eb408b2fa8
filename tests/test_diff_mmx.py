"""Differential tests: MMX instructions and the MMX forms of SSE/SSSE3
instructions against the host CPU. The starting state is a random x87
state (TOP, tags, 80-bit registers whose low 64 bits are the MMX
registers) plus XMM registers and MXCSR, loaded with FXRSTOR64 on both
sides; afterwards GPRs, flags, memory, XMM0-15, MXCSR, the x87 control,
status (TOP) and tag words and ST0-7 (the MMX registers with their
exponent fields) are compared."""
from __future__ import annotations

import random
import struct
import zlib

import difftest
import sse_helpers as su

N = 200

EDGE_LANES = {1: [0, 1, 0x7F, 0x80, 0x81, 0xFE, 0xFF],
              2: [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0x8001, 0xFFFF],
              4: [0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF],
              8: [0, 1, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF]}


def rand_mm(rng) -> int:
    k = rng.random()
    if k < 0.4:
        return rng.getrandbits(64)
    if k < 0.5:
        return rng.getrandbits(rng.randint(1, 64))
    w = rng.choice([1, 2, 4, 8])
    v = 0
    for j in range(8 // w):
        lane = rng.choice(EDGE_LANES[w]) if rng.random() < 0.7 else rng.getrandbits(8 * w)
        v |= lane << (8 * w * j)
    return v


def state(rng, mxcsr=None) -> bytes:
    """FXSAVE64 image: random TOP, tags and registers; MMi is physical register
    i, which FXSAVE stores as ST((i - TOP) & 7)."""
    img = bytearray(512)
    top = rng.randrange(8)
    abr = rng.getrandbits(8) if rng.random() < 0.7 else rng.choice([0, 0xFF])
    for phys in range(8):
        st = (phys - top) & 7
        exp = rng.choice([0xFFFF, 0xFFFF, rng.getrandbits(16), 0x3FFF])
        img[32 + 16 * st:42 + 16 * st] = struct.pack("<QH", rand_mm(rng), exp)
    fsw = (top << 11) | (rng.getrandbits(4) << 8 & 0x4700)
    struct.pack_into("<HHBBH", img, 0, rng.choice([0x037F, 0x027F, 0x0F7F]), fsw, abr, 0, 0)
    struct.pack_into("<I", img, 24, rng.choice(su.MXCSR_MODES) if mxcsr is None else mxcsr)
    for i in range(16):
        img[160 + 16 * i:176 + 16 * i] = (rand_mm(rng) | rand_mm(rng) << 64).to_bytes(16, "little")
    return bytes(img)


def enc(opmap: int, opc: int, reg: int, rm: int, mem: bool, imm=None, pfx=None, rex=0) -> bytes:
    b = bytearray()
    if pfx is not None:
        b.append(pfx)
    if rex:
        b.append(0x40 | rex)
    b.append(0x0F)
    if opmap == 2:
        b.append(0x38)
    elif opmap == 3:
        b.append(0x3A)
    b.append(opc)
    b.append(((reg & 7) << 3) | (6 if mem else 0xC0 | (rm & 7)))
    if imm is not None:
        b.append(imm & 0xFF)
    return bytes(b)


GPRS = ("rax", "rbx", "rcx", "rdx", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


def run(name, opmap, opc, *, n=N, msize=8, mem=True, reg=True, imm=None, pfx=None, rexw=False,
        rex_rand=True, gpr_reg=False, gpr_rm=False, mem_store=False, regs_fn=None, mxcsr=None):
    """n register cases and n memory cases of one form. imm: None, "rand" or a callable."""
    rng = random.Random(zlib.crc32(name.encode()))
    addr, buf = su.scratch()
    count = 0
    variants = ([False] if reg else []) + ([True] if mem else [])
    for use_mem in variants:
        for k in range(n):
            r = rng.randrange(8)
            m = rng.randrange(8)
            rex = 0
            if gpr_reg:
                r = rng.choice([x for x in range(16) if x not in (4, 6)])
                rex |= (r >> 3) << 2
            if gpr_rm and not use_mem:
                m = rng.choice([x for x in range(16) if x not in (4, 6)])
                rex |= m >> 3
            if rexw:
                rex |= 8
            if rex_rand and not rex and rng.random() < 0.2:
                # REX.R/REX.B do not select MMX registers 8-15 (REX.B would change the base of [rsi])
                rex = rng.getrandbits(3) & (0x4 if use_mem else 0x5)
            im = rng.randrange(256) if imm == "rand" else (imm(rng) if callable(imm) else imm)
            code = enc(opmap, opc, r, m, use_mem, im, pfx, rex)
            regs = {g: (rand_mm(rng) if rng.random() < 0.5 else rng.getrandbits(64)) for g in GPRS}
            regs["rsi"] = addr + 64
            if regs_fn:
                regs.update(regs_fn(rng, addr))
            init = bytearray(rng.getrandbits(8) for _ in range(256))
            if use_mem and not mem_store:
                init[64:64 + 16] = (rand_mm(rng) | rand_mm(rng) << 64).to_bytes(16, "little")
            st = state(rng, mxcsr(rng) if mxcsr else None)
            difftest.check(code, regs, 0x202 | (rng.getrandbits(12) & 0x8D5), scratch=[(addr, buf, bytes(init))],
                           fxstate=st, note=name)
            count += 1
    difftest.covered(name, count)
    return count


MMX2 = [
    (1, 0x60, "punpcklbw"), (1, 0x61, "punpcklwd"), (1, 0x62, "punpckldq"), (1, 0x63, "packsswb"),
    (1, 0x64, "pcmpgtb"), (1, 0x65, "pcmpgtw"), (1, 0x66, "pcmpgtd"), (1, 0x67, "packuswb"),
    (1, 0x68, "punpckhbw"), (1, 0x69, "punpckhwd"), (1, 0x6A, "punpckhdq"), (1, 0x6B, "packssdw"),
    (1, 0x74, "pcmpeqb"), (1, 0x75, "pcmpeqw"), (1, 0x76, "pcmpeqd"),
    (1, 0xD1, "psrlw"), (1, 0xD2, "psrld"), (1, 0xD3, "psrlq"), (1, 0xD4, "paddq"), (1, 0xD5, "pmullw"),
    (1, 0xD8, "psubusb"), (1, 0xD9, "psubusw"), (1, 0xDA, "pminub"), (1, 0xDB, "pand"), (1, 0xDC, "paddusb"),
    (1, 0xDD, "paddusw"), (1, 0xDE, "pmaxub"), (1, 0xDF, "pandn"), (1, 0xE0, "pavgb"), (1, 0xE1, "psraw"),
    (1, 0xE2, "psrad"), (1, 0xE3, "pavgw"), (1, 0xE4, "pmulhuw"), (1, 0xE5, "pmulhw"), (1, 0xE8, "psubsb"),
    (1, 0xE9, "psubsw"), (1, 0xEA, "pminsw"), (1, 0xEB, "por"), (1, 0xEC, "paddsb"), (1, 0xED, "paddsw"),
    (1, 0xEE, "pmaxsw"), (1, 0xEF, "pxor"), (1, 0xF1, "psllw"), (1, 0xF2, "pslld"), (1, 0xF3, "psllq"),
    (1, 0xF4, "pmuludq"), (1, 0xF5, "pmaddwd"), (1, 0xF6, "psadbw"), (1, 0xF8, "psubb"), (1, 0xF9, "psubw"),
    (1, 0xFA, "psubd"), (1, 0xFB, "psubq"), (1, 0xFC, "paddb"), (1, 0xFD, "paddw"), (1, 0xFE, "paddd"),
    (2, 0x00, "pshufb"), (2, 0x01, "phaddw"), (2, 0x02, "phaddd"), (2, 0x03, "phaddsw"), (2, 0x04, "pmaddubsw"),
    (2, 0x05, "phsubw"), (2, 0x06, "phsubd"), (2, 0x07, "phsubsw"), (2, 0x08, "psignb"), (2, 0x09, "psignw"),
    (2, 0x0A, "psignd"), (2, 0x0B, "pmulhrsw"), (2, 0x1C, "pabsb"), (2, 0x1D, "pabsw"), (2, 0x1E, "pabsd"),
]


@difftest.needs_native
def test_mmx_two_operand_table():
    for opmap, opc, nm in MMX2:
        # N // 2 register and N // 2 memory cases per form
        run(nm + " mm, mm/m" + ("32" if opc in (0x60, 0x61, 0x62) and opmap == 1 else "64"), opmap, opc, n=N // 2)


@difftest.needs_native
def test_shift_counts():
    """Shift counts 0, 1, size-1, size, over, and huge 64-bit counts."""
    rng = random.Random(5)
    addr, buf = su.scratch()
    n = 0
    for opc, bits in ((0xD1, 16), (0xD2, 32), (0xD3, 64), (0xE1, 16), (0xE2, 32), (0xF1, 16), (0xF2, 32), (0xF3, 64)):
        for cnt in (0, 1, bits - 1, bits, bits + 1, 255, 256, 1 << 32, (1 << 64) - 1, 1 << 63):
            for k in range(3):
                init = bytearray(256)
                init[64:72] = cnt.to_bytes(8, "little")
                code = enc(1, opc, rng.randrange(8), 0, True)
                difftest.check(code, {"rsi": addr + 64}, scratch=[(addr, buf, bytes(init))], fxstate=state(rng))
                n += 1
    difftest.covered("psrl/psra/psll mm, m64 count edges", n)


@difftest.needs_native
def test_shift_immediate_groups():
    for opc, subs in ((0x71, (2, 4, 6)), (0x72, (2, 4, 6)), (0x73, (2, 6))):
        for sub in subs:
            _shift_imm(opc, sub, {0x71: 16, 0x72: 32, 0x73: 64}[opc])


def _shift_imm(opc, sub, bits):
    rng = random.Random(opc * 8 + sub)
    for k in range(N):
        rm = rng.randrange(8)
        im = rng.choice([0, 1, bits - 1, bits, bits + 1, 255, rng.randrange(256)])
        code = bytes([0x0F, opc, 0xC0 | (sub << 3) | rm, im])
        difftest.check(code, {}, fxstate=state(rng))
    difftest.covered("shift imm 0f %02x /%d mm, imm8" % (opc, sub), N)


@difftest.needs_native
def test_moves():
    run("movd mm, r/m32", 1, 0x6E, gpr_rm=True, msize=4)
    run("movq mm, r/m64", 1, 0x6E, gpr_rm=True, rexw=True)
    run("movd r/m32, mm", 1, 0x7E, gpr_rm=True, mem_store=True)
    run("movq r/m64, mm", 1, 0x7E, gpr_rm=True, rexw=True, mem_store=True)
    run("movq mm, mm/m64", 1, 0x6F)
    run("movq mm/m64, mm", 1, 0x7F, mem_store=True)
    run("movntq m64, mm", 1, 0xE7, reg=False, mem_store=True)
    run("pshufw mm, mm/m64, imm8", 1, 0x70, imm="rand")
    run("palignr mm, mm/m64, imm8", 3, 0x0F, imm=lambda r: r.choice([0, 1, 7, 8, 9, 15, 16, 17, r.randrange(256)]))
    run("pinsrw mm, r32/m16, imm8", 1, 0xC4, gpr_rm=True, imm="rand")
    run("pextrw r32, mm, imm8", 1, 0xC5, mem=False, gpr_reg=True, imm="rand")
    run("pextrw r64, mm, imm8", 1, 0xC5, mem=False, gpr_reg=True, rexw=True, imm="rand")
    run("pmovmskb r32, mm", 1, 0xD7, mem=False, gpr_reg=True)
    run("movq2dq xmm, mm", 1, 0xD6, mem=False, pfx=0xF3)
    run("movdq2q mm, xmm", 1, 0xD6, mem=False, pfx=0xF2)


@difftest.needs_native
def test_emms():
    rng = random.Random(77)
    for k in range(N):
        difftest.check(b"\x0F\x77", {}, fxstate=state(rng))
    difftest.covered("emms", N)


def _maskmov_regs(rng, addr):
    return {"rdi": addr + rng.randrange(0, 128)}


@difftest.needs_native
def test_maskmov():
    run("maskmovq mm, mm", 1, 0xF7, mem=False, regs_fn=_maskmov_regs, mem_store=True)
    run("maskmovdqu xmm, xmm", 1, 0xF7, mem=False, pfx=0x66, regs_fn=_maskmov_regs, mem_store=True)


def _f32_pair(rng):
    return su.rand_f32(rng) | su.rand_f32(rng) << 32


@difftest.needs_native
def test_conversions():
    masked = lambda r: r.choice(su.MXCSR_MODES)
    run("cvtpi2ps xmm, mm/m64", 1, 0x2A, mxcsr=masked)
    run("cvtpi2pd xmm, mm/m64", 1, 0x2A, pfx=0x66, mxcsr=masked)
    # the float sources: XMM registers / memory with float specials
    for nm, opc, pfx in (("cvtps2pi mm, xmm/m64", 0x2D, None), ("cvttps2pi mm, xmm/m64", 0x2C, None),
                         ("cvtpd2pi mm, xmm/m128", 0x2D, 0x66), ("cvttpd2pi mm, xmm/m128", 0x2C, 0x66)):
        _cvt_from_xmm(nm, opc, pfx)


def _cvt_from_xmm(nm, opc, pfx):
    rng = random.Random(zlib.crc32(nm.encode()))
    addr, buf = su.scratch()
    gen = su.vec_f64 if pfx == 0x66 else su.vec_f32
    for use_mem in (False, True):
        for k in range(N):
            code = enc(1, opc, rng.randrange(8), rng.randrange(8), use_mem, None, pfx,
                       rng.choice([0, 0, 4] if use_mem else [0, 0, 1, 4, 5]))
            st = bytearray(state(rng))
            for i in range(16):
                st[160 + 16 * i:176 + 16 * i] = gen(rng)
            init = bytearray(256)
            init[64:80] = gen(rng)
            difftest.check(code, {"rsi": addr + 64}, scratch=[(addr, buf, bytes(init))], fxstate=bytes(st), note=nm)
    difftest.covered(nm, 2 * N)


def test_mmx_faults():
    """CR0.EM: #UD; CR0.TS: #NM; a pending x87 exception: #MF; EMMS empties the tags."""
    ex, v = difftest.emu_only(b"\x0F\x77")
    assert ex.name == "BUDGET" and v.fpu_state["ftw"] == 0xFFFF
    cr0 = v.cr0
    try:
        v.cr0 = cr0 | 0x4
        ex, _ = difftest.emu_only(b"\x0F\xFC\xC1")
        assert ex.name == "EXCEPTION" and ex.vector == 6
        v.cr0 = cr0 | 0x8
        ex, _ = difftest.emu_only(b"\x0F\xFC\xC1")
        assert ex.name == "EXCEPTION" and ex.vector == 7
    finally:
        v.cr0 = cr0
    img = bytearray(state(random.Random(1)))
    struct.pack_into("<HH", img, 0, 0x0370, 0x8081)        # IE unmasked and flagged: ES pending
    v.fxrstor(bytes(img))
    ex, _ = difftest.emu_only(b"\x0F\xFC\xC1")
    assert ex.name == "EXCEPTION" and ex.vector == 16
    v.fxrstor(state(random.Random(2)))
    difftest.covered("mmx #UD/#NM/#MF", 3)
