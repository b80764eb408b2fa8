#!/usr/bin/env python3
"""The cost of one system call: guests/linux/bin/syscall_fast.glibc
`bench CALL N` makes N calls of one kind (write: 16 bytes to /dev/null; read:
pread64 of 64 bytes; lseek; fstat; getpid; getppid, which always goes through emu's
Python path). Each runner (emu with calls answered in the core, emu with
every call through Python (EMU_FAST_SYSCALLS=0), native, qemu-x86_64) runs
it with N and with 0 calls as subprocesses, interleaved; the cost per call is
(median time at N - median time at 0) / N, so start-up cancels out.

    python perf/bench_syscalls.py [--runs N] [--calls N] [--markdown] [--emu PATH]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUEST = os.path.join(ROOT, "guests", "linux", "bin", "syscall_fast.glibc")
QEMU = shutil.which("qemu-x86_64")
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"
CALLS = ("write", "read", "lseek", "fstat", "getpid", "getppid")


def emu_command(path):
    if path:
        return [path]
    beside = os.path.join(os.path.dirname(sys.executable), "emu")
    return [beside] if os.path.exists(beside) else [sys.executable, "-m", "emu"]


def timed(argv, env, cwd):
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=cwd, timeout=600)
    return time.perf_counter() - t0, r.returncode, r.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--calls", type=int, default=100000)
    ap.add_argument("--only", help="comma-separated calls (default: all)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--emu", metavar="PATH", help="the emu command to time")
    a = ap.parse_args()
    env = dict(os.environ, LC_ALL="C")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    emu = emu_command(a.emu)
    runners = [("emu (core)", emu + ["run", GUEST], {"EMU_FAST_SYSCALLS": "1"}),
               ("emu (Python)", emu + ["run", GUEST], {"EMU_FAST_SYSCALLS": "0"})]
    if NATIVE:
        runners.append(("native", [GUEST], {}))
    if QEMU:
        runners.append(("qemu-x86_64", [QEMU, GUEST], {}))
    calls = a.only.split(",") if a.only else CALLS
    rows = []
    bad = False
    with tempfile.TemporaryDirectory() as tmp:
        for call in calls:
            times = {(r, n): [] for r, _c, _e in runners for n in (0, a.calls)}
            outs = {}
            for _ in range(a.runs):
                for r, cmd, extra in runners:
                    for n in (0, a.calls):
                        dt, rc, out = timed(cmd + ["bench", call, str(n)], dict(env, **extra), tmp)
                        times[(r, n)].append(dt)
                        outs.setdefault(n, set()).add((rc, out))
            same = all(len(v) == 1 for v in outs.values())
            bad |= not same
            for r, _c, _e in runners:
                t0, t1 = statistics.median(times[(r, 0)]), statistics.median(times[(r, a.calls)])
                us = (t1 - t0) / a.calls * 1e6
                rows.append((call, r, us, t1, "yes" if same else "NO"))
                print("%-8s %-14s %8.3f us/call  (%d calls: %.3f s)" % (call, r, us, a.calls, t1), file=sys.stderr)
    if a.markdown:
        print("- date: %s; load average %.1f at the end" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                                            os.getloadavg()[0]))
        print("- command: `python3 perf/bench_syscalls.py --runs %d --calls %d --markdown%s%s`"
              % (a.runs, a.calls, " --only " + a.only if a.only else "", " --emu " + a.emu if a.emu else ""))
        print()
        by = {}
        for call, r, us, _t1, same in rows:
            by.setdefault(call, {})[r] = (us, same)
        names = [r for r, _c, _e in runners]
        print("| call | " + " | ".join("%s us/call" % n for n in names) + " | emu (core) / qemu | same output |")
        print("|---|" + "---:|" * len(names) + "---:|---|")
        for call in calls:
            d = by[call]
            q = d.get("qemu-x86_64", (0, ""))[0]
            ratio = "%.2f" % (d["emu (core)"][0] / q) if q > 0 else ""
            print("| %s | " % call + " | ".join("%.3f" % d[n][0] for n in names) + " | %s | %s |"
                  % (ratio, d[names[0]][1]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
