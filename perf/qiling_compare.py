"""Qiling on emu.unicorn against Qiling on Unicorn: same output, wall times.

    python perf/qiling_compare.py [--repeat N] [--workdir DIR] [--only emu|real]

Builds the Linux x86-64 example programs with the host's gcc (a static
hello, the same hello linked dynamically, and a dynamic program that
computes for a while), lays out a rootfs for them from the host's own
dynamic loader and libc (Qiling's example rootfs is a separate download;
these programs are built here instead), runs each under Qiling once with
`emu.unicorn.install()` and once with the installed Unicorn, each in its
own process, compares what the guest wrote, and prints the medians of
the wall times (Qiling set-up + run, and ql.run() alone). The last run
adds a Qiling block hook (a Python call per block; the blocks column counts
them: each emulator cuts blocks its own way).

Qiling's default x86-64 stack (0x7ffffffde000 + 0x30000) ends above
0x800000000000, outside the canonical address range where a real x86-64
CPU faults (SDM Vol. 1 3.3.7.1); Unicorn does not check. Both backends run
with the stack 64 KiB lower (docs/qiling.md).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")

STACK_PROFILE = {"OS64": {"stack_address": "0x7ffffffce000"}}

PROGRAMS = {
    "hello_static": ("hello.c", ["-static"]),
    "hello_dynamic": ("hello.c", []),
    "compute_dynamic": ("compute.c", []),
}
# runs: (name, program, Qiling hook installed: None or "block")
RUNS = [("hello_static", "hello_static", None), ("hello_dynamic", "hello_dynamic", None),
        ("compute_dynamic", "compute_dynamic", None),
        ("hello_dynamic+block_hook", "hello_dynamic", "block")]

SOURCES = {
    "hello.c": r'''
#include <stdio.h>
int main(int argc, char **argv) {
    printf("Hello, World! argc=%d argv0=%s\n", argc, argv[0]);
    return 0;
}
''',
    "compute.c": r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* FNV-1a over a buffer rewritten each round, and a small sort: loops,
   memory traffic and libc calls */
static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
int main(void) {
    static unsigned char buf[4096];
    static int v[2000];
    unsigned long h = 1469598103934665603UL;
    for (int r = 0; r < 2000; r++) {
        for (int i = 0; i < 4096; i++) buf[i] = (unsigned char)(i * 31 + r);
        for (int i = 0; i < 4096; i++) { h ^= buf[i]; h *= 1099511628211UL; }
    }
    for (int i = 0; i < 2000; i++) v[i] = (int)((h >> (i % 50)) ^ (unsigned)(i * 2654435761u)) & 0xffff;
    qsort(v, 2000, sizeof v[0], cmp);
    printf("hash %016lx min %d max %d\n", h, v[0], v[1999]);
    return 0;
}
''',
}

# runs in the child: one program under Qiling on one backend
CHILD = r'''
import io, json, os, sys, time
backend, rootfs, prog, profile, hook = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
t0 = time.perf_counter()
if backend == "emu":
    import emu.unicorn
    emu.unicorn.install()
from qiling import Qiling
from qiling.const import QL_VERBOSE
import unicorn
assert (unicorn.__name__ == "emu.unicorn") == (backend == "emu"), unicorn.__name__
ql = Qiling([prog], rootfs, verbose=QL_VERBOSE.DISABLED, profile=profile)
blocks = [0]
if hook == "block":
    def on_block(ql, address, size):
        blocks[0] += 1
    ql.hook_block(on_block)
t1 = time.perf_counter()
ql.run()
t2 = time.perf_counter()
sys.stdout.flush()
print("@@" + json.dumps({"total": t2 - t0, "run": t2 - t1, "blocks": blocks[0]}), file=sys.stderr)
'''


def build(workdir: str) -> str:
    """The rootfs with the programs in /bin and the host's loader and libc."""
    if shutil.which("gcc") is None:
        raise SystemExit("qiling_compare: gcc is needed to build the example programs")
    rootfs = os.path.join(workdir, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"), exist_ok=True)
    for name, text in SOURCES.items():
        with open(os.path.join(workdir, name), "w") as f:
            f.write(text)
    for prog, (src, flags) in PROGRAMS.items():
        dst = os.path.join(rootfs, "bin", prog)
        subprocess.run(["gcc", "-O1", *flags, "-o", dst, os.path.join(workdir, src)], check=True)
    # the dynamic loader and the libraries the programs need, at the paths the host has them
    out = subprocess.run(["ldd", os.path.join(rootfs, "bin", "hello_dynamic")], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            dst = os.path.join(rootfs, path.lstrip("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(os.path.realpath(path), dst)
    return rootfs


def run_one(backend: str, rootfs: str, prog: str, python: str, hook: str | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    p = subprocess.run([python, "-c", CHILD, backend, rootfs, os.path.join(rootfs, "bin", prog),
                        json.dumps(STACK_PROFILE), hook or "-"], capture_output=True, text=True, env=env,
                       timeout=600)
    line = [ln for ln in p.stderr.splitlines() if ln.startswith("@@")]
    if not line:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[-1:] or ["status %d" % p.returncode]}
    r = json.loads(line[-1][2:])
    r["out"] = p.stdout             # what the guest wrote to its stdout
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Qiling on emu.unicorn vs Unicorn")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workdir")
    ap.add_argument("--python", default=sys.executable, help="the Python that has qiling installed")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    workdir = a.workdir or tempfile.mkdtemp(prefix="emu-qiling-")
    rootfs = build(workdir)
    results, ok = {}, True
    print("%-26s %-8s %9s %9s %9s  %s" % ("run", "backend", "total s", "ql.run s", "blocks", "output"))
    for name, prog, hook in RUNS:
        outs = {}
        for backend in ("real", "emu"):
            runs = [run_one(backend, rootfs, prog, a.python, hook) for _ in range(a.repeat)]
            bad = [r for r in runs if "error" in r]
            if bad:
                print("%-26s %-8s error: %s" % (name, backend, bad[0]["error"]))
                ok = False
                continue
            tot = statistics.median(r["total"] for r in runs)
            run = statistics.median(r["run"] for r in runs)
            outs[backend] = runs[0]["out"]
            results.setdefault(name, {})[backend] = {"total": tot, "run": run, "out": runs[0]["out"],
                                                     "blocks": runs[0]["blocks"]}
            print("%-26s %-8s %9.3f %9.3f %9d  %r" % (name, backend, tot, run, runs[0]["blocks"],
                                                      runs[0]["out"][:40]))
        if len(outs) == 2:
            same = outs["real"] == outs["emu"]
            results[name]["same_output"] = same
            ok = ok and same
            print("%-26s same output: %s" % (name, same))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
