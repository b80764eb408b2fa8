"""Restartable sequences (rseq(2), kernel/rseq.c): a thread registers a
struct rseq; the kernel keeps its cpu_id fields current and, when the
thread is preempted or gets a signal inside a critical section that
rseq_cs describes, moves it to the section's abort handler. Here the guest
has one CPU, so cpu_id_start and cpu_id are 0; the thread scheduler
(Process._switch) and signal delivery (sigframe.setup_frame) call
`fixup` for the thread they resume, which is when Linux restarts one.
The registration belongs to the thread: kept across fork, dropped by
execve, not given to a new thread."""
from __future__ import annotations

import struct

from emu.linux import errno as E
from emu.linux.syscalls import syscall

ORIG_RSEQ_SIZE = 32
RSEQ_FLAG_UNREGISTER = 1
RSEQ_CPU_ID_UNINITIALIZED = 0xFFFFFFFF


@syscall(334, "rseq")
def sys_rseq(s, addr, length, flags, sig, *_):
    t = s.p.current
    reg = getattr(t, "rseq", None)                   # (address, length, signature)
    length &= 0xFFFFFFFF
    sig &= 0xFFFFFFFF
    if flags & RSEQ_FLAG_UNREGISTER:
        if flags & ~RSEQ_FLAG_UNREGISTER:
            return -E.EINVAL
        if reg is None or reg[0] != addr:
            return -E.EINVAL
        if reg[1] != length:
            return -E.EINVAL
        if reg[2] != sig:
            return -E.EPERM
        s.write(addr + 4, struct.pack("<I", RSEQ_CPU_ID_UNINITIALIZED))
        t.rseq = None
        return 0
    if flags:
        return -E.EINVAL
    if reg is not None:
        if (reg[0], reg[1]) != (addr, length):
            return -E.EINVAL
        return -E.EPERM if reg[2] != sig else -E.EBUSY
    if length < ORIG_RSEQ_SIZE or addr & 31 or length != ORIG_RSEQ_SIZE and length & 31:
        return -E.EINVAL
    s.read(addr, length)                             # EFAULT for memory the thread cannot reach
    s.write(addr, struct.pack("<II", 0, 0))          # cpu_id_start, cpu_id: the one CPU
    t.rseq = (addr, length, sig)
    return 0


def fixup(s, t) -> None:
    """Thread t resumes after preemption or before a signal handler: inside
    the critical section its rseq_cs names, it continues at the abort
    handler (whose preceding 4 bytes must be the registered signature, else
    SIGSEGV, as Linux)."""
    reg = getattr(t, "rseq", None)
    if reg is None:
        return
    v = t.vcpu
    try:
        (cs,) = struct.unpack("<Q", s.read(reg[0] + 8, 8))
        if not cs:
            return
        _ver, _fl, start, post, abort = struct.unpack("<IIQQQ", s.read(cs, 32))
        rip = v.rip
        if not start <= rip < start + post:
            return
        s.write(reg[0] + 8, b"\0" * 8)               # the kernel clears rseq_cs
        (mark,) = struct.unpack("<I", s.read(abort - 4, 4))
    except Exception:                                # (unreadable rseq or rseq_cs: Linux kills with SIGSEGV)
        s.p.fatal(11, "rseq: bad rseq_cs")
        return
    if mark != reg[2]:
        s.p.fatal(11, "rseq: abort handler without the signature")
        return
    v.rip = abort
