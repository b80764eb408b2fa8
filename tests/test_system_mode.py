"""System mode (emu/core/system.pxi): a ring-0 kernel with ring-3 code under
it. Exceptions and interrupts go through the IDT with TSS stack switching,
IST stacks, double and triple faults; IRETQ, SYSCALL/SYSRET, external
interrupts with IF, the STI shadow, CR8 and HLT; privileged instructions at
CPL 3; segment loads, LTR, the I/O permission bitmap, SMEP/SMAP.

The guest is built by hand here: a GDT, an IDT, a 64-bit TSS, supervisor-only
kernel pages and user pages, with small machine-code blobs (each line notes
its assembly). CPUID is trapped to the VMM and serves as a checkpoint: the
guest runs until a CPUID, the test inspects the state, then resumes."""
from __future__ import annotations

import struct

import pytest

import emu
from emu import _core
from emu.cpuid import baseline_table

KCODE = 0x100000       # supervisor code; handler k at KCODE + 0x100 * k
KDATA = 0x200000       # GDT at +0, per-CPU area at +0x800
TSS = 0x201000         # 64-bit TSS and its I/O bitmap
IDT = 0x202000
KSTACK = 0x300000      # RSP0 stack: [KSTACK, KSTACK + 0x2000)
RSP0 = KSTACK + 0x2000
IST1 = 0x311000        # IST1 stack top ([0x310000, 0x311000))
UCODE = 0x400000
USTACK = 0x500000
USP = USTACK + 0xF00
UDATA = 0x600000
UNMAPPED = 0x700000

KCS, KDS, UCS32, UDS, UCS, TSS_SEL = 0x08, 0x10, 0x18, 0x23, 0x2B, 0x30
DE, DB, BP, UD, DF, TS, NP, SS_, GP, PF = 0, 1, 3, 6, 8, 10, 11, 12, 13, 14
IF = 0x200
CR4_PCE, CR4_SMEP, CR4_SMAP = 1 << 8, 1 << 20, 1 << 21

# GDT: null, kernel code 64, kernel data, user code 32 (compatibility), user
# data, user code 64, TSS (16 bytes), a not-present data segment, an FS
# segment with base 0x12345000
GDT = [0,
       0x00AF9B000000FFFF,    # 0x08 code DPL0 L=1
       0x00CF93000000FFFF,    # 0x10 data DPL0
       0x00CFFB000000FFFF,    # 0x18 code DPL3 D=1 (32-bit)
       0x00CFF3000000FFFF,    # 0x20 data DPL3
       0x00AFFB000000FFFF,    # 0x28 code DPL3 L=1
       0, 0,                  # 0x30 TSS, filled in by tss_descriptor()
       0x00CF73000000FFFF,    # 0x40 data DPL3, not present
       0x12CF93345000FFFF]    # 0x48 data DPL0, base 0x12345000
NOTPRESENT_SEL, FSBASE_SEL = 0x43, 0x48
TSS_LIMIT = 104 + 128       # an I/O bitmap for ports 0..1023 and its closing 0xFF byte

CPUID = bytes.fromhex("0fa2")                  # cpuid (the checkpoint)
IRETQ = bytes.fromhex("48cf")                  # iretq
POP_ERR_IRETQ = bytes.fromhex("4883c408 48cf")  # add rsp, 8 / iretq


def gate(offset, sel=KCS, ist=0, typ=0xE, dpl=0, present=True):
    lo = (offset & 0xFFFF) | (sel << 16) | (ist << 32) | (typ << 40) | (dpl << 45) \
        | (int(present) << 47) | (((offset >> 16) & 0xFFFF) << 48)
    return struct.pack("<QQ", lo, offset >> 32)


def tss_descriptor(base, limit, typ=9):
    lo = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (typ << 40) | (1 << 47) \
        | (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56)
    return lo, base >> 32


class Kernel:
    """A machine in system mode: GDT/IDT/TSS loaded, kernel pages supervisor
    only, user pages user-accessible; the vCPU starts in ring 3 at UCODE."""

    def __init__(self, smap=False):
        self.m = m = emu.Machine(32 << 20, cpl=0)
        m.map(KCODE, 0x4000, user=False)
        m.map(KDATA, 0x3000, user=False)
        m.map(KSTACK, 0x2000, user=False)
        m.map(IST1 - 0x1000, 0x1000, user=False)
        m.map(UCODE, 0x2000)
        m.map(USTACK, 0x1000)
        m.map(UDATA, 0x1000)
        self.v = v = m.vcpu
        table = [e for e in baseline_table() if e[0] != 7]
        table.append((7, 0, 0, (1 << 7) | (1 << 20), 0, 0))     # SMEP, SMAP
        v.set_cpuid_table(table)
        v.trap_mask = _core.TRAPS["cpuid"]
        v.system_mode = True
        gdt = list(GDT)
        gdt[6], gdt[7] = tss_descriptor(TSS, TSS_LIMIT)
        m.write(KDATA, b"".join(struct.pack("<Q", e) for e in gdt))
        v.gdtr = (KDATA, len(gdt) * 8 - 1)
        v.idtr = (IDT, 256 * 16 - 1)
        # TSS: RSP0, IST1; I/O bitmap at 104 allowing ports 0x80 and 0x3F8-0x3FF only
        tss = bytearray(104 + 129)
        struct.pack_into("<Q", tss, 4, RSP0)
        struct.pack_into("<Q", tss, 36, IST1)
        struct.pack_into("<H", tss, 102, 104)
        bitmap = bytearray(b"\xff" * 129)
        bitmap[0x80 // 8] &= ~1 & 0xFF
        bitmap[0x3F8 // 8] = 0
        tss[104:] = bitmap
        m.write(TSS, bytes(tss))
        v.tr = (TSS_SEL, TSS, TSS_LIMIT)
        # STAR: SYSCALL CS=0x08 SS=0x10; SYSRET CS=0x2B SS=0x23 (base 0x18)
        v.set_msr(0xC0000081, (0x18 << 48) | (KCS << 32))
        self.handlers = {}
        self.user_mode()

    def user_mode(self, rip=UCODE, rsp=USP, rflags=0x202):
        v = self.v
        v.cpl = 3
        v.set_seg_sel(1, UCS)
        v.set_seg_sel(2, UDS)
        v.rip, v.rsp, v.rflags = rip, rsp, rflags

    def kernel_mode(self, rip, rsp=RSP0 - 0x100, rflags=0x2):
        v = self.v
        v.cpl = 0
        v.set_seg_sel(1, KCS)
        v.set_seg_sel(2, KDS)
        v.rip, v.rsp, v.rflags = rip, rsp, rflags

    def handler(self, vector, code, slot=None, **gate_kw):
        """Install code as the handler of vector (slot k: at KCODE + 0x100 k)."""
        slot = vector if slot is None else slot
        addr = KCODE + 0x100 * (slot % 64)
        self.m.write(addr, code)
        self.m.write(IDT + 16 * vector, gate(addr, **gate_kw))
        self.handlers[vector] = addr
        return addr

    def q(self, va, n=1):
        return struct.unpack("<%dQ" % n, self.m.read(va, 8 * n))

    def frame(self, err=True):
        """The interrupt frame at RSP: (error code or None, RIP, CS, RFLAGS, RSP, SS)."""
        rsp = self.v.rsp
        if err:
            return self.q(rsp, 6)
        return (None,) + self.q(rsp, 5)

    def run(self, budget=10_000):
        return self.v.run(budget)


def at(ex, name, rip=None):
    assert ex.name == name, ex
    if rip is not None:
        assert ex.rip == rip, (hex(ex.rip), hex(rip))


# ---- exceptions from ring 3 ----

def test_page_fault_from_ring3_and_iretq_back():
    k = Kernel()
    v = k.v
    # #PF handler: cpuid (checkpoint) / add rsp, 8 / add qword [rsp], 3 (skip the load) / iretq
    h = k.handler(PF, CPUID + bytes.fromhex("4883c408 4883042403") + IRETQ)
    # user: mov rax, [rbx] (a supervisor page) / cpuid
    k.m.write(UCODE, bytes.fromhex("488b03") + CPUID)
    # an unaligned RSP0: the frame goes on a 16-byte boundary below it
    k.m.write(TSS + 4, struct.pack("<Q", RSP0 - 8))
    k.user_mode(rflags=0x202 | 0x1)       # IF, CF
    v.rbx = KDATA
    at(k.run(), "CPUID", h)
    assert v.cpl == 0 and v.get_seg_sel(1) == KCS and v.get_seg_sel(2) == 0
    assert v.rsp == RSP0 - 16 - 48
    assert k.frame() == (0x5, UCODE, UCS, 0x203, USP, UDS)   # P | U, read
    assert v.cr2 == KDATA
    assert v.rflags & IF == 0                                 # interrupt gate
    at(k.run(), "CPUID", UCODE + 3)
    assert v.cpl == 3 and v.rsp == USP and v.rflags == 0x203
    assert v.get_seg_sel(1) == UCS and v.get_seg_sel(2) == UDS
    # a not-present user page: error code U only; a write: U | W
    v.rbx = UNMAPPED
    k.user_mode()
    at(k.run(), "CPUID", h)
    assert k.frame()[0] == 0x4 and v.cr2 == UNMAPPED
    k.m.write(UCODE, bytes.fromhex("488903") + CPUID)         # mov [rbx], rax
    k.user_mode()
    at(k.run(), "CPUID", h)
    assert k.frame()[0] == 0x6
    at(k.run(), "CPUID", UCODE + 3)


def test_trap_gate_keeps_if_and_kernel_fault_stays_on_stack():
    k = Kernel()
    v = k.v
    h = k.handler(UD, CPUID, typ=0xF)          # trap gate
    k.m.write(UCODE, bytes.fromhex("0f0b"))   # ud2
    k.user_mode()
    at(k.run(), "CPUID", h)
    assert v.rflags & IF and k.frame(err=False) == (None, UCODE, UCS, 0x202, USP, UDS)
    # a fault at CPL 0: no stack switch, the frame goes below the current RSP
    k.kernel_mode(KCODE + 0x3000, rsp=RSP0 - 0x208)
    k.m.write(KCODE + 0x3000, bytes.fromhex("0f0b"))
    at(k.run(), "CPUID", h)
    assert v.rsp == RSP0 - 0x210 - 40
    assert k.frame(err=False) == (None, KCODE + 0x3000, KCS, 0x2, RSP0 - 0x208, KDS)


PRIVILEGED = [
    ("hlt", "f4"), ("cli", "fa"), ("sti", "fb"), ("wrmsr", "0f30"), ("rdmsr", "0f32"),
    ("mov cr3, rax", "0f22d8"), ("mov rax, cr0", "0f20c0"), ("mov cr8, rax", "440f22c0"),
    ("lgdt [rbx]", "0f0113"), ("lidt [rbx]", "0f011b"), ("invlpg [rbx]", "0f013b"),
    ("ltr ax", "0f00d8"), ("lldt ax", "0f00d0"), ("clts", "0f06"), ("wbinvd", "0f09"),
    ("invd", "0f08"), ("rdpmc", "0f33"), ("swapgs", "0f01f8"), ("sysretq", "480f07"),
    ("in al, 0x81", "e481"), ("out dx, al (0x3000)", "ee"), ("in eax, dx (0x3000)", "ed"),
    ("mov ss, ax (null)", "8ed0"), ("mov dr7, rax", "0f23f8"), ("mov rbx, dr6", "0f21f3"),
]


def test_privileged_instructions_at_cpl3_raise_gp():
    k = Kernel()
    v = k.v
    h = k.handler(GP, CPUID)
    for name, code in PRIVILEGED:
        k.m.write(UCODE, bytes.fromhex(code) + b"\x90" * 4)
        k.user_mode()
        v.rbx, v.rax, v.rdx = UDATA, 0, 0x3000
        ex = k.run()
        assert ex.name == "CPUID" and ex.rip == h, (name, ex)
        assert v.cpl == 0 and k.frame() == (0, UCODE, UCS, 0x202, USP, UDS), name
    # IOPL 3 lets CLI/STI and I/O through (I/O then exits to the VMM)
    k.m.write(UCODE, bytes.fromhex("fa fb e481"))
    k.user_mode(rflags=0x3202)
    at(k.run(), "IO")
    assert v.cpl == 3 and v.rip == UCODE + 4


def test_io_permission_bitmap():
    k = Kernel()
    v = k.v
    h = k.handler(GP, CPUID)
    cases = [("e480", 0x80, True),           # in al, 0x80: bit clear
             ("e580", 0x80, False),          # in eax, 0x80: 0x81-0x83 are not
             ("e681", 0x81, False),
             ("ee", 0x3F8, True),            # out dx, al
             ("66ef", 0x3F8, True),          # out dx, ax
             ("ef", 0x3FE, False),           # out dx, eax: 0x400 is beyond the bitmap
             ("ec", 0x3FF, True),
             ("ec", 0x400, False),           # outside the TSS limit
             ("ec", 0xFFFF, False)]
    for code, port, ok in cases:
        k.m.write(UCODE, bytes.fromhex(code) + b"\x90")
        k.user_mode()
        v.rdx = port
        ex = k.run()
        if ok:
            assert ex.name == "IO" and ex.port == port and v.cpl == 3, (code, hex(port), ex)
        else:
            assert ex.name == "CPUID" and ex.rip == h and k.frame()[0] == 0, (code, hex(port), ex)
    # a TSS without room for a bitmap: #GP
    v.tr = (TSS_SEL, TSS, 103)
    k.m.write(UCODE, bytes.fromhex("e480"))
    k.user_mode()
    at(k.run(), "CPUID", h)
    # no TSS at all: the #GP cannot switch stacks either (#TS, #DF): shutdown
    v.tr = (0, 0, 0)
    k.user_mode()
    at(k.run(), "SHUTDOWN", UCODE)


# ---- software interrupts ----

def test_int_n_through_dpl3_and_dpl0_gates():
    k = Kernel()
    v = k.v
    h80 = k.handler(0x80, CPUID + IRETQ, slot=1, dpl=3)
    k.handler(0x81, CPUID, slot=2, dpl=0)
    hbp = k.handler(BP, CPUID + IRETQ, slot=3, dpl=3, typ=0xF)
    hgp = k.handler(GP, CPUID)
    # user: int 0x80 / cpuid / int 0x81
    k.m.write(UCODE, bytes.fromhex("cd80") + CPUID + bytes.fromhex("cd81"))
    k.user_mode()
    at(k.run(), "CPUID", h80)
    assert v.cpl == 0 and v.rsp == RSP0 - 40
    assert k.frame(err=False) == (None, UCODE + 2, UCS, 0x202, USP, UDS)
    assert v.rflags & IF == 0
    at(k.run(), "CPUID", UCODE + 2)
    assert v.cpl == 3 and v.rsp == USP
    at(k.run(), "CPUID", hgp)
    assert k.frame() == (0x81 * 8 + 2, UCODE + 4, UCS, 0x202, USP, UDS)
    # INT3 through a DPL-3 trap gate: vector 3, RIP after the int3; IF stays set
    k.m.write(UCODE, bytes.fromhex("cc") + CPUID)
    k.user_mode()
    at(k.run(), "CPUID", hbp)
    assert k.frame(err=False) == (None, UCODE + 1, UCS, 0x202, USP, UDS) and v.rflags & IF
    at(k.run(), "CPUID", UCODE + 1)
    # INT3 through a DPL-0 gate from ring 3: #GP(3*8+2)
    k.handler(BP, CPUID, slot=3, dpl=0)
    k.user_mode()
    at(k.run(), "CPUID", hgp)
    assert k.frame()[0] == 3 * 8 + 2
    # a not-present gate: #NP(vector*8+2), and beyond the IDT limit: #GP
    hnp = k.handler(NP, CPUID, slot=4)
    k.m.write(IDT + 16 * 0x82, gate(h80, dpl=3, present=False))
    k.m.write(UCODE, bytes.fromhex("cd82"))
    k.user_mode()
    at(k.run(), "CPUID", hnp)
    assert k.frame() == (0x82 * 8 + 2, UCODE, UCS, 0x202, USP, UDS)
    v.idtr = (IDT, 0x82 * 16 - 1)
    k.user_mode()
    at(k.run(), "CPUID", hgp)
    assert k.frame()[0] == 0x82 * 8 + 2
    # without system mode INT n is an EXCEPTION exit to the VMM, as before
    v.system_mode = False
    k.user_mode()
    ex = k.run()
    assert ex.name == "EXCEPTION" and ex.vector == 0x82 and ex.software and ex.rip == UCODE + 2


def test_gate_selector_checks():
    k = Kernel()
    v = k.v
    hgp = k.handler(GP, CPUID, ist=1)
    k.m.write(UCODE, bytes.fromhex("cd80"))
    # the gate's CS is a data segment / a 32-bit code segment / null: #GP(selector)
    for sel, err in ((KDS, KDS), (UCS32 & ~3, UCS32 & ~3), (0, 0)):
        k.handler(0x80, CPUID, slot=1, dpl=3, sel=sel)
        k.user_mode()
        at(k.run(), "CPUID", hgp)
        assert k.frame()[0] == err and v.rsp == IST1 - 48
    # a DPL-3 code segment does not raise the privilege level: the handler
    # runs at CPL 3 on the same stack
    h = UCODE + 0x800
    k.m.write(h, CPUID)
    k.m.write(IDT + 16 * 0x80, gate(h, sel=UCS, dpl=3))
    k.user_mode()
    at(k.run(), "CPUID", h)
    assert v.cpl == 3 and v.rsp == (USP & ~15) - 40 and v.get_seg_sel(1) == UCS
    assert k.frame(err=False) == (None, UCODE + 2, UCS, 0x202, USP, UDS)


# ---- SYSCALL / SYSRET ----

def test_syscall_sysret_with_swapgs():
    k = Kernel()
    v = k.v
    percpu = KDATA + 0x800
    k.m.write(percpu + 8, struct.pack("<Q", RSP0))   # gs:[8]: kernel stack
    entry = KCODE + 0x2000
    k.m.write(entry, bytes.fromhex(
        "0f01f8"                      # swapgs
        "654889242510000000"          # mov gs:[0x10], rsp
        "65488b242508000000"          # mov rsp, gs:[0x8]
        "51 4153")                    # push rcx / push r11
        + CPUID + bytes.fromhex(
        "415b 59"                     # pop r11 / pop rcx
        "65488b242510000000"          # mov rsp, gs:[0x10]
        "0f01f8"                      # swapgs
        "480f07"))                    # sysretq
    v.set_msr(0xC0000082, entry)      # LSTAR
    v.set_msr(0xC0000084, IF | 0x100 | 0x400)   # SFMASK: IF TF DF
    v.kernel_gs_base = percpu
    v.gs_base = 0x7000
    # user: mov eax, 42 / syscall / cpuid
    k.m.write(UCODE, bytes.fromhex("b82a000000 0f05") + CPUID)
    k.user_mode(rflags=0x202 | 0x400 | 0x80)    # IF DF SF
    at(k.run(), "CPUID", entry + 3 + 9 + 9 + 3)
    assert v.cpl == 0 and v.get_seg_sel(1) == KCS and v.get_seg_sel(2) == KDS
    assert v.rcx == UCODE + 7 and v.r11 == 0x682
    assert v.rflags == 0x82 and v.gs_base == percpu and v.kernel_gs_base == 0x7000
    assert v.rsp == RSP0 - 16 and k.q(percpu + 0x10)[0] == USP
    at(k.run(), "CPUID", UCODE + 7)
    assert v.cpl == 3 and v.get_seg_sel(1) == UCS and v.get_seg_sel(2) == UDS
    assert v.rflags == 0x682 and v.rsp == USP and v.gs_base == 0x7000 and v.rax == 42
    # SYSRET's RFLAGS come from R11 (reserved bits and RF/VM cleared)
    hgp = k.handler(GP, CPUID)
    k.kernel_mode(KCODE + 0x3000)
    k.m.write(KCODE + 0x3000, bytes.fromhex("480f07"))
    v.rcx, v.r11 = UCODE + 7, 0xFFFFFFFF
    at(k.run(), "CPUID", UCODE + 7)
    assert v.rflags == 0x3C7FD7 | 2 and v.cpl == 3
    # a non-canonical RCX: #GP(0) at CPL 0
    k.kernel_mode(KCODE + 0x3000)
    v.rcx = 0x0000800000000000
    at(k.run(), "CPUID", hgp)
    assert k.frame() == (0, KCODE + 0x3000, KCS, 2, RSP0 - 0x100, KDS) and v.rsp == RSP0 - 0x100 - 48
    # without EFER.SCE: #UD
    hud = k.handler(UD, CPUID, slot=5)
    v.efer = v.efer & ~1
    k.kernel_mode(KCODE + 0x3000)
    v.rcx = UCODE
    at(k.run(), "CPUID", hud)


# ---- double and triple faults ----

def test_double_fault_on_ist_stack():
    k = Kernel()
    v = k.v
    hdf = k.handler(DF, CPUID, ist=1)
    # #GP whose gate is not present: #NP during delivery, contributory twice -> #DF
    k.m.write(IDT + 16 * GP, gate(KCODE, present=False))
    k.m.write(UCODE, bytes.fromhex("f4"))          # hlt at CPL 3
    k.user_mode()
    at(k.run(), "CPUID", hdf)
    assert v.rsp == IST1 - 48 and v.cpl == 0
    assert k.frame() == (0, UCODE, UCS, 0x202, USP, UDS)
    # #PF while pushing the #PF frame (RSP0 unmapped): #DF, CR2 = the stack address
    k.handler(PF, CPUID, slot=PF)
    k.m.write(TSS + 4, struct.pack("<Q", UNMAPPED + 0x1000))
    k.m.write(UCODE, bytes.fromhex("488b03"))      # mov rax, [rbx]
    v.rbx = KDATA
    k.user_mode()
    at(k.run(), "CPUID", hdf)
    assert v.cr2 == UNMAPPED + 0xFF8 and k.frame() == (0, UCODE, UCS, 0x202, USP, UDS)
    # a benign exception whose delivery faults is not a double fault: #UD,
    # then #PF on the stack push is delivered as a #PF (on IST1)
    hpf = k.handler(PF, CPUID, slot=PF, ist=1)
    k.m.write(UCODE, bytes.fromhex("0f0b"))
    k.handler(UD, CPUID, slot=UD)
    k.user_mode()
    at(k.run(), "CPUID", hpf)
    assert k.frame() == (0x2, UCODE, UCS, 0x202, USP, UDS)   # supervisor write, not present
    # an external interrupt whose delivery faults: the fault is delivered
    k.m.write(IDT + 16 * 0x40, gate(KCODE, present=False))
    hnp = k.handler(NP, CPUID, slot=NP, ist=1)
    k.m.write(UCODE, b"\x90" * 4)
    k.user_mode()
    v.raise_irq(0x40)
    at(k.run(), "CPUID", hnp)
    assert k.frame() == (0x40 * 8 + 3, UCODE, UCS, 0x202, USP, UDS)   # IDT | EXT


def test_triple_fault_shutdown():
    k = Kernel()
    v = k.v
    k.m.write(IDT + 16 * GP, gate(KCODE, present=False))
    k.m.write(IDT + 16 * DF, gate(KCODE, present=False))
    k.m.write(UCODE, bytes.fromhex("f4"))
    k.user_mode()
    ex = k.run()
    assert ex.name == "SHUTDOWN" and ex.rip == UCODE
    assert v.counters["exits"].get("SHUTDOWN") == 1
    # an empty IDT: #GP for the #GP, #DF, then shutdown
    k = Kernel()
    k.v.idtr = (IDT, 0)
    k.m.write(KCODE, bytes.fromhex("0f0b"))
    k.kernel_mode(KCODE)
    ex = k.run()
    assert ex.name == "SHUTDOWN" and ex.rip == KCODE
    # #DF whose handler stack faults (#PF): shutdown
    k = Kernel()
    k.handler(DF, CPUID)
    k.m.write(IDT + 16 * GP, gate(KCODE, present=False))
    k.m.write(TSS + 4, struct.pack("<Q", UNMAPPED))
    k.m.write(UCODE, bytes.fromhex("f4"))
    k.user_mode()
    assert k.run().name == "SHUTDOWN"


def test_faults_while_loading_the_handler_context():
    k = Kernel()
    v = k.v
    hts = k.handler(TS, CPUID, slot=TS)
    hdf = k.handler(DF, CPUID)
    h80 = k.handler(0x80, CPUID, slot=1, dpl=3, ist=1)
    k.m.write(UCODE, bytes.fromhex("cd80"))
    # the TSS limit covers RSP0 but not IST1: #TS(TR selector), delivered on RSP0
    v.tr = (TSS_SEL, TSS, 11)
    k.user_mode()
    at(k.run(), "CPUID", hts)
    assert k.frame() == (TSS_SEL, UCODE, UCS, 0x202, USP, UDS) and v.rsp == RSP0 - 48
    # a #TS while delivering the #TS (it wants IST1 as well): double fault
    k.handler(TS, CPUID, slot=TS, ist=1)
    k.user_mode()
    at(k.run(), "CPUID", hdf)
    assert k.frame()[0] == 0
    # no TSS at all: #TS(0) for the INT, again for the #TS and the #DF: shutdown
    v.tr = (0, 0, 0)
    k.handler(TS, CPUID, slot=TS)
    k.user_mode()
    at(k.run(), "SHUTDOWN", UCODE)
    # ... but a fault at CPL 0 needs no TSS
    k.m.write(KCODE + 0x3000, bytes.fromhex("0f0b"))
    hud = k.handler(UD, CPUID, slot=UD)
    k.kernel_mode(KCODE + 0x3000)
    at(k.run(), "CPUID", hud)
    v.tr = (TSS_SEL, TSS, TSS_LIMIT)
    h80 = k.handler(0x80, CPUID, slot=1, dpl=3)
    # a non-canonical RSP0: #SS
    hss = k.handler(SS_, CPUID, slot=SS_, ist=1)
    k.m.write(TSS + 4, struct.pack("<Q", 0x0000900000000000))
    k.user_mode()
    at(k.run(), "CPUID", hss)
    assert k.frame()[0] == 0
    k.m.write(TSS + 4, struct.pack("<Q", RSP0))
    k.user_mode()
    at(k.run(), "CPUID", h80)


# ---- external interrupts ----

def irq_kernel():
    """Kernel code at KCODE + 0x2000 running at CPL 0 with IF=0, and a 0x40
    handler that stops at a CPUID and returns with IRETQ."""
    k = Kernel()
    h = k.handler(0x40, CPUID + IRETQ, slot=1)
    k.handler(0x51, CPUID + IRETQ, slot=2)
    k.handler(0x60, CPUID + IRETQ, slot=3)
    return k, h


def test_external_interrupt_needs_if_and_waits_out_the_sti_shadow():
    k, h = irq_kernel()
    v = k.v
    main = KCODE + 0x2000
    # nop / nop / sti / nop / jmp +0 / nop / cpuid
    k.m.write(main, bytes.fromhex("90 90 fb 90 eb00 90") + CPUID)
    k.kernel_mode(main)
    v.raise_irq(0x40)
    assert v.pending_irqs == [0x40]
    for _ in range(3):                 # IF=0: nothing is delivered
        at(v.run(1), "BUDGET")
    assert v.rip == main + 3 and v.rflags & IF and v.interrupt_shadow
    at(v.run(1), "BUDGET")             # the instruction in the STI shadow
    assert v.rip == main + 4 and not v.interrupt_shadow
    at(v.run(1), "CPUID", h)           # now delivered, before the next nop
    assert k.frame(err=False) == (None, main + 4, KCS, 0x202, RSP0 - 0x100, KDS)
    assert v.rsp == RSP0 - 0x100 - 40 and v.pending_irqs == []
    at(k.run(), "CPUID", main + 7)     # iretq, then the rest of the code
    # unstepped: delivered at the block boundary after the shadow (the jmp)
    k.kernel_mode(main)
    v.raise_irq(0x40)
    at(k.run(), "CPUID", h)
    assert k.frame(err=False)[1] == main + 6
    # STI when IF is already 1 has no shadow; with IF=0 throughout the
    # interrupt stays pending
    k.m.write(main, bytes.fromhex("90 90 90") + CPUID)
    k.kernel_mode(main)
    v.raise_irq(0x40)
    at(k.run(), "CPUID", main + 3)
    assert v.pending_irqs == [0x40]
    v.clear_irq(0x40)
    assert v.pending_irqs == []


def test_mov_ss_shadow():
    k, h = irq_kernel()
    v = k.v
    main = KCODE + 0x2000
    # mov ss, ax / nop / nop
    k.m.write(main, bytes.fromhex("8ed0 90 90") + CPUID)
    k.kernel_mode(main, rflags=0x202)
    v.rax = KDS
    v.raise_irq(0x40)
    at(v.run(1), "CPUID", h)           # IF=1: delivered before the first instruction
    assert k.frame(err=False)[1] == main
    k.kernel_mode(main, rflags=0x202)
    at(v.run(1), "BUDGET")             # mov ss, ax
    assert v.rip == main + 2 and v.interrupt_shadow
    v.raise_irq(0x40)
    at(v.run(1), "BUDGET")             # the nop in its shadow
    assert v.rip == main + 3
    at(v.run(1), "CPUID", h)
    assert k.frame(err=False)[1] == main + 3


def test_tpr_masks_by_priority_class():
    k, h40 = irq_kernel()
    v = k.v
    h51, h60 = k.handlers[0x51], k.handlers[0x60]
    main = KCODE + 0x2000
    # nop / mov cr8, rax / nop / cpuid
    k.m.write(main, bytes.fromhex("90 440f22c0 90") + CPUID)
    v.cr8 = 5
    v.rax = 4
    k.kernel_mode(main, rflags=0x202)
    v.raise_irq(0x40)
    v.raise_irq(0x51)
    at(v.run(1), "BUDGET")             # both classes (4, 5) <= TPR 5: masked
    assert v.pending_irqs == [0x51, 0x40]
    at(v.run(1), "BUDGET")             # TPR = 4: 0x51 (class 5) is taken
    at(v.run(1), "CPUID", h51)
    assert k.frame(err=False)[1] == main + 5
    at(v.run(1), "BUDGET")             # iretq; 0x40 still masked
    assert v.rip == main + 5 and v.pending_irqs == [0x40]
    v.cr8 = 3
    at(v.run(1), "CPUID", h40)
    # the highest vector goes first
    v.cr8 = 0
    k.kernel_mode(main + 5, rflags=0x202)
    v.raise_irq(0x40)
    v.raise_irq(0x60)
    at(k.run(), "CPUID", h60)
    at(k.run(), "CPUID", h40)          # at the iretq's block boundary: the next one
    at(k.run(), "CPUID", main + 6)


def test_hlt_halts_until_an_interrupt():
    k, h = irq_kernel()
    v = k.v
    main = KCODE + 0x2000
    # sti / hlt / cpuid
    k.m.write(main, bytes.fromhex("fb f4") + CPUID)
    k.kernel_mode(main)
    at(k.run(), "HLT", main + 1)
    assert v.halted and v.rip == main + 2
    at(k.run(), "HLT")                 # nothing pending: still halted
    assert v.halted and v.rip == main + 2
    v.raise_irq(0x40)
    at(k.run(), "CPUID", h)            # woken: the handler returns after the HLT
    assert not v.halted and k.frame(err=False)[1] == main + 2
    at(k.run(), "CPUID", main + 2)
    # an interrupt already pending when STI; HLT runs: no HLT exit at all
    k.kernel_mode(main)
    v.raise_irq(0x40)
    at(k.run(), "CPUID", h)
    assert k.frame(err=False)[1] == main + 2
    # a masked interrupt does not wake it, nor does one with IF=0
    k.kernel_mode(main)
    v.cr8 = 15
    v.raise_irq(0x40)
    at(k.run(), "HLT")
    at(k.run(), "HLT")
    v.cr8 = 0
    at(k.run(), "CPUID", h)
    k.m.write(main, bytes.fromhex("fa f4") + CPUID)     # cli / hlt
    k.kernel_mode(main)
    at(k.run(), "HLT")
    v.raise_irq(0x40)
    at(k.run(), "HLT")
    # outside system mode HLT exits every time (no halted state)
    v.system_mode = False
    k.kernel_mode(main)
    at(k.run(), "HLT")
    at(k.run(), "CPUID", main + 2)


def test_raise_irq_from_another_thread_interrupts_a_loop():
    import threading
    k, h = irq_kernel()
    v = k.v
    main = KCODE + 0x2000
    k.m.write(main, bytes.fromhex("ebfe"))    # jmp $
    k.kernel_mode(main, rflags=0x202)
    t = threading.Timer(0.05, v.raise_irq, (0x40,))
    t.start()
    ex = v.run(2_000_000_000)
    t.join()
    at(ex, "CPUID", h)
    assert k.frame(err=False)[1] == main


# ---- segments, descriptor tables, far returns ----

def test_segment_loads():
    k = Kernel()
    v = k.v
    hgp = k.handler(GP, CPUID)
    hnp = k.handler(NP, CPUID, slot=1)
    hss = k.handler(SS_, CPUID, slot=2)
    main = KCODE + 0x2000

    def run_k(code, **regs):
        k.m.write(main, bytes.fromhex(code) + CPUID)
        k.kernel_mode(main)
        for r, val in regs.items():
            setattr(v, r, val)
        return k.run()

    # mov ds, ax / mov es, ax / mov ss, ax / mov fs, ax (null: base 0) / mov gs, cx (base from the GDT)
    v.fs_base = 0x5555
    at(run_k("8ed8 8ec0 8ed0 8ee3 8ee9", rax=KDS, rbx=0, rcx=FSBASE_SEL), "CPUID", main + 10)
    assert [v.get_seg_sel(i) for i in (0, 2, 3, 4, 5)] == [KDS, KDS, KDS, 0, FSBASE_SEL]
    assert v.fs_base == 0 and v.gs_base == 0x12345000
    # mov ax, ds / mov ecx, ss / mov [rdx], es
    at(run_k("668cd8 8cd1 8c02", rax=-1 & 0xFFFFFFFFFFFFFFFF, rcx=-1 & 0xFFFFFFFFFFFFFFFF, rdx=KDATA + 0x900),
       "CPUID")
    assert v.rax == 0xFFFFFFFFFFFF0000 | KDS and v.rcx == KDS
    assert k.m.read(KDATA + 0x900, 2) == struct.pack("<H", KDS)
    # SS: null at CPL 0 is fine; a DPL-3 segment, a code segment or RPL != CPL: #GP(selector)
    at(run_k("8ed0", rax=0), "CPUID", main + 2)
    for sel in (UDS, KCS, KDS | 3, UDS & ~3):
        at(run_k("8ed0", rax=sel), "CPUID", hgp)
        assert k.frame()[0] == sel & ~3, hex(sel)
    # beyond the GDT limit: #GP(selector); an LDT selector with no LDT: #GP
    at(run_k("8ed8", rax=0x100), "CPUID", hgp)
    assert k.frame()[0] == 0x100
    at(run_k("8ed8", rax=0x14), "CPUID", hgp)
    assert k.frame()[0] == 0x14
    # not present: #NP for DS, #SS for SS (at CPL 3, where the DPL matches)
    at(run_k("8ed8", rax=NOTPRESENT_SEL), "CPUID", hnp)
    assert k.frame()[0] == NOTPRESENT_SEL & ~3
    k.m.write(UCODE, bytes.fromhex("8ed0"))
    k.user_mode()
    v.rax = NOTPRESENT_SEL
    at(k.run(), "CPUID", hss)
    assert k.frame()[0] == NOTPRESENT_SEL & ~3
    # CPL 3 loading a DPL-0 data segment into DS: #GP; mov cs: #UD
    hud = k.handler(UD, CPUID, slot=3)
    k.m.write(UCODE, bytes.fromhex("8ed8"))
    k.user_mode()
    v.rax = KDS
    at(k.run(), "CPUID", hgp)
    k.m.write(UCODE, bytes.fromhex("8ec8"))
    k.user_mode()
    at(k.run(), "CPUID", hud)
    # push fs / pop gs
    at(run_k("0fa0 0fa9", rbx=0, rcx=0), "CPUID")
    v.set_seg_sel(4, FSBASE_SEL)
    k.m.write(main, bytes.fromhex("0fa0 0fa9") + CPUID)
    k.kernel_mode(main)
    at(k.run(), "CPUID", main + 4)
    assert v.get_seg_sel(5) == FSBASE_SEL and v.gs_base == 0x12345000 and v.rsp == RSP0 - 0x100


def test_ltr_str_lldt():
    k = Kernel()
    v = k.v
    hgp = k.handler(GP, CPUID)
    main = KCODE + 0x2000
    v.tr = (0, 0, 0)
    # ltr ax / str ecx / sldt edx
    k.m.write(main, bytes.fromhex("0f00d8 0f00c9 0f00c2") + CPUID)
    k.kernel_mode(main)
    v.rax, v.rcx, v.rdx = TSS_SEL, -1 & 0xFFFFFFFFFFFFFFFF, 7
    at(k.run(), "CPUID", main + 9)
    assert v.tr == (TSS_SEL, TSS, TSS_LIMIT) and v.rcx == TSS_SEL and v.rdx == 0
    assert k.m.read(KDATA + TSS_SEL + 5, 1)[0] == 0x8B          # busy
    # a busy TSS, a data segment, a null selector: #GP
    for sel, err in ((TSS_SEL, TSS_SEL), (KDS, KDS), (0, 0)):
        k.m.write(main, bytes.fromhex("0f00d8"))
        k.kernel_mode(main)
        v.rax = sel
        at(k.run(), "CPUID", hgp)
        assert k.frame()[0] == err
    # interrupts use the TSS LTR loaded
    h80 = k.handler(0x80, CPUID, slot=1, dpl=3)
    k.m.write(UCODE, bytes.fromhex("cd80"))
    k.user_mode()
    at(k.run(), "CPUID", h80)
    assert v.rsp == RSP0 - 40
    # LLDT: an LDT descriptor (type 2) at 0x50 with one DPL-3 data segment
    ldt = KDATA + 0x400
    k.m.write(ldt, struct.pack("<Q", 0x00CFF3000000FFFF))
    lo, hi = tss_descriptor(ldt, 7, typ=2)
    k.m.write(KDATA + 0x50, struct.pack("<QQ", lo, hi))
    v.gdtr = (KDATA, 0x5F)
    # lldt ax / mov ds, cx (LDT selector 0x07) / sldt edx
    k.m.write(main, bytes.fromhex("0f00d0 8ed9 0f00c2") + CPUID)
    k.kernel_mode(main)
    v.rax, v.rcx = 0x50, 0x07
    at(k.run(), "CPUID", main + 8)
    assert v.ldtr == (0x50, ldt, 7) and v.get_seg_sel(3) == 7 and v.rdx == 0x50
    # LTR with the LDT descriptor: #GP
    k.m.write(main, bytes.fromhex("0f00d8"))
    k.kernel_mode(main)
    v.rax = 0x50
    at(k.run(), "CPUID", hgp)
    assert k.frame()[0] == 0x50


def test_far_return_and_iret_checks():
    k = Kernel()
    v = k.v
    hgp = k.handler(GP, CPUID)
    main = KCODE + 0x2000
    # push 0x08 / lea rax, [rip+3] / push rax / retfq / cpuid: the kernel's CS reload
    k.m.write(main, bytes.fromhex("6a08 488d0503000000 50 48cb") + CPUID)
    k.kernel_mode(main)
    v.set_seg_sel(1, 0)
    at(k.run(), "CPUID", main + 12)
    assert v.get_seg_sel(1) == KCS and v.rsp == RSP0 - 0x100 and v.cpl == 0
    # retfq to ring 3: pops RIP, CS, RSP, SS
    k.m.write(RSP0 - 0x120, struct.pack("<4Q", UCODE, UCS, USP, UDS))
    k.m.write(main, bytes.fromhex("48cb"))
    k.m.write(UCODE, CPUID)
    k.kernel_mode(main, rsp=RSP0 - 0x120)
    at(k.run(), "CPUID", UCODE)
    assert v.cpl == 3 and v.rsp == USP and v.get_seg_sel(2) == UDS and v.get_seg_sel(1) == UCS

    def iret(frame, rflags=0x2):
        k.m.write(RSP0 - 0x140, struct.pack("<5Q", *frame))
        k.m.write(main, IRETQ)
        k.kernel_mode(main, rsp=RSP0 - 0x140, rflags=rflags)
        return k.run()

    # iretq to ring 3 with IOPL and IF from the image (CPL 0 may change both);
    # DS and FS held DPL-0 data segments: nulled; ES (DPL 3) and GS (null) stay
    for sr, sel in ((0, UDS), (3, KDS), (4, FSBASE_SEL), (5, 0)):
        v.set_seg_sel(sr, sel)
    at(iret((UCODE, UCS, 0x3202 | 0x8D5, USP, UDS)), "CPUID", UCODE)
    assert v.rflags == 0x3202 | 0x8D5 and v.cpl == 3
    assert [v.get_seg_sel(i) for i in range(6)] == [UDS, UCS, UDS, 0, 0, 0]
    # to a 32-bit code segment (compatibility mode): #GP(selector)
    at(iret((UCODE, UCS32, 0x202, USP, UDS)), "CPUID", hgp)
    assert k.frame()[0] == UCS32 & ~3
    # CS RPL 3 with an SS of RPL 0, a null SS at RPL 3, a non-canonical RIP
    for frame, err in (((UCODE, UCS, 0x202, USP, KDS), KDS), ((UCODE, UCS, 0x202, USP, 0), 0),
                       ((0x0000800000000000, UCS, 0x202, USP, UDS), 0),
                       ((UCODE, KCS | 3, 0x202, USP, UDS), KCS)):
        at(iret(frame), "CPUID", hgp)
        assert k.frame()[0] == err, frame
    # iretq at CPL 3 to CPL 0: #GP(selector); IF/IOPL are not changed by a
    # CPL-3 iretq when IOPL=0
    k.m.write(UCODE + 0x100, IRETQ)
    k.m.write(USP - 0x40, struct.pack("<5Q", UCODE, UCS, 0x3002, USP, UDS))
    k.user_mode(rip=UCODE + 0x100, rsp=USP - 0x40, rflags=0x202)
    at(k.run(), "CPUID", UCODE)
    assert v.rflags == 0x202
    k.m.write(USP - 0x40, struct.pack("<5Q", KCODE, KCS, 0x2, RSP0, KDS))
    k.user_mode(rip=UCODE + 0x100, rsp=USP - 0x40)
    at(k.run(), "CPUID", hgp)
    assert k.frame()[0] == KCS
    # same-level iretq in the kernel with a null SS
    k.m.write(main + 0x10, CPUID)
    at(iret((main + 0x10, KCS, 0x2, RSP0 - 0x80, 0)), "CPUID", main + 0x10)
    assert v.rsp == RSP0 - 0x80 and v.get_seg_sel(2) == 0


# ---- SMEP / SMAP, RDPMC ----

def test_smep_smap_deliver_page_faults():
    k = Kernel()
    v = k.v
    hpf = k.handler(PF, CPUID)
    main = KCODE + 0x2000
    k.m.write(UCODE, CPUID)
    v.cr4 = v.cr4 | CR4_SMEP | CR4_SMAP
    # the kernel jumps to a user page: #PF, instruction fetch | present
    k.m.write(main, bytes.fromhex("ffe3"))          # jmp rbx
    k.kernel_mode(main)
    v.rbx = UCODE
    at(k.run(), "CPUID", hpf)
    assert k.frame()[0] == 0x11 and v.cr2 == UCODE and k.frame()[1] == UCODE
    # the kernel reads a user page: #PF (present, supervisor read) unless STAC
    k.m.write(UDATA, struct.pack("<Q", 0xABCDEF))
    k.m.write(main, bytes.fromhex("488b03") + CPUID)          # mov rax, [rbx]
    k.kernel_mode(main)
    v.rbx = UDATA
    at(k.run(), "CPUID", hpf)
    assert k.frame()[0] == 0x1 and v.cr2 == UDATA
    # stac / mov rax, [rbx] / clac / mov [rbx], rax
    k.m.write(main, bytes.fromhex("0f01cb 488b03 0f01ca 488903") + CPUID)
    k.kernel_mode(main)
    at(k.run(), "CPUID", hpf)
    assert v.rax == 0xABCDEF and k.frame()[0] == 0x3 and k.frame()[1] == main + 9
    # without SMEP/SMAP both work
    v.cr4 = v.cr4 & ~(CR4_SMEP | CR4_SMAP)
    k.m.write(main, bytes.fromhex("488901 ffe3"))      # mov [rcx], rax / jmp rbx
    k.kernel_mode(main)
    v.rax, v.rbx, v.rcx = 7, UCODE, UDATA
    at(k.run(), "CPUID", UCODE)
    assert v.cpl == 0


def test_rdpmc_needs_pce_and_a_counter():
    k = Kernel()
    v = k.v
    hgp = k.handler(GP, CPUID)
    table = [e for e in baseline_table() if e[0] != 0xA] + [(0xA, None, (2 << 8) | 2, 0, 0, 3)]
    v.set_cpuid_table(table)
    k.m.write(UCODE, bytes.fromhex("0f33") + CPUID)
    for pce, ecx, ok in ((0, 0, False), (1, 0, True), (1, 1, True), (1, 2, False),
                         (1, 0x40000002, True), (1, 0x40000003, False)):
        v.cr4 = (v.cr4 & ~CR4_PCE) | (CR4_PCE if pce else 0)
        k.user_mode()
        v.rcx, v.rax, v.rdx = ecx, 5, 5
        ex = k.run()
        if ok:
            at(ex, "CPUID", UCODE + 2)
            assert v.rax == 0 and v.rdx == 0
        else:
            at(ex, "CPUID", hgp)


def test_user_mode_personality_unchanged():
    """Without system mode faults still exit to the VMM, at any CPL."""
    m = emu.Machine(16 << 20)
    m.map(UCODE, 0x1000)
    v = m.vcpu
    m.write(UCODE, bytes.fromhex("488b03"))
    v.rip, v.rbx = UCODE, UNMAPPED
    ex = v.run(10)
    assert ex.name == "EXCEPTION" and ex.vector == PF and ex.error_code == 0x4 and ex.cr2 == UNMAPPED
    m.write(UCODE, bytes.fromhex("f4"))
    v.rip = UCODE
    ex = v.run(10)
    assert ex.name == "EXCEPTION" and ex.vector == GP


def test_debug_registers_and_into():
    k = Kernel()
    v = k.v
    hud = k.handler(UD, CPUID)
    main = KCODE + 0x2000
    # mov dr7, rax / mov rbx, dr7 / mov rcx, dr4 (DR6 alias) / mov dr0, rdx / mov r9, dr0
    k.m.write(main, bytes.fromhex("0f23f8 0f21fb 0f21e1 0f23c2 410f21c1") + CPUID)
    k.kernel_mode(main)
    v.rax, v.rdx = 0x1FFFF, 0xFFFF800000001234
    at(k.run(), "CPUID", main + 16)
    assert v.rbx == (0x1FFFF & 0xFFFF2BFF) | 0x400 and v.rcx == 0xFFFF0FF0
    assert v.r9 == 0xFFFF800000001234 and v.get_dr(0) == 0xFFFF800000001234
    # DR4 with CR4.DE, DR8 (REX.R): #UD; the upper half of DR7: #GP
    v.cr4 = v.cr4 | 8
    for code in ("0f21e1", "440f21c0"):
        k.m.write(main, bytes.fromhex(code))
        k.kernel_mode(main)
        at(k.run(), "CPUID", hud)
    hgp = k.handler(GP, CPUID, slot=1)
    k.m.write(main, bytes.fromhex("0f23f8"))
    k.kernel_mode(main)
    v.rax = 1 << 32
    at(k.run(), "CPUID", hgp)
    # INTO does not exist in 64-bit mode: #UD through the IDT
    k.m.write(UCODE, bytes.fromhex("ce"))
    k.user_mode(rflags=0xA02)
    at(k.run(), "CPUID", hud)
    assert k.frame(err=False)[1] == UCODE


def test_delivery_through_device_memory_faults():
    """A kernel stack outside RAM (an MMIO address) cannot take the frame:
    #GP(EXT) for the #UD, which needs that stack too: #DF on IST1."""
    k = Kernel()
    v = k.v
    k.m.page_tables.map(0x800000, 0x10000000, 0x1000, user=False)
    k.m.write(TSS + 4, struct.pack("<Q", 0x801000))
    k.handler(UD, CPUID)
    k.handler(GP, CPUID, slot=1)
    hdf = k.handler(DF, CPUID, slot=2, ist=1)
    k.m.write(UCODE, bytes.fromhex("0f0b"))
    k.user_mode()
    at(k.run(), "CPUID", hdf)
    assert k.frame() == (0, UCODE, UCS, 0x202, USP, UDS)


def test_demand_paging_retries_the_faulting_instruction():
    k = Kernel()
    v = k.v
    # #PF handler: cpuid (the test maps the page here) / add rsp, 8 / iretq
    h = k.handler(PF, CPUID + POP_ERR_IRETQ)
    # user: mov rax, [rbx] / cpuid
    k.m.write(UCODE, bytes.fromhex("488b03") + CPUID)
    k.user_mode()
    v.rbx = UNMAPPED + 0x10
    at(k.run(), "CPUID", h)
    assert k.frame()[:2] == (0x4, UCODE) and v.cr2 == UNMAPPED + 0x10
    k.m.map(UNMAPPED, 0x1000)
    k.m.write(UNMAPPED + 0x10, struct.pack("<Q", 0x1122334455667788))
    at(k.run(), "CPUID", UCODE + 3)
    assert v.rax == 0x1122334455667788 and v.cpl == 3


def test_timer_interrupts_preempt_a_user_loop():
    """A user loop counting in RAX, interrupted by vector 0x20 a few times:
    the handler counts ticks in kernel memory and returns with IRETQ; the
    user's registers and flags survive."""
    k = Kernel()
    v = k.v
    ticks = KDATA + 0xA00
    # handler: inc qword [ticks] / iretq
    h = k.handler(0x20, bytes.fromhex("48ff0425") + struct.pack("<I", ticks) + IRETQ)
    # user: inc rax / cmp rax, 100000 / jne user / cpuid
    k.m.write(UCODE, bytes.fromhex("48ffc0 483da0860100 75f5") + CPUID)
    k.user_mode()
    v.rax = 0
    n = 0
    while True:
        ex = v.run(5000)
        if ex.name == "CPUID":
            break
        assert ex.name == "BUDGET" and v.cpl == 3
        v.raise_irq(0x20)
        n += 1
    assert ex.rip == UCODE + 11 and v.rax == 100000 and v.cpl == 3 and v.rsp == USP
    assert k.q(ticks)[0] == n and n >= 10
    assert h == k.handlers[0x20]
