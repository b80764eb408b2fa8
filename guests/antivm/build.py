#!/usr/bin/env python3
"""Build guests/antivm/antivm and timecheck: freestanding static x86-64 Linux programs
(no libc, general registers only, so it runs on the integer core). The
binaries are committed beside the sources.

    python guests/antivm/build.py
"""
from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from build import COMMON_FLAGS, GCC_ONLY_FLAGS, compiler, is_gcc  # noqa: E402  (guests/build.py)


PROGRAMS = ["antivm", "timecheck", "timing", "surfaces", "families"]


def main() -> int:
    cc = compiler()
    for name in PROGRAMS:
        cmd = cc + COMMON_FLAGS + (GCC_ONLY_FLAGS if is_gcc(cc) else [])
        cmd += ["-o", os.path.join(HERE, name), os.path.join(HERE, name + ".c")]
        print(" ".join(cmd))
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
