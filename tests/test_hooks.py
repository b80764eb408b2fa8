"""Instrumentation (emu/core/hooks.pxi, emu/hooks.py): code, fetch, block and
memory hooks, instruction-class traps and the AFL edge-coverage map."""
from __future__ import annotations

import io
import os
import struct
import sys
import tempfile

import numpy as np
import pytest

import emu
from emu import _core
from emu.hooks import Hooks, run

CODE = 0x400000
DATA = 0x600000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A counted loop: 10 iterations of inc / store / load / dec / jnz, then HLT.
LOOP = bytes.fromhex("31c0 b90a000000 48ffc0 4889042500006000 488b1c2508006000 ffc9 75e9 f4")
L_INC, L_STORE, L_LOAD, L_DEC, L_JNZ, L_HLT = (CODE + o for o in (0x07, 0x0A, 0x12, 0x1A, 0x1C, 0x1E))
LOOP_INSNS = 2 + 10 * 5 + 1          # 53 instructions retired, HLT included

# A branching loop: for i in 0..9: eax += 2 if i & rdi else 1; then HLT.
BRANCH = bytes.fromhex("31c0 31c9 89ca 21fa 7405 83c002 eb03 83c001 ffc1 83f90a 75eb f4")
B_START, B_LOOP, B_A, B_B, B_JOIN, B_HLT = (CODE + o for o in (0x00, 0x04, 0x0A, 0x0F, 0x12, 0x19))


class Box:
    def __init__(self, code: bytes = LOOP):
        self.m = emu.Machine(16 << 20, cpl=0)
        self.m.map(CODE, 0x2000)
        self.m.map(DATA, 0x2000)
        self.v = self.m.vcpu
        self.m.write(CODE, code)
        self.v.rip = CODE

    def restart(self, **regs):
        self.v.rip = CODE
        for k, val in regs.items():
            setattr(self.v, k, val)


def guest(name):
    """A bench guest loaded by the Linux personality (driven by drive())."""
    from emu.linux.process import Process
    path = os.path.join(ROOT, "guests", "bench", "bin", name)
    if not os.path.exists(path):
        pytest.skip("no bench guest")
    out = tempfile.TemporaryFile()
    p = Process([path], env={}, stdio=(0, out.fileno(), out.fileno()), seed=1)
    p.load(path)
    p.out = out
    return p


def drive(p, on_exit=None, limit=None):
    """Run the guest's vCPU; system calls and demand paging go to the
    personality, other exits to on_exit (which returns True to go on).
    Returns the exit that ended the run: exit_group's SYSCALL or BUDGET."""
    from emu.linux.process import GuestExit
    v = p.vcpu
    while True:
        ex = v.run() if limit is None else v.run(max(limit - v.icount, 0))
        if ex.name == "SYSCALL":
            try:
                p.sys.dispatch()
            except GuestExit:
                return ex
        elif ex.name == "EXCEPTION" and ex.vector == 14 and p.mm.handle_fault(ex.cr2, ex.error_code):
            continue
        elif ex.name == "BUDGET" and limit is not None:
            return ex
        elif on_exit is None or not on_exit(ex):
            raise AssertionError("unexpected exit %r" % ex)


def run_to_exit(v, budget=None):
    """Run, collecting HOOK exits, until another exit."""
    hooks = []
    while True:
        ex = v.run() if budget is None else v.run(budget)
        if ex.name == "HOOK":
            hooks.append(ex)
            continue
        if ex.name == "BUDGET" and budget is not None:
            continue
        return ex, hooks


def block_trace_branch(rdi: int) -> list[int]:
    """The blocks emu executes for BRANCH (blocks end at branches)."""
    out = [B_START]
    nxt = B_A if (0 & rdi) else B_B
    for i in range(10):
        if nxt == B_A:
            out += [B_A, B_JOIN]
        else:
            out.append(B_B)           # B falls into the join: one block B..JNE
        if i == 9:
            break
        out.append(B_LOOP)
        nxt = B_A if ((i + 1) & rdi) else B_B
    out.append(B_HLT)
    return out


def afl_map(trace: list[int]) -> np.ndarray:
    m = np.zeros(65536, dtype=np.uint8)
    prev = 0
    for a in trace:
        cur = ((a >> 4) ^ (a << 8)) & 0xFFFF
        m[cur ^ prev] = (int(m[cur ^ prev]) + 1) & 0xFF      # wraps like AFL's u8
        prev = cur >> 1
    return m


# ---- code hooks ----

def test_code_hook_fires_exactly_on_the_hooked_instruction():
    b = Box()
    hid = b.v.add_code_hook(L_DEC, L_DEC)
    ex, hooks = run_to_exit(b.v)
    assert ex.name == "HLT"
    assert len(hooks) == 10
    for h in hooks:
        assert (h.kind, h.hook_id, h.address, h.rip, h.size) == ("code", hid, L_DEC, L_DEC, 2)
    # the hooked instruction ran once per iteration: state as without hooks
    assert (b.v.rax, b.v.rcx, b.v.icount) == (10, 0, LOOP_INSNS)
    assert b.v.counters["exits"] == {"HOOK": 10, "HLT": 1}


def test_code_hook_range_and_non_instruction_addresses():
    b = Box()
    b.v.add_code_hook(L_INC, L_JNZ)          # the five loop instructions
    b.v.add_code_hook(L_INC + 1, L_INC + 2)  # inside INC: no instruction starts there
    ex, hooks = run_to_exit(b.v)
    assert ex.name == "HLT"
    addrs = [h.address for h in hooks]
    assert addrs == [L_INC, L_STORE, L_LOAD, L_DEC, L_JNZ] * 10
    assert b.v.rax == 10 and b.v.icount == LOOP_INSNS


def test_code_hook_remove_and_add_invalidate_translations():
    b = Box()
    ex, hooks = run_to_exit(b.v)              # translate everything unhooked
    assert hooks == []
    hid = b.v.add_code_hook(L_INC, L_INC)
    b.restart()
    ex, hooks = run_to_exit(b.v)
    assert len(hooks) == 10
    b.v.remove_hook(hid)
    assert b.v.hooks == []
    b.restart()
    ex, hooks = run_to_exit(b.v)
    assert hooks == [] and ex.name == "HLT"
    with pytest.raises(KeyError):
        b.v.remove_hook(hid)


def test_code_hook_resume_executes_instruction_once_even_when_stepping():
    for budget in (None, 1, 2, 3, 7):
        b = Box()
        b.v.add_code_hook(L_INC, L_INC)
        b.v.add_code_hook(CODE, CODE)         # first instruction of the first block
        ex, hooks = run_to_exit(b.v, budget)
        assert ex.name == "HLT"
        assert [h.address for h in hooks] == [CODE] + [L_INC] * 10, budget
        assert (b.v.rax, b.v.icount) == (10, LOOP_INSNS), budget


def test_code_hook_callbacks_change_state():
    b = Box()
    h = Hooks(b.v)
    seen = []

    def bump(v, address, size):
        seen.append((address, size))
        v.rax += 100                          # before INC: both take effect
    h.code(L_INC, L_INC, bump)
    ex = h.run()
    assert ex.name == "HLT" and b.v.rax == 10 * 101 and seen == [(L_INC, 3)] * 10

    # skipping the instruction by moving RIP past it
    b2 = Box()
    h2 = Hooks(b2.v)
    h2.code(L_INC, L_INC, lambda v, a, s: setattr(v, "rip", a + s))
    ex = run(b2.v, h2)
    assert ex.name == "HLT" and b2.v.rax == 0 and b2.v.icount == LOOP_INSNS - 10


def test_callback_returning_false_stops_and_resume_completes():
    b = Box()
    h = Hooks(b.v)
    count = []
    h.code(L_DEC, L_DEC, lambda v, a, s: count.append(a) or len(count) != 3)
    ex = h.run()
    assert ex.name == "HOOK" and ex.address == L_DEC and len(count) == 3
    assert b.v.rcx == 8                        # third DEC not yet executed
    ex = h.run()
    assert ex.name == "HLT" and len(count) == 10 and b.v.rcx == 0 and b.v.icount == LOOP_INSNS


def test_code_hooks_belong_to_their_vcpu():
    b = Box()
    v2 = b.m.add_vcpu()
    b.v.add_code_hook(L_INC, L_INC)
    v2.rip = CODE
    ex, hooks = run_to_exit(v2)                # the other vCPU runs through the hook uops
    assert ex.name == "HLT" and hooks == [] and v2.rax == 10 and v2.icount == LOOP_INSNS
    ex, hooks = run_to_exit(b.v)
    assert len(hooks) == 10


def test_fetch_hook_reports_instructions_overlapping_the_range():
    b = Box()
    h = Hooks(b.v)
    got = []
    # the last byte of STORE (8 bytes at +0x0A) and the first of LOAD
    h.mem_fetch(L_STORE + 7, L_LOAD, lambda v, kind, a, size, val: got.append((kind, a, size)))
    assert h.run().name == "HLT"
    assert got == [("fetch", L_STORE, 8), ("fetch", L_LOAD, 8)] * 10
    assert b.v.rax == 10 and b.v.icount == LOOP_INSNS


# ---- block hooks ----

def test_block_hook_sees_each_block_execution():
    b = Box(BRANCH)
    for rdi in (0, 1, 3):
        b.restart(rdi=rdi)
        b.v.set_block_hook(True)
        ex, hooks = run_to_exit(b.v)
        assert ex.name == "HLT"
        assert [h.address for h in hooks] == block_trace_branch(rdi)
        assert all(h.kind == "block" for h in hooks)
        first = hooks[0]
        assert first.size == 0x0A and first.value == 5        # XOR XOR MOV AND JE: 10 bytes
        b.v.set_block_hook(False)
        assert b.v.rax == sum(2 if i & rdi else 1 for i in range(10))


def test_block_hook_with_stepping_and_code_hooks():
    # a budget cut inside a block or a code-hook exit does not count as a new block
    for budget in (None, 1, 4):
        b = Box(BRANCH)
        b.restart(rdi=1)
        b.v.set_block_hook(True)
        b.v.add_code_hook(B_LOOP, B_LOOP)
        b.v.add_code_hook(B_JOIN + 2, B_JOIN + 2)            # CMP, mid-block
        ex, hooks = run_to_exit(b.v, budget)
        blocks = [h.address for h in hooks if h.kind == "block"]
        assert blocks == block_trace_branch(1), budget
        assert [h.address for h in hooks if h.kind == "code"].count(B_LOOP) == 10
        assert [h.address for h in hooks if h.kind == "code"].count(B_JOIN + 2) == 10
        assert (b.v.icount, b.v.rax) == (2 + 5 * 8 + 5 * 7 + 1, 15), budget


def test_hooks_block_helper():
    b = Box()
    h = Hooks(b.v)
    trace = []
    hb = h.block(lambda v, a, s: trace.append(a))
    assert h.run().name == "HLT"
    assert trace == [CODE] + [L_INC] * 9 + [L_HLT]
    h.remove(hb)
    b.restart()
    trace.clear()
    assert h.run().name == "HLT" and trace == []


# ---- memory hooks ----

def test_mem_write_hook_sees_address_size_value_and_write_completes():
    b = Box()
    h = Hooks(b.v)
    got = []

    def on_write(v, kind, a, size, val):
        # not yet written: memory holds the previous value
        got.append((kind, a, size, val, struct.unpack("<Q", b.m.read(DATA, 8))[0]))
    h.mem_write(DATA, DATA + 7, on_write)
    assert h.run().name == "HLT"
    assert got == [("write", DATA, 8, i, i - 1) for i in range(1, 11)]
    assert struct.unpack("<Q", b.m.read(DATA, 8))[0] == 10
    assert b.v.icount == LOOP_INSNS


def test_mem_read_hook_runs_before_the_read():
    b = Box()
    h = Hooks(b.v)
    got = []

    def on_read(v, kind, a, size, val):
        got.append((kind, a, size))
        b.m.write(DATA + 8, struct.pack("<Q", 1000 + len(got)))   # the read sees this
    h.mem_read(DATA + 8, DATA + 8, on_read)
    assert h.run().name == "HLT"
    assert got == [("read", DATA + 8, 8)] * 10
    assert b.v.rbx == 1010 and b.v.icount == LOOP_INSNS


def test_mem_hooks_do_not_fire_for_other_addresses_on_the_page():
    b = Box()
    ids = [b.v.add_mem_hook(DATA + 0x100, DATA + 0x1FF, "read,write"),
           b.v.add_mem_hook(DATA + 0x10, DATA + 0x10, ("write",)),   # reads of DATA+8 pass
           b.v.add_mem_hook(DATA + 8, DATA + 15, ("write",))]         # only written by nobody
    ex, hooks = run_to_exit(b.v)
    assert ex.name == "HLT" and hooks == []
    assert b.v.rax == 10 and b.v.icount == LOOP_INSNS
    assert b.m.read(DATA, 8) == struct.pack("<Q", 10)
    for i in ids:
        b.v.remove_hook(i)


RMW = bytes.fromhex("48c704250000600005000000 4883042500006000 05"
                    "48be0000600000000000 48bf1000600000000000 48a5 f4")


def test_mem_hooks_multi_access_instructions_complete():
    # MOV [DATA], 5 ; ADD [DATA], 5 (read then write) ; MOVSQ DATA -> DATA+0x10 ; HLT
    for budget in (None, 1):
        b = Box(RMW)
        h = Hooks(b.v)
        got = []
        h.mem_read(DATA, DATA + 0x17, lambda v, k, a, s, val: got.append((k, a - DATA, s, val)))
        h.mem_write(DATA, DATA + 0x17, lambda v, k, a, s, val: got.append((k, a - DATA, s, val)))
        ex = h.run() if budget is None else None
        while budget is not None:
            ex = h.run(budget)
            if ex.name != "BUDGET":
                break
        assert ex.name == "HLT", ex
        assert got == [("write", 0, 8, 5),
                       ("read", 0, 8, 0), ("write", 0, 8, 10),
                       ("read", 0, 8, 0), ("write", 0x10, 8, 10)], budget
        assert b.m.read(DATA, 0x18) == struct.pack("<QQQ", 10, 0, 10)
        assert b.v.icount == 6
        assert b.v.counters["exits"]["HOOK"] == 5


def test_mem_hook_page_crossing_access():
    # MOV [DATA+0xFFC], RAX crosses into DATA+0x1000; the hook covers only the second page
    code = bytes.fromhex("48890425fc0f6000 f4")
    b = Box(code)
    b.v.rax = 0x1122334455667788
    h = Hooks(b.v)
    got = []
    h.mem_write(DATA + 0x1000, DATA + 0x1000, lambda v, k, a, s, val: got.append((a, s, val)))
    assert h.run().name == "HLT"
    assert got == [(DATA + 0xFFC, 8, 0x1122334455667788)]
    assert b.m.read(DATA + 0xFFC, 8) == struct.pack("<Q", 0x1122334455667788)


def test_code_and_memory_hook_on_one_instruction():
    b = Box()
    h = Hooks(b.v)
    got = []
    h.code(L_STORE, L_STORE, lambda v, a, s: got.append("code"))
    h.mem_write(DATA, DATA, lambda v, k, a, s, val: got.append("write"))
    h.block(lambda v, a, s: got.append("block"))
    assert h.run().name == "HLT"
    assert got == ["block", "code", "write"] + ["block", "code", "write"] * 9 + ["block"]
    assert b.v.rax == 10 and b.v.icount == LOOP_INSNS


def test_mem_hook_stale_after_rip_change():
    # the VMM abandons an instruction stopped by a memory hook: its access is
    # not treated as already reported when the program runs again
    b = Box()
    b.v.add_mem_hook(DATA, DATA + 7, "write")
    ex = b.v.run()
    assert ex.name == "HOOK" and ex.rip == L_STORE and ex.value == 1
    b.restart(rax=0)
    ex, hooks = run_to_exit(b.v)
    assert ex.name == "HLT" and [h.value for h in hooks] == list(range(1, 11)) and b.v.rax == 10


def test_mem_hooks_belong_to_their_vcpu_and_api_checks():
    b = Box()
    v2 = b.m.add_vcpu()
    hid = b.v.add_mem_hook(DATA, DATA + 15, ("read", "write"))
    assert b.v.hooks == [(hid, DATA, DATA + 15, ("read", "write"))] and v2.hooks == []
    v2.rip = CODE
    ex, hooks = run_to_exit(v2)
    assert ex.name == "HLT" and hooks == [] and v2.rax == 10
    with pytest.raises(ValueError):
        b.v.add_mem_hook(DATA, DATA, "execute-ish")
    with pytest.raises(ValueError):
        b.v.add_mem_hook(DATA, DATA, ())
    with pytest.raises(KeyError):
        v2.remove_hook(hid)                    # not v2's


# ---- instruction classes ----

def test_trap_and_insn_hooks():
    code = bytes.fromhex("b800000000 0fa2 0f31 f4")     # mov eax,0 ; cpuid ; rdtsc ; hlt
    b = Box(code)
    b.v.trap("cpuid")
    ex = b.v.run()
    assert ex.name == "CPUID" and ex.rip == CODE + 5 and b.v.rip == CODE + 7
    b.v.trap("cpuid", False)
    b.restart()
    assert b.v.run().name == "HLT" and b.v.rbx != 0        # answered by the core's table
    with pytest.raises(KeyError):
        b.v.trap("nonsense")
    b.restart()
    h = Hooks(b.v)
    seen = []

    def on_cpuid(v, ex):
        seen.append(ex.name)
        v.rax, v.rbx, v.rcx, v.rdx = 1, 2, 3, 4
    h.insn("cpuid", on_cpuid)
    h.insn("rdtsc", lambda v, ex: seen.append(ex.name))
    ex = h.run()
    assert ex.name == "HLT" and seen == ["CPUID", "RDTSC"] and b.v.rbx == 2 and b.v.rcx == 3
    assert b.v.trap_mask & _core.TRAPS["cpuid"]


def test_interrupt_and_rdpmc_insn_hooks():
    # int 0x80 ; rdpmc ; int 3 (not hooked: the core's #BP) -- the callbacks stand in for
    # INT 0x80 and RDPMC (which would #GP: no counters); in system mode too, where INT n
    # would otherwise go through the guest's IDT
    code = bytes.fromhex("cd80 0f33 cc")
    for system in (False, True):
        b = Box(code)
        b.v.deliver_via_idt = system
        h = Hooks(b.v)
        seen = []

        def on_int(v, ex):
            seen.append((ex.op, ex.vector, ex.rip))
            v.rax = 0x1234

        def on_rdpmc(v, ex):
            seen.append((ex.op, ex.value, ex.rip))
            v.complete_trap(0x0000000500000007)        # or let the core act: complete_trap()
        h.insn("int", on_int)
        h.insn("rdpmc", on_rdpmc)
        b.v.rcx = 0
        if system:
            b.v.idtr = (0, 0)                          # INT 3 through an empty IDT: shutdown
        ex = h.run()
        assert seen == [("int", 0x80, CODE), ("rdpmc", 0, CODE + 2)]
        assert b.v.rax == 7 and b.v.rdx == 5
        if system:
            assert ex.name == "SHUTDOWN"
        else:
            assert ex.name == "EXCEPTION" and ex.vector == 3 and ex.software is False
            assert b.v.icount == 3                      # #BP is a trap: INT3 retired


# ---- coverage ----

def test_coverage_map_edges():
    b = Box(BRANCH)
    b.v.enable_coverage()
    cov = b.v.coverage
    assert cov.shape == (65536,) and cov.dtype == np.uint8
    b.restart(rdi=0)
    assert b.v.run().name == "HLT"
    want0 = afl_map(block_trace_branch(0))
    assert np.array_equal(cov, want0)                        # zero-copy: the live map
    edges0 = set(np.nonzero(cov)[0])
    assert edges0 == set(np.nonzero(want0)[0])
    assert len(edges0) == 5       # entry->START, START->B, B->LOOP, LOOP->B, B->HLT
    b.v.clear_coverage()
    assert not cov.any()
    b.restart(rdi=1)
    assert b.v.run().name == "HLT"
    assert np.array_equal(cov, afl_map(block_trace_branch(1)))
    edges1 = set(np.nonzero(cov)[0])
    assert len(edges1 - edges0) >= 3                          # the new branch adds edges
    # coverage accumulates without a clear; disabling stops it
    snap = cov.copy()
    b.v.enable_coverage(False)
    b.restart(rdi=1)
    b.v.run()
    assert np.array_equal(cov, snap)


def test_coverage_independent_of_stepping_and_hook_exits():
    want = afl_map(block_trace_branch(3))
    for budget in (1, 3, 5, None):
        b = Box(BRANCH)
        b.v.enable_coverage()
        b.v.add_code_hook(B_JOIN, B_JOIN + 2)
        b.v.add_mem_hook(CODE, CODE + 0x100, "fetch")
        b.restart(rdi=3)
        ex, hooks = run_to_exit(b.v, budget)
        assert ex.name == "HLT" and hooks
        assert np.array_equal(b.v.coverage, want), budget


def test_coverage_matches_block_hook_on_a_guest():
    runs = []
    for block_hook in (False, True):
        p = guest("sort-small")
        v = p.vcpu
        v.enable_coverage()
        v.set_block_hook(block_hook)
        trace = []
        ex = drive(p, lambda ex: ex.name == "HOOK" and not trace.append(ex.address), limit=100_000)
        assert ex.name == "BUDGET"
        runs.append((v.coverage.copy(), trace, v.icount))
    (cov, _, n0), (cov_hooked, trace, n1) = runs
    assert n0 == n1 == 100_000
    assert 20 < np.count_nonzero(cov) and len(trace) > 1000
    assert np.array_equal(cov, cov_hooked)
    assert np.array_equal(cov, afl_map(trace))



def test_compiled_code_updates_the_edge_map_itself(tier):
    # coverage alone does not make compiled code leave at every block: chained
    # blocks update the map inline (core/jit_emit.pxi e_cov_edge), and the
    # map is the one the block-hook trace gives
    p = guest("sort-small")
    v = p.vcpu
    v.enable_coverage()
    assert drive(p, limit=300_000).name == "BUDGET"
    cov = v.coverage.copy()
    q = guest("sort-small")
    q.vcpu.set_block_hook(True)
    trace = []
    drive(q, lambda ex: ex.name == "HOOK" and not trace.append(ex.address), limit=300_000)
    assert np.array_equal(cov, afl_map(trace)) and len(trace) > 10_000
    if tier == "jit":
        assert v.counters["jit"]["entries"] < len(trace) // 10, (v.counters["jit"], len(trace))


# ---- no hooks: nothing changes ----

def _run_guest(name, prepare=None):
    p = guest(name)
    v = p.vcpu
    if prepare:
        prepare(v)
    drive(p, lambda ex: ex.name == "HOOK")
    p.out.seek(0)
    c = v.counters
    return p.out.read(), c["instructions"], {k: n for k, n in c["exits"].items() if k != "HOOK"}, c["exits"].get("HOOK", 0)


def test_no_hooks_no_change():
    b = Box()
    assert b.v.run().name == "HLT"
    assert b.v.icount == LOOP_INSNS and b.v.counters["exits"] == {"HLT": 1}
    base = _run_guest("crc32-small")
    assert base[3] == 0 and base[0] and base[1] > 1_000_000

    def removed(v):
        for i in (v.add_code_hook(0, 0xFFFFFFFFFFFFFFFF), v.add_mem_hook(0, 0xFFFFFFFFFFFFFFFF, "read,write")):
            v.remove_hook(i)
        v.set_block_hook(True)
        v.set_block_hook(False)

    def unreached(v):
        v.add_code_hook(0x10, 0x20)
        v.add_mem_hook(0x10, 0x20, "read,write,fetch")

    for prep in (removed, unreached, lambda v: v.enable_coverage()):
        got = _run_guest("crc32-small", prep)
        assert got == base


REP = bytes.fromhex("48bf0000600000000000 b92c010000 b0ab f3aa"        # rep stosb x300 at DATA
                    "48be0000600000000000 48bf0002600000000000 b904000000 f348a5 f4")  # rep movsq


def test_mem_hooks_rep_string_instructions():
    for budget in (None, 1, 5):
        b = Box(REP)
        h = Hooks(b.v)
        got = []
        rec = (lambda v, k, a, s, val: got.append((k, a - DATA, s, val)))
        h.mem_write(DATA, DATA + 299, rec)
        h.mem_read(DATA + 8, DATA + 15, rec)
        h.mem_write(DATA + 0x218, DATA + 0x21F, rec)
        ex = h.run(budget)
        while ex.name == "BUDGET":
            ex = h.run(budget)
        assert ex.name == "HLT"
        want = [("write", i, 1, 0xAB) for i in range(300)]
        want += [("read", 8, 8, 0), ("write", 0x218, 8, 0xABABABABABABABAB)]
        assert got == want, budget
        assert b.m.read(DATA, 301) == b"\xab" * 300 + b"\0"
        assert b.m.read(DATA + 0x200, 0x21) == b"\xab" * 0x20 + b"\0"
        assert b.v.rcx == 0


def test_code_hook_on_faulting_instructions():
    # NOP ; UD2   and   NOP ; 06 (PUSH ES: #UD in 64-bit mode, a decode fault)
    for code in (bytes.fromhex("90 0f0b"), bytes.fromhex("90 06")):
        b = Box(code)
        b.v.add_code_hook(CODE + 1, CODE + 1)
        ex = b.v.run()
        assert (ex.name, ex.kind, ex.address) == ("HOOK", "code", CODE + 1)
        ex = b.v.run()
        assert ex.name == "EXCEPTION" and ex.vector == 6 and ex.rip == CODE + 1
        assert b.v.icount == 1


def test_code_hook_on_syscall_user_mode():
    # user mode: SYSCALL exits to the personality after the hook
    m = emu.Machine(16 << 20, cpl=3)
    m.map(CODE, 0x1000)
    m.write(CODE, bytes.fromhex("b83c000000 0f05 f4"))
    v = m.vcpu
    v.rip = CODE
    h = Hooks(v)
    seen = []
    h.code(CODE + 5, CODE + 5, lambda vv, a, s: seen.append((a, s)))
    ex = h.run()
    assert ex.name == "SYSCALL" and v.rax == 60 and seen == [(CODE + 5, 2)]
    assert v.rip == CODE + 7 and v.icount == 2


def test_overlapping_python_hooks_all_called():
    b = Box()
    h = Hooks(b.v)
    got = []
    h.code(L_INC, L_DEC, lambda v, a, s: got.append(("wide", a)))
    h.code(L_DEC, L_DEC, lambda v, a, s: got.append(("dec", a)))
    h.mem_write(DATA, DATA + 3, lambda v, k, a, s, val: got.append(("w0", a)))
    h.mem_write(DATA + 4, DATA + 7, lambda v, k, a, s, val: got.append(("w4", a)))
    b1 = h.block(lambda v, a, s: got.append(("b1", a)))
    b2 = h.block(lambda v, a, s: got.append(("b2", a)))
    assert h._direct == {}                     # every exit takes the general dispatch
    assert h.run().name == "HLT"
    it = [("wide", L_INC), ("wide", L_STORE), ("w0", DATA), ("w4", DATA), ("wide", L_LOAD),
          ("wide", L_DEC), ("dec", L_DEC)]
    assert got == [("b1", CODE), ("b2", CODE)] + it + (
        [("b1", L_INC), ("b2", L_INC)] + it) * 9 + [("b1", L_HLT), ("b2", L_HLT)]
    assert b.v.rax == 10 and b.v.icount == LOOP_INSNS
    h.remove(b1)
    h.remove(b2)
    h.clear()
    assert b.v.hooks == [] and h._direct == {}
    b.restart()
    got.clear()
    assert h.run().name == "HLT" and got == []


def test_hooks_run_budget_and_dispatch_by_hand():
    b = Box()
    h = Hooks(b.v)
    got = []
    h.code(L_INC, L_INC, lambda v, a, s: got.append(a))
    ex = h.run(budget=10)
    assert ex.name == "BUDGET" and b.v.icount == 10 and len(got) == 2
    # a loop of one's own over vcpu.run() with Hooks.dispatch
    while True:
        ex = b.v.run()
        if ex.name != "HOOK":
            break
        assert h.dispatch(ex)
    assert ex.name == "HLT" and len(got) == 10 and b.v.rax == 10


def test_injected_exception_is_taken_under_hooks():
    # inject_exception() before hooks.run(): the guest takes it first, as with vcpu.run()
    b = Box(bytes.fromhex("90 90 f4"))
    h = Hooks(b.v)
    blocks = []
    h.block(lambda v, a, s: blocks.append(a))
    b.v.inject_exception(13)
    ex = h.run()
    assert ex.name == "EXCEPTION" and ex.vector == 13 and ex.rip == CODE and blocks == []
    assert h.run().name == "HLT" and blocks == [CODE]
