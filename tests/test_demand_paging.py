"""Page faults resolved in the core (emu/core/demand.pxi): demand-zero and
private file-backed memory populated without an exit, everything else (a
protection fault, a guard page, an address outside every range, an empty
frame pool) still an EXCEPTION exit; and under the Linux personality, a guest
taking every kind of page fault (guests/linux/pagefaults.c: demand-zero,
lazily mapped .data, copy-on-write after fork, guard pages, read-only and
unmapped memory, mprotect, MAP_SHARED and MAP_PRIVATE files) prints what it
prints natively."""
import json
import os
import platform
import struct
import subprocess
import sys

import pytest

import emu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = os.path.join(ROOT, "guests", "linux")
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"
CODE = 0x400000
STACK = 0x7FF000
HEAP = 0x10000000


def machine(code: bytes):
    m = emu.Machine(ram_size=16 << 20, cpl=0)
    m.map(CODE, 0x1000)
    m.map(STACK, 0x1000)
    m.write(CODE, code)
    m.vcpu.rip = CODE
    m.vcpu.rsp = STACK + 0x1000
    return m


def lend(m, n=64):
    frames, zero = m.frames.take(n)
    m.phys.give_frames(frames, zero)


def log_pairs(m):
    raw = m.phys.take_demand_log()
    v = struct.unpack("<%dQ" % (len(raw) // 8), raw)
    return list(zip(v[0::2], v[1::2]))


# mov rax, [HEAP+0x10]; mov qword [HEAP+0x3008], 0x55; add rax, [HEAP+0x3008]; hlt
READ_WRITE = (b"\x48\x8b\x04\x25" + struct.pack("<I", HEAP + 0x10)
              + b"\x48\xc7\x04\x25" + struct.pack("<I", HEAP + 0x3008) + struct.pack("<i", 0x55)
              + b"\x48\x03\x04\x25" + struct.pack("<I", HEAP + 0x3008) + b"\xf4")


def test_demand_zero_in_the_core():
    m = machine(READ_WRITE)
    m.vcpu.rax = 1234
    m.phys.set_demand_ranges(m.page_tables.root, [(HEAP, HEAP + 0x10000, 3, None, 0)])
    lend(m)
    ex = m.vcpu.run()
    assert ex.name == "HLT" and m.vcpu.rax == 0x55          # read zero, then the write stuck
    assert m.vcpu.counters["page_faults_in_core"] == 2 and "EXCEPTION" not in m.vcpu.counters["exits"]
    pages = log_pairs(m)
    assert [va for va, _ in pages] == [HEAP, HEAP + 0x3000]
    # the populated frames are real mappings: the API and the page tables agree
    assert m.read(HEAP + 0x3008, 8) == struct.pack("<Q", 0x55)
    assert m.vcpu.translate(HEAP + 0x3008) == pages[1][1] + 8
    assert m.page_tables.lookup(HEAP) is not None
    assert log_pairs(m) == []                                # the log was handed over


def test_recycled_frames_are_cleared_first():
    m = machine(READ_WRITE)
    frames, _ = m.frames.take(8)
    for f in frames:
        m.ram[f:f + 4096] = 0xAB                             # a frame used before
    m.phys.give_frames(frames, [False] * len(frames))
    m.phys.set_demand_ranges(m.page_tables.root, [(HEAP, HEAP + 0x10000, 3, None, 0)])
    assert m.vcpu.run().name == "HLT" and m.vcpu.rax == 0x55


def test_file_backed_private_range():
    data = bytes(range(256)) * 20                            # 5120 bytes: a page and a bit
    m = machine(b"\x48\x8b\x04\x25" + struct.pack("<I", HEAP + 0x1ff8)   # mov rax, [HEAP+0x1ff8]: past the data
                + b"\x48\x8b\x1c\x25" + struct.pack("<I", HEAP + 0x1000)  # mov rbx, [HEAP+0x1000]
                + b"\x48\x8b\x0c\x25" + struct.pack("<I", HEAP + 0x10) + b"\xf4")
    m.vcpu.rax = 1
    m.phys.set_demand_ranges(m.page_tables.root, [(HEAP, HEAP + 0x3000, 1, data, 0)])
    lend(m)
    assert m.vcpu.run().name == "HLT"
    assert m.vcpu.rax == 0                                    # beyond the file bytes: zeros
    assert m.vcpu.rbx == int.from_bytes(data[0x1000:0x1008], "little")
    assert m.vcpu.rcx == int.from_bytes(data[0x10:0x18], "little")


def test_file_read_range(tmp_path):
    """A range of file bytes given as (fd, offset, length): the core reads
    each page from the file when it is first touched (a large mapping,
    emu/linux/sys_mem.FileBytes), zeros past the length, no exit."""
    data = (bytes(range(256)) * 40)[:10000]                  # 0x2710 bytes
    f = tmp_path / "file"
    f.write_bytes(b"\xee" * 0x1000 + data)                  # the range starts at file offset 0x1000
    fd = os.open(f, os.O_RDONLY)
    try:
        m = machine(b"\x48\x8b\x04\x25" + struct.pack("<I", HEAP + 0x2ff8)   # mov rax, [HEAP+0x2ff8]: past the bytes
                    + b"\x48\x8b\x1c\x25" + struct.pack("<I", HEAP + 0x1f0c)  # mov rbx, [HEAP+0x1f0c]: the bytes end at 0x1f10
                    + b"\x48\x8b\x0c\x25" + struct.pack("<I", HEAP + 0x10) + b"\xf4")
        m.vcpu.rax = 1
        # data_off 0x800: the range's first byte is file byte 0x1800
        m.phys.set_demand_ranges(m.page_tables.root, [(HEAP, HEAP + 0x4000, 1, (fd, 0x1000, len(data)), 0x800)])
        lend(m)
        assert m.vcpu.run().name == "HLT"
    finally:
        os.close(fd)
    assert m.vcpu.rax == 0
    assert m.vcpu.rbx == int.from_bytes(data[0x270c:0x2710] + bytes(4), "little")
    assert m.vcpu.rcx == int.from_bytes(data[0x810:0x818], "little")
    assert m.vcpu.counters["page_faults_in_core"] == 3 and "EXCEPTION" not in m.vcpu.counters["exits"]
    with pytest.raises(ValueError):
        m.phys.set_demand_ranges(m.page_tables.root, [(HEAP, HEAP + 0x1000, 1, (-1, 0, 10), 0)])


@pytest.mark.parametrize("prot,code,err", [
    (1, b"\xc6\x04\x25" + struct.pack("<I", HEAP) + b"\x01", 0x2),    # write to a read-only range
    (0, b"\x8a\x04\x25" + struct.pack("<I", HEAP), 0x0),               # a guard page (PROT_NONE)
    (3, b"\x8a\x04\x25" + struct.pack("<I", HEAP + 0x10000), 0x0),     # outside every range
    (3, b"\xff\x24\x25" + struct.pack("<I", HEAP + 0x20), 0x0),        # jmp [HEAP+0x20] reads: fine...
])
def test_faults_the_core_leaves_alone(prot, code, err):
    m = machine(code + b"\xf4")
    m.phys.set_demand_ranges(m.page_tables.root, [(HEAP, HEAP + 0x10000, prot, None, 0)])
    lend(m)
    ex = m.vcpu.run()
    if prot == 3 and code[0] == 0xFF:
        # ...then the jump to 0 (the zero the page held) is a fetch fault outside the ranges
        assert (ex.name, ex.vector, ex.cr2, ex.error_code) == ("EXCEPTION", 14, 0, 0x10)
        return
    assert (ex.name, ex.vector, ex.rip, ex.error_code) == ("EXCEPTION", 14, CODE, err)
    assert m.vcpu.counters["page_faults_in_core"] == 0


def test_no_execute_range_and_empty_pool_exit():
    # fetch from a range without PROT_EXEC: the core does not populate it
    m = machine(b"\xe9" + struct.pack("<i", HEAP - (CODE + 5)))      # jmp HEAP
    m.phys.set_demand_ranges(m.page_tables.root, [(HEAP, HEAP + 0x1000, 3, None, 0)])
    lend(m)
    ex = m.vcpu.run()
    assert (ex.name, ex.vector, ex.cr2, ex.error_code) == ("EXCEPTION", 14, HEAP, 0x10)
    # no frames lent: the personality gets the fault, as before
    m = machine(READ_WRITE)
    m.phys.set_demand_ranges(m.page_tables.root, [(HEAP, HEAP + 0x10000, 3, None, 0)])
    ex = m.vcpu.run()
    assert (ex.name, ex.vector, ex.cr2) == ("EXCEPTION", 14, HEAP + 0x10)


def test_other_address_space_is_not_touched():
    """Ranges belong to one page-table root: after a CR3 switch they do not apply."""
    m = machine(READ_WRITE)
    m.phys.set_demand_ranges(m.page_tables.root + 0x1000, [(HEAP, HEAP + 0x10000, 3, None, 0)])
    lend(m)
    ex = m.vcpu.run()
    assert (ex.name, ex.vector, ex.cr2) == ("EXCEPTION", 14, HEAP + 0x10)


def test_bad_ranges_are_refused():
    m = machine(b"\xf4")
    for bad in ([(HEAP + 1, HEAP + 0x1000, 3, None, 0)], [(HEAP, HEAP, 3, None, 0)],
                [(HEAP + 0x2000, HEAP + 0x3000, 3, None, 0), (HEAP, HEAP + 0x1000, 3, None, 0)]):
        with pytest.raises(ValueError):
            m.phys.set_demand_ranges(m.page_tables.root, bad)
    with pytest.raises(ValueError):
        m.phys.give_frames([0x1001], [True])
    with pytest.raises(ValueError):
        m.phys.give_frames([16 << 20], [True])


# ---- under the Linux personality ----

def run_emu(args, cwd):
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_pagefaults_guest(libc, tmp_path):
    binary = os.path.join(LINUX, "bin", "pagefaults.%s" % libc)
    with open(os.path.join(LINUX, "expected", "pagefaults.%s.out" % libc), "rb") as f:
        expected = f.read()
    stats = tmp_path / "stats.json"
    r = run_emu(["--stats-file", str(stats), binary], cwd=tmp_path)
    assert (r.stdout, r.returncode) == (expected, 0), r.stderr.decode(errors="replace")[-2000:]
    if NATIVE:
        n = subprocess.run([binary], capture_output=True, cwd=tmp_path, timeout=60)
        assert (n.stdout, n.returncode) == (r.stdout, r.returncode)
    s = json.loads(stats.read_text())
    # the 8 MiB demand-zero region alone is 2048 pages: all of them without an exit
    assert s["page_faults_in_core"] >= 2048
    assert s["exits"].get("EXCEPTION", 0) < 40          # the deliberate faults, MAP_SHARED file pages


def test_elf_segments_are_mapped_lazily():
    """Loading maps the segments without copying or reading them: only
    touched pages are populated (pagefaults.glibc has a 256 KiB initialised
    table)."""
    from emu.linux.process import Process
    binary = os.path.join(LINUX, "bin", "pagefaults.glibc")
    p = Process([binary])
    p.load(binary)
    images = [v for v in p.mm.vmas if v.name == binary]
    mapped = sum(v.end - v.start for v in images) // 4096
    assert mapped > 64 + 100
    populated = sum(1 for page in p.mm.pages if any(v.start <= page < v.end for v in images))
    assert populated == 0
    # not copies: a program this large (over LAZY_PROGRAM) is not even read
    # whole; each segment is its file range, read by the core at first touch
    from emu.linux.process import LAZY_PROGRAM
    from emu.linux.sys_mem import FileBytes
    assert os.path.getsize(binary) >= LAZY_PROGRAM
    assert all(isinstance(v.data, FileBytes) for v in images if v.data is not None)
    assert all(p.mm._dz_eligible(v) for v in images)
