#!/usr/bin/env python3
"""Print the instruction forms the differential tests cover, with their case
counts (written by the last pytest run: see tests/conftest.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from conftest import COVERAGE_LIST  # noqa: E402

if not os.path.exists(COVERAGE_LIST):
    sys.exit("run the tests first (pytest tests), then this script")
with open(COVERAGE_LIST) as f:
    sys.stdout.write(f.read())
