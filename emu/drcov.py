"""Block coverage in DynamoRIO's drcov format (read by Lighthouse, bncov,
Cartographer): `emu run --coverage FILE`, or from Python:

    vcpu.enable_block_coverage()            # the core records each block once
    ...run...
    emu.drcov.write("out.drcov", vcpu.block_coverage(), modules)

The core keeps the set of blocks executed (core/hooks.pxi, bcov_add): start
address and size in bytes, recorded at a block's first entry. A block is
emu's translation unit: straight-line code up to a branch, 64 instructions
or a page end, entered at its first instruction (a jump into the middle of
one starts another), as DynamoRIO's basic blocks.

The file (drcov "version 2", DynamoRIO's ext/drcov/drcov.c layout): a text
header, the module table (id, base, end, entry, checksum, timestamp, path),
then "BB Table: N bbs" and N binary records of struct { uint32 start (offset
from the module base); uint16 size; uint16 module id }.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass
class Module:
    """A loaded image (or another executable range) blocks are counted in."""
    path: str
    base: int
    end: int
    entry: int = 0


_BB = struct.Struct("<IHH")


def modules_of_process(proc) -> list[Module]:
    """The modules of a Linux process (emu/linux/process.py): each named
    mapping with executable parts (the program, its interpreter, shared
    libraries), from the lowest to the highest address mapped with that name."""
    spans: dict[str, list[int]] = {}
    exe: set[str] = set()
    for v in proc.mm.vmas:
        if not v.name:
            continue
        s = spans.setdefault(v.name, [v.start, v.end])
        s[0], s[1] = min(s[0], v.start), max(s[1], v.end)
        if v.prot & 4:
            exe.add(v.name)
    return [Module(name, lo, hi) for name, (lo, hi) in sorted(spans.items(), key=lambda kv: kv[1][0])
            if name in exe]


def assign(blocks, modules: list[Module]) -> tuple[list[Module], list[tuple[int, int, int]]]:
    """(modules, [(offset, size, module id)]): blocks in no module go to
    added "[unknown]" modules, each spanning less than 4 GiB (offsets are 32 bits)."""
    mods = list(modules)
    out = []
    loose = []
    for start, size in blocks:
        for i, m in enumerate(mods):
            if m.base <= start < m.end:
                out.append((start - m.base, min(size, 0xFFFF), i))
                break
        else:
            loose.append((start, size))
    cur = None
    for start, size in sorted(loose):
        if cur is None or start + size - mods[cur].base > 0xFFFFFFFF:
            mods.append(Module("[unknown]", start, start + size))
            cur = len(mods) - 1
        m = mods[cur]
        m.end = max(m.end, start + size)
        out.append((start - m.base, min(size, 0xFFFF), cur))
    return mods, out


def dumps(blocks, modules: list[Module] | None = None) -> bytes:
    """The drcov file for blocks [(start, size)] over modules."""
    mods, recs = assign(blocks, modules or [])
    head = ["DRCOV VERSION: 2", "DRCOV FLAVOR: emu",
            "Module Table: version 2, count %d" % len(mods),
            "Columns: id, base, end, entry, checksum, timestamp, path"]
    for i, m in enumerate(mods):
        head.append("%2d, 0x%016x, 0x%016x, 0x%016x, 0x%08x, 0x%08x, %s" % (i, m.base, m.end, m.entry, 0, 0, m.path))
    head.append("BB Table: %d bbs" % len(recs))
    return ("\n".join(head) + "\n").encode() + b"".join(_BB.pack(*r) for r in recs)


def write(path: str, blocks, modules: list[Module] | None = None) -> int:
    """Write the drcov file; returns the number of blocks."""
    data = dumps(blocks, modules)
    with open(path, "wb") as f:
        f.write(data)
    return len(blocks)


def write_process(path: str, proc) -> int:
    """`emu run --coverage`: the process's blocks over its modules."""
    return write(path, proc.vcpu.block_coverage(), modules_of_process(proc))
