"""Scheduling attributes: CPU affinity (sched_{set,get}affinity), policy and
real-time priority (sched_{set,get}scheduler, sched_{set,get}param,
sched_get_priority_{min,max}, sched_rr_get_interval); getcpu (emu/linux/sys_misc.py) says CPU 0.

They are answered for the machine the guest is shown: one CPU (the one
/proc/cpuinfo lists, emu/hypervisor/platform.py), so an affinity mask is
cut to CPU 0 and a mask without it is EINVAL, as Linux does with a mask of
offline CPUs (kernel/sched/core.c, __sched_setaffinity). The attributes are
the guest's own: they live in the process table (emu/linux/ptree.py), where
every process of the tree reads and sets them and fork passes them on; the
host process keeps its own (a guest asking for SCHED_FIFO must not make the
emulator a real-time task that starves the host). Permission checks follow
the privilege the guest has, which is the host user's: real-time policies
need CAP_SYS_NICE (root) or an RLIMIT_RTPRIO allowance
(sched(7), "Privileges and resource limits")."""
from __future__ import annotations

import os
import resource
import struct

from emu.linux import errno as E
from emu.linux.ptree import DEFAULT_SCHED
from emu.linux.syscalls import s32, syscall

NCPUS = 1                                   # CPUs the guest is shown (/proc/cpuinfo)
ONLINE = (1 << NCPUS) - 1
MASK_BYTES = 8 * ((NCPUS + 63) // 64)       # cpumask_size(): whole longs
SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE = 0, 1, 2, 3, 5, 6
SCHED_RESET_ON_FORK = 0x40000000
RR_TIMESLICE_NS = 100_000_000               # RR_TIMESLICE: 100 ms (include/linux/sched/rt.h)
CFS_SLICE_NS = 3_000_000                    # sysctl_sched_base_slice / min granularity with one task


class _Target:
    """The process a pid argument names in the guest's tree. Pid 1, the init
    every Linux system has, is there to read (with the defaults) even when
    the tree does not hold it; changing it is EPERM, as for an unprivileged
    caller (the guest cannot touch the host's init)."""

    def __init__(self, s, pid, negative=E.EINVAL):
        pid = s32(pid)
        if pid < 0:
            # sched_setscheduler & co. refuse it (EINVAL); the affinity calls
            # look it up and find nothing (ESRCH), as kernel/sched/core.c does
            raise OSError(negative, "negative pid")
        self.s = s
        self.gpid = s.p.pid if pid == 0 else pid
        self.own = self.gpid == s.p.pid
        tree = s.p.ptree
        if tree is not None:
            found = tree.sched(self.gpid)
        else:
            found = getattr(s.p, "sched", DEFAULT_SCHED) if self.own else None
        self.init = found is None and self.gpid == 1
        if self.init:
            found = DEFAULT_SCHED
        elif found is None and s.p.seed is None and self.gpid == os.getppid():
            # the process that started emu (getppid's answer outside the tree):
            # visible as on Linux, its attributes the host's; changing them EPERM
            try:
                found = (os.sched_getscheduler(self.gpid), os.sched_getparam(self.gpid).sched_priority,
                         sum(1 << c for c in os.sched_getaffinity(self.gpid)))
                self.init = True
            except OSError:
                found = None
        if found is None:
            raise OSError(E.ESRCH, "no such process in the guest's tree")
        self.policy, self.prio, self.mask = found

    def store(self, policy=None, prio=None, mask=None) -> None:
        if self.init:
            raise OSError(E.EPERM, "a process outside the guest's tree (init, emu's parent)")
        v = (self.policy if policy is None else policy, self.prio if prio is None else prio,
             self.mask if mask is None else mask)
        if self.s.p.ptree is not None:
            self.s.p.ptree.set_sched(self.gpid, *v)
        else:
            self.s.p.sched = v


def _online(s) -> tuple[int, int, int]:
    """(CPUs, online mask, cpumask_size()) the guest is shown: a machine
    template's count under --profile stealth (emu/hypervisor/templates.py)."""
    g = getattr(s.p, "guest", None)
    n = g.ncpus if g is not None else NCPUS
    return n, (1 << n) - 1, 8 * ((n + 63) // 64)


def _may_realtime(prio: int) -> bool:
    if os.geteuid() == 0:
        return True
    soft, _hard = resource.getrlimit(getattr(resource, "RLIMIT_RTPRIO", 14))
    return soft == resource.RLIM_INFINITY or prio <= soft


@syscall(203, "sched_setaffinity")
def sys_sched_setaffinity(s, pid, size, mask, *_):
    t = _Target(s, pid, negative=E.ESRCH)
    _n, online, nbytes = _online(s)
    raw = s.read(mask, min(size, 128)).ljust(nbytes, b"\0")
    want = int.from_bytes(raw, "little") & online
    if want == 0:
        return -E.EINVAL                    # no CPU of the mask is online
    t.store(mask=want)
    return 0


@syscall(204, "sched_getaffinity")
def sys_sched_getaffinity(s, pid, size, mask, *_):
    # the buffer must hold nr_cpu_ids bits, in whole longs
    n, online, nbytes = _online(s)
    if size * 8 < n or size & 7:
        return -E.EINVAL
    t = _Target(s, pid, negative=E.ESRCH)
    # (the default mask, ONLINE, means every CPU, also a template's)
    m = online if t.mask == ONLINE else (t.mask & online or online)
    s.write(mask, m.to_bytes(nbytes, "little"))
    return nbytes


def _check_policy(policy: int, prio: int) -> None:
    if policy in (SCHED_FIFO, SCHED_RR):
        if not 1 <= prio <= 99:
            raise OSError(E.EINVAL, "real-time priority out of 1..99")
        if not _may_realtime(prio):
            raise OSError(E.EPERM, "real-time policy without CAP_SYS_NICE")
    elif policy in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE):
        if prio != 0:
            raise OSError(E.EINVAL, "priority must be 0 for this policy")
    elif policy == SCHED_DEADLINE:
        raise OSError(E.EINVAL, "SCHED_DEADLINE is set with sched_setattr")
    else:
        raise OSError(E.EINVAL, "unknown policy")


@syscall(144, "sched_setscheduler")
def sys_sched_setscheduler(s, pid, policy, param, *_):
    policy = s32(policy)
    if not param or policy < 0:
        return -E.EINVAL
    t = _Target(s, pid)
    prio = struct.unpack("<i", s.read(param, 4))[0]
    base = policy & ~SCHED_RESET_ON_FORK
    _check_policy(base, prio)
    t.store(policy=base, prio=prio)
    return 0


@syscall(145, "sched_getscheduler")
def sys_sched_getscheduler(s, pid, *_):
    return _Target(s, pid).policy


@syscall(142, "sched_setparam")
def sys_sched_setparam(s, pid, param, *_):
    if not param:
        return -E.EINVAL
    t = _Target(s, pid)
    prio = struct.unpack("<i", s.read(param, 4))[0]
    _check_policy(t.policy, prio)
    t.store(prio=prio)
    return 0


@syscall(143, "sched_getparam")
def sys_sched_getparam(s, pid, param, *_):
    if not param:
        return -E.EINVAL
    t = _Target(s, pid)
    s.write(param, struct.pack("<i", t.prio))
    return 0


@syscall(146, "sched_get_priority_max")
def sys_sched_get_priority_max(s, policy, *_):
    policy = s32(policy)
    if policy in (SCHED_FIFO, SCHED_RR):
        return 99
    return 0 if policy in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE) else -E.EINVAL


@syscall(147, "sched_get_priority_min")
def sys_sched_get_priority_min(s, policy, *_):
    policy = s32(policy)
    if policy in (SCHED_FIFO, SCHED_RR):
        return 1
    return 0 if policy in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE) else -E.EINVAL


@syscall(148, "sched_rr_get_interval")
def sys_sched_rr_get_interval(s, pid, ts, *_):
    t = _Target(s, pid)
    ns = RR_TIMESLICE_NS if t.policy == SCHED_RR else 0 if t.policy == SCHED_FIFO else CFS_SLICE_NS
    s.write(ts, struct.pack("<qq", *divmod(ns, 10**9)))
    return 0


@syscall(315, "sched_getattr")
def sys_sched_getattr(s, pid, attr, size, flags, *_):
    # struct sched_attr (include/uapi/linux/sched/types.h): size, policy, flags,
    # nice, priority, then the deadline triple and the utilisation clamps
    if not attr or flags or size < 48:
        return -E.EINVAL
    t = _Target(s, pid)
    nice = os.getpriority(os.PRIO_PROCESS, 0) if t.own else 0
    out = struct.pack("<IIQiIQQQII", 56, t.policy, 0, nice if t.policy in (SCHED_OTHER, SCHED_BATCH) else 0,
                      t.prio, 0, 0, 0, 0, 1024)
    s.write(attr, out[:min(size, 56)])
    return 0


@syscall(314, "sched_setattr")
def sys_sched_setattr(s, pid, attr, flags, *_):
    if not attr or flags:
        return -E.EINVAL
    size = struct.unpack("<I", s.read(attr, 4))[0] or 48
    if size < 48:
        return -E.E2BIG
    _sz, policy, sflags, nice, prio = struct.unpack("<IIQiI", s.read(attr, 24))
    t = _Target(s, pid)
    if sflags & ~0x7F:
        return -E.EINVAL
    _check_policy(policy, prio)
    if policy in (SCHED_OTHER, SCHED_BATCH) and t.own and not sflags & 0x10:    # SCHED_FLAG_KEEP_PARAMS
        os.setpriority(os.PRIO_PROCESS, 0, max(-20, min(19, nice)))
    t.store(policy=policy, prio=prio)
    return 0
