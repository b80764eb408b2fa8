"""x86-64 4-level page tables built in guest physical memory (SDM Vol. 3A,
4.5). The user-mode personality and the tests use this to give a guest an
address space; the core's MMU walks exactly these tables."""
from __future__ import annotations

P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 16, 32, 64, 128, 256
NX = 1 << 63
ADDR_MASK = 0x000FFFFFFFFFF000
PAGE_SIZES = (4096, 2 << 20, 1 << 30)
_ZERO_PAGE = bytes(4096)


class OutOfGuestMemory(MemoryError):
    """No free physical frame is left in guest RAM."""


class FrameAllocator:
    """Hands out 4 KiB physical frames of guest RAM: a bump pointer plus a
    free list. Frames come back zeroed. mark(pa, size), when given, hears of
    every write this module makes to RAM (PhysMachine.mark_dirty, for
    snapshots). ram: guest RAM as bytes (a memoryview of format 'B', or a
    numpy uint8 array)."""

    def __init__(self, ram, start: int = 0x1000, end: int | None = None, mark=None):
        self.ram = ram
        self.mark = mark
        self.next = start
        self.end = len(ram) if end is None else end
        self.free_frames: list[int] = []

    def alloc(self, count: int = 1, align: int = 4096) -> int:
        """Physical address of `count` contiguous zeroed frames."""
        if count == 1 and align == 4096 and self.free_frames:
            pa = self.free_frames.pop()
            self.ram[pa:pa + 4096] = _ZERO_PAGE
            if self.mark:
                self.mark(pa, 4096)
            return pa
        # never-used frames are still zero from the anonymous mapping: not
        # touching them keeps guest RAM lazily committed
        pa = (self.next + align - 1) & ~(align - 1)
        if pa + count * 4096 > self.end:
            raise OutOfGuestMemory("guest RAM exhausted")
        self.next = pa + count * 4096
        return pa

    def free(self, pa: int) -> None:
        self.free_frames.append(pa)

    def take(self, count: int) -> tuple[list[int], list[bool]]:
        """Up to `count` frames as they are, for a consumer that clears them
        itself (the core's demand paging): the frames, and for each whether
        it is known to read as zeros (never used yet)."""
        n = min(count, len(self.free_frames))
        out = self.free_frames[len(self.free_frames) - n:]
        del self.free_frames[len(self.free_frames) - n:]
        zero = [False] * n
        fresh = min(count - n, (self.end - self.next) // 4096)
        if fresh > 0:
            out += range(self.next, self.next + fresh * 4096, 4096)
            zero += [True] * fresh
            self.next += fresh * 4096
        return out, zero


class PageTables:
    """One address space: a PML4 and the tables under it."""

    def __init__(self, ram, frames: FrameAllocator, on_change=None):
        self.ram = ram
        # the entries as 64-bit words (a cast of the byte view: no numpy needed)
        self.q = memoryview(ram).cast("B").cast("Q")
        self.frames = frames
        self.root = frames.alloc()
        self.on_change = on_change      # called with (va, size) after edits: TLB shootdown

    def _set(self, idx: int, e: int) -> None:
        self.q[idx] = e
        if self.frames.mark:
            self.frames.mark(idx << 3, 8)

    def _entry_index(self, table_pa: int, va: int, level: int) -> int:
        return (table_pa >> 3) + ((va >> (12 + 9 * (level - 1))) & 511)

    def _walk_create(self, va: int, target_level: int) -> int:
        """Index (in 8-byte units) of the entry for va at target_level
        (1 = PTE, 2 = PDE, 3 = PDPTE), creating tables on the way."""
        table = self.root
        for level in (4, 3, 2):
            idx = self._entry_index(table, va, level)
            if level == target_level:
                return idx
            e = int(self.q[idx])
            if not e & P:
                new = self.frames.alloc()
                # upper levels are permissive; the leaf decides
                self._set(idx, new | P | RW | US)
                table = new
            elif e & PS:
                raise ValueError("va %#x is already mapped by a large page" % va)
            else:
                table = e & ADDR_MASK
        return self._entry_index(table, va, 1)

    def map(self, va: int, pa: int, size: int, *, write: bool = True, execute: bool = True,
            user: bool = True, page_size: int = 4096, global_: bool = False) -> None:
        """Map [va, va+size) to physical [pa, pa+size) with the given rights."""
        if page_size not in PAGE_SIZES:
            raise ValueError("page size must be 4 KiB, 2 MiB or 1 GiB")
        if va % page_size or pa % page_size or size % page_size:
            raise ValueError("va, pa and size must be aligned to the page size")
        level = PAGE_SIZES.index(page_size) + 1
        flags = P | (RW if write else 0) | (US if user else 0) | (0 if execute else NX) | (G if global_ else 0)
        if level > 1:
            flags |= PS
        for off in range(0, size, page_size):
            idx = self._walk_create(va + off, level)
            self._set(idx, (pa + off) | flags)
        if self.on_change:
            self.on_change(va, size)

    def lookup(self, va: int) -> tuple[int, int, int] | None:
        """(entry index, entry value, page size) of the leaf mapping va, or None."""
        table = self.root
        for level in (4, 3, 2, 1):
            idx = self._entry_index(table, va, level)
            e = int(self.q[idx])
            if not e & P:
                return None
            if level == 1 or (e & PS and level in (2, 3)):
                return idx, e, 4096 << (9 * (level - 1))
            table = e & ADDR_MASK
        return None

    def unmap(self, va: int, size: int) -> list[int]:
        """Remove 4 KiB mappings in [va, va+size); returns the physical pages
        that were mapped there."""
        freed = []
        for off in range(0, size, 4096):
            hit = self.lookup(va + off)
            if hit is None:
                continue
            idx, e, psize = hit
            if psize != 4096:
                raise ValueError("cannot unmap part of a large page at %#x" % (va + off))
            freed.append(e & ADDR_MASK)
            self._set(idx, 0)
        if self.on_change:
            self.on_change(va, size)
        return freed

    def protect(self, va: int, size: int, *, write: bool, execute: bool, user: bool = True) -> None:
        for off in range(0, size, 4096):
            hit = self.lookup(va + off)
            if hit is None:
                continue
            idx, e, psize = hit
            e &= ~(RW | US | NX)
            e |= (RW if write else 0) | (US if user else 0) | (0 if execute else NX)
            self._set(idx, e)
        if self.on_change:
            self.on_change(va, size)
