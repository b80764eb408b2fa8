"""The two execution tiers agree on random and opcode-biased instruction
streams (perf/fuzz_tiers.py runs the full campaign; this is a bounded,
fixed-seed sample)."""
import os
import sys

import pytest

import emu

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "perf"))
import fuzz_tiers  # noqa: E402

pytestmark = pytest.mark.skipif("jit" not in emu.available_tiers(),
                                reason="the native-code tier exists only on x86-64 hosts")


def test_tiers_agree_on_random_streams(tier, capsys):
    if tier != "jit":
        pytest.skip("compares the interpreter with compiled code itself: once, under the jit setting")
    counts = fuzz_tiers.fuzz(3000, seed=20261205)
    out = capsys.readouterr().out
    assert counts["streams"] == 3000 and counts["instructions"] > 20000
    assert counts["mismatches"] == 0, out
