#!/usr/bin/env python3
"""emu's benchmark: the guests in guests/bench/bin/ under emu (in-process,
through perf/run_static.py, i.e. emu.linux), natively (the same binary as a subprocess, on
x86-64 Linux hosts) and under qemu-x86_64 when it is on PATH.

    python perf/bench.py [--runs N] [--only NAME] [--markdown] [--small]

For each workload it checks that every run printed the same output and
exit status, and reports the instructions retired (emu's count), the median
wall time of N runs under emu, emu's MIPS (median run and best run: the
machines this runs on are shared and noisy), the block-cache and TLB hit
rates, the native median time, the native "MIPS equivalent" (emu's
instruction count over the native time) and the slowdown emu/native.
Exit status 1 if any output differed or a run failed.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

# numpy (imported by emu) would otherwise start OpenBLAS worker threads that
# spin on this benchmark's cores; emu does no linear algebra
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from run_static import run_static  # noqa: E402

BIN = os.path.join(ROOT, "guests", "bench", "bin")
WORKLOADS = ["sieve", "crc32", "sort", "hash", "matmul", "nbody"]   # nbody: floating point (SSE2)


def native_available() -> bool:
    return sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Result:
    def __init__(self, name: str):
        self.name = name
        self.insns = 0
        self.counters: dict = {}
        self.emu_times: list[float] = []
        self.native_times: list[float] = []
        self.qemu_times: list[float] = []
        self.outputs: dict[str, set] = {}
        self.errors: list[str] = []

    def record(self, who: str, status: int, out: bytes) -> None:
        self.outputs.setdefault(who, set()).add((status, out))

    @property
    def consistent(self) -> bool:
        every = set()
        for outs in self.outputs.values():
            every |= outs
        return len(every) == 1 and not self.errors


def run_emu(path: str):
    buf = io.BytesIO()
    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err):
        status, vcpu = run_static(path, buf, buf)
    dt = time.perf_counter() - t0
    return dt, status, buf.getvalue(), vcpu, err.getvalue().strip()


def run_process(cmd: list[str]):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    dt = time.perf_counter() - t0
    return dt, p.returncode, p.stdout


def bench_one(name: str, path: str, runs: int, native: bool, qemu: str | None, log) -> Result:
    r = Result(name)
    for i in range(runs):
        dt, status, out, vcpu, err = run_emu(path)
        r.record("emu", status, out)
        if err:
            r.errors.append(err)
            log("  %s emu: %s" % (name, err))
            break
        r.emu_times.append(dt)
        r.insns = vcpu.icount
        r.counters = vcpu.counters
        log("  %s emu run %d: %.3f s, %d instructions" % (name, i + 1, dt, vcpu.icount))
    if native:
        for i in range(runs):
            dt, status, out = run_process([path])
            r.record("native", status, out)
            r.native_times.append(dt)
        log("  %s native: median %.4f s" % (name, statistics.median(r.native_times)))
    if qemu:
        for i in range(runs):
            dt, status, out = run_process([qemu, path])
            r.record("qemu", status, out)
            r.qemu_times.append(dt)
        log("  %s qemu: median %.4f s" % (name, statistics.median(r.qemu_times)))
    return r


def _rate(hits: int, misses: int) -> str:
    """Hit rate, with the miss count (rates are all near 100%)."""
    if not hits + misses:
        return "-"
    return "%.3f%% (%s miss)" % (100.0 * hits / (hits + misses), "{:,}".format(misses))


def rows(results: list[Result], qemu: bool) -> tuple[list[str], list[list[str]]]:
    head = ["workload", "instructions", "emu s (median)", "emu MIPS", "emu MIPS (best run)", "block-cache hit", "TLB hit",
            "native s", "native MIPS-eq", "slowdown"]
    if qemu:
        head += ["qemu s", "qemu MIPS-eq", "emu/qemu"]
    out = []
    for r in results:
        if not r.emu_times:
            row = [r.name, "-", "FAILED", "-", "-", "-", "-", "-", "-", "-"]
            if qemu:
                row += ["-", "-", "-"]
            out.append(row)
            continue
        emu_s = statistics.median(r.emu_times)
        c = r.counters
        row = [r.name + ("" if r.consistent else " (OUTPUT MISMATCH)"),
               "{:,}".format(r.insns),
               "%.3f" % emu_s,
               "%.1f" % (r.insns / emu_s / 1e6),
               "%.1f" % (r.insns / min(r.emu_times) / 1e6),
               _rate(c.get("block_cache_hits", 0), c.get("block_cache_misses", 0)),
               _rate(c.get("tlb_hits", 0), c.get("tlb_misses", 0))]
        if r.native_times:
            nat = statistics.median(r.native_times)
            row += ["%.4f" % nat, "%.0f" % (r.insns / nat / 1e6), "%.0fx" % (emu_s / nat)]
        else:
            row += ["-", "-", "-"]
        if qemu:
            if r.qemu_times:
                q = statistics.median(r.qemu_times)
                row += ["%.4f" % q, "%.0f" % (r.insns / q / 1e6), "%.1fx" % (emu_s / q)]
            else:
                row += ["-", "-", "-"]
        out.append(row)
    return head, out


def format_text(head, body) -> str:
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        lines.append("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def format_markdown(head, body) -> str:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row in body:
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per workload and runner (median is reported)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only this workload (repeatable, or comma-separated)")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown, with a header")
    ap.add_argument("--small", action="store_true", help="use the quick -small variants")
    ap.add_argument("--no-native", action="store_true", help="skip the native runs")
    ap.add_argument("--no-qemu", action="store_true", help="skip qemu-x86_64 even if it is on PATH")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)

    names = [n for o in args.only for n in o.split(",") if n] or WORKLOADS
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        ap.error("unknown workload(s) %s; choose from %s" % (", ".join(unknown), ", ".join(WORKLOADS)))
    native = native_available() and not args.no_native
    qemu = None if args.no_qemu else shutil.which("qemu-x86_64")

    def log(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    results = []
    for name in names:
        path = os.path.join(BIN, name + ("-small" if args.small else ""))
        if not os.path.exists(path):
            ap.error("%s is missing: run python guests/build.py" % path)
        results.append(bench_one(name, path, args.runs, native, qemu, log))

    head, body = rows(results, qemu is not None)
    if args.markdown:
        cmd = "python perf/bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
        print("- date: %s" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
        print("- command: `%s`" % cmd.strip())
        print("- host: %s, %d CPUs, Python %s, %s" % (cpu_model(), os.cpu_count() or 0,
                                                      platform.python_version(), platform.platform()))
        print("- times are wall-clock medians of %d runs; emu runs in-process (load + run), native and "
              "qemu runs are subprocesses (including process start-up)" % args.runs)
        if qemu:
            try:
                ver = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
            except (OSError, IndexError):
                ver = qemu
            print("- qemu: %s" % ver)
        print()
        print(format_markdown(head, body))
        for r in results:
            for e in r.errors[:1]:
                print("\n- %s failed under emu: `%s`" % (r.name, e))
    else:
        print(format_text(head, body))
    for r in results:
        if not r.consistent:
            print("\n%s: outputs differ or a run failed:" % r.name, file=sys.stderr)
            for e in r.errors[:1]:
                print("  error: %s" % e, file=sys.stderr)
            for who, outs in r.outputs.items():
                for status, out in outs:
                    print("  %-6s status %d: %r" % (who, status, out[:200]), file=sys.stderr)
    return 0 if all(r.consistent for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
