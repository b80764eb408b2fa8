#!/usr/bin/env python3
"""Start-up cost: `emu run` of a small program as a user runs it (a fresh
process each time), beside the same program run natively and under
qemu-x86_64, all as subprocesses, interleaved (one of each per round, so a
busy moment on a shared machine hits every runner alike).

    python perf/bench_startup.py [--runs N] [--markdown] [--emu PATH]

Workloads: guests/hello/hello (static, one write); a shell loop that forks
and execs /bin/true 20 times (the host's dynamically linked sh and true:
fork, execve, ld.so and libc loading, per process). Reported per runner:
median wall ms, median CPU ms (user + system of the process tree) and the
largest maximum RSS. A floor row gives the interpreter's own start-up
(`python -c pass`). --emu names the `emu` console script to time (default:
the one beside this Python, else `python -m emu`), e.g. to compare an
install of another commit.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELLO = os.path.join(ROOT, "guests", "hello", "hello")
QEMU = shutil.which("qemu-x86_64")
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"


def emu_command(path: str | None) -> list[str]:
    if path:
        return [path]
    beside = os.path.join(os.path.dirname(sys.executable), "emu")
    if os.path.exists(beside):
        return [beside]
    return [sys.executable, "-m", "emu"]


TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def max_rss(argv, env) -> int:
    """Maximum RSS (KiB) of one run, through GNU time when there is one: a
    child forked from this Python would count Python's own pages before its
    exec (ru_maxrss is the process's high-water mark)."""
    if TIME is None:
        return timed(argv, env)[2]
    r = subprocess.run([TIME, "-f", "%M"] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    return int(r.stderr.strip().splitlines()[-1])


def timed(argv, env):
    """(wall s, cpu s, max RSS KiB, status, stdout) of one run."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.stdout.close()
    # a loop's children: their usage is in RUSAGE_CHILDREN of the process that
    # waited for them, i.e. included in ru for the direct child's own waits
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, os.waitstatus_to_exitcode(status), out


def workloads():
    w = [("hello (static)", [HELLO])]
    sh, true = shutil.which("sh"), shutil.which("true")
    if NATIVE and sh and true:
        w.append(("sh: 20 x fork+exec true", [sh, "-c", "i=0; while [ $i -lt 20 ]; do %s; i=$((i+1)); done; echo done"
                                              % true]))
    return w


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--emu", metavar="PATH", help="the emu command to time")
    a = ap.parse_args()
    env = dict(os.environ, LC_ALL="C")
    env.pop("PYTHONDONTWRITEBYTECODE", None)      # a user's Python keeps its bytecode cache
    emu = emu_command(a.emu)
    py = os.path.join(os.path.dirname(emu[0]), "python") if a.emu else sys.executable
    rows = []
    for name, argv in workloads():
        runners = [("emu", emu + ["run"] + argv)]
        if NATIVE:
            runners.append(("native", argv))
        if QEMU:
            runners.append(("qemu-x86_64", [QEMU] + argv))
        if name.startswith("hello"):
            runners.append(("python -c pass (floor)", [py, "-c", "pass"]))
        res = {r: ([], [], [], set()) for r, _ in runners}
        for _ in range(a.runs):
            for r, cmd in runners:
                wall, cpu, rss, st, out = timed(cmd, env)
                res[r][0].append(wall)
                res[r][1].append(cpu)
                res[r][2].append(rss)
                if not r.startswith("python"):
                    res[r][3].add((st, out))
        outs = set().union(*(v[3] for v in res.values()))
        for r, cmd in runners:
            wall, cpu, _rss, _o = res[r]
            rows.append((name, r, statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3, max_rss(cmd, env),
                         "yes" if len(outs) == 1 else "NO"))
            print("%-26s %-24s wall %7.1f ms  cpu %7.1f ms  rss %6d KiB" % rows[-1][:5], file=sys.stderr)
    load = os.getloadavg()[0]
    if a.markdown:
        print("- date: %s; load average %.1f at the end" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), load))
        print("- command: `python3 perf/bench_startup.py --runs %d --markdown%s`" % (a.runs, " --emu " + a.emu if a.emu else ""))
        print("- emu: `%s`" % " ".join(emu))
        print()
        print("| workload | runner | wall ms (median) | CPU ms (median) | max RSS KiB | same output |")
        print("|---|---|---:|---:|---:|---|")
        for name, r, wall, cpu, rss, same in rows:
            print("| %s | %s | %.1f | %.1f | %d | %s |" % (name, r, wall, cpu, rss, same if not r.startswith("python") else ""))
    bad = [r for r in rows if r[5] != "yes" and not r[1].startswith("python")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
