"""Differential testing: the same instruction bytes on the host CPU (the
oracle, tests/native.py) and in emu, compared register by register.

The emu side places code, stack and scratch memory at the very virtual
addresses the native run uses, so addresses, RIP-relative operands and
pushed return addresses agree without translation.
"""
from __future__ import annotations

import random

import pytest

import emu
import native

ARITH = 0x8D5            # CF PF AF ZF SF OF
ALL_FLAGS = ARITH | 0x400
MASK64 = (1 << 64) - 1

needs_native = pytest.mark.skipif(not native.available(), reason="needs an x86-64 Linux host")

# edge values for each operand size: 0, 1, -1, sign boundaries
def edge_values(bits: int) -> list[int]:
    m = (1 << bits) - 1
    s = 1 << (bits - 1)
    return [0, 1, 2, m, m - 1, s, s - 1, s + 1, 0x7F, 0x80, 0xFF, 0x100 & m, 0x55 & m, 0xAA & m]


def random_value(rng: random.Random, bits: int = 64) -> int:
    """Random operands biased towards the interesting ones."""
    k = rng.random()
    if k < 0.25:
        return rng.choice(edge_values(bits)) | (rng.getrandbits(64) & ~((1 << bits) - 1) & MASK64)
    if k < 0.35:
        return rng.getrandbits(rng.randint(1, 64))
    return rng.getrandbits(64)


class EmuSide:
    """One emu Machine reused for many single-instruction runs."""

    def __init__(self):
        self.m = emu.Machine(ram_size=64 << 20, cpl=3)
        self.mapped: set[int] = set()

    def ensure_mapped(self, va: int, size: int) -> None:
        start = va & ~0xFFF
        end = (va + size + 0xFFF) & ~0xFFF
        for page in range(start, end, 0x1000):
            if page not in self.mapped:
                self.m.map(page, 0x1000)
                self.mapped.add(page)

    def run(self, code: bytes, code_addr: int, regs: dict, rflags: int,
            memory: list[tuple[int, bytes]], budget: int = 1, stop_at: int | None = None):
        """Run code for `budget` instructions. Under the native tier a block
        shorter than the budget would run in the interpreter, so the code is
        followed by a stop (UD2), as is stop_at (where a taken branch lands),
        and the run goes on until the stop: reaching it after exactly
        `budget` instructions is the BUDGET exit the interpreter gives."""
        stops = [code_addr + len(code)] if self.m.phys.tier != "interp" else []
        if stops and stop_at is not None and stop_at not in stops:
            stops.append(stop_at)
        self.ensure_mapped(code_addr, len(code) + 16)
        self.m.write(code_addr, code + (STOP if stops else b""))
        for va, data in memory:
            self.ensure_mapped(va, len(data))
            self.m.write(va, data)
        for va in stops[1:]:
            if not code_addr <= va < code_addr + len(code) + len(STOP):
                self.ensure_mapped(va, len(STOP))
                self.m.write(va, STOP)
        v = self.m.vcpu
        for i, name in enumerate(emu.GPR_NAMES):
            v.set_gpr(i, regs.get(name, 0) & MASK64)
        v.rflags = rflags
        v.rip = code_addr
        start = v.icount
        ex = v.run(budget + 1 if stops else budget)
        if stops and ex.name == "EXCEPTION" and ex.vector == 6 and v.rip in stops \
                and v.icount - start == budget:
            return StoppedAtBudget(v.rip)
        return ex


STOP = b"\x0f\x0b"          # UD2


class StoppedAtBudget:
    """The BUDGET exit of a run that reached its stop (EmuSide.run)."""
    name = "BUDGET"

    def __init__(self, rip: int):
        self.rip = rip

    def __repr__(self):
        return "<Exit BUDGET rip=%#x>" % self.rip


_emu = None


def emu_side() -> EmuSide:
    global _emu
    if _emu is None:
        _emu = EmuSide()
    return _emu


def check(code: bytes, regs: dict | None = None, rflags: int = 0x202, *,
          flags_mask: int = ARITH, scratch: list | None = None, taken_disp: int | None = None,
          ignore_regs: tuple = (), note: str = "", budget: int = 1, xmm=None, mxcsr: int | None = None,
          fxstate: bytes | None = None, compare_x87: bool = False, ignore_mem: list | None = None) -> None:
    """Run code natively and in emu from the same state; assert the same
    GPRs, RIP, flags (under flags_mask) and scratch memory. Returns the
    native result (its .exit tells whether a branch was taken).

    scratch: list of (address, ctypes buffer, initial bytes) from native.scratch();
    both sides start from the initial bytes and must end with the same bytes.
    budget: instructions emu runs (1: code is a single instruction; more for
    short straight-line sequences).

    xmm ({index: 16 bytes} or a list), mxcsr, fxstate (a 512-byte FXSAVE64
    image): the SSE/x87 starting state; when any is given XMM0-15 and MXCSR
    are compared too, and with fxstate or compare_x87 also the x87 control,
    status and abridged tag words and ST0-7.
    """
    sse = xmm is not None or mxcsr is not None or fxstate is not None
    fx_in = native.fx_image(xmm, mxcsr, fxstate)
    regs = dict(regs or {})
    if "rsp" not in regs:
        stack_addr, _ = native.default_stack()
        regs["rsp"] = stack_addr + 32768
    stack_addr, stack_buf = native.default_stack()
    stack_init = bytes(64) * 8
    mem = []
    if scratch:
        for addr, buf, init in scratch:
            buf[:len(init)] = init
            mem.append((addr, bytes(init)))
    # the stack region around rsp, so PUSH/POP/CALL see the same bytes
    stack_lo = stack_addr + 32768 - 256
    ctypes_mem = stack_buf
    ctypes_mem[32768 - 256:32768 + 256] = bytes(512)
    mem.append((stack_lo, bytes(512)))
    res = native.run(code, regs, rflags, taken_disp=taken_disp, fxstate=fx_in)
    native_mem = [bytes(buf[:len(init)]) for _, buf, init in (scratch or [])]
    native_stack = bytes(stack_buf[32768 - 256:32768 + 256])

    side = emu_side()
    side.m.vcpu.fxrstor(fx_in)
    ex = side.run(code, res.code_addr, regs, rflags, mem, budget, stop_at=res.rip)
    v = side.m.vcpu
    what = "%s regs=%s flags=%#x %s" % (code.hex(), {k: hex(x) for k, x in regs.items()}, rflags, note)
    assert ex.name in ("BUDGET",), "emu stopped with %r for %s" % (ex, what)
    emu_regs = {name: v.get_gpr(i) for i, name in enumerate(emu.GPR_NAMES)}
    for name in emu.GPR_NAMES:
        if name in ignore_regs:
            continue
        assert emu_regs[name] == res.regs[name], "%s: emu %#x native %#x for %s" % (
            name, emu_regs[name], res.regs[name], what)
    assert v.rip == res.rip, "rip: emu %#x native %#x for %s" % (v.rip, res.rip, what)
    ef, nf = v.rflags & flags_mask, res.rflags & flags_mask
    assert ef == nf, "flags: emu %#x native %#x (diff %#x) for %s" % (ef, nf, ef ^ nf, what)
    for (addr, _, init), nat in zip(scratch or [], native_mem):
        got = side.m.read(addr, len(init))
        for lo, n in ignore_mem or ():       # (address, length) ranges not compared
            if addr <= lo and lo + n <= addr + len(init):
                k = lo - addr
                got = got[:k] + nat[k:k + n] + got[k + n:]
        assert got == nat, "memory at %#x: emu %s native %s for %s" % (addr, got.hex(), nat.hex(), what)
    got_stack = side.m.read(stack_lo, 512)
    assert got_stack == native_stack, "stack differs for %s" % what
    if sse:
        for i in range(16):
            e, n = v.get_xmm(i), res.xmm[i]
            assert e == n, "xmm%d: emu %s native %s for %s" % (i, e[::-1].hex(), n[::-1].hex(), what)
        assert v.mxcsr == res.mxcsr, "mxcsr: emu %#x native %#x for %s" % (v.mxcsr, res.mxcsr, what)
    if fxstate is not None or compare_x87:
        e, n = v.fxsave(), res.fxsave
        for name, lo, hi in (("fcw", 0, 2), ("fsw", 2, 4), ("ftw", 4, 5)):
            assert e[lo:hi] == n[lo:hi], "%s: emu %s native %s for %s" % (name, e[lo:hi].hex(), n[lo:hi].hex(), what)
        for i in range(8):
            a, b = e[32 + 16 * i:42 + 16 * i], n[32 + 16 * i:42 + 16 * i]
            assert a == b, "st%d: emu %s native %s for %s" % (i, a[::-1].hex(), b[::-1].hex(), what)
    return res


def emu_only(code: bytes, regs: dict | None = None, rflags: int = 0x202, budget: int = 1):
    """Run code in emu alone (for faults the host cannot take safely);
    returns (exit, vcpu)."""
    side = emu_side()
    stack_addr, _ = native.default_stack() if native.available() else (0x7FFF0000, None)
    regs = dict(regs or {})
    regs.setdefault("rsp", stack_addr + 32768)
    code_addr = 0x10000000
    ex = side.run(code, code_addr, regs, rflags, [(stack_addr + 32768 - 256, bytes(512))], budget)
    return ex, side.m.vcpu


# every form a test module checked, for the coverage listing (tests/test_coverage_list.py)
COVERED: dict[str, int] = {}


def covered(form: str, cases: int) -> None:
    COVERED[form] = COVERED.get(form, 0) + cases
