"""The real-program suite's machinery (emu/services/suite.py; the timed runs
themselves are perf/bench_suite.py and `emu bench --suite`): inputs come from
a fixed seed, names are checked, the tables add up."""
import os
import subprocess
import sys

import pytest

from emu.services import suite


def test_inputs_are_the_same_from_the_same_seed(tmp_path):
    progs = suite.programs()
    assert len(progs) >= 8
    kinds = " ".join(p.what for p in progs)
    for word in ("compression", "database", "interpreter", "cryptography", "compiler", "text", "floating point"):
        assert word in kinds
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    suite.make_inputs(progs, str(a))
    suite.make_inputs(progs, str(b))
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b)) and len(names) >= 9
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes() and (a / n).stat().st_size > 0
    c = tmp_path / "c"
    c.mkdir()
    suite.make_inputs(progs, str(c), seed=suite.SEED + 1)
    assert (a / "text").read_bytes() != (c / "text").read_bytes()


def test_unknown_program_is_refused():
    with pytest.raises(suite.SuiteError):
        suite.run_suite(["no-such-program"])
    r = subprocess.run([sys.executable, "-m", "emu", "bench", "--suite", "--only", "no-such-program"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "no such program in the suite" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "emu", "bench"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "give a program, or --suite" in r.stderr


def test_tables_and_means():
    rows = [{"name": "a", "what": "x", "package": "p", "instructions": 10 ** 9, "emu_s": 4.0, "native_s": 0.1,
             "qemu_s": 1.0, "emu_native": 40.0, "emu_qemu": 4.0, "mips": 250.0, "translations_per_block": 1.0,
             "tlb_misses_per_1k": 0.5, "slow_lookup_share": 0.01, "page_faults": 10, "page_faults_in_core": 9,
             "syscalls": 5},
            {"name": "b", "what": "y", "package": "q", "instructions": 10 ** 9, "emu_s": 9.0, "native_s": 0.1,
             "qemu_s": 1.0, "emu_native": 90.0, "emu_qemu": 9.0, "mips": 111.0, "translations_per_block": 1.05,
             "tlb_misses_per_1k": 0.5, "slow_lookup_share": 0.01, "page_faults": 10, "page_faults_in_core": 9,
             "syscalls": 5},
            {"name": "int:x", "what": "s", "package": "-", "reference": True, "instructions": 10 ** 9, "emu_s": 3.0,
             "native_s": 0.1, "qemu_s": 1.0, "emu_native": 30.0, "emu_qemu": 3.0, "mips": 333.0,
             "translations_per_block": 1.0, "tlb_misses_per_1k": 0.1, "slow_lookup_share": 0.0, "page_faults": 1,
             "page_faults_in_core": 1, "syscalls": 1},
            {"name": "z", "what": "w", "package": "r", "skipped": "not installed"}]
    s = suite.summary(rows)
    assert s["emu_native"] == pytest.approx(60.0) and s["emu_qemu"] == pytest.approx(6.0)
    assert s["synthetic_emu_native"] == pytest.approx(30.0)
    assert s["behind_synthetic"] == {"a": pytest.approx(4 / 3), "b": pytest.approx(3.0)}
    md = suite.markdown(rows)
    assert "| **geometric mean** |" in md and "60.0x" in md and "6.00x" in md and "worst 3.00x" in md
    assert "z: skipped (not installed)" in md
