"""A program a process of the guest's tree runs cannot be opened for writing
or truncated (ETXTBSY), as on Linux: emu reads a running program's pages
from its file as they are first touched (emu/linux/process.ProgramFile), so
a writer must not change them under it. The native run is the oracle."""
import os
import platform
import shutil
import subprocess
import sys

import pytest

import emu as _emu_pkg

EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"
SCRIPT = ('(: > ./bb); echo redirect $?; cp ./copy ./bb; echo cp $?; truncate -s 0 ./bb; echo truncate $?; '
          './sh -c "echo a child runs it too"; ls -l bb | tr -s " " | cut -d" " -f5; '
          'cp ./bb ./other && : > ./other; echo another copy $?')


def _tree(where):
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox (a static shell that runs from its own file) is not installed")
    where.mkdir()
    shutil.copy(busybox, where / "bb")
    shutil.copy(busybox, where / "copy")
    os.symlink("bb", where / "sh")
    return where


def test_running_program_is_text_busy(tmp_path):
    e = _tree(tmp_path / "e")
    r = subprocess.run([sys.executable, "-m", "emu", "run", "./sh", "-c", SCRIPT], capture_output=True, cwd=e,
                       env=dict(os.environ, PYTHONPATH=EMU_PATH), timeout=300)
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    assert out.split("\n")[:3] == ["redirect 1", "cp 1", "truncate 1"], out
    assert "a child runs it too" in out and "another copy 0" in out
    assert os.path.getsize(e / "bb") == os.path.getsize(e / "copy")
    if NATIVE:
        n = _tree(tmp_path / "n")
        native = subprocess.run(["./sh", "-c", SCRIPT], capture_output=True, cwd=n, timeout=60)
        assert r.stdout == native.stdout
        assert r.stderr == native.stderr
