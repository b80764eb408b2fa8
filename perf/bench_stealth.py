#!/usr/bin/env python3
"""The cost of deceptive time (core/timing.pxi): MIPS of the bench guests
under --profile stealth with the template's class costs and cache model,
with class costs alone, and with plain virtual time (no charges), all in
the interpreter (the tier timed vCPUs run in), plus plain virtual time in
the default tier for reference. Runs are interleaved round by round and
timed in CPU time (the host is shared), medians of N rounds.

    python perf/bench_stealth.py [--runs 5] [--markdown] [PROGRAM...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import emu  # noqa: E402
from emu.hypervisor import Guest  # noqa: E402
from emu.hypervisor.deception import Deception  # noqa: E402
from emu.linux.process import Process  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(os.path.dirname(HERE), "guests", "bench", "bin")
MODES = [("virtual time, no charges", "interp", Deception(timing=False)),
         ("class costs", "interp", Deception(cache=False)),
         ("class costs + cache model, every access", "interp", Deception(cache_sample=1)),
         ("class costs + cache model, sampled 1 in 4 (default)", "interp", Deception()),
         ("virtual time, no charges (default tier)", None, Deception(timing=False))]


def run(path, tier, deception):
    prev = emu.get_default_tier()
    if tier:
        emu.set_default_tier(tier)
    try:
        with tempfile.TemporaryFile() as out:
            g = Guest("stealth", "virtual", deception=deception)
            p = Process([path], stdio=(0, out.fileno(), out.fileno()), guest=g, profile="stealth", time="virtual")
            p.load(path)
            t0 = time.process_time()
            status = p.run()
            dt = time.process_time() - t0
            p.fds.close_all()
            out.seek(0)
            text = out.read()
    finally:
        emu.set_default_tier(prev)
    return status, text, p.vcpu.icount, dt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("programs", nargs="*", default=["sieve", "sort", "hash", "crc32"])
    a = ap.parse_args()
    rows = []
    for prog in a.programs:
        path = prog if os.sep in prog else os.path.join(BENCH, prog)
        times = {m[0]: [] for m in MODES}
        outs, n = set(), None
        for name, tier, dec in MODES:          # warm-up: imports, first translations
            run(path, tier, dec)
        for _ in range(a.runs):
            for name, tier, dec in MODES:
                status, text, icount, dt = run(path, tier, dec)
                outs.add((status, text))
                n = icount
                times[name].append(dt)
        if len(outs) != 1:
            print("emu: %s: the modes disagree on the output" % prog, file=sys.stderr)
            return 1
        mips = {k: n / statistics.median(v) / 1e6 for k, v in times.items()}
        rows.append((os.path.basename(path), n, mips))
    names = [m[0] for m in MODES]
    if a.markdown:
        print("| workload | instructions | " + " | ".join("%s MIPS" % k for k in names) +
              " | default stealth vs no charges |")
        print("|---|---:|" + "---:|" * len(names) + "---:|")
    for prog, n, mips in rows:
        rel = mips[names[3]] / mips[names[0]] - 1
        if a.markdown:
            print("| %s | %s | %s | %+.1f%% |" % (prog, format(n, ","), " | ".join("%.1f" % mips[k] for k in names),
                                                 100 * rel))
        else:
            print("%-8s %12d  " % (prog, n) + "  ".join("%s: %.1f" % (k, mips[k]) for k in names) +
                  "  (%+.1f%%)" % (100 * rel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
