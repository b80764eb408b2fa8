"""unshare, setns and pivot_root answer as Linux answers an unprivileged
process (issue 20): EINVAL for unknown flags, success for what a
single-threaded process shares with no one, EPERM for namespaces and
pivot_root. The native run is the oracle (as root, the program first
becomes nobody, so both runs are unprivileged)."""
import os
import platform
import shutil
import subprocess
import sys

import pytest

import emu as _emu_pkg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = os.path.join(ROOT, "guests", "linux")
PROGRAM = os.path.join(LINUX, "bin", "namespaces.glibc")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"


def run_emu(args, cwd):
    env = dict(os.environ, PYTHONPATH=EMU_PATH)
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, cwd=cwd, env=env,
                          timeout=120)


def test_unprivileged_namespace_calls_match_native(tmp_path):
    r = run_emu([PROGRAM], cwd=tmp_path)
    if NATIVE:
        n = subprocess.run([PROGRAM], capture_output=True, cwd=tmp_path, timeout=60)
        expected, status = n.stdout, n.returncode
    else:
        with open(os.path.join(LINUX, "expected", "namespaces.glibc.out"), "rb") as f:
            expected = f.read()
        status = 0
    assert r.stdout == expected, r.stderr.decode(errors="replace")[-2000:]
    assert r.returncode == status
    assert b"unshare(CLONE_NEWNS)" in r.stdout and b"Operation not permitted" in r.stdout


def test_new_user_namespace_is_refused(tmp_path):
    """Linux may give any user a user namespace; emu has none to give: EPERM,
    as on a kernel that refuses unprivileged user namespaces."""
    r = run_emu([PROGRAM, "userns"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    assert r.stdout.split() == [b"unshare(CLONE_NEWUSER)", b"Operation", b"not", b"permitted"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="the notice is for root, whom Linux would let unshare")
def test_root_is_told_why(tmp_path):
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox (its unshare applet) is not installed")
    r = run_emu(["--strace", busybox, "unshare", "-m", "true"], cwd=tmp_path)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1
    assert "unshare(0x20000" in err and "EPERM" in err
    assert "emu: unshare is not supported (no namespaces in the guest): EPERM" in err
