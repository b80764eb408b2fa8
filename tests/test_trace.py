"""`emu run --trace` / `--trace-insn` and the fault report: disassembly
(iced-x86) of what ran, checked against binutils' objdump of the same
program and against the program's known control flow."""
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

import emu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(emu.__file__)))
ENV = dict(os.environ, PYTHONPATH=EMU_PATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
TARGET = os.path.join(ROOT, "guests", "gdb", "target")
CRASH = os.path.join(ROOT, "guests", "gdb", "crash")
OBJDUMP = shutil.which("objdump")
needs_objdump = pytest.mark.skipif(OBJDUMP is None, reason="objdump (binutils) is not installed")


def run(*args):
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(ROOT), env=ENV)


def objdump(path, start, stop):
    """{address: mnemonic} from objdump -d between start and stop."""
    r = subprocess.run([OBJDUMP, "-d", "-M", "intel", "--no-show-raw-insn", "--start-address=%#x" % start,
                        "--stop-address=%#x" % stop, path], capture_output=True, text=True, check=True)
    out = {}
    for ln in r.stdout.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\s+(\S+)", ln)
        if m:
            out[int(m.group(1), 16)] = m.group(2)
    return out


def file_bytes(image, va, n):
    """n bytes at virtual address va of an ELF64 image (its PT_LOAD segments)."""
    phoff, = struct.unpack_from("<Q", image, 32)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    for i in range(phnum):
        kind, _, off, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", image, phoff + phentsize * i)
        if kind == 1 and vaddr <= va and va + n <= vaddr + filesz:
            return image[off + va - vaddr:off + va - vaddr + n]
    raise AssertionError("%#x is not in the file" % va)


def symbols(path):
    r = subprocess.run(["nm", "-S", path], capture_output=True, text=True, check=True)
    out = {}
    for ln in r.stdout.splitlines():
        parts = ln.split()
        if len(parts) == 4:
            out[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    return out


@needs_objdump
def test_instruction_trace_of_main():
    syms = symbols(TARGET)
    lo = syms["square"][0]
    hi = syms["main"][0] + syms["main"][1]
    r = run("--trace-insn", "--trace-range", "%#x-%#x" % (lo, hi), TARGET)
    assert r.returncode == 5 and r.stdout == "total=5 counter=3 d=7.5\n"
    ref = objdump(TARGET, lo, hi)
    lines = [ln for ln in r.stderr.splitlines() if re.match(r"[0-9a-f]{16}  ", ln)]
    assert lines and len(lines) == len(r.stderr.splitlines())
    with open(TARGET, "rb") as f:
        image = f.read()
    seen = []
    for ln in lines:
        addr, raw, text = ln[:16], ln[18:40].strip(), ln[42:]
        a = int(addr, 16)
        assert lo <= a < hi
        assert a in ref, ln                              # an instruction boundary objdump agrees on
        assert text.split()[0] == ref[a], (ln, ref[a])   # the same mnemonic
        assert bytes.fromhex(raw) == file_bytes(image, a, len(raw) // 2), ln
        seen.append(a)
    # square runs three times, its first instruction once each
    assert seen.count(lo) == 3
    assert seen[0] == syms["main"][0] and ref[seen[-1]] == "ret"


@needs_objdump
def test_block_trace_lines_are_blocks(tmp_path):
    syms = symbols(TARGET)
    lo, size = syms["square"]
    out = tmp_path / "trace.txt"
    r = run("--trace", "--trace-range", "%#x-%#x" % (lo, lo + size), "--trace-file", str(out), TARGET)
    assert r.returncode == 5 and r.stderr == ""
    lines = out.read_text().splitlines()
    ref = objdump(TARGET, lo, lo + size)
    assert len(lines) == 3                               # one block, entered three times
    for ln in lines:
        m = re.match(r"([0-9a-f]{16})  \+(\d+)\s+(.*)$", ln)
        assert m and int(m.group(1), 16) == lo and int(m.group(2)) == size
        assert [t.split()[0] for t in m.group(3).split("; ")] == [ref[a] for a in sorted(ref)]


@needs_objdump
def test_fault_report_disassembles_the_faulting_instruction():
    r = run(CRASH)
    assert r.returncode == 139
    assert len(r.stderr.splitlines()) == 1                # one line: the signal, where and what
    m = re.search(r"^emu: \S+: Segmentation fault \(core dumped\): #PF \(address 0x10\) at (0x[0-9a-f]+): "
                  r"([0-9a-f ]+)  (\S+)", r.stderr)
    assert m, r.stderr
    a = int(m.group(1), 16)
    ref = objdump(CRASH, a, a + 16)
    assert m.group(3) == ref[a] == "mov"
    with open(CRASH, "rb") as f:
        assert bytes.fromhex(m.group(2).replace(" ", "")) in f.read()


def test_trace_range_errors():
    r = run("--trace", "--trace-range", "0x2000-0x1000", TARGET)
    assert r.returncode == 2 and "--trace-range" in r.stderr and "Traceback" not in r.stderr
