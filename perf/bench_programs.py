#!/usr/bin/env python3
"""Whole programs through `emu run` (a fresh process each time, as a user
runs it), beside the same program run natively: our Linux guests, a
system-call-bound one, and the host's own dynamically linked tools.

    python perf/bench_programs.py [--runs N] [--markdown]

Reports median wall seconds under emu and natively, the ratio, and for the
system-call workload the system calls per second emu sustains.
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
LINUX = os.path.join(ROOT, "guests", "linux", "bin")


def workloads(tmp: str):
    big = os.path.join(tmp, "big.bin")
    with open(big, "wb") as f:
        f.write(bytes((i * 2654435761 >> 13) & 0xFF for i in range(1 << 20)))
    w = [
        ("stdio_malloc (glibc)", [os.path.join(LINUX, "stdio_malloc.glibc")], None),
        ("fileio (musl)", [os.path.join(LINUX, "fileio.musl")], None),
        ("threads (glibc)", [os.path.join(LINUX, "threads.glibc")], None),
        ("floats (glibc)", [os.path.join(LINUX, "floats.glibc")], None),
        ("syscall_heavy 20000 (glibc)", [os.path.join(LINUX, "syscall_heavy.glibc"), "20000"], 80000),
    ]
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        for name, argv in (("ls -la /usr/bin", ["ls", "-la", "/usr/bin"]),
                           ("sha256sum 1 MiB", ["sha256sum", big]),
                           ("gzip -c 1 MiB", ["gzip", "-c", big]),
                           ("python3 -S -c loop", ["python3", "-S", "-c", "print(sum(i*i for i in range(200000)))"])):
            if shutil.which(argv[0]):
                w.append((name, [shutil.which(argv[0])] + argv[1:], None))
    return w


def timed(argv, env):
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, timeout=900)
    return time.perf_counter() - t0, p.returncode, p.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    env = dict(os.environ, LC_ALL="C")
    try:
        import emu  # noqa: F401
    except ImportError:
        env["PYTHONPATH"] = ROOT
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv, nsys in workloads(tmp):
            et, nt, outs = [], [], set()
            for _ in range(a.runs):
                dt, rc, out = timed([sys.executable, "-m", "emu", "run"] + argv, env)
                et.append(dt)
                outs.add((rc, out))
                dt, rc, out = timed(argv, env)
                nt.append(dt)
                outs.add((rc, out))
            e, n = statistics.median(et), statistics.median(nt)
            same = "yes" if len(outs) == 1 else "NO"
            rows.append((name, e, n, e / n, ("%.0f" % (nsys / e)) if nsys else "", same))
            print("%-30s emu %.3f s  native %.4f s  x%.0f  same output: %s" % (name, e, n, e / n, same),
                  file=sys.stderr)
    head = ("workload", "emu s (median)", "native s (median)", "slowdown", "syscalls/s under emu", "same output")
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| %s | %.3f | %.4f | %.0fx | %s | %s |" % r)
    else:
        for r in rows:
            print("%-30s %8.3f %10.4f %7.0fx %10s %s" % r)
    return 0 if all(r[-1] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
