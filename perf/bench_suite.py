#!/usr/bin/env python3
"""The real-program suite (emu/services/suite.py; the same as
`emu bench --suite`): Debian programs on inputs generated from a fixed seed,
each run as a whole process under emu, natively and under qemu-x86_64,
interleaved, medians of CPU time; every output checked against the native
one. Prints a markdown table for perf/RESULTS.md with the machine, the date
and the command.

    python3 perf/bench_suite.py [--runs N] [--tier interp|jit|auto] [--only a,b] [--code-cache MIB]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tier", choices=("interp", "jit", "auto"))
    ap.add_argument("--only", help="comma-separated program names ('int' for the synthetic references)")
    ap.add_argument("--code-cache", type=float, metavar="MIB")
    ap.add_argument("--no-qemu", action="store_true")
    a = ap.parse_args()
    if a.tier:
        os.environ["EMU_TIER"] = a.tier
    from emu.services import suite
    names = a.only.split(",") if a.only else None
    try:
        res = suite.run_suite(names, runs=a.runs, qemu=not a.no_qemu, code_cache_mib=a.code_cache,
                              log=lambda line: print(line, file=sys.stderr, flush=True))
    except suite.SuiteError as e:
        print("bench_suite: %s" % e, file=sys.stderr)
        return 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print("- date: %s UTC" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"))
    print("- host: %s, %d CPUs, %s, Python %s; load average %.1f at the end"
          % (platform.processor() or platform.machine(), os.cpu_count(), platform.platform(),
             platform.python_version(), load))
    print("- command: `python3 perf/bench_suite.py %s`" % " ".join(sys.argv[1:]))
    print("- tier: %s" % os.environ.get("EMU_TIER", "default"))
    print()
    print(suite.markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
