"""`emu boot --gdb`: Debian's gdb debugs emu's guest kernel
(guests/kernel/kernel.elf): registers at the entry, a breakpoint on a kernel
function, a single instruction step, memory through the kernel's page
tables, a watchpoint on a kernel variable, and the VM's end."""
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
KERNEL = os.path.join(ROOT, "guests", "kernel", "kernel.elf")
GDB = shutil.which("gdb")

SCRIPT = """set pagination off
set confirm off
info registers rip cs
break alloc_page
continue
x/2i $pc
stepi
info registers rip
x/8xb $pc
delete
watch *(long*)&cur
continue
delete
continue
"""


def file_bytes(image, va, n):
    """n bytes at virtual address va of the ELF image (its PT_LOAD segments)."""
    phoff, = struct.unpack_from("<Q", image, 32)
    phnum, = struct.unpack_from("<H", image, 56)
    for i in range(phnum):
        kind, _, off, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", image, phoff + 56 * i)
        if kind == 1 and vaddr <= va and va + n <= vaddr + filesz:
            return image[off + va - vaddr:off + va - vaddr + n]
    raise AssertionError("%#x is not in the file" % va)


def symbols():
    r = subprocess.run(["nm", KERNEL], capture_output=True, text=True, check=True)
    return {p[2]: int(p[0], 16) for p in (ln.split() for ln in r.stdout.splitlines()) if len(p) == 3}


@pytest.mark.skipif(GDB is None, reason="gdb is not installed (apt-get install gdb)")
def test_gdb_against_the_guest_kernel(tmp_path):
    script = tmp_path / "k.gdb"
    script.write_text(SCRIPT)
    p = subprocess.Popen([sys.executable, "-m", "emu", "boot", "--gdb", "0", "--mem", "64M", KERNEL],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=str(tmp_path), env=ENV)
    try:
        m = re.search(r"127\.0\.0\.1:(\d+)", p.stderr.readline().decode())
        assert m
        g = subprocess.run([GDB, "-batch", "-nx", "-ex", "target remote 127.0.0.1:%s" % m.group(1),
                            "-x", str(script), KERNEL], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    text = g.stdout
    sym = symbols()
    with open(KERNEL, "rb") as f:
        image = f.read()
    # the entry point, in the kernel's code segment
    assert re.search(r"^rip\s+0x%x\s+0x%x <_start>" % (sym["_start"], sym["_start"]), text, re.M), text
    assert re.search(r"^cs\s+0x10\s", text, re.M)
    # the breakpoint stops before alloc_page's first instruction; stepi runs exactly it
    a = sym["alloc_page"]
    assert "Breakpoint 1, 0x%016x in alloc_page ()" % a in text
    first = re.search(r"=> 0x%x <alloc_page>:\s+(\S+)" % a, text)
    second = re.search(r"^\s+0x([0-9a-f]+) <alloc_page\+(\d+)>:", text, re.M)
    assert first and second
    step_to = int(second.group(1), 16)
    assert re.search(r"^rip\s+0x%x\s+0x%x <alloc_page\+%s>" % (step_to, step_to, second.group(2)), text, re.M)
    # memory read through the guest's page tables: the kernel's own bytes (from its ELF file)
    dump = re.search(r"^0x%x <alloc_page\+\d+>:((?:\s+0x[0-9a-f]{2})+)$" % step_to, text, re.M)
    assert dump, text
    got = bytes(int(x, 16) for x in dump.group(1).split())
    assert got == file_bytes(image, step_to, 8)
    # the watchpoint: the scheduler's current-process pointer gets its first value
    w = re.search(r"Hardware watchpoint 2: \*\(long\*\)&cur\n\nOld value = 0\nNew value = (-?\d+)", text)
    assert w and int(w.group(1)) != 0, text
    assert "[Inferior 1 (Remote target) exited normally]" in text
    assert p.returncode == 0 and b"kernel: halting" in out
