#!/usr/bin/env python3
"""Build the gdb test programs: guests/gdb/target (static glibc, -g -O0,
not stripped: tests/test_gdb.py needs its debug information) and
guests/gdb/spin (freestanding, loops for ever) and guests/gdb/crash
(stores through a bad pointer). The binaries are committed;
this is only needed after editing a source."""
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    subprocess.run([shutil.which("gcc") or "cc", "-g", "-O0", "-static", "-fno-pie", "-no-pie",
                    "-o", os.path.join(HERE, "target"), os.path.join(HERE, "target.c")], check=True)
    for name in ("spin", "crash"):
        subprocess.run([shutil.which("gcc") or "cc", "-O1", "-static", "-nostdlib", "-ffreestanding", "-fno-pie",
                        "-no-pie", "-Wl,--build-id=none", "-o", os.path.join(HERE, name),
                        os.path.join(HERE, name + ".c")], check=True)
