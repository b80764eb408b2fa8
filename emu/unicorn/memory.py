"""Unicorn's flat memory on emu's MMU.

Unicorn has no paging by default: a guest address is where mem_map put the
bytes. emu's core always translates through page tables in long mode, so a
Uc keeps its own page tables (not visible to the guest, whose CR3 is a
shadow) that map each region 1:1 by address onto frames of the machine's
RAM. A region's rights become the page's: no READ makes the page
not present (x86 cannot express write- or execute-only pages), no WRITE
clears R/W, no EXEC sets NX (SDM Vol. 3 4.6). A fault is then told apart
as *unmapped* or *protection* by this table, not by the page tables.

Regions are kept as Unicorn reports them (mem_regions): each mem_map is one
region until unmap or protect cuts it.
"""
from __future__ import annotations

import bisect
from array import array

from emu.unicorn.unicorn_const import UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE

PAGE = 4096
P, RW, US, NX = 1, 2, 4, 1 << 63          # page-table entry bits (SDM Vol. 3 4.5)


class Region:
    __slots__ = ("begin", "end", "perms", "pa", "mmio")

    def __init__(self, begin, end, perms, pa, mmio=None):
        self.begin, self.end, self.perms, self.pa, self.mmio = begin, end, perms, pa, mmio

    def __repr__(self):
        return "<Region %#x-%#x perms=%d pa=%#x>" % (self.begin, self.end, self.perms, self.pa)


class FlatMemory:
    """The region table and the page tables behind it."""

    def __init__(self, machine, addr_limit: int):
        self.machine = machine
        self.pt = machine.page_tables
        self.frames = machine.frames
        self.mem = machine.mem
        self.phys = machine.phys
        self.limit = addr_limit            # 1 << 32 in 32-bit mode, else the canonical lower half + upper
        self.regions: list[Region] = []
        self._starts: list[int] = []
        self._mmio_next = None

    # ---- lookup ----
    def find(self, addr: int) -> Region | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            r = self.regions[i]
            if addr < r.end:
                return r
        return None

    def overlaps(self, begin: int, end: int) -> bool:
        i = bisect.bisect_left(self._starts, end) - 1
        return i >= 0 and self.regions[i].end > begin

    def covered(self, begin: int, end: int) -> bool:
        """Is every byte of [begin, end) in some region?"""
        a = begin
        while a < end:
            r = self.find(a)
            if r is None:
                return False
            a = r.end
        return True

    def _insert(self, r: Region) -> None:
        i = bisect.bisect_left(self._starts, r.begin)
        self.regions.insert(i, r)
        self._starts.insert(i, r.begin)

    def _remove(self, r: Region) -> None:
        i = self.regions.index(r)
        del self.regions[i]
        del self._starts[i]

    def reachable(self, addr: int) -> bool:
        """Can the CPU address it? Unicorn accepts regions anywhere in 64
        bits, but x86-64 linear addresses are canonical (48 bits, SDM Vol. 1
        3.3.7.1) and 32-bit code reaches 4 GiB: such regions hold bytes for
        mem_read/mem_write, and the guest faults on them."""
        if addr >= self.limit:
            return False
        return addr < (1 << 47) or addr >= 0xFFFF800000000000

    # ---- page tables ----
    def _apply(self, begin: int, end: int, perms: int, pa: int) -> None:
        if not (self.reachable(begin) and self.reachable(end - 1)):
            return
        if not perms & UC_PROT_READ:
            flags = 0                               # not present: every access faults (PROT)
        else:
            flags = P | US | (RW if perms & UC_PROT_WRITE else 0) | (0 if perms & UC_PROT_EXEC else NX)
        self._set_ptes(begin, end, pa, flags)

    def _set_ptes(self, begin: int, end: int, pa: int, flags: int) -> None:
        """Write the 4 KiB entries of [begin, end) (to pa.., or not present
        when flags is 0), a page table (512 entries) at a time."""
        pt, q = self.pt, self.pt.q
        va = begin
        while va < end:
            n = min((end - va) // PAGE, 512 - ((va >> 12) & 511))
            idx = pt._walk_create(va, 1)
            if flags:
                q[idx:idx + n] = array("Q", range(pa | flags, (pa + n * PAGE) | flags, PAGE))
            else:
                q[idx:idx + n] = array("Q", bytes(8 * n))
            if self.frames.mark:
                self.frames.mark(idx << 3, 8 * n)
            va += n * PAGE
            pa += n * PAGE
        if pt.on_change:
            pt.on_change(begin, end - begin)

    # ---- Unicorn's operations ----
    def map(self, begin: int, size: int, perms: int, mmio=None) -> Region:
        n = size // PAGE
        if mmio is not None:
            # physical addresses past RAM are MMIO: accesses exit to the VMM
            if self._mmio_next is None:
                self._mmio_next = (self.phys.ram_size + (1 << 30)) & ~((1 << 30) - 1)
            pa = self._mmio_next
            self._mmio_next += size
            r = Region(begin, begin + size, perms, pa, mmio)
            if self.reachable(begin) and self.reachable(begin + size - 1):
                self._set_ptes(begin, begin + size, pa, P | RW | US | NX)
        else:
            pa = self.frames.alloc(n)
            r = Region(begin, begin + size, perms, pa)
            self._apply(begin, begin + size, perms, pa)
        self._insert(r)
        return r

    def _split(self, addr: int) -> None:
        """Make addr a region boundary (if inside a region)."""
        r = self.find(addr)
        if r is None or r.begin == addr:
            return
        tail = Region(addr, r.end, r.perms, r.pa + (addr - r.begin), r.mmio)
        r.end = addr
        self._insert(tail)

    def _pieces(self, begin: int, end: int):
        self._split(begin)
        self._split(end)
        i = bisect.bisect_left(self._starts, begin)
        out = []
        while i < len(self.regions) and self.regions[i].begin < end:
            out.append(self.regions[i])
            i += 1
        return out

    def unmap(self, begin: int, size: int) -> None:
        end = begin + size
        for r in self._pieces(begin, end):
            self._remove(r)
            if self.reachable(r.begin) and self.reachable(r.end - 1):
                self._set_ptes(r.begin, r.end, 0, 0)
            if r.mmio is None:
                # drop translated code on the frames before they are reused
                self.phys.invalidate(r.pa, r.end - r.begin)
                for off in range(0, r.end - r.begin, PAGE):
                    self.frames.free(r.pa + off)

    def protect(self, begin: int, size: int, perms: int) -> None:
        for r in self._pieces(begin, begin + size):
            r.perms = perms
            if r.mmio is None:
                self._apply(r.begin, r.end, perms, r.pa)

    # ---- bytes ----
    def chunks(self, addr: int, n: int):
        """(region, physical address, length) covering [addr, addr+n); None
        for the first address not mapped."""
        while n > 0:
            r = self.find(addr)
            if r is None:
                yield None, addr, 0
                return
            k = min(n, r.end - addr)
            yield r, r.pa + (addr - r.begin), k
            addr += k
            n -= k
