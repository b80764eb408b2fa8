"""Privileged and system instructions (emu/core/ops_priv.pxi): MOV CR, the
0F 01 group, RDMSR/WRMSR, CLI/STI, IN/OUT, INT n, and the trap policy."""
from __future__ import annotations

import struct

import pytest

import difftest
import emu
import native
from emu import _core

CODE = 0x400000
DATA = 0x600000
GP, UD, PF = 13, 6, 14

CR0_PE, CR0_TS, CR0_WP, CR0_PG = 1, 8, 1 << 16, 1 << 31
CR4_PAE, CR4_PGE, CR4_UMIP, CR4_OSXSAVE, CR4_PCIDE = 1 << 5, 1 << 7, 1 << 11, 1 << 18, 1 << 17
EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE = 1, 1 << 8, 1 << 10, 1 << 11
MSR = {"efer": 0xC0000080, "star": 0xC0000081, "lstar": 0xC0000082, "cstar": 0xC0000083,
       "sfmask": 0xC0000084, "fs_base": 0xC0000100, "gs_base": 0xC0000101,
       "kernel_gs_base": 0xC0000102, "tsc": 0x10, "tsc_aux": 0xC0000103, "pat": 0x277}


class Box:
    def __init__(self, cpl=0):
        self.m = emu.Machine(16 << 20, cpl=cpl)
        self.m.map(CODE, 0x2000)
        self.m.map(DATA, 0x2000)
        self.v = self.m.vcpu

    def run(self, code: bytes, budget: int = 1, **regs):
        self.m.write(CODE, code)
        for k, val in regs.items():
            setattr(self.v, k, val)
        self.v.rip = CODE
        return self.v.run(budget)


@pytest.fixture
def box():
    return Box(0)


def assert_exc(ex, vector, rip=CODE):
    assert ex.name == "EXCEPTION" and ex.vector == vector, ex
    assert ex.rip == rip
    if vector == GP:
        assert ex.error_code == 0


# ---- MOV to/from control registers ----

def test_mov_from_cr(box):
    v = box.v
    v.cr2 = 0xDEADBEEF12345678
    v.cr8 = 9
    # mov rax,cr0 / mov rcx,cr2 / mov rdx,cr3 / mov rbx,cr4 / mov r9 (REX.B),cr8 (REX.R)
    code = bytes.fromhex("0f20c0 0f20d1 0f20da 0f20e3 450f20c1")
    ex = box.run(code, 5)
    assert ex.name == "BUDGET" and v.rip == CODE + len(code)
    assert v.rax == v.cr0 and v.rcx == 0xDEADBEEF12345678 and v.rdx == v.cr3 and v.rbx == v.cr4
    assert v.r9 == 9
    # the mod field is ignored: 0F 20 00 is MOV RAX, CR0 in 3 bytes (no SIB, no displacement)
    v.rax = 0
    ex = box.run(bytes.fromhex("0f2000") + b"\x90" * 8, 1)
    assert ex.name == "BUDGET" and v.rip == CODE + 3 and v.rax == v.cr0


def test_mov_to_cr2_cr8(box):
    v = box.v
    ex = box.run(bytes.fromhex("0f22d0"), rax=0xFFFF800012345000)   # mov cr2, rax
    assert ex.name == "BUDGET" and v.cr2 == 0xFFFF800012345000
    ex = box.run(bytes.fromhex("440f22c0"), rax=0xF)                  # mov cr8, rax
    assert ex.name == "BUDGET" and v.cr8 == 0xF
    ex = box.run(bytes.fromhex("440f22c0"), rax=0x10)                 # reserved bit
    assert_exc(ex, GP)
    assert v.cr8 == 0xF


def test_invalid_control_registers_ud(box):
    for code in ("0f20c8", "0f22c8", "0f20e8", "0f20f0", "0f20f8", "0f22f8",   # CR1, CR5-7
                 "440f20c8", "440f22d0", "440f20f8",                            # CR9, CR10, CR15
                 "f00f20c0", "f00f22c0"):                                       # LOCK
        assert_exc(box.run(bytes.fromhex(code)), UD)


def test_mov_to_cr0(box):
    v = box.v
    cr0 = v.cr0
    assert_exc(box.run(bytes.fromhex("0f22c0"), rax=cr0 | (1 << 32)), GP)      # bits 63:32
    assert_exc(box.run(bytes.fromhex("0f22c0"), rax=cr0 & ~CR0_PG), GP)        # leave long mode
    assert_exc(box.run(bytes.fromhex("0f22c0"), rax=(cr0 | (1 << 29)) & ~(1 << 30)), GP)  # NW without CD
    assert_exc(box.run(bytes.fromhex("0f22c0"), rax=cr0 & ~CR0_PE), GP)        # PG without PE
    assert v.cr0 == cr0
    # clear WP, then set TS: each sticks and execution continues at the next instruction
    ex = box.run(bytes.fromhex("0f22c0 0f22c1 90"), 3, rax=cr0 & ~CR0_WP, rcx=(cr0 & ~CR0_WP) | CR0_TS)
    assert ex.name == "BUDGET" and v.rip == CODE + 7
    assert v.cr0 == (cr0 & ~CR0_WP) | CR0_TS


def test_mov_to_cr3_and_cr4(box):
    v = box.v
    cr3, cr4 = v.cr3, v.cr4
    assert_exc(box.run(bytes.fromhex("0f22d8"), rax=cr3 | (1 << 52)), GP)      # above MAXPHYADDR
    assert_exc(box.run(bytes.fromhex("0f22d8"), rax=cr3 | (1 << 63)), GP)
    assert v.cr3 == cr3
    ex = box.run(bytes.fromhex("0f22d8 90"), 2, rax=cr3 | 0x18)                # PWT|PCD are fine
    assert ex.name == "BUDGET" and v.cr3 == cr3 | 0x18 and v.rip == CODE + 4
    assert_exc(box.run(bytes.fromhex("0f22e0"), rax=cr4 & ~CR4_PAE), GP)      # leave IA-32e mode
    assert_exc(box.run(bytes.fromhex("0f22e0"), rax=cr4 | CR4_PCIDE), GP)     # the CPU model has no PCID
    assert_exc(box.run(bytes.fromhex("0f22e0"), rax=cr4 | (1 << 12)), GP)     # LA57
    assert_exc(box.run(bytes.fromhex("0f22e0"), rax=cr4 | (1 << 32)), GP)
    assert v.cr4 == cr4
    ex = box.run(bytes.fromhex("0f22e0"), rax=cr4 | CR4_PGE | CR4_OSXSAVE)
    assert ex.name == "BUDGET" and v.cr4 == cr4 | CR4_PGE | CR4_OSXSAVE


def test_clts_smsw_lmsw(box):
    v = box.v
    v.cr0 = v.cr0 | CR0_TS
    ex = box.run(bytes.fromhex("0f06"))
    assert ex.name == "BUDGET" and not v.cr0 & CR0_TS
    ex = box.run(bytes.fromhex("480f01e0"), rax=0)                # smsw rax
    assert ex.name == "BUDGET" and v.rax == v.cr0
    ex = box.run(bytes.fromhex("0f0121"), rcx=DATA)              # smsw [rcx]
    assert ex.name == "BUDGET" and box.m.read(DATA, 2) == struct.pack("<H", v.cr0 & 0xFFFF)
    cr0 = v.cr0
    ex = box.run(bytes.fromhex("0f01f0"), rax=0xFFF8)            # lmsw ax: PE cannot be cleared
    assert ex.name == "BUDGET" and v.cr0 == (cr0 & ~0xF) | 0x8 | 1


# ---- 0F 01 group ----

def test_lgdt_lidt_sgdt_sidt(box):
    v = box.v
    box.m.write(DATA, struct.pack("<HQ", 0x7F, 0xFFFF800000001000))
    box.m.write(DATA + 16, struct.pack("<HQ", 0xFFF, 0xFFFF800000002000))
    # lgdt [rax] / lidt [rax+16] / sgdt [rax+32] / sidt [rax+48]
    code = bytes.fromhex("0f0110 0f015810 0f014020 0f014830")
    ex = box.run(code, 4, rax=DATA)
    assert ex.name == "BUDGET"
    assert v.gdtr == (0xFFFF800000001000, 0x7F) and v.idtr == (0xFFFF800000002000, 0xFFF)
    assert box.m.read(DATA + 32, 10) == struct.pack("<HQ", 0x7F, 0xFFFF800000001000)
    assert box.m.read(DATA + 48, 10) == struct.pack("<HQ", 0xFFF, 0xFFFF800000002000)
    for code in ("0f01c0", "0f01c8", "0f01d8", "0f01f0" if False else "0f01ff"):  # register forms #UD
        assert_exc(box.run(bytes.fromhex(code)), UD)


def test_sgdt_faults_before_storing(box):
    """SGDT whose 10 bytes cross into an unmapped page stores nothing."""
    v = box.v
    v.gdtr = (0x1122334455667788, 0xABCD)
    end = DATA + 0x2000
    box.m.write(end - 4, b"\xEE" * 4)
    ex = box.run(bytes.fromhex("0f0100"), rax=end - 4)
    assert_exc(ex, PF)
    assert ex.cr2 == end and box.m.read(end - 4, 4) == b"\xEE" * 4


def test_swapgs(box):
    v = box.v
    v.gs_base, v.kernel_gs_base = 0x1111, 0xFFFF888000000000
    ex = box.run(bytes.fromhex("0f01f8 65488b0425100000 00"), 1)
    assert ex.name == "BUDGET" and v.gs_base == 0xFFFF888000000000 and v.kernel_gs_base == 0x1111
    # gs: now points at the kernel base: a GS-relative load uses it
    v.gs_base, v.kernel_gs_base = 0x1111, DATA
    box.m.write(DATA + 8, struct.pack("<Q", 0x1234567890))
    ex = box.run(bytes.fromhex("0f01f8 65488b042508000000"), 2)
    assert ex.name == "BUDGET" and v.rax == 0x1234567890


def test_rdtscp_and_xgetbv_at_cpl3():
    b = Box(3)
    v = b.v
    v.tsc_aux = 0xFFFFFFFF00000007
    v.set_tsc(1000, 1.0)
    ex = b.run(bytes.fromhex("0f01f9"))
    assert ex.name == "BUDGET" and v.rcx == 7 and (v.rdx << 32 | v.rax) >= 1000
    v.cr4 = v.cr4 & ~CR4_OSXSAVE                                    # (Machine sets it)
    assert_exc(b.run(bytes.fromhex("0f01d0"), rcx=0), UD)     # CR4.OSXSAVE = 0
    v.cr4 = v.cr4 | CR4_OSXSAVE
    ex = b.run(bytes.fromhex("0f01d0"), rcx=0, rax=-1 & (2**64 - 1), rdx=5)
    assert ex.name == "BUDGET" and v.rax == v.xcr0 == 7 and v.rdx == 0      # x87, SSE, AVX
    # ECX = 1: XINUSE & XCR0; the AVX component is in use once a YMM register's upper half is set
    v.set_ymm(3, bytes(16) + b"\x01" * 16)
    ex = b.run(bytes.fromhex("0f01d0"), rcx=1)
    assert ex.name == "BUDGET" and (v.rax >> 2) & 1 and v.rdx == 0
    v.xrstor_image(bytes(512) + (1).to_bytes(8, "little") + bytes(56))     # SSE and AVX to init
    ex = b.run(bytes.fromhex("0f01d0"), rcx=1)
    assert ex.name == "BUDGET" and v.rax & 6 == 0
    assert_exc(b.run(bytes.fromhex("0f01d0"), rcx=2), GP)
    assert_exc(b.run(bytes.fromhex("0f01d1"), rcx=0, rax=3, rdx=0), GP)   # XSETBV at CPL 3


def test_xsetbv(box):
    v = box.v
    v.cr4 = v.cr4 | CR4_OSXSAVE
    assert_exc(box.run(bytes.fromhex("0f01d1"), rcx=0, rax=2, rdx=0), GP)   # x87 bit clear
    assert_exc(box.run(bytes.fromhex("0f01d1"), rcx=0, rax=5, rdx=0), GP)   # AVX without SSE
    assert_exc(box.run(bytes.fromhex("0f01d1"), rcx=0, rax=0xF, rdx=0), GP)   # bit 3: not supported
    ex = box.run(bytes.fromhex("0f01d1"), rcx=0, rax=7, rdx=0)
    assert ex.name == "BUDGET" and v.xcr0 == 7
    assert_exc(box.run(bytes.fromhex("0f01d1"), rcx=1, rax=3, rdx=0), GP)
    ex = box.run(bytes.fromhex("0f01d1"), rcx=0, rax=1, rdx=0)
    assert ex.name == "BUDGET" and v.xcr0 == 1


def test_sgdt_sidt_smsw_user_mode_and_umip():
    b = Box(3)
    v = b.v
    v.gdtr = (0xFFFF800000010000, 0x57)
    ex = b.run(bytes.fromhex("0f0100"), rax=DATA)
    assert ex.name == "BUDGET" and b.m.read(DATA, 10) == struct.pack("<HQ", 0x57, 0xFFFF800000010000)
    v.cr4 = v.cr4 | CR4_UMIP
    for code in ("0f0100", "0f0108", "0f01e0"):
        assert_exc(b.run(bytes.fromhex(code), rax=DATA), GP)


def test_cpl3_raises_gp():
    b = Box(3)
    v = b.v
    cases = {
        "mov rax,cr0": "0f20c0", "mov cr3,rax": "0f22d8", "mov cr8,rax": "440f22c0", "clts": "0f06",
        "lgdt": "0f0110", "lidt": "0f0118", "lmsw": "0f01f0", "invlpg": "0f0138", "swapgs": "0f01f8",
        "rdmsr": "0f32", "wrmsr": "0f30", "cli": "fa", "sti": "fb", "in al,imm": "e460",
        "out imm,al": "e660", "in eax,dx": "ed", "out dx,al": "ee", "hlt": "f4", "wbinvd": "0f09",
        "invd": "0f08",
    }
    for name, code in cases.items():
        ex = b.run(bytes.fromhex(code), rax=DATA, rcx=MSR["efer"], rdx=0x3F8)
        assert ex.name == "EXCEPTION" and ex.vector == GP and ex.error_code == 0, (name, ex)
        assert ex.rip == CODE and v.rip == CODE, name
    # the trap policy does not bypass the CPL check
    v.trap_mask = 0xFFFF
    for name in ("mov cr3,rax", "invlpg", "lgdt", "rdmsr", "wrmsr"):
        ex = b.run(bytes.fromhex(cases[name]), rax=DATA)
        assert ex.name == "EXCEPTION" and ex.vector == GP, name


# ---- MSRs ----

def test_rdmsr_wrmsr_roundtrip(box):
    v = box.v
    values = {"star": 0x0023001000000000, "lstar": 0xFFFFFFFF81000000, "cstar": 0xFFFFFFFF81000100,
              "sfmask": 0x47700, "fs_base": 0x7FFFF7FF0000, "gs_base": 0xFFFF888012345000,
              "kernel_gs_base": 0x00007FFFDEAD0000, "tsc_aux": 0x12345678, "pat": 0x0007010600070106}
    for name, val in values.items():
        idx = MSR[name]
        # wrmsr; xor eax,eax; xor edx,edx; rdmsr
        ex = box.run(bytes.fromhex("0f30 31c0 31d2 0f32"), 4, rcx=idx,
                     rax=(val & 0xFFFFFFFF) | (0xABCD << 32), rdx=(val >> 32) | (0x5555 << 32))
        assert ex.name == "BUDGET", name
        assert v.rax == val & 0xFFFFFFFF and v.rdx == val >> 32, name
        assert v.get_msr(idx) == val, name
    assert v.fs_base == values["fs_base"] and v.gs_base == values["gs_base"]
    assert v.kernel_gs_base == values["kernel_gs_base"] and v.tsc_aux == values["tsc_aux"]
    # EFER: LMA is read-only, NXE can be cleared
    efer = v.efer
    ex = box.run(bytes.fromhex("0f30"), rcx=MSR["efer"], rax=(efer & ~EFER_NXE & ~EFER_LMA), rdx=0)
    assert ex.name == "BUDGET" and v.efer == efer & ~EFER_NXE
    # TSC: a write sets the counter; it then advances with retired instructions
    ex = box.run(bytes.fromhex("0f30 90 0f32"), 3, rcx=MSR["tsc"], rax=0, rdx=0x100)
    assert ex.name == "BUDGET"
    t = v.rdx << 32 | v.rax
    assert t == (0x100 << 32) + 2      # WRMSR and the NOP retired since


def test_msr_faults(box):
    v = box.v
    bad_reads = [0x0, 0x1B, 0xC0000104, 0xC0010000, 0x3A, 0xFFFFFFFF]
    for idx in bad_reads:
        assert_exc(box.run(bytes.fromhex("0f32"), rcx=idx), GP)
        assert_exc(box.run(bytes.fromhex("0f30"), rcx=idx, rax=0, rdx=0), GP)
    bad_writes = [("lstar", 0x0000800000000000), ("cstar", 0xFFFF7FFFFFFFFFFF),
                  ("fs_base", 0x8000000000000000), ("gs_base", 0x0001000000000000),
                  ("kernel_gs_base", 0x0000800000000000), ("sfmask", 1 << 32),
                  ("tsc_aux", 1 << 40), ("pat", 0x02), ("pat", 0x0800000000000000),
                  ("efer", 1 << 20), ("efer", EFER_SCE | EFER_NXE | EFER_LMA)]  # LME cleared with PG=1
    for name, val in bad_writes:
        before = v.get_msr(MSR[name])
        ex = box.run(bytes.fromhex("0f30"), rcx=MSR[name], rax=val & 0xFFFFFFFF, rdx=val >> 32)
        assert_exc(ex, GP)
        assert v.get_msr(MSR[name]) == before, name
    # RCX's upper half is ignored
    v.tsc_aux = 3
    ex = box.run(bytes.fromhex("0f32"), rcx=(0xFFFF << 32) | MSR["tsc_aux"])
    assert ex.name == "BUDGET" and v.rax == 3


def test_msr_api():
    b = Box(0)
    v = b.v
    assert v.get_msr(MSR["pat"]) == 0x0007040600070406
    v.set_msr(MSR["lstar"], 0xFFFFFFFF81000000)
    assert v.get_msr(MSR["lstar"]) == 0xFFFFFFFF81000000
    with pytest.raises(ValueError):
        v.set_msr(MSR["lstar"], 1 << 50)
    with pytest.raises(KeyError):
        v.get_msr(0x1B)


# ---- interrupt flag, I/O, INT n ----

def test_cli_sti_iopl():
    b = Box(0)
    v = b.v
    ex = b.run(bytes.fromhex("fa"), rflags=0x202)
    assert ex.name == "BUDGET" and not v.rflags & 0x200
    ex = b.run(bytes.fromhex("fb"))
    assert ex.name == "BUDGET" and v.rflags & 0x200
    u = Box(3)
    assert_exc(u.run(bytes.fromhex("fa"), rflags=0x202), GP)
    assert u.v.rflags & 0x200
    ex = u.run(bytes.fromhex("fa"), rflags=0x3202)           # IOPL 3
    assert ex.name == "BUDGET" and not u.v.rflags & 0x200
    ex = u.run(bytes.fromhex("ed"), rflags=0x3202, rdx=0x60)  # IN at CPL 3 with IOPL 3
    assert ex.name == "IO" and ex.port == 0x60


def test_in_out_forms(box):
    v = box.v
    cases = [  # code, port, size, out, value
        ("e471", 0x71, 1, False, None), ("e571", 0x71, 4, False, None), ("66e571", 0x71, 2, False, None),
        ("e680", 0x80, 1, True, 0x88), ("e680", 0x80, 1, True, 0x88), ("e780", 0x80, 4, True, 0x55667788),
        ("66e780", 0x80, 2, True, 0x7788), ("48e780", 0x80, 4, True, 0x55667788),
        ("ec", 0x3F8, 1, False, None), ("ed", 0x3F8, 4, False, None), ("66ed", 0x3F8, 2, False, None),
        ("48ed", 0x3F8, 4, False, None),
        ("ee", 0x3F8, 1, True, 0x88), ("ef", 0x3F8, 4, True, 0x55667788), ("66ef", 0x3F8, 2, True, 0x7788),
    ]
    for code, port, size, out, value in cases:
        raw = bytes.fromhex(code)
        ex = box.run(raw + b"\x90", rax=0x1122334455667788, rdx=0xFFFF03F8)
        assert ex.name == "IO" and ex.port == port and ex.size == size and bool(ex.write) == out, code
        assert ex.rip == CODE and v.rip == CODE + len(raw)
        if out:
            assert ex.value == value, code
        else:
            v.complete_io_in(0xA1B2C3D4)
            expect = {1: 0x11223344556677D4, 2: 0x112233445566C3D4, 4: 0xA1B2C3D4}[size]
            assert v.rax == expect, code
            assert v.run(1).name == "BUDGET" and v.rip == CODE + len(raw) + 1


def test_int_n(box):
    v = box.v
    for n in (0x80, 0x0E, 0x03, 0xFF):
        ex = box.run(bytes([0xCD, n]))
        assert ex.name == "EXCEPTION" and ex.vector == n and ex.software and not ex.has_error_code
        assert ex.rip == CODE + 2 and v.rip == CODE + 2
    u = Box(3)
    ex = u.run(bytes.fromhex("cd80"))
    assert ex.name == "EXCEPTION" and ex.vector == 0x80 and ex.software
    ex = u.run(bytes.fromhex("f1"))
    assert ex.name == "EXCEPTION" and ex.vector == 1 and not ex.software and u.v.rip == CODE + 1
    # a fault afterwards is not reported as software
    ex = u.run(bytes.fromhex("0f0b"))
    assert ex.name == "EXCEPTION" and ex.vector == UD and not ex.software


# ---- trap policy ----

def test_trap_cr(box):
    v = box.v
    v.trap_mask = _core.TRAPS["cr"]
    cr3 = v.cr3
    ex = box.run(bytes.fromhex("410f22df"), r15=0x5000)     # mov cr3, r15
    assert ex.name == "PRIV" and ex.op == "mov_to_cr" and ex.cr == 3 and ex.gpr == 15
    assert ex.value == 0x5000 and ex.rip == CODE and v.rip == CODE + 4 and v.cr3 == cr3
    ex = box.run(bytes.fromhex("440f20c1"), rcx=7)          # mov rcx, cr8
    assert ex.name == "PRIV" and ex.op == "mov_from_cr" and ex.cr == 8 and ex.gpr == 1 and v.rcx == 7
    ex = box.run(bytes.fromhex("0f06"))
    assert ex.name == "PRIV" and ex.op == "clts"
    ex = box.run(bytes.fromhex("0f01f3"), rbx=0x0F)         # lmsw bx
    assert ex.name == "PRIV" and ex.op == "lmsw" and ex.value == 0x0F
    assert v.counters["exits"]["PRIV"] == 4


def test_trap_invlpg_desc_xsetbv(box):
    v = box.v
    v.trap_mask = _core.TRAPS["invlpg"] | _core.TRAPS["desc"] | _core.TRAPS["xsetbv"]
    ex = box.run(bytes.fromhex("0f017808"), rax=0x7000)     # invlpg [rax+8]
    assert ex.name == "PRIV" and ex.op == "invlpg" and ex.address == 0x7008 and v.rip == CODE + 4
    for code, op in (("0f0110", "lgdt"), ("0f0118", "lidt"), ("0f0100", "sgdt"), ("0f0108", "sidt")):
        ex = box.run(bytes.fromhex(code), rax=DATA + 0x40)
        assert ex.name == "PRIV" and ex.op == op and ex.address == DATA + 0x40
    assert v.gdtr == (0, 0) and box.m.read(DATA + 0x40, 10) == bytes(10)
    v.cr4 = v.cr4 | CR4_OSXSAVE
    ex = box.run(bytes.fromhex("0f01d1"), rcx=0, rax=7, rdx=1)
    assert ex.name == "PRIV" and ex.op == "xsetbv" and ex.value == (1 << 32) | 7 and v.xcr0 == 7


def test_trap_msr(box):
    v = box.v
    v.trap_mask = _core.TRAPS["msr"]
    ex = box.run(bytes.fromhex("0f32"), rcx=0x1B, rax=0, rdx=0)
    assert ex.name == "MSR" and ex.msr == 0x1B and not ex.write and ex.op == "rdmsr"
    assert ex.rip == CODE and v.rip == CODE + 2
    ex = box.run(bytes.fromhex("0f30"), rcx=MSR["lstar"], rax=0x81000000, rdx=0xFFFFFFFF)
    assert ex.name == "MSR" and ex.msr == MSR["lstar"] and ex.write and ex.value == 0xFFFFFFFF81000000
    assert v.get_msr(MSR["lstar"]) == 0


# ---- WAIT and XLAT ----

def test_wait(box):
    v = box.v
    ex = box.run(bytes.fromhex("9b"))
    assert ex.name == "BUDGET" and v.rip == CODE + 1
    v.cr0 = v.cr0 | CR0_TS                    # TS without MP: WAIT ignores it
    assert box.run(bytes.fromhex("9b")).name == "BUDGET"
    v.cr0 = v.cr0 | CR0_TS | 2                # MP and TS: #NM
    ex = box.run(bytes.fromhex("9b"))
    assert ex.name == "EXCEPTION" and ex.vector == 7 and not ex.has_error_code and v.rip == CODE


def test_xlat_emu():
    b = Box(3)
    v = b.v
    b.m.write(DATA, bytes(range(255, -1, -1)))
    for al in (0, 1, 0x7F, 0x80, 0xFF):
        ex = b.run(bytes.fromhex("d7"), rax=0x1122334455667700 | al, rbx=DATA)
        assert ex.name == "BUDGET" and v.rax == 0x1122334455667700 | (255 - al) and v.rip == CODE + 1
    v.fs_base = DATA - 0x100
    ex = b.run(bytes.fromhex("64d7"), rax=3, rbx=0x100)          # fs: segment override
    assert ex.name == "BUDGET" and v.rax == 252
    ex = b.run(bytes.fromhex("67d7"), rax=5, rbx=(0xFFFF << 32) | DATA)   # 67: EBX
    assert ex.name == "BUDGET" and v.rax == 250
    ex = b.run(bytes.fromhex("d7"), rax=0, rbx=0x7000)          # unmapped table: #PF
    assert ex.name == "EXCEPTION" and ex.vector == PF and ex.cr2 == 0x7000


@difftest.needs_native
def test_xlat_native():
    import random
    rng = random.Random(7)
    addr, buf = native.scratch(4096)
    table = bytes(rng.getrandbits(8) for _ in range(512))
    n = 0
    for _ in range(200):
        rbx = addr + rng.randrange(0, 256)
        rax = difftest.random_value(rng, 64)
        difftest.check(bytes.fromhex("d7"), {"rax": rax, "rbx": rbx}, scratch=[(addr, buf, table)])
        n += 1
    difftest.covered("xlat", n)
