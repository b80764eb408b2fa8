"""`int 0x80`: the i386 system-call ABI, from 64-bit code (which Linux keeps
for 64-bit processes, arch/x86/entry/entry_64_compat.S) and from 32-bit
processes (i386 programs in compatibility mode). EAX holds the i386 number
(arch/x86/entry/syscalls/syscall_32.tbl), EBX ECX EDX ESI EDI EBP the
arguments, zero-extended to 64 bits as the kernel does; the result goes to
RAX. Calls whose i386 form takes the same arguments as the x86-64 one run
the x86-64 handler; those with 32-bit layouts have their own handlers here
(I386_OWN: set_thread_area, mmap2, writev, ugetrlimit, set_robust_list);
the others return ENOSYS. This is the one i386 system-call table."""
from __future__ import annotations

from emu.linux import errno as E

MASK64 = (1 << 64) - 1

# i386 number -> x86-64 number, for calls with the same argument meaning
I386_TO_X64 = {
    1: 60, 2: 57, 3: 0, 4: 1, 5: 2, 6: 3, 10: 87, 12: 80, 15: 90, 20: 39, 24: 102, 33: 21, 36: 162,
    37: 62, 38: 82, 39: 83, 40: 84, 41: 32, 42: 22, 47: 104, 49: 107, 50: 108, 57: 109, 60: 95, 63: 33,
    64: 110, 65: 111, 66: 112, 83: 88, 85: 89, 91: 11, 94: 91, 118: 74, 125: 10, 133: 81, 143: 73,
    147: 124, 148: 75, 158: 24, 183: 79, 199: 102, 200: 104, 201: 107, 202: 108, 224: 186, 238: 200,
    252: 231, 258: 218, 270: 234, 295: 257, 331: 293, 355: 318,
    45: 12, 383: 332, 386: 334,        # brk, statx (one layout on every arch), rseq
}

GDT_ENTRY_TLS_MIN, GDT_ENTRY_TLS_ENTRIES = 12, 3     # the x86-64 kernel's TLS slots, also for i386 tasks


def _user_desc(s, ptr):
    import struct
    return list(struct.unpack("<IIII", s.read(ptr, 16)))


def sys_set_thread_area(s, ptr, *_):
    """A TLS segment in one of the three GDT slots (arch/x86/kernel/tls.c):
    entry_number -1 picks a free one and is written back."""
    import struct
    entry, base, limit, flags = _user_desc(s, ptr)
    v = s.v
    if entry == 0xFFFFFFFF:
        for i in range(GDT_ENTRY_TLS_ENTRIES):
            if v.get_tls_desc(i) == 0:
                entry = GDT_ENTRY_TLS_MIN + i
                break
        else:
            return -E.ESRCH
        s.write(ptr, struct.pack("<I", entry))
    if not GDT_ENTRY_TLS_MIN <= entry < GDT_ENTRY_TLS_MIN + GDT_ENTRY_TLS_ENTRIES:
        return -E.EINVAL
    seg_32bit, contents, ro = flags & 1, (flags >> 1) & 3, (flags >> 3) & 1
    pages, not_present, useable = (flags >> 4) & 1, (flags >> 5) & 1, (flags >> 6) & 1
    if contents == 3:
        return -E.EINVAL                       # conforming code: refused
    empty = base == 0 and limit == 0 and contents == 0 and ro == 1 and seg_32bit == 0 and not_present == 1
    desc = 0
    if not empty:
        # as Linux's fill_ldt: writable (readable code) unless read_exec_only, contents in bits 2-3, accessed
        typ = ((ro ^ 1) << 1) | (contents << 2) | 1
        desc = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | ((typ | 0x10 | 0x60 | (0 if not_present else 0x80)) << 40) \
            | (((limit >> 16) & 0xF) << 48) | (useable << 52) | (seg_32bit << 54) | (pages << 55) \
            | (((base >> 24) & 0xFF) << 56)
    v.set_tls_desc(entry - GDT_ENTRY_TLS_MIN, desc)
    return 0


def sys_ugetrlimit(s, resource, old, *_):
    """struct rlimit of two 32-bit words (RLIM_INFINITY is ~0U)."""
    import struct
    from emu.linux.sys_proc import _rlimit
    cur, mx = (min(x, 0xFFFFFFFF) for x in _rlimit(resource))
    s.write(old, struct.pack("<II", cur, mx))
    return 0


def sys_mmap2(s, addr, length, prot, flags, fd, pgoff):
    """mmap with the file offset in 4 KiB units."""
    from emu.linux.sys_mem import sys_mmap
    return sys_mmap(s, addr, length, prot, flags, fd if fd != 0xFFFFFFFF else -1, pgoff << 12)


def sys_writev32(s, fd, iov, cnt, *_):
    """writev with struct iovec of two 32-bit words."""
    import os
    import struct
    if cnt > 1024:
        return -E.EINVAL
    vecs = [struct.unpack_from("<II", s.read(iov + 8 * i, 8)) for i in range(cnt)]
    data = b"".join(s.read(base, n) for base, n in vecs if n)
    return os.write(s.fd(fd).host_fd, data) if data else 0


def sys_set_robust_list32(s, head, length, *_):
    return 0 if length == 12 else -E.EINVAL


# i386 calls whose arguments differ from the x86-64 call's: (name, handler)
I386_OWN = {
    243: ("set_thread_area", sys_set_thread_area),
    191: ("ugetrlimit", sys_ugetrlimit),
    192: ("mmap2", sys_mmap2),
    146: ("writev", sys_writev32),
    311: ("set_robust_list", sys_set_robust_list32),
}


def int80(s) -> None:
    from emu.linux.syscalls import SYSCALLS
    v = s.v
    nr = v.rax & 0xFFFFFFFF
    args = tuple(x & 0xFFFFFFFF for x in (v.rbx, v.rcx, v.rdx, v.rsi, v.rdi, v.rbp))
    p = s.p
    x64 = I386_TO_X64.get(nr)
    entry = I386_OWN.get(nr) or (SYSCALLS.get(x64) if x64 is not None else None)
    if entry is None:
        ret = -E.ENOSYS
        name = "i386_%d" % nr
    else:
        name, fn = entry
        from emu.linux.syscalls import Fault
        try:
            ret = fn(s, *args)
        except Fault:
            ret = -E.EFAULT
        except OSError as e:
            ret = -E.from_oserror(e)
    if ret == -E.ENOSYS:
        p.enosys["i386:" + name] = p.enosys.get("i386:" + name, 0) + 1
    if p.strace:
        s._trace("int80:" + name, args, ret)
    if ret is not None:
        v.rax = ret & MASK64
