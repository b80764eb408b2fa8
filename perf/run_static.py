#!/usr/bin/env python3
"""Run a guest program in-process under emu's Linux personality with its
output captured: the benchmark harness's way in (perf/bench.py) and the
bench guests' tests.

    python perf/run_static.py guests/bench/bin/sieve

API: run_static(path, stdout, stderr=None) -> (exit_status, vcpu)
"""
from __future__ import annotations

import os
import sys
import tempfile

try:
    import emu  # noqa: F401
except ImportError:
    # run from a source checkout with an in-place build (setup.py build_ext --inplace)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emu.linux.process import Process  # noqa: E402


def run_static(path: str, stdout=None, stderr=None, argv: list[str] | None = None):
    """Run the program at path; what it writes to fd 1 and 2 goes to the
    binary streams stdout and stderr (default: this process's). Returns the
    exit status (128 + signal if it died of one) and the vCPU, for counters."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = Process(argv or [path], stdio=(0, out.fileno(), err.fileno()))
        p.load(path)
        try:
            status = p.run()
        finally:
            p.fds.close_all()
        for f, dest in ((out, stdout or sys.stdout.buffer), (err, stderr or sys.stderr.buffer)):
            f.seek(0)
            data = f.read()
            dest.write(data)
    return status, p.vcpu


def main() -> int:
    status, vcpu = run_static(sys.argv[1])
    print("emu: %d instructions" % vcpu.icount, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
