"""Process, identity, time and signal system calls."""
from __future__ import annotations

import os
import struct
import time

from emu.linux import errno as E
from emu.linux.syscalls import s32, s64, syscall

ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004


@syscall(60, "exit")
def sys_exit(s, status, *_):
    from emu.linux.process import GuestExit
    if len([t for t in s.p.threads if not t.exited]) > 1:
        from emu.linux.threads import thread_exit
        thread_exit(s, status)
        return None
    raise GuestExit(status & 0xFF)


@syscall(231, "exit_group")
def sys_exit_group(s, status, *_):
    from emu.linux.process import GuestExit
    raise GuestExit(status & 0xFF)


@syscall(158, "arch_prctl")
def sys_arch_prctl(s, code, addr, *_):
    v = s.v
    if code == ARCH_SET_FS:
        v.fs_base = addr
    elif code == ARCH_SET_GS:
        v.gs_base = addr
    elif code == ARCH_GET_FS:
        s.write(addr, struct.pack("<Q", v.fs_base))
    elif code == ARCH_GET_GS:
        s.write(addr, struct.pack("<Q", v.gs_base))
    else:
        return -E.EINVAL
    return 0


@syscall(218, "set_tid_address")
def sys_set_tid_address(s, addr, *_):
    s.p.current.clear_tid = addr
    return s.p.current.tid


@syscall(273, "set_robust_list")
def sys_set_robust_list(s, head, length, *_):
    return 0 if length == 24 else -E.EINVAL


@syscall(39, "getpid")
def sys_getpid(s, *_):
    return s.p.pid


@syscall(186, "gettid")
def sys_gettid(s, *_):
    return s.p.current.tid


@syscall(110, "getppid")
def sys_getppid(s, *_):
    return os.getppid() if s.p.seed is None else 1


for _nr, _name, _fn in ((102, "getuid", os.getuid), (107, "geteuid", os.geteuid),
                        (104, "getgid", os.getgid), (108, "getegid", os.getegid)):
    syscall(_nr, _name)(lambda s, *a, _f=_fn: _f())


@syscall(63, "uname")
def sys_uname(s, buf, *_):
    u = os.uname()
    g = getattr(s.p, "guest", None)
    release, version = g.uname() if g is not None else ("6.1.0-emu", "#1 SMP")
    fields = ("Linux", u.nodename, release, version, "x86_64", "(none)")
    s.write(buf, b"".join(f.encode("utf-8", "surrogateescape")[:64].ljust(65, b"\0") for f in fields))
    return 0


@syscall(302, "prlimit64")
def sys_prlimit64(s, pid, resource, new, old, *_):
    pid = s32(pid)
    if pid not in (0, s.p.pid) and (s.p.ptree is None or s.p.ptree.host_pid(pid) is None):
        return -E.ESRCH                              # only the guest's own process tree
    if resource >= 16:                               # RLIM_NLIMITS
        return -E.EINVAL
    if old:
        s.write(old, struct.pack("<QQ", *_rlimit(resource)))
    return 0


@syscall(97, "getrlimit")
def sys_getrlimit(s, resource, old, *_):
    if resource >= 16:                               # RLIM_NLIMITS
        return -E.EINVAL
    s.write(old, struct.pack("<QQ", *_rlimit(resource)))
    return 0


def _rlimit(resource):
    inf = (1 << 64) - 1
    if resource == 3:        # RLIMIT_STACK
        return (8 << 20, inf)
    if resource == 7:        # RLIMIT_NOFILE
        return (1024, 4096)
    return (inf, inf)


@syscall(318, "getrandom")
def sys_getrandom(s, buf, count, flags, *_):
    count = min(count, 1 << 20)
    data = bytes(s.p.rng.getrandbits(8) for _ in range(count)) if s.p.seed is not None else os.urandom(count)
    s.write(buf, data)
    return count


# ---- time: every clock comes from the process's GuestClock (emu/hypervisor/
# timekeeping.py): the host clocks, or with time="virtual" a deterministic
# clock derived from the TSC (retired instructions); sleeping advances it ----

def _clock(s):
    g = getattr(s.p, "guest", None)
    return g.clock if g is not None else None


def _now_ns(s, clock: int) -> int:
    c = _clock(s)
    if c is not None:
        return c.now_ns(s.v, clock)
    if clock in (1, 4, 6, 7):          # MONOTONIC, MONOTONIC_RAW, _COARSE, BOOTTIME
        return time.monotonic_ns()
    if clock in (2, 3):                # process/thread CPU time
        return time.process_time_ns()
    return time.time_ns()


def _sleep_ns(s, ns: int):
    """Sleep on the guest clock; a timer's signal may cut it short:
    (interrupted, remaining ns)."""
    from emu.linux.timers import sleep
    return sleep(s, ns)


def _timespec(s, addr):
    """A struct timespec in ns, or None when invalid (EINVAL)."""
    sec, nsec = struct.unpack("<qq", s.read(addr, 16))
    if sec < 0 or not 0 <= nsec < 10**9:
        return None
    return sec * 10**9 + nsec


@syscall(228, "clock_gettime")
def sys_clock_gettime(s, clock, tp, *_):
    from emu.hypervisor.timekeeping import GuestClock
    clock = s32(clock)
    if not GuestClock.valid_clock(clock):
        return -E.EINVAL
    ns = _now_ns(s, clock)
    s.write(tp, struct.pack("<qq", ns // 10**9, ns % 10**9))
    return 0


@syscall(229, "clock_getres")
def sys_clock_getres(s, clock, tp, *_):
    from emu.hypervisor.timekeeping import GuestClock
    clock = s32(clock)
    if not GuestClock.valid_clock(clock):
        return -E.EINVAL
    if tp:
        c = _clock(s)
        s.write(tp, struct.pack("<qq", 0, c.resolution_ns(clock) if c is not None else 1))
    return 0


@syscall(96, "gettimeofday")
def sys_gettimeofday(s, tv, tz, *_):
    ns = _now_ns(s, 0)
    if tv:
        s.write(tv, struct.pack("<qq", ns // 10**9, (ns % 10**9) // 1000))
    return 0


@syscall(201, "time")
def sys_time(s, tloc, *_):
    t = _now_ns(s, 0) // 10**9
    if tloc:
        s.write(tloc, struct.pack("<q", t))
    return t


@syscall(35, "nanosleep")
def sys_nanosleep(s, req, rem, *_):
    ns = _timespec(s, req)
    if ns is None:
        return -E.EINVAL
    interrupted, left = _sleep_ns(s, ns)
    if interrupted:
        if rem:
            s.write(rem, struct.pack("<qq", left // 10**9, left % 10**9))
        return -E.EINTR
    return 0


@syscall(230, "clock_nanosleep")
def sys_clock_nanosleep(s, clock, flags, req, rem, *_):
    if clock == 3 or clock not in (0, 1, 2, 7, 8, 9, 11):      # THREAD_CPUTIME, unknown clocks
        return -E.EINVAL
    delay = _timespec(s, req)
    if delay is None:
        return -E.EINVAL
    if flags & 1:            # TIMER_ABSTIME
        delay -= _now_ns(s, clock)
    interrupted, left = _sleep_ns(s, delay)
    if interrupted:
        if rem and not flags & 1:
            s.write(rem, struct.pack("<qq", left // 10**9, left % 10**9))
        return -E.EINTR
    return 0


@syscall(37, "alarm")
def sys_alarm(s, seconds, *_):
    """SIGALRM after `seconds` on CLOCK_MONOTONIC; returns the seconds the
    previous alarm had left (rounded as Linux does)."""
    from emu.linux.timers import ITIMER_REAL, set_timer
    left, _i = set_timer(s, ITIMER_REAL, (seconds & 0xFFFFFFFF) * 10**9, 0)
    sec, usec = left // 10**9, left % 10**9 // 1000
    if (sec == 0 and usec) or usec >= 500_000:
        sec += 1
    return sec


def _timeval(raw, off):
    sec, usec = struct.unpack_from("<qq", raw, off)
    if sec < 0 or not 0 <= usec < 10**6:
        return None
    return sec * 10**9 + usec * 1000


def _put_itimerval(s, addr, value_ns, interval_ns):
    us = lambda ns: (ns // 10**9, (ns % 10**9 + 999) // 1000) if ns % 1000 else (ns // 10**9, ns % 10**9 // 1000)
    s.write(addr, struct.pack("<qqqq", *us(interval_ns), *us(value_ns)))


@syscall(38, "setitimer")
def sys_setitimer(s, which, new, old, *_):
    from emu.linux.timers import TIMER_SIGNAL, set_timer
    if which not in TIMER_SIGNAL:
        return -E.EINVAL
    value = interval = 0
    if new:
        raw = s.read(new, 32)
        interval, value = _timeval(raw, 0), _timeval(raw, 16)
        if interval is None or value is None:
            return -E.EINVAL
    ov, oi = set_timer(s, which, value, interval)
    if old:
        _put_itimerval(s, old, ov, oi)
    return 0


@syscall(36, "getitimer")
def sys_getitimer(s, which, cur, *_):
    from emu.linux.timers import TIMER_SIGNAL, get_timer
    if which not in TIMER_SIGNAL:
        return -E.EINVAL
    _put_itimerval(s, cur, *get_timer(s, which))
    return 0


@syscall(34, "pause")
def sys_pause(s, *_):
    """Sleep until a signal runs a handler or ends the process."""
    from emu.linux.timers import wait
    wait(s, None)
    return -E.EINTR


@syscall(130, "rt_sigsuspend")
def sys_rt_sigsuspend(s, mask, size, *_):
    """pause() with a temporary signal mask (the handler's frame restores the caller's)."""
    from emu.linux.timers import wait
    if size != 8:
        return -E.EINVAL
    (m,) = struct.unpack("<Q", s.read(mask, 8))
    wait(s, None, sigmask=m)
    return -E.EINTR


@syscall(128, "rt_sigtimedwait")
def sys_rt_sigtimedwait(s, uthese, uinfo, uts, size, *_):
    """Take a pending signal of the set (without running its handler),
    waiting up to the timeout on the guest clock: EAGAIN when it passes,
    EINTR when another signal's handler interrupts."""
    from emu.linux.timers import UNBLOCKABLE, siginfo_of, wait
    if size != 8:
        return -E.EINVAL
    (these,) = struct.unpack("<Q", s.read(uthese, 8))
    these &= ~UNBLOCKABLE
    timeout = None
    if uts:
        timeout = _timespec(s, uts)
        if timeout is None:
            return -E.EINVAL
    p = s.p
    # the signals waited for are not delivered meanwhile (as if blocked)
    mask = p.signal_mask | these
    r, _el, interrupted = wait(s, timeout, lambda t: p.pending_signals & these, sigmask=mask, host_fds=False)
    got = p.pending_signals & these
    if not got:
        return -E.EINTR if interrupted else -E.EAGAIN
    sig = (got & -got).bit_length()
    p.pending_signals &= ~(1 << (sig - 1))
    info = siginfo_of(p, sig)         # a timer's (SI_KERNEL, SI_TIMER), else SI_USER from this process
    if uinfo:
        s.write(uinfo, info or struct.pack("<iiiiII", sig, 0, 0, 0, p.pid, 0).ljust(128, b"\0"))
    return sig


@syscall(127, "rt_sigpending")
def sys_rt_sigpending(s, out, size, *_):
    if size > 8:
        return -E.EINVAL
    s.write(out, struct.pack("<Q", s.p.pending_signals & s.p.signal_mask)[:size])
    return 0


# ---- POSIX timers (timer_create; they run in emu/linux/timers.py) ----
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID = 0, 1, 4


@syscall(222, "timer_create")
def sys_timer_create(s, clock, sevp, out, *_):
    from emu.hypervisor.timekeeping import GuestClock
    p = s.p
    clock = s32(clock)
    if not GuestClock.valid_clock(clock) or clock in (4, 5, 6):     # no timers on RAW and COARSE clocks
        return -E.EINVAL
    tid = 0
    while tid in p.posix_timers:
        tid += 1
    if sevp:
        value, signo, notify = struct.unpack("<Qii", s.read(sevp, 16))
        if notify not in (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID) or \
                notify != SIGEV_NONE and not 1 <= signo <= 64:
            return -E.EINVAL
    else:
        value, signo, notify = tid, 14, SIGEV_SIGNAL        # SIGALRM, the timer id as the value
    p.posix_timers[tid] = {"clock": clock, "signo": None if notify == SIGEV_NONE else signo, "value": value,
                           "overrun": 0, "last_overrun": 0}
    s.write(out, struct.pack("<i", tid))
    return 0


def _posix_timer(s, tid):
    return s.p.posix_timers.get(s32(tid))


@syscall(223, "timer_settime")
def sys_timer_settime(s, tid, flags, new, old, *_):
    from emu.linux.timers import POSIX_KEY, get_timer
    pt = _posix_timer(s, tid)
    if pt is None:
        return -E.EINVAL
    interval, value = _timespec(s, new), _timespec(s, new + 16)
    if interval is None or value is None:
        return -E.EINVAL
    key = POSIX_KEY + s32(tid)
    if old:
        _put_itimerspec(s, old, *get_timer(s, key))
    s.p.itimers.pop(key, None)
    if value:
        clock = pt["clock"]
        cpu = clock in (2, 3) or clock < 0
        c = _clock(s)
        if flags & 1:                      # TIMER_ABSTIME: on the timer's clock, to CLOCK_MONOTONIC
            deadline = value if cpu else value - (_now_ns(s, clock) - _now_ns(s, 1))
        else:
            deadline = (c.cputime_ns(s.v) if cpu else _now_ns(s, 1)) + value
        s.p.itimers[key] = [deadline, interval, cpu, pt["signo"], s32(tid)]
    return 0


@syscall(224, "timer_gettime")
def sys_timer_gettime(s, tid, cur, *_):
    from emu.linux.timers import POSIX_KEY, get_timer
    if _posix_timer(s, tid) is None:
        return -E.EINVAL
    _put_itimerspec(s, cur, *get_timer(s, POSIX_KEY + s32(tid)))
    return 0


@syscall(225, "timer_getoverrun")
def sys_timer_getoverrun(s, tid, *_):
    pt = _posix_timer(s, tid)
    return -E.EINVAL if pt is None else min(pt["last_overrun"], 0x7FFFFFFF)


@syscall(226, "timer_delete")
def sys_timer_delete(s, tid, *_):
    from emu.linux.timers import POSIX_KEY
    if s.p.posix_timers.pop(s32(tid), None) is None:
        return -E.EINVAL
    s.p.itimers.pop(POSIX_KEY + s32(tid), None)
    return 0


# ---- timerfd (the timer lives in emu/linux/timers.py) ----
TFD_TIMER_ABSTIME, TFD_NONBLOCK, TFD_CLOEXEC = 1, 0o4000, 0o2000000


def _timerfd(s, fd):
    f = s.fd(fd)
    return getattr(f, "timerfd", None)


@syscall(283, "timerfd_create")
def sys_timerfd_create(s, clock, flags, *_):
    from emu.linux.fdtable import OpenFile
    from emu.linux.timers import TimerFd
    if s32(clock) not in (0, 1, 7, 8, 9) or flags & ~(TFD_NONBLOCK | TFD_CLOEXEC):
        return -E.EINVAL
    efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    f = OpenFile(efd, "anon_inode:[timerfd]", 2 | (flags & TFD_NONBLOCK))
    f.timerfd = TimerFd(s32(clock), efd)
    return s.p.fds.install(f, cloexec=bool(flags & TFD_CLOEXEC))


def _put_itimerspec(s, addr, value, interval):
    s.write(addr, struct.pack("<qqqq", interval // 10**9, interval % 10**9, value // 10**9, value % 10**9))


@syscall(286, "timerfd_settime")
def sys_timerfd_settime(s, fd, flags, new, old, *_):
    tf = _timerfd(s, fd)
    if tf is None or flags & ~3:
        return -E.EINVAL
    interval, value = _timespec(s, new), _timespec(s, new + 16)
    if interval is None or value is None:
        return -E.EINVAL
    if old:
        _put_itimerspec(s, old, *tf.get(s))
    tf.set(s, value, interval, bool(flags & TFD_TIMER_ABSTIME))
    return 0


@syscall(287, "timerfd_gettime")
def sys_timerfd_gettime(s, fd, cur, *_):
    tf = _timerfd(s, fd)
    if tf is None:
        return -E.EINVAL
    _put_itimerspec(s, cur, *tf.get(s))
    return 0


def timerfd_read(s, f, buf, count):
    """read(2) of a timerfd: the expirations since the last read (u64);
    blocks until the next one (virtual time: jumps to it), EAGAIN if
    non-blocking."""
    from emu.linux.timers import wait
    tf = f.timerfd
    if count < 8:
        return -E.EINVAL
    tf.sync(s)
    if not tf.ticks:
        if f.flags & TFD_NONBLOCK:
            return -E.EAGAIN
        _r, _el, interrupted = wait(s, None, lambda t: tf.ticks, timerfds=[tf])
        if interrupted and not tf.ticks:
            from emu.linux.syscalls import ERESTARTSYS
            return ERESTARTSYS           # EINTR, or the read runs again after an SA_RESTART handler
    n = tf.ticks
    tf.drain()
    s.write(buf, struct.pack("<Q", n))
    return 8


@syscall(24, "sched_yield")
def sys_sched_yield(s, *_):
    return 0


@syscall(99, "sysinfo")
def sys_sysinfo(s, info, *_):
    c = _clock(s)
    ns = c.uptime(s.v)[0] if c is not None else time.monotonic_ns() - s.start_ns
    up = -(-ns // 10**9)          # CLOCK_BOOTTIME seconds, rounded up (kernel/sys.c do_sysinfo)
    ram = s.m.phys.ram_size
    procs = len(s.p.ptree.members()) if s.p.ptree is not None else 1
    # struct sysinfo (include/uapi/linux/sysinfo.h): loads, then six RAM and
    # swap sizes, procs and its pad, the high-memory pair, mem_unit (bytes)
    s.write(info, struct.pack("<qQQQQQQQQQHH4xQQI", up, 0, 0, 0, ram, ram // 2, 0, 0, 0, 0, procs, 0, 0, 0,
                              1).ljust(112, b"\0"))
    return 0


@syscall(95, "umask")
def sys_umask(s, mask, *_):
    return os.umask(mask & 0o777)


@syscall(13, "rt_sigaction")
def sys_rt_sigaction(s, sig, act, oact, sigsetsize, *_):
    if not 1 <= sig <= 64 or sig in (9, 19):
        return -E.EINVAL
    if oact:
        old = s.p.signal_actions.get(sig, (0, 0, 0, 0))
        s.write(oact, struct.pack("<QQQQ", *old))
    if act:
        s.p.signal_actions[sig] = struct.unpack("<QQQQ", s.read(act, 32))
    return 0


@syscall(14, "rt_sigprocmask")
def sys_rt_sigprocmask(s, how, nset, oset, sigsetsize, *_):
    if oset:
        s.write(oset, struct.pack("<Q", s.p.signal_mask))
    if nset:
        (m,) = struct.unpack("<Q", s.read(nset, 8))
        m &= ~((1 << 8) | (1 << 18))       # SIGKILL and SIGSTOP cannot be blocked
        if how == 0:
            s.p.signal_mask |= m
        elif how == 1:
            s.p.signal_mask &= ~m
        elif how == 2:
            s.p.signal_mask = m
        else:
            return -E.EINVAL
    return 0


@syscall(131, "sigaltstack")
def sys_sigaltstack(s, ss, oss, *_):
    cur = getattr(s.p, "altstack", (0, 2, 0))
    if oss:
        s.write(oss, struct.pack("<QiiQ", cur[0], cur[1], 0, cur[2]))
    if ss:
        sp, flags, _pad, size = struct.unpack("<QiiQ", s.read(ss, 24))
        s.p.altstack = (sp, flags, size)
    return 0


def _ours(p, pid: int) -> bool:
    return pid == p.pid or any(t.tid == pid and not t.exited for t in p.threads)


def _send(s, pid: int, sig: int, info: bytes | None = None) -> int:
    """kill(2)'s targets: this process (or one of its threads), one process
    of the guest tree, a process group, or every guest process (-1). Other
    processes of the tree get the host signal of the same number
    (emu/linux/hostsig.py); host processes outside the tree are invisible
    to the guest (ESRCH)."""
    p = s.p
    if not 0 <= sig <= 64:
        return -E.EINVAL
    if pid > 0 and _ours(p, pid) or p.ptree is None and pid in (0, -1):
        if sig:
            from emu.linux.timers import raise_signal
            raise_signal(s, sig)         # delivered on the way back, after RAX holds the result
            if info is not None:
                p.sig_info[sig] = ("raw", info)
        return 0
    if p.ptree is None:
        return -E.ESRCH
    if pid > 0:
        host = p.ptree.host_pid(pid)
        if host is None:
            return -E.ESRCH
        if info is not None:
            return _host_sigqueue(host, sig, info)
        os.kill(host, sig)
        return 0
    if pid == -1:                        # every process it may signal but itself
        sent = 0
        for host in p.ptree.members():
            if host != os.getpid():
                try:
                    os.kill(host, sig)
                    sent += 1
                except ProcessLookupError:
                    pass
        return 0 if sent else -E.ESRCH
    # a process group: its guest members only. The host group also holds
    # processes the guest cannot see (the shell that started emu, the
    # application that embeds it, its worker processes): never theirs.
    pgid = os.getpgrp() if pid == 0 else -pid
    members = [h for h in p.ptree.members() if _pgid(h) == pgid]
    if not members:
        return -E.ESRCH                  # no guest process in that group
    me = os.getpid()
    for host in members:
        if host != me:
            try:
                os.kill(host, sig)
            except ProcessLookupError:
                pass
    if me in members:
        os.kill(me, sig)                 # the caller last, as its signal may end it
    return 0


def _pgid(host: int) -> int:
    try:
        return os.getpgid(host)
    except OSError:
        return -1


def _host_sigqueue(host: int, sig: int, info: bytes) -> int:
    """rt_sigqueueinfo to another process of the tree: the host call, with
    the guest's siginfo (the kernel checks its si_code as for the guest)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(bytes(info[:128]).ljust(128, b"\0"), 128)
    if libc.syscall(129, host, sig, buf) < 0:
        return -ctypes.get_errno()
    return 0


@syscall(62, "kill")
def sys_kill(s, pid, sig, *_):
    return _send(s, s32(pid), s32(sig))


@syscall(234, "tgkill")
def sys_tgkill(s, tgid, tid, sig, *_):
    tgid, tid = s32(tgid), s32(tid)
    if tgid <= 0 or tid <= 0:
        return -E.EINVAL
    if tgid == s.p.pid:
        return _send(s, tid, s32(sig)) if _ours(s.p, tid) else -E.ESRCH
    return _send(s, tgid, s32(sig)) if tid == tgid else -E.ESRCH


@syscall(200, "tkill")
def sys_tkill(s, tid, sig, *_):
    return -E.EINVAL if s32(tid) <= 0 else _send(s, s32(tid), s32(sig))


@syscall(129, "rt_sigqueueinfo")
def sys_rt_sigqueueinfo(s, pid, sig, uinfo, *_):
    info = s.read(uinfo, 128)
    (code,) = struct.unpack_from("<i", info, 8)
    pid = s32(pid)
    if (code >= 0 or code == -6) and pid != s.p.pid:      # only the kernel sends those to others
        return -E.EPERM
    if pid <= 0:
        return -E.ESRCH if pid == 0 else -E.EINVAL
    return _send(s, pid, s32(sig), info)


@syscall(297, "rt_tgsigqueueinfo")
def sys_rt_tgsigqueueinfo(s, tgid, tid, sig, uinfo, *_):
    if s32(tgid) != s.p.pid and s32(tid) != s32(tgid):
        return -E.ESRCH
    return sys_rt_sigqueueinfo(s, tgid, sig, uinfo)


@syscall(202, "futex")
def sys_futex(s, uaddr, op, val, timeout, uaddr2, val3):
    from emu.linux.threads import futex_wait, futex_wake
    cmd = op & 0x7F
    if cmd in (0, 9):        # FUTEX_WAIT, FUTEX_WAIT_BITSET
        r = futex_wait(s, uaddr, val, timeout, val3 if cmd == 9 else 0xFFFFFFFF)
        if r is None:
            # a shared futex (no FUTEX_PRIVATE_FLAG) in MAP_SHARED memory: another
            # process may change the word and wake it (Process._switch watches it)
            from emu.linux.mm import MAP_SHARED
            vma = s.p.mm.find(uaddr) if not op & 128 else None
            t = s.p.current
            t.futex_shared = vma is not None and bool(vma.flags & MAP_SHARED)
            t.futex_val = val & 0xFFFFFFFF
            # when a timed wait ends, on the guest's CLOCK_MONOTONIC: it times
            # out then even while other threads run (Process._switch)
            from emu.hypervisor.timekeeping import futex_deadline_ns
            t.futex_deadline = futex_deadline_ns(s.p, t) if timeout else None
        return r
    if cmd == 1:             # FUTEX_WAKE
        return futex_wake(s, uaddr, val)
    if cmd == 10:            # FUTEX_WAKE_BITSET
        return futex_wake(s, uaddr, val, val3)
    if cmd in (3, 4):        # FUTEX_REQUEUE, FUTEX_CMP_REQUEUE
        if cmd == 4:
            (cur,) = struct.unpack("<I", s.read(uaddr, 4))
            if cur != val3 & 0xFFFFFFFF:
                return -E.EAGAIN
        n = futex_wake(s, uaddr, val)
        moved = 0
        for t in s.p.threads:
            if moved >= timeout:      # val2 travels in the timeout argument
                break
            if t.futex == uaddr and not t.exited:
                t.futex = uaddr2
                moved += 1
        return n + moved
    if cmd == 5:             # FUTEX_WAKE_OP: wake on uaddr, and conditionally on uaddr2
        return futex_wake(s, uaddr, val) + _wake_op(s, uaddr2, timeout, val3)
    return -E.ENOSYS


def _wake_op(s, uaddr2, nr2, encoded):
    from emu.linux.threads import futex_wake
    op, cmp = (encoded >> 28) & 15, (encoded >> 24) & 15
    oparg, cmparg = (encoded >> 12) & 0xFFF, encoded & 0xFFF
    if op & 8:
        oparg = 1 << oparg
        op &= 7
    (old,) = struct.unpack("<i", s.read(uaddr2, 4))
    new = [oparg, old + oparg, old | oparg, old & ~oparg, old ^ oparg][op] if op < 5 else old
    s.write(uaddr2, struct.pack("<i", ((new + (1 << 31)) % (1 << 32)) - (1 << 31)))
    ok = [old == cmparg, old != cmparg, old < cmparg, old <= cmparg, old > cmparg, old >= cmparg][cmp] if cmp < 6 else False
    return futex_wake(s, uaddr2, nr2) if ok else 0


# ---- memory locking, tracing, credentials ----

@syscall(149, "mlock")
def sys_mlock(s, addr, length, *_):
    return 0                        # guest memory never leaves RAM: locked already


@syscall(150, "munlock")
def sys_munlock(s, addr, length, *_):
    return 0


@syscall(101, "ptrace")
def sys_ptrace(s, request, pid, addr, data, *_):
    """PTRACE_TRACEME succeeds, as for a process no debugger watches (emu is
    not one the guest can see); tracing other processes is not offered."""
    if request == 0:
        return 0
    return -E.EPERM


def _credentials(fn, *ids):
    try:
        fn(*ids)
    except PermissionError:
        return -E.EPERM
    return 0


@syscall(105, "setuid")
def sys_setuid(s, uid, *_):
    return _credentials(os.setuid, s32(uid))


@syscall(106, "setgid")
def sys_setgid(s, gid, *_):
    return _credentials(os.setgid, s32(gid))


@syscall(113, "setreuid")
def sys_setreuid(s, r, e, *_):
    return _credentials(os.setreuid, _uid(r), _uid(e))


@syscall(114, "setregid")
def sys_setregid(s, r, e, *_):
    return _credentials(os.setregid, _uid(r), _uid(e))


def _uid(x: int) -> int:
    """A uid_t/gid_t argument: 32 bits unsigned, (uid_t)-1 "leave it"."""
    x &= 0xFFFFFFFF
    return -1 if x == 0xFFFFFFFF else x


@syscall(117, "setresuid")
def sys_setresuid(s, r, e, sv, *_):
    return _credentials(os.setresuid, s32(r), s32(e), s32(sv))


@syscall(119, "setresgid")
def sys_setresgid(s, r, e, sv, *_):
    return _credentials(os.setresgid, s32(r), s32(e), s32(sv))


@syscall(116, "setgroups")
def sys_setgroups(s, size, lst, *_):
    n = s32(size)
    if n < 0 or n > 65536:
        return -E.EINVAL
    groups = list(struct.unpack("<%dI" % n, s.read(lst, 4 * n))) if n else []
    if any(g == 0xFFFFFFFF for g in groups):       # (gid_t)-1 is no group (kernel/groups.c: EINVAL)
        return -E.EINVAL
    try:
        return _credentials(os.setgroups, groups)
    except (OverflowError, ValueError):
        return -E.EINVAL


@syscall(434, "pidfd_open")
def sys_pidfd_open(s, pid, flags, *_):
    """A descriptor for a process of the guest's tree: the host's pidfd of
    the host process that runs it (readable when it exits, as on Linux)."""
    from emu.linux.fdtable import OpenFile
    pid = s32(pid)
    if flags & ~0o4000 or pid <= 0:             # PIDFD_NONBLOCK is O_NONBLOCK
        return -E.EINVAL
    p = s.p
    hpid = p.ptree.host_pid(pid) if p.ptree is not None else None
    if hpid is None and pid == p.pid:
        hpid = os.getpid()
    if hpid is None:
        return -E.ESRCH
    hfd = os.pidfd_open(hpid, flags & 0o4000)
    return p.fds.install(OpenFile(hfd, "anon_inode:[pidfd]", 2 | (flags & 0o4000)), cloexec=True)
