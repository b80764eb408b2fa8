"""Runs of pushes or pops (prologues, epilogues) are one stack access in
compiled code (core/jit_emit.pxi e_stack_run). Where the run's bytes are not
one page, every tier must still do what the interpreter does push by push:
cross into a mapped page, or fault at exactly the instruction that first
touches an unmapped one, with RSP, RIP and the instruction count of the
instructions before it."""
import pytest

import emu

CODE = 0x400000
STACK = 0x800000          # one mapped stack page; the page below and the page above are not
PF = 14
PUSHES = bytes([0x50, 0x53, 0x51, 0x52, 0x56, 0x57])     # push rax, rbx, rcx, rdx, rsi, rdi
POPS = bytes([0x5F, 0x5E, 0x5A, 0x59, 0x5B, 0x58])       # pop rdi, rsi, rdx, rcx, rbx, rax
VALUES = {"rax": 0x1111, "rbx": 0x2222, "rcx": 0x3333, "rdx": 0x4444, "rsi": 0x5555, "rdi": 0x6666}


def machine(code, rsp, below=False):
    m = emu.Machine(ram_size=16 << 20, cpl=0, jit_threshold=0)
    m.map(CODE, 0x1000)
    m.map(STACK, 0x1000)
    if below:
        m.map(STACK - 0x1000, 0x1000)
    m.write(CODE, code + b"\xf4")                        # ...; hlt
    v = m.vcpu
    for r, val in VALUES.items():
        setattr(v, r, val)
    v.rip = CODE
    v.rsp = rsp
    return m


@pytest.mark.parametrize("room", [0, 1, 3, 5])
def test_pushes_fault_at_the_first_push_off_the_page(room):
    m = machine(PUSHES, STACK + 8 * room)
    ex = m.vcpu.run(100)
    assert ex.name == "EXCEPTION" and ex.vector == PF
    assert m.vcpu.rip == CODE + room and m.vcpu.icount == room
    assert m.vcpu.rsp == STACK + 8 * room - 8 * room
    assert m.vcpu.cr2 == STACK - 8
    order = list(VALUES.values())
    for i in range(room):
        assert int.from_bytes(m.read(STACK + 8 * room - 8 * (i + 1), 8), "little") == order[i]


@pytest.mark.parametrize("room", [0, 2, 5])
def test_pushes_cross_into_a_mapped_page(room):
    m = machine(PUSHES + POPS, STACK + 8 * room, below=True)
    assert m.vcpu.run(100).name == "HLT"
    assert m.vcpu.rsp == STACK + 8 * room and m.vcpu.icount == 13        # (HLT retires too)
    for r, val in VALUES.items():
        assert getattr(m.vcpu, r) == val
    assert int.from_bytes(m.read(STACK + 8 * room - 48, 8), "little") == VALUES["rdi"]


@pytest.mark.parametrize("room", [0, 2, 5])
def test_pops_fault_at_the_first_pop_off_the_page(room):
    top = STACK + 0x1000
    m = machine(POPS, top - 8 * room)
    ex = m.vcpu.run(100)
    assert ex.name == "EXCEPTION" and ex.vector == PF
    assert m.vcpu.rip == CODE + room and m.vcpu.icount == room and m.vcpu.rsp == top
    assert m.vcpu.cr2 == top


def test_a_run_across_a_page_stays_in_compiled_code(tier):
    # a loop whose prologue and epilogue straddle two mapped pages, as a
    # function called at the same depth again and again does: the run goes
    # through its cold push-by-push path, never back to the interpreter
    loop = PUSHES + POPS + bytes([0x48, 0xFF, 0xCD, 0x75, 0xEF])     # dec rbp; jnz loop
    m = machine(loop, STACK + 16, below=True)
    m.vcpu.rbp = 200
    assert m.vcpu.run(100_000).name == "HLT"
    assert m.vcpu.icount == 200 * 14 + 1 and m.vcpu.rsp == STACK + 16
    for r, val in VALUES.items():
        assert getattr(m.vcpu, r) == val
    if tier == "jit":
        assert m.vcpu.counters["jit"]["bails"] == 0
