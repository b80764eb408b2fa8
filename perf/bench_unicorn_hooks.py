"""The cost of one Python hook call through Unicorn's API: emu.unicorn
against the installed Unicorn, the same script on both.

    python perf/bench_unicorn_hooks.py [--iters N] [--runs R]

The guest is a counted loop (`dec rcx; jnz`: 2 instructions an iteration).
Each backend runs it with no hook, with a UC_HOOK_CODE over every address,
and with a UC_HOOK_BLOCK, calling `def cb(uc, address, size, user_data):
pass`. Cost per call = (hooked time - plain time) / calls, the median of R
runs, each backend in its own process (`import unicorn` is emu.unicorn in
one, Unicorn in the other). Prints one table row per backend and hook.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")

CHILD = r'''
import json, statistics, sys, time
backend, iters, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if backend == "emu":
    import emu.unicorn
    emu.unicorn.install()
import unicorn
from unicorn import Uc, UC_ARCH_X86, UC_MODE_64, UC_HOOK_CODE, UC_HOOK_BLOCK
from unicorn.x86_const import UC_X86_REG_RCX
assert (unicorn.__name__ == "emu.unicorn") == (backend == "emu")
BASE = 0x400000
CODE = b"\x48\xff\xc9\x75\xfb"          # dec rcx; jnz -5
calls = [0]
def cb(uc, address, size, user_data):
    pass
def count(uc, address, size, user_data):
    calls[0] += 1
def once(kind, fn):
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(BASE, 0x1000)
    uc.mem_write(BASE, CODE)
    if kind:
        uc.hook_add(kind, fn)
    uc.reg_write(UC_X86_REG_RCX, 1000)          # warm up: translate the block
    uc.emu_start(BASE, BASE + len(CODE))
    uc.reg_write(UC_X86_REG_RCX, iters)
    t = time.perf_counter()
    uc.emu_start(BASE, BASE + len(CODE))
    return time.perf_counter() - t
out = {}
for name, kind in (("none", 0), ("code", UC_HOOK_CODE), ("block", UC_HOOK_BLOCK)):
    calls[0] = 0
    once(kind, count)
    n = calls[0] - (2000 if kind == UC_HOOK_CODE else 1000 if kind else 0)
    times = [once(kind, cb) for _ in range(runs)]
    out[name] = {"time": statistics.median(times), "calls": n}
print("@@" + json.dumps(out))
'''


def measure(backend: str, iters: int, runs: int, python: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    p = subprocess.run([python, "-c", CHILD, backend, str(iters), str(runs)], capture_output=True, text=True, env=env)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("@@")]
    if not line:
        raise SystemExit("bench_unicorn_hooks: %s failed: %s" % (backend, p.stderr.strip().splitlines()[-1:]))
    return json.loads(line[0][2:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=200000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args(argv)
    res = {}
    for backend in ("emu", "real"):
        try:
            res[backend] = measure(backend, a.iters, a.runs, a.python)
        except SystemExit as e:
            print(e)
    print("| backend | hook | calls | plain s | hooked s | ns per call |")
    print("|---|---|---|---|---|---|")
    per = {}
    for backend, r in res.items():
        for hook in ("code", "block"):
            ns = (r[hook]["time"] - r["none"]["time"]) / r[hook]["calls"] * 1e9
            per[(backend, hook)] = ns
            print("| %s | %s | %d | %.4f | %.4f | %.0f |" % ("emu.unicorn" if backend == "emu" else "unicorn",
                                                           hook, r[hook]["calls"], r["none"]["time"],
                                                           r[hook]["time"], ns))
    for hook in ("code", "block"):
        if ("emu", hook) in per and ("real", hook) in per:
            print("%s hook: Unicorn / emu.unicorn = %.2fx" % (hook, per[("real", hook)] / per[("emu", hook)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
