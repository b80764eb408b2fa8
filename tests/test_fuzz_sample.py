"""A bounded sample of the robustness fuzzer (tools/hardfuzz.py) in every
run of the suite: instruction streams in user, kernel and system mode, ELF
files, snapshots, migration streams, replay logs and accelerator commands,
structure-aware mutations with fixed seeds. Any internal error, crash or
hang fails the test (the long campaign and its figures: perf/RESULTS.md)."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import hardfuzz  # noqa: E402

SAMPLE = {"insn-user": 1500, "insn-kernel": 1500, "insn-system": 1500, "elf": 40, "boot-elf": 20, "snapshot": 12,
          "migration": 20, "replay": 30, "accel": 300}


@pytest.mark.parametrize("target", sorted(SAMPLE))
def test_fuzz_sample(target, tier):
    seed = {"interp": 1, "jit": 2, "auto": 3}.get(tier, 0)      # each tier its own cases
    r = hardfuzz.run_target(target, SAMPLE[target], seed=seed, timeout=60)
    assert r["ran"] + r["refused"] == SAMPLE[target]
    assert not r["findings"], r["findings"][:5]
    if target.startswith("insn"):
        assert r["ran"] == SAMPLE[target]
