#!/usr/bin/env python3
"""Build the guest kernel: guests/kernel/kernel.elf (intermediate files,
including the user image it embeds, go to build/). Uses gcc, or `python -m ziglang cc` when gcc is missing.

    python3 guests/kernel/build.py
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "build")

CFLAGS = ["-O2", "-ffreestanding", "-fno-stack-protector", "-fno-builtin", "-nostdlib", "-mno-red-zone",
          "-mgeneral-regs-only", "-fno-asynchronous-unwind-tables", "-fno-exceptions", "-Wall", "-Wextra",
          "-Wno-unused-parameter", "-fcf-protection=none"]


def cc() -> list[str]:
    if shutil.which("gcc"):
        return ["gcc"]
    return [sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-freestanding-none"]


def run(cmd):
    print(" ".join(cmd))
    subprocess.run(cmd, check=True, cwd=HERE)


def objcopy(src, dst):
    tool = shutil.which("objcopy")
    if tool:
        run([tool, "-O", "binary", src, dst])
    else:
        run([sys.executable, "-m", "ziglang", "objcopy", "-O", "binary", src, dst])


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    c = cc()
    # user programs: position-independent code linked at USER_BASE, flattened
    run(c + CFLAGS + ["-fPIE", "-c", "user.c", "-o", "build/user.o"])
    run(c + ["-nostdlib", "-static", "-Wl,--build-id=none", "-Wl,-T,user.ld", "-Wl,-z,norelro",
             "-Wl,-z,noexecstack", "-no-pie", "build/user.o", "-o", "build/user.elf"])
    objcopy("build/user.elf", "build/user.bin")
    # the kernel: identity-mapped at 1 MiB
    run(c + CFLAGS + ["-fno-pic", "-fno-pie", "-mcmodel=small", "-c", "kernel.c", "-o", "build/kernel.o"])
    run(c + ["-c", "entry.S", "-o", "build/entry.o"])
    run(c + ["-nostdlib", "-static", "-no-pie", "-Wl,--build-id=none", "-Wl,-T,kernel.ld",
             "-Wl,-z,noexecstack", "-Wl,-z,max-page-size=4096",
             "build/entry.o", "build/kernel.o", "-o", "build/kernel.elf"])
    shutil.copyfile(os.path.join(OUT, "kernel.elf"), os.path.join(HERE, "kernel.elf"))
    print("built", os.path.join(HERE, "kernel.elf"), os.path.getsize(os.path.join(HERE, "kernel.elf")), "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
