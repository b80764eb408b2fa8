#!/usr/bin/env python3
"""What instrumentation costs: one integer guest (guests/bench/bin/crc32-small
by default) run under emu and, when the `unicorn` package is importable,
under Unicorn, with

    none      no hooks
    code      a code hook on one hot instruction, calling a Python function
    block     a Python block hook (a call per block executed)
    coverage  AFL edge coverage: emu's in-core map; for Unicorn, a Python
              block hook that updates the same map (what a Python harness
              over Unicorn has to do)

    python perf/bench_hooks.py [--guest NAME] [--runs N] [--configs none,code,...]

Reports MIPS (emu's instruction count over the best of N wall times, so both
emulators are charged for the same guest work) and each configuration's
slowdown against the same emulator without hooks. Both runs must print the
same output.
"""
from __future__ import annotations

import argparse
import collections
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from elftools.elf.elffile import ELFFile  # noqa: E402

import tempfile  # noqa: E402

from emu.hooks import Hooks  # noqa: E402
from emu.linux.process import GuestExit, Process  # noqa: E402

STACK_TOP = 0x7FFFFFF00000      # (Unicorn's stack for the guest)
STACK_SIZE = 1 << 20

try:
    import unicorn
    from unicorn import x86_const as UX
except ImportError:          # the Unicorn column is skipped
    unicorn = None

CONFIGS = ("none", "code", "block", "coverage")


# ---- emu ----

def _process(path: str):
    out = tempfile.TemporaryFile()
    p = Process([path], env={}, stdio=(0, out.fileno(), out.fileno()), seed=1)
    p.load(path)
    p.out = out
    return p


def _drive(p, hooks=None, limit=None):
    """Run the guest under the Linux personality (system calls, demand
    paging), with the Hooks' callbacks. Returns the guest's output."""
    v = p.vcpu
    while True:
        if hooks is not None:
            ex = hooks.run(None if limit is None else max(limit - v.icount, 0))
        else:
            ex = v.run() if limit is None else v.run(max(limit - v.icount, 0))
        if ex.name == "SYSCALL":
            try:
                p.sys.dispatch()
            except GuestExit:
                break
        elif ex.name == "EXCEPTION" and ex.vector == 14 and p.mm.handle_fault(ex.cr2, ex.error_code):
            continue
        elif ex.name == "BUDGET" and limit is not None:
            break
        else:
            raise RuntimeError("unexpected exit %r" % ex)
    p.out.seek(0)
    return p.out.read()


def emu_run(path: str, config: str, hot: int = 0):
    p = _process(path)
    v = p.vcpu
    h = Hooks(v)
    hits = [0]
    if config == "code":
        def on_code(vcpu, address, size):
            hits[0] += 1
        h.code(hot, hot, on_code)
    elif config == "block":
        def on_block(vcpu, address, size):
            hits[0] += 1
        h.block(on_block)
    elif config == "coverage":
        v.enable_coverage()
    t0 = time.perf_counter()
    out = _drive(p, h)
    dt = time.perf_counter() - t0
    if config == "coverage":
        hits[0] = int(np.count_nonzero(v.coverage))
    return dt, v.icount, out, hits[0]


def hot_address(path: str) -> int:
    """The start of the block emu executes most often (early in the run)."""
    p = _process(path)
    h = Hooks(p.vcpu)
    count = collections.Counter()
    h.block(lambda vcpu, address, size: count.update((address,)))
    _drive(p, h, limit=300_000)
    return count.most_common(1)[0][0]


# ---- Unicorn ----

def uc_run(path: str, config: str, hot: int = 0):
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        entry = elf["e_entry"]
        segs = [(s["p_vaddr"], s["p_memsz"], s.data()) for s in elf.iter_segments()
                if s["p_type"] == "PT_LOAD" and s["p_memsz"]]
    pages = set()
    for va, memsz, _ in segs:
        pages.update(range(va & ~0xFFF, (va + memsz + 0xFFF) & ~0xFFF, 0x1000))
    for p in sorted(pages):
        uc.mem_map(p, 0x1000, unicorn.UC_PROT_ALL)
    for va, _, data in segs:
        if data:
            uc.mem_write(va, data)
    uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE, unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE)
    rsp = (STACK_TOP - 256) & ~15
    uc.mem_write(rsp, bytes(40))
    uc.reg_write(UX.UC_X86_REG_RSP, rsp)
    uc.reg_write(UX.UC_X86_REG_EFLAGS, 0x202)
    out = bytearray()
    hits = [0]

    def on_syscall(u, _):
        nr = u.reg_read(UX.UC_X86_REG_RAX)
        if nr == 1:
            n = u.reg_read(UX.UC_X86_REG_RDX)
            out.extend(u.mem_read(u.reg_read(UX.UC_X86_REG_RSI), n))
            u.reg_write(UX.UC_X86_REG_RAX, n)
        else:
            u.emu_stop()
    uc.hook_add(unicorn.UC_HOOK_INSN, on_syscall, None, 1, 0, UX.UC_X86_INS_SYSCALL)
    if config == "code":
        def on_code(u, address, size, _):
            hits[0] += 1
        uc.hook_add(unicorn.UC_HOOK_CODE, on_code, None, hot, hot)
    elif config == "block":
        def on_block(u, address, size, _):
            hits[0] += 1
        uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
    elif config == "coverage":
        cov = bytearray(65536)
        prev = [0]

        def on_cov(u, address, size, _):
            cur = ((address >> 4) ^ (address << 8)) & 0xFFFF
            cov[cur ^ prev[0]] = (cov[cur ^ prev[0]] + 1) & 0xFF
            prev[0] = cur >> 1
        uc.hook_add(unicorn.UC_HOOK_BLOCK, on_cov)
    t0 = time.perf_counter()
    uc.emu_start(entry, 0)
    dt = time.perf_counter() - t0
    if config == "coverage":
        hits[0] = sum(1 for x in cov if x)
    return dt, bytes(out), hits[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--guest", default="crc32-small")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--configs", default=",".join(CONFIGS),
                    help="comma-separated subset of %s" % ", ".join(CONFIGS))
    args = ap.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    if configs[0] != "none":
        configs.insert(0, "none")
    path = os.path.join(ROOT, "guests", "bench", "bin", args.guest)
    hot = hot_address(path)
    rows = []
    base_out = None
    insns = None
    for config in configs:
        best = None
        for _ in range(args.runs):
            dt, n, out, hits = emu_run(path, config, hot)
            best = dt if best is None else min(best, dt)
        insns = n
        if base_out is None:
            base_out = out
        assert out == base_out, "emu output differs with hooks (%s)" % config
        row = {"config": config, "emu_s": best, "emu_hits": hits}
        if unicorn is not None:
            ubest = None
            for _ in range(args.runs):
                udt, uout, uhits = uc_run(path, config, hot)
                ubest = udt if ubest is None else min(ubest, udt)
            assert uout == base_out, "Unicorn output differs (%s)" % config
            row.update(uc_s=ubest, uc_hits=uhits)
        rows.append(row)
    base = rows[0]
    lines = []
    uc_ver = ("unicorn %s" % unicorn.__version__) if unicorn is not None else "unicorn not installed"
    lines.append("guest %s: %s instructions (emu's count); hot address %#x; best of %d runs; %s; %s; Python %s"
                 % (args.guest, format(insns, ","), hot, args.runs, uc_ver, platform.machine(),
                    platform.python_version()))
    lines.append("")
    hdr = ["config", "emu s", "emu MIPS", "emu slowdown", "emu events"]
    if unicorn is not None:
        hdr += ["unicorn s", "unicorn MIPS", "unicorn slowdown", "unicorn events", "emu speedup"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "|".join("---" for _ in hdr) + "|")
    for r in rows:
        cells = [r["config"], "%.4f" % r["emu_s"], "%.1f" % (insns / r["emu_s"] / 1e6),
                 "%.2fx" % (r["emu_s"] / base["emu_s"]), format(r["emu_hits"], ",")]
        if unicorn is not None:
            cells += ["%.4f" % r["uc_s"], "%.1f" % (insns / r["uc_s"] / 1e6),
                      "%.2fx" % (r["uc_s"] / base["uc_s"]), format(r["uc_hits"], ","),
                      "%.2fx" % (r["uc_s"] / r["emu_s"])]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
