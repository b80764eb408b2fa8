#!/usr/bin/env python3
"""A fuzzing loop over a snapshot: restore the machine, write an input, run
the target to its end. The target (the FNV-1a routine of tests/
test_snapshot.py: hashes the input, writes three pages, patches its own
code) runs on emu with Machine.snapshot/restore and, when the `unicorn`
package is importable, on Unicorn with what a Unicorn harness does to get
back to the same state (context_restore plus writing the saved bytes of the
written regions back, the code included).

    python perf/bench_snapshot.py [--iters N] [--runs R] [--input-size B] [--ram MIB]

Reports executions per second (median of R runs of N iterations each) and
emu's restore time alone.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import emu  # noqa: E402
from test_snapshot import CODE, DATA, INPUT, TARGET  # noqa: E402

try:
    import unicorn
    from unicorn import x86_const as UX
except ImportError:
    unicorn = None


def inputs(n: int, size: int) -> list[bytes]:
    return [bytes((i * 7 + k) & 0xFF for k in range(size)) for i in range(n)]


def emu_loop(iters: int, size: int, ram_mib: int) -> tuple[float, float]:
    m = emu.Machine(ram_mib << 20, cpl=0)
    m.map(CODE, 0x1000)
    m.map(DATA, 0x4000)
    m.map(INPUT, 0x1000)
    m.write(CODE, TARGET)
    v = m.vcpu
    v.rip, v.rsi, v.rdi, v.rcx = CODE, INPUT, DATA, size
    snap = m.snapshot()
    data = inputs(iters, size)
    t_restore = 0.0
    t0 = time.perf_counter()
    for d in data:
        t1 = time.perf_counter()
        m.restore(snap)
        t_restore += time.perf_counter() - t1
        m.write(INPUT, d)
        if v.run().name != "HLT":
            raise SystemExit("emu: the target did not finish")
    return time.perf_counter() - t0, t_restore


def unicorn_loop(iters: int, size: int, ram_mib: int) -> float:
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    for base, n in ((CODE, 0x1000), (DATA, 0x4000), (INPUT, 0x1000)):
        uc.mem_map(base, n)
    uc.mem_write(CODE, TARGET)
    uc.reg_write(UX.UC_X86_REG_RSI, INPUT)
    uc.reg_write(UX.UC_X86_REG_RDI, DATA)
    uc.reg_write(UX.UC_X86_REG_RCX, size)
    ctx = uc.context_save()
    saved = {base: bytes(uc.mem_read(base, n)) for base, n in ((CODE, 0x1000), (DATA, 0x4000))}
    data = inputs(iters, size)
    hlt = CODE + len(TARGET) - 1
    t0 = time.perf_counter()
    for d in data:
        uc.context_restore(ctx)
        for base, b in saved.items():
            uc.mem_write(base, b)
        uc.mem_write(INPUT, d)
        uc.emu_start(CODE, hlt)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--ram", type=int, default=64, help="emu guest RAM in MiB")
    a = ap.parse_args()
    e, r, u = [], [], []
    for _ in range(a.runs):
        t, tr = emu_loop(a.iters, a.input_size, a.ram)
        e.append(t)
        r.append(tr)
        if unicorn is not None:
            u.append(unicorn_loop(a.iters, a.input_size, a.ram))
    em = statistics.median(e)
    print("emu:     %8.0f execs/s   restore %.1f us median-run average" % (a.iters / em, statistics.median(r) / a.iters * 1e6))
    if u:
        um = statistics.median(u)
        print("unicorn: %8.0f execs/s   (unicorn %s)" % (a.iters / um, unicorn.__version__))
        print("emu/unicorn throughput: %.2fx" % (um / em))
    return 0


if __name__ == "__main__":
    sys.exit(main())
