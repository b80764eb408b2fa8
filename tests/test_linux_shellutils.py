"""Shell utilities as on Linux (issue 20): chroot inside the path gate,
real FIFOs and mknod, scheduling attributes coherent with the guest's one
CPU, task names; and a bounded sample of BusyBox's own testsuite
(perf/busybox_testsuite.py), natively against emu."""
import os
import platform
import shutil
import subprocess
import sys

import pytest

import emu as _emu_pkg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = os.path.join(ROOT, "guests", "linux")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def run_emu(args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=EMU_PATH)
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, cwd=cwd, env=env,
                          timeout=timeout)


@pytest.mark.parametrize("libc", ["glibc", "musl"])
@pytest.mark.parametrize("prog", ["chroot_jail", "fifo_sched_names"])
def test_guest_matches_native(prog, libc, tmp_path):
    """Byte-identical to a native run in an empty directory (the native run
    is the oracle; guests/linux/expected holds one made as root)."""
    binary = os.path.join(LINUX, "bin", "%s.%s" % (prog, libc))
    (tmp_path / "e").mkdir()
    r = run_emu([binary, "arg1"], cwd=tmp_path / "e")
    if NATIVE:
        (tmp_path / "n").mkdir()
        n = subprocess.run([binary, "arg1"], capture_output=True, cwd=tmp_path / "n", timeout=60)
        expected, status = n.stdout, n.returncode
    else:
        with open(os.path.join(LINUX, "expected", "%s.%s.out" % (prog, libc)), "rb") as f:
            expected = f.read()
        status = 0
    assert r.stdout == expected, r.stderr.decode(errors="replace")[-2000:]
    assert r.returncode == status, r.stderr.decode(errors="replace")[-2000:]


def _jail_tree(tmp_path):
    """R (the emulator's root) holding the program, a static shell and the
    sandbox R/box; markers in R and above it."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox (a static shell to start the guest in the sandbox) is not installed")
    r = tmp_path / "R"
    (r / "box").mkdir(parents=True)
    shutil.copy(os.path.join(LINUX, "bin", "chroot_jail.glibc"), r / "cj")
    shutil.copy(busybox, r / "busybox")
    (r / "marker").write_text("root of the emulator\n")
    (tmp_path / "marker_above").write_text("host\n")
    return r


@pytest.mark.skipif(not ROOT_USER, reason="chroot needs CAP_SYS_CHROOT (root)")
def test_chroot_escape_stays_in_root_and_sandbox(tmp_path):
    """root's classic way out of a chroot (fchdir to an older descriptor,
    `..` to the top, chroot(".")) works as on Linux, up to the emulator's
    --root and never past it; writes stay in the sandbox."""
    r = _jail_tree(tmp_path)
    p = run_emu(["--root", str(r), "--sandbox", str(r / "box"), "/busybox", "sh", "-c", "cd /box && /cj escape"],
                cwd=r / "box")
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    assert 'escaped: /marker                   -> "root of the emulator"' in out
    assert "escaped: /../marker_above          -> No such file or directory" in out
    assert "create /escaped                    -> Read-only file system" in out
    assert not (r / "escaped").exists() and not (tmp_path / "escaped").exists()


@pytest.mark.skipif(not ROOT_USER, reason="chroot needs CAP_SYS_CHROOT (root)")
def test_chroot_paths_in_sandbox(tmp_path):
    """Inside a jail in the sandbox: `..` past the root, absolute symlinks
    and an absolute path all stay in the jail; the ELF interpreter of a
    program the jail holds is looked up in the jail."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed")
    box = tmp_path / "box"
    jail = box / "jail"
    (jail / "bin").mkdir(parents=True)
    shutil.copy(busybox, jail / "bin" / "busybox")
    (jail / "etc").mkdir()
    (jail / "etc" / "where").write_text("jail\n")
    (tmp_path / "where").write_text("host\n")
    os.symlink("/etc/where", jail / "abs")
    os.symlink("../../../../../where", jail / "rel")
    p = run_emu(["--sandbox", str(box), busybox, "chroot", "jail", "/bin/busybox", "sh", "-c",
                 "/bin/busybox cat /etc/where /abs /rel /../../where; cd ../../..; /bin/busybox pwd; "
                 "/bin/busybox touch /made; /bin/busybox mknod /dev0 c 1 3 || echo mknod refused"], cwd=box)
    assert p.stdout.decode() == "jail\njail\n/\nmknod refused\n", p.stdout.decode() + p.stderr.decode()
    assert (jail / "made").exists() and not (jail / "dev0").exists()


# the tests that failed under emu before issue 20 (chroot, FIFOs, affinity),
# the applets whose tests those were
SAMPLE = "taskset mdev mkfifo diff"


def test_busybox_testsuite_sample(capsys):
    """A bounded sample of BusyBox's testsuite, the whole tree under emu:
    every test that passes natively passes under emu."""
    if not NATIVE:
        pytest.skip("runs the host's x86-64 busybox natively as the oracle")
    sys.path.insert(0, os.path.join(ROOT, "perf"))
    try:
        import busybox_testsuite as bt
    finally:
        sys.path.pop(0)
    try:
        bt.busybox_binary()
        bt.source_tree()
    except bt.SetupError as e:
        pytest.skip("BusyBox's testsuite is not available here: %s" % e)
    status = bt.main(["--applets", SAMPLE, "--timeout", "600"])
    out = capsys.readouterr().out
    assert status == 0, out
    native = [ln for ln in out.splitlines() if ln.startswith("native:")][0]
    assert "PASS 0 " not in native, out           # the sample ran


def test_process_table_last_record_holds_a_full_command_line():
    """Every record of the guest's process table, the last one too, holds its
    head and a command line cut at CMDLINE bytes inside the table (a long
    testsuite run reaches the high records)."""
    from emu.linux.ptree import CMDLINE, SLOTS, DEFAULT_SCHED, ProcessTable
    t = ProcessTable()
    argv = ["prog", "x" * 3000]
    t._write(SLOTS - 1, os.getpid(), 4242, 1, "prog", argv, DEFAULT_SCHED)
    comm, cmd = t.record(4242)
    assert comm == "prog" and len(cmd) == CMDLINE and cmd.startswith(b"prog\0xxx")
    assert t.sched(4242) == DEFAULT_SCHED
