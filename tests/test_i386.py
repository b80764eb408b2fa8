"""32-bit i386 programs under `emu run`: static binaries run in compatibility
mode (core/compat32.pxi) with the int 0x80 system-call ABI (emu/linux/ia32.py)
and print the same as natively. Built with `gcc -m32 -static` at test time
(.ci/run installs gcc-multilib); skipped, saying why, where that fails."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "guests", "i386", "prog32.c")


def _emu_env():
    import emu as emu_pkg
    return dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(emu_pkg.__file__))))


@pytest.fixture(scope="module")
def prog32(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = str(tmp_path_factory.mktemp("i386") / "prog32")
    p = subprocess.run(["gcc", "-m32", "-static", "-O2", "-o", out, SRC], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("gcc -m32 -static does not work here (install gcc-multilib): %s"
                    % (p.stderr.strip().splitlines() or ["?"])[-1])
    return out


def test_static_i386_program_same_as_native(prog32):
    native = subprocess.run([prog32, "a", "b"], capture_output=True, timeout=60)
    if native.returncode != 3:
        pytest.skip("this host cannot run i386 programs natively (no IA32 emulation)")
    emu = subprocess.run([sys.executable, "-m", "emu", "run", prog32, "a", "b"], capture_output=True,
                         timeout=300, env=_emu_env())
    assert emu.returncode == native.returncode, emu.stderr
    assert emu.stdout == native.stdout
    out = emu.stdout.decode()
    assert "argc=3 sizeof(long)=4 sizeof(void*)=4" in out and "tls=42" in out and "forms: inc/dec=6" in out


def test_dynamic_i386_program_is_refused_with_one_line(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    exe = str(tmp_path / "dyn32")
    p = subprocess.run(["gcc", "-m32", "-o", exe, "-x", "c", "-"], input="int main(){return 0;}",
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("gcc -m32 does not work here (install gcc-multilib)")
    r = subprocess.run([sys.executable, "-m", "emu", "run", exe], capture_output=True, text=True, timeout=60,
                       env=_emu_env())
    assert r.returncode == 126
    assert r.stderr.strip().count("\n") == 0 and "dynamically linked i386" in r.stderr
