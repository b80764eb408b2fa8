"""Memory system calls: brk, mmap, munmap, mprotect, mremap, madvise."""
from __future__ import annotations

import os

from emu.linux import errno as E
from emu.linux.mm import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PAGE, page_up
from emu.linux.syscalls import s32, syscall


# file mappings larger than this are read page by page as the guest touches
# them (FileBytes; the core's demand paging preads each page itself), as a
# kernel maps the page cache: ld.so maps all of libc and touches a few pages
# of most segments, and a spawn should not copy the rest
LAZY_MAP = 64 << 10


class FileBytes:
    """The bytes of a file range, read when sliced (mm.populate reads a
    page at a time): what a file mapping holds until the guest touches it."""

    def __init__(self, host_fd: int, off: int, length: int):
        self.fd = os.dup(host_fd)
        self.off = off
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k):
        start, stop, _ = k.indices(self.length)
        return os.pread(self.fd, max(0, stop - start), self.off + start) if stop > start else b""

    def __bytes__(self) -> bytes:
        return self[0:self.length]

    def demand_source(self) -> tuple[int, int, int]:
        """(descriptor, file offset, length): the core reads the pages
        itself when the guest first touches them (PhysMachine.set_demand_ranges),
        without a fault exit to the personality."""
        return self.fd, self.off, self.length

    def __del__(self):
        try:
            os.close(self.fd)
        except OSError:
            pass


@syscall(12, "brk")
def sys_brk(s, addr, *_):
    return s.p.mm.set_brk(addr)


@syscall(9, "mmap")
def sys_mmap(s, addr, length, prot, flags, fd, off):
    data = None
    name = ""
    host_fd, file_off = -1, 0
    if not flags & MAP_ANONYMOUS:
        f = s.fd(fd)
        if f.is_dir:
            return -E.ENODEV
        if off & 0xFFF or not length or length > 1 << 47:
            return -E.EINVAL
        if off + length >= 1 << 63:
            return -E.EOVERFLOW                      # the page offset would overflow (mm/mmap.c)
        size = os.fstat(f.host_fd).st_size
        want = min(length, max(0, size - off))
        # small mappings are read now; larger ones page by page as the guest
        # touches them (a 2 GiB sparse file is never read whole)
        data = (os.pread(f.host_fd, want, off) if want <= LAZY_MAP else FileBytes(f.host_fd, off, want)) \
            if want > 0 else b""
        name = f.gpath or f.path          # as the guest names it (/proc/self/maps)
        file_off = off
        if flags & MAP_SHARED and prot & 2:
            if f.flags & 3 != 2:         # a writable shared mapping needs O_RDWR
                return -E.EACCES
            s.check_fd_write(f)
        if flags & MAP_SHARED and f.flags & 3 == 2 and not getattr(f, "outside", False):
            # every view of a file open for writing, writable or not, shares its
            # pages (emu/linux/mm.py file_frames): a read-only or executable view
            # sees what a writable one stores
            host_fd = os.dup(f.host_fd)
        off = 0
    return s.p.mm.mmap(addr, length, prot & 7, flags, data, off, name, host_fd, file_off)


@syscall(26, "msync")
def sys_msync(s, addr, length, flags, *_):
    if addr & (PAGE - 1):
        return -E.EINVAL
    s.p.mm.write_back(addr, addr + page_up(length))
    return 0


@syscall(11, "munmap")
def sys_munmap(s, addr, length, *_):
    return s.p.mm.munmap(addr, length)


@syscall(10, "mprotect")
def sys_mprotect(s, addr, length, prot, *_):
    return s.p.mm.mprotect(addr, length, prot & 7)


@syscall(28, "madvise")
def sys_madvise(s, addr, length, advice, *_):
    if advice == 4:          # MADV_DONTNEED: private anonymous pages read back as zero
        mm = s.p.mm
        end = addr + page_up(length)
        for page in [p for p in mm.pages if addr <= p < end]:
            vma = mm.find(page)
            if vma is not None and vma.data is None:
                pa = mm.pages[page]
                mm.machine.mem[pa:pa + PAGE] = bytes(PAGE)
                mm.machine.phys.invalidate(pa, PAGE)
    return 0


@syscall(25, "mremap")
def sys_mremap(s, old, old_size, new_size, flags, new_addr, *_):
    mm = s.p.mm
    old_size, new_size = page_up(old_size), page_up(new_size)
    vma = mm.find(old)
    if vma is None or old & (PAGE - 1) or new_size == 0:
        return -E.EINVAL if vma is not None else -E.EFAULT
    if new_size <= old_size:
        if new_size < old_size:
            mm.munmap(old + new_size, old_size - new_size)
        return old
    shared = mm._shared_anon(vma)
    if mm.is_free(old + old_size, old + new_size) and vma.end == old + old_size:
        vma.end = old + new_size
        if shared:                       # shared memory is backed at once (mm.mmap)
            for page in range(old + old_size, old + new_size, PAGE):
                mm.populate(page, vma)
        return old
    if not flags & 1:        # MREMAP_MAYMOVE
        return -E.ENOMEM
    data = s.read(old, old_size)
    # (a moved shared mapping is new shared memory: processes that share the
    # old one keep it, unlike Linux, which moves the same object)
    dest = mm.mmap(0, new_size, vma.prot | 2, (MAP_SHARED if shared else MAP_PRIVATE) | MAP_ANONYMOUS)
    if dest < 0:
        return dest
    s.write(dest, data)
    mm.mprotect(dest, new_size, vma.prot)
    mm.munmap(old, old_size)
    return dest
