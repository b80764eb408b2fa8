"""Namespaces and the root mount: unshare(2), setns(2), pivot_root(2).

emu gives a guest no namespaces of its own (the process tree, the file
system and the network are the host's, seen through the personality), so
these calls answer as Linux answers a process without CAP_SYS_ADMIN, in
the kernel's order of checks:

- unshare (kernel/fork.c, ksys_unshare and check_unshare_flags): an unknown
  flag is EINVAL; CLONE_THREAD, CLONE_SIGHAND or CLONE_VM in a process with
  several threads is EINVAL; CLONE_FS, CLONE_FILES and CLONE_SYSVSEM of a
  single-threaded process share nothing with anyone and succeed;
  CLONE_NEWUSER and the other namespaces are EPERM (user namespaces as on
  a kernel that refuses unprivileged ones, the others as for a process
  without CAP_SYS_ADMIN).
- setns (kernel/nsproxy.c): a descriptor that is not open is EBADF, one
  that is no namespace (nor pidfd) EINVAL, a namespace EPERM.
- pivot_root (fs/namespace.c): may_mount() comes first, so EPERM before the
  paths are looked at.

When the guest runs as root, Linux would allow what emu cannot do: the
guest still gets EPERM (as root in a container without CAP_SYS_ADMIN) and a
one-line notice says why, once per call.
"""
from __future__ import annotations

import os
import re

from emu.linux import errno as E
from emu.linux.syscalls import syscall

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_NEWTIME, CLONE_THREAD, CLONE_NEWNS, CLONE_SYSVSEM = 0x80, 0x10000, 0x20000, 0x40000
CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000

NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWCGROUP | CLONE_NEWTIME
UNSHARE_FLAGS = (CLONE_THREAD | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_VM | CLONE_SYSVSEM
                 | CLONE_NEWUSER | NAMESPACES)
_NS_LINK = re.compile(r"^(cgroup|ipc|mnt|net|pid|pid_for_children|time|time_for_children|user|uts):\[\d+\]$")


def _refuse(s, name: str) -> int:
    """EPERM, with a notice when the host user is root (Linux would allow it)."""
    if os.geteuid() == 0 and name not in s.p.warned:
        s.p.warned.add(name)
        import logging
        logging.getLogger(__name__).warning("emu: %s is not supported (no namespaces in the guest): EPERM", name)
    return -E.EPERM


@syscall(272, "unshare")
def sys_unshare(s, flags, *_):
    flags &= 0xFFFFFFFF
    if flags & ~UNSHARE_FLAGS:
        return -E.EINVAL
    # implied flags (ksys_unshare): a new user namespace needs its own
    # thread group and fs; a new VM needs its own signal handlers, which
    # need their own thread group; a new mount namespace its own fs
    if flags & CLONE_NEWUSER:
        flags |= CLONE_THREAD | CLONE_FS
    if flags & CLONE_VM:
        flags |= CLONE_SIGHAND
    if flags & CLONE_SIGHAND:
        flags |= CLONE_THREAD
    if flags & CLONE_NEWNS:
        flags |= CLONE_FS
    threaded = len(s.p.threads) > 1
    if flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM) and threaded:
        return -E.EINVAL
    if flags & (CLONE_NEWUSER | NAMESPACES):
        return _refuse(s, "unshare")
    if flags & (CLONE_FS | CLONE_FILES) and threaded:
        # the guest's threads share one file table and working directory here
        return _refuse(s, "unshare(CLONE_FS/CLONE_FILES) of one thread")
    return 0


@syscall(308, "setns")
def sys_setns(s, fd, nstype, *_):
    f = s.fd(fd)                                # EBADF
    try:
        target = os.readlink("/proc/self/fd/%d" % f.host_fd) if f.host_fd >= 0 else ""
    except OSError:
        target = ""
    if not _NS_LINK.match(target):
        return -E.EINVAL
    return _refuse(s, "setns")


@syscall(155, "pivot_root")
def sys_pivot_root(s, new_root, put_old, *_):
    return _refuse(s, "pivot_root")
