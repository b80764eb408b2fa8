"""System calls the core answers itself (core/syscall_fast.pxi, emu/linux/
fastcalls.py): every answer is the one the Python path gives (and, for the
checks a real kernel agrees with, the host's): results, errno, offsets shared
with dup'd descriptors and forked children, reused descriptor numbers, pipes
and SIGPIPE, buffers across pages, EFAULT, and code overwritten by read()."""
import os
import platform
import subprocess
import sys

import pytest

import emu as _emu_pkg
from emu.linux import fastcalls
from emu.linux.process import Process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = os.path.join(ROOT, "guests", "linux")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"


def binary(libc):
    return os.path.join(LINUX, "bin", "syscall_fast.%s" % libc)


def run_emu(args, cwd, fast):
    env = dict(os.environ, PYTHONPATH=EMU_PATH, EMU_FAST_SYSCALLS="1" if fast else "0")
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, cwd=cwd, env=env,
                          timeout=300)


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_checks_match_native_on_both_paths(libc, tmp_path):
    with open(os.path.join(LINUX, "expected", "syscall_fast.%s.out" % libc), "rb") as f:
        expected = f.read()
    for fast in (True, False):
        r = run_emu([binary(libc), "arg1"], tmp_path, fast)
        assert (r.stdout, r.returncode) == (expected, 0), (fast, r.stderr.decode(errors="replace")[-2000:])
    if NATIVE:
        n = subprocess.run([binary(libc), "arg1"], capture_output=True, cwd=tmp_path, timeout=60)
        assert (n.stdout, n.returncode) == (expected, 0)


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_corners_same_on_both_paths(libc, tmp_path):
    """Buffers partly unmapped or PROT_NONE, /dev/null from a bad pointer:
    emu's answers (its own, not always Linux's) come out the same either way."""
    fast = run_emu([binary(libc), "corners"], tmp_path, True)
    slow = run_emu([binary(libc), "corners"], tmp_path, False)
    assert fast.returncode == slow.returncode == 0, fast.stderr
    assert fast.stdout == slow.stdout
    assert b"EFAULT" in fast.stdout


def _run_process(argv, cwd, monkeypatch, fast=True, hook=False):
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("EMU_FAST_SYSCALLS", "1" if fast else "0")
    seen = []
    p = Process(argv, stdio=(0, os.open(os.devnull, os.O_WRONLY), 2))
    if hook:
        p.add_syscall_hook(before=lambda proc, nr, args: seen.append(nr))
    p.load(argv[0])
    status = p.run()
    p.fds.close_all()
    return p, status, seen


@pytest.mark.parametrize("call,nr", [("write", 1), ("read", 17), ("lseek", 8), ("fstat", 262), ("getpid", 39)])   # (glibc: fstat is newfstatat with AT_EMPTY_PATH)
def test_calls_are_answered_in_the_core_and_counted(call, nr, tmp_path, monkeypatch):
    p, status, _ = _run_process([binary("glibc"), "bench", call, "500"], tmp_path, monkeypatch)
    assert status == 0
    c = p.machine.phys.sysfast_counters
    assert c["answered"] >= 499                     # (the first one teaches the personality the descriptor)
    assert p.vcpu.counters["syscalls_in_core"] == c["answered"]
    assert p.vcpu.counters["exits"].get("SYSCALL", 0) < 100
    q, status, _ = _run_process([binary("glibc"), "bench", call, "500"], tmp_path, monkeypatch, fast=False)
    assert status == 0 and q.fast is None and q.vcpu.counters["exits"]["SYSCALL"] > 500
    # the process's per-call counts include the calls the core answered
    assert p.syscall_counts == q.syscall_counts
    assert p.syscall_counts[nr] >= 500


def test_every_call_reaches_a_syscall_hook(tmp_path, monkeypatch):
    """A hook (as --report and API users install) must see every call: the
    core answers none while one is installed."""
    p, status, seen = _run_process([binary("glibc"), "bench", "write", "300"], tmp_path, monkeypatch, hook=True)
    assert status == 0
    assert seen.count(1) >= 300
    assert p.machine.phys.sysfast_counters["answered"] == 0


def test_strace_sees_every_call(tmp_path):
    env = dict(os.environ, PYTHONPATH=EMU_PATH)
    r = subprocess.run([sys.executable, "-m", "emu", "run", "--strace", binary("musl"), "bench", "write", "50"],
                       capture_output=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0
    assert r.stderr.count(b"write(") >= 50


def test_read_marks_pages_dirty_for_snapshots(tmp_path, monkeypatch):
    """Bytes a read() puts in guest memory from the core are recorded like
    the guest's own stores (the snapshot's dirty list)."""
    p, status, _ = _run_process([binary("glibc"), "bench", "read", "50"], tmp_path, monkeypatch)
    assert status == 0 and p.machine.phys.sysfast_counters["answered"] >= 49
    # the dirty list holds every page written; the buffer's page is in it
    assert len(p.machine.phys.take_dirty()) > 0


def test_switch_follows_the_personality(tmp_path, monkeypatch):
    monkeypatch.setenv("EMU_FAST_SYSCALLS", "1")
    monkeypatch.chdir(tmp_path)
    p = Process([binary("glibc")])
    f = p.fast
    assert isinstance(f, fastcalls.FastCalls)
    f.sync(p.current)
    assert p.machine.phys.sysfast_on
    p.pending_signals = 1 << 9
    f.sync(p.current)
    assert not p.machine.phys.sysfast_on
    p.pending_signals = 0
    p.strace = True
    f.sync(p.current)
    assert not p.machine.phys.sysfast_on
    p.strace = False
    f.sync(p.current)
    assert p.machine.phys.sysfast_on
    # a descriptor changed in the table is taken back from the core
    f.learn(1)
    p.fds.close(1)
    p.fds.close_all()
