"""The one system-call table (emu/linux/sysent.py) and what is built on it:
--strace decoding arguments as strace(1) does (strace itself is the oracle),
dispatch checked against the table, and --stats counting the calls that
returned ENOSYS."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import emu as _emu_pkg
from emu.linux import strace, sysent
from emu.linux.syscalls import SYSCALLS

EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
PY = "/usr/bin/python3"

SCRIPT = r"""
import os, signal, socket
os.write(1, b"MARK-A\n")
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
os.write(w, b'hi\x01\x02\n"\\\x1b7' + bytes(range(40)))
os.read(r, 100)
os.set_blocking(r, True)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect('/nonexistent/sock')
except OSError:
    pass
fd = os.open('x', os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_APPEND, 0o640)
os.close(fd)
os.access('x', os.R_OK | os.W_OK)
os.stat('x')
os.unlink('x')
try:
    os.mkdir('/proc/nonexistent/x', 0o755)
except OSError:
    pass
os.kill(os.getpid(), signal.SIGUSR1)
os.write(1, b"MARK-B\n")
"""


def _between_marks(text: str) -> list:
    """The script's own calls, addresses and its pid masked (they differ run to run)."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith('write(1, "MARK-A'):
            inside = True
        if inside and not line.startswith("---"):        # strace's signal-delivery lines
            line = re.sub(r"0x[0-9a-f]+", "ADDR", line)
            line = re.sub(r"^(getpid\(\)\s+= |kill\()\d+", r"\1PID", line)
            out.append(line)
        if line.startswith('write(1, "MARK-B'):
            break
    return out


def test_strace_output_is_straces(tmp_path):
    tracer = shutil.which("strace")
    if tracer is None or not os.path.exists(PY):
        pytest.skip("needs strace(1) and /usr/bin/python3 as the oracle")
    (tmp_path / "s.py").write_text(SCRIPT)
    native_log = tmp_path / "native.txt"
    n = subprocess.run([tracer, "-o", str(native_log), PY, "-S", "s.py"], cwd=tmp_path, capture_output=True,
                       timeout=60)
    if n.returncode != 0:
        pytest.skip("strace cannot trace here (ptrace refused): %s" % n.stderr[-200:])
    e = subprocess.run([sys.executable, "-m", "emu", "run", "--strace", PY, "-S", "s.py"], cwd=tmp_path,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=EMU_PATH), timeout=120)
    assert e.returncode == 0, e.stderr[-2000:]
    want = _between_marks(native_log.read_text())
    got = _between_marks(e.stderr)
    assert len(want) >= 15 and got == want


def test_every_handler_is_the_tables():
    # registration checks the name; every argument kind has a decoder
    for nr, (name, _fn) in SYSCALLS.items():
        assert sysent.name(nr) == name
    kinds = {k for e in sysent.TABLE.values() for k in e.args}
    decoded = set(re.findall(r'kind (?:==|in) \(?"(\w+)"', open(strace.__file__).read()))
    decoded |= set(strace._CFLAGS) | {"hex"}
    for k in re.findall(r'kind in \(([^)]*)\)', open(strace.__file__).read()):
        decoded |= set(re.findall(r'"(\w+)"', k))
    assert kinds <= decoded, kinds - decoded
    # the numbers are syscall_64.tbl's: a few fixed points
    assert (sysent.number("read"), sysent.number("rseq"), sysent.number("clone3"), sysent.number("mseal")) == \
        (0, 334, 435, 462)
    assert len(sysent.TABLE) == 335 + (462 - 424 + 1)


def test_stats_counts_enosys_calls(tmp_path):
    if not os.path.exists(PY):
        pytest.skip("needs /usr/bin/python3")
    # pkey_alloc (330) the kernel has and emu does not; 600 the kernel does not have
    code = ("import ctypes; c = ctypes.CDLL(None, use_errno=True)\n"
            "r = [c.syscall(330, 0, 0) for _ in range(3)] + [c.syscall(600) for _ in range(2)]\n"
            "print(r, ctypes.get_errno())\n")
    stats = tmp_path / "stats.json"
    r = subprocess.run([sys.executable, "-m", "emu", "run", "--stats", "--stats-file", str(stats), PY, "-S", "-c",
                        code], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=EMU_PATH), timeout=120)
    assert r.returncode == 0 and r.stdout == "[-1, -1, -1, -1, -1] 38\n", r.stderr[-2000:]
    enosys = json.loads(stats.read_text())["enosys"]
    assert enosys["pkey_alloc"] == 3 and enosys["syscall_600"] == 2
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("emu: unimplemented system calls (ENOSYS): ")]
    assert len(line) == 1 and "pkey_alloc 3" in line[0] and "syscall_600 2" in line[0]
