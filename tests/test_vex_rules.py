"""The VEX #UD/#NM rules (SDM Vol. 2A, 2.3 and the exception class tables),
the CPU model gate, faults inside gathers (partial completion), and the
VEX.128 / legacy SSE treatment of the upper register bits. emu alone: these
are faults the host cannot take inside the test process."""
from __future__ import annotations

import pytest

import emu
import vex_helpers as vh

CODE, DATA = 0x10000, 0x40000
UD, NM, GP, PF = 6, 7, 13, 14
VADDPS = vh.vex(1, 0, 0x58, 0, 2, 1, 1, 0)          # vaddps ymm0, ymm1, ymm2
ANDN = vh.vex(2, 0, 0xF2, 0, 2, 1, 0, 1)            # andn rax, rcx, rdx


class Box:
    def __init__(self, cpu=None):
        self.m = emu.Machine(16 << 20, cpu=cpu)
        self.m.map(CODE, 0x2000)
        self.m.map(DATA, 0x3000)
        self.v = self.m.vcpu

    def run(self, code, **regs):
        self.m.write(CODE, code + b"\x90" * 4)
        for k, val in regs.items():
            setattr(self.v, k, val)
        self.v.rip = CODE
        return self.v.run(1)


def assert_exc(ex, vector):
    assert ex.name == "EXCEPTION" and ex.vector == vector, ex


@pytest.fixture
def box():
    return Box()


def test_runs_by_default(box):
    assert box.run(VADDPS).name == "BUDGET"
    assert box.run(ANDN).name == "BUDGET"


@pytest.mark.parametrize("pfx", [b"\x66", b"\xF2", b"\xF3", b"\xF0", b"\x40", b"\x48"])
def test_prefix_before_vex_is_ud(box, pfx):
    assert_exc(box.run(pfx + VADDPS), UD)
    assert_exc(box.run(pfx + ANDN), UD)


def test_segment_and_address_size_prefixes_are_fine(box):
    code = vh.vex(1, 0, 0x10, 0, None, 0, 0, 0, mem=b"\x06")   # vmovups xmm0, [rsi]
    assert box.run(b"\x2E" + code, rsi=DATA).name == "BUDGET"
    assert box.run(b"\x67" + code, rsi=DATA).name == "BUDGET"


def test_cr4_osxsave_and_xcr0(box):
    v = box.v
    v.xcr0 = 3                                  # AVX state not enabled
    assert_exc(box.run(VADDPS), UD)
    assert box.run(ANDN).name == "BUDGET"       # BMI does not depend on XCR0
    v.xcr0 = 7
    v.cr4 = v.cr4 & ~(1 << 18)
    assert_exc(box.run(VADDPS), UD)
    assert box.run(ANDN).name == "BUDGET"
    v.cr4 = v.cr4 | (1 << 18)
    v.cr0 = v.cr0 | 8                           # CR0.TS
    assert_exc(box.run(VADDPS), NM)
    v.cr0 = v.cr0 & ~8
    assert box.run(VADDPS).name == "BUDGET"


def test_vector_length_w_and_vvvv_rules(box):
    assert_exc(box.run(vh.vex(1, 1, 0x6E, 0, 1, 0, 1, 0)), UD)           # vmovd with VEX.L = 1
    assert_exc(box.run(vh.vex(3, 1, 0x00, 0, 1, 0, 0, 1, imm=0)), UD)    # vpermq with VEX.L = 0
    assert_exc(box.run(vh.vex(3, 1, 0x00, 0, 1, 0, 1, 0, imm=0)), UD)    # vpermq with VEX.W = 0
    assert box.run(vh.vex(3, 1, 0x00, 0, 1, 0, 1, 1, imm=0)).name == "BUDGET"
    assert_exc(box.run(vh.vex(1, 0, 0x51, 0, 1, 3, 1, 0)), UD)           # vsqrtps: vvvv must be 1111b
    assert_exc(box.run(vh.vex(2, 0, 0xF2, 0, 2, 1, 1, 1)), UD)           # andn with VEX.L = 1
    assert_exc(box.run(bytes((0xC4, 0xE4, 0x7C, 0x58, 0xC2))), UD)      # VEX.mmmmm = 4
    assert_exc(box.run(bytes((0xC4, 0xE0, 0x7C, 0x58, 0xC2))), UD)      # VEX.mmmmm = 0


@pytest.mark.parametrize("model,avx,bmi,aes", [("x86-64", False, False, False), ("x86-64-v2", False, False, False),
                                               ("x86-64-v3", True, True, False), ("max", True, True, True)])
def test_cpu_model_gate(model, avx, bmi, aes):
    b = Box(model)
    if "avx" not in emu.cpuid.available_features() and avx:
        pytest.skip("the host cannot run AVX")
    ex = b.run(VADDPS)
    assert (ex.name == "BUDGET") == avx
    assert bool(b.v.cpuid(1)[2] >> 28 & 1) == avx
    ex = b.run(ANDN)
    assert (ex.name == "BUDGET") == bmi
    ex = b.run(bytes.fromhex("660f38dcc1"))                 # aesenc xmm0, xmm1
    assert (ex.name == "BUDGET") == (aes and "aes" in emu.cpuid.available_features())
    # TZCNT without BMI1 is BSF: the zero flag says whether the source was zero
    ex = b.run(bytes.fromhex("f3480fbcc1"), rcx=0x10, rflags=0x202)   # tzcnt/bsf rax, rcx
    assert ex.name == "BUDGET" and b.v.rax == 4
    ex = b.run(bytes.fromhex("f3480fbcc1"), rcx=0, rax=77)
    assert ex.name == "BUDGET" and b.v.rax == (64 if bmi else 77)


def vsib(scale, index, base=6):
    return bytes((4, (scale << 6) | ((index & 7) << 3) | (base & 7)))


def test_gather_fault_partial_completion():
    """VPGATHERDD ymm0, [rsi + ymm1*4], ymm2 with element 3's address on an
    unmapped page: #PF at the instruction with CR2 = that address; elements
    0-2 are loaded and their mask elements cleared, the rest untouched; once
    the page exists the same instruction finishes the job."""
    b = Box()
    v = b.v
    unmapped = 0x80000
    idx = [0, 1, 2, (unmapped - DATA) // 4, 4, 5, 6, 7]
    v.set_ymm(1, b"".join(i.to_bytes(4, "little") for i in idx))
    v.set_ymm(2, b"\xFF\xFF\xFF\xFF" * 8)
    v.set_ymm(0, b"\xAA" * 32)
    b.m.write(DATA, b"".join((0x100 + i).to_bytes(4, "little") for i in range(8)))
    code = vh.vex(2, 1, 0x90, 0, None, 2, 1, 0, mem=vsib(2, 1))
    ex = b.run(code, rsi=DATA)
    assert ex.name == "EXCEPTION" and ex.vector == PF and ex.cr2 == unmapped and v.rip == CODE
    d = v.get_ymm(0)
    assert [int.from_bytes(d[4 * i:4 * i + 4], "little") for i in range(3)] == [0x100, 0x101, 0x102]
    assert d[12:] == b"\xAA" * 20
    assert v.get_ymm(2) == bytes(12) + b"\xFF" * 20
    b.m.map(unmapped, 0x1000)
    b.m.write(unmapped, (0x55).to_bytes(4, "little"))
    v.rip = CODE
    ex = v.run(1)
    assert ex.name == "BUDGET"
    d = v.get_ymm(0)
    assert [int.from_bytes(d[4 * i:4 * i + 4], "little") for i in range(8)] == [0x100, 0x101, 0x102, 0x55,
                                                                                 0x104, 0x105, 0x106, 0x107]
    assert v.get_ymm(2) == bytes(32)


def test_gather_register_rules(box):
    assert_exc(box.run(vh.vex(2, 1, 0x90, 1, None, 2, 1, 0, mem=vsib(2, 1))), UD)   # dest = index
    assert_exc(box.run(vh.vex(2, 1, 0x90, 0, None, 0, 1, 0, mem=vsib(2, 1))), UD)   # dest = mask
    assert_exc(box.run(vh.vex(2, 1, 0x90, 0, None, 2, 1, 0, mem=b"\x06")), UD)      # no SIB
    assert_exc(box.run(vh.vex(2, 1, 0x90, 0, 1, 2, 1, 0)), UD)                      # register operand


def test_upper_bits_vex128_zero_legacy_keeps(box):
    v = box.v
    v.set_ymm(0, b"\x11" * 32)
    v.set_ymm(1, b"\x22" * 32)
    assert box.run(bytes.fromhex("0f58c1")).name == "BUDGET"                   # addps xmm0, xmm1
    assert v.get_ymm(0)[16:] == b"\x11" * 16
    assert box.run(vh.vex(1, 0, 0x58, 0, 1, 0, 0, 0)).name == "BUDGET"         # vaddps xmm0, xmm0, xmm1
    assert v.get_ymm(0)[16:] == bytes(16)
