#!/usr/bin/env python3
"""Build guests/fuzz/target (static glibc, -O0 so each byte comparison stays
a branch of its own; not stripped: `emu fuzz` finds parse() by its symbol).
The binary is committed; this is only needed after editing target.c."""
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    subprocess.run([shutil.which("gcc") or "cc", "-O0", "-static", "-fno-pie", "-no-pie", "-o",
                    os.path.join(HERE, "target"), os.path.join(HERE, "target.c")], check=True)
