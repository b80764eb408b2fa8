"""Process-context identifiers (SDM Vol. 3A 4.10.1, 4.10.4; Vol. 2A MOV CR,
INVPCID) from a kernel-style guest at CPL 0: two address spaces A and B map
the same linear addresses to different frames; the guest switches between
PCID 1 (A) and PCID 2 (B) with MOV to CR3, with and without bit 63, and
invalidates with INVPCID types 0-3.

Two kinds of assertion:
  * what the architecture requires: a PCID never sees another PCID's
    translations; MOV to CR3 without bit 63 and the INVPCID types drop what
    the SDM says they drop; the #GP/#UD cases;
  * what this TLB does beyond that (the reason PCIDs exist, so Linux's
    page-table isolation does not flush on every switch): a PCID's
    translations survive switches to other PCIDs and back with bit 63 set,
    and invalidations for one PCID or address leave the others. The page
    tables are edited behind the TLB's back, so a kept translation shows as
    the old frame's value, as on hardware.

Each step is a short snippet run with a budget, so the loads run in every
execution tier (the native tier's inline TLB probe ORs in the PCID slot)."""
from __future__ import annotations

import struct

import numpy as np

import emu
from emu import paging

CODE = 0x400000
X = 0x7F0000100000         # mapped in A and B to different frames (same TLB index in both)
X2 = 0x7F0000106000        # mapped in A only
X4 = 0x7F0000108000        # mapped in A only
Y = 0x7F0000105000         # mapped in B only
GLB = 0x7F0000200000       # a global page in both
DESC = 0x7F0000300000      # the INVPCID descriptor, in both
NOFLUSH = 1 << 63
PF, GP, UD = 14, 13, 6
CR4_PCIDE = 1 << 17
CR4_PGE = 1 << 7

LOAD = bytes.fromhex("488b03")                  # mov rax, [rbx]
INVPCID = bytes.fromhex("660f38820a")           # invpcid rcx, [rdx]
SET_PCIDE = bytes.fromhex("0f20e0 480fbae811 0f22e0")   # mov rax, cr4 ; bts rax, 17 ; mov cr4, rax
HLT = b"\xf4"


def mov_cr3(value: int) -> bytes:
    return b"\x48\xb8" + struct.pack("<Q", value) + bytes.fromhex("0f22d8")   # mov rax, imm64 ; mov cr3, rax


def with_features(v, pcid=True, invpcid=True):
    """The vCPU's CPUID table with CPUID.01H:ECX.PCID[17] and
    CPUID.(07H,0):EBX.INVPCID[10] set or clear."""
    tab = []
    for leaf, sub, a, b, c, d in v.get_cpuid_table():
        if leaf == 1:
            c = (c | (1 << 17)) if pcid else (c & ~(1 << 17))
        if leaf == 7 and (sub or 0) == 0:
            b = (b | (1 << 10)) if invpcid else (b & ~(1 << 10))
        tab.append((leaf, sub, a, b, c, d))
    v.set_cpuid_table(tab)


class Kernel:
    def __init__(self, pcid=True, invpcid=True):
        self.m = emu.Machine(64 << 20, cpl=0)
        self.v = self.m.vcpu
        with_features(self.v, pcid, invpcid)
        self.v.cr4 = self.v.cr4 | CR4_PGE
        self.a = self.m.page_tables
        self.b = paging.PageTables(self.m.mem, self.m.frames)
        self.q = self.m.ram.view(np.uint64)
        code = self.m.map(CODE, 0x1000)
        self.b.map(CODE, code, 0x1000)
        self.frame = {}
        for name, va, spaces in (("xa", X, "a"), ("xb", X, "b"), ("x2", X2, "a"), ("x4", X4, "a"),
                                 ("y", Y, "b"), ("desc", DESC, "ab")):
            pa = self.m.frames.alloc()
            for s in spaces:
                (self.a if s == "a" else self.b).map(va, pa, 0x1000)
            self.frame[name] = pa
        pa = self.m.frames.alloc()
        for t in (self.a, self.b):
            t.map(GLB, pa, 0x1000, global_=True)
        self.frame["glb"] = pa
        # the value a load reads from each frame: its name's hash, and a second frame per page
        # for the page-table edits behind the TLB's back
        for name, pa in list(self.frame.items()):
            self.put(pa, self.value(name))
            alt = self.m.frames.alloc()
            self.put(alt, self.value(name + "'"))
            self.frame[name + "'"] = alt
        assert self.run(SET_PCIDE, 3).name == "HLT" and self.v.cr4 & CR4_PCIDE

    @staticmethod
    def value(name: str) -> int:
        return 0x1000 + sum(ord(ch) << (8 * i) for i, ch in enumerate(name))

    def put(self, pa: int, value: int) -> None:
        self.m.ram[pa:pa + 8] = np.frombuffer(struct.pack("<Q", value), np.uint8)

    def run(self, code: bytes, budget: int, **regs):
        """Run code followed by HLT: the snippet is one block ending in an
        exit, so the native tier compiles it (a budget cut would not)."""
        self.m.write(CODE, code + HLT)
        for k, val in regs.items():
            setattr(self.v, k, val & (2**64 - 1))
        self.v.rip = CODE
        return self.v.run(budget + 1)

    def switch(self, space: str, pcid: int, keep: bool = False) -> None:
        root = (self.a if space == "a" else self.b).root
        assert self.run(mov_cr3(root | pcid | (NOFLUSH if keep else 0)), 2).name == "HLT"
        assert self.v.cr3 == root | pcid            # bit 63 is not stored

    def load(self, va: int):
        """The value at va, or the exception."""
        ex = self.run(LOAD, 1, rbx=va)
        if ex.name == "EXCEPTION":
            return ex
        assert ex.name == "HLT", ex
        return self.v.rax

    def retarget(self, space: str, va: int, frame: str) -> None:
        """Point va's leaf at another frame in the page tables only."""
        t = self.a if space == "a" else self.b
        idx, e, _ = t.lookup(va)
        self.q[idx] = np.uint64((e & ~paging.ADDR_MASK) | self.frame[frame])

    def invpcid(self, typ: int, pcid: int = 0, va: int = 0, hi_bits: int = 0):
        self.put(self.frame["desc"], pcid | hi_bits)
        self.put(self.frame["desc"] + 8, va)
        return self.run(INVPCID, 1, rcx=typ, rdx=DESC)


def is_pf(ex, va) -> bool:
    return not isinstance(ex, int) and ex.name == "EXCEPTION" and ex.vector == PF and ex.cr2 == va


def test_each_pcid_sees_its_own_mappings(tier):
    k = Kernel()
    v = k.value
    k.switch("a", 1)
    assert k.load(X) == v("xa") and k.load(X2) == v("x2")
    k.switch("b", 2)
    assert k.load(X) == v("xb")                   # not PCID 1's cached translation
    assert is_pf(k.load(X2), X2)                  # PCID 1 has X2 cached; B does not map it
    assert k.load(Y) == v("y")
    for _ in range(3):                            # back and forth, keeping the TLB
        k.switch("a", 1, keep=True)
        assert k.load(X) == v("xa") and is_pf(k.load(Y), Y)
        k.switch("b", 2, keep=True)
        assert k.load(X) == v("xb") and is_pf(k.load(X2), X2)
    # the same address space under a third PCID starts empty and walks A
    k.switch("a", 3, keep=True)
    assert k.load(X) == v("xa") and k.load(X2) == v("x2")
    if tier == "jit":
        assert k.v.counters["jit"]["instructions_native"] > 0     # the loads ran in compiled code


def test_mov_cr3_keeps_or_flushes_the_pcid():
    k = Kernel()
    v = k.value
    k.switch("a", 1)
    assert k.load(X2) == v("x2")
    kept = k.v.counters["pcid_kept"]
    k.retarget("a", X2, "x2'")
    k.switch("b", 2, keep=True)
    assert k.load(Y) == v("y")
    k.switch("a", 1, keep=True)
    assert k.load(X2) == v("x2")                  # this TLB kept PCID 1's translation (bit 63)
    assert k.v.counters["pcid_kept"] > kept
    k.switch("a", 1)                              # bit 63 clear: PCID 1's translations go
    assert k.load(X2) == v("x2'")
    # bit 63 with the PCID already current keeps too; without it flushes
    k.retarget("a", X2, "x2")
    k.switch("a", 1, keep=True)
    assert k.load(X2) == v("x2'")
    k.switch("a", 1)
    assert k.load(X2) == v("x2")


def test_global_translations_survive_pcid_switches_until_invalidated():
    k = Kernel()
    v = k.value
    k.switch("a", 1)
    assert k.load(GLB) == v("glb")
    k.retarget("a", GLB, "glb'")
    k.retarget("b", GLB, "glb'")
    k.switch("a", 1)                              # MOV to CR3 keeps global translations
    assert k.load(GLB) == v("glb")
    assert k.invpcid(1, pcid=1).name == "HLT"  # single context: not the global ones
    assert k.load(GLB) == v("glb")
    assert k.invpcid(3).name == "HLT"          # all contexts except global
    assert k.load(GLB) == v("glb")
    assert k.invpcid(2).name == "HLT"          # all contexts, global included
    assert k.load(GLB) == v("glb'")


def test_invpcid_individual_address():
    k = Kernel()
    v = k.value
    k.switch("a", 1)
    assert k.load(X2) == v("x2") and k.load(X4) == v("x4")
    k.retarget("a", X2, "x2'")
    k.retarget("a", X4, "x4'")
    k.switch("b", 2, keep=True)
    assert k.load(Y) == v("y")
    k.retarget("b", Y, "y'")
    # type 0 for PCID 1 at X2 (any byte of the page), issued under PCID 2
    assert k.invpcid(0, pcid=1, va=X2 + 0x123).name == "HLT"
    assert k.load(Y) == v("y")                    # PCID 2's own translation stays (this TLB)
    k.switch("a", 1, keep=True)
    assert k.load(X2) == v("x2'")                 # required: invalidated
    assert k.load(X4) == v("x4")                  # another address of PCID 1 stays (this TLB)
    # type 0 for a PCID that holds nothing, and for the current PCID
    assert k.invpcid(0, pcid=7, va=X4).name == "HLT"
    assert k.load(X4) == v("x4")
    assert k.invpcid(0, pcid=1, va=X4).name == "HLT"
    assert k.load(X4) == v("x4'")


def test_invpcid_single_context_and_all_contexts():
    k = Kernel()
    v = k.value
    k.switch("a", 1)
    assert k.load(X2) == v("x2") and k.load(X4) == v("x4")
    k.switch("b", 2, keep=True)
    assert k.load(Y) == v("y")
    k.retarget("a", X2, "x2'")
    k.retarget("b", Y, "y'")
    assert k.invpcid(1, pcid=1).name == "HLT"  # PCID 1's translations, from under PCID 2
    assert k.load(Y) == v("y")                    # PCID 2's stay (this TLB)
    k.switch("a", 1, keep=True)
    assert k.load(X2) == v("x2'")                 # required
    k.retarget("a", X4, "x4'")
    assert k.invpcid(3).name == "HLT"          # every PCID's non-global translations
    assert k.load(X4) == v("x4'")
    k.switch("b", 2, keep=True)
    assert k.load(Y) == v("y'")


def test_invpcid_and_pcide_faults():
    k = Kernel()
    k.switch("a", 1)
    for kw in ({"typ": 4}, {"typ": 0, "pcid": 1, "va": 1 << 47},            # type > 3, non-canonical
               {"typ": 1, "pcid": 1, "hi_bits": 1 << 12}, {"typ": 2, "hi_bits": 1 << 40}):  # reserved bits
        ex = k.invpcid(**kw)
        assert ex.name == "EXCEPTION" and ex.vector == GP and ex.error_code == 0, kw
    # the descriptor must be readable: #PF on it
    ex = k.run(INVPCID, 1, rcx=1, rdx=Y)
    assert is_pf(ex, Y)
    # at CPL 3: #GP
    k.v.cpl = 3
    ex = k.run(INVPCID, 1, rcx=2, rdx=DESC)
    assert ex.name == "EXCEPTION" and ex.vector == GP
    # without CPUID.07H:EBX.INVPCID: #UD
    u = Kernel(invpcid=False)
    ex = u.invpcid(2)
    assert ex.name == "EXCEPTION" and ex.vector == UD
    # CR4.PCIDE: #GP without CPUID.01H:ECX.PCID, and when CR3[11:0] is not 0
    for kern, low in ((None, 0), ("pcid", 0x5)):
        m = emu.Machine(16 << 20, cpl=0)
        with_features(m.vcpu, pcid=kern is not None)
        m.map(CODE, 0x1000)
        m.vcpu.cr3 = m.vcpu.cr3 | low
        m.write(CODE, SET_PCIDE + HLT)
        m.vcpu.rip = CODE
        ex = m.vcpu.run(4)
        assert ex.name == "EXCEPTION" and ex.vector == GP and not m.vcpu.cr4 & CR4_PCIDE
    # with CR4.PCIDE clear, types 0 and 1 need PCID 0; MOV to CR3 keeps bit 63 reserved
    m = emu.Machine(16 << 20, cpl=0)
    with_features(m.vcpu)
    m.map(CODE, 0x1000)
    dpa = m.map(DESC, 0x1000)
    m.ram[dpa:dpa + 16] = np.frombuffer(struct.pack("<QQ", 3, 0), np.uint8)
    m.write(CODE, INVPCID + HLT)
    m.vcpu.rip, m.vcpu.rcx, m.vcpu.rdx = CODE, 1, DESC
    ex = m.vcpu.run(2)
    assert ex.name == "EXCEPTION" and ex.vector == GP
    m.write(CODE, mov_cr3(m.vcpu.cr3 | NOFLUSH) + HLT)
    m.vcpu.rip = CODE
    ex = m.vcpu.run(3)
    assert ex.name == "EXCEPTION" and ex.vector == GP


def test_many_pcids_share_the_slots():
    """More PCIDs than the TLB has slots: each still sees only its own
    mappings (a PCID that lost its slot walks again)."""
    k = Kernel()
    v = k.value
    for rnd in range(2):
        for pcid in range(1, 41):
            space = "a" if pcid % 2 else "b"
            k.switch(space, pcid, keep=rnd > 0)
            assert k.load(X) == v("xa" if space == "a" else "xb"), pcid
    assert k.v.counters["pcid_evictions"] > 0
