#!/usr/bin/env python3
"""What Linux's page-table isolation costs under `emu boot`, with and
without PCIDs (the kernel's `nopcid` turns them off): Debian's kernel
(guests/linuxboot/build.py) booted to the busybox prompt, then a
system-call-heavy command (dd with 1-byte blocks: two system calls a block,
each entering and leaving the kernel through two CR3 switches) and a
process-heavy one (a shell loop running a program many times).

For each: guest instructions, host wall time, TLB misses and flushes, and
the CR3 loads that kept the TLB (pcid_kept).

    python3 perf/bench_linux_tlb.py [--runs 3] [--cmdline-extra nopcid]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "guests", "linuxboot"))

import build as linuxboot  # noqa: E402
from emu.vm import VM  # noqa: E402

WORK = {
    "syscalls": "dd if=/dev/zero of=/dev/null bs=1 count=20000",
    "processes": "i=0; while [ $i -lt 100 ]; do /bin/true; i=$((i+1)); done",
}


def measure(vm, cmd):
    c0 = vm.vcpu.counters
    t0 = time.perf_counter()
    vm.command(cmd, timeout=600)
    dt = time.perf_counter() - t0
    c1 = vm.vcpu.counters
    return {"seconds": dt, "insns": c1["instructions"] - c0["instructions"],
            "tlb_misses": c1["tlb_misses"] - c0["tlb_misses"],
            "tlb_flushes": c1["tlb_flushes"] - c0["tlb_flushes"],
            "pcid_kept": c1.get("pcid_kept", 0) - c0.get("pcid_kept", 0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cmdline-extra", default="")
    a = ap.parse_args()
    mat = linuxboot.material()
    vm = VM(mat["vmlinux"], mem="128M", initrd=mat["initramfs.cpio"],
            cmdline=("console=ttyS0 " + a.cmdline_extra).strip(), output=lambda d: None)
    assert vm.run_until(b"# ", timeout=600), vm.console_text()[-2000:]
    flags = vm.command("grep -m1 ^flags /proc/cpuinfo").split()
    out = {"cmdline_extra": a.cmdline_extra, "pcid_in_use": "pcid" in flags}
    vm.command(WORK["syscalls"])                 # warm up: the binaries' pages, the code cache
    for name, cmd in WORK.items():
        rs = [measure(vm, cmd) for _ in range(a.runs)]
        out[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    vm.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
