"""Differential tests of the table-driven VEX forms (AVX, AVX2, FMA3, F16C:
core/ops_avx.pxi) against the host CPU: every form the core registers, at
each vector length it allows, with register and memory operands (memory
operands sometimes straddling a page boundary), random imm8 and is4
operands, floating-point specials (NaN, denormals, infinities), integer edge
patterns and every MXCSR mode. YMM0-15 (all 256 bits), MXCSR, the flags and
the GPRs are compared. Each encoding is also checked against iced-x86 first:
it must call it valid (with emu's length), or emu must raise #UD."""
from __future__ import annotations

import random

import pytest

import difftest
import emu
import native
import sse_helpers as su
import vex_helpers as vh

iced = pytest.importorskip("iced_x86")

pytestmark = pytest.mark.skipif(not (native.available() and native.has_avx()),
                                reason="needs an x86-64 host with AVX2, FMA and F16C")

N = 6                      # cases per form, length and operand kind
VX_L0, VX_L1, VX_LIG, VX_W0, VX_W1, VX_NOV, VX_WSEL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40


def value_kind(name: str) -> str:
    if "ph2ps" in name:
        return "int"
    for suf, k in (("ps", "f32"), ("ss", "f32"), ("pd", "f64"), ("sd", "f64")):
        if name.endswith(suf) and not name.startswith(("vpblend", "vpperm")):
            return k
    if name in ("vcvtdq2ps", "vcvtdq2pd"):
        return "int"
    return "int"


def forms():
    out = []
    prev = None
    for f in emu._core.vex_forms():
        if f["vx"] & VX_WSEL:
            same = prev is not None and (prev["map"], prev["pp"], prev["opc"]) == (f["map"], f["pp"], f["opc"])
            f["w"] = 1 if same else 0
        elif f["vx"] & VX_W1:
            f["w"] = 1
        elif f["vx"] & VX_W0:
            f["w"] = 0
        else:
            f["w"] = None                  # W ignored: both values are tried
        prev = f
        out.append(f)
    return out


FORMS = forms()


def lengths(f):
    if f["vx"] & VX_LIG:
        return (0, 1)
    return tuple(l for l, ok in ((0, f["l0"] and not f["vx"] & VX_L1), (1, f["l1"] and not f["vx"] & VX_L0)) if ok)


_decoder_cache = {}


def iced_len(code: bytes):
    """iced-x86's length of the instruction, or None if it is invalid."""
    d = iced.Decoder(64, code + bytes(16), ip=0x1000)
    ins = d.decode()
    if ins.code == iced.Code.INVALID:
        return None
    return ins.len


GPRS = [r for r in range(16) if r not in (4, 6)]        # not RSP, not RSI (the memory base)


def run_form(f, seed: int, n_cases: int = N) -> int:
    """Differentially test one form (a dict as vex_forms() gives, plus the
    optional keys regonly, memonly, gpr_reg / gpr_rm / gpr_vvvv (that operand
    is a general register), kind (operand values))."""
    rng = random.Random(seed)
    addr, buf = vh.scratch()
    kind = f.get("kind") or value_kind(f["name"])
    n = 0
    kinds = (False,) if f.get("regonly") else ((True,) if f.get("memonly") else (False, True))
    for l in lengths(f):
        for use_mem in kinds:
            for k in range(n_cases):
                w = f["w"] if f["w"] is not None else rng.getrandbits(1)
                reg = rng.choice(GPRS) if f.get("gpr_reg") else rng.randrange(16)
                rm = rng.choice(GPRS) if f.get("gpr_rm") else rng.randrange(16)
                reg = f.get("modrm_reg", reg)
                vvvv = (rng.choice(GPRS) if f.get("gpr_vvvv") else rng.randrange(16)) if f["nds"] else 0
                imm = None
                if f["imm"]:
                    imm = rng.randrange(256)
                if f["is4"]:
                    imm = (rng.randrange(16) << 4) | rng.randrange(16)
                msize = max(1, f["m1"] if l and not f["vx"] & VX_LIG else f["m0"])
                regs = {name: rng.getrandbits(64) for name in ("rax", "rbx", "rcx", "rdx", "rdi", "r8", "r9",
                                                              "r10", "r11", "r12", "r13", "r14", "r15")}
                scr = []
                if use_mem:
                    # sometimes the operand straddles the page boundary at addr + 0x1000
                    off = 0x1000 - rng.randrange(1, msize) if rng.random() < 0.3 and msize > 1 else 64 + rng.randrange(32)
                    regs["rsi"] = addr + off
                    init = bytearray(rng.getrandbits(8) for _ in range(0x1100))
                    data = vh.rand_vec(rng, kind)
                    init[off:off + msize] = data[:msize]
                    scr = [(addr, buf, bytes(init))]
                    code = vh.vex(f["map"], f["pp"], f["opc"], reg, None, vvvv, l, w, mem=vh.MEM_RSI, imm=imm)
                else:
                    regs["rsi"] = addr
                    code = vh.vex(f["map"], f["pp"], f["opc"], reg, rm, vvvv, l, w, imm=imm,
                                  two_byte=rng.random() < 0.5 and f["map"] == 1 and w == 0 and rm < 8)
                note = "%s L%d W%d %s" % (f["name"], l, w, "mem" if use_mem else "reg")
                assert iced_len(code) == len(code), "iced-x86 rejects %s (%s)" % (code.hex(), note)
                ymm = vh.rand_ymm(rng, kind)
                csr = rng.choice(su.MXCSR_MODES) if f["fp"] else 0x1F80
                rflags = 0x202 | (rng.getrandbits(12) & 0x8D5)
                difftest.check(code, regs, rflags, flags_mask=difftest.ARITH, scratch=scr, ymm=ymm, mxcsr=csr,
                               note=note)
                n += 1
    return n


@pytest.mark.parametrize("form", FORMS, ids=lambda f: "%s-%x-%x-%02x%s" % (
    f["name"], f["map"], f["pp"], f["opc"], "" if f["w"] is None else "-W%d" % f["w"]))
def test_vex_form(form):
    n = run_form(form, hash((form["name"], form["opc"], form["w"])) & 0xFFFFFFFF)
    difftest.covered("%s (VEX, reg/mem, L0/L1)" % form["name"], n)
