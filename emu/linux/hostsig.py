"""Signals between the processes of a guest tree.

Each guest process is a host process (fork, as qemu-user does), so a guest
signal for another process travels as the host signal of the same number:
kill(2) in the guest is kill(2) on the host, the host kernel's SIGCHLD tells
a parent that a child exited, stopped or continued, and the terminal's
SIGTTIN, SIGTTOU, SIGTSTP and SIGINT reach the right process group. In each
emu process a Python handler turns the host signal into a pending guest
signal; the core's handler (core/hostsig.pxi) stops the running vCPU so the
run loop delivers it even while the guest computes, and keeps the kernel's
siginfo (sender, code, child status, sigqueue value). Waits that block on
the host poll a wake-up pipe the handler writes (signal.set_wakeup_fd), so
a signal interrupts them as it interrupts a sleeping task on Linux.

The default action "stop" (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) stops the
host process with the same signal, so the parent's wait4(WUNTRACED) and
the shell see exactly what Linux reports; SIGKILL and SIGSTOP sent to
another process are the host's own.

Only processes of the guest tree can be signalled (emu/linux/ptree.py):
other host processes are outside the guest's pid namespace (ESRCH).

Used by `emu run` (Process.enable_host_signals); a Process embedded in a
Python program leaves the host's signal handling alone.
"""
from __future__ import annotations

import os
import select
import signal
import struct

from emu._core import host_siginfo
from emu.linux.signals import SIGCHLD, SIGCONT, SIGKILL, SIGSTOP, SIGTSTP

SIGINT = 2

SIGTTIN, SIGTTOU = 21, 22
STOP_SIGNALS = frozenset((SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU))
# host faults of the emulator itself stay fatal to it; 32 and 33 belong to the host's libc
CARRIED = tuple(sig for sig in range(1, 65) if sig not in (4, 5, 7, 8, SIGKILL, 11, SIGSTOP, 32, 33))
SI_USER, SI_QUEUE, SI_TKILL = 0, -1, -6
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_TRAPPED, CLD_STOPPED, CLD_CONTINUED = 1, 2, 3, 4, 5, 6


class Interrupted(Exception):
    """A deliverable guest signal arrived during an interruptible host wait."""


class SignalBridge:
    def __init__(self, proc):
        self.proc = proc
        self.interruptible = False      # raise Interrupted from the handler (a wait that only polls)
        self.in_syscall = False         # a system call's host calls are under way
        self.wake_r = self.wake_w = -1
        self._open_pipe()
        for sig in CARRIED:
            try:
                signal.signal(sig, self._on_signal)
            except (OSError, ValueError):
                pass
        self.attach(proc.machine)

    def _open_pipe(self) -> None:
        old = (self.wake_r, self.wake_w)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for fd in old:                  # (after: a signal meanwhile writes to the new one)
            if fd >= 0:
                os.close(fd)

    def attach(self, machine) -> None:
        global _timers
        from emu.linux import timers as _timers
        """The machine whose running vCPU a host signal stops (after exec: the new one)."""
        machine.phys.stop_on_host_signals(CARRIED)

    def after_fork(self, proc) -> None:
        """In a forked child: a wake-up pipe of its own."""
        self.proc = proc
        self._open_pipe()

    def stop_self(self, sig: int) -> None:
        """The default action of a stop signal: stop this host process with
        the same signal (the parent's wait4 sees WSTOPSIG = sig) until a
        SIGCONT. (In an orphaned process group the host discards it, as
        Linux does for the guest.)"""
        if sig == SIGSTOP:
            os.kill(os.getpid(), SIGSTOP)
            return
        old = signal.signal(sig, signal.SIG_DFL)
        try:
            os.kill(os.getpid(), sig)
        finally:
            signal.signal(sig, old)
            self.attach(self.proc.machine)     # the core's handler back in front of Python's

    # ---- arriving signals ----
    def _on_signal(self, sig, _frame) -> None:
        # (no imports here: a handler may run in the middle of one)
        p = self.proc
        info = host_siginfo(sig)
        bit = 1 << (sig - 1)
        if sig == SIGINT and p.pending_signals & bit and not p.forked_child:
            # a second Ctrl-C while the first has not reached the guest (it
            # blocks SIGINT, or emu is stuck): emu itself stops (cli: 130)
            raise KeyboardInterrupt
        if sig == SIGCONT:      # a continue discards pending stops, a stop a pending continue
            p.pending_signals &= ~sum(1 << (s - 1) for s in STOP_SIGNALS)
        elif sig in STOP_SIGNALS:
            p.pending_signals &= ~(1 << (SIGCONT - 1))
        p.pending_signals |= bit
        if info is not None:
            p.sig_info[sig] = ("host",) + tuple(info)
        if self.interruptible or (self.in_syscall and sig in (SIGTTIN, SIGTTOU)):
            # (a terminal refused a background read or write: the host call
            # would retry for ever; the guest's call ends with ERESTARTSYS)
            if _timers.deliverable(p, sig):
                self.in_syscall = False
                self.interruptible = False
                raise Interrupted()

    def drain(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def poller(self, fds=()):
        """A poll object on fds [(fd, events)] and the wake-up pipe."""
        pl = select.poll()
        for fd, ev in fds:
            pl.register(fd, ev)
        pl.register(self.wake_r, select.POLLIN)
        return pl

    def poll(self, pl, timeout_ms):
        """Poll; the wake-up pipe's readiness is drained and not counted."""
        hits = pl.poll(timeout_ms)
        out = [h for h in hits if h[0] != self.wake_r]
        if len(out) != len(hits):
            self.drain()
        return out


def siginfo_bytes(p, sig: int, info) -> bytes:
    """The guest siginfo of a host signal from (pid, uid, code, status, value)."""
    _tag, pid, uid, code, status, value = info
    pid = p.ptree.guest_pid(pid) if p.ptree is not None else pid
    if sig == SIGCHLD and code > 0:
        return struct.pack("<iiiiiIi", sig, 0, code, 0, pid, uid, status).ljust(128, b"\0")
    if code > 0:              # the kernel's own (SI_KERNEL, a terminal): no sender
        return struct.pack("<iiii", sig, 0, code, 0).ljust(128, b"\0")
    return struct.pack("<iiiiiIQ", sig, 0, code, 0, pid, uid, value & (2**64 - 1)).ljust(128, b"\0")


_timers = None
