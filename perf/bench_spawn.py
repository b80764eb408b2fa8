#!/usr/bin/env python3
"""Process creation cost (issue 20): fork + execve + exit of a static and a
dynamic program, from a shell loop, natively and with the whole loop under
`emu run`; qemu-x86_64 for comparison where it is comparable.

    python perf/bench_spawn.py [--runs N] [--spawns N] [--compare DIR]

The shell is Debian's static busybox (`busybox sh -c 'i=0; while ...'`);
the programs are `/bin/busybox true` (static) and `/bin/true` (coreutils,
dynamically linked: ld.so and libc load in each child). Per-spawn cost =
(wall of the loop with N spawns - wall of the same loop with 0) / N, so the
shell's own start-up (and emu's) is taken out. qemu-user follows no execve
without binfmt_misc (a child it execs runs natively), so its row is the
cost of one `qemu-x86_64 PROGRAM` run started by the host (fork + exec of
qemu, translate, exit), the nearest it has to a spawn. Medians of --runs.

Besides wall time, the CPU time (user + system) of the whole process tree
per spawn, from the waited-for children's rusage, in the same subtraction:
on a shared host whose load leaves each process a fraction of a CPU, wall
time mostly measures the wait for a CPU, and CPU time what a spawn costs.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
PROGRAMS = {"static (/bin/busybox true)": [os.path.realpath(BUSYBOX), "true"],
            "dynamic (/bin/true)": [os.path.realpath(shutil.which("true") or "/bin/true")]}


def loop(cmd: list[str], n: int) -> str:
    return 'i=0; while [ $i -lt %d ]; do %s; i=$((i+1)); done' % (n, " ".join(cmd))


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wall(argv: list[str], root: str = ROOT) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the tree) of one run. The run starts in
    root with root first on the path, so `-m emu` is that checkout's."""
    env = dict(os.environ, PYTHONPATH=root)
    c = _cpu()
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=root)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit("bench_spawn: %s failed: %s" % (argv[:4], r.stderr.decode(errors="replace")[-500:]))
    return dt, _cpu() - c


def main() -> int:
    ap = argparse.ArgumentParser(description="fork+execve+exit cost natively, under emu and qemu-x86_64")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--spawns", type=int, default=50)
    ap.add_argument("--compare", metavar="DIR",
                    help="another checkout of emu (with its core built) measured in the same rounds, "
                         "interleaved: its rows are labelled 'emu (DIR)'")
    a = ap.parse_args()
    if not os.path.exists(BUSYBOX):
        print("bench_spawn: needs Debian's static busybox (apt-get install busybox-static)", file=sys.stderr)
        return 2
    emu = [sys.executable, "-m", "emu", "run"]
    qemu = shutil.which("qemu-x86_64")
    emus = [("emu", ROOT)] + ([("emu (%s)" % a.compare, os.path.abspath(a.compare))] if a.compare else [])
    print("| program | runner | ms/spawn (wall) | CPU ms/spawn | loop of %d (s) |" % a.spawns)
    print("|---|---|---|---|---|")
    for label, cmd in PROGRAMS.items():
        rows: dict[str, list] = {}
        for _ in range(a.runs):
            for who, pre, root in [("native", [], ROOT)] + [(name, emu, root) for name, root in emus]:
                full, full_cpu = wall(pre + [BUSYBOX, "sh", "-c", loop(cmd, a.spawns)], root)
                empty, empty_cpu = wall(pre + [BUSYBOX, "sh", "-c", loop(cmd, 0)], root)
                rows.setdefault(who, []).append(((full - empty) / a.spawns * 1000,
                                                 (full_cpu - empty_cpu) / a.spawns * 1000, full))
            if qemu:
                dt, cpu = wall([qemu] + cmd)
                rows.setdefault("qemu-x86_64 (one run)", []).append((dt * 1000, cpu * 1000, dt))
        for who, v in rows.items():
            med = [statistics.median(x[k] for x in v) for k in range(3)]
            print("| %s | %s | %.2f | %.2f | %s |" % (label, who, med[0], med[1],
                                                      "%.2f" % med[2] if who.startswith("emu") else "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
