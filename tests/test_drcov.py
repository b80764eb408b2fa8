"""`emu run --coverage FILE` (emu/drcov.py over the core's block coverage):
the file parses as drcov, and its blocks are the blocks executed, checked
against an instruction trace (a code hook on every instruction) of the same
program and against the block hook."""
import os
import struct
import subprocess
import sys

import emu
from emu import drcov
from emu.hooks import Hooks
from emu.linux.process import GuestExit, Process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `emu` subprocesses import the package this test imports, from outside the
# source tree (`python -m` there would import ./emu, built or not)
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(emu.__file__)))
TARGET = os.path.join(ROOT, "guests", "gdb", "target")


def read_drcov(data: bytes):
    """A drcov reader written from DynamoRIO's format description: header
    lines, the module table, then 8-byte block records."""
    pos = 0

    def line():
        nonlocal pos
        end = data.index(b"\n", pos)
        text = data[pos:end].decode()
        pos = end + 1
        return text

    assert line() == "DRCOV VERSION: 2"
    assert line().startswith("DRCOV FLAVOR: ")
    head = line()
    assert head.startswith("Module Table: version 2, count ")
    count = int(head.rsplit(" ", 1)[1])
    cols = [c.strip() for c in line().split(":", 1)[1].split(",")]
    assert cols == ["id", "base", "end", "entry", "checksum", "timestamp", "path"]
    modules = []
    for i in range(count):
        parts = [p.strip() for p in line().split(",", 6)]
        assert int(parts[0]) == i
        modules.append((int(parts[1], 16), int(parts[2], 16), parts[6]))
    bbs = line()
    assert bbs.startswith("BB Table: ") and bbs.endswith(" bbs")
    n = int(bbs.split()[2])
    assert len(data) - pos == 8 * n
    blocks = []
    for k in range(n):
        off, size, mod = struct.unpack_from("<IHH", data, pos + 8 * k)
        assert mod < count and size > 0
        base, end, _ = modules[mod]
        assert base + off + size <= end
        blocks.append((base + off, size))
    return modules, blocks


def guest_env():
    """The environment both runs give the guest, read at test time (the tier
    fixture sets EMU_TIER): glibc's start-up walks it, so a different
    environment runs different blocks."""
    return dict(os.environ, PYTHONPATH=EMU_PATH + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run_hooked(path, add):
    proc = Process([path], env=guest_env(), root="/", profile="transparent", time="host")
    proc.load(path)
    proc.hooks = Hooks(proc.vcpu)
    add(proc.hooks)
    try:
        proc._loop()
    except GuestExit as e:
        assert e.status == 5


def trace(path):
    """Run the program in-process twice: with a code hook on every
    instruction ({address: instruction size}), and with the block hook
    ({(block start, size)}). (Code hooks end blocks at other places: the
    instruction trace is the oracle for what ran, the block hook for how
    emu cut it into blocks.)"""
    insns, blocks = {}, set()
    run_hooked(path, lambda h: h.code(1, 0, lambda v, a, s: insns.__setitem__(a, s)))
    run_hooked(path, lambda h: h.block(lambda v, a, s: blocks.add((a, s))))
    return insns, blocks


def test_coverage_file_matches_executed_blocks(tmp_path, capfd):
    out = tmp_path / "cov.drcov"
    r = subprocess.run([sys.executable, "-m", "emu", "run", "--coverage", str(out), TARGET],
                       capture_output=True, text=True, timeout=120, cwd=os.path.dirname(ROOT), env=guest_env())
    assert r.returncode == 5 and r.stdout == "total=5 counter=3 d=7.5\n", r.stderr
    modules, blocks = read_drcov(out.read_bytes())
    assert len(blocks) == len(set(blocks)) > 100

    # the module is the program, at its ELF load address
    with open(TARGET, "rb") as f:
        image = f.read()
    phoff, = struct.unpack_from("<Q", image, 32)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    loads = [struct.unpack_from("<IIQQQQQ", image, phoff + i * phentsize) for i in range(phnum)]
    lo = min(p[3] for p in loads if p[0] == 1) & ~0xFFF
    assert modules[0][0] == lo and modules[0][2].endswith("guests/gdb/target")

    insns, hooked_blocks = trace(TARGET)
    capfd.readouterr()
    assert set(blocks) == hooked_blocks
    covered = set()
    for start, size in blocks:
        a = start
        while a < start + size:          # a block is a run of executed instructions
            assert a in insns, (hex(start), size, hex(a))
            covered.add(a)
            a += insns[a]
        assert a == start + size
    assert covered == set(insns)         # and every executed instruction is in one


def test_dumps_places_blocks_outside_modules():
    data = drcov.dumps([(0x401000, 5), (0x7FFF00001000, 3)], [drcov.Module("/bin/x", 0x400000, 0x402000)])
    modules, blocks = read_drcov(data)
    assert blocks == [(0x401000, 5), (0x7FFF00001000, 3)]
    assert [m[2] for m in modules] == ["/bin/x", "[unknown]"]
