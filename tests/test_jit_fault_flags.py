"""Compiled code does not save the flags of a register ALU operation before
a memory access when only a fault of that access could see them (the next
flag write comes first): the fault path redoes the operation to recover
them (core/jit_emit.pxi flags_only_for_faults, e_redo_flags). A fault there
must report exactly the interpreter's RFLAGS, RIP and registers."""
import pytest

import emu

CODE = 0x400000
DATA = 0x600000
UNMAPPED = 0x900000
PF = 14

# producer (sets every status flag), then the access, then the next instruction
PRODUCERS = {
    "add": bytes.fromhex("4801d8"),          # add rax, rbx
    "sub": bytes.fromhex("4829d8"),          # sub rax, rbx
    "cmp": bytes.fromhex("4839d8"),          # cmp rax, rbx
    "and": bytes.fromhex("4821d8"),          # and rax, rbx
    "xor": bytes.fromhex("31d8"),            # xor eax, ebx
    "add_imm": bytes.fromhex("4883c07f"),    # add rax, 0x7f
    "sub_imm32": bytes.fromhex("2d00000080"),  # sub eax, 0x80000000
}
ACCESSES = {
    "load": (bytes.fromhex("488b0a"), bytes.fromhex("4839c8")),      # mov rcx, [rdx] ; cmp rax, rcx
    "movzx": (bytes.fromhex("0fb60a"), bytes.fromhex("4801c8")),     # movzx ecx, byte [rdx] ; add rax, rcx
    "cmp_mem": (bytes.fromhex("483b02"), b""),                        # cmp rax, [rdx]
    "add_mem": (bytes.fromhex("480302"), b""),                        # add rax, [rdx]
}
VALUES = [(0, 0), (1, 1), (0x7FFFFFFFFFFFFFFF, 1), (0x8000000000000000, 0x8000000000000000),
          (0xFFFFFFFF, 1), (0x80, 0x7F), (5, 0xFFFFFFFFFFFFFFFF)]


def machine(tier):
    m = emu.Machine(ram_size=8 << 20, cpl=0, jit_threshold=0, tier=tier)
    m.map(CODE, 0x1000)
    m.map(DATA, 0x1000)
    return m


def run(m, code, rax, rbx, rdx):
    m.phys.flush_code()
    m.write(CODE, code + b"\xf4")
    m.write(DATA, bytes(range(256)) * 16)
    v = m.vcpu
    v.rax, v.rbx, v.rdx, v.rip = rax, rbx, rdx, CODE
    v.rflags = 0x2
    start = v.icount
    ex = v.run(100)
    return (ex.name, getattr(ex, "vector", None), v.rip, v.icount - start, v.rax, v.rcx, v.rflags & 0x8D5)


@pytest.mark.parametrize("producer", sorted(PRODUCERS))
@pytest.mark.parametrize("access", sorted(ACCESSES))
def test_a_fault_after_an_alu_operation_reports_its_flags(producer, access, tier):
    mem, after = ACCESSES[access]
    code = PRODUCERS[producer] + mem + after
    ref, m = machine("interp"), machine(tier)
    for rax, rbx in VALUES:
        for rdx in (UNMAPPED, DATA + 0x10):      # faulting, then not
            want = run(ref, code, rax, rbx, rdx)
            got = run(m, code, rax, rbx, rdx)
            assert got == want, (producer, access, hex(rax), hex(rbx), hex(rdx))
            if rdx == UNMAPPED:
                assert want[0] == "EXCEPTION" and want[1] == PF and want[3] == 1
