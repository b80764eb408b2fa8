"""/proc/self/mem of the guest: its own memory, read and written at the
file offset that is the virtual address, through its page tables
(fs/proc/base.c, mem_rw with FOLL_FORCE): a page the process has not touched
yet is faulted in, a read-only page (code) can be written, as debuggers and
JIT runtimes do through this file, and the code translated from a written
page is dropped. An address no mapping covers ends the transfer; nothing
transferred at all is EIO. Another process's mem stays refused (EACCES,
emu/linux/fs.py host_proc_refused)."""
from __future__ import annotations

import os
import re

from emu.linux import errno as E
from emu.linux.fdtable import OpenFile
from emu.linux.mm import PAGE

_MEM = re.compile(r"^/proc/(self|thread-self|\d+)(?:/task/\d+)?/mem$")
MASK64 = (1 << 64) - 1


def is_own_mem(p, gpath: str) -> bool:
    m = _MEM.match(gpath)
    return m is not None and (m.group(1) in ("self", "thread-self") or int(m.group(1)) == p.pid)


def open_mem(s, gpath: str, flags: int, cloexec: bool) -> int:
    hfd = os.memfd_create("emu-proc-mem", os.MFD_CLOEXEC)     # (a stand-in for fstat and close)
    f = OpenFile(hfd, gpath, flags, False, gpath=gpath)
    f.special = "mem"                   # never the core's fast path (emu/linux/fastcalls.py)
    f.mem_pos = 0
    return s.p.fds.install(f, cloexec=cloexec)


def _frame(s, addr: int):
    """The frame of the page at addr (faulted in if a mapping allows), or None."""
    mm = s.p.mm
    page = addr & ~(PAGE - 1)
    pa = mm.pages.get(page)
    if pa is None:
        vma = mm.find(page)
        if vma is None or not vma.prot:
            return None
        mm.populate(page, vma)
        pa = mm.pages.get(page)
    return pa


def transfer(s, f, buf: int, count: int, pos: int | None, write: bool) -> int:
    """read/write/pread/pwrite on the mem file: count bytes at pos (None:
    the file position, which moves on)."""
    at = f.mem_pos if pos is None else pos & MASK64
    count = min(count, 1 << 20)
    data = s.read(buf, count) if write else None
    mem = s.p.machine.mem
    phys = s.p.machine.phys
    done = 0
    out = []
    while done < count:
        addr = (at + done) & MASK64
        pa = _frame(s, addr)
        if pa is None:
            break
        off = addr & (PAGE - 1)
        n = min(PAGE - off, count - done)
        if write:
            mem[pa + off:pa + off + n] = data[done:done + n]
            phys.invalidate(pa + off, n)        # marks it dirty and drops code translated from it
        else:
            out.append(bytes(mem[pa + off:pa + off + n]))
        done += n
    if done == 0 and count:
        return -E.EIO
    if not write:
        s.write(buf, b"".join(out))
    if pos is None:
        f.mem_pos = (at + done) & MASK64
    return done


def lseek(f, off: int, whence: int) -> int:
    if whence == 0:
        f.mem_pos = off & MASK64
    elif whence == 1:
        f.mem_pos = (f.mem_pos + off) & MASK64
    else:
        return -E.EINVAL
    return f.mem_pos if f.mem_pos < 1 << 63 else f.mem_pos - (1 << 64)
