"""The command line: guests run with their output and exit status, and bad
input gets one clear line and the shell's exit statuses, never a traceback."""
import os
import platform
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUESTS = os.path.join(ROOT, "guests")
native_ok = platform.system() == "Linux" and platform.machine() == "x86_64"


import emu as _emu_pkg

# the subprocess imports the same emu package as this test process
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))


def emu(*args, **kw):
    # not from the source tree: `python -m` would import ./emu instead of the installed package
    kw.setdefault("cwd", os.path.dirname(ROOT))
    env = dict(os.environ)
    env["PYTHONPATH"] = EMU_PATH + os.pathsep + env.get("PYTHONPATH", "")
    kw.setdefault("env", env)
    return subprocess.run([sys.executable, "-m", "emu", *args], capture_output=True, text=True, timeout=120, **kw)


def native(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def guest(*parts):
    return os.path.join(GUESTS, *parts)


def test_hello():
    r = emu("run", guest("hello", "hello"))
    assert r.returncode == 0
    assert r.stdout == "Hello from emu!\n"
    assert r.stderr == ""


def test_exit_status_and_arguments():
    r = emu("run", guest("faults", "exit_status"), "x", "y")
    assert (r.returncode, r.stdout) == (42, "argc=3\n")
    if native_ok:
        n = native(guest("faults", "exit_status"), "x", "y")
        assert (n.returncode, n.stdout) == (r.returncode, r.stdout)


@pytest.mark.parametrize("prog,signo,before", [
    ("wild_write", 11, "before\n"),        # write outside its memory
    ("jump_garbage", 11, "jumping\n"),     # jump into a non-executable page
    ("undefined_opcode", 4, "ud2\n"),      # UD2
])
def test_guest_faults_become_signals(prog, signo, before):
    r = emu("run", guest("faults", prog))
    assert r.returncode == 128 + signo
    assert r.stdout == before
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    if native_ok:
        n = native(guest("faults", prog))
        assert n.returncode == -signo and n.stdout == before


def test_missing_program():
    r = emu("run", "/nonexistent/prog")
    assert r.returncode == 127
    assert r.stderr.strip() == "emu: /nonexistent/prog: No such file or directory"


def test_not_elf(tmp_path):
    p = tmp_path / "script.txt"
    p.write_text("just text\n")
    p.chmod(0o755)                  # (without an execute bit it is EACCES first, as on Linux)
    r = emu("run", str(p))
    assert r.returncode == 126
    assert "not an ELF" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_wrong_architecture(tmp_path):
    with open(guest("hello", "hello"), "rb") as f:
        data = bytearray(f.read())
    data[18:20] = (183).to_bytes(2, "little")     # EM_AARCH64
    p = tmp_path / "arm"
    p.write_bytes(bytes(data))
    p.chmod(0o755)
    r = emu("run", str(p))
    assert r.returncode == 126
    assert "wrong architecture" in r.stderr and "Traceback" not in r.stderr


def test_32bit_elf(tmp_path):
    data = bytearray(b"\x7fELF\x01\x01\x01" + bytes(57))
    p = tmp_path / "i386"
    p.write_bytes(bytes(data))
    p.chmod(0o755)
    r = emu("run", str(p))
    # ELF32 for i386 runs (tests/test_i386.py); this header names no machine
    assert r.returncode == 126 and "not x86-64 or i386" in r.stderr and "Traceback" not in r.stderr


def test_truncated_elf(tmp_path):
    with open(guest("hello", "hello"), "rb") as f:
        data = f.read()[:100]
    p = tmp_path / "trunc"
    p.write_bytes(data)
    p.chmod(0o755)
    r = emu("run", str(p))
    assert r.returncode == 126 and "Traceback" not in r.stderr


def test_directory():
    r = emu("run", GUESTS)
    assert r.returncode == 126 and "Traceback" not in r.stderr


def test_unknown_option():
    r = emu("run", "--no-such-option", guest("hello", "hello"))
    assert r.returncode == 2
    assert "unrecognized arguments" in r.stderr or "error" in r.stderr
    assert "Traceback" not in r.stderr


def test_no_command():
    r = emu()
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_stats():
    r = emu("run", "--stats", guest("hello", "hello"))
    assert r.returncode == 0 and r.stdout == "Hello from emu!\n"
    assert "MIPS" in r.stderr and "code cache: 2 translations of 2 distinct blocks" in r.stderr
    assert "TLB hit rate" in r.stderr and "slow lookups" in r.stderr
    assert "page faults 1 (1 resolved in the core), system calls 2" in r.stderr
    assert "SYSCALL 2" in r.stderr


def test_stats_file_and_code_cache(tmp_path):
    import json
    f = tmp_path / "s.json"
    r = emu("run", "--stats-file", str(f), "--code-cache", "0.5", guest("hello", "hello"))
    assert r.returncode == 0 and r.stdout == "Hello from emu!\n" and r.stderr == ""
    s = json.loads(f.read_text())
    assert s["instructions"] == 10 and s["syscalls"] == 2 and s["code_cache_budget"] == 512 << 10
    assert s["translations"] == s["distinct_blocks"] == 2 and s["translations_per_block"] == 1.0
    for bad in ("0.01", "lots"):
        r = emu("run", "--code-cache", bad, guest("hello", "hello"))
        assert r.returncode == 2 and "--code-cache" in r.stderr and "Traceback" not in r.stderr


def test_strace():
    r = emu("run", "--strace", guest("hello", "hello"))
    assert r.returncode == 0
    # as strace(1) prints it: the call padded to 39 columns before " = "
    assert 'write(1, "Hello from emu!\\n", 16)       = 16\n' in r.stderr
    assert "exit_group(0)                           = ?" in r.stderr


def test_boot_save_and_restore(tmp_path):
    kernel = guest("kernel", "kernel.elf")
    snap = str(tmp_path / "vm.snap")
    whole = emu("boot", kernel, "--mem", "64M", stdin=subprocess.DEVNULL)
    first = emu("boot", kernel, "--mem", "64M", "--save-after", "3000000", snap, stdin=subprocess.DEVNULL)
    assert first.returncode == 0 and "emu: VM saved to %s after 3000000 instructions" % snap in first.stderr
    rest = emu("boot", "--restore", snap, stdin=subprocess.DEVNULL)
    assert whole.returncode == rest.returncode == 0
    assert 0 < len(first.stdout) < len(whole.stdout) and first.stdout + rest.stdout == whole.stdout


@pytest.mark.parametrize("args,message", [
    (("--restore", os.path.join(ROOT, "README.md")), "not an emu snapshot"),
    (("--restore", "/nonexistent.snap"), "no such file"),
    ((), "give a kernel, or --restore FILE"),
    (("--save-after", "lots", "x.snap", guest("kernel", "kernel.elf")), "is not a number of instructions"),
])
def test_boot_bad_snapshot_arguments(args, message):
    r = emu("boot", *args, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bench():
    r = emu("bench", "--runs", "2", guest("bench", "bin", "crc32-small"))
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("emu:") and "MIPS" in first and "block cache" in first and "TLB" in first
    mips = float(first.split(" MIPS")[0].rsplit(" ", 1)[1])
    assert mips > 1
    if native_ok:
        assert any(l.startswith("native:") and "slower" in l for l in r.stdout.splitlines())


def test_bench_refuses_different_work_and_bad_programs(tmp_path):
    if native_ok and os.path.exists("/bin/sh"):
        # the guest sees pid 1000 (emu bench runs with a fixed seed), the host another pid
        r = emu("bench", "--runs", "1", "--no-qemu", "/bin/sh", "-c", "echo $$")
        assert r.returncode == 1 and "not the same work" in r.stderr and len(r.stderr.splitlines()) == 1
    assert emu("bench", str(tmp_path / "missing")).returncode == 127
    assert emu("bench", "--runs", "0", guest("hello", "hello")).returncode == 2


def test_version():
    r = emu("--version")
    # "emu 1.2.3" when installed, a note when run from a source checkout with no metadata
    assert r.returncode == 0 and r.stdout.startswith("emu ") and len(r.stdout.strip()) > 4


def test_sigpipe_ends_a_pipeline_writer_quietly():
    yes = shutil.which("yes") if native_ok else None
    if yes is None:
        pytest.skip("needs the host's yes")
    env = dict(os.environ, PYTHONPATH=EMU_PATH)
    p = subprocess.Popen([sys.executable, "-m", "emu", "run", yes], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=os.path.dirname(ROOT), env=env)
    assert p.stdout.read(10) == b"y\ny\ny\ny\ny\n"
    p.stdout.close()
    assert p.wait(timeout=60) == 128 + 13 and p.stderr.read() == b""
