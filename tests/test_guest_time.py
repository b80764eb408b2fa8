"""One guest time: every clock the Linux personality shows (TSC,
clock_gettime, gettimeofday, time, /proc/uptime, sysinfo, times) and every
timed wait (nanosleep, select, pselect6, poll, ppoll, epoll_wait, pause,
rt_sigsuspend, rt_sigtimedwait, alarm, setitimer and POSIX timer signals,
timerfds) run on the GuestClock, so a guest cannot tell
from timing that it runs slower than hardware; with --time virtual runs are
deterministic and waits without anything to wait for take no host time."""
import os
import re
import struct
import subprocess
import sys
import time

import pytest

import emu as _emu_pkg
from emu.hypervisor import Guest, GuestClock
from emu.hypervisor.timekeeping import NS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = os.path.join(ROOT, "guests", "linux")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
BOOT = GuestClock().boot_ns


def emu_run(*args):
    env = dict(os.environ, PYTHONPATH=EMU_PATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # not from the source tree: `python -m` would import ./emu instead of the installed package
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=os.path.dirname(ROOT))


def expected(libc):
    with open(os.path.join(LINUX, "expected", "clocks.%s.out" % libc)) as f:
        return f.read()


# ---- the guest program guests/linux/clocks.c ----

def test_clocks_guest_virtual_repeats_and_agrees():
    """Two virtual runs print the same raw deltas and retire the same
    instructions; every interval's clocks agree and lasted as asked (the
    expected output is the program's native output on Linux)."""
    prog = os.path.join(LINUX, "bin", "clocks.glibc")
    runs = [emu_run("--time", "virtual", "--seed", "5", "--stats", prog, "-v") for _ in range(2)]
    a, b = runs
    assert a.returncode == b.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    n = [int(re.search(r"emu: (\d+) instructions", r.stderr).group(1)) for r in runs]
    assert n[0] == n[1] > 1_000_000
    # a periodic 1 ms POSIX timer whose signal stays blocked for 10.5 ms: 10 expirations, 9 overruns
    assert "\n  overrun 9\n" in a.stdout
    brief = "".join(l + "\n" for l in a.stdout.splitlines() if not l.startswith("  "))
    assert brief == expected("glibc")
    raw = dict(re.findall(r"^(.*): clocks agree.*\n  raw: mono (\d+)", a.stdout, re.M))
    # virtual time: each interval is what was asked plus the few instructions reading the clocks
    asked = {"nanosleep 200ms": 200, "select pipe 100ms": 100, "poll pipe 100ms": 100, "select sleep 300ms": 300,
             "alarm 1s during nanosleep 5s": 1000, "alarm 1s during select 3s": 1000,
             "setitimer 250ms + pause": 250, "periodic 2ms timer x3": 6, "timerfd 150ms read": 150,
             "alarm 1s during pselect 3s": 1000, "alarm 1s during sigsuspend": 1000,
             "sigtimedwait with alarm 1s": 1000, "sigtimedwait 200ms timeout": 200,
             "timerfd read restarted": 500, "setitimer 300ms during pipe read": 300,
             "setitimer 300ms during waitpid": 300, "POSIX timer 100ms": 100}
    for k, ms in asked.items():
        assert ms * 10**6 <= int(raw[k]) < ms * 10**6 + 10_000, (k, raw[k])
    # a 50 ms timerfd interval, measured from a little after the previous expiry
    for k in ("timerfd interval 50ms poll", "timerfd+pipe select", "timerfd epoll_wait"):
        assert 50 * 10**6 - 10_000 < int(raw[k]) <= 50 * 10**6, (k, raw[k])


def test_clocks_guest_virtual_musl():
    r = emu_run("--time", "virtual", os.path.join(LINUX, "bin", "clocks.musl"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected("musl")


# ---- GuestClock.wait: the policy of timed waits ----

class FakeVcpu:
    def __init__(self):
        self.tsc = 0

    def tsc_advance(self, c):
        self.tsc += c


def make_clock(mode="virtual"):
    c = GuestClock(mode, tsc_hz=1_000_000_000)
    v = FakeVcpu()
    v.tsc = c.boot_ns            # 1 GHz: one cycle per ns
    c.start_ns = c.boot_ns
    return c, v


def test_wait_policy_virtual():
    c, v = make_clock()
    calls = []

    def ready_at_once(t):
        calls.append(t)
        return 1
    # something ready: one poll without waiting, no time passes
    assert c.wait([v], 5 * NS, ready_at_once) == (1, 0) and calls == [0]
    assert c.now_ns(v, 1) == BOOT
    # timeout 0: poll once, no time passes
    calls.clear()
    assert c.wait([v], 0, lambda t: calls.append(t) or 0) == (0, 0) and calls == [0]
    # no descriptors: a sleep, virtual time jumps at once
    t0 = time.monotonic()
    assert c.wait([v], 2 * NS, None) == (0, 2 * NS)
    assert time.monotonic() - t0 < 0.1
    assert c.now_ns(v, 1) == BOOT + 2 * NS and c.idle_ns == 2 * NS
    # descriptors that never become ready: a real host wait, then exactly the timeout passes
    calls.clear()
    t0 = time.monotonic()

    def never(t):
        calls.append(t)
        if t:
            time.sleep(t)
        return 0
    assert c.wait([v], 30_000_000, never) == (0, 30_000_000)
    assert calls == [0, 0.03] and time.monotonic() - t0 >= 0.03
    assert c.now_ns(v, 1) == BOOT + 2 * NS + 30_000_000
    # ready after some host time: that time passes (at most the timeout)
    before = c.now_ns(v, 1)

    def later(t):
        if t:
            time.sleep(0.01)
            return 1
        return 0
    r, passed = c.wait([v], 5 * NS, later)
    assert r == 1 and 10_000_000 <= passed < NS
    assert c.now_ns(v, 1) == before + passed
    # CPU time does not count the time slept
    assert c.cputime_ns(v) == 0
    with pytest.raises(ValueError):
        c.wait([v], None, None)


def test_wait_policy_host():
    c, v = make_clock("host")
    t0 = time.monotonic()
    r, el = c.wait([v], 50_000_000, None)
    assert r == 0 and el == 50_000_000 and time.monotonic() - t0 >= 0.05
    r, el = c.wait([v], 20_000_000, lambda t: (time.sleep(t) if t else None) or 0)
    assert r == 0 and el >= 20_000_000


def test_uptime_file_from_guest_clock():
    g = Guest("transparent", "virtual", tsc_hz=1_000_000_000)
    v = FakeVcpu()
    v.tsc = g.clock.boot_ns
    g.clock.start_ns = g.clock.boot_ns
    assert g.virtual_file("/proc/uptime", v) == b"10.00 9.00\n"
    g.clock.sleep([v], 1_234_567_890)
    v.tsc += 5_000_000            # 5 ms of computing
    assert g.virtual_file("/proc/uptime", v) == b"11.23 10.23\n"
    assert g.virtual_file("/proc/uptime") is None        # without a reader: not a platform file
    h = Guest("transparent", "host")
    up, idle = h.clock.uptime(v)
    with open("/proc/uptime") as f:
        host_up = float(f.read().split()[0])
    assert abs(up / NS - host_up) < 1.0


# ---- small hand-assembled guests ----

RAX, RDX, RSI, RDI, R8, R9, R10 = 0, 2, 6, 7, 8, 9, 10
BASE, DATA = 0x400000, 0x402000


def mov(reg, imm):
    return bytes([0x49 if reg >= 8 else 0x48, 0xB8 + (reg & 7)]) + struct.pack("<Q", imm & (2**64 - 1))


def sc(nr, *args):
    code = b"".join(mov(r, a) for r, a in zip((RDI, RSI, RDX, R10, R8, R9), args))
    return code + mov(RAX, nr) + b"\x0f\x05"


def elf(code, data=b""):
    """A static ELF64 executable: one RWX segment, code at its start, data at DATA."""
    entry = BASE + 120
    body = code + b"\xf4"
    image = bytearray(120 + len(body))
    image[120:] = body
    image = bytes(image).ljust(DATA - BASE, b"\0") + data
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 0x3E, 1, entry, 64, 0, 0, 64, 56,
                       1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 0, BASE, BASE, len(image), len(image) + 0x1000, 0x1000)
    return ehdr + phdr + image[120:]


def run_tiny(tmp_path, code, data=b"", mode="virtual"):
    from emu.linux.process import Process
    path = tmp_path / "tiny"
    path.write_bytes(elf(code, data))
    path.chmod(0o755)
    p = Process([str(path)], env={}, seed=1, time=mode)
    p.load(str(path))
    t0 = time.monotonic()
    status = p.run()
    return p, status, time.monotonic() - t0


def uptime_ns(p):
    return p.guest.clock.now_ns(p.vcpu, 1) - p.guest.clock.boot_ns


def test_select_sleep_takes_no_host_time(tmp_path):
    """select(0, NULL, NULL, NULL, {2 s}) under virtual time: 2 s pass on the
    guest clock at once; the time left (0) is written back."""
    code = sc(23, 0, 0, 0, 0, DATA) + sc(60, 0)
    p, status, host = run_tiny(tmp_path, code, struct.pack("<qq", 2, 0))
    assert status == 0 and host < 0.5
    assert 2 * NS <= uptime_ns(p) < 2 * NS + 10_000
    assert p.sys.read(DATA, 16) == bytes(16)
    # host time: the same wait really waits (shorter: 0.2 s)
    p, status, host = run_tiny(tmp_path, code, struct.pack("<qq", 0, 200_000), mode="host")
    assert status == 0 and host >= 0.2


def test_poll_epoll_pselect_sleep_virtual(tmp_path):
    """poll with no fds, ppoll, pselect6 and epoll_wait on an empty set are
    sleeps on the guest clock; epoll_wait with maxevents 0 is EINVAL."""
    code = (sc(7, 0, 0, 300) +                        # poll(NULL, 0, 300 ms)
            sc(271, 0, 0, DATA, 0, 8) +               # ppoll(NULL, 0, {0.5 s}, NULL)
            sc(270, 0, 0, 0, 0, DATA + 16, 0) +       # pselect6(0, ..., {0.25 s}, NULL)
            sc(291, 0) +                              # epoll_create1 -> fd in rax
            b"\x48\x89\xc3" +                         # mov rbx, rax
            b"\x48\x89\xdf" + mov(RSI, DATA + 64) + mov(RDX, 4) + mov(R10, 1000) + mov(RAX, 232) + b"\x0f\x05" +
            b"\x48\x89\xdf" + mov(RSI, DATA + 64) + mov(RDX, 0) + mov(R10, 1000) + mov(RAX, 232) + b"\x0f\x05" +
            b"\x48\xf7\xd8" + b"\x48\x89\xc7" + mov(RAX, 60) + b"\x0f\x05")     # exit(-rax)
    data = struct.pack("<qqqq", 0, 500_000_000, 0, 250_000_000)
    p, status, host = run_tiny(tmp_path, code, data)
    assert status == 22                               # EINVAL from epoll_wait(maxevents 0)
    assert host < 1.0
    assert 2050 * 10**6 <= uptime_ns(p) < 2050 * 10**6 + 10_000
    # ppoll and pselect6 wrote back the time not slept: none
    assert p.sys.read(DATA, 32) == bytes(32)


def test_alarm_default_action_kills(tmp_path):
    """alarm(3) then pause(): SIGALRM ends the process after 3 s of guest
    time (status 128 + 14), at once on the host."""
    p, status, host = run_tiny(tmp_path, sc(37, 3) + sc(34) + sc(60, 0))
    assert status == 128 + 14 and host < 0.5
    assert 3 * NS <= uptime_ns(p) < 3 * NS + 10_000


def test_alarm_while_computing(tmp_path):
    """An ITIMER_REAL deadline stops a loop with no system calls at the
    instruction where the virtual clock reaches it."""
    loop = b"\x48\xff\xc1" + b"\xeb\xfb"              # inc rcx; jmp back
    code = sc(38, 0, DATA, 0) + mov(1, 0) + loop        # setitimer(ITIMER_REAL, {0, 1 ms}); rcx = 0; spin
    p, status, host = run_tiny(tmp_path, code, struct.pack("<qqqq", 0, 0, 0, 1000))
    assert status == 128 + 14
    ns = uptime_ns(p)
    assert 10**6 <= ns < 10**6 + 10
    again = run_tiny(tmp_path, code, struct.pack("<qqqq", 0, 0, 0, 1000))[0]
    assert again.vcpu.icount == p.vcpu.icount and again.vcpu.rcx == p.vcpu.rcx > 100_000


def test_pause_without_timer_is_a_deadlock(tmp_path):
    p, status, host = run_tiny(tmp_path, sc(34) + sc(60, 0))
    assert status == 128 + 9


def test_itimer_calls(tmp_path):
    """setitimer returns the old value, getitimer counts down on the guest
    clock, invalid arguments are EINVAL, alarm returns the seconds left."""
    code = (sc(38, 0, DATA, DATA + 32) +          # setitimer(REAL, {interval 0.5 s, value 2 s}, old)
            sc(35, DATA + 96, 0) +                # nanosleep(0.5 s)
            sc(36, 0, DATA + 64) +                # getitimer(REAL) -> DATA+64
            sc(37, 10) + b"\x49\x89\xc4" +        # alarm(10) -> r12 (just under 1.5 s left: 1)
            sc(37, 0) + b"\x49\x89\xc5" +         # alarm(0) -> r13 (10)
            sc(38, 5, DATA, 0) + b"\x49\x89\xc6" +  # setitimer(5) -> r14 (EINVAL)
            sc(60, 0))
    data = struct.pack("<qqqq", 0, 500_000, 2, 0) + bytes(64) + struct.pack("<qq", 0, 500_000_000)
    p, status, host = run_tiny(tmp_path, code, data)
    assert status == 0
    v = p.vcpu
    assert p.sys.read(DATA + 32, 32) == bytes(32)
    interval_s, interval_us, value_s, value_us = struct.unpack("<qqqq", p.sys.read(DATA + 64, 32))
    assert (interval_s, interval_us) == (0, 500_000)
    assert value_s == 1 and 499_000 < value_us <= 500_000
    assert (v.r12, v.r13, v.r14) == (1, 10, 2**64 - 22)


def test_blocked_alarm_stays_pending(tmp_path):
    """A blocked SIGALRM does not interrupt nanosleep (the whole 2 s pass),
    shows in rt_sigpending, and rt_sigsuspend with an empty mask takes it
    (default action: the process ends)."""
    code = (sc(14, 0, DATA, 0, 8) +               # rt_sigprocmask(SIG_BLOCK, {SIGALRM})
            sc(37, 1) +                           # alarm(1)
            sc(35, DATA + 16, 0) + b"\x49\x89\xc4" +   # nanosleep(2 s) -> r12 (0)
            sc(127, DATA + 32, 8) +               # rt_sigpending -> DATA+32
            sc(130, DATA + 40, 8) + sc(60, 0))    # rt_sigsuspend({}) -> SIGALRM kills
    data = struct.pack("<Q", 1 << 13) + bytes(8) + struct.pack("<qq", 2, 0) + bytes(16)
    p, status, host = run_tiny(tmp_path, code, data)
    assert status == 128 + 14 and host < 0.5
    assert p.vcpu.r12 == 0
    assert struct.unpack("<Q", p.sys.read(DATA + 32, 8))[0] == 1 << 13
    assert 2 * NS <= uptime_ns(p) < 2 * NS + 10_000


def test_alarm_interrupts_futex_wait(tmp_path):
    """The only thread waits on a futex with no timeout: the alarm's
    deadline comes, virtual time jumps to it and SIGALRM ends the process."""
    code = sc(37, 4) + sc(202, DATA, 0, 0, 0) + sc(60, 0)     # alarm(4); futex(WAIT, 0, no timeout)
    p, status, host = run_tiny(tmp_path, code, bytes(8))
    assert status == 128 + 14 and host < 0.5
    assert 4 * NS <= uptime_ns(p) < 4 * NS + 10_000


def test_host_time_timer_while_computing(tmp_path):
    """Host time: a timer stops a computing guest after the host time."""
    loop = b"\x48\xff\xc1" + b"\xeb\xfb"
    code = sc(38, 0, DATA, 0) + loop                # setitimer(ITIMER_REAL, 50 ms); spin
    p, status, host = run_tiny(tmp_path, code, struct.pack("<qqqq", 0, 0, 0, 50_000), mode="host")
    assert status == 128 + 14 and 0.05 <= host < 5


def test_timerfd_calls(tmp_path):
    """timerfd on CLOCK_REALTIME with an absolute deadline 3 s ahead: a
    blocking read jumps virtual time there; bad clocks, flags and
    timespecs are EINVAL; a short read buffer is EINVAL."""
    rt_now = GuestClock("virtual").realtime_epoch_ns
    deadline = rt_now + 3 * NS
    code = (sc(283, 0, 0) + b"\x48\x89\xc3" +                              # rbx = timerfd_create(REALTIME)
            b"\x48\x89\xdf" + mov(RSI, 1) + mov(RDX, DATA) + mov(R10, 0) + mov(RAX, 286) + b"\x0f\x05" +
            b"\x48\x89\xdf" + mov(RSI, DATA + 64) + mov(RDX, 8) + mov(RAX, 0) + b"\x0f\x05" +   # read -> 8
            b"\x49\x89\xc4" +
            b"\x48\x89\xdf" + mov(RSI, DATA + 64) + mov(RDX, 4) + mov(RAX, 0) + b"\x0f\x05" +   # read 4 -> EINVAL
            b"\x49\x89\xc5" +
            sc(283, 4, 0) + b"\x49\x89\xc6" +                              # bad clock -> EINVAL
            b"\x48\x89\xdf" + mov(RSI, 0) + mov(RDX, DATA + 32) + mov(R10, 0) + mov(RAX, 286) + b"\x0f\x05" +
            b"\x49\x89\xc7" +                                              # nsec 1e9 -> EINVAL
            sc(60, 0))
    data = struct.pack("<qqqq", 0, 0, deadline // NS, deadline % NS) + struct.pack("<qqqq", 0, 0, 0, NS)
    p, status, host = run_tiny(tmp_path, code, data)
    assert status == 0 and host < 0.5
    v = p.vcpu
    assert (v.r12, v.r13, v.r14, v.r15) == (8, 2**64 - 22, 2**64 - 22, 2**64 - 22)
    assert struct.unpack("<Q", p.sys.read(DATA + 64, 8))[0] == 1
    assert 3 * NS <= uptime_ns(p) < 3 * NS + 100_000


def test_virtual_proc_stat_and_rtc():
    """Under virtual time /proc/stat's btime + uptime and the RTC tell the
    guest's time of day, not the host's; host time serves the host files."""
    g = Guest("transparent", "virtual", tsc_hz=1_000_000_000)
    v = FakeVcpu()
    v.tsc = g.clock.boot_ns
    g.clock.start_ns = g.clock.boot_ns
    g.clock.sleep([v], 5 * NS)
    v.tsc += 2 * NS                        # 2 s of computing
    stat = g.virtual_file("/proc/stat", v).decode()
    fields = dict(l.split(None, 1) for l in stat.splitlines())
    user, nice, system, idle = map(int, fields["cpu"].split()[:4])
    assert (user, idle) == (200, 900 + 500) and user + system + idle == 1700
    now_s = g.clock.now_ns(v, 0) // NS
    assert int(fields["btime"]) + 17 == now_s
    assert g.virtual_file("/sys/class/rtc/rtc0/since_epoch", v) == b"%d\n" % now_s
    assert g.virtual_file("/sys/class/rtc/rtc0/date", v) == b"2024-01-01\n"
    assert g.virtual_file("/sys/class/rtc/rtc0/time", v) == b"00:00:07\n"
    assert g.virtual_file("/sys/class/rtc/rtc0/wakealarm", v) is False
    h = Guest("transparent", "host")
    assert h.virtual_file("/proc/stat", v) is None and h.virtual_file("/sys/class/rtc/rtc0/date", v) is None


def test_coarse_clocks_and_clock_ids():
    """Virtual time: the _COARSE clocks move at the 4 ms tick (clock_getres
    says so); unknown clock ids are invalid, negative ones are CPU clocks."""
    c, v = make_clock()
    v.tsc += 5_000_123
    assert c.now_ns(v, 1) == BOOT + 5_000_123
    assert c.now_ns(v, 6) == BOOT + 4_000_000                     # MONOTONIC_COARSE
    assert c.now_ns(v, 5) == c.realtime_epoch_ns + 4_000_000       # REALTIME_COARSE
    assert c.resolution_ns(6) == 4_000_000 and c.resolution_ns(1) == 1
    assert not GuestClock.valid_clock(10) and not GuestClock.valid_clock(12)
    assert GuestClock.valid_clock(11) and GuestClock.valid_clock(-6)
    assert c.now_ns(v, -6) == c.cputime_ns(v) == 5_000_123


def test_itimer_virtual_counts_cpu_time(tmp_path):
    """ITIMER_VIRTUAL counts the time the process runs, not the time it
    sleeps: after a 5 s nanosleep the 1 ms timer is still due, and fires
    (SIGVTALRM) at 1 ms of computing."""
    loop = b"\x48\xff\xc1" + b"\xeb\xfb"
    code = sc(38, 1, DATA, 0) + sc(35, DATA + 32, 0) + loop
    p, status, host = run_tiny(tmp_path, code, struct.pack("<qqqqqq", 0, 0, 0, 1000, 5, 0))
    assert status == 128 + 26 and host < 1.0
    assert 5 * NS + 10**6 <= uptime_ns(p) < 5 * NS + 10**6 + 10_000
    assert 10**6 <= p.guest.clock.cputime_ns(p.vcpu) < 10**6 + 10_000


def test_posix_timer_calls(tmp_path):
    """timer_create with no sigevent sends SIGALRM (default action: the end)
    at the deadline; bad ids and timespecs are EINVAL."""
    code = (sc(222, 1, 0, DATA) +                               # timer_create(MONOTONIC, NULL, &id)
            sc(223, 99, 0, DATA + 16, 0) + b"\x49\x89\xc4" +    # timer_settime(99, ...) -> EINVAL
            sc(223, 0, 0, DATA + 48, 0) + b"\x49\x89\xc5" +     # bad timespec -> EINVAL
            sc(222, 4, 0, DATA + 8) + b"\x49\x89\xc6" +          # MONOTONIC_RAW -> EINVAL
            sc(223, 0, 0, DATA + 16, 0) +                       # 2.5 s
            sc(35, DATA + 80, 0) + b"\x49\x89\xc7" +            # nanosleep(1 s) -> 0
            sc(34) + sc(60, 0))
    data = (bytes(16) + struct.pack("<qqqq", 0, 0, 2, 500_000_000) + struct.pack("<qqqq", 0, 0, 0, NS)
            + struct.pack("<qq", 1, 0))
    p, status, host = run_tiny(tmp_path, code, data)
    assert status == 128 + 14 and host < 0.5
    v = p.vcpu
    assert (v.r12, v.r13, v.r14, v.r15) == (2**64 - 22, 2**64 - 22, 2**64 - 22, 0)
    assert 2_500_000_000 <= uptime_ns(p) < 2_500_000_000 + 10_000
    assert struct.unpack("<i", p.sys.read(DATA, 4))[0] == 0


def test_sleep_goes_on_past_blocked_timer_signals(tmp_path):
    """A periodic 0.3 s ITIMER_REAL whose SIGALRM is blocked expires during
    a 2.5 s nanosleep without shortening it."""
    code = (sc(14, 0, DATA, 0, 8) +                  # block SIGALRM
            sc(38, 0, DATA + 16, 0) +                 # setitimer(REAL, every 0.3 s)
            sc(35, DATA + 48, 0) + b"\x49\x89\xc4" +  # nanosleep(2.5 s) -> r12
            sc(60, 0))
    data = struct.pack("<Q", 1 << 13) + bytes(8) + struct.pack("<qqqq", 0, 300_000, 0, 300_000) + \
        struct.pack("<qq", 2, 500_000_000)
    p, status, host = run_tiny(tmp_path, code, data)
    assert status == 0 and p.vcpu.r12 == 0
    assert 2_500_000_000 <= uptime_ns(p) < 2_500_000_000 + 10_000
