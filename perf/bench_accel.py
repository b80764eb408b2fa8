#!/usr/bin/env python3
"""The microVM's compute accelerator (emu/vm/accel.py): GEMM offload
throughput against doing the same multiply in guest code on emu's CPU.

  * in the guest: guests/kernel's offload test (a VM with accel=True)
    multiplies int32 matrices 64x48x32 on the vCPU, then on the accelerator;
    both phases are marked on port 0x80, which the VMM timestamps in host
    time, so the accelerator figure includes the doorbell's MMIO exit, the
    address checks, the DMA copies and the completion interrupt;
  * the round trip of the guest's next command (float32 32x32x32), once
    the driver's code is translated;
  * the device alone (a bare VM; descriptors submitted by the host) for
    larger shapes, int32 and float32: address checks, copies in and out of
    guest RAM through PhysMem, numpy.

Throughput is in multiply-adds per second (1 MAC = 2 flops/ops).

    python3 perf/bench_accel.py [--runs N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from emu.vm import VM  # noqa: E402
from emu.vm import accel as A  # noqa: E402

KERNEL = os.path.join(ROOT, "guests", "kernel", "kernel.elf")
GUEST_MACS = 64 * 48 * 32


def guest_run():
    vm = VM(KERNEL, mem="64M", accel=True, output=lambda b: None)
    vm.run(timeout=120)
    t = {code: ts for code, ts, _tsc in vm.post_codes}
    tsc = {code: c for code, _ts, c in vm.post_codes}
    return t[0x21] - t[0x20], t[0x22] - t[0x21], tsc[0x21] - tsc[0x20], t[0x24] - t[0x23]


def device_run(op, m, n, k, runs):
    mem = 3 * 4 * max(m * k, k * n, m * n) + (1 << 20)
    mem = (mem + 0xFFFFF) & ~0xFFFFF
    vm = VM(None, mem=mem, accel=True)
    rng = np.random.default_rng(1)
    a_pa, b_pa = 1 << 16, (1 << 16) + 4 * m * k
    c_pa = b_pa + 4 * k * n
    if op == A.OP_GEMM_I32:
        vm.ram[a_pa:c_pa] = rng.integers(0, 256, c_pa - a_pa, dtype=np.uint8)
    else:
        vals = rng.standard_normal((c_pa - a_pa) // 4).astype(np.float32)
        vm.ram[a_pa:c_pa] = np.frombuffer(vals.tobytes(), np.uint8)
    d = A._DESC.pack(op, 0, m, n, k, 0, 0, 0, a_pa, b_pa, c_pa, 0)
    vm.ram[0x1000:0x1040] = np.frombuffer(d, np.uint8)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        vm.accel.write(A.R_DOORBELL, 4, 0x1000)
        times.append(time.perf_counter() - t0)
        assert vm.accel.status == A.ST_OK, vm.accel.status
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    cpu, off, cyc, warm = [], [], [], []
    for _ in range(args.runs):
        c, o, cy, w = guest_run()
        cpu.append(c)
        off.append(o)
        cyc.append(cy)
        warm.append(w)
    c, o = statistics.median(cpu), statistics.median(off)
    print("guest int32 GEMM 64x48x32 (%d MACs), medians of %d boots:" % (GUEST_MACS, args.runs))
    print("  on emu's vCPU:        %8.2f ms  %8.2f MMAC/s  (%d guest instructions)"
          % (c * 1e3, GUEST_MACS / c / 1e6, statistics.median(cyc)))
    print("  offloaded (doorbell to interrupt): %8.3f ms  %8.2f MMAC/s  speed-up %.0fx"
          % (o * 1e3, GUEST_MACS / o / 1e6, c / o))
    print("  a second command's round trip (float32 32x32x32, driver code translated): %.3f ms"
          % (statistics.median(warm) * 1e3))
    print("device alone (host-submitted descriptors), medians of %d:" % args.runs)
    for op, name in ((A.OP_GEMM_I32, "int32"), (A.OP_GEMM_F32, "float32")):
        for (m, n, k) in ((64, 48, 32), (128, 128, 128), (256, 256, 256), (512, 512, 512)):
            t = device_run(op, m, n, k, args.runs)
            macs = m * n * k
            print("  %-7s %4dx%4dx%4d: %9.3f ms  %8.2f GMAC/s" % (name, m, n, k, t * 1e3, macs / t / 1e9))
    return 0


if __name__ == "__main__":
    sys.exit(main())
