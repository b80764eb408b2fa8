"""The command line: `emu run PROGRAM [ARGS...]` runs an x86-64 Linux program;
`emu boot KERNEL [--initrd FILE] [--mem SIZE] [--disk FILE] [--cmdline ...]` boots a guest
kernel in a microVM (`--save-after N FILE` stops it into a snapshot,
`emu boot --restore FILE` resumes one)."""
from __future__ import annotations

import os
import sys
import time

from emu.cpuid import USER_MODELS
from emu.linux.signals import SIGNAL_NAMES

argparse = None       # imported by _parser(): a plain `emu run` does without it (_quick_run)


class _NoReplay(Exception):
    """Stands for ReplayError when neither --record nor --replay is given."""


def version() -> str:
    """emu's version (from the installed package's metadata)."""
    from importlib.metadata import PackageNotFoundError, version as dist_version
    try:
        return dist_version("emu")
    except PackageNotFoundError:
        return "(not installed: a source checkout)"


def _version_action():
    class _Version(argparse.Action):
        """--version, looking the version up only when asked (importlib.metadata
        costs start-up time)."""

        def __init__(self, option_strings, dest, **kw):
            super().__init__(option_strings, dest, nargs=0, help="print emu's version and exit")

        def __call__(self, parser, namespace, values, option_string=None):
            print("emu " + version())
            parser.exit()
    return _Version


def _parser() -> argparse.ArgumentParser:
    global argparse
    import argparse
    _Version = _version_action()
    p = argparse.ArgumentParser(prog="emu", description="An x86-64 machine emulator.")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    r = sub.add_parser("run", help="run an x86-64 Linux program",
                       description="Run an x86-64 Linux program (static, static-PIE or dynamic).")
    r.add_argument("--root", default="/", metavar="DIR", help="directory the guest sees as / (default: /)")
    r.add_argument("--sandbox", metavar="DIR", help="confine every write to DIR; the rest is read-only")
    r.add_argument("--strace", action="store_true", help="print each system call to stderr")
    r.add_argument("--report", metavar="FILE",
                   help="write a behaviour report (JSON lines: files, processes, network, faults, "
                        "CPUID/TSC probes) of the program and its children to FILE")
    r.add_argument("--stats", action="store_true", help="print throughput and cache figures at exit")
    r.add_argument("--stats-file", metavar="FILE", help="write the --stats figures to FILE as JSON")
    r.add_argument("--code-cache", type=_mib, metavar="MIB",
                   help="bytes of translated code to keep, in MiB (default 256); the oldest is evicted first")
    r.add_argument("--seed", type=int, help="fixed seed for AT_RANDOM and getrandom (reproducible runs)")
    r.add_argument("--max-insns", type=_count, metavar="N",
                   help="kill each guest process with SIGXCPU after it retired N instructions")
    rr = r.add_mutually_exclusive_group()
    rr.add_argument("--record", metavar="LOG",
                    help="write a replay log: what every system call touching the outside world returned and "
                         "wrote, output, signals, clock values (a forked child: LOG.1, LOG.2...)")
    rr.add_argument("--replay", metavar="LOG",
                    help="run the program again from a replay log: the outside world comes from the log; "
                         "the first difference from the recorded run stops it (status 1)")
    r.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="set an environment variable for the program (repeatable); with --record the "
                        "program gets only a few harmless host variables (PATH, HOME, LANG, TERM...) "
                        "and these, so no secret of the host's environment lands in the log")
    r.add_argument("--profile", choices=("stealth", "transparent", "host", "baseline"), default=None,
                   help="what the guest learns about the machine: 'transparent' (default) says it is a "
                        "hypervisor (CPUID hypervisor bit and leaves, emu DMI strings); 'stealth' looks "
                        "like bare metal; 'host' shows the host CPU's identity, 'baseline' the plain core")
    r.add_argument("--cpu", choices=USER_MODELS, default=None, metavar="MODEL",
                   help="the CPU model the guest sees and runs on: %s (default: max, everything emu "
                        "implements: x86-64-v3 plus AES, PCLMULQDQ, SHA, RDRAND, RDSEED, FSGSBASE...)"
                        % ", ".join(USER_MODELS))
    r.add_argument("--time", choices=("virtual", "host"), default=None,
                   help="'host' (default; under --profile stealth 'virtual'): the guest's clocks and TSC follow "
                        "the host's; 'virtual': one deterministic clock derived from instructions retired "
                        "(sleeps take no time), under stealth with the machine template's instruction costs "
                        "and cache misses")
    r.add_argument("--template", default=None, metavar="NAME",
                   help="the real machine --profile stealth shows (CPUID, /proc, /sys, DMI, timing): "
                        "westmere-i5-650 (default), penryn-e8400")
    r.add_argument("--policy", default=None, metavar="FILE",
                   help="a JSON deception policy: what the stealth machine lies about or tells the truth about "
                        "(template, timing, cache, costs, hypervisor_bit, cpuid, dmi, kernel_release; "
                        "docs/stealth.md)")
    r.add_argument("--tier", choices=("interp", "jit", "auto"), default=None,
                   help="execution tier: the interpreter alone, 'jit' (every block compiled to host code at "
                        "once) or 'auto' (default: hot blocks compiled; the interpreter where the host is "
                        "not x86-64)")
    r.add_argument("--trace", action="store_true",
                   help="print each block executed, disassembled, one line each (to stderr or --trace-file); "
                        "needs iced-x86 (pip install 'emu[disasm]')")
    r.add_argument("--trace-insn", action="store_true", help="trace each instruction instead of each block")
    r.add_argument("--trace-range", metavar="LO-HI",
                   help="trace only addresses in [LO, HI) (hex with 0x, or decimal)")
    r.add_argument("--trace-file", metavar="FILE", help="write the trace to FILE instead of stderr")
    r.add_argument("--coverage", metavar="FILE",
                   help="write the blocks the program executed to FILE in drcov format (Lighthouse, bncov); "
                        "a child it forks writes FILE.PID")
    r.add_argument("--gdb", type=int, metavar="PORT",
                   help="wait for gdb on 127.0.0.1:PORT (0: any free port, printed) and run under its control")
    r.add_argument("program", help="the program to run")
    r.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    be = sub.add_parser("bench", help="measure how fast emu runs a program, beside native and qemu",
                        description="Run a program several times under emu (in-process), natively and under "
                                    "qemu-x86_64 when available; report median times, MIPS, block-cache and TLB "
                                    "hit rates, exits, and slowdowns. Every run must print the same output.")
    be.add_argument("--runs", type=int, default=3, metavar="N", help="runs per runner (default 3; medians)")
    be.add_argument("--no-native", action="store_true", help="do not run the program natively")
    be.add_argument("--no-qemu", action="store_true", help="do not run it under qemu-x86_64")
    be.add_argument("--suite", action="store_true",
                    help="run the real-program suite instead (Debian programs on seeded inputs, as whole "
                         "processes, interleaved with native and qemu-x86_64; emu/services/suite.py)")
    be.add_argument("--only", metavar="NAMES", help="with --suite: only these programs (comma-separated)")
    be.add_argument("--code-cache", type=_mib, metavar="MIB", help="with --suite: emu's code cache size")
    be.add_argument("--markdown", action="store_true", help="with --suite: print a markdown table")
    be.add_argument("--tier", choices=("interp", "jit", "auto"), default=None,
                   help="execution tier: the interpreter alone, 'jit' (every block compiled to host code at "
                        "once) or 'auto' (default: hot blocks compiled; the interpreter where the host is "
                        "not x86-64)")
    be.add_argument("program", nargs="?", help="the program to run")
    be.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    fz = sub.add_parser("fuzz", help="fuzz one function of a Linux program in-process, from a snapshot",
                        description="Run PROGRAM until FUNCTION is first called, snapshot it there, then call "
                                    "FUNCTION(data, length) once per input (restoring the snapshot each time), "
                                    "guided by the core's AFL edge map; stops at the first crash (status 1).")
    fz.add_argument("program", help="the program (an x86-64 Linux ELF with a symbol table, or give an address)")
    fz.add_argument("--function", required=True, metavar="NAME",
                    help="the function to fuzz: int FUNCTION(const uint8_t *data, size_t length) (a symbol or "
                         "an address)")
    fz.add_argument("--runs", type=int, default=100000, metavar="N", help="inputs to try (default 100000)")
    fz.add_argument("--seed", type=int, default=0, help="the mutator's random seed (default 0)")
    fz.add_argument("--max-len", type=int, default=4096, metavar="BYTES", help="longest input (default 4096)")
    fz.add_argument("--max-insns", type=int, default=1 << 22, metavar="N",
                    help="instructions one call may take before it counts as a hang (default 4194304)")
    fz.add_argument("--input", action="append", default=[], metavar="FILE", help="a seed input (repeatable)")
    fz.add_argument("--crashes", default=".", metavar="DIR", help="where crashing inputs go (default: .)")
    fz.add_argument("--root", default="/", metavar="DIR", help="directory the program sees as /")
    fz.add_argument("--tier", choices=("interp", "jit", "auto"), default=None, help="execution tier")
    b = sub.add_parser("boot", help="boot a kernel (bzImage or ELF vmlinux) in a microVM",
                       description="Boot a Linux bzImage or an ELF64 kernel with the Linux 64-bit boot protocol: "
                                   "16550 console on stdin/stdout, CMOS RTC, local APIC + I/O APIC, ACPI and MP "
                                   "tables, optional virtio-mmio devices (block, console, entropy, vsock, net).")
    b.add_argument("kernel", nargs="?", help="the kernel (bzImage or ELF64 vmlinux); not with --restore")
    b.add_argument("--initrd", metavar="FILE", help="an initial ramdisk (initramfs) for the kernel")
    b.add_argument("--pvh", action="store_true",
                   help="enter an ELF kernel at its 32-bit PVH entry (XEN_ELFNOTE_PHYS32_ENTRY)")
    b.add_argument("--mem", default="128M", metavar="SIZE", help="guest RAM (default 128M)")
    b.add_argument("--disk", metavar="FILE", help="a raw disk image for the virtio-blk device")
    b.add_argument("--readonly", action="store_true", help="attach the disk read-only")
    b.add_argument("--rng", action="store_true", help="attach a virtio entropy device")
    b.add_argument("--vconsole", action="store_true", help="attach a virtio console (hvc0; output to stdout)")
    b.add_argument("--vsock", metavar="UDS",
                   help="attach virtio-vsock: guest connections to the host port P go to the Unix socket UDS_P, "
                        "host processes connect to UDS and write 'CONNECT P' (Firecracker's convention)")
    b.add_argument("--vsock-cid", type=int, default=3, metavar="CID", help="the guest's vsock CID (default 3)")
    b.add_argument("--net", metavar="SOCKET",
                   help="attach virtio-net to the Unix datagram socket SOCKET (one Ethernet frame a datagram)")
    b.add_argument("--console", action="store_true",
                   help="interactive serial console: the terminal in raw mode, keys go to the guest; "
                        "Ctrl-A x quits")
    b.add_argument("--accel", action="store_true",
                   help="attach the paravirtual compute accelerator (emu/vm/accel.py)")
    b.add_argument("--cmdline", default="console=ttyS0", help="the kernel command line")
    b.add_argument("--realtime", action="store_true",
                   help="an idle guest waits in real time for its timer (default: virtual time jumps ahead)")
    b.add_argument("--timeout", type=float, metavar="SECONDS", help="stop the VM after this long")
    b.add_argument("--stats", action="store_true", help="print boot time, exits and throughput at the end")
    b.add_argument("--tier", choices=("interp", "jit", "auto"), default=None,
                   help="execution tier: the interpreter alone, 'jit' (every block compiled to host code at "
                        "once) or 'auto' (default: hot blocks compiled; the interpreter where the host is "
                        "not x86-64)")
    b.add_argument("--gdb", type=int, metavar="PORT",
                   help="wait for gdb on 127.0.0.1:PORT (0: any free port, printed) and run the VM under its control")
    b.add_argument("--save-after", nargs=2, metavar=("INSNS", "FILE"),
                   help="stop after INSNS instructions and write the VM's snapshot to FILE")
    b.add_argument("--restore", metavar="FILE",
                   help="resume the VM saved in FILE (a VM saved with a disk needs --disk: the path stored in the "
                        "file is never opened unasked)")
    _batch_parser(sub)
    _fuzz_workers_parser(sub)
    return p


# `emu fuzz` is two commands in one: a function of a Linux program fuzzed
# in-process (--function, emu/fuzz.py), or a campaign over a flat binary,
# on a Dask cluster with --workers/--cluster (-o DIR, emu/cluster/fuzz.py)
_CAMPAIGN_OPTS = ("-o", "--out", "--workers", "--cluster", "-i", "--seeds")


def _fuzz_campaign_argv(argv: list[str]) -> list[str]:
    if argv[:1] == ["fuzz"] and "--function" not in argv and any(
            a in _CAMPAIGN_OPTS or a.split("=")[0] in _CAMPAIGN_OPTS for a in argv[1:]):
        return ["fuzz-campaign"] + argv[1:]
    return argv


def _gdb_listen(port: int):
    """The --gdb listening socket and a stderr line saying where it is; None
    (after a one-line error) when the port cannot be had."""
    from emu.gdbstub import listen
    try:
        s = listen(port)
    except OSError as e:
        print("emu: --gdb %d: %s" % (port, e.strerror or e), file=sys.stderr)
        return None
    print("emu: waiting for gdb on 127.0.0.1:%d" % s.getsockname()[1], file=sys.stderr, flush=True)
    return s


def _batch_parser(sub) -> None:
    """`emu batch`: sandbox analyses of many samples on a Dask cluster (emu/cluster/batch.py)."""
    bt = sub.add_parser("batch", help="analyse many samples in the sandbox on a Dask cluster",
                        description="Run `emu run --sandbox ... --report` on every file under the given "
                                    "directories, one worker process each, and gather the reports into one "
                                    "SQLite database. Samples already analysed with the same settings are "
                                    "skipped. Needs Dask: pip install 'emu[cluster]'.")
    bt.add_argument("paths", nargs="*", metavar="PATH", help="sample files or directories of them")
    bt.add_argument("--db", default="emu-batch.db", metavar="FILE", help="the results database (default emu-batch.db)")
    bt.add_argument("--show", metavar="SHA256",
                    help="print a sample's runs, verdicts and reports (JSON) from the database and exit")
    bt.add_argument("--cluster", metavar="tcp://HOST:PORT",
                    help="an existing Dask scheduler (default: start a local cluster)")
    bt.add_argument("--workers", type=_count, metavar="N", help="local cluster: worker processes (default: cores)")
    bt.add_argument("--retries", type=int, default=3, metavar="N",
                    help="local cluster: times a sample may take down a worker before it is marked (default 3)")
    bt.add_argument("--profile", choices=("stealth", "transparent", "host", "baseline"), default="transparent")
    bt.add_argument("--time", choices=("virtual", "host"), default="virtual",
                    help="the guest clock (default virtual: reproducible reports)")
    bt.add_argument("--seed", type=int, default=1, help="the guests' random seed (default 1)")
    bt.add_argument("--max-insns", type=_count, metavar="N", help="per sample: instructions per guest process")
    bt.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="per sample: wall time (default 60)")
    bt.add_argument("--max-rss", type=_count, default=2048, metavar="MIB",
                    help="per sample: resident memory of its process tree (default 2048 MiB)")
    bt.add_argument("--tier", choices=("interp", "jit", "auto"), default=None, help="the samples' execution tier")
    bt.add_argument("--progress", action="store_true", help="draw the progress line even when not on a terminal")


def _fuzz_workers_parser(sub) -> None:
    """`emu fuzz --workers N`: a distributed snapshot fuzz campaign (emu/cluster/fuzz.py)."""
    fz = sub.add_parser("fuzz-campaign", prog="emu fuzz",
                        help="(emu fuzz FILE -o DIR [--workers N]) a snapshot fuzz campaign over a flat binary",
                        description="Fuzz a flat x86-64 binary: it is entered at its first byte in 64-bit mode "
                                    "with rdi = the input and rsi = its length; HLT ends a good run, a CPU "
                                    "exception is a crash. With --workers N or --cluster the campaign runs on a "
                                    "Dask cluster (pip install 'emu[cluster]'). The output directory has AFL's "
                                    "layout.")
    fz.add_argument("code", metavar="FILE", help="the target: a flat binary")
    fz.add_argument("-i", "--seeds", metavar="DIR", help="a directory of seed inputs (default: one empty input)")
    fz.add_argument("-o", "--out", required=True, metavar="DIR", help="the output directory (AFL's layout)")
    fz.add_argument("--workers", type=_count, metavar="N", help="fuzz on a local Dask cluster of N worker processes")
    fz.add_argument("--cluster", metavar="tcp://HOST:PORT", help="fuzz on an existing Dask scheduler's workers")
    fz.add_argument("--base", type=_address, default=0x400000, metavar="ADDR", help="load address (default 0x400000)")
    fz.add_argument("--input-addr", type=_address, default=0x700000, metavar="ADDR",
                    help="where the input is written (default 0x700000)")
    fz.add_argument("--max-len", type=_count, default=4096, metavar="BYTES", help="largest input (default 4096)")
    fz.add_argument("--max-insns", type=_count, default=100_000, metavar="N",
                    help="instructions before a run counts as a hang (default 100000)")
    fz.add_argument("--execs", type=_count, metavar="N", help="stop after N executions")
    fz.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default 60 s)")
    fz.add_argument("--until-crashes", type=_count, metavar="N", help="stop once N distinct crashes are found")
    fz.add_argument("--seed", type=int, default=0, help="the mutator's seed (default 0)")
    fz.add_argument("--tier", choices=("interp", "jit", "auto"), default=None, help="the execution tier")


def _address(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an address" % text) from None
    if not 0 <= v < 1 << 47:
        raise argparse.ArgumentTypeError("%s is not a canonical user address" % text)
    return v


def _mib(text: str) -> int:
    """--code-cache: MiB (a decimal number) -> bytes."""
    from emu import _core
    try:
        n = int(float(text) * (1 << 20))
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a size in MiB" % text) from None
    if not _core.MIN_CODE_CACHE <= n <= 1 << 40:
        raise argparse.ArgumentTypeError("%s MiB is out of range (at least %g MiB)"
                                         % (text, _core.MIN_CODE_CACHE / (1 << 20)))
    return n


def _count(text: str) -> int:
    """A positive whole number (--max-insns, --workers...)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if n <= 0:
        raise argparse.ArgumentTypeError("%s: must be at least 1" % text)
    return n


# ---- `emu run` without argparse ----
# Importing argparse and building the parser is several milliseconds of every
# `emu run`. The plain forms, `emu run [OPTIONS] PROGRAM [ARGS...]` with
# options written out in full, are read here into what argparse would give;
# anything else (help, abbreviations, `--`, a bad value, an unknown option)
# goes to argparse, which answers it as always. tests/test_cli_quick.py holds
# this table to the parser's definition.
_RUN_FLAGS = {"--strace": "strace", "--stats": "stats", "--trace": "trace", "--trace-insn": "trace_insn"}
_RUN_VALUES = {              # option: (dest, choices, or a type, or None)
    "--root": ("root", None), "--sandbox": ("sandbox", None), "--report": ("report", None),
    "--seed": ("seed", int), "--record": ("record", None), "--replay": ("replay", None),
    "--policy": ("policy", None), "--template": ("template", None),
    "--profile": ("profile", ("stealth", "transparent", "host", "baseline")),
    "--time": ("time", ("virtual", "host")), "--tier": ("tier", ("interp", "jit", "auto")),
    "--gdb": ("gdb", int), "--coverage": ("coverage", None), "--trace-range": ("trace_range", None),
    "--trace-file": ("trace_file", None),
}
_RUN_DEFAULTS = {"root": "/", "strace": False, "stats": False, "env": [], "trace": False, "trace_insn": False}


class _RunArgs:
    """`emu run`'s parsed command line from _quick_run. An option the table
    does not name reads as None, its default (test_cli_quick checks that
    every option the table leaves out defaults to None or False)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return None


def _quick_run(argv):
    """argv of a plain `emu run` as argparse would parse it, else None."""
    if not argv or argv[0] != "run" or "--" in argv:
        return None                                  # ("--": argparse's own rules)
    a = dict(_RUN_DEFAULTS, command="run")
    i = 1
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("-"):
            a["program"], a["args"] = tok, list(argv[i + 1:])
            if a.get("record") is not None and a.get("replay") is not None:
                return None                          # (argparse: not allowed together)
            return _RunArgs(**a)
        name, eq, value = tok.partition("=")
        if name in _RUN_FLAGS and not eq:
            a[_RUN_FLAGS[name]] = True
        elif name in _RUN_VALUES:
            if not eq:
                i += 1
                if i >= len(argv) or argv[i].startswith("-"):
                    return None
                value = argv[i]
            dest, check = _RUN_VALUES[name]
            if isinstance(check, tuple):
                if value not in check:
                    return None
            elif check is not None:
                try:
                    value = check(value)
                except ValueError:
                    return None
            a[dest] = value
        else:
            return None
        i += 1
    return None                                      # no program: argparse says so


def run_stats(proc, seconds: float) -> dict:
    """The --stats figures of a finished process (also --stats-file's JSON)."""
    c = proc.vcpu.counters
    n = c["instructions"]
    # block transitions: chained (successor caches), predicted returns, and
    # the rest, the slow lookups (virtual-RIP cache, then the hash)
    slow = c["vrip_cache_hits"] + c["block_cache_misses"]
    looks = c["chained"] + c["ras_hits"] + c["ibtc_hits"] + slow
    th, tm = c["tlb_hits"], c["tlb_misses"]
    return {
        "seconds": seconds, "instructions": n, "mips": n / seconds / 1e6 if seconds else 0.0,
        "tier": c.get("tier"),
        "translations": c["blocks_translated"], "distinct_blocks": c["distinct_blocks"],
        "translations_per_block": c["blocks_translated"] / max(1, c["distinct_blocks"]),
        "retranslations": c["retranslations"], "evictions": c["evictions"],
        "eviction_rounds": c["eviction_rounds"], "cache_flushes": c["cache_flushes"],
        "invalidations": c["invalidations"], "code_cache_bytes": c["code_cache_bytes"],
        "code_cache_budget": c["code_cache_budget"], "code_cache_hit_rate": c["code_cache_hit_rate"],
        "block_lookups": looks, "chained": c["chained"], "ras_hits": c["ras_hits"], "ras_misses": c["ras_misses"],
        "ibtc_hits": c["ibtc_hits"],
        "slow_lookups": slow, "slow_lookup_share": slow / max(1, looks),
        "hash_lookups": c["block_cache_misses"],
        "tlb_hits": th, "tlb_misses": tm, "tlb_flushes": c["tlb_flushes"],
        "tlb_hit_rate": th / max(1, th + tm), "tlb_misses_per_1k": 1000.0 * tm / max(1, n),
        "page_faults": c["page_faults_in_core"] + proc.mm.faults,
        "page_faults_in_core": c["page_faults_in_core"],
        "syscalls": sum(proc.syscall_counts.values()), "exits": c["exits"],
        # the system calls that returned ENOSYS (not implemented), by name: how often
        "enosys": dict(sorted(getattr(proc, "enosys", {}).items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _stats(proc, seconds: float, path: str | None = None, show: bool = True) -> None:
    s = run_stats(proc, seconds)
    if path is not None:
        import json
        try:
            with open(path, "w") as f:
                json.dump(s, f)
        except OSError as e:
            print("emu: --stats-file %s: %s" % (path, e.strerror), file=sys.stderr)
    if not show:
        return
    lines = [
        "emu: %d instructions in %.3f s: %.1f MIPS" % (s["instructions"], seconds, s["mips"]),
        "emu: code cache: %d translations of %d distinct blocks (%.3f each), %d evicted, %d retranslated, "
        "%d invalidated, %d flushes; %.1f of %.0f MiB used; hit rate %.4f%%"
        % (s["translations"], s["distinct_blocks"], s["translations_per_block"], s["evictions"],
           s["retranslations"], s["invalidations"], s["cache_flushes"], s["code_cache_bytes"] / 2 ** 20,
           s["code_cache_budget"] / 2 ** 20, 100.0 * s["code_cache_hit_rate"]),
        "emu: block transitions %d: chained %d, returns predicted %d (%d mispredicted), indirect-branch cache "
        "%d, slow lookups %d (%.2f%%)"
        % (s["block_lookups"], s["chained"], s["ras_hits"], s["ras_misses"], s["ibtc_hits"], s["slow_lookups"],
           100.0 * s["slow_lookup_share"]),
        "emu: TLB hit rate %.3f%% (%d hits, %d misses: %.3f per 1000 instructions, %d flushes)"
        % (100.0 * s["tlb_hit_rate"], s["tlb_hits"], s["tlb_misses"], s["tlb_misses_per_1k"], s["tlb_flushes"]),
        "emu: page faults %d (%d resolved in the core), system calls %d"
        % (s["page_faults"], s["page_faults_in_core"], s["syscalls"]),
        "emu: exits " + ", ".join("%s %d" % kv for kv in sorted(s["exits"].items())),
    ]
    if s["enosys"]:
        lines.append("emu: unimplemented system calls (ENOSYS): "
                     + ", ".join("%s %d" % kv for kv in s["enosys"].items()))
    c, n = proc.vcpu.counters, s["instructions"]
    j = c.get("jit", {})
    if "blocks_compiled" in j:
        lines.append("emu: tier %s: %.1f%% of instructions in compiled code; %d blocks compiled (%d bytes of "
                     "host code), %d links, %d invalidated, %d evicted, %d bails to the interpreter"
                     % (c["tier"], 100.0 * j["instructions_native"] / max(1, n), j["blocks_compiled"],
                        j["code_bytes"], j["links"], j["invalidations"], j["evictions"], j["bails"]))
    print("\n".join(lines), file=sys.stderr)


# what a recorded program gets from the host's environment (the log stores
# the program's environment: nothing else, no tokens or keys)
RECORD_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ", "PWD", "TMPDIR",
              "COLUMNS", "LINES")


def record_environment(host_env) -> dict:
    return {k: v for k, v in host_env.items() if k in RECORD_ENV or k.startswith("LC_")}


def _start_trace(proc, a):
    """--trace/--trace-insn: the tracer on the process; its output file, or
    None after a one-line error."""
    from emu.disasm import DisassemblerMissing
    from emu.trace import Tracer, parse_range
    lo, hi = 0, 1 << 64
    if a.trace_range is not None:
        try:
            lo, hi = parse_range(a.trace_range)
        except ValueError as e:
            print("emu: --trace-range: %s" % e, file=sys.stderr)
            return None
    try:
        if a.trace_file is not None:
            out = open(a.trace_file, "w", buffering=1 << 16)
        else:
            out = open(2, "w", buffering=1 << 16, closefd=False)
    except OSError as e:
        print("emu: --trace-file %s: %s" % (a.trace_file, e.strerror), file=sys.stderr)
        return None
    try:
        t = Tracer(proc, out, per_insn=a.trace_insn, lo=lo, hi=hi)
    except DisassemblerMissing as e:
        print("emu: --trace: %s" % e, file=sys.stderr)
        return None
    t.attach()
    proc.add_exit_hook(lambda *_: out.flush())
    return out


def _fault_report(proc) -> str:
    """": #PF (address A) at RIP: BYTES  INSTRUCTION": the instruction a fatal
    CPU exception came from, disassembled (on the one line that reports the
    signal)."""
    from emu.disasm import describe
    rip, vector, cr2 = proc.last_fault
    try:
        from emu import Vector
        name = "#%s" % Vector(vector).name
    except ValueError:
        name = "vector %d" % vector
    where = "" if cr2 is None else " (address %#x)" % cr2
    return ": %s%s at %s" % (name, where, describe(proc.machine, rip))


def _coverage_writer(proc, path: str):
    """--coverage: block coverage on, and the exit hook writing the drcov
    file (once; a forked child writes PATH.PID)."""
    pid0 = os.getpid()
    done = set()
    proc.vcpu.enable_block_coverage()

    def write(p, _status, _signal) -> None:
        me = os.getpid()
        if me in done:
            return
        done.add(me)
        from emu import drcov
        out = path if me == pid0 else "%s.%d" % (path, me)
        try:
            drcov.write_process(out, p)
        except OSError as e:
            print("emu: --coverage %s: %s" % (out, e.strerror), file=sys.stderr)
    proc.add_exit_hook(write)
    return write


def cmd_run(a) -> int:
    from emu.linux.process import GuestExit, GuestKilled, Process, ProgramNotExecutable, ProgramNotFound
    for d, what in ((a.root, "--root"), (a.sandbox, "--sandbox")):
        if d is not None and not os.path.isdir(d):
            print("emu: %s %s: not a directory" % (what, d), file=sys.stderr)
            return 2
    rp = None
    if a.record is not None or a.replay is not None:
        from emu.linux import replay as rp          # (only then: it costs start-up time)
    ReplayError = rp.ReplayError if rp is not None else _NoReplay
    header = events = None
    env = None
    seed = a.seed
    if a.replay is not None:
        try:
            header, events = rp.read_log(a.replay)
        except rp.ReplayError as e:
            print("emu: %s" % e, file=sys.stderr)
            return 2
        opts = header.get("options", {})
        for name, mine in (("time", a.time), ("profile", a.profile), ("seed", a.seed), ("cpu", a.cpu)):
            if mine is not None and mine != opts.get(name):
                print("emu: --replay %s: the log was recorded with --%s %s" % (a.replay, name, opts.get(name)),
                      file=sys.stderr)
                return 2
        a.time, a.profile, seed = opts.get("time"), opts.get("profile"), opts.get("seed")
        a.cpu = opts.get("cpu")
        env = dict(header.get("env", {}))
    elif a.record is not None and seed is None:
        seed = rp.new_seed()            # AT_RANDOM and RDRAND must repeat on replay
    if a.replay is None:
        extra = {}
        for item in a.env:
            name, eq, value = item.partition("=")
            if not eq or not name:
                print("emu: --env %s: NAME=VALUE expected" % item, file=sys.stderr)
                return 2
            extra[name] = value
        if a.record is not None:
            env = record_environment(os.environ)
        if extra:
            env = dict(os.environ if env is None else env, **extra)
    deception = None
    if a.policy is not None or a.template is not None:
        from emu.hypervisor.deception import Deception, DeceptionError
        from emu.hypervisor.templates import TEMPLATES
        try:
            deception = Deception.from_file(a.policy) if a.policy is not None else Deception()
        except DeceptionError as e:
            print("emu: --policy %s" % e, file=sys.stderr)
            return 2
        if a.template is not None:
            if a.template not in TEMPLATES:
                print("emu: --template %s: unknown machine template (one of %s)"
                      % (a.template, ", ".join(TEMPLATES)), file=sys.stderr)
                return 2
            deception.template = a.template
    # a machine template is the stealth profile's: naming one implies it
    a.profile = a.profile or ("stealth" if deception is not None and deception.template else "transparent")
    a.time = a.time or (deception.time if deception is not None else None) or \
        ("virtual" if a.profile == "stealth" else "host")
    session = [None]
    report = guest = None
    policy = None
    if a.report is not None:
        from emu.services.report import BehaviourReport
        try:
            report = BehaviourReport(a.report)
        except OSError as e:
            print("emu: --report %s: %s" % (a.report, e.strerror), file=sys.stderr)
            return 2
        policy = report.policy()
    if (a.record or a.replay) and a.time == "host":
        policy = rp.rdtsc_policy(session, policy)      # host time: every RDTSC value is in the log
    if policy is not None or a.record or a.replay or deception is not None:
        from emu.hypervisor import Guest
        try:
            guest = Guest(a.profile, a.time, policy=policy, cpu=a.cpu, deception=deception)
        except ValueError as e:
            print("emu: %s" % e, file=sys.stderr)
            return 2
        if header is not None and header.get("cpuid"):
            rp.set_cpuid(guest, header["cpuid"])        # the recorded machine's CPUID (the host profile)
    proc = Process([a.program] + a.args, env=env, root=a.root, sandbox=a.sandbox, strace=a.strace, seed=seed,
                   profile=a.profile, time=a.time, guest=guest, cpu=a.cpu, code_cache=a.code_cache)
    if a.record is not None and a.seed is None:
        proc.pid = proc.current.tid = os.getpid()       # the seed is emu's choice: the pid stays the host's
        proc.next_tid = proc.pid + 1
    elif header is not None:
        proc.pid = proc.current.tid = header.get("pid", proc.pid)
        proc.next_tid = proc.pid + 1
    if report is not None:
        report.attach(proc)
    proc.insn_limit = a.max_insns
    try:
        proc.load(a.program)
    except ProgramNotFound as e:
        print("emu: %s" % e, file=sys.stderr)
        return 127
    except ProgramNotExecutable as e:
        print("emu: %s" % e, file=sys.stderr)
        return 126
    if a.record is None and header is None:
        proc.enable_host_signals()      # signals between the guest's processes (emu/linux/hostsig.py)
    if a.record is not None:
        try:
            session[0] = rp.Recorder(proc, a.record, rp.make_header(proc, a, seed))
        except OSError as e:
            print("emu: --record %s: %s" % (a.record, e.strerror), file=sys.stderr)
            return 2
        session[0].attach()
    elif header is not None:
        try:
            rp.check_header(proc, header, a.replay)
        except rp.ReplayError as e:
            print("emu: %s" % e, file=sys.stderr)
            return 2
        session[0] = rp.Replayer(proc, header, events, a.replay)
        session[0].attach()
    trace_out = None
    if a.trace or a.trace_insn:
        trace_out = _start_trace(proc, a)
        if trace_out is None:
            return 2
    coverage = None
    if a.coverage is not None:
        coverage = _coverage_writer(proc, a.coverage)
    stub = None
    if a.gdb is not None:
        if not 0 <= a.gdb <= 65535:
            print("emu: --gdb %d: not a TCP port number" % a.gdb, file=sys.stderr)
            return 2
        listener = _gdb_listen(a.gdb)
        if listener is None:
            return 2
        from emu.gdbstub import ProcessStub, UserTarget
        stub = ProcessStub(UserTarget(proc, a.program), listener)
    if a.sandbox is not None:
        # defence in depth: the host kernel confines emu itself from here on
        # (Landlock and seccomp, emu/linux/oslock.py), for every process of the tree
        from emu.linux.oslock import confine
        got = confine(a.sandbox, [os.path.dirname(os.path.abspath(a.record))] if a.record else [])
        if os.environ.get("EMU_DEBUG") or got["errors"] and os.environ.get("EMU_OSLOCK_REQUIRED"):
            for err in got["errors"]:
                print("emu: --sandbox: %s" % err, file=sys.stderr)
    t0 = time.perf_counter()
    failed = False
    try:
        if stub is not None:
            stub.wait()                 # gdb connects and lets the program start
        proc._loop()
        status = 0
    except GuestExit as e:
        status = e.status
    except GuestKilled as e:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            pass
        if e.signo != 13:            # SIGPIPE ends a pipeline's writer quietly, as shells leave it
            msg = SIGNAL_NAMES.get(e.signo, "signal %d" % e.signo)
            where = _fault_report(proc) if e.core and proc.last_fault is not None else ""
            print("emu: %s: %s%s%s" % (a.program, msg, " (core dumped)" if e.core else "", where), file=sys.stderr)
        status = 128 + e.signo
    except ReplayError as e:
        sys.stdout.flush()
        print("emu: %s" % e, file=sys.stderr)
        status, failed = 1, True
    except KeyboardInterrupt:
        # a second Ctrl-C before the guest took the first: emu stops itself,
        # keeping what the guest wrote to shared file mappings
        try:
            proc.mm.write_back()
        except Exception:       # noqa: BLE001 - best effort on the way out
            pass
        print("emu: interrupted", file=sys.stderr)
        status = 130
    finally:
        if trace_out is not None:
            trace_out.flush()
        if coverage is not None:
            coverage(proc, None, None)
        if a.stats or a.stats_file:
            _stats(proc, time.perf_counter() - t0, a.stats_file, a.stats)
        proc.fds.close_all()
        if session[0] is not None:
            session[0].close()
    if rp is not None and isinstance(session[0], rp.Replayer) and not failed:
        try:
            session[0].finish()
        except rp.ReplayError as e:
            print("emu: %s" % e, file=sys.stderr)
            status = 1
    return status


def cmd_fuzz(a) -> int:
    from emu.fuzz import FuzzError, FuzzTarget, fuzz
    from emu.linux.process import ProgramNotExecutable, ProgramNotFound
    if a.runs < 1 or a.max_len < 1 or a.max_insns < 1:
        print("emu: fuzz: --runs, --max-len and --max-insns must be positive", file=sys.stderr)
        return 2
    seeds = []
    for path in a.input:
        try:
            with open(path, "rb") as f:
                seeds.append(f.read())
        except OSError as e:
            print("emu: fuzz: --input %s: %s" % (path, e.strerror), file=sys.stderr)
            return 2
    if not os.path.isfile(a.program):
        print("emu: %s: no such file" % a.program, file=sys.stderr)
        return 127
    try:
        target = FuzzTarget(a.program, a.function, root=a.root, max_len=a.max_len, max_insns=a.max_insns)
    except (ProgramNotFound, ProgramNotExecutable) as e:
        print("emu: %s" % e, file=sys.stderr)
        return 126
    except FuzzError as e:
        print("emu: fuzz: %s" % e, file=sys.stderr)
        return 2
    st = fuzz(target, seeds, runs=a.runs, seed=a.seed, crash_dir=a.crashes)
    print("emu: fuzz: %d inputs in %.2f s (%.0f a second), corpus %d, edges %d"
          % (st.execs, st.seconds, st.execs / st.seconds if st.seconds else 0, st.corpus, st.edges),
          file=sys.stderr)
    if st.crashes:
        import hashlib
        data, why = st.crashes[0]
        print("emu: fuzz: crash (%s) on %s" % (why, os.path.join(a.crashes, "crash-" + hashlib.sha1(data).hexdigest())),
              file=sys.stderr)
        return 1
    return 0


def cmd_bench(a) -> int:
    from emu.linux.process import ProgramNotExecutable, ProgramNotFound
    from emu.services.bench import BenchError, bench, report
    if a.runs < 1:
        print("emu: bench: --runs must be at least 1", file=sys.stderr)
        return 2
    if a.suite:
        return _bench_suite(a)
    if a.program is None:
        print("emu: bench: give a program, or --suite", file=sys.stderr)
        return 2
    try:
        res = bench([a.program] + a.args, runs=a.runs, native=not a.no_native, qemu=not a.no_qemu)
    except ProgramNotFound as e:
        print("emu: %s" % e, file=sys.stderr)
        return 127
    except ProgramNotExecutable as e:
        print("emu: %s" % e, file=sys.stderr)
        return 126
    except BenchError as e:
        print("emu: bench: %s" % e, file=sys.stderr)
        return 1
    print(report(res))
    return 0


def _bench_suite(a) -> int:
    from emu.services import suite
    if a.program is not None:
        print("emu: bench: --suite takes no program", file=sys.stderr)
        return 2
    names = [n for n in a.only.split(",") if n] if a.only else None
    try:
        res = suite.run_suite(names, runs=a.runs, qemu=not a.no_qemu,
                              code_cache_mib=a.code_cache / (1 << 20) if a.code_cache else None,
                              log=lambda line: print(line, file=sys.stderr, flush=True))
    except suite.SuiteError as e:
        print("emu: bench: %s" % e, file=sys.stderr)
        return 1
    print(suite.markdown(res) if a.markdown else suite.report(res))
    return 0


def cmd_boot(a) -> int:
    from emu.vm.boot import BootError
    from emu.services import vmstate
    from emu.services.vmstate import SnapshotError
    from emu.vm.vmm import VM, VMError
    if (a.kernel is None) == (a.restore is None):
        print("emu: boot: give a kernel, or --restore FILE", file=sys.stderr)
        return 2
    save_at = None
    if a.save_after is not None:
        try:
            save_at = int(a.save_after[0], 0)
        except ValueError:
            save_at = -1
        if save_at < 0:
            print("emu: --save-after: %r is not a number of instructions" % a.save_after[0], file=sys.stderr)
            return 2
    for path in (a.kernel, a.disk, a.restore, a.initrd):
        if path is not None and not os.path.isfile(path):
            print("emu: %s: no such file" % path, file=sys.stderr)
            return 2
    try:
        stdin = sys.stdin.fileno()          # console input: the UART's receive side
    except (AttributeError, ValueError, OSError):
        stdin = None
    try:
        devs = {}
        if a.rng:
            devs["rng"] = True
        if a.vconsole:
            devs["vconsole"] = True
        if a.vsock is not None:
            devs["vsock"] = a.vsock
            devs["vsock_cid"] = a.vsock_cid
        if a.net is not None:
            devs["net"] = a.net
        if a.restore is not None:
            vm = vmstate.restore(a.restore, disk=a.disk, input_fd=stdin, realtime=a.realtime,
                                 disk_readonly=a.readonly, **devs)
        else:
            vm = VM(a.kernel, mem=a.mem, disk=a.disk, cmdline=a.cmdline, input_fd=stdin,
                    realtime=a.realtime, disk_readonly=a.readonly, accel=a.accel, initrd=a.initrd, pvh=a.pvh, **devs)
    except (BootError, VMError, SnapshotError, ValueError, OSError) as e:
        print("emu: %s" % e, file=sys.stderr)
        return 2
    if vm.vcon is not None:
        vm.vcon.sink = vm._stdout
    stub = None
    if a.gdb is not None:
        if not 0 <= a.gdb <= 65535:
            print("emu: --gdb %d: not a TCP port number" % a.gdb, file=sys.stderr)
            vm.close()
            return 2
        listener = _gdb_listen(a.gdb)
        if listener is None:
            vm.close()
            return 2
        from emu.gdbstub import SystemStub, SystemTarget
        stub = SystemStub(SystemTarget(vm), listener)
    raw = None
    if a.console:
        raw = _console_raw(vm, stdin)
    t0 = time.perf_counter()
    try:
        if stub is not None:
            reason = _boot_under_gdb(stub, vm, a.timeout)
            if reason is None:
                return 137              # gdb killed the VM (as SIGKILL would)
        elif save_at is not None:
            reason = vm.run(max_insns=save_at, timeout=a.timeout)
            if reason == "limit":
                vm.exit_reason = None
                try:
                    n = vmstate.save(vm, a.save_after[1])
                except OSError as e:
                    print("emu: cannot write the snapshot: %s" % e, file=sys.stderr)
                    return 1
                print("emu: VM saved to %s after %d instructions (%d pages)" % (a.save_after[1], save_at, n),
                      file=sys.stderr)
                return 0
        else:
            reason = vm.run(timeout=a.timeout)
    finally:
        vm.close()
        if raw is not None:
            raw()
    if a.stats:
        c = vm.vcpu.counters
        dt = time.perf_counter() - t0
        first = (vm.t_first_byte - vm.t_create) * 1e3 if vm.t_first_byte else float("nan")
        print("emu: VM stopped (%s); first console byte %.2f ms after creation; %d instructions in %.3f s "
              "(%.1f MIPS); exits %s" % (reason, first, c["instructions"], dt, c["instructions"] / dt / 1e6 if dt else 0,
                                         ", ".join("%s %d" % kv for kv in sorted(c["exits"].items()))),
              file=sys.stderr)
    if reason == "shutdown":
        print("emu: guest triple fault (%s)" % getattr(vm, "fault_info", ""), file=sys.stderr)
        return 1
    if reason == "timeout":
        print("emu: VM stopped after --timeout", file=sys.stderr)
    if reason == "storm":
        print("emu: guest stopped: %s" % getattr(vm, "fault_info", ""), file=sys.stderr)
        return 1
    return 0


def _boot_under_gdb(stub, vm, timeout):
    """Run the VM once gdb lets it go; the VM's end is the inferior's exit.
    None when gdb killed it."""
    from emu.gdbstub import Kill
    try:
        stub.wait()
        reason = vm.run(timeout=timeout)
    except Kill:
        return None
    stub.on_exit(0 if reason in ("poweroff", "halted") else 1, None)
    return reason


def _console_raw(vm, fd):
    """Put the terminal on fd in raw mode (each key goes to the guest, Ctrl-C
    too) and watch for Ctrl-A x, which stops the VM. Returns the function
    that puts the terminal back."""
    import termios
    import tty
    if fd is None or not os.isatty(fd):
        return None
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    feed = vm.uart.feed
    state = {"ctrl_a": False}

    def filtered(data: bytes) -> None:
        out = bytearray()
        for b in data:
            if state["ctrl_a"]:
                state["ctrl_a"] = False
                if b in (ord("x"), ord("X")):
                    vm.exit_reason = "quit"
                    break
                out.append(b)
            elif b == 1:
                state["ctrl_a"] = True
            else:
                out.append(b)
        if out:
            feed(bytes(out))

    vm.uart.feed = filtered

    def restore() -> None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    return restore


def cmd_batch(a) -> int:
    """`emu batch` (emu/cluster/batch.py)."""
    import json
    from emu.cluster import store as st
    try:
        db = st.Store(a.db)
    except st.StoreError as e:
        print("emu: --db %s" % e, file=sys.stderr)
        return 2
    if a.show is not None:
        hits = db.find(a.show)
        if len(hits) != 1:
            print("emu: --show %s: %s" % (a.show, "no such sample in %s" % a.db if not hits else
                                          "%d samples start so; give more digits" % len(hits)), file=sys.stderr)
            return 1
        print(json.dumps({"sha256": hits[0], "runs": db.runs(hits[0])}, indent=1, sort_keys=True))
        return 0
    if not a.paths:
        print("emu: batch: give sample files or directories (or --show SHA256)", file=sys.stderr)
        return 2
    for path in a.paths:
        if not os.path.exists(path):
            print("emu: batch: %s: no such file or directory" % path, file=sys.stderr)
            return 2
    from emu.cluster import batch
    from emu.cluster.client import ClusterUnavailable, connect
    settings = batch.make_settings(profile=a.profile, time=a.time, seed=a.seed, max_insns=a.max_insns,
                                   timeout=a.timeout, max_rss_mb=a.max_rss, tier=a.tier)
    try:
        cluster = connect(a.cluster, workers=a.workers, retries=a.retries)
    except ClusterUnavailable as e:
        print("emu: %s" % e, file=sys.stderr)
        return 2
    try:
        summary = batch.run(cluster, a.paths, db, settings, progress=batch.Progress(0, force=a.progress))
    finally:
        cluster.close()
        db.close()
    print(batch.format_summary(summary))
    return 0


def cmd_fuzz_workers(a) -> int:
    """`emu fuzz [--workers N | --cluster ADDR]` (emu/cluster/fuzz.py)."""
    from emu.cluster import fuzz
    try:
        with open(a.code, "rb") as f:
            code = f.read()
        seeds = []
        if a.seeds:
            for name in sorted(os.listdir(a.seeds)):
                p = os.path.join(a.seeds, name)
                if os.path.isfile(p):
                    with open(p, "rb") as f:
                        seeds.append((name, f.read()))
        os.makedirs(a.out, exist_ok=True)
        target = fuzz.flat_target(code, base=a.base, input_addr=a.input_addr, max_len=a.max_len,
                                  max_insns=a.max_insns, tier=a.tier)
    except OSError as e:
        print("emu: fuzz: %s: %s" % (e.filename, e.strerror), file=sys.stderr)
        return 2
    except (ValueError, MemoryError) as e:
        print("emu: fuzz: %s" % e, file=sys.stderr)
        return 2
    cluster = None
    if a.workers or a.cluster:
        from emu.cluster.client import ClusterUnavailable, connect
        try:
            cluster = connect(a.cluster, workers=a.workers)
        except ClusterUnavailable as e:
            print("emu: %s" % e, file=sys.stderr)
            return 2
    duration = a.duration if a.duration is not None or a.execs is not None or a.until_crashes else 60.0
    try:
        camp = fuzz.run(target, seeds, cluster=cluster, out=a.out, execs=a.execs, seconds=duration,
                        seed=a.seed, stop_on_crashes=a.until_crashes)
    finally:
        if cluster is not None:
            cluster.close()
    print("emu fuzz: %d executions in %.1f s (%.0f/s), %d queue entries, %d edges, %d distinct crashes, %d hangs; "
          "output in %s" % (camp.execs, camp.seconds, camp.execs / max(1e-9, camp.seconds), len(camp.queue),
                            camp.edges(), len(camp.crashes), len(camp.hangs), os.path.join(a.out, "default")))
    for c in sorted(camp.crashes.values(), key=lambda c: c["name"]):
        print("  crash %s: vector %d at %#x, stack %s (%d hits)"
              % (c["name"], c["vector"], c["rip"], " ".join("%#x" % x for x in c["stack"]), c["hits"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = _fuzz_campaign_argv(list(sys.argv[1:] if argv is None else argv))
    args = _quick_run(argv) or _parser().parse_args(argv)
    if getattr(args, "tier", None):
        import emu
        if args.tier not in emu.available_tiers():
            print("emu: --tier %s: not available on this host (it has: %s)"
                  % (args.tier, ", ".join(emu.available_tiers())), file=sys.stderr)
            return 2
        emu.set_default_tier(args.tier)
        os.environ["EMU_TIER"] = args.tier      # (children the guest starts through emu)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "boot":
            return cmd_boot(args)
        if args.command == "bench":
            return cmd_bench(args)
        if args.command == "fuzz":
            return cmd_fuzz(args)
        if args.command == "batch":
            return cmd_batch(args)
        if args.command == "fuzz-campaign":
            return cmd_fuzz_workers(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:          # an emulator bug: one line, the traceback on request
        if os.environ.get("EMU_DEBUG"):
            raise
        print("emu: internal error: %s: %s (set EMU_DEBUG=1 for details)" % (type(e).__name__, e), file=sys.stderr)
        return 70
    return 2
