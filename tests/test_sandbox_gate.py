"""The sandbox holds by construction (emu/linux/fs.py): every path resolved
once to a descriptor, every call that names a file, a socket or a process
through one gate. guests/linux/sandbox_escapes.c tries what a check on path
strings misses: a component swapped in a race, calls on read-only
descriptors of outside files, AF_UNIX binds and connects outside, processes
outside the guest's tree, the emulator's own /proc entries."""
import os
import socket
import subprocess
import sys

import pytest

import emu as _emu_pkg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROG = os.path.join(ROOT, "guests", "linux", "bin", "sandbox_escapes.glibc")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))


def test_no_escape_from_the_sandbox(tmp_path):
    box, out = tmp_path / "box", tmp_path / "out"
    box.mkdir()
    out.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    outside.chmod(0o644)
    before = os.stat(outside)
    host = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    host.bind(str(tmp_path / "host.sock"))
    host.setblocking(False)
    victim = subprocess.Popen(["sleep", "120"])
    nice0 = os.getpriority(os.PRIO_PROCESS, victim.pid)
    try:
        r = subprocess.run([sys.executable, "-m", "emu", "run", "--sandbox", str(box), PROG, str(box), str(out),
                            str(outside), str(tmp_path / "host.sock"), str(victim.pid)],
                           capture_output=True, text=True, cwd=tmp_path, timeout=180,
                           env=dict(os.environ, PYTHONPATH=EMU_PATH))
        nice1 = os.getpriority(os.PRIO_PROCESS, victim.pid)
    finally:
        victim.kill()
        victim.wait()
    lines = dict((ln[:44].strip(), ln[44:].strip()) for ln in r.stdout.splitlines() if len(ln) > 44)
    assert r.returncode == 0, r.stdout + r.stderr
    assert lines.pop("change a file inside") == "ok" and lines.pop("a socket inside") == "ok", r.stdout
    assert len(lines) == 21, r.stdout
    assert all(v == "blocked" for v in lines.values()), r.stdout
    assert "race tries many" in r.stdout                   # the race ran for real
    assert os.listdir(out) == []
    after = os.stat(outside)
    assert (after.st_mode, after.st_mtime_ns, after.st_size) == (before.st_mode, before.st_mtime_ns, before.st_size)
    assert outside.read_text() == "keep\n"
    with pytest.raises(BlockingIOError):
        host.recv(100)
    assert nice1 == nice0


def test_emulator_memory_is_not_the_guests_even_without_a_sandbox(tmp_path):
    """/proc/self/mem would be a write path into the emulator process: it is
    the guest's own memory (emu/linux/procmem.py), where offset 0 is unmapped
    and cat fails with EIO exactly as on Linux; auxv and smaps are the guest's,
    the others are refused."""
    if not os.path.exists("/bin/cat"):
        pytest.skip("needs the host's /bin/cat")
    r = subprocess.run([sys.executable, "-m", "emu", "run", "/bin/cat", "/proc/self/mem"],
                       capture_output=True, cwd=tmp_path, timeout=120, env=dict(os.environ, PYTHONPATH=EMU_PATH))
    assert r.returncode == 1 and r.stdout == b"" and b"Input/output error" in r.stderr, r.stderr
    for entry in ("pagemap", "syscall"):
        r = subprocess.run([sys.executable, "-m", "emu", "run", "/bin/cat", "/proc/self/" + entry],
                           capture_output=True, cwd=tmp_path, timeout=120, env=dict(os.environ, PYTHONPATH=EMU_PATH))
        assert r.returncode == 1 and b"Permission denied" in r.stderr, (entry, r.stderr)
    # auxv and smaps are the guest's own (emu/linux/procfs.py), never the emulator's:
    # the vector cat was started with (its vDSO), cat's mappings, nothing of Python's
    r = subprocess.run([sys.executable, "-m", "emu", "run", "/bin/cat", "/proc/self/auxv"],
                       capture_output=True, cwd=tmp_path, timeout=120, env=dict(os.environ, PYTHONPATH=EMU_PATH))
    words = [int.from_bytes(r.stdout[i:i + 8], "little") for i in range(0, len(r.stdout), 8)]
    aux = dict(zip(words[::2], words[1::2]))
    from emu.linux.elf import INTERP_BASE
    assert r.returncode == 0 and aux[33] == INTERP_BASE - 4096 and aux[7] == INTERP_BASE, aux
    r = subprocess.run([sys.executable, "-m", "emu", "run", "/bin/cat", "/proc/self/smaps"],
                       capture_output=True, cwd=tmp_path, timeout=120, env=dict(os.environ, PYTHONPATH=EMU_PATH))
    assert r.returncode == 0 and b"[vdso]" in r.stdout and b"/cat\n" in r.stdout and b"python" not in r.stdout
    # the guest's own virtual files still open
    r = subprocess.run([sys.executable, "-m", "emu", "run", "/bin/cat", "/proc/self/maps"], capture_output=True,
                       cwd=tmp_path, timeout=120, env=dict(os.environ, PYTHONPATH=EMU_PATH))
    assert r.returncode == 0 and b"[stack]" in r.stdout


def test_os_layer_holds_without_emus_checks(tmp_path):
    """Defence in depth (emu/linux/oslock.py): after confine(), the host
    kernel itself refuses what emu's checks would: a process that calls the
    host directly (as a bug in emu would) cannot write outside the sandbox,
    open a network socket, signal a host process or reach the host by
    ptrace-like calls; inside the sandbox it can write."""
    from emu.linux.oslock import landlock_abi
    box = tmp_path / "box"
    box.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    victim = subprocess.Popen(["sleep", "60"])
    code = r'''
import errno, os, socket, sys
from emu.linux.oslock import confine
got = confine(sys.argv[1])
print("layers", bool(got["landlock"]), bool(got["seccomp"]), got["errors"])
def attempt(name, fn):
    try:
        fn()
        print(name, "ESCAPED")
    except OSError as e:
        print(name, "blocked", errno.errorcode.get(e.errno))
attempt("write outside", lambda: os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND))
attempt("create outside", lambda: os.open(sys.argv[2] + ".new", os.O_WRONLY | os.O_CREAT))
attempt("rename outside", lambda: os.rename(sys.argv[2], sys.argv[1] + "/stolen"))
attempt("unlink outside", lambda: os.unlink(sys.argv[2]))
attempt("inet socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
attempt("signal a host process", lambda: os.kill(int(sys.argv[3]), 0))
attempt("unshare", lambda: os.unshare(os.CLONE_NEWUSER) if hasattr(os, "unshare") else (_ for _ in ()).throw(OSError(1, "")))
fd = os.open(sys.argv[1] + "/inside", os.O_WRONLY | os.O_CREAT)
os.write(fd, b"ok")
print("write inside ok")
'''
    try:
        r = subprocess.run([sys.executable, "-c", code, str(box), str(outside), str(victim.pid)], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, PYTHONPATH=EMU_PATH))
    finally:
        victim.kill()
        victim.wait()
    out = r.stdout
    assert r.returncode == 0 and "write inside ok" in out, out + r.stderr
    assert "inet socket blocked EACCES" in out and "unshare blocked EPERM" in out, out
    if landlock_abi() == 0:
        pytest.skip("no Landlock in this kernel: the file and signal rules need it (seccomp held)")
    for what in ("write outside", "create outside", "rename outside", "unlink outside"):
        assert what + " blocked" in out, out
    if landlock_abi() >= 6:
        assert "signal a host process blocked EPERM" in out, out
    assert outside.read_text() == "keep\n"
    assert "ESCAPED" not in out, out
