"""Time virtualization: one clock behind every time source the guest can
read. The TSC (RDTSC, RDTSCP, IA32_TSC), CPUID 0x15/0x16/0x40000010 and the
Linux personality's clock_gettime, gettimeofday, time and nanosleep agree.

- `virtual`: deterministic. The TSC counts retired instructions (offset +
  icount x cycles_per_insn); guest nanoseconds = TSC / frequency.
  CLOCK_MONOTONIC (= CLOCK_BOOTTIME, /proc/uptime) starts at `boot_ns`,
  CLOCK_REALTIME at a fixed date; sleeping advances virtual time instead of
  waiting (`sleep`, `wait`), and the time slept is the guest's idle time
  (not CPU time).
- `host`: the TSC reads the host's CLOCK_MONOTONIC scaled to the frequency
  (TSC / frequency = host monotonic time), and the system calls read the
  host clocks.

`wait` is the policy of every timed wait on file descriptors (select, poll,
epoll): poll first without waiting; a wait with no descriptors is a sleep;
otherwise wait on the host for real (another process may make a descriptor
ready) and let virtual time pass by the timeout, or by the host time waited
when something became ready first.
"""
from __future__ import annotations

import struct
import time

from emu.hypervisor.cpuid_profiles import DEFAULT_TSC_HZ

NS = 1_000_000_000
REALTIME_EPOCH_NS = 1_704_067_200 * NS      # 2024-01-01 00:00:00 UTC
BOOT_NS = 10 * NS                           # virtual uptime at process start
REALTIME_CLOCKS = (0, 5, 8, 11)             # REALTIME, _COARSE, _ALARM, TAI
CPUTIME_CLOCKS = (2, 3)                     # PROCESS_CPUTIME_ID, THREAD_CPUTIME_ID
BOOTTIME_CLOCKS = (7, 9)                    # BOOTTIME, BOOTTIME_ALARM
COARSE_CLOCKS = (5, 6)                      # REALTIME_COARSE, MONOTONIC_COARSE: they move at the tick
TICK_NS = NS // 250                         # CONFIG_HZ=250
VALID_CLOCKS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11)   # negative ids are the CPU clocks of a pid or thread


class GuestClock:
    def __init__(self, mode: str = "host", tsc_hz: int = DEFAULT_TSC_HZ, cycles_per_insn: float = 1.0,
                 boot_ns: int = BOOT_NS, realtime_epoch_ns: int = REALTIME_EPOCH_NS):
        if mode not in ("virtual", "host"):
            raise ValueError("time mode is 'virtual' or 'host', not %r" % mode)
        self.mode = mode
        self.tsc_hz = int(tsc_hz)
        self.cycles_per_insn = cycles_per_insn
        self.boot_ns = boot_ns
        self.realtime_epoch_ns = realtime_epoch_ns
        self.last_ns = 0
        self.start_ns = None
        self.idle_ns = 0          # virtual: time passed in sleeps and waits (guest idle, not CPU time)

    @property
    def virtual(self) -> bool:
        return self.mode == "virtual"

    def cycles(self, ns: int) -> int:
        return ns * self.tsc_hz // NS

    def install(self, vcpu, like=None) -> None:
        """TSC set-up of a vCPU; with `like` (the vCPU an exec replaces) the
        virtual TSC goes on from that one's value."""
        if self.virtual:
            vcpu.set_tsc(like.tsc if like is not None else self.cycles(self.boot_ns), self.cycles_per_insn)
        else:
            vcpu.set_tsc_host(self.tsc_hz, self.cycles(time.monotonic_ns()))
        if self.start_ns is None:
            self.start_ns = self.monotonic_ns(vcpu)

    def monotonic_ns(self, vcpu) -> int:
        """Virtual: the vCPU's TSC in nanoseconds, never behind a value
        already handed out (threads' vCPUs run their own TSCs)."""
        if not self.virtual:
            return time.monotonic_ns()
        ns = vcpu.tsc * NS // self.tsc_hz
        if ns < self.last_ns:
            ns = self.last_ns
        self.last_ns = ns
        return ns

    @staticmethod
    def valid_clock(clock: int) -> bool:
        return clock in VALID_CLOCKS or clock < 0

    def resolution_ns(self, clock: int) -> int:
        """clock_getres: 1 ns (high resolution), the tick for the coarse clocks
        (host time: the host's)."""
        if not self.virtual and clock >= 0:
            try:
                return max(1, round(time.clock_getres(clock) * NS))
            except OSError:
                pass
        return TICK_NS if clock in COARSE_CLOCKS else 1

    def now_ns(self, vcpu, clock: int = 0) -> int:
        """clock_gettime(clock) in nanoseconds."""
        if not self.virtual:
            if clock in CPUTIME_CLOCKS or clock < 0:
                return time.process_time_ns()
            if clock in COARSE_CLOCKS or clock == 4:
                try:
                    return time.clock_gettime_ns(clock)
                except OSError:
                    pass
            if clock in REALTIME_CLOCKS:
                return time.time_ns()
            if clock in BOOTTIME_CLOCKS and hasattr(time, "CLOCK_BOOTTIME"):
                return time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            return time.monotonic_ns()
        mono = self.monotonic_ns(vcpu)
        if clock in COARSE_CLOCKS:
            mono -= mono % TICK_NS
        if clock in REALTIME_CLOCKS:
            return self.realtime_epoch_ns + mono - self.boot_ns
        if clock in CPUTIME_CLOCKS or clock < 0:
            return self.cputime_ns(vcpu)
        return mono

    def cputime_ns(self, vcpu) -> int:
        """CPU time of the process: virtual, the time it ran (retired
        instructions), not the time it slept; host, the emulator's."""
        if not self.virtual:
            return time.process_time_ns()
        return max(0, self.monotonic_ns(vcpu) - (self.start_ns or 0) - self.idle_ns)

    def uptime(self, vcpu) -> tuple[int, int]:
        """(uptime, idle time) in nanoseconds for /proc/uptime and sysinfo:
        CLOCK_BOOTTIME, and the time spent idle (virtual: sleeping)."""
        if not self.virtual:
            up = time.clock_gettime_ns(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic_ns()
            try:
                with open("/proc/uptime") as f:
                    idle = int(float(f.read().split()[1]) * NS)
            except (OSError, ValueError, IndexError):
                idle = 0
            return up, idle
        return self.monotonic_ns(vcpu), self.boot_idle_ns + self.idle_ns

    @property
    def boot_idle_ns(self) -> int:
        """Virtual idle time before the process started (the machine booted
        `boot_ns` before it and was idle most of that time)."""
        return self.boot_ns * 9 // 10

    def sleep(self, vcpus, ns: int) -> None:
        """Let ns pass: virtual time jumps forward on every vCPU; host time waits."""
        if ns <= 0:
            return
        if not self.virtual:
            time.sleep(ns / NS)
            return
        c = self.cycles(ns)
        for v in vcpus:
            v.tsc_advance(c)
        self.last_ns += ns
        self.idle_ns += ns

    def wait(self, vcpus, timeout_ns, poll_fn=None):
        """A timed wait on file descriptors; returns (result, elapsed ns).

        poll_fn(timeout_s) polls the descriptors, waiting up to timeout_s
        seconds on the host (None: forever), and returns how many are ready;
        poll_fn None means no descriptors (select/poll used as a sleep).
        timeout_ns None waits forever (needs a poll_fn). First poll without
        waiting: if something is ready, or the timeout is 0, no time passes.
        With no descriptors, let the timeout pass (virtual: at once). Else
        wait on the host; virtual time then passes by the timeout when
        nothing became ready, or by the host time waited (at most the
        timeout) when something did. Host mode: the host time waited."""
        if timeout_ns is not None and timeout_ns < 0:
            timeout_ns = 0
        if poll_fn is None:
            if timeout_ns is None:
                raise ValueError("an endless wait with nothing to wait for")
            self.sleep(vcpus, timeout_ns)
            return 0, timeout_ns
        r = poll_fn(0)
        if r or timeout_ns == 0:
            return r, 0
        t0 = time.monotonic_ns()
        r = poll_fn(None if timeout_ns is None else timeout_ns / NS)
        host = time.monotonic_ns() - t0
        if not self.virtual:
            return r, host
        if timeout_ns is None:
            passed = host
        else:
            passed = min(host, timeout_ns) if r else timeout_ns
        self.sleep(vcpus, passed)
        return r, passed


def futex_deadline_ns(proc, thread):
    """The CLOCK_MONOTONIC deadline (virtual ns) of a thread blocked in a
    timed futex wait, from its still-pending system call's arguments
    (RSI op, R10 timeout: relative for FUTEX_WAIT, absolute for
    FUTEX_WAIT_BITSET, on CLOCK_REALTIME with FUTEX_CLOCK_REALTIME); None
    when it cannot be read."""
    clk = proc.guest.clock
    v = thread.vcpu
    try:
        sec, nsec = struct.unpack("<qq", proc.sys.read(v.r10, 16))
    except Exception:
        return None
    ns = max(0, sec) * NS + nsec
    now = clk.now_ns(v, 1)
    if v.rsi & 0x7F == 9:                        # FUTEX_WAIT_BITSET: absolute
        if v.rsi & 256:                          # FUTEX_CLOCK_REALTIME
            ns -= clk.now_ns(v, 0) - now
        return ns
    return now + ns


def earliest_timeout(proc, threads):
    """Every thread is blocked: the timed waiter with the earliest deadline
    goes first, and the clock passes to that deadline (virtual time jumps,
    host time waits)."""
    clk = proc.guest.clock
    best = None
    for t in threads:
        if t.timed:
            d = futex_deadline_ns(proc, t)
            if d is not None and (best is None or d < best[0]):
                best = (d, t)
    if best is None:
        return threads
    d, t = best
    now = clk.now_ns(proc.vcpu, 1)
    clk.sleep([x.vcpu for x in proc.threads], d - now)
    return [t] + [x for x in threads if x is not t]
