"""Threads: clone(CLONE_VM|CLONE_THREAD) makes another vCPU on the same
machine. Threads are scheduled deterministically, round robin with a fixed
instruction quantum, so a run with virtual time is reproducible; futexes
block and wake threads."""
from __future__ import annotations

import struct

from emu.linux import errno as E
from emu.linux.record import record

QUANTUM = 100_000            # instructions per time slice when several threads run


@record
class Thread:
    tid: int
    vcpu: object
    clear_tid: int = 0        # CLONE_CHILD_CLEARTID / set_tid_address
    futex: int | None = None  # address this thread sleeps on
    futex_bitset: int = 0xFFFFFFFF
    timed: bool = False
    exited: bool = False
    signal_mask: int = 0
    fd_wait: list | None = None  # [(host fd, poll events)] a parked call waits on (Process._park_read)
    wait_deadline: int | None = None   # ... until this guest CLOCK_MONOTONIC time (poll, select, epoll)
    slice_end: int | None = None      # vcpu.icount where its time slice ends (None: a fresh one when it runs)
    futex_deadline: int | None = None  # a timed futex wait ends at this guest CLOCK_MONOTONIC time
    sig_wait: int = 0                  # rt_sigtimedwait parked: the signals it waits for


def clone_thread(s, flags, stack, ptid, ctid, tls):
    from emu.linux.sys_exec import CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_PARENT_SETTID, CLONE_SETTLS
    p = s.p
    parent = s.v
    child = p.machine.add_vcpu(parent)
    tid = p.next_tid
    p.next_tid += 1
    child.rax = 0
    if stack:
        child.rsp = stack
    child.rip = parent.rip
    if flags & CLONE_SETTLS:
        child.fs_base = tls
    t = Thread(tid, child, signal_mask=p.current.signal_mask)
    if flags & CLONE_CHILD_CLEARTID:
        t.clear_tid = ctid
    if flags & CLONE_PARENT_SETTID and ptid:
        s.write(ptid, struct.pack("<i", tid))
    if flags & CLONE_CHILD_SETTID and ctid:
        s.write(ctid, struct.pack("<i", tid))
    p.threads.append(t)
    return tid


def futex_wait(s, uaddr, val, timeout, bitset=0xFFFFFFFF):
    p = s.p
    (cur,) = struct.unpack("<I", s.read(uaddr, 4))
    if cur != val & 0xFFFFFFFF:
        return -E.EAGAIN
    t = p.current
    t.futex = uaddr
    t.futex_bitset = bitset
    t.timed = bool(timeout)
    return None               # RAX is set when the thread is woken


def futex_wake(s, uaddr, n, bitset=0xFFFFFFFF):
    woken = 0
    for t in s.p.threads:
        if woken >= n:
            break
        if t.futex == uaddr and t.futex_bitset & bitset and not t.exited:
            t.futex = None
            t.vcpu.rax = 0
            woken += 1
    return woken


def thread_exit(s, status):
    """exit() of one thread: clear and wake its tid word, then it is gone."""
    p = s.p
    t = p.current
    if t.clear_tid:
        try:
            s.write(t.clear_tid, b"\0\0\0\0")
            futex_wake(s, t.clear_tid, 1)
        except Exception:
            pass
    t.exited = True
