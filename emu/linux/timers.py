"""Interval timers (alarm, setitimer), pending signals, and the timed waits
of the Linux personality (sleeps and waits on file descriptors), all on the
process's guest clock (emu/hypervisor/timekeeping.py).

A timer is checked at every system call boundary, when the process sleeps
or waits (a wait stops at the deadline; the signal then interrupts it with
EINTR, as Linux does for nanosleep, select, poll, pause), and while the guest
computes: the run loop ends the vCPU's run at the deadline (virtual time:
the exact instruction at which the clock reaches it; host time: a short
instruction slice after which the host clock is read again).

ITIMER_REAL counts CLOCK_MONOTONIC and sends SIGALRM; ITIMER_VIRTUAL and
ITIMER_PROF count the process's CPU time (with virtual time: the time it
ran, not the time it slept) and send SIGVTALRM and SIGPROF. POSIX timers
(timer_create) run on CLOCK_REALTIME, MONOTONIC, BOOTTIME or a CPU clock and
send their sigevent's signal with SI_TIMER siginfo (overruns counted)."""
from __future__ import annotations

import struct

from emu.linux.hostsig import Interrupted
from emu.linux.signals import DEFAULT_IGNORE

NS = 1_000_000_000
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
TIMER_SIGNAL = {ITIMER_REAL: 14, ITIMER_VIRTUAL: 26, ITIMER_PROF: 27}   # SIGALRM, SIGVTALRM, SIGPROF
HOST_SLICE = 100_000          # host time: instructions between two looks at the clock while a timer runs
UNBLOCKABLE = (1 << 8) | (1 << 18)
RECHECK_MS = 50               # a wait for a signal looks at the pending set at least this often


def _clock(s):
    return s.p.guest.clock


# p.itimers: key -> [deadline ns, interval ns, counts CPU time, signal or None, POSIX timer id or None]
# (keys 0..2: setitimer's timers; POSIX_KEY + id: timer_create's). Deadlines
# are on CLOCK_MONOTONIC (a CLOCK_REALTIME timer's converted when armed: the
# guest cannot set the clock) or on the process's CPU time.
POSIX_KEY = 16
SI_TIMER, SI_KERNEL = -2, 0x80


def _now(s, cpu: bool) -> int:
    c = _clock(s)
    return c.cputime_ns(s.v) if cpu else c.now_ns(s.v, 1)


def timer_now(s, which: int) -> int:
    return _now(s, which in (ITIMER_VIRTUAL, ITIMER_PROF))


def set_timer(s, which: int, value_ns: int, interval_ns: int) -> tuple[int, int]:
    """Arm (value_ns > 0) or disarm (0) an interval timer (setitimer);
    returns the old (value, interval)."""
    old = get_timer(s, which)
    if value_ns > 0:
        cpu = which != ITIMER_REAL
        s.p.itimers[which] = [_now(s, cpu) + value_ns, interval_ns, cpu, TIMER_SIGNAL[which], None]
    else:
        s.p.itimers.pop(which, None)
    return old


def get_timer(s, key: int) -> tuple[int, int]:
    """(time to the next expiry, interval) in ns; (0, 0) when disarmed."""
    t = s.p.itimers.get(key)
    if t is None:
        return 0, 0
    left = t[0] - _now(s, t[2])
    return max(left, 1000 if key < POSIX_KEY else 1), t[1]   # expired, not yet delivered: 1 us (setitimer)


def fire_due(s) -> None:
    """Expired timers make their signal pending and re-arm (skipping the
    periods missed, as hrtimer_forward does; a POSIX timer counts them as
    overruns)."""
    p = s.p
    for key in list(p.itimers):
        t = p.itimers[key]
        now = _now(s, t[2])
        if now < t[0]:
            continue
        n = 1
        if t[1] > 0:
            n = (now - t[0]) // t[1] + 1
            t[0] += t[1] * n
        else:
            del p.itimers[key]
        sig = t[3]
        if sig is None:                        # SIGEV_NONE
            continue
        bit = 1 << (sig - 1)
        if t[4] is not None:
            pt = p.posix_timers.get(t[4])
            if pt is not None:
                if p.pending_signals & bit and p.sig_info.get(sig, (None,))[0] == t[4]:
                    pt["overrun"] += n         # its signal is still queued: count, do not queue again
                    continue
                pt["overrun"] = n - 1
                p.sig_info[sig] = (t[4],)
        else:
            p.sig_info[sig] = (None,)
        p.pending_signals |= bit


def siginfo_of(p, sig: int):
    """The siginfo (128 bytes) of a timer's signal taken now, or None for
    another signal (the frame keeps the default one)."""
    info = p.sig_info.pop(sig, None)
    if info is None:
        return None
    if info[0] == "host":                  # from another process (emu/linux/hostsig.py)
        from emu.linux.hostsig import siginfo_bytes
        return siginfo_bytes(p, sig, info)
    if info[0] == "raw":                   # rt_sigqueueinfo to itself
        return info[1]
    tid = info[0]
    if tid is None:
        return struct.pack("<iiii", sig, 0, SI_KERNEL, 0).ljust(128, b"\0")
    pt = p.posix_timers.get(tid)
    if pt is None:
        return struct.pack("<iiii", sig, 0, SI_TIMER, 0).ljust(128, b"\0")
    pt["last_overrun"], pt["overrun"] = pt["overrun"], 0
    return struct.pack("<iiiiiiQ", sig, 0, SI_TIMER, 0, tid, pt["last_overrun"], pt["value"]).ljust(128, b"\0")


def deliverable(p, sig: int) -> bool:
    """Would this signal, delivered now, run a handler or end the process
    (and so interrupt a sleep)? Not when blocked or ignored."""
    if p.signal_mask >> (sig - 1) & 1:
        return False
    act = p.signal_actions.get(sig)
    handler = act[0] if act else 0
    if handler == 1:
        return False
    return not (handler == 0 and sig in DEFAULT_IGNORE)


def interrupting(p) -> bool:
    """A pending signal that interrupts a wait."""
    bits = p.pending_signals
    sig = 1
    while bits:
        if bits & 1 and deliverable(p, sig):
            return True
        bits >>= 1
        sig += 1
    return False


def restart_after_signal(p) -> bool:
    """An interrupted call that Linux restarts (ERESTARTSYS): is the first
    signal to be delivered caught by a handler with SA_RESTART?"""
    bits = p.pending_signals
    sig = 1
    while bits:
        if bits & 1 and deliverable(p, sig):
            act = p.signal_actions.get(sig)
            if (not act or act[0] == 0) and sig in (19, 20, 21, 22):
                return True         # a stop: the call goes on after the SIGCONT
            return bool(act and act[0] not in (0, 1) and act[1] & 0x10000000)
        bits >>= 1
        sig += 1
    return False


def raise_signal(s, sig: int) -> None:
    """A signal the process sends itself (kill, raise, SIGPIPE): pending,
    delivered on the way back from the system call (after its result is in
    RAX, so the handler's frame returns it), or later if blocked."""
    s.p.pending_signals |= 1 << (sig - 1)


def deliver_pending(s) -> None:
    """Deliver the pending signals that are not blocked (lowest first; each
    handler gets its own frame, nested as Linux does). After a wait with a
    temporary signal mask (pselect6, ppoll, epoll_pwait, rt_sigsuspend) the
    frame keeps the caller's mask, to be restored by rt_sigreturn."""
    p = s.p
    sig = 1
    while p.pending_signals >> (sig - 1):
        bit = 1 << (sig - 1)
        if p.pending_signals & bit and not (p.signal_mask & bit and not UNBLOCKABLE & bit):
            p.pending_signals &= ~bit
            saved = p.saved_sigmask
            before = s.v.rsp
            info = siginfo_of(p, sig)
            s.deliver_signal(sig)
            if s.v.rsp != before:                  # a handler frame
                from emu.linux.sigframe import INFO_OFF, MASK_OFF
                if info is not None:
                    s.write(s.v.rsp + INFO_OFF, info)
                if saved is not None:              # it restores the caller's mask
                    s.write(s.v.rsp + MASK_OFF, struct.pack("<Q", saved))
                    p.saved_sigmask = None
        sig += 1
    if p.saved_sigmask is not None:
        p.signal_mask = p.saved_sigmask
        p.saved_sigmask = None


def check(s) -> None:
    """At a system call boundary or a timer stop of the run loop."""
    p = s.p
    t = p.current
    if t.exited or t.futex is not None:
        return
    if p.itimers:
        fire_due(s)
    if p.pending_signals or p.saved_sigmask is not None:
        deliver_pending(s)


def run_budget(p, v):
    """How many instructions the vCPU may run before the earliest timer is
    due (virtual time: exact; host time: a slice); None with no timer."""
    if not p.itimers:
        return None
    c = p.guest.clock
    if not c.virtual:
        return HOST_SLICE
    mono = c.monotonic_ns(v)
    target = None
    for deadline, _i, cpu, _sig, _id in p.itimers.values():
        # CPU time runs as fast as CLOCK_MONOTONIC while the guest computes
        t = mono + deadline - c.cputime_ns(v) if cpu else deadline
        target = t if target is None else min(target, t)
    cycles = -(-target * c.tsc_hz // NS) - v.tsc
    if cycles <= 0:
        return 1
    n = cycles / c.cycles_per_insn
    return max(1, int(n) + (n != int(n)))


def next_real_deadline(p):
    """The earliest CLOCK_MONOTONIC deadline of a timer that sends a signal
    (those can interrupt a wait)."""
    best = None
    for deadline, _i, cpu, sig, _id in p.itimers.values():
        if not cpu and sig is not None and (best is None or deadline < best):
            best = deadline
    return best


def wait(s, timeout_ns, poll_fn=None, sigmask=None, timerfds=(), host_fds=None):
    """A wait that a signal can interrupt: up to timeout_ns (None: forever)
    for poll_fn (see GuestClock.wait; None: a plain sleep), stopping at an
    ITIMER_REAL deadline when the signal would interrupt. sigmask: the
    signal mask during the wait (kept for the handler's frame if a signal
    interrupts it). timerfds: the timer fds among the polled ones (their
    expiries make them readable; a wait on timer fds alone is a sleep to
    the next expiry, with no host wait); host_fds: whether other fds are
    polled (default: poll_fn is given). Returns (result, elapsed ns,
    interrupted)."""
    p = s.p
    c = _clock(s)
    vcpus = [t.vcpu for t in p.threads]
    if host_fds is None:
        host_fds = poll_fn is not None and not timerfds
    old_mask = p.signal_mask
    if sigmask is not None:
        p.signal_mask = sigmask & ~UNBLOCKABLE
    elapsed = 0
    result = 0
    interrupted = False
    while True:
        if p.itimers:
            fire_due(s)
        if interrupting(p):
            interrupted = True
            break
        for tf in timerfds:
            tf.sync(s)
        if not host_fds and poll_fn is not None:
            result = poll_fn(0)              # timer fds only: ready ones answer at once
            if result:
                break
        left = None if timeout_ns is None else timeout_ns - elapsed
        cap = left
        now = c.now_ns(s.v, 1)
        for dl in [next_real_deadline(p)] + [tf.mono_deadline(s) for tf in timerfds]:
            if dl is not None and (cap is None or dl - now < cap):
                cap = max(0, dl - now)
        bridge = p.bridge
        if cap is None and not host_fds:
            if bridge is None:
                from emu.linux.process import GuestKilled
                import logging
                logging.getLogger(__name__).error("emu: the process waits for something that will never "
                                                  "happen (deadlock)")
                raise GuestKilled(9)
            pl = bridge.poller()           # only a signal (from another process) ends it
            # (at most RECHECK_MS at a time: a signal whose Python handler has
            # not yet run when the pipe was drained is seen at the next look)
            fn, blocks = (lambda t: len(bridge.poll(pl, RECHECK_MS if t is None else min(ceil_s(t), RECHECK_MS)))), True
        else:
            fn = poll_fn if host_fds else None
            blocks = host_fds or not c.virtual
        if bridge is not None and blocks:
            # a signal from another process (or the terminal) interrupts the host wait
            import time as _time
            t0 = _time.monotonic_ns()
            bridge.interruptible = True
            try:
                result, el = c.wait(vcpus, cap, fn)
            except Interrupted:
                result, el = 0, _time.monotonic_ns() - t0
                if c.virtual:
                    c.sleep(vcpus, el)
            finally:
                bridge.interruptible = False
        else:
            result, el = c.wait(vcpus, cap, fn)
        elapsed += el
        if result:
            break
        if timeout_ns is not None and elapsed >= timeout_ns:
            if timerfds and poll_fn is not None:     # a timer fd due at this very moment
                for tf in timerfds:
                    tf.sync(s)
                result = poll_fn(0)
            break                       # timed out (a signal due at the same moment is delivered after)
    if sigmask is not None:
        if interrupted:
            p.saved_sigmask = old_mask      # restored after the handler's frame is set up
        else:
            p.signal_mask = old_mask
    return result, elapsed, interrupted


def sleep(s, ns: int):
    """nanosleep: (interrupted, remaining ns)."""
    _r, elapsed, interrupted = wait(s, max(0, ns))
    return interrupted, max(0, ns - elapsed) if interrupted else 0


def read_sigmask(s, addr, size):
    """The temporary signal mask of pselect6/ppoll/epoll_pwait: None for a
    NULL pointer; raises ValueError for a wrong sigsetsize (EINVAL)."""
    if not addr:
        return None
    if size != 8:
        raise ValueError("sigsetsize")
    (m,) = struct.unpack("<Q", s.read(addr, 8))
    return m


def ceil_s(timeout_s):
    """A host wait in seconds as poll/epoll milliseconds (rounded up; None forever)."""
    if timeout_s is None:
        return None
    ms = timeout_s * 1000.0
    return int(ms) + (ms != int(ms))


# ---- timerfd ----
class TimerFd:
    """A timerfd (fs/timerfd.c) on the guest clock. A host eventfd stands
    behind it, so select, poll and epoll see it readable: its counter gets
    the expirations when a wait or read finds the timer due."""

    def __init__(self, clock: int, efd: int):
        self.clock = clock           # CLOCK_REALTIME, MONOTONIC, BOOTTIME (and the _ALARM ones)
        self.efd = efd
        self.deadline = None         # ns on self.clock
        self.interval = 0
        self.ticks = 0

    def now(self, s) -> int:
        return _clock(s).now_ns(s.v, self.clock)

    def mono_deadline(self, s):
        if self.deadline is None:
            return None
        c = _clock(s)
        return self.deadline - (c.now_ns(s.v, self.clock) - c.now_ns(s.v, 1))

    def sync(self, s) -> None:
        if self.deadline is None:
            return
        now = self.now(s)
        if now < self.deadline:
            return
        if self.interval:
            n = (now - self.deadline) // self.interval + 1
            self.deadline += n * self.interval
        else:
            n = 1
            self.deadline = None
        self.ticks += n
        import os
        os.eventfd_write(self.efd, n)

    def drain(self) -> None:
        import os
        self.ticks = 0
        try:
            os.eventfd_read(self.efd)
        except BlockingIOError:
            pass

    def set(self, s, value: int, interval: int, absolute: bool) -> None:
        self.drain()
        self.interval = interval
        if value == 0:
            self.deadline = None
        else:
            self.deadline = value if absolute else self.now(s) + value

    def get(self, s) -> tuple[int, int]:
        self.sync(s)
        if self.deadline is None:
            return 0, 0
        return max(1, self.deadline - self.now(s)), self.interval


def timerfds_of(files) -> list:
    return [f.timerfd for f in files if f is not None and getattr(f, "timerfd", None) is not None]


def wait_ready(s, host_fd: int, events: int = 1):
    """Before a blocking host call (read, accept...) while ITIMER_REAL runs:
    wait until the fd is ready (POLLIN by default), so the timer's signal
    can interrupt the wait as it interrupts a blocked read on Linux. None:
    go ahead; else the result (ERESTARTSYS: EINTR, or the call runs again
    after an SA_RESTART handler)."""
    import os
    import select
    if next_real_deadline(s.p) is None and s.p.bridge is None:
        return None
    try:
        if not os.get_blocking(host_fd):
            return None
    except OSError:
        return None
    poller = select.poll()
    poller.register(host_fd, events)
    _r, _el, interrupted = wait(s, None, lambda t: len(poller.poll(ceil_s(t))), host_fds=True)
    if interrupted:
        from emu.linux.syscalls import ERESTARTSYS
        return ERESTARTSYS
    return None


def wait_child(s, pid: int):
    """Before a blocking wait4/waitid while ITIMER_REAL runs: wait (through
    pidfds) until a child it waits for has ended, so the timer's signal can
    interrupt the wait. None: go ahead; else ERESTARTSYS."""
    import os
    import select
    p = s.p
    if p.bridge is not None:
        return None
    if next_real_deadline(p) is None or not hasattr(os, "pidfd_open"):
        return None
    pids = [pid] if pid > 0 else sorted(getattr(p, "children", ()))
    fds = []
    try:
        for c in pids:
            try:
                fds.append(os.pidfd_open(c))
            except OSError:
                pass
        if not fds:
            return None
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        _r, _el, interrupted = wait(s, None, lambda t: len(poller.poll(ceil_s(t))), host_fds=True)
    finally:
        for fd in fds:
            os.close(fd)
    if interrupted:
        from emu.linux.syscalls import ERESTARTSYS
        return ERESTARTSYS
    return None
