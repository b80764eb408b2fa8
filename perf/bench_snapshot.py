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
emu's restore time alone. Then the microVM (guests/kernel, 64 MiB, stopped
3M instructions into its boot): snapshot file write, restore from the file
to a runnable VM, and a live migration over a socketpair (pages per round,
the pages and time of the final stop-and-copy), medians of R runs.
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
    vm_figures(a.runs)
    return 0


def vm_figures(runs: int) -> None:
    import socket
    import tempfile
    import threading
    from emu.services import vmstate as snapshot
    from emu.vm import VM
    from test_vm_snapshot import KERNEL, MEM, STOP_AT, make_disk
    tmp = tempfile.mkdtemp()
    disk = os.path.join(tmp, "disk.img")
    make_disk(disk)
    save_ms, restore_ms, down_ms, last_pages, rounds = [], [], [], [], []
    for _ in range(runs):
        vm = VM(KERNEL, mem=MEM, disk=disk, output=lambda b: None)
        vm.run(max_insns=STOP_AT)
        vm.exit_reason = None
        path = os.path.join(tmp, "vm.snap")
        t0 = time.perf_counter()
        pages = snapshot.save(vm, path)
        save_ms.append((time.perf_counter() - t0) * 1e3)
        vm.close()
        t0 = time.perf_counter()
        vm = snapshot.restore(path, output=lambda b: None)
        restore_ms.append((time.perf_counter() - t0) * 1e3)
        # live migration: downtime = from the source's stop to the destination holding its state
        dst = VM(None, mem=MEM, disk=disk, output=lambda b: None)
        s1, s2 = socket.socketpair()
        fig = {}

        def sender():
            with s1.makefile("wb") as f:
                fig.update(snapshot.send(vm, f, slice_insns=200_000, stop_pages=8))
            s1.close()
        t = threading.Thread(target=sender)
        t.start()
        with s2.makefile("rb") as f:
            snapshot.receive(f, dst)
        t_done = time.perf_counter()
        t.join()
        s2.close()
        vm.close()
        dst.close()
        rounds.append(fig["rounds"])
        last_pages.append(fig["final_pages"])
        down_ms.append((t_done - fig["t_stop"]) * 1e3)
    print("microVM snapshot: %d pages stored; save %.1f ms, restore to a runnable VM %.2f ms (medians of %d)"
          % (pages, statistics.median(save_ms), statistics.median(restore_ms), runs))
    print("live migration: pages per pre-copy round %s; stop-and-copy %d pages, downtime %.2f ms (medians)"
          % (rounds[len(rounds) // 2], statistics.median(last_pages), statistics.median(down_ms)))


if __name__ == "__main__":
    sys.exit(main())
