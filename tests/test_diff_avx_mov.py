"""Differential tests (host CPU vs emu) of the hand-written VEX forms
(core/ops_avx_mov.pxi, ops_avx2.pxi): moves, scalar moves, general-register
forms, VZEROUPPER/VZEROALL, VLDMXCSR/VSTMXCSR, inserts and extracts, shifts
by immediate, broadcasts, masked moves, VPCMPxSTRx, VCVTPS2PH, and the
gathers (valid addresses here; faults inside a gather in test_vex_rules.py).
Each form: register and memory operands (page-crossing ones too), each
vector length it has, YMM0-15 compared in full; encodings checked against
iced-x86."""
from __future__ import annotations

import random
import struct

import pytest

import difftest
import native
import vex_helpers as vh
from test_diff_avx import VX_L0, VX_L1, VX_LIG, VX_NOV, VX_W0, VX_W1, run_form

pytestmark = pytest.mark.skipif(not (native.available() and native.has_avx()),
                                reason="needs an x86-64 host with AVX2, FMA and F16C")


def H(name, opmap, pp, opc, m0, m1, vx=0, *, l0=True, l1=True, nds=False, imm=False, fp=False, w=None, **kw):
    f = {"name": name, "map": opmap, "pp": pp, "opc": opc, "m0": m0, "m1": m1, "vx": vx, "l0": l0, "l1": l1,
         "nds": nds, "imm": imm, "fp": fp, "rd": False, "is4": False, "flags": False, "memimm": False,
         "w": w if w is not None else (1 if vx & VX_W1 else (0 if vx & VX_W0 else None))}
    f.update(kw)
    return f


FORMS = []
for pp, sfx in ((0, "ps"), (1, "pd")):
    FORMS += [H("vmovu" + sfx, 1, pp, 0x10, 16, 32, VX_NOV), H("vmovu" + sfx + " store", 1, pp, 0x11, 16, 32, VX_NOV),
              H("vmovlps/hlps" if pp == 0 else "vmovlpd", 1, pp, 0x12, 8, 8, VX_L0, l1=False, nds=True,
                memonly=pp == 1),
              H("vmovhps/lhps" if pp == 0 else "vmovhpd", 1, pp, 0x16, 8, 8, VX_L0, l1=False, nds=True,
                memonly=pp == 1),
              H("vmovlp" + sfx[1] + " store", 1, pp, 0x13, 8, 8, VX_L0 | VX_NOV, l1=False, memonly=True),
              H("vmovhp" + sfx[1] + " store", 1, pp, 0x17, 8, 8, VX_L0 | VX_NOV, l1=False, memonly=True),
              H("vmovmsk" + sfx, 1, pp, 0x50, 0, 0, VX_NOV, regonly=True, gpr_reg=True)]
for pp, sfx, m in ((2, "ss", 4), (3, "sd", 8)):
    FORMS += [H("vmov%s load" % sfx, 1, pp, 0x10, m, m, VX_LIG, memonly=True),
              H("vmov%s merge" % sfx, 1, pp, 0x10, m, m, VX_LIG, nds=True, regonly=True),
              H("vmov%s store" % sfx, 1, pp, 0x11, m, m, VX_LIG, memonly=True),
              H("vmov%s merge (11)" % sfx, 1, pp, 0x11, m, m, VX_LIG, nds=True, regonly=True),
              H("vcvtsi2%s" % sfx, 1, pp, 0x2a, 4, 4, VX_LIG, nds=True, fp=True, gpr_rm=True, w=0),
              H("vcvtsi2%s q" % sfx, 1, pp, 0x2a, 8, 8, VX_LIG, nds=True, fp=True, gpr_rm=True, w=1),
              H("vcvtt%s2si" % sfx, 1, pp, 0x2c, m, m, VX_LIG | VX_NOV, fp=True, gpr_reg=True),
              H("vcvt%s2si" % sfx, 1, pp, 0x2d, m, m, VX_LIG | VX_NOV, fp=True, gpr_reg=True)]
FORMS += [
    H("vmovsldup", 1, 2, 0x12, 16, 32, VX_NOV), H("vmovshdup", 1, 2, 0x16, 16, 32, VX_NOV),
    H("vmovddup", 1, 3, 0x12, 8, 32, VX_NOV),
    H("vmovdqu", 1, 2, 0x6f, 16, 32, VX_NOV), H("vmovdqu store", 1, 2, 0x7f, 16, 32, VX_NOV),
    H("vlddqu", 1, 3, 0xf0, 16, 32, VX_NOV, memonly=True),
    H("vmovd/q xmm, r/m", 1, 1, 0x6e, 4, 4, VX_L0 | VX_NOV, l1=False, gpr_rm=True, w=0),
    H("vmovq xmm, r/m64", 1, 1, 0x6e, 8, 8, VX_L0 | VX_NOV, l1=False, gpr_rm=True, w=1),
    H("vmovd r/m, xmm", 1, 1, 0x7e, 4, 4, VX_L0 | VX_NOV, l1=False, gpr_rm=True, w=0),
    H("vmovq r/m64, xmm", 1, 1, 0x7e, 8, 8, VX_L0 | VX_NOV, l1=False, gpr_rm=True, w=1),
    H("vmovq xmm, xmm/m64", 1, 2, 0x7e, 8, 8, VX_L0 | VX_NOV, l1=False),
    H("vmovq xmm/m64, xmm", 1, 1, 0xd6, 8, 8, VX_L0 | VX_NOV, l1=False),
    H("vpmovmskb", 1, 1, 0xd7, 0, 0, VX_NOV, regonly=True, gpr_reg=True),
    H("vstmxcsr", 1, 0, 0xae, 4, 4, VX_L0 | VX_NOV, l1=False, memonly=True, modrm_reg=3),
    H("vpinsrw", 1, 1, 0xc4, 2, 2, VX_L0, l1=False, nds=True, imm=True, gpr_rm=True),
    H("vpextrw r32", 1, 1, 0xc5, 0, 0, VX_L0 | VX_NOV, l1=False, imm=True, regonly=True, gpr_reg=True),
    H("vpinsrb", 3, 1, 0x20, 1, 1, VX_L0, l1=False, nds=True, imm=True, gpr_rm=True),
    H("vpinsrd", 3, 1, 0x22, 4, 4, VX_L0, l1=False, nds=True, imm=True, gpr_rm=True, w=0),
    H("vpinsrq", 3, 1, 0x22, 8, 8, VX_L0, l1=False, nds=True, imm=True, gpr_rm=True, w=1),
    H("vpextrb", 3, 1, 0x14, 1, 1, VX_L0 | VX_NOV, l1=False, imm=True, gpr_rm=True),
    H("vpextrw", 3, 1, 0x15, 2, 2, VX_L0 | VX_NOV, l1=False, imm=True, gpr_rm=True),
    H("vpextrd", 3, 1, 0x16, 4, 4, VX_L0 | VX_NOV, l1=False, imm=True, gpr_rm=True, w=0),
    H("vpextrq", 3, 1, 0x16, 8, 8, VX_L0 | VX_NOV, l1=False, imm=True, gpr_rm=True, w=1),
    H("vextractps", 3, 1, 0x17, 4, 4, VX_L0 | VX_NOV, l1=False, imm=True, gpr_rm=True),
    H("vextractf128", 3, 1, 0x19, 16, 16, VX_L1 | VX_W0 | VX_NOV, l0=False, imm=True),
    H("vextracti128", 3, 1, 0x39, 16, 16, VX_L1 | VX_W0 | VX_NOV, l0=False, imm=True),
    H("vcvtps2ph", 3, 1, 0x1d, 8, 16, VX_W0 | VX_NOV, imm=True, fp=True, kind="f32"),
    H("vbroadcastss", 2, 1, 0x18, 4, 4, VX_W0 | VX_NOV), H("vbroadcastsd", 2, 1, 0x19, 8, 8, VX_W0 | VX_NOV | VX_L1, l0=False),
    H("vbroadcastf128", 2, 1, 0x1a, 16, 16, VX_W0 | VX_NOV | VX_L1, l0=False, memonly=True),
    H("vbroadcasti128", 2, 1, 0x5a, 16, 16, VX_W0 | VX_NOV | VX_L1, l0=False, memonly=True),
    H("vpbroadcastd", 2, 1, 0x58, 4, 4, VX_W0 | VX_NOV), H("vpbroadcastq", 2, 1, 0x59, 8, 8, VX_W0 | VX_NOV),
    H("vpbroadcastb", 2, 1, 0x78, 1, 1, VX_W0 | VX_NOV), H("vpbroadcastw", 2, 1, 0x79, 2, 2, VX_W0 | VX_NOV),
    H("vmaskmovps", 2, 1, 0x2c, 16, 32, VX_W0, nds=True, memonly=True),
    H("vmaskmovpd", 2, 1, 0x2d, 16, 32, VX_W0, nds=True, memonly=True),
    H("vmaskmovps store", 2, 1, 0x2e, 16, 32, VX_W0, nds=True, memonly=True),
    H("vmaskmovpd store", 2, 1, 0x2f, 16, 32, VX_W0, nds=True, memonly=True),
    H("vpmaskmovd", 2, 1, 0x8c, 16, 32, VX_W0, nds=True, memonly=True),
    H("vpmaskmovq", 2, 1, 0x8c, 16, 32, VX_W1, nds=True, memonly=True),
    H("vpmaskmovd store", 2, 1, 0x8e, 16, 32, VX_W0, nds=True, memonly=True),
    H("vpmaskmovq store", 2, 1, 0x8e, 16, 32, VX_W1, nds=True, memonly=True),
    H("vpcmpestri", 3, 1, 0x61, 16, 16, VX_L0 | VX_NOV, l1=False, imm=True),
    H("vpcmpestrm", 3, 1, 0x60, 16, 16, VX_L0 | VX_NOV, l1=False, imm=True),
    H("vpcmpistri", 3, 1, 0x63, 16, 16, VX_L0 | VX_NOV, l1=False, imm=True),
    H("vpcmpistrm", 3, 1, 0x62, 16, 16, VX_L0 | VX_NOV, l1=False, imm=True),
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f["name"].replace(" ", "_"))
def test_vex_mov_form(form):
    n = run_form(form, hash(form["name"]) & 0xFFFFFFFF)
    difftest.covered("%s (VEX)" % form["name"], n)


def _run(code, rng, regs=None, scratch=None, mxcsr=0x1F80, kind="int"):
    addr, buf = vh.scratch()
    r = {"rsi": addr + 64, "rdi": addr + 512}
    r.update(regs or {})
    return difftest.check(code, r, 0x202, scratch=scratch, ymm=vh.rand_ymm(rng, kind), mxcsr=mxcsr)


def test_aligned_moves():
    """VMOVAPS/APD/DQA, VMOVNTPS/PD/DQ, VMOVNTDQA at the vector length's alignment."""
    rng = random.Random(5)
    addr, buf = vh.scratch()
    n = 0
    for opmap, pp, opc, name in ((1, 0, 0x28, "vmovaps"), (1, 1, 0x28, "vmovapd"), (1, 0, 0x29, "vmovaps st"),
                                 (1, 1, 0x6f, "vmovdqa"), (1, 1, 0x7f, "vmovdqa st"), (1, 0, 0x2b, "vmovntps"),
                                 (1, 1, 0x2b, "vmovntpd"), (1, 1, 0xe7, "vmovntdq"), (2, 1, 0x2a, "vmovntdqa")):
        for l in (0, 1):
            for mem in (False, True):
                if not mem and opc in (0x2b, 0xe7, 0x2a):
                    continue
                for _ in range(8):
                    reg, rm = rng.randrange(16), rng.randrange(16)
                    init = bytes(rng.getrandbits(8) for _ in range(256))
                    code = vh.vex(opmap, pp, opc, reg, None if mem else rm, 0, l, 0,
                                  mem=vh.MEM_RSI if mem else None)
                    _run(code, rng, {"rsi": addr + 64}, [(addr, buf, init)])
                    n += 1
    difftest.covered("VMOVAPS/APD/DQA/NT* (VEX, aligned)", n)


def test_vzeroupper_vzeroall_ldmxcsr():
    rng = random.Random(6)
    addr, buf = vh.scratch()
    for code in (b"\xC5\xF8\x77", b"\xC5\xFC\x77", b"\xC4\xE1\x78\x77", b"\xC4\xE1\x7C\x77"):
        for _ in range(10):
            _run(code, rng)
    for csr in (0x1F80, 0x3FC0, 0x7F80, 0x9FBF):
        init = struct.pack("<I", csr) + bytes(60)
        _run(vh.vex(1, 0, 0xAE, 2, None, 0, 0, 0, mem=vh.MEM_RSI), rng, {"rsi": addr}, [(addr, buf, init)])
    difftest.covered("VZEROUPPER/VZEROALL/VLDMXCSR", 44)


def test_shift_by_immediate():
    """VEX.66 0F 71/72/73 /n ib: the destination is VEX.vvvv."""
    rng = random.Random(7)
    n = 0
    for opc, subs in ((0x71, (2, 4, 6)), (0x72, (2, 4, 6)), (0x73, (2, 3, 6, 7))):
        for sub in subs:
            for l in (0, 1):
                for _ in range(10):
                    imm = rng.choice((0, 1, 7, 8, 15, 16, 31, 32, 63, 64, 200, rng.randrange(256)))
                    code = vh.vex(1, 1, opc, sub, rng.randrange(16), rng.randrange(16), l, 0, imm=imm)
                    _run(code, rng)
                    n += 1
    difftest.covered("VPSRLW/D/Q VPSRAW/D VPSLLW/D/Q VPSRLDQ VPSLLDQ imm8 (VEX)", n)


def test_vmaskmovdqu():
    rng = random.Random(8)
    addr, buf = vh.scratch()
    for _ in range(30):
        init = bytes(rng.getrandbits(8) for _ in range(64))
        code = vh.vex(1, 1, 0xF7, rng.randrange(16), rng.randrange(16), 0, 0, 0)
        _run(code, rng, {"rdi": addr + rng.randrange(32)}, [(addr, buf, init)])
    difftest.covered("VMASKMOVDQU", 30)


def vsib(scale: int, index: int, base: int = 6, disp8: int | None = None) -> bytes:
    """ModRM rm=100 + SIB (scale, vector index, base) [+ disp8] for vh.vex(mem=...)."""
    mod = 0 if disp8 is None else 1
    return bytes(((mod << 6) | 4, (scale << 6) | ((index & 7) << 3) | (base & 7))) + \
        (b"" if disp8 is None else bytes((disp8 & 0xFF,)))


@pytest.mark.parametrize("opc,w", [(0x90, 0), (0x90, 1), (0x91, 0), (0x91, 1), (0x92, 0), (0x92, 1),
                                   (0x93, 0), (0x93, 1)])
def test_gathers(opc, w):
    """VPGATHERDD/DQ/QD/QQ, VGATHERDPS/DPD/QPS/QPD: random masks and in-range
    (also negative) indexes, every scale, a displacement; both lengths."""
    rng = random.Random(opc * 2 + w)
    addr, buf = vh.scratch()
    isz = 8 if opc & 1 else 4
    n = 0
    for l in (0, 1):
        for _ in range(25):
            regs = rng.sample(range(16), 3)
            dst, idx, mask = regs
            scale = rng.randrange(4)
            ymm = vh.rand_ymm(rng, "int")
            # indexes within +-64 elements of the base (at addr + 0x800)
            vals = [rng.randrange(-64, 64) for _ in range(32 // isz)]
            ymm[idx] = b"".join(v.to_bytes(isz, "little", signed=True) for v in vals).ljust(32, b"\0")
            used = (32 if l else 16) // max(isz, 8 if w else 4) * isz      # index bytes the form reads
            if rng.random() < 0.5:
                ymm[idx] = ymm[idx][:used] + bytes(rng.getrandbits(8) for _ in range(32 - used))   # unused part
            ymm[mask] = bytes(rng.choice((0x80, 0xFF, 0x00, 0x7F, 0x81)) for _ in range(32))
            disp = rng.randrange(-64, 64)
            code = vh.vex(2, 1, opc, dst, None, mask, l, w, mem=vsib(scale, idx, 6, disp), x=idx >> 3)
            assert vh_len_ok(code)
            init = bytes(rng.getrandbits(8) for _ in range(0x1000))
            difftest_check_ymm(code, {"rsi": addr + 0x800}, ymm, [(addr, buf, init)])
            n += 1
    difftest.covered("gather %02x W%d (VEX.128/256)" % (opc, w), n)


def vh_len_ok(code: bytes) -> bool:
    from test_diff_avx import iced_len
    return iced_len(code) == len(code)


def difftest_check_ymm(code, regs, ymm, scratch):
    difftest.check(code, regs, 0x202, scratch=scratch, ymm=ymm)
