"""No input becomes an internal error (exit 70), a hang or a flood: crafted
ELF files (fields against the file size and the address space), program
files that are not regular or not executable, non-UTF-8 paths and
arguments, bad option values, out-of-range system-call arguments."""
from __future__ import annotations

import os
import platform
import shutil
import stat
import struct
import subprocess
import sys

import pytest

import emu as _emu_pkg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
HELLO = os.path.join(ROOT, "guests", "hello", "hello")
PIE = os.path.join(ROOT, "guests", "linux", "bin", "stdio_malloc.static-pie")
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"


def emu(*args, timeout=120, **kw):
    env = dict(os.environ, PYTHONPATH=EMU_PATH)
    return subprocess.run([sys.executable, "-m", "emu", *args], capture_output=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def _phdrs(data):
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    return [phoff + 56 * i for i in range(phnum)]


def _first_load(data):
    for ph in _phdrs(data):
        if struct.unpack_from("<I", data, ph)[0] == 1:
            return ph
    raise AssertionError


def _crafted(tmp_path, base, edit):
    data = bytearray(open(base, "rb").read())
    edit(data)
    p = tmp_path / "crafted"
    p.write_bytes(bytes(data))
    p.chmod(0o755)
    return str(p)


def _set(off, fmt, value):
    return lambda d: struct.pack_into(fmt, d, off if isinstance(off, int) else off(d), value)


CASES = {
    "huge e_phoff": _set(32, "<Q", 1 << 62),
    "e_phoff past the end": _set(32, "<Q", 0xFFFFFFFFFFFFFFF0),
    "huge e_phnum": _set(56, "<H", 0xFFFF),
    "bad e_phentsize": _set(54, "<H", 8),
    "huge p_memsz": lambda d: struct.pack_into("<Q", d, _first_load(d) + 40, 1 << 62),
    "p_memsz wraps": lambda d: struct.pack_into("<Q", d, _first_load(d) + 40, 0xFFFFFFFFFFFFF000),
    "p_filesz past the end": lambda d: struct.pack_into("<Q", d, _first_load(d) + 32, 1 << 40),
    "p_offset past the end": lambda d: struct.pack_into("<Q", d, _first_load(d) + 8, 1 << 60),
    "p_vaddr at the top": lambda d: struct.pack_into("<Q", d, _first_load(d) + 16, 0xFFFFFFFFFFFFF000),
    "offset and address disagree mod 4096": lambda d: struct.pack_into(
        "<Q", d, _first_load(d) + 16, struct.unpack_from("<Q", d, _first_load(d) + 16)[0] + 0x10),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_elf_is_refused_cleanly(tmp_path, case):
    p = _crafted(tmp_path, HELLO, CASES[case])
    r = emu("run", p)
    assert r.returncode == 126, (case, r.returncode, r.stderr)
    err = r.stderr.decode()
    assert err.startswith("emu: ") and err.count("\n") == 1 and "internal error" not in err, err


def test_huge_bss_is_mapped_lazily(tmp_path):
    """A PT_LOAD whose p_memsz is 64 GiB past its file bytes loads at once
    (the bss is demand-zero) and the program runs."""
    def edit(d):
        ph = max((ph for ph in _phdrs(d) if struct.unpack_from("<I", d, ph)[0] == 1),
                 key=lambda ph: struct.unpack_from("<Q", d, ph + 16)[0])
        struct.pack_into("<Q", d, ph + 40, struct.unpack_from("<Q", d, ph + 40)[0] + (64 << 30))
    p = _crafted(tmp_path, HELLO, edit)
    r = emu("run", p, timeout=60)
    assert r.returncode == 0 and b"Hello" in r.stdout, r.stderr


def test_pie_at_the_top_of_the_address_space(tmp_path):
    """A PIE whose segments would end above the user address space."""
    def edit(d):
        for ph in _phdrs(d):
            if struct.unpack_from("<I", d, ph)[0] == 1:
                struct.pack_into("<Q", d, ph + 40, 0x7FFF00000000)
    p = _crafted(tmp_path, PIE, edit)
    r = emu("run", p)
    assert r.returncode == 126 and b"internal error" not in r.stderr, r.stderr


def test_huge_pt_interp(tmp_path):
    data = bytearray(open(HELLO, "rb").read())
    ph = _phdrs(data)[-1]
    struct.pack_into("<IIQQQQQQ", data, ph, 3, 4, 0, 0, 0, 1 << 40, 1 << 40, 1)    # PT_INTERP of 1 TiB
    p = tmp_path / "interp"
    p.write_bytes(bytes(data))
    p.chmod(0o755)
    r = emu("run", str(p))
    assert r.returncode == 126 and b"PT_INTERP" in r.stderr, r.stderr


def test_non_executable_file_is_refused_with_126(tmp_path):
    p = tmp_path / "noexec"
    shutil.copy(HELLO, p)
    p.chmod(0o644)
    r = emu("run", str(p))
    assert r.returncode == 126 and b"Permission denied" in r.stderr, r.stderr


def test_dev_zero_and_a_fifo_are_refused_at_once(tmp_path):
    r = emu("run", "/dev/zero", timeout=30)
    assert r.returncode == 126 and b"Permission denied" in r.stderr
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = emu("run", str(fifo), timeout=30)          # no writer ever comes: must not wait for one
    assert r.returncode == 126 and b"Permission denied" in r.stderr


@pytest.mark.skipif(not os.path.exists("/bin/echo"), reason="needs the host's /bin/echo")
def test_non_utf8_arguments_and_paths(tmp_path):
    arg = b"x\xfey"
    r = emu("run", "/bin/echo", os.fsdecode(arg))
    assert r.returncode == 0 and r.stdout == arg + b"\n", r.stderr
    name = b"a\xffb"
    (tmp_path / os.fsdecode(name)).write_bytes(b"content\n")
    r = emu("run", "/bin/cat", os.fsdecode(bytes(tmp_path).rstrip(b"/") + b"/" + name)
            if False else os.path.join(str(tmp_path), os.fsdecode(name)))
    assert r.returncode == 0 and r.stdout == b"content\n", r.stderr
    if os.path.exists("/bin/ls"):
        r = emu("run", "/bin/ls", str(tmp_path))
        assert r.returncode == 0 and r.stdout == name + b"\n", r.stderr


@pytest.mark.parametrize("mem", ["lots", "-5M", "0", "1T", "99999999999999999999G", "12345"])
def test_boot_mem_values(mem):
    r = emu("boot", os.path.join(ROOT, "guests", "kernel", "kernel.elf"), "--mem=" + mem, "--timeout", "1")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(b"emu: ") and b"internal error" not in r.stderr and b"Traceback" not in r.stderr


# ---- replay logs: fields checked, even with the checksum recomputed ----

STDIO = os.path.join(ROOT, "guests", "linux", "bin", "stdio_malloc.glibc")


def _recorded(tmp_path):
    log = tmp_path / "run.log"
    r = emu("run", "--record", str(log), "--seed", "3", "--time", "virtual", STDIO, "arg1", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    return log


def _rewrite(log, edit):
    import hashlib
    import json
    lines = [json.loads(x) for x in log.read_bytes().split(b"\n")[:-2]]
    edit(lines)
    out = b"".join(json.dumps(x, separators=(",", ":")).encode() + b"\n" for x in lines)
    log.write_bytes(out + json.dumps(["END", hashlib.sha256(out).hexdigest()]).encode() + b"\n")


def _first(lines, kind):
    return next(x for x in lines[1:] if isinstance(x, list) and x[0] == kind)


EDITS = {
    "event kind a list": lambda L: L.__setitem__(1, [[1], 2]),
    "result a string": lambda L: _first(L, "S").__setitem__(4, "x"),
    "memory write not base64": lambda L: _first(L, "S").__setitem__(5, [[4096, "!!!"]]),
    "arguments short": lambda L: _first(L, "S").__setitem__(2, [1]),
    "signal mask a list": lambda L: _first(L, "S").__setitem__(7, [[], 0, None, "{}", "{}", "{}"]),
    "timers not a literal": lambda L: _first(L, "S").__setitem__(7, [0, 0, None, "{}", "os.system('x')", "{}"]),
    "exit status huge": lambda L: _first(L, "X").__setitem__(1, 1 << 70),
    "header env not strings": lambda L: L[0].__setitem__("env", {"A": 1}),
    "header cpuid bad": lambda L: L[0].__setitem__("cpuid", [[1, 2]]),
    "header time option": lambda L: L[0]["options"].__setitem__("time", "sideways"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_crafted_replay_log_is_refused(tmp_path, edit):
    log = _recorded(tmp_path)
    _rewrite(log, EDITS[edit])
    r = emu("run", "--replay", str(log), STDIO, "arg1", cwd=tmp_path)
    assert r.returncode == 2, (edit, r.returncode, r.stderr)
    assert b"the log is damaged" in r.stderr and b"internal error" not in r.stderr, r.stderr


def test_record_keeps_host_secrets_out_of_the_log(tmp_path):
    log = tmp_path / "run.log"
    env = dict(os.environ, AWS_SECRET_ACCESS_KEY="hunter2-secret", PYTHONPATH=EMU_PATH)
    r = subprocess.run([sys.executable, "-m", "emu", "run", "--record", str(log), "--env", "MINE=given",
                        "/usr/bin/env" if os.path.exists("/usr/bin/env") else STDIO], capture_output=True, env=env,
                       cwd=tmp_path, timeout=120)
    assert r.returncode in (0, 3), r.stderr
    data = log.read_bytes()
    assert b"hunter2-secret" not in data
    assert b"MINE" in data
    if os.path.exists("/usr/bin/env"):
        assert b"MINE=given" in r.stdout and b"hunter2" not in r.stdout
        # and the replay gives the program the same environment
        r2 = subprocess.run([sys.executable, "-m", "emu", "run", "--replay", str(log), "/usr/bin/env"],
                            capture_output=True, env=env, cwd=tmp_path, timeout=120)
        assert r2.returncode == 0 and r2.stdout == r.stdout, r2.stderr


def test_mmap_of_a_huge_sparse_file_is_not_read_whole(tmp_path):
    """2 GiB of file mapped: only the pages touched are read (the emulator's
    peak memory stays far below the file's size)."""
    f = tmp_path / "sparse"
    with open(f, "wb") as h:
        h.truncate(2 << 30)
        h.seek((2 << 30) - 1)
        h.write(b"\x07")
    prog = os.path.join(ROOT, "guests", "linux", "bin", "sparse_map.glibc")
    wrapper = ("import resource, subprocess, sys\n"
               "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
               "sys.stdout.write(r.stdout.decode() + 'rss %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(r.returncode)\n")
    r = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "emu", "run", prog, str(f)],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=EMU_PATH))
    assert r.returncode == 0, r.stderr
    assert "size 2147483648 sum 7" in r.stdout
    rss_kib = int(r.stdout.split("rss ")[1])
    assert rss_kib < 700 << 10, rss_kib


def test_out_of_range_syscall_arguments_get_linux_errnos():
    """guests/linux/bad_args.c: each out-of-range argument is the errno Linux
    gives (recorded, and compared with a native run on x86-64 Linux)."""
    prog = os.path.join(ROOT, "guests", "linux", "bin", "bad_args.glibc")
    with open(os.path.join(ROOT, "guests", "linux", "expected", "bad_args.glibc.out"), "rb") as f:
        expected = f.read()
    r = emu("run", prog)
    assert r.returncode == 0 and r.stdout == expected, r.stdout.decode() + r.stderr.decode()
    if NATIVE and os.geteuid() == 0:          # (setgroups answers EPERM first without root)
        n = subprocess.run([prog], capture_output=True, timeout=60)
        assert n.stdout == expected


@pytest.mark.parametrize("case", ["huge e_phoff", "e_phoff past the end", "huge e_phnum", "bad e_phentsize",
                                  "huge p_memsz", "p_filesz past the end", "p_offset past the end"])
def test_boot_refuses_a_crafted_kernel(tmp_path, case):
    """emu boot's own ELF parser: struct.error once, now one line (exit 2)."""
    p = _crafted(tmp_path, os.path.join(ROOT, "guests", "kernel", "kernel.elf"), CASES[case])
    r = emu("boot", p, "--mem", "16M", "--timeout", "5")
    assert r.returncode == 2, (case, r.returncode, r.stderr)
    assert r.stderr.startswith(b"emu: ") and r.stderr.count(b"\n") == 1, r.stderr
