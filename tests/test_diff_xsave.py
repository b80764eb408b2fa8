"""Differential tests: XSAVE, XSAVE64, XSAVEOPT, XSAVEC, XRSTOR and XRSTOR64
against the host CPU for the x87 (0) and SSE (1) state components: the
requested-feature bitmap EDX:EAX ranges over those two (the host's XCR0 has
more), the saved legacy region and XSAVE header (XSTATE_BV, XCOMP_BV) are
compared byte for byte, and after XRSTOR the x87/SSE registers. The CPUID
leaf 0xD values the machine advertises are checked against what these
instructions write."""
from __future__ import annotations

import random
import struct

import difftest
import emu
import sse_helpers as su
import test_diff_x87 as x87

N = 200


def fx_state(rng, init_like=False) -> bytes:
    """A random x87 + SSE state (FXSAVE64 image); sometimes the initial
    configuration of one or both components."""
    img = bytearray(x87.x87_state(rng, rng.randint(0, 8)))
    struct.pack_into("<I", img, 24, rng.choice(su.MXCSR_MODES))
    for i in range(16):
        img[160 + 16 * i:176 + 16 * i] = su.vec_int(rng)
    if init_like:
        k = rng.randrange(3)
        if k in (0, 2):       # x87 in its initial configuration
            img[0:32] = struct.pack("<HHBBH", 0x037F, 0, 0, 0, 0) + bytes(24)
            struct.pack_into("<I", img, 24, rng.choice(su.MXCSR_MODES))
            img[32:160] = bytes(128)
        if k in (1, 2):       # XMM registers all zero
            img[160:416] = bytes(256)
    return bytes(img)


def _aligned_scratch():
    addr, buf = su.scratch()
    off = (-(addr + 0)) & 63
    return addr, buf, off


SAVES = {
    "xsave": b"\x0F\xAE\x26", "xsave64": b"\x48\x0F\xAE\x26",
    "xsaveopt": b"\x0F\xAE\x36", "xsaveopt64": b"\x48\x0F\xAE\x36",
    "xsavec": b"\x0F\xC7\x26", "xsavec64": b"\x48\x0F\xC7\x26",
}


@difftest.needs_native
def test_xsave_forms():
    addr, buf, off = _aligned_scratch()
    for name, code in SAVES.items():
        rng = random.Random(hash(name) & 0xFFFF)
        for k in range(N):
            rfbm = rng.choice([0, 1, 2, 3, 3, 3])
            st = fx_state(rng, init_like=rng.random() < 0.3)
            init = bytearray(rng.getrandbits(8) for _ in range(off + 640))
            # the header's reserved bytes as software leaves them (XSAVE keeps them)
            hdr = off + 512
            init[hdr:hdr + 64] = bytes(64) if rng.random() < 0.5 else \
                struct.pack("<QQ", rng.getrandbits(64) & ~3, 0) + bytes(48)
            regs = {"rsi": addr + off, "rax": rfbm | (rng.getrandbits(32) << 32 & 0xFFFFFFFF00000000),
                    "rdx": 0}
            # the standard forms leave bytes 416-511 alone; the FIP/FDP/FOP fields
            # depend on the host's pointer tracking (AMD saves them only with ES set)
            # MXCSR_MASK: emu's is 0xFFFF; the AMD host also has bit 17 (MM, misaligned SSE)
            ign = [(addr + off + 6, 2), (addr + off + 8, 16), (addr + off + 28, 4)]
            difftest.check(code, regs, scratch=[(addr, buf, bytes(init))], fxstate=st, ignore_mem=ign, note=name)
        difftest.covered(name + " m", N)


def _xsave_image(rng, compacted: bool) -> bytes:
    st = bytearray(fx_state(rng))
    # the pointer fields: zero (FXSAVE64 layout)
    st[6:8] = bytes(2)
    st[8:24] = bytes(16)
    st[416:512] = bytes(rng.getrandbits(8) for _ in range(96))
    bv = rng.choice([0, 1, 2, 3, 3])
    hdr = struct.pack("<QQ", bv, (3 | (1 << 63)) if compacted else 0) + bytes(48)
    return bytes(st) + hdr


@difftest.needs_native
def test_xrstor_forms():
    addr, buf, off = _aligned_scratch()
    for name, code in (("xrstor", b"\x0F\xAE\x2E"), ("xrstor64", b"\x48\x0F\xAE\x2E")):
        rng = random.Random(len(name) * 7)
        n = 0
        for compacted in (False, True):
            for k in range(N // 2):
                rfbm = rng.choice([0, 1, 2, 3, 3, 3])
                img = _xsave_image(rng, compacted)
                init = bytearray(off + 640)
                init[off:off + 576] = img
                st = fx_state(rng)
                regs = {"rsi": addr + off, "rax": rfbm, "rdx": 0}
                difftest.check(code, regs, scratch=[(addr, buf, bytes(init))], fxstate=st, note=name)
                n += 1
        difftest.covered(name + " m (standard and compacted)", n)


def test_xrstor_faults():
    """#GP(0): misaligned, reserved header bits, XSTATE_BV bits outside XCR0,
    reserved MXCSR bits; #UD without CR4.OSXSAVE."""
    side = difftest.emu_side()
    base = 0x10040000
    side.ensure_mapped(base, 0x2000)
    good = bytearray(576)
    struct.pack_into("<HH", good, 0, 0x037F, 0)
    struct.pack_into("<I", good, 24, 0x1F80)
    struct.pack_into("<Q", good, 512, 3)
    cases = []
    bad = bytearray(good); struct.pack_into("<Q", bad, 512, 8); cases.append(bytes(bad))          # bit 3 not in XCR0
    bad = bytearray(good); bad[530] = 1; cases.append(bytes(bad))                               # reserved header
    bad = bytearray(good); struct.pack_into("<Q", bad, 520, 1); cases.append(bytes(bad))          # XCOMP_BV, standard
    bad = bytearray(good); struct.pack_into("<I", bad, 24, 0x10000); cases.append(bytes(bad))     # MXCSR reserved
    for img in cases:
        side.m.write(base, img)
        ex, _ = difftest.emu_only(b"\x0F\xAE\x2E", {"rsi": base, "rax": 3, "rdx": 0})
        assert ex.name == "EXCEPTION" and ex.vector == 13
    side.m.write(base, bytes(good))
    ex, _ = difftest.emu_only(b"\x0F\xAE\x2E", {"rsi": base + 16, "rax": 3, "rdx": 0})
    assert ex.name == "EXCEPTION" and ex.vector == 13
    ex, _ = difftest.emu_only(b"\x0F\xAE\x2E", {"rsi": base, "rax": 3, "rdx": 0})
    assert ex.name == "BUDGET"
    v = side.m.vcpu
    cr4 = v.cr4
    try:
        v.cr4 = cr4 & ~(1 << 18)
        for code in (b"\x0F\xAE\x2E", b"\x0F\xAE\x26", b"\x0F\xC7\x26", b"\x0F\xAE\x36"):
            ex, _ = difftest.emu_only(code, {"rsi": base, "rax": 3, "rdx": 0})
            assert ex.name == "EXCEPTION" and ex.vector == 6
        assert not (v.cpuid(1)[2] >> 27) & 1
    finally:
        v.cr4 = cr4
    difftest.covered("xrstor/xsave #GP/#UD", 10)


def test_cpuid_xsave_leaves():
    m = emu.Machine(1 << 20, paging=True)
    v = m.vcpu
    eax, ebx, ecx, edx = v.cpuid(1)
    assert (ecx >> 26) & 1 and (ecx >> 27) & 1          # XSAVE, OSXSAVE (CR4.OSXSAVE set by Machine)
    assert (edx >> 23) & 1 and (edx >> 24) & 1 and edx & 1   # MMX FXSR FPU
    assert v.cr4 & (1 << 18)
    assert v.cpuid(0)[0] >= 0xD
    # x87, SSE and AVX (the AVX component: 256 bytes at 576); EBX follows XCR0
    assert v.cpuid(0xD, 0) == (7, 832, 832, 0)
    assert v.cpuid(0xD, 2) == (256, 576, 0, 0)
    eax, ebx, ecx, edx = v.cpuid(0xD, 1)
    assert eax == 0xF and ebx == 832 and ecx == 0   # XSAVEOPT, XSAVEC, XGETBV ECX=1, XSAVES; no XSS bits
    assert v.xcr0 == 7
    v.xcr0 = 3
    assert v.cpuid(0xD, 0)[1] == 576 and v.cpuid(0xD, 1)[1] == 576
