"""Whole programs under `emu run`: our guests, built static against glibc and
musl, print byte-identical output and exit with the same status as natively
(recorded in guests/linux/expected, and re-checked against a native run on
x86-64 Linux hosts)."""
import os
import platform
import subprocess
import sys

import pytest

import emu as _emu_pkg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = os.path.join(ROOT, "guests", "linux")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"
PROGRAMS = ["stdio_malloc", "setjmp_signals", "fork_pipe", "threads", "fileio", "floats", "shared_mem", "fdkinds", "threads_pipe",
            "cpu_signals", "proctree", "shared_views", "vdso_clock"]


def run_emu(args, cwd):
    env = dict(os.environ, PYTHONPATH=EMU_PATH)
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.mark.parametrize("libc", ["glibc", "musl"])
@pytest.mark.parametrize("prog", PROGRAMS)
def test_guest_matches_native(prog, libc, tmp_path):
    binary = os.path.join(LINUX, "bin", "%s.%s" % (prog, libc))
    with open(os.path.join(LINUX, "expected", "%s.%s.out" % (prog, libc)), "rb") as f:
        expected = f.read()
    with open(os.path.join(LINUX, "expected", "%s.%s.status" % (prog, libc))) as f:
        status = int(f.read())
    r = run_emu([binary, "arg1"], cwd=tmp_path)
    assert r.stdout == expected, r.stderr.decode(errors="replace")[-2000:]
    assert r.returncode == status, r.stderr.decode(errors="replace")[-2000:]
    if NATIVE:
        n = subprocess.run([binary, "arg1"], capture_output=True, cwd=tmp_path, timeout=60)
        assert (n.stdout, n.returncode) == (r.stdout, r.returncode)


def test_static_pie(tmp_path):
    """A static PIE: loaded at a bias, it relocates itself."""
    binary = os.path.join(LINUX, "bin", "stdio_malloc.static-pie")
    with open(os.path.join(LINUX, "expected", "stdio_malloc.glibc.out"), "rb") as f:
        expected = f.read()
    r = run_emu([binary, "arg1"], cwd=tmp_path)
    assert (r.stdout, r.returncode) == (expected, 3), r.stderr.decode(errors="replace")[-2000:]


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_parked_threads_under_virtual_time(libc, tmp_path):
    # poll/select/epoll waits and reads park their thread; under virtual time the
    # poll's timeout passes on the guest clock while the other thread runs
    binary = os.path.join(LINUX, "bin", "threads_pipe.%s" % libc)
    with open(os.path.join(LINUX, "expected", "threads_pipe.%s.out" % libc), "rb") as f:
        expected = f.read()
    r = run_emu(["--time", "virtual", binary, "arg1"], cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, expected), r.stderr.decode(errors="replace")[-2000:]
