#!/usr/bin/env python3
"""The AVX2 benchmark: guests/isa/bin/vecloops (loops GCC vectorised with
-O3 -march=x86-64-v3: AVX2 integer and float arithmetic, FMA, gathers,
variable shifts; dynamic against the host's glibc) under emu (in-process,
perf/run_static.py), natively and under qemu-x86_64. Medians of N runs; the
output must be the same everywhere (exit status 1 otherwise).

    python perf/bench_avx.py [--runs N]
"""
from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run_static import run_static  # noqa: E402
from bench import cpu_model  # noqa: E402

PROG = os.path.join(os.path.dirname(HERE), "guests", "isa", "bin", "vecloops")
ROUNDS = "2000"


def timed(fn):
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    outs, emu_t, nat_t, qemu_t = set(), [], [], []
    icount = 0
    for _ in range(a.runs):
        buf = io.BytesIO()
        t, (status, vcpu) = timed(lambda: run_static(PROG, buf, io.BytesIO(), [PROG, ROUNDS]))
        emu_t.append(t)
        icount = vcpu.icount
        outs.add((status, buf.getvalue()))
        t, r = timed(lambda: subprocess.run([PROG, ROUNDS], capture_output=True))
        nat_t.append(t)
        outs.add((r.returncode, r.stdout))
        q = shutil.which("qemu-x86_64")
        if q:
            t, r = timed(lambda: subprocess.run([q, PROG, ROUNDS], capture_output=True))
            qemu_t.append(t)
            outs.add((r.returncode, r.stdout))
    if len(outs) != 1:
        print("outputs differ: %r" % outs, file=sys.stderr)
        return 1
    e, n = statistics.median(emu_t), statistics.median(nat_t)
    print("- date: %s UTC; host: %s, %d CPUs; Python %s" % (
        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), cpu_model(), os.cpu_count(), platform.python_version()))
    print("- command: `python perf/bench_avx.py --runs %d` (medians; emu in-process, native and qemu as "
          "subprocesses, including process start-up and dynamic linking)\n" % a.runs)
    print("| workload | instructions (emu) | emu s | emu MIPS | native s | native MIPS-eq | emu/native | "
          "qemu s | qemu MIPS-eq | emu/qemu |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    qs = "| - | - | - |"
    if qemu_t:
        qm = statistics.median(qemu_t)
        qs = "| %.3f | %.0f | %.1fx |" % (qm, icount / qm / 1e6, e / qm)
    print("| vecloops 2000 (AVX2/FMA) | {:,} | {:.3f} | {:.1f} | {:.4f} | {:.0f} | {:.0f}x ".format(
        icount, e, icount / e / 1e6, n, icount / n / 1e6, e / n) + qs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
