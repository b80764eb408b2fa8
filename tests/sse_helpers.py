"""Shared helpers of the SSE differential tests: instruction encoding,
operand values (floating-point specials, integers), MXCSR settings, and a
driver that runs one form in register and memory variants."""
from __future__ import annotations

import random
import struct

import difftest
import native

MXCSR_DEFAULT = 0x1F80
# round to nearest, down, up, toward zero; DAZ; FTZ; both; some sticky flags set
MXCSR_MODES = [0x1F80, 0x3F80, 0x5F80, 0x7F80, 0x1FC0, 0x9F80, 0xDFC0, 0x1FBF, 0x7FC0, 0xBF80]

F32_SPECIALS = [
    0x00000000, 0x80000000,                     # +-0
    0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00400000,   # denormals
    0x00800000, 0x80800000, 0x00800001,         # smallest normals
    0x3F800000, 0xBF800000, 0x3F000000, 0x3FC00000, 0x40200000, 0xC0200000,  # 1 -1 .5 1.5 2.5 -2.5
    0x3F7FFFFF, 0x3F800001, 0x4B000000, 0x4B7FFFFF, 0x4AFFFFFF, 0x3EFFFFFF,  # rounding boundaries
    0x4EFFFFFF, 0x4F000000, 0xCF000000, 0xCF000001, 0x5EFFFFFF, 0x5F000000, 0xDF000000, 0xDF000001,
    0x7F7FFFFF, 0xFF7FFFFF,                     # largest finite
    0x7F800000, 0xFF800000,                     # +-inf
    0x7FC00000, 0xFFC00000, 0x7FC12345, 0xFFD54321,   # QNaN with payloads
    0x7F800001, 0xFF800001, 0x7FA00000, 0x7F812345, 0xFFBFFFFF,   # SNaN
    0x40490FDB, 0x3DCCCCCD, 0x447A0000, 0x4CBEBC20,
]
F64_SPECIALS = [
    0x0000000000000000, 0x8000000000000000,
    0x0000000000000001, 0x8000000000000001, 0x000FFFFFFFFFFFFF, 0x800FFFFFFFFFFFFF, 0x0008000000000000,
    0x0010000000000000, 0x8010000000000000, 0x0010000000000001,
    0x3FF0000000000000, 0xBFF0000000000000, 0x3FE0000000000000, 0x3FF8000000000000,
    0x4004000000000000, 0xC004000000000000,
    0x3FEFFFFFFFFFFFFF, 0x3FF0000000000001, 0x4330000000000000, 0x432FFFFFFFFFFFFF, 0x3FDFFFFFFFFFFFFF,
    0x41DFFFFFFFC00000, 0x41E0000000000000, 0xC1E0000000000000, 0xC1E0000000200000, 0x41DFFFFFFFFFFFFF,
    0x43DFFFFFFFFFFFFF, 0x43E0000000000000, 0xC3E0000000000000, 0xC3E0000000000001,
    0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF,
    0x7FF0000000000000, 0xFFF0000000000000,
    0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000012345, 0xFFFABCDEF0123456,
    0x7FF0000000000001, 0xFFF0000000000001, 0x7FF4000000000000, 0x7FF0000000054321, 0xFFF7FFFFFFFFFFFF,
    0x400921FB54442D18, 0x3FB999999999999A, 0x36A0000000000000, 0x47E0000000000000,
    0x3810000000000000, 0x380FFFFFFFFFFFFF, 0x47EFFFFFE0000000, 0x47EFFFFFF0000000,   # float range edges
]


def rand_f32(rng: random.Random) -> int:
    k = rng.random()
    if k < 0.35:
        return rng.choice(F32_SPECIALS)
    if k < 0.6:
        return struct.unpack("<I", struct.pack("<f", rng.choice([-1, 1]) * rng.uniform(0, 2.0 ** rng.randint(-10, 40))))[0]
    if k < 0.7:
        return struct.unpack("<I", struct.pack("<f", float(rng.randint(-100, 100)) / rng.choice([1, 2, 4, 3])))[0]
    return rng.getrandbits(32)


def rand_f64(rng: random.Random) -> int:
    k = rng.random()
    if k < 0.35:
        return rng.choice(F64_SPECIALS)
    if k < 0.6:
        return struct.unpack("<Q", struct.pack("<d", rng.choice([-1, 1]) * rng.uniform(0, 2.0 ** rng.randint(-20, 70))))[0]
    if k < 0.7:
        return struct.unpack("<Q", struct.pack("<d", float(rng.randint(-100, 100)) / rng.choice([1, 2, 4, 3])))[0]
    return rng.getrandbits(64)


def vec_f32(rng) -> bytes:
    return struct.pack("<4I", *(rand_f32(rng) for _ in range(4)))


def vec_f64(rng) -> bytes:
    return struct.pack("<2Q", *(rand_f64(rng) for _ in range(2)))


def vec_int(rng) -> bytes:
    """Integer vectors: random, with edge bytes/words/dwords mixed in."""
    k = rng.random()
    if k < 0.5:
        return rng.getrandbits(128).to_bytes(16, "little")
    out = bytearray()
    while len(out) < 16:
        w = rng.choice([1, 2, 4, 8])
        out += (rng.choice(difftest.edge_values(w * 8)) if rng.random() < 0.6
                else rng.getrandbits(w * 8)).to_bytes(w, "little")
    if k < 0.6:      # string-like: bytes with zeros and repeats
        out = bytearray(rng.choice(b"\0aAbz09 \xff\x80") for _ in range(16))
    return bytes(out[:16])


VEC = {"f32": vec_f32, "f64": vec_f64, "int": vec_int}


def encode(pfx: int | None, opmap: int, opc: int, reg: int, rm: int, mem: bool = False,
           imm: int | None = None, rexw: bool = False) -> bytes:
    """pfx (0x66/0xF3/0xF2 or None), map 1 (0F), 2 (0F 38), 3 (0F 3A).
    Memory form: [rsi]."""
    b = bytearray()
    if pfx is not None:
        b.append(pfx)
    rex = 0x40 | (8 if rexw else 0) | ((reg >> 3) << 2) | (0 if mem else (rm >> 3))
    if rex != 0x40:
        b.append(rex)
    b.append(0x0F)
    if opmap == 2:
        b.append(0x38)
    elif opmap == 3:
        b.append(0x3A)
    b.append(opc)
    if mem:
        b.append(((reg & 7) << 3) | 6)
    else:
        b.append(0xC0 | ((reg & 7) << 3) | (rm & 7))
    if imm is not None:
        b.append(imm & 0xFF)
    return bytes(b)


_scratch = None


def scratch():
    """(address, buffer) of 8 KiB of 16-byte aligned scratch memory."""
    global _scratch
    if _scratch is None:
        _scratch = native.scratch(8192)
    return _scratch


def run_form(name: str, pfx, opmap: int, opc: int, kind: str, n: int, seed: int, *,
             imm=None, msize: int = 16, mem: bool = True, reg_only: bool = False, mxcsr_modes=None,
             flags: bool = False, regs_fn=None, misalign: int = 0, xmm0_fn=None, rexw: bool = False,
             gpr_reg: bool = False, gpr_rm: bool = False, pfx_extra: bytes = b"") -> int:
    """Differentially test one form: n register cases and (unless reg_only)
    n memory cases. imm: None, an int, or "rand" (random imm8 each case).
    kind chooses the operand generator ("f32", "f64", "int")."""
    rng = random.Random(seed)
    gen = VEC[kind]
    addr, buf = scratch()
    count = 0
    modes = mxcsr_modes or MXCSR_MODES
    for k in range(2 * n if not reg_only and mem else n):
        use_mem = mem and not reg_only and k >= n
        reg = rng.randrange(16)
        rm = rng.randrange(16)
        if rng.random() < 0.1:
            rm = reg
        # a general register written by the instruction: not RSP or RSI (the base)
        if gpr_reg:
            reg = rng.choice([r for r in range(16) if r not in (4, 6)])
        if gpr_rm:
            rm = rng.choice([r for r in range(16) if r not in (4, 6)])
        im = rng.randrange(256) if imm == "rand" else (imm(rng) if callable(imm) else imm)
        code = pfx_extra + encode(pfx, opmap, opc, reg, rm, use_mem, im, rexw)
        xmm = [gen(rng) for _ in range(16)]
        if xmm0_fn is not None:
            xmm[0] = xmm0_fn(rng)
        csr = rng.choice(modes)
        regs = {name: rng.getrandbits(64) for name in ("rax", "rbx", "rcx", "rdx", "rdi", "r8", "r9", "r10",
                                                      "r11", "r12", "r13", "r14", "r15")}
        regs["rsi"] = addr + 64 + misalign
        if regs_fn is not None:
            regs.update(regs_fn(rng))
        scr = []
        if use_mem:
            init = bytearray(256)
            init[64 + misalign:64 + misalign + 16] = gen(rng)
            scr = [(addr, buf, bytes(init))]
        rflags = 0x202 | (rng.getrandbits(12) & 0x8D5)
        difftest.check(code, regs, rflags, flags_mask=difftest.ARITH,
                       scratch=scr, xmm=xmm, mxcsr=csr, note=name)
        count += 1
    difftest.covered(name, count)
    return count
