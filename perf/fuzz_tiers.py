#!/usr/bin/env python3
"""Differential fuzzing of the two execution tiers: random and opcode-biased
instruction streams run under the interpreter (the reference) and under the
native-code tier (every block compiled before it first runs), from the same
state and for the same budget; the exit, RIP, instruction count, GPRs,
status flags and memory must agree.

    python perf/fuzz_tiers.py [--streams N] [--seed S] [--report EVERY]

Flags an instruction leaves undefined (the SDM's "undefined", which each tier
takes from a different source: the interpreter computes them, compiled code
gets the host CPU's) are masked, as iced-x86 describes them for the
instructions on the executed path. Exit status 1 on any difference; each one
is printed with the bytes, the start state and both end states.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time

try:
    import emu  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import emu  # noqa: F401

import iced_x86

CODE = 0x400000
DATA = 0x600000
DATA_SIZE = 0x2000
STACK = 0x7f0000
STACK_SIZE = 0x2000
MASK64 = (1 << 64) - 1

# iced's RFLAGS bits -> x86 RFLAGS bits
_ICED_FLAGS = [(iced_x86.RflagsBits.OF, 0x800), (iced_x86.RflagsBits.SF, 0x80), (iced_x86.RflagsBits.ZF, 0x40),
               (iced_x86.RflagsBits.AF, 0x10), (iced_x86.RflagsBits.CF, 0x1), (iced_x86.RflagsBits.PF, 0x4)]
ARITH = 0x8d5


def _x86_flags(bits: int) -> int:
    return sum(x for b, x in _ICED_FLAGS if bits & b)


# one-byte and 0F opcodes the compiler covers, weighted towards the common
# ones; everything else comes from random bytes
_ALU = [op + k for op in (0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38) for k in range(6)]
_ONE = (_ALU * 2 + [0x84, 0x85, 0x88, 0x89, 0x8a, 0x8b, 0x8d, 0x8d, 0x63, 0x80, 0x81, 0x83, 0xc0, 0xc1, 0xd0,
                    0xd1, 0xd3, 0xf6, 0xf7, 0xfe, 0xff, 0x69, 0x6b, 0xa8, 0xa9, 0x98, 0x99, 0x86, 0x87, 0x91,
                    0xc6, 0xc7, 0x90, 0xc9, 0x6a, 0x68] + list(range(0x50, 0x60)) + list(range(0xb0, 0xc0))
        + list(range(0x70, 0x80)))
_TWO = [0xaf, 0xb6, 0xb7, 0xbe, 0xbf] + list(range(0x40, 0x50)) + list(range(0x90, 0xa0)) + list(range(0x80, 0x90))
# SSE forms the compiler emits (mandatory prefix, 0F opcode): arithmetic,
# logic, moves between XMM registers, memory and GPRs, compares, conversions
_SSE = ([(p, op) for p in (None, 0x66, 0xf3, 0xf2) for op in (0x58, 0x59, 0x5c, 0x5d, 0x5f, 0x51, 0x10, 0x11)]
        + [(0x66, op) for op in (0xef, 0xd4, 0xfe, 0xdb, 0xeb, 0x6f, 0x7f, 0xd6, 0x7e, 0x6e, 0x2f, 0x2e, 0x14, 0x15)]
        + [(0xf3, 0x6f), (0xf3, 0x7f), (0xf3, 0x7e), (None, 0x28), (None, 0x29), (None, 0x2e), (None, 0x57),
           (None, 0x12), (None, 0x13), (None, 0x16), (None, 0x17), (0xf2, 0x2a), (0xf3, 0x2a), (0xf2, 0x2d),
           (0xf2, 0x2c), (0xf3, 0x2d)])


class Gen:
    """Instruction streams: each instruction an opcode-biased pick with a
    random ModRM (register forms favoured; memory forms through registers
    that point into the data page), or random bytes."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def modrm(self) -> bytes:
        r = self.rng
        reg = r.randrange(8)
        if r.random() < 0.6:
            return bytes([0xc0 | (reg << 3) | r.randrange(8)])
        base = r.choice((3, 6, 7, 5))          # RBX RSI RDI RBP point into the data page
        mod = r.choice((1, 1, 2)) if base != 5 else 1
        out = bytes([(mod << 6) | (reg << 3) | base])
        disp = r.randrange(-64, 192)
        return out + (disp & 0xff).to_bytes(1, "little") if mod == 1 else out + (disp & MASK64).to_bytes(8, "little")[:4]

    def insn(self, n_left: int) -> bytes:
        r = self.rng
        k = r.random()
        if k < 0.04:
            return bytes(r.getrandbits(8) for _ in range(r.randint(1, 6)))
        pre = b""
        if r.random() < 0.08:
            pre += b"\x66"
        if r.random() < 0.5:
            pre += bytes([0x40 | r.choice((8, 8, 0, 1, 4, 9, 12, 13))])
        if k < 0.12:
            # SSE: the prefix before REX; XMM0-15 through REX.R/B
            p, op = r.choice(_SSE)
            rex = bytes([0x40 | r.choice((0, 1, 4, 5, 8, 12))]) if r.random() < 0.5 else b""
            return (bytes([p]) if p else b"") + rex + b"\x0f" + bytes([op]) + self.modrm()
        if k < 0.22:
            op = r.choice(_TWO)
            if 0x80 <= op <= 0x8f:
                return b"\x0f" + bytes([op]) + r.randrange(0, 4 * n_left + 8).to_bytes(4, "little")
            return pre + b"\x0f" + bytes([op]) + self.modrm()
        op = r.choice(_ONE)
        if 0x70 <= op <= 0x7f:
            # short conditional branches: mostly forward within the stream, sometimes back
            d = r.randrange(0, 3 * n_left + 4) if r.random() < 0.8 else r.randrange(-40, 0)
            return bytes([op, d & 0xff])
        if 0x50 <= op <= 0x5f or op in (0x90, 0x91, 0x98, 0x99, 0xc9) or 0xb0 <= op <= 0xbf:
            imm = b""
            if 0xb0 <= op <= 0xb7:
                imm = bytes([r.getrandbits(8)])
            elif 0xb8 <= op <= 0xbf:
                imm = r.getrandbits(64 if pre[-1:] and pre[-1] & 8 else 32).to_bytes(
                    8 if pre[-1:] and pre[-1] & 8 else 4, "little")
            return pre + bytes([op]) + imm
        if op in (0x6a, 0xa8):
            return pre + bytes([op, r.getrandbits(8)])
        if op in (0x68, 0xa9):
            return pre + bytes([op]) + r.getrandbits(32).to_bytes(4, "little")
        if op in (0xfe, 0xff, 0xf6, 0xf7, 0xc0, 0xc1, 0xd0, 0xd1, 0xd3, 0x80, 0x81, 0x83, 0xc6, 0xc7):
            m = self.modrm()
            sub = r.randrange(8)
            if op == 0xff:
                sub = r.choice((0, 1, 6))           # INC DEC PUSH (no indirect branches to nowhere)
            if op in (0xf6, 0xf7):
                sub = r.choice((0, 2, 3))           # TEST NOT NEG (no division)
            if op in (0xc6, 0xc7):
                sub = 0
            m = bytes([(m[0] & 0xc7) | (sub << 3)]) + m[1:]
            if op in (0xc0, 0xc1, 0x80, 0x83, 0xc6) or (op == 0xf6 and sub == 0):
                m += bytes([r.getrandbits(8) if op not in (0xc0, 0xc1) else r.randrange(0, 70)])
            elif op in (0x81, 0xc7) or (op == 0xf7 and sub == 0):
                m += r.getrandbits(16 if pre[:1] == b"\x66" else 32).to_bytes(2 if pre[:1] == b"\x66" else 4, "little")
            return pre + bytes([op]) + m
        out = pre + bytes([op]) + self.modrm()
        if op in (0x69,):
            out += r.getrandbits(32).to_bytes(4, "little")
        elif op in (0x6b,):
            out += bytes([r.getrandbits(8)])
        elif op in _ALU and op & 7 in (4, 5):
            out = pre + bytes([op]) + (bytes([r.getrandbits(8)]) if op & 7 == 4 else r.getrandbits(32).to_bytes(4, "little"))
        return out

    def stream(self) -> bytes:
        n = self.rng.randint(1, 40)
        out = b"".join(self.insn(n - i) for i in range(n))
        return out + b"\x0f\x0b"               # UD2 after the stream

    def regs(self) -> list[int]:
        r = self.rng
        vals = []
        for i in range(16):
            if i in (3, 5, 6, 7, 11, 13, 14, 15):
                vals.append(DATA + r.randrange(0, DATA_SIZE - 256))
            elif i == 4:
                vals.append(STACK + STACK_SIZE // 2 + r.randrange(-64, 64) * 8)
            else:
                k = r.random()
                vals.append(r.getrandbits(64) if k < 0.4 else r.randrange(0, 300) if k < 0.8
                            else (-r.randrange(1, 300)) & MASK64)
        return vals


class Side:
    def __init__(self, tier: str):
        self.m = emu.Machine(ram_size=16 << 20, tier=tier, jit_threshold=0)
        self.m.map(CODE, 0x2000)
        self.m.map(DATA, DATA_SIZE)
        self.m.map(STACK, STACK_SIZE)

    def start(self, code: bytes, regs: list[int], rflags: int, data: bytes, stack: bytes):
        self.m.phys.flush_code()
        self.m.write(CODE, (code + b"\x0f\x0b" * 0x1000)[:0x2000])
        self.m.write(DATA, data)
        self.m.write(STACK, stack)
        v = self.m.vcpu
        for i, x in enumerate(regs):
            v.set_gpr(i, x)
        v.rflags = rflags
        for i in range(16):
            v.set_xmm(i, data[16 * i:16 * i + 16])     # (random bytes: numbers, NaNs, denormals)
        v.mxcsr = 0x1f80
        v.rip = CODE
        self.start_icount = v.icount

    def state(self, ex):
        v = self.m.vcpu
        return {"exit": (ex.name, getattr(ex, "vector", None) if ex.name == "EXCEPTION" else None),
                "rip": v.rip, "insns": v.icount - self.start_icount,
                "regs": [v.get_gpr(i) for i in range(16)], "flags": v.rflags,
                "xmm": [v.get_xmm(i) for i in range(16)], "mxcsr": v.mxcsr,
                "data": self.m.read(DATA, DATA_SIZE), "stack": self.m.read(STACK, STACK_SIZE)}


_CL_SHIFTS = {iced_x86.Mnemonic.SHL, iced_x86.Mnemonic.SAL, iced_x86.Mnemonic.SHR, iced_x86.Mnemonic.SAR,
              iced_x86.Mnemonic.ROL, iced_x86.Mnemonic.ROR, iced_x86.Mnemonic.RCL, iced_x86.Mnemonic.RCR,
              iced_x86.Mnemonic.SHLD, iced_x86.Mnemonic.SHRD}


def undefined_after(ins, undef: int, rcx: int) -> int:
    """The status flags left undefined after `ins` ran, given those undefined
    before it. A shift or rotate by CL whose masked count is 0 leaves every
    flag as it was (SDM Vol. 2B, SAL/SAR/SHL/SHR: "If the count is 0, the
    flags are not affected"), so it does not define a flag left undefined."""
    if ins.mnemonic in _CL_SHIFTS and iced_x86.Register.CL in (ins.op1_register, ins.op2_register):
        width = (iced_x86.RegisterInfo(ins.op0_register).size if ins.op0_kind == iced_x86.OpKind.REGISTER
                 else iced_x86.MemorySizeInfo(ins.memory_size).size)
        if rcx & (0x3F if width == 8 else 0x1F) == 0:
            return undef
    written = ins.rflags_written | ins.rflags_cleared | ins.rflags_set
    return (undef & ~_x86_flags(written)) | _x86_flags(ins.rflags_undefined)


def decode_at(m, rip: int):
    try:
        raw = m.read(rip, 15)
    except Exception:
        return None
    return next(iter(iced_x86.Decoder(64, raw, ip=rip)))


def run_reference(side: "Side", budget: int):
    """Single-step the interpreter for at most budget instructions, and stop
    before an instruction that reads a status flag an earlier one left
    undefined (where the tiers may rightly go different ways). Returns the
    exit, the instructions run and the flags undefined at the end."""
    v = side.m.vcpu
    undef = 0
    steps = 0
    ex = None
    for _ in range(budget):
        ins = decode_at(side.m, v.rip)
        if ins is not None:
            if _x86_flags(ins.rflags_read) & undef:
                break
        rcx = v.get_gpr(1)
        ex = v.run(1)
        if ex.name != "BUDGET":
            break
        steps += 1
        if ins is not None:
            undef = undefined_after(ins, undef, rcx)
    if ex is None or ex.name == "BUDGET":
        ex = _Budget()
    return ex, steps, undef


class _Budget:
    name = "BUDGET"


def make_case(seed: int, n: int):
    """Stream n of a campaign: code, registers, RFLAGS, data page, budget."""
    rng = random.Random(seed * 1000003 + n)
    gen = Gen(rng)
    code = gen.stream()
    regs = gen.regs()
    rflags = 0x202 | (rng.getrandbits(12) & ARITH)
    data = bytes(rng.getrandbits(8) for _ in range(64)) * (DATA_SIZE // 64)
    return code, regs, rflags, data, rng.randint(1, 200)


def fuzz(streams: int, seed: int, report_every: int = 0, out=sys.stdout, first: int = 0) -> dict:
    ref, jit = Side("interp"), Side("jit")
    counts = {"streams": 0, "instructions": 0, "faults": 0, "mismatches": 0}
    t0 = time.time()
    for n in range(first, first + streams):
        code, regs, rflags, data, budget = make_case(seed, n)
        stack = bytes(STACK_SIZE)
        # the reference: single steps, so the executed path is known
        ref.start(code, regs, rflags, data, stack)
        ex, steps, undef = run_reference(ref, budget)
        a = ref.state(ex)
        budget = steps + (ex.name != "BUDGET")
        jit.start(code, regs, rflags, data, stack)
        b = jit.state(jit.m.vcpu.run(budget) if budget else _Budget())
        mask = ARITH & ~undef
        a["flags"] &= mask | 0x400
        b["flags"] &= mask | 0x400
        counts["streams"] += 1
        counts["instructions"] += a["insns"]
        counts["faults"] += a["exit"][0] == "EXCEPTION"
        if a != b:
            counts["mismatches"] += 1
            diffs = [k for k in a if a[k] != b[k]]
            print("MISMATCH stream %d (seed %d): %s" % (n, seed, ", ".join(diffs)), file=out)
            print("  code %s" % code.hex(), file=out)
            print("  regs %s flags %#x budget %d" % ([hex(x) for x in regs], rflags, budget), file=out)
            for k in diffs:
                if k in ("data", "stack"):
                    i = next(i for i in range(len(a[k])) if a[k][i] != b[k][i])
                    print("  %s first differs at +%#x: interp %s jit %s" % (k, i, a[k][i:i + 8].hex(),
                                                                             b[k][i:i + 8].hex()), file=out)
                elif k == "regs":
                    for i in range(16):
                        if a[k][i] != b[k][i]:
                            print("  %s: interp %#x jit %#x" % (emu.GPR_NAMES[i], a[k][i], b[k][i]), file=out)
                else:
                    print("  %s: interp %r jit %r" % (k, a[k], b[k]), file=out)
        if report_every and (n + 1 - first) % report_every == 0:
            print("%d streams, %d instructions, %d faults, %d mismatches, %.0f streams/s"
                  % (counts["streams"], counts["instructions"], counts["faults"], counts["mismatches"],
                     (n + 1 - first) / (time.time() - t0)), file=out, flush=True)
    counts["seconds"] = time.time() - t0
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--report", type=int, default=10000, metavar="EVERY")
    ap.add_argument("--bisect", type=int, metavar="N", help="show where stream N of the seed diverges")
    a = ap.parse_args()
    if a.bisect is not None:
        bisect(a.seed, a.bisect)
        return 0
    if "jit" not in emu.available_tiers():
        print("fuzz_tiers: this host has no native tier", file=sys.stderr)
        return 2
    c = fuzz(a.streams, a.seed, a.report)
    print("streams %(streams)d, instructions %(instructions)d, faults %(faults)d, mismatches %(mismatches)d, "
          "%(seconds).0f s" % c)
    return 1 if c["mismatches"] else 0


def bisect(seed: int, n: int) -> None:
    """Print the first instruction of stream n after which the two tiers disagree."""
    code, regs, rflags, data, budget = make_case(seed, n)
    ref, jit = Side("interp"), Side("jit")
    fmt = iced_x86.Formatter(iced_x86.FormatterSyntax.INTEL)
    ref.start(code, regs, rflags, data, bytes(STACK_SIZE))
    ex, steps, _ = run_reference(ref, budget)
    budget = steps + (ex.name != "BUDGET")
    for k in range(1, budget + 1):
        ref.start(code, regs, rflags, data, bytes(STACK_SIZE))
        rips = []
        ex = None
        for _ in range(k):
            rips.append((ref.m.vcpu.rip, ref.m.vcpu.get_gpr(1)))
            ex = ref.m.vcpu.run(1)
            if ex.name != "BUDGET":
                break
        a = ref.state(ex)
        jit.start(code, regs, rflags, data, bytes(STACK_SIZE))
        b = jit.state(jit.m.vcpu.run(k))
        undef = 0
        for rip, rcx in rips:
            ins = decode_at(ref.m, rip)
            if ins is not None:
                undef = undefined_after(ins, undef, rcx)
        rips = [rip for rip, _ in rips]
        mask = ARITH & ~undef
        a["flags"] &= mask | 0x400
        b["flags"] &= mask | 0x400
        if a != b:
            for rip in rips[-6:-1]:
                ins = next(iter(iced_x86.Decoder(64, ref.m.read(rip, 15), ip=rip)))
                print("  %#x: %s" % (rip, fmt.format(ins)))
            ins = next(iter(iced_x86.Decoder(64, ref.m.read(rips[-1], 15), ip=rips[-1])))
            print("after %d instructions, at %#x: %s (%s)" % (k, rips[-1], fmt.format(ins),
                                                             ref.m.read(rips[-1], ins.len).hex()))
            for key in a:
                if a[key] != b[key] and key not in ("data", "stack"):
                    print("  %s interp %s jit %s" % (key, a[key] if key != "regs" else [hex(x) for x in a[key]],
                                                   b[key] if key != "regs" else [hex(x) for x in b[key]]))
            return
    print("no difference")


if __name__ == "__main__":
    sys.exit(main())
