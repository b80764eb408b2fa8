#!/usr/bin/env python3
"""Build the ISA guest programs into guests/isa/bin (committed; run after
editing a source). Dynamic against the host's glibc, so the ifunc probe
sees glibc's own selection; vecloops at -O3 -march=x86-64-v3."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = {
    "straddle": ["-O2"],
    "vsyscall": ["-O2"],
    "vecloops": ["-O3", "-march=x86-64-v3", "-lm"],
    "ifunc_probe": ["-O2"],
    "avx_signal": ["-O2", "-mavx2"],
}


def main() -> int:
    os.makedirs(os.path.join(HERE, "bin"), exist_ok=True)
    cc = shutil.which("gcc") or "cc"
    for name, flags in PROGRAMS.items():
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        out = os.path.join(HERE, "bin", name)
        libs = [f for f in flags if f.startswith("-l")]
        subprocess.run([cc] + [f for f in flags if not f.startswith("-l")] + ["-o", out,
                        os.path.join(HERE, name + ".c")] + libs + ["-ldl"], check=True)
        subprocess.run(["strip", out], check=False)
        print("built bin/%s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
