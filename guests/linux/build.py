#!/usr/bin/env python3
"""Build the Linux guest programs static against glibc (gcc) and musl (zig cc
from the `ziglang` PyPI package), into guests/linux/bin/NAME.glibc and
NAME.musl. The binaries are committed, so this is only needed after editing
a source."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = ["stdio_malloc", "setjmp_signals", "fork_pipe", "threads", "fileio", "floats", "escape", "syscall_heavy",
            "clocks", "shared_mem", "fdkinds", "threads_pipe", "replay_input", "proctree", "cpu_signals", "pagefaults",
            "syscall_fast", "chroot_jail", "fifo_sched_names", "shared_views", "vdso_clock"]
# the host CPU's fault behaviour oracles (tests/test_harden_core.py): glibc only
GLIBC_ONLY = ["cpu_corners", "faultprobe", "sandbox_escapes", "host_signals", "sparse_map", "bad_args", "namespaces"]
CFLAGS = ["-O2", "-static", "-fno-pie", "-no-pie"]
LIBS = {"threads": ["-lpthread"], "threads_pipe": ["-lpthread"], "floats": ["-lm"], "syscall_fast": ["-lpthread"], "shared_views": ["-lpthread"]}


def build(name: str, flavour: str) -> None:
    src = os.path.join(HERE, name + ".c")
    out = os.path.join(HERE, "bin", "%s.%s" % (name, flavour))
    if flavour == "glibc":
        cc = [shutil.which("gcc") or "cc"]
    else:
        cc = [sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-linux-musl"]
    cmd = cc + CFLAGS + ["-o", out, src] + LIBS.get(name, [])
    if flavour == "musl":
        cmd += ["-Wl,--build-id=none"]
    subprocess.run(cmd, check=True)
    subprocess.run(["strip", out], check=False)


def build_static_pie(name: str) -> None:
    """One program also as a static PIE (loaded at a bias, relocates itself)."""
    src = os.path.join(HERE, name + ".c")
    out = os.path.join(HERE, "bin", "%s.static-pie" % name)
    subprocess.run([shutil.which("gcc") or "cc", "-O2", "-static-pie", "-fpie", "-o", out, src], check=True)
    subprocess.run(["strip", out], check=False)


def main() -> int:
    os.makedirs(os.path.join(HERE, "bin"), exist_ok=True)
    names = sys.argv[1:] or PROGRAMS + GLIBC_ONLY
    for name in names:
        for flavour in ("glibc",) if name in GLIBC_ONLY else ("glibc", "musl"):
            build(name, flavour)
            print("built bin/%s.%s" % (name, flavour))
        if name == "stdio_malloc":
            build_static_pie(name)
            print("built bin/%s.static-pie" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
