#!/usr/bin/env python3
"""emu's execution tiers side by side with qemu-user and the host CPU.

    python perf/bench_tiers.py [--runs N] [--only NAME] [--tiers interp,jit,auto] [--markdown]

Every runner is timed the same way: as a subprocess (`python -m emu run
--tier T --stats PROG`, `qemu-x86_64 PROG`, `PROG`), wall clock from spawn to
exit, so emu's figures include its Python start-up (about 40-90 ms) exactly
as qemu's include its own. The runners take turns within each round (the
order rotates every round), so a burst of load on this shared machine hits
them alike; medians of N rounds are reported. The workloads are the -large
bench guests (guests/bench, 1.4-2 G instructions, so start-up is a few
percent of a run).

Columns: per tier, the wall time and "MIPS" = instructions emu retired over
that wall time (the same count is used for every runner: "MIPS-equivalent"
for qemu and native); emu's in-loop MIPS (its --stats line, start-up
excluded); and the ratio qemu wall / emu wall (above 1: emu is faster).
Every run's output is checked against the first run's; exit status 1 if any
runner printed something else or failed.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(ROOT, "guests", "bench", "bin")
WORKLOADS = ["sieve", "crc32", "sort", "hash", "matmul", "nbody"]
STATS = re.compile(r"emu: (\d+) instructions in ([0-9.]+) s")


def timed(cmd: list[str], env=None) -> tuple[float, bytes, bytes, int]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=env, timeout=3600)
    return time.perf_counter() - t0, p.stdout, p.stderr, p.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", action="append", default=[], metavar="NAME")
    ap.add_argument("--tiers", default="interp,jit", help="comma-separated emu tiers (interp, jit, auto)")
    ap.add_argument("--interp-runs", type=int, default=1,
                    help="rounds that include the interpreter (it takes 10-20 s a workload)")
    ap.add_argument("--variant", default="-large", help="binary suffix: -large (default), '' or -small")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    tiers = [t for t in a.tiers.split(",") if t]
    qemu = shutil.which("qemu-x86_64")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1")
    names = a.only or WORKLOADS
    rows = []
    bad = False
    for name in names:
        prog = os.path.join(BIN, name + a.variant)
        runners = {"native": [prog]}
        if qemu:
            runners["qemu"] = [qemu, prog]
        for t in tiers:
            runners["emu-" + t] = [sys.executable, "-m", "emu", "run", "--tier", t, "--stats", prog]
        walls = {k: [] for k in runners}
        loop_mips = {k: [] for k in runners}
        ref = None
        insns = None
        order = list(runners)
        for rnd in range(a.runs):
            order = order[1:] + order[:1]
            for k in order:
                if k == "emu-interp" and rnd >= a.interp_runs:
                    continue
                wall, out, err, rc = timed(runners[k], env)
                if ref is None:
                    ref = (out, rc)
                if (out, rc) != ref:
                    print("%s: %s printed something else (status %d): %r" % (name, k, rc, err[-300:]),
                          file=sys.stderr)
                    bad = True
                walls[k].append(wall)
                m = STATS.search(err.decode(errors="replace"))
                if m:
                    insns = int(m.group(1))
                    loop_mips[k].append(int(m.group(1)) / float(m.group(2)) / 1e6 if float(m.group(2)) else 0)
            print("%s round %d done" % (name, rnd + 1), file=sys.stderr)
        med = {k: statistics.median(v) for k, v in walls.items() if v}
        rows.append((name, insns, med, {k: statistics.median(v) for k, v in loop_mips.items() if v}))
    keys = ["native"] + (["qemu"] if qemu else []) + ["emu-" + t for t in tiers]
    head = ["workload", "instructions"]
    for k in keys:
        head += ["%s s" % k, "%s MIPS" % k]
    head += ["emu-%s in-loop MIPS" % t for t in tiers]
    if qemu:
        head += ["qemu/emu-%s" % t for t in tiers if t != "interp"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, insns, med, lm in rows:
        cells = [name, "{:,}".format(insns or 0)]
        for k in keys:
            w = med.get(k)
            cells += ["%.3f" % w if w else "-", "%.0f" % (insns / w / 1e6) if w and insns else "-"]
        cells += ["%.0f" % lm["emu-" + t] if "emu-" + t in lm else "-" for t in tiers]
        if qemu:
            cells += ["%.2f" % (med["qemu"] / med["emu-" + t]) for t in tiers if t != "interp"]
        lines.append("| " + " | ".join(cells) + " |")
    if a.markdown:
        print("- date: %s UTC; command: `python perf/bench_tiers.py %s`" % (
            time.strftime("%Y-%m-%d %H:%M", time.gmtime()), " ".join(sys.argv[1:])))
        print("- all runners as subprocesses, interleaved (order rotating each round); medians of %d rounds "
              "(%d for the interpreter)" % (a.runs, a.interp_runs))
    print("\n".join(lines))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
