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
"""
from __future__ import annotations

import argparse
import os
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


def wall(argv: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=ROOT)
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit("bench_spawn: %s failed: %s" % (argv[:4], r.stderr.decode(errors="replace")[-500:]))
    return dt


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
    print("| program | native ms/spawn | emu ms/spawn | qemu-x86_64 ms/run | emu loop of %d (s) |" % a.spawns)
    print("|---|---|---|---|---|")
    for label, cmd in PROGRAMS.items():
        rows = {"native": [], "emu": [], "qemu": [], "emu_total": []}
        for _ in range(a.runs):
            for who, pre in (("native", []), ("emu", emu)):
                full = wall(pre + [BUSYBOX, "sh", "-c", loop(cmd, a.spawns)])
                empty = wall(pre + [BUSYBOX, "sh", "-c", loop(cmd, 0)])
                rows[who].append((full - empty) / a.spawns * 1000)
                if who == "emu":
                    rows["emu_total"].append(full)
            if qemu:
                rows["qemu"].append(wall([qemu] + cmd) * 1000)
        med = {k: statistics.median(v) if v else float("nan") for k, v in rows.items()}
        print("| %s | %.2f | %.2f | %s | %.2f |" % (label, med["native"], med["emu"],
                                                    "%.1f" % med["qemu"] if qemu else "-", med["emu_total"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
