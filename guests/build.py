#!/usr/bin/env python3
"""Build emu's guest programs: freestanding static x86-64 Linux executables
(no libc) written in C.

    python guests/build.py            # build everything that is out of date
    python guests/build.py --force    # rebuild all
    python guests/build.py --check    # also disassemble and refuse SSE/x87

Compiles with `cc` (gcc) when it is on PATH, otherwise with
`python -m ziglang cc -target x86_64-linux-musl` (the ziglang pip package).
The binaries are committed beside the sources (guests/bench/bin/,
guests/hello/hello) so running the benchmarks and tests needs no compiler.

Each benchmark is built twice: bin/NAME at benchmark size (about 100-300
million instructions) and bin/NAME-small, a quick variant for the tests.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# -mgeneral-regs-only: emu implements the general-purpose integer
# instructions only (no SSE/x87 yet).
COMMON_FLAGS = [
    "-ffreestanding", "-nostdlib", "-static", "-O2", "-mgeneral-regs-only",
    "-fno-stack-protector", "-fno-pie", "-no-pie",
    "-fcf-protection=none", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables",
    "-fno-strict-aliasing", "-fno-builtin",
    "-Wall", "-Wno-unused-function",
    "-Wl,--build-id=none", "-Wl,-z,noexecstack",
]
GCC_ONLY_FLAGS = ["-fno-tree-loop-distribute-patterns"]
# clang (zig cc) does not honour -mgeneral-regs-only on x86: say it plainly
CLANG_ONLY_FLAGS = ["-mno-sse", "-mno-sse2", "-mno-mmx", "-mno-80387", "-mno-avx"]

BENCHES = ["sieve", "crc32", "sort", "hash", "matmul", "nbody"]
# floating-point workloads: built with SSE2 (scalar double arithmetic)
FP_BENCHES = {"nbody"}

# compile-time sizes of the -small variants (tests/test_guests_bench.py
# recomputes their results in Python from the same numbers)
SMALL = {
    "sieve": {"N": 100000, "REPS": 1},
    "crc32": {"SIZE": 65536, "REPS": 2, "BITWISE": 4096},
    "sort": {"N": 5000, "REPS": 2},
    "hash": {"SIZE": 65536, "REPS": 2},
    "matmul": {"D": 40, "REPS": 2},
    "nbody": {"STEPS": 2000},
}
# the -large variants: the same work eight times over (1.4-2 G instructions),
# so that process start-up is a small part of a subprocess's wall time when
# emu and its peers are timed the same way (perf/bench_tiers.py)
LARGE = {
    "sieve": {"REPS": 64},
    "crc32": {"REPS": 192},
    "sort": {"REPS": 48},
    "hash": {"REPS": 192},
    "matmul": {"REPS": 64},
    "nbody": {"STEPS": 2400000},
}


def targets():
    """(output path, source path, extra -D defines) for every guest."""
    out = [(os.path.join(HERE, "hello", "hello"), os.path.join(HERE, "hello", "hello.c"), {})]
    for name in BENCHES:
        src = os.path.join(HERE, "bench", name + ".c")
        out.append((os.path.join(HERE, "bench", "bin", name), src, {}))
        out.append((os.path.join(HERE, "bench", "bin", name + "-small"), src, SMALL[name]))
        out.append((os.path.join(HERE, "bench", "bin", name + "-large"), src, LARGE[name]))
    return out


ZIG_CC = [sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-linux-musl"]


def compiler() -> list[str]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        return [cc]
    return ZIG_CC


def is_gcc(cc: list[str]) -> bool:
    try:
        out = subprocess.run(cc + ["--version"], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "gcc" in out.lower() or "free software foundation" in out.lower()


def is_fp(src: str) -> bool:
    return os.path.splitext(os.path.basename(src))[0] in FP_BENCHES


def build_one(cc: list[str], out: str, src: str, defines: dict, gcc: bool) -> None:
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if is_fp(src):
        flags = [f for f in COMMON_FLAGS if f != "-mgeneral-regs-only"] + ["-msse2", "-mfpmath=sse", "-fno-math-errno"]
        cmd = cc + flags + (GCC_ONLY_FLAGS if gcc else [])
    else:
        cmd = cc + COMMON_FLAGS + (GCC_ONLY_FLAGS if gcc else CLANG_ONLY_FLAGS)
    cmd += ["-D%s=%s" % kv for kv in defines.items()]
    cmd += ["-o", out, src]
    print(" ".join(os.path.relpath(a, os.getcwd()) if os.path.isabs(a) and a.startswith(HERE) else a
                   for a in cmd))
    subprocess.run(cmd, check=True)


# Mnemonics/registers that must not appear in the disassembly.
_FORBIDDEN = re.compile(r"%[xyz]mm\d|%st\b|%st\(|%mm\d|\bf[a-z]+\s|\bfn[a-z]+\b|\bemms\b|\bldmxcsr\b|\bstmxcsr\b")


def check_no_fp(path: str) -> list[str]:
    """Lines of `objdump -d` that use SSE/x87/MMX state."""
    objdump = shutil.which("objdump")
    if objdump is None:
        print("warning: objdump not found, skipping the SSE/x87 check")
        return []
    dis = subprocess.run([objdump, "-d", "--no-show-raw-insn", path],
                         capture_output=True, text=True, check=True).stdout
    bad = []
    for line in dis.splitlines():
        parts = line.split("\t", 1)
        if len(parts) == 2 and _FORBIDDEN.search(parts[1]):
            bad.append(line.strip())
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    ap.add_argument("--check", action="store_true", help="disassemble and reject SSE/x87/MMX")
    ap.add_argument("--zig", action="store_true", help="use zig cc even when cc is on PATH")
    ap.add_argument("--outdir", help="write the binaries here (flat) instead of beside the sources")
    args = ap.parse_args(argv)
    cc = ZIG_CC if args.zig else compiler()
    gcc = is_gcc(cc)
    rt = os.path.join(HERE, "include", "rt.h")
    status = 0
    for out, src, defines in targets():
        if args.outdir:
            out = os.path.join(args.outdir, os.path.basename(out))
        deps = [src] + ([rt] if "rt.h" in open(src).read() else [])
        newest = max(os.path.getmtime(d) for d in deps)
        if args.force or not os.path.exists(out) or os.path.getmtime(out) < newest:
            build_one(cc, out, src, defines, gcc)
        if args.check and not is_fp(src):
            bad = check_no_fp(out)
            if bad:
                status = 1
                print("%s: uses SSE/x87/MMX:" % out)
                for line in bad[:20]:
                    print("   ", line)
    return status


if __name__ == "__main__":
    sys.exit(main())
