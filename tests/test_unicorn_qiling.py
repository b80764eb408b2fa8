"""Qiling (from PyPI) on emu.unicorn: its Linux x86-64 examples, a static
hello and a dynamic one with a rootfs made from the host's loader and libc,
give the same output as on Unicorn (perf/qiling_compare.py measures them)."""
import importlib.util
import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "perf"))

import qiling_compare  # noqa: E402

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("qiling") is None,
                       reason="qiling is not installed (pip install 'emu[qiling]')"),
    pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("ldd") is None,
                       reason="gcc and ldd build the example programs"),
]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    return qiling_compare.build(str(tmp_path_factory.mktemp("qiling")))


_REFERENCE = {}


@pytest.mark.parametrize("prog", ["hello_static", "hello_dynamic"])
def test_qiling_example_same_output_as_unicorn(rootfs, prog):
    if prog not in _REFERENCE:             # Unicorn's run is the same for every tier
        _REFERENCE[prog] = qiling_compare.run_one("real", rootfs, prog, sys.executable)
    real = _REFERENCE[prog]
    ours = qiling_compare.run_one("emu", rootfs, prog, sys.executable)
    assert "error" not in real, real
    assert "error" not in ours, ours
    assert ours["out"] == real["out"]
    assert ours["out"].startswith("Hello, World! argc=1 argv0=")
