"""The vDSO (emu/linux/vdso.py): an ELF image in every 64-bit process,
announced in AT_SYSINFO_EHDR, whose functions libc calls instead of the
system calls. guests/linux/vdso_clock.c (run by test_linux_guests.py) looks
the functions up itself; here: the image as ELF tools read it, libc taking
the vDSO path (a system-call hook sees the call made from inside it), and
the clocks unchanged under virtual time and replay."""
import os
import shutil
import subprocess
import sys

import pytest

import emu as _emu_pkg
from emu.linux import vdso
from emu.linux.process import Process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "guests", "linux", "bin")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
TIME_CALLS = {228: "clock_gettime", 96: "gettimeofday", 201: "time", 229: "clock_getres", 309: "getcpu"}


def test_image_is_the_elf_readelf_reads(tmp_path):
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf (binutils) is not installed")
    path = tmp_path / "vdso.so"
    path.write_bytes(vdso.image())
    out = subprocess.run([readelf, "-W", "--dyn-syms", "-d", "-V", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "Warning" not in out.stderr, out.stderr
    for name, _nr in vdso.FUNCTIONS:
        assert "__vdso_%s@@LINUX_2.6" % name in out.stdout
    assert "Library soname: [linux-vdso.so.1]" in out.stdout
    assert "Name: LINUX_2.6" in out.stdout and "Flags: BASE" in out.stdout


def _calls_from_vdso(argv):
    """Run argv in-process; (exit status, [(call, made from inside the vDSO)])."""
    p = Process(argv)
    p.load(argv[0])
    seen = []

    def before(p, nr, args):
        if nr in TIME_CALLS:
            seen.append((TIME_CALLS[nr], p.vdso_base <= p.vcpu.rip < p.vdso_base + 4096))
    p.add_syscall_hook(before=before)
    return p.run(), seen, p


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_static_libc_calls_the_vdso(libc, capfd):
    status, seen, p = _calls_from_vdso([os.path.join(BIN, "vdso_clock.%s" % libc)])
    assert status == 0
    # the program's own direct calls and lookups: each time call of libc's
    # loop (2001 clock_gettime) comes from the vDSO page
    from_vdso = [name for name, inside in seen if inside]
    assert from_vdso.count("clock_gettime") >= 2001 + 5
    assert {"gettimeofday", "time", "clock_getres", "getcpu"} <= set(from_vdso)
    assert any(v.name == "[vdso]" and v.start == p.vdso_base for v in p.mm.vmas)
    assert "never goes back over 2000 reads: yes" in capfd.readouterr().out


def test_dynamic_program_calls_the_vdso(capfd):
    date = shutil.which("date")
    if date is None or not os.path.exists("/lib64/ld-linux-x86-64.so.2"):
        pytest.skip("needs the host's dynamically linked date(1) and glibc")
    status, seen, _p = _calls_from_vdso([date, "+%Y"])
    assert status == 0 and int(capfd.readouterr().out) >= 2024
    assert seen and all(inside for _name, inside in seen), seen


def test_auxv_names_the_vdso(tmp_path):
    # LD_SHOW_AUXV: the dynamic loader prints the auxiliary vector it got
    env_prog = shutil.which("env")
    true_prog = shutil.which("true")
    if env_prog is None or true_prog is None:
        pytest.skip("needs env(1) and true(1)")
    r = subprocess.run([sys.executable, "-m", "emu", "run", env_prog, "LD_SHOW_AUXV=1", true_prog],
                       capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=EMU_PATH),
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines() if ":" in line)
    assert "AT_SYSINFO_EHDR" in lines
    base = int(lines["AT_SYSINFO_EHDR"].strip(), 16)
    maps = subprocess.run([sys.executable, "-m", "emu", "run", shutil.which("cat") or "/bin/cat", "/proc/self/maps"],
                          capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=EMU_PATH),
                          timeout=120).stdout
    assert ("%x-" % base) in maps and "[vdso]" in maps


@pytest.mark.parametrize("mode", ["virtual", "replay"])
def test_vdso_clock_under_virtual_time_and_replay(mode, tmp_path):
    prog = os.path.join(BIN, "vdso_clock.glibc")
    env = dict(os.environ, PYTHONPATH=EMU_PATH)
    run = lambda *a: subprocess.run([sys.executable, "-m", "emu", "run", *a], capture_output=True, cwd=tmp_path,
                                    env=env, timeout=120)
    with open(os.path.join(ROOT, "guests", "linux", "expected", "vdso_clock.glibc.out"), "rb") as f:
        expected = f.read()
    if mode == "virtual":
        # one deterministic clock: two runs agree, and the vDSO's values lie between the system calls'
        a, b = run("--time", "virtual", prog), run("--time", "virtual", prog)
        assert a.returncode == b.returncode == 0 and a.stdout == b.stdout == expected, a.stderr[-2000:]
    else:
        log = str(tmp_path / "log")
        a = run("--record", log, prog)
        b = run("--replay", log, prog)
        assert (a.returncode, a.stdout) == (b.returncode, b.stdout) == (0, expected), b.stderr[-2000:]
