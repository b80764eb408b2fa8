"""Differential tests: SSE data movement (full, half and scalar moves,
MOVD/MOVQ, masks, extracts and inserts), MXCSR load/store, FXSAVE, and
alignment faults."""
from __future__ import annotations

import random
import struct

import difftest
import sse_helpers as su

N = 200

# (name, prefix, map, opcode, kind, options)
MOVES = [
    ("movups load", None, 1, 0x10, {}), ("movupd load", 0x66, 1, 0x10, {}),
    ("movups store", None, 1, 0x11, {}), ("movupd store", 0x66, 1, 0x11, {}),
    ("movaps load", None, 1, 0x28, {}), ("movapd load", 0x66, 1, 0x28, {}),
    ("movaps store", None, 1, 0x29, {}), ("movapd store", 0x66, 1, 0x29, {}),
    ("movdqa load", 0x66, 1, 0x6F, {}), ("movdqu load", 0xF3, 1, 0x6F, {}),
    ("movdqa store", 0x66, 1, 0x7F, {}), ("movdqu store", 0xF3, 1, 0x7F, {}),
    ("movdqu load misaligned", 0xF3, 1, 0x6F, {"misalign": 5, "reg_only": False}),
    ("movups store misaligned", None, 1, 0x11, {"misalign": 9}),
    ("lddqu", 0xF2, 1, 0xF0, {"mem_only": True, "misalign": 3}),
    ("movntps", None, 1, 0x2B, {"mem_only": True}), ("movntpd", 0x66, 1, 0x2B, {"mem_only": True}),
    ("movntdq", 0x66, 1, 0xE7, {"mem_only": True}), ("movntdqa", 0x66, 2, 0x2A, {"mem_only": True}),
    ("movss load", 0xF3, 1, 0x10, {}), ("movss store", 0xF3, 1, 0x11, {}),
    ("movsd load", 0xF2, 1, 0x10, {}), ("movsd store", 0xF2, 1, 0x11, {}),
    ("movq xmm, xmm/m64", 0xF3, 1, 0x7E, {}), ("movq xmm/m64, xmm", 0x66, 1, 0xD6, {}),
    ("movlps/movhlps", None, 1, 0x12, {}), ("movlpd load", 0x66, 1, 0x12, {"mem_only": True}),
    ("movhps/movlhps", None, 1, 0x16, {}), ("movhpd load", 0x66, 1, 0x16, {"mem_only": True}),
    ("movlps store", None, 1, 0x13, {"mem_only": True}), ("movlpd store", 0x66, 1, 0x13, {"mem_only": True}),
    ("movhps store", None, 1, 0x17, {"mem_only": True}), ("movhpd store", 0x66, 1, 0x17, {"mem_only": True}),
    ("movsldup", 0xF3, 1, 0x12, {}), ("movshdup", 0xF3, 1, 0x16, {}), ("movddup", 0xF2, 1, 0x12, {}),
    ("movd xmm, r/m32", 0x66, 1, 0x6E, {"gpr_rm": True}),
    ("movq xmm, r/m64", 0x66, 1, 0x6E, {"gpr_rm": True, "rexw": True}),
    ("movd r/m32, xmm", 0x66, 1, 0x7E, {"gpr_rm": True}),
    ("movq r/m64, xmm", 0x66, 1, 0x7E, {"gpr_rm": True, "rexw": True}),
    ("movmskps", None, 1, 0x50, {"gpr_reg": True, "reg_only": True}),
    ("movmskpd", 0x66, 1, 0x50, {"gpr_reg": True, "reg_only": True}),
    ("pmovmskb", 0x66, 1, 0xD7, {"gpr_reg": True, "reg_only": True}),
    ("pextrw r32, xmm, imm8", 0x66, 1, 0xC5, {"gpr_reg": True, "reg_only": True, "imm": "rand"}),
    ("pinsrw", 0x66, 1, 0xC4, {"gpr_rm": True, "imm": "rand"}),
    ("pextrb", 0x66, 3, 0x14, {"gpr_rm": True, "imm": "rand"}),
    ("pextrw r/m16", 0x66, 3, 0x15, {"gpr_rm": True, "imm": "rand"}),
    ("pextrd", 0x66, 3, 0x16, {"gpr_rm": True, "imm": "rand"}),
    ("pextrq", 0x66, 3, 0x16, {"gpr_rm": True, "imm": "rand", "rexw": True}),
    ("extractps", 0x66, 3, 0x17, {"gpr_rm": True, "imm": "rand"}),
    ("pinsrb", 0x66, 3, 0x20, {"gpr_rm": True, "imm": "rand"}),
    ("pinsrd", 0x66, 3, 0x22, {"gpr_rm": True, "imm": "rand"}),
    ("pinsrq", 0x66, 3, 0x22, {"gpr_rm": True, "imm": "rand", "rexw": True}),
    ("movnti", None, 1, 0xC3, {"mem_only": True}),
    ("movnti64", None, 1, 0xC3, {"mem_only": True, "rexw": True}),
]


@difftest.needs_native
def test_moves():
    for i, (name, pfx, m, opc, opts) in enumerate(MOVES):
        opts = dict(opts)
        mem_only = opts.pop("mem_only", False)
        if mem_only:
            # memory form only: run_form's first half is the register form, so
            # use an even split and skip the register half by building cases here
            _mem_only_form(name, pfx, m, opc, 5000 + i, **opts)
            continue
        su.run_form(name, pfx, m, opc, "int", N, 5000 + i, **opts)


def _mem_only_form(name, pfx, m, opc, seed, misalign=0, rexw=False):
    rng = random.Random(seed)
    addr, buf = su.scratch()
    for k in range(N):
        reg = rng.randrange(16)
        code = su.encode(pfx, m, opc, reg, 0, True, None, rexw)
        init = bytearray(rng.getrandbits(8) for _ in range(256))
        regs = {"rsi": addr + 64 + misalign}
        for g in ("rax", "rbx", "rcx", "rdx", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"):
            regs[g] = rng.getrandbits(64)
        difftest.check(code, regs, scratch=[(addr, buf, bytes(init))],
                       xmm=[su.vec_int(rng) for _ in range(16)], mxcsr=0x1F80, note=name)
    difftest.covered(name, N)


@difftest.needs_native
def test_ldmxcsr_stmxcsr():
    rng = random.Random(6000)
    addr, buf = su.scratch()
    for k in range(N):
        v = rng.choice(su.MXCSR_MODES) | (rng.getrandbits(6) if k % 2 else 0)
        init = bytearray(256)
        init[64:68] = struct.pack("<I", v)
        # ldmxcsr [rsi]; stmxcsr [rsi+16]
        difftest.check(bytes.fromhex("0fae16"), {"rsi": addr + 64}, scratch=[(addr, buf, bytes(init))],
                       xmm=[su.vec_int(rng) for _ in range(16)], mxcsr=0x1F80)
        difftest.check(bytes.fromhex("0fae5e10"), {"rsi": addr + 64}, scratch=[(addr, buf, bytes(init))],
                       xmm=[su.vec_int(rng) for _ in range(16)], mxcsr=v)
    difftest.covered("ldmxcsr", N)
    difftest.covered("stmxcsr", N)


@difftest.needs_native
def test_fxsave_fxrstor():
    """FXSAVE64 of the SSE state matches the host's image (x87 part empty)
    except MXCSR_MASK (the host's AMD part also has bit 17, misaligned-SSE
    mode, which emu does not implement: emu reports 0xFFFF); FXRSTOR64 loads
    XMM registers and MXCSR."""
    rng = random.Random(6100)
    addr, buf = su.scratch()
    for k in range(100):
        xmm = [su.vec_int(rng) for _ in range(16)]
        init = bytearray(1024)
        init[28:32] = b"\xff\xff\x02\x00"      # MXCSR_MASK as the host writes it
        # fxsave64 [rsi]: compare everything but MXCSR_MASK
        csr = rng.choice(su.MXCSR_MODES)
        res = difftest.native.run(bytes.fromhex("480fae06"), {"rsi": addr}, xmm=xmm, mxcsr=csr)
        host_mask = bytes(buf[28:32])
        difftest.check(bytes.fromhex("480fae06"), {"rsi": addr}, scratch=[(addr, buf, bytes(init))],
                       xmm=xmm, mxcsr=csr, ignore_mem=[(addr + 28, 4)])
        assert struct.unpack("<I", host_mask)[0] & 0xFFFF == 0xFFFF
        # fxrstor64 [rsi+512] from a valid image with other XMM values and MXCSR
        img = bytearray(512)
        struct.pack_into("<HHBBH", img, 0, 0x37F, 0, 0, 0, 0)
        struct.pack_into("<I", img, 24, rng.choice(su.MXCSR_MODES))
        for i in range(16):
            img[160 + 16 * i:176 + 16 * i] = su.vec_int(rng)
        init[512:1024] = img
        difftest.check(bytes.fromhex("480fae8e00020000"), {"rsi": addr}, scratch=[(addr, buf, bytes(init))],
                       xmm=xmm, mxcsr=0x1F80)
    difftest.covered("fxsave64/fxrstor64", 200)


@difftest.needs_native
def test_fences_and_hints():
    for code in ("0faee8", "0faef0", "0faef8", "0f1806", "0f180e", "0f1816", "0f181e", "0fae3e", "0f0d0e"):
        addr, buf = su.scratch()
        difftest.check(bytes.fromhex(code), {"rsi": addr}, xmm=[bytes(16)] * 16, mxcsr=0x1F80)
    difftest.covered("lfence/mfence/sfence/prefetch/clflush", 9)


def test_aligned_moves_fault():
    for code in ("0f2806", "660f2806", "0f2906", "660f6f06", "660f7f06", "0f2b06", "660fe706"):
        ex, v = difftest.emu_only(bytes.fromhex(code), {"rsi": 0x10000004})
        assert ex.name == "EXCEPTION" and ex.vector == 13, code
    for code in ("0f1006", "f30f6f06", "f20ff006"):
        ex, v = difftest.emu_only(bytes.fromhex(code), {"rsi": 0x10000004})
        assert ex.name == "BUDGET", code


def test_store_across_page_fault_writes_nothing():
    side = difftest.emu_side()
    side.ensure_mapped(0x20000000, 0x1000)     # 0x20001000 stays unmapped
    side.m.write(0x20000ff8, b"\x11" * 8)
    v = side.m.vcpu
    v.set_xmm(0, bytes(range(16)))
    ex, v = difftest.emu_only(bytes.fromhex("0f1106"), {"rsi": 0x20000ff8})
    assert ex.name == "EXCEPTION" and ex.vector == 14
    assert side.m.read(0x20000ff8, 8) == b"\x11" * 8


def test_sse_state_api():
    v = difftest.emu_side().m.vcpu
    v.set_xmm(3, bytes(range(16)))
    assert v.get_xmm(3) == bytes(range(16))
    v.mxcsr = 0x1F80
    assert v.mxcsr == 0x1F80
    img = v.fxsave()
    assert img[160 + 48:176 + 48] == bytes(range(16))
