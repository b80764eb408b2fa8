#!/usr/bin/env python3
"""The proportional-share scheduler's cost and parallelism: N copies of the
guest kernel (guests/kernel, 64 MiB each, ~11M instructions to its halt)
booted one after the other without a scheduler, then under the Scheduler
with shares 1..N on 1 and on 2 worker threads. Reports aggregate MIPS
(median of R runs) and how far each VM's share of the first half of the
run was from its target.

    python perf/bench_scheduler.py [--vms N] [--runs R] [--quantum Q]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from emu.services.scheduler import Scheduler, VmTask  # noqa: E402
from emu.vm import VM  # noqa: E402

KERNEL = os.path.join(ROOT, "guests", "kernel", "kernel.elf")


def vms(n):
    return [VM(KERNEL, mem="64M", output=lambda b: None) for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vms", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quantum", type=int, default=100_000)
    a = ap.parse_args()
    res = {"sequential": [], "scheduler, 1 worker": [], "scheduler, 2 workers": []}
    errs = []
    for _ in range(a.runs):
        group = vms(a.vms)
        t0 = time.perf_counter()
        for vm in group:
            vm.run()
        res["sequential"].append(sum(v.vcpu.icount for v in group) / (time.perf_counter() - t0) / 1e6)
        for workers in (1, 2):
            group = vms(a.vms)
            s = Scheduler(quantum=a.quantum, workers=workers)
            for i, vm in enumerate(group):
                s.add(VmTask(vm, "vm%d" % i), i + 1)
            t0 = time.perf_counter()
            s.run()
            dt = time.perf_counter() - t0
            res["scheduler, %d worker%s" % (workers, "s" if workers > 1 else "")].append(
                sum(v.vcpu.icount for v in group) / dt / 1e6)
        # fairness: shares 1..N, a budget that ends before any VM finishes
        group = vms(a.vms)
        s = Scheduler(quantum=a.quantum)
        for i, vm in enumerate(group):
            s.add(VmTask(vm, "vm%d" % i), i + 1)
        total = 8_000_000
        st = s.run(total=total)
        unit = total / sum(range(1, a.vms + 1))
        errs.append(max(abs(st["vm%d" % i]["retired"] - unit * (i + 1)) / (unit * (i + 1)) for i in range(a.vms)))
    for k, v in res.items():
        print("%-22s %7.1f MIPS aggregate (median of %d)" % (k, statistics.median(v), a.runs))
    print("fairness: shares 1..%d over 8M instructions, worst deviation from the target share %.2f%%"
          % (a.vms, 100 * statistics.median(errs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
