"""Virtual time makes runs reproducible: the same guest run twice with
`--seed N --time virtual` retires the same instructions, prints the same
output and ends in the same register state; and every clock the guest reads
tells one time (TSC, CPUID 0x15, clock_gettime, gettimeofday, time,
nanosleep)."""
import os
import re
import subprocess
import sys

import pytest

import emu as _emu_pkg
from emu.hypervisor import GuestClock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
THREADS = os.path.join(ROOT, "guests", "linux", "bin", "threads.glibc")
TIMECHECK = os.path.join(ROOT, "guests", "antivm", "timecheck")
SORT = os.path.join(ROOT, "guests", "bench", "bin", "sort-small")


def emu_run(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = EMU_PATH + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(ROOT), env=env)


def insns(stderr: str) -> int:
    return int(re.search(r"emu: (\d+) instructions", stderr).group(1))


@pytest.mark.parametrize("prog", [THREADS, TIMECHECK])
def test_cli_runs_repeat_exactly(prog):
    runs = [emu_run("--seed", "7", "--time", "virtual", "--stats", prog) for _ in range(2)]
    a, b = runs
    assert a.returncode == b.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout
    assert insns(a.stderr) == insns(b.stderr) > 0
    exits = [re.search(r"emu: exits (.*)", r.stderr).group(1) for r in runs]
    assert exits[0] == exits[1]


def run_inprocess(prog, tmp_path, tag):
    from emu.linux.process import Process
    out = tmp_path / ("out-%s" % tag)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        p = Process([prog], env={"PATH": "/usr/bin"}, seed=11, time="virtual", stdio=(0, fd, 2))
        p.load(prog)
        status = p.run()
    finally:
        os.close(fd)
    v = p.vcpu
    regs = v.regs()
    return (status, out.read_bytes(), v.icount, regs, v.tsc, v.fxsave(), [t.vcpu.icount for t in p.threads])


@pytest.mark.parametrize("prog", [THREADS, SORT])
def test_final_state_repeats(prog, tmp_path):
    a = run_inprocess(prog, tmp_path, "a")
    b = run_inprocess(prog, tmp_path, "b")
    assert a[0] == 0 and a[1]
    assert a == b


def clocks(out: str) -> dict:
    res, tag = {}, ""
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        if not v:
            tag = k + "_"
        else:
            res[tag + k] = int(v)
    return res


def test_one_virtual_clock():
    r = emu_run("--time", "virtual", TIMECHECK)
    c = clocks(r.stdout)
    hz = c["cpuid15_crystal"] * c["cpuid15_num"] // c["cpuid15_den"]
    assert hz == GuestClock().tsc_hz == 3_200_000_000
    for t in ("before_", "after_"):
        # the TSC in ns and CLOCK_MONOTONIC agree to within the few instructions between them
        assert 0 <= c[t + "mono_ns"] - c[t + "tsc"] * 10**9 // hz < 10_000
        assert 0 <= c[t + "real_ns"] - c[t + "mono_ns"] - (1_704_067_200 - 10) * 10**9 < 10_000
        assert c[t + "tod_us"] == c[t + "real_ns"] // 1000 or 0 <= c[t + "tod_us"] * 1000 - c[t + "real_ns"] < 10_000
        assert c[t + "time_s"] == c[t + "real_ns"] // 10**9
        assert c[t + "tsc"] < c[t + "tscp"] < c[t + "tsc"] + 10_000
    # nanosleep(1.5 s) moved every clock forward by 1.5 s (plus a few instructions), at once
    d_mono = c["after_mono_ns"] - c["before_mono_ns"]
    d_tsc = c["after_tsc"] - c["before_tsc"]
    assert 1_500_000_000 <= d_mono < 1_500_010_000
    assert 1_500_000_000 * hz // 10**9 <= d_tsc < (1_500_010_000 * hz) // 10**9
    assert c["after_time_s"] - c["before_time_s"] in (1, 2)
    # a futex wait that times out (the only thread blocked) lets exactly its timeout pass
    assert c["after_futex_etimedout"] == 1
    assert 250_000_000 <= c["futex_mono_ns"] - c["after_mono_ns"] < 250_010_000


def test_host_clock_consistent():
    r = emu_run("--time", "host", TIMECHECK)
    c = clocks(r.stdout)
    hz = c["cpuid15_crystal"] * c["cpuid15_num"] // c["cpuid15_den"]
    # host mode: TSC / frequency is the host's CLOCK_MONOTONIC; the sleep really waited
    assert abs(c["before_mono_ns"] - c["before_tsc"] * 10**9 // hz) < 50_000_000
    d_mono = c["after_mono_ns"] - c["before_mono_ns"]
    assert 1_500_000_000 <= d_mono < 3_000_000_000
    assert abs((c["after_tsc"] - c["before_tsc"]) * 10**9 // hz - d_mono) < 50_000_000
    assert c["after_futex_etimedout"] == 1 and c["futex_mono_ns"] - c["after_mono_ns"] >= 250_000_000


def test_guest_clock_unit():
    import emu
    m = emu.Machine(1 << 20, paging=False, cpl=0)
    v = m.vcpu
    m.write(0, b"\x90" * 1000 + b"\xf4")
    clk = GuestClock("virtual", tsc_hz=1_000_000_000, cycles_per_insn=2.0)
    clk.install(v)
    t0 = clk.now_ns(v, 1)
    assert t0 == clk.boot_ns
    assert v.run().name == "HLT"
    assert clk.now_ns(v, 1) == clk.boot_ns + 2 * 1001
    clk.sleep([v], 5_000)
    assert clk.now_ns(v, 1) == clk.boot_ns + 2 * 1001 + 5_000
    assert v.tsc == (clk.boot_ns + 2 * 1001 + 5_000)
    assert clk.now_ns(v, 0) == clk.realtime_epoch_ns + 2 * 1001 + 5_000


def test_tsc_host_mode_core():
    import time
    import emu
    m = emu.Machine(1 << 20, paging=False, cpl=0)
    v = m.vcpu
    # rdtsc; mov rdi, rax; mov rsi, rdx; then WRMSR IA32_TSC <- 0 (ecx = 0x10); rdtsc; hlt
    m.write(0, bytes.fromhex("0f31 4889c7 4889d6 b910000000 31c0 31d2 0f30 0f31 f4"))
    v.set_tsc_host(1e9, 5_000_000_000)           # 1 GHz: one cycle per host nanosecond
    assert v.tsc_mode == "host"
    t0 = v.tsc
    time.sleep(0.05)
    t1 = v.tsc
    assert 5_000_000_000 <= t0 < t1 and 40_000_000 <= t1 - t0 < 1_000_000_000
    assert v.run().name == "HLT"
    first = v.rsi << 32 | v.rdi
    assert first >= t1
    # after WRMSR IA32_TSC <- 0 the TSC counts on from 0 at host speed
    assert (v.rdx << 32 | v.rax) < 50_000_000
    v.set_tsc(0, 1.0)
    assert v.tsc_mode == "virtual" and v.tsc == v.icount
