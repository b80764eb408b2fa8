"""The command line: `emu run PROGRAM [ARGS...]` runs an x86-64 Linux program."""
from __future__ import annotations

import argparse
import os
import sys
import time

from emu.linux.signals import SIGNAL_NAMES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emu", description="An x86-64 machine emulator.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    r = sub.add_parser("run", help="run an x86-64 Linux program",
                       description="Run an x86-64 Linux program (static, static-PIE or dynamic).")
    r.add_argument("--root", default="/", metavar="DIR", help="directory the guest sees as / (default: /)")
    r.add_argument("--sandbox", metavar="DIR", help="confine every write to DIR; the rest is read-only")
    r.add_argument("--strace", action="store_true", help="print each system call to stderr")
    r.add_argument("--stats", action="store_true", help="print throughput and cache figures at exit")
    r.add_argument("--seed", type=int, help="fixed seed for AT_RANDOM and getrandom (reproducible runs)")
    r.add_argument("--profile", choices=("stealth", "transparent", "host", "baseline"), default="transparent",
                   help="what the guest learns about the machine: 'transparent' (default) says it is a "
                        "hypervisor (CPUID hypervisor bit and leaves, emu DMI strings); 'stealth' looks "
                        "like bare metal; 'host' shows the host CPU's identity, 'baseline' the plain core")
    r.add_argument("--time", choices=("virtual", "host"), default="host",
                   help="'host' (default): the guest's clocks and TSC follow the host's; 'virtual': one "
                        "deterministic clock derived from instructions retired (sleeps take no time)")
    r.add_argument("program", help="the program to run")
    r.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    return p


def _stats(proc, seconds: float) -> None:
    c = proc.vcpu.counters
    n = c["instructions"]
    hits, misses = c["block_cache_hits"], c["block_cache_misses"]
    th, tm = c["tlb_hits"], c["tlb_misses"]
    lines = [
        "emu: %d instructions in %.3f s: %.1f MIPS" % (n, seconds, n / seconds / 1e6 if seconds else 0.0),
        "emu: blocks translated %d, block cache hit rate %.2f%% (%d hits, %d misses), chained %d, invalidations %d"
        % (c["blocks_translated"], 100.0 * hits / max(1, hits + misses), hits, misses, c["chained"], c["invalidations"]),
        "emu: TLB hit rate %.2f%% (%d hits, %d misses, %d flushes)" % (100.0 * th / max(1, th + tm), th, tm, c["tlb_flushes"]),
        "emu: exits " + ", ".join("%s %d" % kv for kv in sorted(c["exits"].items())),
    ]
    print("\n".join(lines), file=sys.stderr)


def cmd_run(a) -> int:
    from emu.linux.process import GuestExit, GuestKilled, Process, ProgramNotExecutable, ProgramNotFound
    for d, what in ((a.root, "--root"), (a.sandbox, "--sandbox")):
        if d is not None and not os.path.isdir(d):
            print("emu: %s %s: not a directory" % (what, d), file=sys.stderr)
            return 2
    proc = Process([a.program] + a.args, root=a.root, sandbox=a.sandbox, strace=a.strace, seed=a.seed,
                   profile=a.profile, time=a.time)
    try:
        proc.load(a.program)
    except ProgramNotFound as e:
        print("emu: %s" % e, file=sys.stderr)
        return 127
    except ProgramNotExecutable as e:
        print("emu: %s" % e, file=sys.stderr)
        return 126
    t0 = time.perf_counter()
    try:
        proc._loop()
        status = 0
    except GuestExit as e:
        status = e.status
    except GuestKilled as e:
        sys.stdout.flush()
        msg = SIGNAL_NAMES.get(e.signo, "signal %d" % e.signo)
        print("emu: %s: %s%s" % (a.program, msg, " (core dumped)" if e.core else ""), file=sys.stderr)
        status = 128 + e.signo
    finally:
        if a.stats:
            _stats(proc, time.perf_counter() - t0)
        proc.fds.close_all()
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:          # an emulator bug: one line, the traceback on request
        if os.environ.get("EMU_DEBUG"):
            raise
        print("emu: internal error: %s: %s (set EMU_DEBUG=1 for details)" % (type(e).__name__, e), file=sys.stderr)
        return 70
    return 2
