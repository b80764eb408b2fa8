"""`emu fuzz` (emu/fuzz.py): a function of a Linux program called once per
input from a snapshot, guided by the core's edge map. The program run
natively on the same input is the oracle for each call's result and for the
crash the fuzzer finds."""
import os
import subprocess
import sys

import numpy as np
import pytest

import emu
from emu.fuzz import FuzzTarget

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(emu.__file__)))
ENV = dict(os.environ, PYTHONPATH=EMU_PATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
TARGET = os.path.join(ROOT, "guests", "fuzz", "target")
INPUTS = [b"", b"F", b"FUZZ", b"FUQ!", b"F\0\0\0", b"FU\0\0\0\0\0", b"xFUZ!", b"FUZ?" * 100, b"FUZ!"]


def native(data):
    return subprocess.run([TARGET], input=data, capture_output=True, timeout=30).returncode


@pytest.fixture
def target():
    return FuzzTarget(TARGET, "parse", max_len=1024)


def test_each_call_matches_the_native_program(target):
    maps = {}
    for data in INPUTS + INPUTS[::-1]:            # twice, in another order: the snapshot undoes each call
        r = target.run(data)
        want = native(data)
        if want < 0:
            assert r.kind == "crash" and want == -11 and r.value == 14, (data, r)
        else:
            assert r.kind == "ok" and r.value == want, (data, r)
        cov = np.flatnonzero(target.cov).tolist()
        assert maps.setdefault(data, cov) == cov, data      # the same edges each time
    # deeper matches reach more edges
    assert len(maps[b"FUZZ"]) > len(maps[b"F\0\0\0"]) > len(maps[b""])


def test_cli_finds_the_crash(tmp_path):
    seed = tmp_path / "seed"
    seed.write_bytes(b"FUZ\0")
    crashes = tmp_path / "crashes"
    r = subprocess.run([sys.executable, "-m", "emu", "fuzz", TARGET, "--function", "parse", "--input", str(seed),
                        "--runs", "200000", "--crashes", str(crashes)], capture_output=True, text=True,
                       timeout=300, cwd=str(tmp_path), env=ENV, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stderr
    (found,) = crashes.iterdir()
    data = found.read_bytes()
    assert data[:4] == b"FUZ!" and native(data) == -11
    assert "crash (#PF at 0x" in r.stderr and str(found) in r.stderr


def test_cli_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "emu", "fuzz", TARGET, "--function", "no_such_function"],
                       capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=ENV,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "no function 'no_such_function'" in r.stderr and "Traceback" not in r.stderr
