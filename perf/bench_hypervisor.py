#!/usr/bin/env python3
"""The hypervisor layer's cost when no trap is armed: the bench guests
(guests/bench/bin/) run under the Linux personality in several set-ups,
interleaved, the fastest (and the median) CPU time of the running thread
(time.thread_time: less disturbed than wall time by other load on a shared
machine) of N runs each:

- bare: the core as the personality had it before the hypervisor layer:
  baseline CPUID table, virtual TSC, no MSR table, trap bits = SYSCALL only;
- transparent/host: the default `emu run` platform (transparent CPUID profile,
  host-clock TSC) with an empty trap Policy installed;
- stealth/virtual: stealth CPUID profile, deterministic virtual time;
- msr-table: transparent plus a declarative MSR table in the core (3 entries).

    python perf/bench_hypervisor.py [--runs N] [--small] [--only NAME] [--markdown FILE]

Overhead = min(set-up) / min(bare) - 1: the minimum is the estimate least
disturbed by other load; the medians are listed too.
Instruction counts must be
identical across set-ups (the layer must not change what the guest runs).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from emu import _core  # noqa: E402
from emu.cpuid import baseline_table  # noqa: E402
from emu.hypervisor import DENY, Guest, Hypervisor, Policy  # noqa: E402
from emu.linux.process import Process  # noqa: E402

BIN = os.path.join(ROOT, "guests", "bench", "bin")
WORKLOADS = ["sieve", "crc32", "sort", "hash", "matmul"]
SETUPS = ["bare", "transparent/host", "stealth/virtual", "msr-table"]


def make_process(path: str, setup: str, out_fd: int) -> Process:
    if setup == "bare":
        p = Process([path], env={}, stdio=(0, out_fd, 2))
        v = p.vcpu
        v.set_cpuid_table(baseline_table())
        v.set_tsc(0, 1.0)
        v.set_msr_policy([])
        v.trap_mask = _core.TRAPS["syscall"]
        p.guest.hypervisor = None
    elif setup == "transparent/host":
        p = Process([path], env={}, stdio=(0, out_fd, 2),
                    guest=Guest("transparent", "host", policy=Policy()))
    elif setup == "stealth/virtual":
        p = Process([path], env={}, stdio=(0, out_fd, 2), guest=Guest("stealth", "virtual"))
    elif setup == "msr-table":
        pol = Policy({"msr_write": {0x1B: DENY, 0x8B: "ignore"}, "msr_read": {0xCE: 0x1234}})
        p = Process([path], env={}, stdio=(0, out_fd, 2), guest=Guest("transparent", "host", policy=pol))
    else:
        raise ValueError(setup)
    p.load(path)
    return p


def run_once(path: str, setup: str):
    with tempfile.TemporaryFile() as out:
        p = make_process(path, setup, out.fileno())
        t0 = time.thread_time()
        status = p.run()
        dt = time.thread_time() - t0
        p.fds.close_all()
        out.seek(0)
        return dt, p.vcpu.icount, status, out.read()


def trap_costs(n: int = 200_000) -> list[str]:
    """A loop of n CPUIDs (and one of n RDTSCs) answered by the core's table
    vs trapped and answered by a Python policy: the cost of one trap."""
    import emu
    rows = []
    for what, insn, kind in (("CPUID", b"\x0f\xa2", "cpuid"), ("RDTSC", b"\x0f\x31\x90", "rdtsc")):
        # mov r8d, n; 1: xor eax,eax; xor ecx,ecx; <insn>; dec r8d; jnz 1b; hlt
        body = b"\x31\xc0\x31\xc9" + insn + b"\x41\xff\xc8"
        code = b"\x41\xb8" + n.to_bytes(4, "little") + body + b"\x75" + bytes([(-(len(body) + 2)) & 0xFF]) + b"\xf4"
        res = {}
        for mode in ("core", "python policy"):
            m = emu.Machine(1 << 20, paging=False, cpl=0)
            m.write(0, code)
            v = m.vcpu
            pol = Policy(**{kind: (lambda ev: None)}) if mode != "core" else Policy()
            hv = Hypervisor(pol)
            hv.install(v)
            t0 = time.perf_counter()
            ex = hv.run(v)
            res[mode] = time.perf_counter() - t0
            assert ex.name == "HLT", ex
        per = (res["python policy"] - res["core"]) / n * 1e6
        rows.append("| %s x %d | %.3f s | %.3f s | %.2f us |" % (what, n, res["core"], res["python policy"], per))
    return ["| loop | answered in the core | trapped, Python policy (allow) | cost per trap |",
            "|---|---|---|---|"] + rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--small", action="store_true", help="the -small variants (quick check)")
    ap.add_argument("--only", action="append", help="just this workload (repeatable)")
    ap.add_argument("--markdown", metavar="FILE", help="write a markdown report to FILE")
    a = ap.parse_args(argv)
    names = a.only or WORKLOADS
    times = {(n, s): [] for n in names for s in SETUPS}
    icounts: dict = {}
    ok = True
    for r in range(a.runs):
        for n in names:
            path = os.path.join(BIN, n + ("-small" if a.small else ""))
            # rotate the order so no set-up always runs first (cache / frequency effects)
            for k in range(len(SETUPS)):
                s = SETUPS[(k + r) % len(SETUPS)]
                dt, insns, status, out = run_once(path, s)
                times[(n, s)].append(dt)
                icounts.setdefault(n, {})[s] = (insns, status, out)
        print("run %d/%d done" % (r + 1, a.runs), file=sys.stderr)
    rows = []
    for n in names:
        same = len(set(icounts[n].values())) == 1
        ok &= same
        base = min(times[(n, "bare")])
        mbase = statistics.median(times[(n, "bare")])
        insns = icounts[n]["bare"][0]
        row = [n, insns, "%.3f / %.3f" % (base, mbase), "%.1f" % (insns / base / 1e6)]
        for s in SETUPS[1:]:
            m = min(times[(n, s)])
            med = statistics.median(times[(n, s)])
            row.append("%.3f (%+.1f%%) / %.3f (%+.1f%%)" % (m, 100.0 * (m / base - 1), med, 100.0 * (med / mbase - 1)))
        row.append("yes" if same else "NO")
        rows.append(row)
    tot = {s: sum(min(times[(n, s)]) for n in names) for s in SETUPS}
    header = ["workload", "instructions", "bare s (min / median)", "bare MIPS"] + \
             ["%s s (min / median)" % s for s in SETUPS[1:]] + ["same insns/output"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines.append("| **total (min)** | | %.3f | | " % tot["bare"] + " | ".join(
        "%.3f (%+.1f%%)" % (tot[s], 100.0 * (tot[s] / tot["bare"] - 1)) for s in SETUPS[1:]) + " | |")
    table = "\n".join(lines)
    print(table)
    traps = "\n".join(trap_costs())
    print(traps)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("# Hypervisor layer overhead (no traps armed)\n\n")
            f.write("`python perf/bench_hypervisor.py --runs %d%s` on %s, %s, Python %s, %s.\n\n" % (
                a.runs, " --small" if a.small else "", _cpu(), platform.machine(), platform.python_version(),
                datetime.date.today().isoformat()))
            f.write("Fastest / median thread CPU time of %d interleaved runs per set-up (in-process, Linux "
                    "personality). Percentages are against `bare` (the core without the hypervisor layer's "
                    "set-up).\n\n" % a.runs)
            f.write(table + "\n")
            f.write("\nFor scale, what an armed trap costs (wall time, one vCPU, `Hypervisor.run`):\n\n")
            f.write(traps + "\n")
    return 0 if ok else 1


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
