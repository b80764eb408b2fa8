"""The tiers agree with each other, not only with the expected output: each
guest program run under the tier of this parametrisation (tests/conftest.py)
retires exactly the instructions the interpreter retires and ends in the same
register state, with the same output and status; and a replay log recorded
under one tier replays under another (issue 10: "same results in every
tier"). Runs use --seed and virtual time, so they are reproducible."""
import contextlib
import fcntl
import os
import re
import subprocess
import sys

import pytest

import emu
from emu.linux.process import Process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(emu.__file__)))
LINUX_BIN = os.path.join(ROOT, "guests", "linux", "bin")
BENCH_BIN = os.path.join(ROOT, "guests", "bench", "bin")

# single-threaded programs (a thread schedule may legitimately differ between
# tiers: their quanta end at block boundaries); signals, faults, x87/SSE,
# files, demand paging, the C system-call path
PROGRAMS = ([os.path.join(BENCH_BIN, n + "-small") for n in ("sieve", "crc32", "sort", "hash", "matmul", "nbody")]
            + [os.path.join(LINUX_BIN, "%s.%s" % (n, libc))
               for n in ("stdio_malloc", "setjmp_signals", "fileio", "floats", "cpu_signals", "fdkinds",
                         "syscall_fast", "pagefaults")
               for libc in ("glibc", "musl")])


def run(prog, tmp_path, tag):
    out = tmp_path / ("out-%s" % tag)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        p = Process([prog, "arg1"], env={"PATH": "/usr/bin"}, seed=5, time="virtual", stdio=(0, fd, fd))
        p.load(prog)
        status = p.run()
    finally:
        os.close(fd)
    v = p.vcpu
    return {"status": status, "output": out.read_bytes(), "icount": v.icount, "regs": v.regs(),
            "tier": v.counters["tier"]}


@contextlib.contextmanager
def _tmp_lock():
    with open("/tmp/emu-tests-fileio.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@pytest.mark.parametrize("prog", PROGRAMS, ids=os.path.basename)
def test_same_instructions_and_state_as_the_interpreter(prog, tier, tmp_path, monkeypatch):
    if not os.path.exists(prog):
        pytest.skip("%s not built" % prog)
    monkeypatch.chdir(tmp_path)
    # fileio makes a directory from a fixed template in /tmp, with the same
    # seeded name in every run: runs in other test workers must not overlap
    with (_tmp_lock() if "fileio" in prog else contextlib.nullcontext()):
        got = run(prog, tmp_path, "tier")
        emu.set_default_tier("interp")
        ref = run(prog, tmp_path, "interp")
    assert ref["tier"] == "interp" and got["tier"] == tier
    assert got["output"] and got["icount"] > 5_000
    for k in ("status", "output", "icount", "regs"):
        assert got[k] == ref[k], k


def emu_run(*args, cwd):
    env = dict(os.environ, PYTHONPATH=EMU_PATH)
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_a_log_recorded_in_one_tier_replays_in_another(tier, tmp_path):
    other = "interp" if tier != "interp" else emu.available_tiers()[-1]
    prog = os.path.join(LINUX_BIN, "fileio.glibc")
    log = str(tmp_path / "run.log")
    with _tmp_lock():
        rec = emu_run("--tier", tier, "--stats", "--record", log, "--seed", "3", prog, cwd=str(tmp_path))
        rep = emu_run("--tier", other, "--stats", "--replay", log, prog, cwd=str(tmp_path))
    assert rec.returncode == rep.returncode == 0, rec.stderr + rep.stderr
    assert rec.stdout == rep.stdout and rec.stdout
    count = [int(re.search(r"emu: (\d+) instructions", r.stderr).group(1)) for r in (rec, rep)]
    assert count[0] == count[1] > 0
    assert "diverged" not in rep.stderr
