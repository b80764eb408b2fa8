"""`emu bench PROGRAM [ARGS...]`: how fast emu runs a program, beside the
same program run natively (on x86-64 Linux hosts) and under qemu-x86_64
(when installed), in the same invocation.

Each runner runs the program `runs` times with its output captured; the
report gives median wall seconds, emu's MIPS (instructions retired / wall
seconds), the block-cache and TLB hit rates, exits by reason, and the
slowdown against the other runners. Every run must print the same output
with the same status, or the comparison is refused (the figures would not
be about the same work).
"""
from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time


class BenchError(Exception):
    """The runs disagree, or the program cannot be run."""


def _run_emu(argv: list[str]):
    from emu.linux.process import Process
    with tempfile.TemporaryFile() as out:
        p = Process(list(argv), stdio=(0, out.fileno(), out.fileno()), seed=1)
        p.load(argv[0])
        t0 = time.perf_counter()
        status = p.run()
        dt = time.perf_counter() - t0
        p.fds.close_all()
        out.seek(0)
        return dt, status, out.read(), p.vcpu.counters


def _run_host(cmd: list[str]):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return time.perf_counter() - t0, r.returncode, r.stdout


def native_available() -> bool:
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


def bench(argv: list[str], runs: int = 3, native: bool = True, qemu: bool = True) -> dict:
    """Run argv under emu (and natively / under qemu-x86_64). Returns the
    figures: {"emu": {...}, "native": {...} or None, "qemu": {...} or None}."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    emu_runs = [_run_emu(argv) for _ in range(runs)]
    times = [r[0] for r in emu_runs]
    outputs = {(r[1], r[2]) for r in emu_runs}
    if len(outputs) != 1:
        raise BenchError("the program's output or status differs between emu runs")
    status, out = outputs.pop()
    c = emu_runs[len(emu_runs) // 2][3]
    med = statistics.median(times)
    res = {"emu": {"seconds": med, "instructions": c["instructions"], "mips": c["instructions"] / med / 1e6,
                   "block_cache_hit": c["block_cache_hits"] / max(1, c["block_cache_hits"] + c["block_cache_misses"]),
                   "tlb_hit": c["tlb_hits"] / max(1, c["tlb_hits"] + c["tlb_misses"]),
                   "exits": c["exits"], "status": status},
           "native": None, "qemu": None}
    host_cmd = [os.path.abspath(argv[0])] + list(argv[1:])
    others = []
    if native and native_available():
        others.append(("native", host_cmd))
    q = shutil.which("qemu-x86_64") if qemu else None
    if q:
        others.append(("qemu", [q] + host_cmd))
    for name, cmd in others:
        rr = [_run_host(cmd) for _ in range(runs)]
        if any((r[1], r[2]) != (status, out) for r in rr):
            raise BenchError("%s prints something else than emu (or exits %s): not the same work"
                             % (name, sorted({r[1] for r in rr})))
        s = statistics.median(r[0] for r in rr)
        res[name] = {"seconds": s, "emu_slowdown": med / s if s else float("inf")}
    return res


def report(res: dict) -> str:
    e = res["emu"]
    lines = ["emu:    %.3f s median, %d instructions, %.1f MIPS; block cache %.3f%% hits, TLB %.3f%% hits"
             % (e["seconds"], e["instructions"], e["mips"], 100 * e["block_cache_hit"], 100 * e["tlb_hit"]),
             "        exits " + ", ".join("%s %d" % kv for kv in sorted(e["exits"].items()))]
    for name in ("native", "qemu"):
        r = res[name]
        if r is not None:
            lines.append("%-7s %.4f s median: emu is %.1fx slower" % (name + ":", r["seconds"], r["emu_slowdown"]))
    return "\n".join(lines)
