"""emu's decoder in 32-bit code (compatibility mode, core/compat32.pxi)
checked against iced-x86 decoding with bitness 32, on random byte sequences
biased towards real opcodes: every instruction emu retires must have iced's
length (next EIP, branch target or pushed return address), nothing iced
rejects may run, and a #UD on an instruction iced accepts must be one of the
forms compat32.pxi documents as not modelled (BCD, BOUND, ARPL, INTO,
LES/LDS, 16-bit addressing...) or need an extension CPUID does not advertise."""
from __future__ import annotations

import collections
import random

import numpy as np
import pytest

iced = pytest.importorskip("iced_x86")

import emu  # noqa: E402
from test_decoder_reference import (CODE_NAMES, EXPECTED_UD, FEATURE_NAMES, KNOWN_UNIMPLEMENTED,  # noqa: E402
                                    implemented_features)

N = 40_000
CODE = 0x400000
SCRATCH = 0x200000
ESP0 = 0x100000
UD = 6
FC = iced.FlowControl
PREFIXES = (0x66, 0xF2, 0xF3, 0xF0, 0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65)
# not modelled in 32-bit code (compat32.pxi), by iced Code name prefix
KNOWN32 = ("DAA", "DAS", "AAA", "AAS", "AAM", "AAD", "BOUND", "ARPL", "INTO", "LES", "LDS", "SALC",
           "SYSCALL", "SYSRETD", "SYSRETQ", "CALL_PTR1616", "JMP_PTR1616") + KNOWN_UNIMPLEMENTED


def sequence(rng):
    out = bytearray()
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
        out.append(rng.choice(PREFIXES))
    r = rng.random()
    if r < 0.6:
        out.append(rng.getrandbits(8))
    elif r < 0.85:
        out += bytes((0x0F, rng.getrandbits(8)))
    elif r < 0.93:
        out += bytes((0x0F, 0x38, rng.getrandbits(8)))
    else:
        out += bytes((0x0F, 0x3A, rng.getrandbits(8)))
    modrm = rng.getrandbits(8)
    if rng.random() < 0.4:
        modrm |= 0xC0
    out.append(modrm)
    out += rng.randbytes(16)
    return bytes(out[:15])


@pytest.fixture(scope="module")
def result():
    rng = random.Random(20261205)
    m = emu.Machine(16 << 20, cpl=3)
    v = m.vcpu
    code_pa = m.map(CODE, 0x2000)
    scratch_pa = m.map(0, SCRATCH)
    features = implemented_features(v)
    v.set_seg_sel(1, 0x23)
    v.cs32 = True
    regs = [0x10000 + i * 0x800 for i in range(8)]
    regs[1] = 0x20
    regs[4] = ESP0
    stats = collections.Counter()
    bad = []
    for _ in range(N):
        w = sequence(rng)
        w = w + bytes(16 - len(w))
        ins = iced.Decoder(32, w, ip=CODE).decode()
        valid = ins.code != iced.Code.INVALID
        m.ram[code_pa:code_pa + 16] = np.frombuffer(w, np.uint8)
        m.phys.invalidate(code_pa, 16)
        for i in range(16):
            v.set_gpr(i, regs[i] if i < 8 else 0)
        v.rflags = 0x202
        v.rip = CODE
        ex = v.run(1)
        assert v.cs32
        rip = v.rip
        if ex.name == "EXCEPTION" and rip == CODE:
            if ex.vector != UD:
                stats["fault"] += 1
                continue
            if not valid:
                stats["ud/invalid"] += 1
                continue
            cname = CODE_NAMES.get(ins.code, "?")
            feats = [FEATURE_NAMES.get(f, str(f)) for f in ins.cpuid_features()]
            if any(f not in features for f in feats):
                stats["ud/extension"] += 1
            elif cname.startswith(EXPECTED_UD) or cname.startswith(KNOWN32) or 0x67 in w[:ins.len - 1]:
                stats["ud/not-modelled"] += 1
            else:
                stats["ud/WRONG"] += 1
                bad.append("#UD %s (%s)" % (w[:ins.len].hex(), ins))
            continue
        if ex.name in ("MMIO", "STOPPED"):
            stats["other"] += 1
            continue
        if not valid:
            stats["exec/INVALID"] += 1
            bad.append("ran %s, iced: invalid" % w.hex())
            continue
        n, fc = ins.len, ins.flow_control
        ok = None
        if ex.name != "BUDGET":
            ok = rip == CODE + n
        elif fc == FC.NEXT:
            ok = rip == CODE + n or (rip == CODE and (ins.has_rep_prefix or ins.has_repne_prefix))
        elif fc == FC.UNCONDITIONAL_BRANCH and ins.near_branch_target:
            ok = rip == ins.near_branch_target
        elif fc == FC.CONDITIONAL_BRANCH:
            ok = rip in (ins.near_branch_target, CODE + n)
        elif fc in (FC.CALL, FC.INDIRECT_CALL):
            sp, width = v.rsp, -ins.stack_pointer_increment       # 2 with a 16-bit operand size
            top = int.from_bytes(m.ram[scratch_pa + sp:scratch_pa + sp + width].tobytes(), "little") \
                if 4 <= sp < SCRATCH - 4 else -1
            ok = top == (CODE + n) & ((1 << (8 * width)) - 1) and (fc == FC.INDIRECT_CALL or rip == ins.near_branch_target)
        if ok is None:
            stats["exec/unchecked"] += 1
        elif ok:
            stats["exec/ok"] += 1
        else:
            stats["exec/LENGTH"] += 1
            bad.append("len %s: iced %s len %d, emu eip %#x (%s)" % (w.hex(), ins, n, rip, ex.name))
    return stats, bad


def test_32_bit_decoding_agrees_with_iced(result):
    stats, bad = result
    assert stats["exec/ok"] > N // 4, stats
    assert not bad, "%d disagreements (%s): %s" % (len(bad), dict(stats), bad[:15])
