#!/usr/bin/env python3
"""Build the fuzzing targets (both binaries are committed; this is only
needed after editing their sources):
- target: static glibc, -O0 so each byte comparison stays a branch of its
  own; not stripped: `emu fuzz` finds parse() by its symbol;
- planted.bin: a flat binary from planted.S (GNU as), for `emu fuzz FILE -o DIR`."""
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    subprocess.run([shutil.which("gcc") or "cc", "-O0", "-static", "-fno-pie", "-no-pie", "-o",
                    os.path.join(HERE, "target"), os.path.join(HERE, "target.c")], check=True)
    obj = os.path.join(HERE, "planted.o")
    subprocess.run(["as", "--64", "-o", obj, os.path.join(HERE, "planted.S")], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", obj, os.path.join(HERE, "planted.bin")], check=True)
    os.remove(obj)


if __name__ == "__main__":
    main()
