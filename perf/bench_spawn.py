#!/usr/bin/env python3
"""Process creation cost (issue 20): fork + execve + exit of a static and a
dynamic program, from a shell loop, natively and with the whole loop under
`emu run`; qemu-x86_64 for comparison where it is comparable.

    python perf/bench_spawn.py [--runs N] [--spawns N]

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


def wall(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the tree) of one run. The run starts in
    ROOT with ROOT first on the path, so `-m emu` is this checkout's."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    c = _cpu()
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit("bench_spawn: %s failed: %s" % (argv[:4], r.stderr.decode(errors="replace")[-500:]))
    return dt, _cpu() - c


def main() -> int:
    ap = argparse.ArgumentParser(description="fork+execve+exit cost natively, under emu and qemu-x86_64")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--spawns", type=int, default=50)
    a = ap.parse_args()
    if not os.path.exists(BUSYBOX):
        print("bench_spawn: needs Debian's static busybox (apt-get install busybox-static)", file=sys.stderr)
        return 2
    emu = [sys.executable, "-m", "emu", "run"]
    qemu = shutil.which("qemu-x86_64")
    print("| program | native ms/spawn | emu ms/spawn | qemu-x86_64 ms/run | native CPU ms/spawn "
          "| emu CPU ms/spawn | qemu-x86_64 CPU ms/run | emu loop of %d (s) |" % a.spawns)
    print("|---|---|---|---|---|---|---|---|")
    for label, cmd in PROGRAMS.items():
        rows = {k: [] for k in ("native", "emu", "qemu", "native_cpu", "emu_cpu", "qemu_cpu", "emu_total")}
        for _ in range(a.runs):
            for who, pre in (("native", []), ("emu", emu)):
                full, full_cpu = wall(pre + [BUSYBOX, "sh", "-c", loop(cmd, a.spawns)])
                empty, empty_cpu = wall(pre + [BUSYBOX, "sh", "-c", loop(cmd, 0)])
                rows[who].append((full - empty) / a.spawns * 1000)
                rows[who + "_cpu"].append((full_cpu - empty_cpu) / a.spawns * 1000)
                if who == "emu":
                    rows["emu_total"].append(full)
            if qemu:
                dt, cpu = wall([qemu] + cmd)
                rows["qemu"].append(dt * 1000)
                rows["qemu_cpu"].append(cpu * 1000)
        med = {k: statistics.median(v) if v else float("nan") for k, v in rows.items()}
        q = (lambda x: "%.1f" % x) if qemu else (lambda x: "-")
        print("| %s | %.2f | %.2f | %s | %.2f | %.2f | %s | %.2f |" % (
            label, med["native"], med["emu"], q(med["qemu"]), med["native_cpu"], med["emu_cpu"],
            q(med["qemu_cpu"]), med["emu_total"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
