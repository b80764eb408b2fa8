"""The guest's address space, Linux style: a list of VMAs (mmap, munmap,
mprotect, brk) over real x86-64 page tables. Pages are populated on demand,
as a kernel's fault handler would: the core resolves faults on private
memory itself (it is told the ranges, lent frames, and logs what it
populated: core/demand.pxi); the rest comes here as #PF exits."""
from __future__ import annotations

import bisect

from emu.linux import errno as E
from emu.linux.record import record
from emu.paging import OutOfGuestMemory

PAGE = 4096
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_GROWSDOWN, MAP_NORESERVE, MAP_POPULATE, MAP_FIXED_NOREPLACE = 0x100, 0x4000, 0x8000, 0x100000
TASK_SIZE = 0x7FFFFFFFF000
MMAP_TOP = 0x7FFFF7FFF000
MMAP_TOP32 = 0xF7FFF000          # an i386 process: mmap below the stack, under 4 GiB
STACK_TOP32 = 0xFFFFE000         # TASK_SIZE of an i386 task on x86-64
STACK_TOP = 0x7FFFFFFFF000
STACK_SIZE = 8 << 20


def page_down(x: int) -> int:
    return x & ~(PAGE - 1)


def page_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


@record
class Vma:
    start: int
    end: int
    prot: int
    flags: int = MAP_PRIVATE | MAP_ANONYMOUS
    data: bytes | None = None     # file contents backing the mapping, from data_off
    data_off: int = 0             # offset in data of the byte mapped at start
    name: str = ""
    host_fd: int = -1             # MAP_SHARED file mapping: written back to this file
    file_off: int = 0             # file offset of the byte mapped at start

    def split(self, at: int) -> "Vma":
        """Cut at `at`; self keeps the low part, the high part is returned."""
        hi = Vma(at, self.end, self.prot, self.flags, self.data, self.data_off + (at - self.start), self.name,
                 self.host_fd, self.file_off + (at - self.start))
        self.end = at
        return hi


class AddressSpace:
    def __init__(self, machine):
        self.machine = machine
        self.pt = machine.page_tables
        self.vmas: list[Vma] = []
        self._pages: dict[int, int] = {}     # populated virtual page -> physical frame (see pages)
        self._dz_dirty = True                # the core's demand ranges need rebuilding (dz_sync)
        self.faults = 0                      # page faults resolved here (the core counts its own)
        self.shared_frames: set[int] = set()  # frames in host memory shared across fork
        # MAP_SHARED file mappings: each page as last read from or written to the
        # file, so write-back sends only what this process changed (a forked
        # process's untouched copy must not undo another's writes)
        self.clean: dict[int, bytes] = {}
        # MAP_SHARED mappings of files open for writing: one guest frame for each
        # page of a file, whatever views map it, backed by a shared host mapping
        # of the file page (core map_file, shared=True), so stores, read(2),
        # write(2), other views and other processes agree at once, and a write
        # through one view invalidates the code translated from another (they
        # are one physical frame). (st_dev, st_ino, offset) -> [frame, users]
        self.file_frames: dict[tuple, list] = {}
        self.frame_keys: dict[int, tuple] = {}
        self.brk_start = 0
        self.brk = 0

    @property
    def pages(self) -> dict[int, int]:
        """Populated virtual page -> physical frame, with the pages the core
        populated by itself since last asked."""
        log = self.machine.phys.take_demand_log()
        if log:
            it = iter(memoryview(log).cast("Q"))
            self._pages.update(zip(it, it))
        return self._pages

    # ---- the core's demand paging (core/demand.pxi) ----
    def _dz_eligible(self, v: Vma) -> bool:
        # private memory only: shared memory is backed when mapped, and file
        # mappings shared with the host stay with the personality
        # (file bytes it copies from a buffer, or, for a large mapping read
        # lazily (sys_mem.FileBytes), reads from the file at the first touch)
        return not v.flags & MAP_SHARED and v.host_fd < 0 and (
            v.data is None or isinstance(v.data, (bytes, bytearray, memoryview)) or hasattr(v.data, "demand_source"))

    def dz_sync(self) -> None:
        """Tell the core the private ranges it may populate by itself (after
        any change to the VMAs) and keep its frame pool topped up."""
        self._dz_dirty = False
        phys = self.machine.phys
        eligible = [v for v in self.vmas if self._dz_eligible(v)]
        ranges = [(v.start, v.end, v.prot, v.data.demand_source() if hasattr(v.data, "demand_source") else v.data,
                   v.data_off) for v in eligible]
        # a file read on demand stays open while the core may read it
        # (until the next sync, even if its VMA goes in between)
        self._dz_files = [v.data for v in eligible if hasattr(v.data, "demand_source")]
        phys.set_demand_ranges(self.pt.root, ranges)
        self.dz_refill()

    def dz_refill(self) -> None:
        phys = self.machine.phys
        want = phys.demand_pool_room()
        if want:
            frames, zero = self.machine.frames.take(want)
            if frames:
                phys.give_frames(frames, zero)

    # ---- VMA bookkeeping ----
    def find(self, addr: int) -> Vma | None:
        i = bisect.bisect_right([v.start for v in self.vmas], addr) - 1
        if i >= 0 and self.vmas[i].start <= addr < self.vmas[i].end:
            return self.vmas[i]
        return None

    def _insert(self, vma: Vma) -> None:
        self._dz_dirty = True
        starts = [v.start for v in self.vmas]
        self.vmas.insert(bisect.bisect_left(starts, vma.start), vma)

    def _carve(self, start: int, end: int) -> list[Vma]:
        """Split VMAs at start and end; return those inside [start, end)."""
        out = []
        for v in list(self.vmas):
            if v.end <= start or v.start >= end:
                continue
            if v.start < start:
                hi = v.split(start)
                self._insert(hi)
                v = hi
            if v.end > end:
                self._insert(v.split(end))
            out.append(v)
        return out

    def is_free(self, start: int, end: int) -> bool:
        return all(v.end <= start or v.start >= end for v in self.vmas)

    def find_free(self, length: int, top: int | None = None) -> int | None:
        """Highest free gap of `length` below top (Linux allocates top-down)."""
        end = top if top is not None else getattr(self, "mmap_top", MMAP_TOP)
        for v in sorted(self.vmas, key=lambda v: -v.start):
            if v.start >= end:
                continue
            if v.end < end and end - v.end >= length:
                return end - length
            end = v.start
        return end - length if end - length >= 0x10000 else None

    # ---- pages ----
    def _pte_rights(self, prot: int) -> dict:
        return dict(write=bool(prot & PROT_WRITE), execute=bool(prot & PROT_EXEC), user=True)

    @staticmethod
    def _shared_anon(vma: Vma) -> bool:
        return bool(vma.flags & MAP_SHARED) and vma.host_fd < 0 and vma.data is None

    def _file_frame(self, page: int, vma: Vma):
        """The frame of a page of a shared file mapping (made on first use),
        or None when the page lies past the end of the file (touching it
        through a host mapping would be a host SIGBUS): such a page is a copy."""
        import os
        off = vma.file_off + (page - vma.start)
        info = os.fstat(vma.host_fd)
        if off >= info.st_size:
            return None
        key = (info.st_dev, info.st_ino, off)
        hit = self.file_frames.get(key)
        if hit is not None:
            hit[1] += 1
            return hit[0]
        pa = self.machine.frames.alloc()
        self.machine.phys.map_file(pa, PAGE, vma.host_fd, off, True)
        self.file_frames[key] = [pa, 1]
        self.frame_keys[pa] = key
        return pa

    def populate(self, page: int, vma: Vma) -> None:
        if vma.host_fd >= 0:
            pa = self._file_frame(page, vma)
            if pa is not None:
                self._pages[page] = pa
                if vma.prot:
                    self.pt.map(page, pa, PAGE, **self._pte_rights(vma.prot))
                return
        pa = self.machine.frames.alloc()
        if self._shared_anon(vma):
            # host memory a host fork() shares: what fork gives the guest's children
            self.machine.phys.set_shared(pa, PAGE, True)
            self.shared_frames.add(pa)
        if vma.data is not None:
            off = vma.data_off + (page - vma.start)
            chunk = vma.data[off:off + PAGE] if off < len(vma.data) else b""
            if chunk:
                self.machine.mem[pa:pa + len(chunk)] = chunk
                self.machine.phys.mark_dirty(pa, len(chunk))
        self._pages[page] = pa
        if vma.host_fd >= 0:
            self.clean[page] = self.machine.mem[pa:pa + PAGE].tobytes()
        if vma.prot:
            self.pt.map(page, pa, PAGE, **self._pte_rights(vma.prot))

    def _unpopulate(self, start: int, end: int) -> None:
        pages = [p for p in self.pages if start <= p < end] if len(self.pages) < (end - start) // PAGE \
            else [p for p in range(start, end, PAGE) if p in self.pages]
        for p in pages:
            self.clean.pop(p, None)
            pa = self.pages.pop(p)
            self.pt.unmap(p, PAGE)
            key = self.frame_keys.get(pa)
            if key is not None:                 # a file page: freed with its last view
                hit = self.file_frames[key]
                hit[1] -= 1
                if hit[1] > 0:
                    continue
                del self.file_frames[key], self.frame_keys[pa]
                self.machine.phys.invalidate(pa, PAGE)
                self.machine.phys.set_shared(pa, PAGE, False)
                self.machine.frames.free(pa)
                continue
            self.machine.phys.invalidate(pa, PAGE)
            if pa in self.shared_frames:
                self.shared_frames.discard(pa)
                self.machine.phys.set_shared(pa, PAGE, False)
            self.machine.frames.free(pa)

    def handle_fault(self, addr: int, error_code: int) -> bool:
        """A #PF from the guest: populate the page if a VMA allows the access.
        False means the guest gets SIGSEGV."""
        vma = self.find(addr)
        if vma is None:
            return False
        write, fetch = error_code & 2, error_code & 16
        if (write and not vma.prot & PROT_WRITE) or (fetch and not vma.prot & PROT_EXEC) \
                or not vma.prot & PROT_READ and not vma.prot & (PROT_WRITE | PROT_EXEC):
            return False
        page = page_down(addr)
        if page in self.pages:
            return False          # present and still faulting: a protection fault
        try:
            self.populate(page, vma)
            self.faults += 1
            self.dz_refill()      # (the core sends faults here when its pool ran dry)
        except OutOfGuestMemory:
            return False
        return True

    # ---- the system calls ----
    def map_fixed_image(self, start: int, size: int, prot: int, content, name: str = "") -> None:
        """Map an ELF segment (content: its file bytes, bytes or a memoryview,
        not copied): replaces what was there; pages are populated when first
        touched, as Linux maps a file."""
        self.munmap(start, size)
        vma = Vma(start, start + size, prot, MAP_PRIVATE, content, 0, name)
        self._insert(vma)
        self.dz_sync()

    def mmap(self, addr: int, length: int, prot: int, flags: int, data: bytes | None = None,
             offset: int = 0, name: str = "", host_fd: int = -1, file_off: int = 0) -> int:
        if length <= 0 or offset & (PAGE - 1):
            return -E.EINVAL
        if not flags & (MAP_PRIVATE | MAP_SHARED):
            return -E.EINVAL
        length = page_up(length)
        if length > TASK_SIZE:
            return -E.ENOMEM
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            if addr & (PAGE - 1) or addr + length > TASK_SIZE:
                return -E.EINVAL
            if flags & MAP_FIXED_NOREPLACE and not self.is_free(addr, addr + length):
                return -E.EEXIST
            self.munmap(addr, length)
        else:
            addr = page_down(addr)
            if not addr or addr + length > TASK_SIZE or not self.is_free(addr, addr + length):
                addr = self.find_free(length)
                if addr is None:
                    return -E.ENOMEM
        vma = Vma(addr, addr + length, prot, flags, data, offset if data is not None else 0, name,
                  host_fd if flags & MAP_SHARED else -1, file_off)
        self._insert(vma)
        # shared anonymous memory is backed at once: a page first touched after a
        # fork must be the same page in parent and child
        if flags & MAP_POPULATE or data is not None and length <= 16 * PAGE or self._shared_anon(vma):
            for page in range(addr, addr + length, PAGE):
                self.populate(page, vma)
        self.dz_sync()
        return addr

    def munmap(self, addr: int, length: int) -> int:
        if addr & (PAGE - 1) or length <= 0:
            return -E.EINVAL
        end = addr + page_up(length)
        self.write_back(addr, end)
        for v in self._carve(addr, end):
            self.vmas.remove(v)
        self._dz_dirty = True
        self._unpopulate(addr, end)
        self.dz_sync()
        return 0

    def write_back(self, start: int = 0, end: int = 1 << 64) -> None:
        """Copy the populated pages of MAP_SHARED file mappings in [start, end)
        back to their files (munmap, msync, exit)."""
        import os
        for v in self.vmas:
            if v.host_fd < 0 or v.end <= start or v.start >= end:
                continue
            try:
                size = os.fstat(v.host_fd).st_size
            except OSError:
                continue
            for page in range(max(v.start, start), min(v.end, end), PAGE):
                pa = self.pages.get(page)
                off = v.file_off + (page - v.start)
                if pa is None or off >= size or pa in self.frame_keys:     # (those are the file already)
                    continue
                now = self.machine.mem[pa:pa + PAGE].tobytes()
                if self.clean.get(page) == now:
                    continue
                n = min(PAGE, size - off)
                os.pwrite(v.host_fd, now[:n], off)
                self.clean[page] = now

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        if addr & (PAGE - 1):
            return -E.EINVAL
        end = addr + page_up(length)
        # every page in the range must be mapped (Linux: ENOMEM)
        covered = sorted((max(v.start, addr), min(v.end, end)) for v in self.vmas if v.start < end and v.end > addr)
        pos = addr
        for s, e in covered:
            if s > pos:
                return -E.ENOMEM
            pos = max(pos, e)
        if pos < end:
            return -E.ENOMEM
        for v in self._carve(addr, end):
            v.prot = prot
        self.dz_sync()
        for page in [p for p in self.pages if addr <= p < end]:
            if prot:
                hit = self.pt.lookup(page)
                if hit is None:
                    self.pt.map(page, self.pages[page], PAGE, **self._pte_rights(prot))
                else:
                    self.pt.protect(page, PAGE, **self._pte_rights(prot))
            else:
                if self.pt.lookup(page) is not None:
                    self.pt.unmap(page, PAGE)
        return 0

    def set_brk(self, new: int) -> int:
        if new < self.brk_start:
            return self.brk
        old_top, new_top = page_up(self.brk), page_up(new)
        if new_top > old_top:
            if not self.is_free(old_top, new_top):
                return self.brk
            self._insert(Vma(old_top, new_top, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, name="[heap]"))
            self.dz_sync()
        elif new_top < old_top:
            self.munmap(new_top, old_top - new_top)
        self.brk = new
        return self.brk
