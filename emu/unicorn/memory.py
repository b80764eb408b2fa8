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

from emu.unicorn.unicorn_const import UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE

PAGE = 4096


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

    # ---- page tables ----
    def _apply(self, begin: int, end: int, perms: int, pa: int) -> None:
        if not perms & UC_PROT_READ:
            self.pt.unmap(begin, end - begin)      # not present: every access faults (PROT)
            return
        self.pt.map(begin, pa, end - begin, write=bool(perms & UC_PROT_WRITE),
                    execute=bool(perms & UC_PROT_EXEC), user=True)

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
            self.pt.map(begin, pa, size, write=True, execute=False, user=True)
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
            self.pt.unmap(r.begin, r.end - r.begin)
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
