"""System calls the core answers without an exit (core/syscall_fast.pxi):
read, write, pread64, pwrite64, readv, writev, lseek and fstat (also as
newfstatat with AT_EMPTY_PATH) on plain descriptors (files, pipes, sockets,
devices, terminals), getpid and gettid: about 3 us of Python each otherwise.

The personality stays the kernel: it decides which descriptors the core may
use and when. A descriptor is delegated once Python has served one of these
calls on it and found it plain (no directory, timerfd, epoll or file emu
serves itself), and taken back whenever the fd table changes at that number
(open, close, dup, exec). The whole switch is off while Python must see
every call: --strace, system-call hooks (--report), record/replay, armed
timers, pending signals, a temporary signal mask. The core declines any call
whose answer is not plainly the host's (see syscall_fast.pxi), so what the
guest sees is what the Python path gives.

EMU_FAST_SYSCALLS=0 in the environment turns the delegation off (every call
through Python, for comparison)."""
from __future__ import annotations

import os
import stat

# read, write, fstat, lseek, pread64, pwrite64, readv, writev, and
# newfstatat(fd, "", buf, AT_EMPTY_PATH) (glibc's fstat); getpid, gettid
CALLS = (0, 1, 5, 8, 17, 18, 19, 20, 262, 39, 186)
LEARN = frozenset(CALLS)
KIND_POLL, KIND_NOREAD, KIND_NOSEEK = 1, 2, 4     # (syscall_fast.pxi SFD_*)


def wanted() -> bool:
    return os.environ.get("EMU_FAST_SYSCALLS", "1") != "0"


class FastCalls:
    def __init__(self, proc):
        self.p = proc
        self.on = False
        self._forget = self.forget
        proc.fds.on_change = self._forget
        self.attach(proc.machine)

    def attach(self, machine) -> None:
        """A new machine (at start and after execve): nothing delegated yet."""
        self.phys = machine.phys
        self.phys.sysfast_enable(CALLS)
        self.on = False
        self.ids = None

    def sync(self, thread) -> None:
        """Before each run of the vCPU of `thread`: the switch on only when no
        Python observer needs every call; getpid and gettid its answers."""
        p = self.p
        ids = (p.pid, thread.tid)
        if ids != self.ids:
            self.ids = ids
            self.phys.sysfast_ids(*ids)
        if p.fds.on_change is not self._forget:
            # a new fd table (or none told of its changes): start again
            self.phys.sysfast_clear_fds()
            p.fds.on_change = self._forget
        ok = not (p.strace or p.syscall_hooks or p.mem_observer is not None or p.itimers or p.pending_signals
                  or p.saved_sigmask is not None)
        if ok is not self.on:
            self.on = ok
            self.phys.sysfast_on = ok

    def learn(self, fd: int) -> None:
        """Python just served a delegable call on guest fd: delegate it if it is plain."""
        fd &= 0xFFFFFFFF
        f = self.p.fds.get(fd)
        if f is None or f.is_dir or f.dir_entries is not None:
            return
        for special in ("timerfd", "epoll", "special"):
            if getattr(f, special, None) is not None:
                return
        try:
            mode = os.fstat(f.host_fd).st_mode
        except OSError:
            return
        if stat.S_ISREG(mode) or stat.S_ISBLK(mode):
            kind = 0
        elif stat.S_ISCHR(mode) and os.isatty(f.host_fd):
            kind = KIND_NOREAD | KIND_NOSEEK       # terminal reads: job control, interactive: Python
        elif stat.S_ISCHR(mode):
            kind = KIND_POLL
        elif stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            kind = KIND_POLL | KIND_NOSEEK
        else:
            return
        self.phys.sysfast_fd(fd, f.host_fd, kind)

    def forget(self, fd: int) -> None:
        """The fd table changed at fd."""
        self.phys.sysfast_fd(fd, -1)

    def take_counts(self, counts: dict) -> None:
        """Add the calls the core answered to the process's syscall_counts."""
        for nr, n in self.phys.sysfast_take_counts().items():
            counts[nr] = counts.get(nr, 0) + n
