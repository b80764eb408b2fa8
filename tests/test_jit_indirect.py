"""Indirect branches, returns and jumps to another page in compiled code go
through the native tier's inline lookup table (core/jit_emit.pxi e_exit_rcx,
core/jit_runtime.pxi). It must never take a guest to stale code: not after
the target is rewritten (self-modifying code), not after its page is mapped
elsewhere (INVLPG), not past the instruction budget. Run under every tier,
with the interpreter's answers computed here."""
import struct

import emu

CODE = 0x400000          # the loop
FUNC = 0x402000          # the callee, on another page
STACK = 0x7FF000
N = 400


def _loop() -> bytes:
    code = bytearray()
    code += b"\xb9" + struct.pack("<I", N)                  # mov ecx, N
    code += b"\x31\xdb"                                      # xor ebx, ebx
    top = len(code)
    code += b"\x48\xb8" + struct.pack("<Q", FUNC)            # mov rax, FUNC
    code += b"\xff\xd0"                                      # call rax       (indirect call, ret back)
    code += b"\x48\x01\xc3"                                  # add rbx, rax
    code += b"\xf6\xc1\x0f"                                  # test cl, 15
    code += b"\x75\x08"                                      # jnz +8         (skip the patch)
    code += b"\xff\x04\x25" + struct.pack("<I", FUNC + 1)    # inc dword [FUNC+1]: the callee's imm32
    code += b"\x90"                                          # nop
    code += b"\xff\xc9"                                      # dec ecx
    code += b"\x0f\x85" + struct.pack("<i", top - (len(code) + 6))   # jnz top
    code += b"\xf4"                                          # hlt
    return bytes(code)


def _callee(imm: int) -> bytes:
    return b"\xb8" + struct.pack("<I", imm) + b"\xc3"        # mov eax, imm; ret


def _machine(imm=1):
    m = emu.Machine(ram_size=16 << 20, cpl=0, jit_threshold=0)
    m.map(CODE, 0x1000)
    m.map(FUNC, 0x1000)
    m.map(STACK, 0x1000)
    m.write(CODE, _loop())
    m.write(FUNC, _callee(imm))
    m.vcpu.rip = CODE
    m.vcpu.rsp = STACK + 0x1000
    return m


def _expected(imm=1):
    total = 0
    for ecx in range(N, 0, -1):
        total += imm
        if ecx & 15 == 0:
            imm += 1
    return total


def test_indirect_calls_see_the_callee_rewritten():
    m = _machine()
    assert m.vcpu.run().name == "HLT"
    assert m.vcpu.rbx == _expected()
    if m.vcpu.counters["tier"] != "interp":
        # the loop ran compiled, and its calls and returns (2 per iteration)
        # mostly did not go through the dispatcher: only after the 25 patches
        j = m.vcpu.counters["jit"]
        assert j["instructions_native"] > 0.9 * m.vcpu.icount
        assert j["entries"] < N // 4 and j["invalidations"] >= N // 16


def test_exact_budget_through_indirect_branches():
    ref = _machine()
    ref.vcpu.run()
    m = _machine()
    steps = 0
    while True:
        ex = m.vcpu.run(37)
        steps += 1
        if ex.name == "HLT":
            break
        assert ex.name == "BUDGET" and m.vcpu.icount == 37 * steps
    assert m.vcpu.icount == ref.vcpu.icount and m.vcpu.rbx == ref.vcpu.rbx


def test_callee_page_mapped_elsewhere():
    m = _machine()
    assert m.vcpu.run().name == "HLT"
    assert m.vcpu.rbx == _expected()
    # the callee's page now maps to other RAM holding a different callee;
    # the same loop, compiled and with its lookups learnt, runs again
    pa = m.frames.alloc(1)
    body = _callee(1000)
    m.mem[pa:pa + len(body)] = body                # fresh RAM: no translations to drop
    m.page_tables.map(FUNC, pa, 0x1000, write=True, execute=True, user=True)
    m._pt_changed(FUNC, 0x1000)
    m.vcpu.rip = CODE
    m.vcpu.rsp = STACK + 0x1000
    assert m.vcpu.run().name == "HLT"
    assert m.vcpu.rbx == _expected(1000)
