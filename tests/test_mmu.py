"""The software MMU seen from guest code: translation for each page size,
#PF error codes and CR2, reserved bits, non-canonical addresses, A/D bits,
TLB coherence (CR3 reload, INVLPG), self-modifying code, page-crossing
accesses and MMIO (SDM Vol. 3A, chapter 4)."""
from __future__ import annotations

import struct

import numpy as np
import pytest

import emu
from emu import paging

CODE = 0x400000
DATA = 0x7F0000100000          # a PML4 slot of its own (upper levels untouched by code fetch); TLB slots apart from CODE
RAM = 64 << 20
PF, GP = 14, 13
P, W, U, RSVD, I = 1, 2, 4, 8, 16
CR0_WP = 1 << 16
EFER_NXE = 1 << 11

# instruction snippets (rbx = address, rax/rcx = data)
LOAD = bytes.fromhex("488b03")          # mov rax, [rbx]
STORE = bytes.fromhex("48890b")         # mov [rbx], rcx
STORE_B = bytes.fromhex("880b")         # mov [rbx], cl
ADD_MEM = bytes.fromhex("480103")       # add [rbx], rax


class Guest:
    def __init__(self, cpl: int = 3, ram: int = RAM):
        self.m = emu.Machine(ram, cpl=cpl)
        self.v = self.m.vcpu
        self.pt = self.m.page_tables
        self.ram = self.m.ram
        self.q = self.ram.view(np.uint64)
        self.code_pa = self.m.map(CODE, 0x2000)

    def run(self, code: bytes, budget: int = 1, **regs):
        self.m.write(CODE, code)
        for k, val in regs.items():
            setattr(self.v, k, val & (2**64 - 1))
        self.v.rip = CODE
        return self.v.run(budget)

    def load(self, va: int, **kw):
        return self.run(LOAD, rbx=va, **kw)

    def store(self, va: int, value: int, **kw):
        return self.run(STORE, rbx=va, rcx=value, **kw)

    def leaf(self, va: int):
        idx, e, size = self.pt.lookup(va)
        return idx, e

    def set_leaf(self, va: int, value: int) -> None:
        """Edit the leaf entry in guest RAM behind the TLB's back."""
        idx, _ = self.leaf(va)
        self.q[idx] = np.uint64(value)

    def walk_entries(self, va: int) -> list[int]:
        """Entry values PML4E, PDPTE, PDE[, PTE] for va."""
        out = []
        table = self.v.cr3 & paging.ADDR_MASK
        for level in (4, 3, 2, 1):
            e = int(self.q[(table >> 3) + ((va >> (12 + 9 * (level - 1))) & 511)])
            out.append(e)
            if level == 1 or e & paging.PS:
                break
            table = e & paging.ADDR_MASK
        return out


def assert_pf(ex, v, cr2: int, err: int, rip: int = CODE):
    assert ex.name == "EXCEPTION" and ex.vector == PF, ex
    assert ex.error_code == err, "error code %#x, expected %#x" % (ex.error_code, err)
    assert ex.cr2 == cr2 and v.cr2 == cr2
    assert ex.rip == rip and v.rip == rip


# ---- translation for each page size ----

def test_4k_pages_translate():
    g = Guest()
    pas = [g.m.map(DATA + i * 0x1000, 0x1000) for i in range(3)]
    for i, pa in enumerate(pas):
        va = DATA + i * 0x1000 + 0x238
        ex = g.store(va, 0x1122334455667700 + i)
        assert ex.name == "BUDGET"
        assert g.ram[pa + 0x238:pa + 0x240].tobytes() == struct.pack("<Q", 0x1122334455667700 + i)
        g.ram[pa + 0x400:pa + 0x408] = np.frombuffer(struct.pack("<Q", 0xABCDEF00 + i), np.uint8)
        assert g.load(DATA + i * 0x1000 + 0x400).name == "BUDGET" and g.v.rax == 0xABCDEF00 + i


def test_2m_page_translates():
    g = Guest()
    va = 0x7F0000200000
    pa = g.m.map(va, 2 << 20, page_size=2 << 20)
    assert pa % (2 << 20) == 0
    assert g.leaf(va + 0x1FF008)[1] & paging.PS
    for off in (0, 0x1000, 0x123456, 0x1FFFF8):
        assert g.store(va + off, 0xC0FFEE00 + off).name == "BUDGET"
        assert g.ram[pa + off:pa + off + 8].tobytes() == struct.pack("<Q", 0xC0FFEE00 + off)
        assert g.load(va + off).name == "BUDGET" and g.v.rax == 0xC0FFEE00 + off
    assert g.v.translate(va + 0x1ABCDE) == pa + 0x1ABCDE


def test_1g_page_translates():
    g = Guest()
    va = 0x7F0040000000                   # 1 GiB aligned; the page covers all of RAM from pa 0
    g.pt.map(va, 0, 1 << 30, page_size=1 << 30)
    off = RAM - 0x10000 + 0x238            # high in RAM, away from page tables and mapped frames
    assert g.store(va + off, 0x5A5A5A5A12345678).name == "BUDGET"
    assert g.ram[off:off + 8].tobytes() == struct.pack("<Q", 0x5A5A5A5A12345678)
    # the same RAM is visible through the 4 KiB code mapping's physical page too
    g.ram[g.code_pa + 0xF00:g.code_pa + 0xF08] = np.frombuffer(struct.pack("<Q", 77), np.uint8)
    assert g.load(va + g.code_pa + 0xF00).name == "BUDGET" and g.v.rax == 77
    assert g.v.translate(va + 0x3456789) == 0x3456789


# ---- page faults and their error codes ----

def test_not_present():
    g = Guest()
    va = DATA + 0x5008
    assert_pf(g.load(va), g.v, va, U)
    assert_pf(g.store(va, 1), g.v, va, W | U)
    g.m.map(DATA, 0x1000)                 # tables exist, the PTE for va does not
    assert_pf(g.load(va), g.v, va, U)
    g.v.cpl = 0
    assert_pf(g.load(va), g.v, va, 0)
    assert_pf(g.store(va, 1), g.v, va, W)
    # instruction fetch from a not-present page: CR2 and RIP are the target
    g.v.cpl = 3
    g.v.rip = DATA + 0x7000
    assert_pf(g.v.run(1), g.v, DATA + 0x7000, I | U, rip=DATA + 0x7000)


def test_write_to_read_only_user():
    g = Guest()
    pa = g.m.map(DATA, 0x1000, emu.PROT_R)
    g.ram[pa + 8] = 0x99
    assert g.load(DATA + 8).name == "BUDGET" and g.v.rax & 0xFF == 0x99
    assert_pf(g.store(DATA + 8, 0), g.v, DATA + 8, P | W | U)
    assert_pf(g.run(ADD_MEM, rbx=DATA + 16, rax=1), g.v, DATA + 16, P | W | U)
    assert g.ram[pa + 8] == 0x99 and g.ram[pa + 16] == 0


def test_write_to_read_only_supervisor_wp():
    g = Guest(cpl=0)
    pa = g.m.map(DATA, 0x1000, emu.PROT_R, user=False)
    assert g.v.cr0 & CR0_WP
    assert_pf(g.store(DATA + 0x10, 0x1234), g.v, DATA + 0x10, P | W)
    assert g.ram[pa + 0x10] == 0
    # CR0.WP = 0: supervisor writes ignore R/W (through the MOV CR0 instruction)
    code = bytes.fromhex("0f20c0 4825fffffeff 0f22c0") + STORE      # clear WP, then store
    ex = g.run(code, 4, rbx=DATA + 0x10, rcx=0x1234)
    assert ex.name == "BUDGET" and not g.v.cr0 & CR0_WP
    assert g.ram[pa + 0x10:pa + 0x18].tobytes() == struct.pack("<Q", 0x1234)
    # and back to WP = 1: the write TLB entry filled with WP = 0 must not survive
    g.v.cr0 = g.v.cr0 | CR0_WP
    assert_pf(g.store(DATA + 0x10, 0x5678), g.v, DATA + 0x10, P | W)
    # user pages stay read-only for CPL 3 whatever WP says
    u = Guest(cpl=3)
    u.m.map(DATA, 0x1000, emu.PROT_R)
    u.v.cr0 = u.v.cr0 & ~CR0_WP
    assert_pf(u.store(DATA, 1), u.v, DATA, P | W | U)


def test_user_access_to_supervisor_page():
    g = Guest()
    pa = g.m.map(DATA, 0x1000, user=False)
    g.ram[pa + 0x20] = 0x42
    assert_pf(g.load(DATA + 0x20), g.v, DATA + 0x20, P | U)
    assert_pf(g.store(DATA + 0x20, 7), g.v, DATA + 0x20, P | W | U)
    # fetch from a supervisor page
    g.m.map(DATA + 0x10000, 0x1000, user=False)
    g.v.rip = DATA + 0x10000
    assert_pf(g.v.run(1), g.v, DATA + 0x10000, P | U | I, rip=DATA + 0x10000)
    # the same accesses at CPL 0 succeed; the TLB keeps the modes apart
    g.v.cpl = 0
    assert g.load(DATA + 0x20).name == "BUDGET" and g.v.rax & 0xFF == 0x42
    g.v.cpl = 3
    assert_pf(g.load(DATA + 0x20), g.v, DATA + 0x20, P | U)
    # a supervisor bit in an upper level also counts
    g2 = Guest()
    g2.m.map(DATA, 0x1000)
    pml4e_idx = (g2.v.cr3 >> 3) + ((DATA >> 39) & 511)
    g2.q[pml4e_idx] = np.uint64(int(g2.q[pml4e_idx]) & ~paging.US)
    g2.v.flush_tlb()
    assert_pf(g2.load(DATA), g2.v, DATA, P | U)


def test_execute_nx_page():
    g = Guest()
    g.m.map(DATA, 0x1000, emu.PROT_R | emu.PROT_W)
    g.m.write(DATA, b"\x90\x90")
    # jump there: the fetch faults at the target
    ex = g.run(bytes.fromhex("ffe3"), 2, rbx=DATA)       # jmp rbx
    assert_pf(ex, g.v, DATA, P | U | I, rip=DATA)
    g.v.cpl = 0
    g.v.rip = DATA
    assert_pf(g.v.run(1), g.v, DATA, P | I, rip=DATA)
    # data accesses to the NX page are fine
    assert g.store(DATA + 8, 5).name == "BUDGET"
    # an instruction that starts on an executable page and runs onto an NX page
    g.v.cpl = 3
    g.m.map(DATA - 0x1000, 0x1000)
    g.m.write(DATA - 3, bytes.fromhex("b8112233"))        # mov eax, imm32 crossing into DATA
    g.v.rip = DATA - 3
    assert_pf(g.v.run(1), g.v, DATA, P | U | I, rip=DATA - 3)


def test_reserved_bits():
    g = Guest()
    g.m.map(DATA, 0x3000)
    _, e = g.leaf(DATA)
    g.set_leaf(DATA, e | (1 << 51))                       # above MAXPHYADDR (48)
    g.v.flush_tlb()
    assert_pf(g.load(DATA + 8), g.v, DATA + 8, P | RSVD | U)
    assert_pf(g.store(DATA + 8, 1), g.v, DATA + 8, P | W | RSVD | U)
    # a 2 MiB page whose frame address has bits 20..13 set
    va2 = 0x7F0000400000
    g.pt.map(va2, 0x200000, 2 << 20, page_size=2 << 20)
    assert g.load(va2).name == "BUDGET"
    idx, e = g.leaf(va2)
    g.q[idx] = np.uint64(e | 0x2000)
    g.v.invlpg(va2)
    assert_pf(g.load(va2 + 0x40), g.v, va2 + 0x40, P | RSVD | U)
    # PS in a PML4 entry
    g2 = Guest()
    g2.m.map(DATA, 0x1000)
    pml4e_idx = (g2.v.cr3 >> 3) + ((DATA >> 39) & 511)
    g2.q[pml4e_idx] = np.uint64(int(g2.q[pml4e_idx]) | paging.PS)
    g2.v.flush_tlb()
    assert_pf(g2.load(DATA), g2.v, DATA, P | RSVD | U)
    # XD set while EFER.NXE = 0; fetches then carry no I/D bit (no SMEP either)
    g3 = Guest()
    g3.m.map(DATA, 0x1000, emu.PROT_R | emu.PROT_W)
    g3.v.efer = g3.v.efer & ~EFER_NXE
    assert_pf(g3.load(DATA), g3.v, DATA, P | RSVD | U)
    g3.v.rip = DATA
    assert_pf(g3.v.run(1), g3.v, DATA, P | RSVD | U, rip=DATA)
    # not-present entries are not checked for reserved bits
    g.set_leaf(DATA + 0x2000, (1 << 51) | 0x7FE)
    g.v.invlpg(DATA + 0x2000)
    assert_pf(g.load(DATA + 0x2000), g.v, DATA + 0x2000, U)


def test_non_canonical_gp():
    g = Guest()
    for va in (0x0000800000000000, 0xFFFF7FFFFFFFFFF8, 0x8000000000000000, 0x1234567812345678):
        ex = g.load(va)
        assert ex.name == "EXCEPTION" and ex.vector == GP and ex.error_code == 0, hex(va)
        assert g.v.rip == CODE
        ex = g.store(va, 1)
        assert ex.name == "EXCEPTION" and ex.vector == GP, hex(va)
    # a jump to a non-canonical address faults on the fetch
    g.v.rip = 0x0000800000000000
    ex = g.v.run(1)
    assert ex.name == "EXCEPTION" and ex.vector == GP


# ---- accessed and dirty bits ----

def test_accessed_and_dirty_bits():
    g = Guest()
    g.m.map(DATA, 0x2000)
    before = g.walk_entries(DATA)
    assert len(before) == 4 and not any(e & (paging.A | paging.D) for e in before)
    assert g.load(DATA + 0x10).name == "BUDGET"
    after = g.walk_entries(DATA)
    assert all(e & paging.A for e in after), [hex(e) for e in after]
    assert not after[3] & paging.D
    # the other page under the same PDE is untouched
    assert not g.leaf(DATA + 0x1000)[1] & (paging.A | paging.D)
    assert g.store(DATA + 0x18, 3).name == "BUDGET"
    assert g.leaf(DATA)[1] & paging.D
    # a write as the first access sets both
    assert g.store(DATA + 0x1000, 3).name == "BUDGET"
    assert g.leaf(DATA + 0x1000)[1] & (paging.A | paging.D) == paging.A | paging.D
    # a faulting write sets no D bit
    g2 = Guest()
    g2.m.map(DATA, 0x1000, emu.PROT_R)
    assert g2.store(DATA, 1).name == "EXCEPTION"
    assert not g2.leaf(DATA)[1] & paging.D
    # the OS clears D (and flushes): the next write sets it again
    g.set_leaf(DATA, g.leaf(DATA)[1] & ~(paging.D | paging.A))
    g.v.invlpg(DATA)
    assert g.store(DATA + 0x20, 4).name == "BUDGET"
    assert g.leaf(DATA)[1] & (paging.A | paging.D) == paging.A | paging.D
    # 2 MiB leaf
    va2 = 0x7F0000400000
    g.m.map(va2, 2 << 20, page_size=2 << 20)
    assert g.load(va2 + 0x12345).name == "BUDGET"
    e = g.leaf(va2)[1]
    assert e & paging.A and not e & paging.D
    assert g.run(STORE_B, rbx=va2 + 0x1FFFFF, rcx=1).name == "BUDGET"
    assert g.leaf(va2)[1] & paging.D


# ---- TLB coherence ----

def _stale_setup(cpl: int):
    g = Guest(cpl=cpl)
    pa1 = g.m.map(DATA, 0x1000)
    pa2 = g.m.frames.alloc()
    g.ram[pa1:pa1 + 8] = np.frombuffer(struct.pack("<Q", 0x1111), np.uint8)
    g.ram[pa2:pa2 + 8] = np.frombuffer(struct.pack("<Q", 0x2222), np.uint8)
    assert g.load(DATA).name == "BUDGET" and g.v.rax == 0x1111
    _, e = g.leaf(DATA)
    g.set_leaf(DATA, (e & ~paging.ADDR_MASK) | pa2)          # behind the TLB's back
    assert g.load(DATA).name == "BUDGET" and g.v.rax == 0x1111   # stale, as on hardware
    return g


def test_tlb_stale_until_cr3_reload_api():
    g = _stale_setup(3)
    g.v.cr3 = g.v.cr3
    assert g.load(DATA).name == "BUDGET" and g.v.rax == 0x2222


def test_tlb_stale_until_invlpg_api():
    g = _stale_setup(3)
    g.v.invlpg(DATA + 0x1000)          # another page: no effect
    assert g.load(DATA).name == "BUDGET" and g.v.rax == 0x1111
    g.v.invlpg(DATA + 0x123)
    assert g.load(DATA).name == "BUDGET" and g.v.rax == 0x2222


def test_tlb_mov_cr3_instruction():
    g = _stale_setup(0)
    # mov rax, cr3 ; mov cr3, rax ; mov rax, [rbx]
    ex = g.run(bytes.fromhex("0f20d8 0f22d8") + LOAD, 3, rbx=DATA)
    assert ex.name == "BUDGET" and g.v.rax == 0x2222


def test_tlb_global_pages_survive_cr3_loads():
    """With CR4.PGE a global translation stays in the TLB across MOV CR3
    (SDM 4.10.4.1); INVLPG and toggling CR4.PGE drop it; without PGE the G
    bit means nothing."""
    MOV_CR3 = bytes.fromhex("0f20d8 0f22d8")                      # mov rax, cr3 ; mov cr3, rax
    for pge in (True, False):
        g = Guest(cpl=0)
        if pge:
            g.v.cr4 = g.v.cr4 | 0x80
        pa1 = g.m.map(DATA, 0x1000)
        pa2 = g.m.frames.alloc()
        g.ram[pa1:pa1 + 8] = np.frombuffer(struct.pack("<Q", 0x1111), np.uint8)
        g.ram[pa2:pa2 + 8] = np.frombuffer(struct.pack("<Q", 0x2222), np.uint8)
        _, e = g.leaf(DATA)
        g.set_leaf(DATA, e | paging.G)
        g.v.invlpg(DATA)
        assert g.load(DATA).name == "BUDGET" and g.v.rax == 0x1111
        g.set_leaf(DATA, (e & ~paging.ADDR_MASK) | paging.G | pa2)   # behind the TLB's back
        assert g.run(MOV_CR3 + LOAD, 3, rbx=DATA).name == "BUDGET"
        assert g.v.rax == (0x1111 if pge else 0x2222)
        if pge:
            # mov rax, cr4 ; btr rax, 7 ; mov cr4, rax ; bts rax, 7 ; mov cr4, rax: a PGE toggle flushes
            toggle = bytes.fromhex("0f20e0 480fbaf007 0f22e0 480fbae807 0f22e0")
            assert g.run(toggle + LOAD, 6, rbx=DATA).name == "BUDGET" and g.v.rax == 0x2222
            g.set_leaf(DATA, (e & ~paging.ADDR_MASK) | paging.G | pa1)
            assert g.run(MOV_CR3 + LOAD, 3, rbx=DATA).name == "BUDGET" and g.v.rax == 0x2222
            assert g.run(bytes.fromhex("0f013b") + LOAD, 2, rbx=DATA).name == "BUDGET"  # invlpg [rbx]
            assert g.v.rax == 0x1111


def test_tlb_invlpg_instruction():
    g = _stale_setup(0)
    ex = g.run(bytes.fromhex("0f017b40") + LOAD, 2, rbx=DATA)      # invlpg [rbx+0x40]: same page
    assert ex.name == "BUDGET" and g.v.rax == 0x2222
    # INVLPG of another (4 KiB-mapped) page leaves the stale entry
    g2 = _stale_setup(0)
    g2.m.map(DATA + 0x1000, 0x1000)
    ex = g2.run(bytes.fromhex("0f01bb00100000") + LOAD, 2, rbx=DATA)  # invlpg [rbx+0x1000]
    assert ex.name == "BUDGET" and g2.v.rax == 0x1111
    # the unprivileged attempt faults and flushes nothing
    g3 = _stale_setup(3)
    ex = g3.run(bytes.fromhex("0f013b"), rbx=DATA)
    assert ex.name == "EXCEPTION" and ex.vector == GP
    assert g3.load(DATA).name == "BUDGET" and g3.v.rax == 0x1111


def test_tlb_invlpg_large_page():
    """INVLPG of any address in a 2 MiB page drops every 4 KiB slice of it."""
    g = Guest(cpl=0)
    va = 0x7F0000200000
    g.pt.map(va, 0x200000, 2 << 20, page_size=2 << 20)
    g.ram[0x200000 + 0x5000] = 0x11
    g.ram[0x400000 + 0x5000] = 0x22
    assert g.load(va + 0x5000).name == "BUDGET" and g.v.rax & 0xFF == 0x11
    idx, e = g.leaf(va)
    g.q[idx] = np.uint64((e & ~paging.ADDR_MASK) | 0x400000)
    assert g.load(va + 0x5000).name == "BUDGET" and g.v.rax & 0xFF == 0x11
    ex = g.run(bytes.fromhex("0f013b") + LOAD, 1, rbx=va)          # invlpg [rbx] (page base)
    assert ex.name == "BUDGET"
    assert g.load(va + 0x5000).name == "BUDGET" and g.v.rax & 0xFF == 0x22
    # unmapping the large page: INVLPG then makes every slice fault
    assert g.load(va + 0x7000).name == "BUDGET"
    g.q[idx] = np.uint64(0)
    assert g.run(bytes.fromhex("0f013b"), 1, rbx=va + 0x100000).name == "BUDGET"
    assert_pf(g.load(va + 0x7000), g.v, va + 0x7000, 0)


def test_page_tables_api_shoots_down():
    """PageTables.protect/unmap go through Machine's shootdown."""
    g = Guest()
    g.m.map(DATA, 0x1000)
    assert g.store(DATA, 1).name == "BUDGET"
    g.pt.protect(DATA, 0x1000, write=False, execute=False)
    assert_pf(g.store(DATA, 2), g.v, DATA, P | W | U)
    g.pt.unmap(DATA, 0x1000)
    assert_pf(g.load(DATA), g.v, DATA, U)


# ---- self-modifying code ----

def test_smc_patch_code_already_run():
    """The guest rewrites the immediate of an instruction it already executed
    and jumps back: the second pass runs the new bytes."""
    g = Guest()
    code = bytes.fromhex(
        "b811111111"              # 0: mov eax, 0x11111111   <- patched
        "ffc1"                    # 5: inc ecx
        "83f902"                  # 7: cmp ecx, 2
        "740c"                    # 10: je 24
        "c705ebffffff22222222"    # 12: mov dword [rip-21] (= CODE+1), 0x22222222
        "ebe8"                    # 22: jmp 0
        "0f0b")                   # 24: ud2
    inv = g.v.counters["invalidations"]
    ex = g.run(code, 100, rcx=0)
    assert ex.name == "EXCEPTION" and ex.vector == 6 and g.v.rip == CODE + 24
    assert g.v.rax == 0x22222222 and g.v.rcx == 2
    assert g.m.read(CODE + 1, 4) == b"\x22" * 4
    assert g.v.counters["invalidations"] > inv


def test_smc_next_instruction_same_block():
    """A store rewrites the opcode of the very next instruction, already
    decoded into the running block: the new instruction executes."""
    g = Guest()
    code = bytes.fromhex(
        "c60500000000b9"          # 0: mov byte [rip+0] (= CODE+7), 0xB9
        "b801000000"              # 7: mov eax, 1  -> becomes mov ecx, 1
        "0f0b")                   # 12: ud2
    inv = g.v.counters["invalidations"]
    ex = g.run(code, 10, rax=0x77, rcx=0x88)
    assert ex.name == "EXCEPTION" and ex.vector == 6 and g.v.rip == CODE + 12
    assert g.v.rcx == 1 and g.v.rax == 0x77
    assert g.v.counters["invalidations"] > inv
    # the translation is fresh after the patch: running again gives the same result
    g.v.rip, g.v.rax, g.v.rcx = CODE + 7, 0x77, 0x88
    assert g.v.run(10).name == "EXCEPTION" and g.v.rcx == 1 and g.v.rax == 0x77


def test_smc_through_alias_mapping():
    """Code written through a second virtual mapping of its physical page."""
    g = Guest()
    alias = DATA
    g.pt.map(alias, g.code_pa, 0x1000)
    code = bytes.fromhex(
        "b801000000"              # 0: mov eax, 1
        "ffc1"                    # 5: inc ecx
        "83f902"                  # 7: cmp ecx, 2
        "7405"                    # 10: je 17
        "8933"                    # 12: mov [rbx], esi  (patches "b8 01 00 00" through the alias)
        "ebf0"                    # 14: jmp 0
        "90"                      # 16
        "0f0b")                   # 17: ud2
    ex = g.run(code, 100, rcx=0, rbx=alias, rsi=0x000005B8)   # b8 05 00 00 -> mov eax, 5
    assert ex.name == "EXCEPTION" and ex.vector == 6
    assert g.v.rax == 5


def test_smc_counters_with_loop():
    g = Guest()
    # a loop that keeps rewriting the immediate of the instruction it runs next
    code = bytes.fromhex(
        "880503000000"            # 0: mov [rip+3] (= CODE+9), al
        "ffc0"                    # 6: inc eax
        "b300"                    # 8: mov bl, imm8   <- imm rewritten each pass
        "ffc9"                    # 10: dec ecx
        "75f2"                    # 12: jne 0
        "0f0b")                   # 14: ud2
    inv = g.v.counters["invalidations"]
    ex = g.run(code, 1000, rax=0x10, rcx=5, rbx=0)
    assert ex.name == "EXCEPTION" and ex.vector == 6 and g.v.rip == CODE + 14
    assert g.v.rbx == 0x14 and g.v.rax == 0x15
    assert g.v.counters["invalidations"] - inv >= 5


# ---- accesses that cross a page ----

def test_cross_page_write_second_page_read_only():
    g = Guest()
    pa1 = g.m.map(DATA, 0x1000)
    g.m.map(DATA + 0x1000, 0x1000, emu.PROT_R)
    g.ram[pa1 + 0xFF8:pa1 + 0x1000] = 0xAB
    # make the first page writable in the TLB fast path first (D set)
    assert g.store(DATA + 0xFF0, 0).name == "BUDGET"
    for va, code in ((DATA + 0xFFC, STORE), (DATA + 0xFFD, STORE), (DATA + 0xFFF, STORE),
                     (DATA + 0xFFA, ADD_MEM)):
        ex = g.run(code, rbx=va, rcx=0x1122334455667788, rax=1)
        assert_pf(ex, g.v, DATA + 0x1000, P | W | U)
        assert g.ram[pa1 + 0xFF8:pa1 + 0x1000].tobytes() == b"\xAB" * 8
    # the same write with the second page not present
    g.m.map(DATA + 0x3000, 0x1000)
    ex = g.run(STORE, rbx=DATA + 0x3FFE, rcx=-1)
    assert_pf(ex, g.v, DATA + 0x4000, W | U)
    # a crossing read of a not-present second page
    ex = g.load(DATA + 0x3FF9)
    assert_pf(ex, g.v, DATA + 0x4000, U)
    # and a crossing write that succeeds lands on both pages
    pa2 = g.m.map(DATA + 0x4000, 0x1000)
    pa_3 = g.v.translate(DATA + 0x3000)
    assert g.store(DATA + 0x3FFC, 0x1122334455667788).name == "BUDGET"
    assert g.ram[pa_3 + 0xFFC:pa_3 + 0x1000].tobytes() == bytes.fromhex("88776655")
    assert g.ram[pa2:pa2 + 4].tobytes() == bytes.fromhex("44332211")
    assert g.load(DATA + 0x3FFC).name == "BUDGET" and g.v.rax == 0x1122334455667788


# ---- MMIO ----

def test_mmio_read_and_write():
    g = Guest()
    mmio_pa = RAM + 0x3000          # beyond RAM
    g.pt.map(DATA, mmio_pa, 0x1000)
    ex = g.run(bytes.fromhex("8b4308"), rbx=DATA)          # mov eax, [rbx+8]
    assert ex.name == "MMIO" and not ex.write and ex.address == mmio_pa + 8 and ex.size == 4
    assert ex.rip == CODE and g.v.rip == CODE
    g.v.complete_mmio_read(0xFEEDF00D)
    ex = g.v.run(1)
    assert ex.name == "BUDGET" and g.v.rax == 0xFEEDF00D and g.v.rip == CODE + 3
    # write
    ex = g.run(bytes.fromhex("66894b10"), rbx=DATA, rcx=0xBEEF)   # mov [rbx+16], cx
    assert ex.name == "MMIO" and ex.write and ex.address == mmio_pa + 16 and ex.size == 2
    assert ex.value == 0xBEEF
    g.v.complete_mmio_write()
    assert g.v.run(1).name == "BUDGET" and g.v.rip == CODE + 4
    # byte read through a 1 GiB page whose tail lies outside RAM
    va = 0x7F0040000000
    g.pt.map(va, 0, 1 << 30, page_size=1 << 30)
    ex = g.run(bytes.fromhex("8a03"), rbx=va + RAM + 0x10)            # mov al, [rbx]
    assert ex.name == "MMIO" and ex.address == RAM + 0x10 and ex.size == 1
    g.v.complete_mmio_read(0x5A)
    assert g.v.run(1).name == "BUDGET" and g.v.rax & 0xFF == 0x5A
    assert g.v.counters["exits"]["MMIO"] == 3


def test_tlb_invlpg_split_large_page():
    """A 2 MiB page replaced by a table of 4 KiB pages: INVLPG of any address
    the large page covered drops all its cached slices, as the large TLB entry
    would go on hardware."""
    g = Guest(cpl=0)
    va = 0x7F0000200000
    g.pt.map(va, 0x200000, 2 << 20, page_size=2 << 20)
    g.ram[0x200000 + 0x5000] = 0x11
    assert g.load(va + 0x5000).name == "BUDGET" and g.v.rax & 0xFF == 0x11
    idx, e = g.leaf(va)
    pt = g.m.frames.alloc()
    new = g.m.frames.alloc()
    g.ram[new] = 0x33
    for i in range(512):
        g.q[(pt >> 3) + i] = np.uint64((0x200000 + i * 0x1000) | paging.P | paging.RW)
    g.q[(pt >> 3) + 5] = np.uint64(new | paging.P | paging.RW)
    g.q[idx] = np.uint64(pt | paging.P | paging.RW | paging.US)
    assert g.load(va + 0x5000).name == "BUDGET" and g.v.rax & 0xFF == 0x11      # stale
    ex = g.run(bytes.fromhex("0f013b") + LOAD, 2, rbx=va + 0x100000)  # invlpg elsewhere in the 2 MiB
    assert ex.name == "BUDGET"
    assert g.load(va + 0x5000).name == "BUDGET" and g.v.rax & 0xFF == 0x33


# ---- SMAP: what clearing RFLAGS.AC takes out of the TLB ----

def test_smap_clearing_ac_revokes_user_pages_the_tlb_holds():
    """With CR4.SMAP a supervisor access to a user page needs RFLAGS.AC
    (SDM 4.6.1). Entries the TLB filled while AC was set must not outlive
    it: after CLAC, or a POPF that clears AC, every such page faults again,
    whether a few pages were touched or more than the TLB lists for CLAC
    (then it flushes). The kernel's own pages stay usable throughout."""
    STAC, CLAC = bytes.fromhex("0f01cb"), bytes.fromhex("0f01ca")
    POPF_CLEAR_AC = bytes.fromhex("9c 58 480fbaf012 50 9d")   # pushfq; pop rax; btr rax, 18; push rax; popfq
    # rbx = first page, rcx = pages: read and write back each one (add [rbx], 1), rbx += 4096
    TOUCH = bytes.fromhex("48 8303 01 4881c300100000 48ffc9 75f0")
    for npages, clear in ((3, CLAC), (40, CLAC), (3, POPF_CLEAR_AC), (40, POPF_CLEAR_AC)):
        g = Guest(cpl=0)
        g.v.set_cpuid_table([(lf, sub, a, (b | (1 << 20)) if lf == 7 and not sub else b, c, d)
                             for lf, sub, a, b, c, d in g.v.get_cpuid_table()])
        g.v.cr4 = g.v.cr4 | (1 << 21)                               # SMAP
        kdata = 0x7F0000800000
        g.m.map(kdata, 0x1000, user=False)
        g.m.map(DATA, npages * 0x1000)                              # user pages
        ex = g.run(STAC + TOUCH + clear + bytes.fromhex("f4"), 4 * npages + 10, rbx=DATA, rcx=npages,
                   rsp=kdata + 0x800)
        assert ex.name == "HLT", ex
        assert all(g.m.read(DATA + i * 0x1000, 1)[0] == 1 for i in range(npages))
        for i in (0, npages // 2, npages - 1):
            assert_pf(g.run(LOAD + bytes.fromhex("f4"), 2, rbx=DATA + i * 0x1000), g.v, DATA + i * 0x1000, P)
            assert_pf(g.run(STORE + bytes.fromhex("f4"), 2, rbx=DATA + i * 0x1000, rcx=5), g.v,
                      DATA + i * 0x1000, P | W)
        assert g.run(STORE + LOAD + bytes.fromhex("f4"), 3, rbx=kdata, rcx=9).name == "HLT" and g.v.rax == 9
        # STAC opens them again
        assert g.run(STAC + LOAD + bytes.fromhex("f4"), 3, rbx=DATA + 0x1000 * (npages - 1)).name == "HLT"
        assert g.v.rax == 1
