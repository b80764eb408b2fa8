"""The core cannot be wedged or crashed by a guest or a crafted state:
instructions with several MMIO accesses complete (each device access seen
once), exception storms return to the VMM (EXIT_STORM), a crafted vCPU state
is refused before the core uses it, Ctrl-C stops a running vCPU through the
Python API, and the CPU corner cases fault as the host CPU does."""
from __future__ import annotations

import os
import platform
import signal
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest

import emu
from emu import _core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = os.path.join(ROOT, "guests", "linux")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(emu.__file__)))
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"

CODE = 0x400000
DATA = 0x7F0000100000
RAM = 16 << 20
MMIO = RAM + 0x3000


class Device:
    """A memory-backed device: every access is logged, reads return its bytes."""

    def __init__(self):
        self.mem = bytearray(4096)
        self.log = []

    def answer(self, v, ex):
        off = ex.address - MMIO
        assert 0 <= off and off + ex.size <= 4096, ex
        self.log.append(("w" if ex.write else "r", off, ex.size))
        if ex.write:
            self.mem[off:off + ex.size] = (ex.value & ((1 << 8 * ex.size) - 1)).to_bytes(ex.size, "little")
            v.complete_mmio_write()
        else:
            v.complete_mmio_read(int.from_bytes(self.mem[off:off + ex.size], "little"))


def run_on_device(code: bytes, dev: Device, setup=None, max_exits=500):
    m = emu.Machine(RAM, cpl=0)
    v = m.vcpu
    m.map(CODE, 0x1000)
    m.page_tables.map(DATA, MMIO, 0x1000)
    m.write(CODE, code)
    v.rip = CODE
    v.rbx = DATA
    if setup:
        setup(m, v)
    for _ in range(max_exits):
        ex = v.run(1)
        if ex.name == "MMIO":
            dev.answer(v, ex)
            continue
        return m, v, ex
    raise AssertionError("the instruction never completed: %r" % (dev.log[-6:],))


def test_xchg_on_mmio_completes_once():
    dev = Device()
    dev.mem[0:8] = (0x1111222233334444).to_bytes(8, "little")
    m, v, ex = run_on_device(bytes.fromhex("488703"), dev,                   # xchg [rbx], rax
                             lambda m, v: setattr(v, "rax", 0xAAAABBBBCCCCDDDD))
    assert ex.name == "BUDGET" and v.rip == CODE + 3
    assert v.rax == 0x1111222233334444
    assert int.from_bytes(dev.mem[0:8], "little") == 0xAAAABBBBCCCCDDDD
    assert dev.log == [("r", 0, 8), ("w", 0, 8)]


def test_lock_xadd_on_mmio():
    dev = Device()
    dev.mem[8:12] = (40).to_bytes(4, "little")
    m, v, ex = run_on_device(bytes.fromhex("f00fc14308"), dev,                # lock xadd [rbx+8], eax
                             lambda m, v: setattr(v, "rax", 2))
    assert ex.name == "BUDGET" and v.rax == 40
    assert int.from_bytes(dev.mem[8:12], "little") == 42
    assert dev.log == [("r", 8, 4), ("w", 8, 4)]


def test_movdqu_and_cmpxchg16b_on_mmio():
    dev = Device()
    dev.mem[0:16] = bytes(range(16))
    m, v, ex = run_on_device(bytes.fromhex("f30f6f03"), dev)                  # movdqu xmm0, [rbx]
    assert ex.name == "BUDGET" and bytes(v.get_xmm(0)) == bytes(range(16))
    assert [a for a in dev.log if a[0] == "r"] and len(dev.log) == len(set(dev.log))
    dev = Device()
    dev.mem[0:16] = struct.pack("<QQ", 5, 6)

    def setup(m, v):
        v.rax, v.rdx, v.rbx, v.rcx = 5, 6, 7, 8
        v.rbx = DATA
        v.rcx = 8
        v.set_gpr(3, DATA)
    # cmpxchg16b [rsi]: equal, so RCX:RBX (8:DATA) is stored
    m, v, ex = run_on_device(bytes.fromhex("480fc70e"), dev,
                             lambda m, v: (setup(m, v), setattr(v, "rsi", DATA)))
    assert ex.name == "BUDGET" and v.rip == CODE + 4
    assert struct.unpack("<QQ", bytes(dev.mem[0:16])) == (DATA, 8)


def test_fxsave_and_fld_tbyte_on_mmio():
    dev = Device()
    m, v, ex = run_on_device(bytes.fromhex("0fae03"), dev)                    # fxsave [rbx]
    assert ex.name == "BUDGET" and v.rip == CODE + 3
    assert struct.unpack_from("<H", dev.mem, 0)[0] == 0x037F                 # FCW
    assert struct.unpack_from("<I", dev.mem, 24)[0] == 0x1F80                # MXCSR
    writes = [a for a in dev.log if a[0] == "w"]
    assert len(writes) == len(set(writes)) >= 32                             # each chunk written once
    dev = Device()
    dev.mem[0:10] = bytes.fromhex("0000000000000080ff3f")                    # 1.0 as an 80-bit value
    m, v, ex = run_on_device(bytes.fromhex("db2b"), dev)                      # fld tbyte [rbx]
    assert ex.name == "BUDGET" and v.get_st(0) == bytes.fromhex("0000000000000080ff3f")


def test_exception_storm_returns_to_the_vmm():
    """A system-mode guest whose #UD handler is itself UD2: no instruction
    ever retires, yet run() comes back (STORM) instead of spinning for ever,
    and the VMM (emu/vm/vmm.py) ends such a VM with that reason."""
    from test_system_mode import IDT, KCODE, Kernel, UCODE, gate
    k = Kernel()
    k.m.write(KCODE, bytes.fromhex("0f0b"))                 # ud2: the #UD handler faults again
    k.m.write(IDT + 6 * 16, gate(KCODE, ist=1))            # (IST: the stack never runs out)
    k.m.write(UCODE, bytes.fromhex("0f0b"))
    v = k.v
    t0 = v.icount
    ex = v.run(1 << 40)
    assert ex.name == "STORM", ex
    assert v.icount == t0
    assert v.counters["exits"]["STORM"] == 1


# ---- crafted vCPU state ----

def _state_with(field_offset: int, value: bytes) -> bytes:
    m = emu.Machine(RAM)
    st = bytearray(m.vcpu.save_state())
    head = len(_core.STATE_MAGIC) + 8
    st[head + field_offset:head + field_offset + len(value)] = value
    return bytes(st)


# offsets in struct Cpu (emu/_core.pxd): r[17], rip, rflags, lf_op, lf_sz
LF_OP, LF_SZ = 17 * 8 + 16, 17 * 8 + 20


@pytest.mark.parametrize("what,offset,value", [
    ("lazy-flags size", LF_SZ, struct.pack("<I", 0x40000000)),
    ("lazy-flags operation", LF_OP, struct.pack("<I", 999)),
])
def test_crafted_vcpu_state_is_refused(what, offset, value):
    """A large lazy-flags size once made the core read far out of bounds (a
    host segfault) through a snapshot or vmstate.receive(); now load_state
    names the field and the live state is untouched."""
    m = emu.Machine(RAM)
    v = m.vcpu
    v.rax = 1234
    with pytest.raises(ValueError, match=what):
        v.load_state(_state_with(offset, value))
    assert v.rax == 1234
    # and the same state with a sane value loads and runs
    v.load_state(_state_with(LF_SZ, struct.pack("<I", 8)))


def test_crafted_mxcsr_is_refused():
    m = emu.Machine(RAM)
    st = bytearray(m.vcpu.save_state())
    good = m.vcpu.save_state()
    m.vcpu.mxcsr = 0x1F80
    # find MXCSR in the blob by changing it through the API
    m.vcpu.mxcsr = 0x1F81
    changed = m.vcpu.save_state()
    off = next(i for i in range(len(good)) if good[i] != changed[i])
    st[off:off + 4] = struct.pack("<I", 0xFFFFFFFF)
    with pytest.raises(ValueError, match="MXCSR"):
        m.vcpu.load_state(bytes(st))


def test_crafted_state_in_a_child_cannot_crash_the_host():
    """Run the load and a guest instruction reading the flags in a child: it
    must end with a clean ValueError, not a signal."""
    code = (
        "import struct, emu\n"
        "from emu import _core\n"
        "m = emu.Machine(16 << 20)\n"
        "m.map(0x400000, 0x1000)\n"
        "m.write(0x400000, bytes.fromhex('9c'))\n"        # pushf reads the lazy flags
        "st = bytearray(m.vcpu.save_state())\n"
        "h = len(_core.STATE_MAGIC) + 8\n"
        "st[h + %d:h + %d] = struct.pack('<II', 1, 0x40000000)\n"
        "try:\n"
        "    m.vcpu.load_state(bytes(st))\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
        "m.vcpu.rip = 0x400000\n"
        "m.vcpu.rsp = 0x400800\n"
        "print(m.vcpu.run(1).name)\n" % (LF_OP, LF_OP + 8))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=EMU_PATH))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("refused: vCPU state: lazy-flags size"), r.stdout


# ---- Ctrl-C through the Python API ----

def test_ctrl_c_interrupts_vcpu_run():
    """The core runs with the GIL released; SIGINT still stops it at an
    instruction boundary and run() raises KeyboardInterrupt."""
    code = (
        "import emu, sys\n"
        "m = emu.Machine(16 << 20)\n"
        "m.map(0x400000, 0x1000)\n"
        "m.write(0x400000, bytes.fromhex('48ffc0ebfb'))\n"     # 1: inc rax; jmp 1b
        "v = m.vcpu\n"
        "v.rip = 0x400000\n"
        "print('running', flush=True)\n"
        "try:\n"
        "    v.run()\n"
        "    print('returned')\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt', v.rip in (0x400000, 0x400003), v.rax > 1000, flush=True)\n"
        "    v.run(1000)\n"                                      # the vCPU runs on afterwards
        "    print('resumed', flush=True)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=EMU_PATH))
    assert p.stdout.readline().strip() == "running"
    import time
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert out.split("\n")[:2] == ["KeyboardInterrupt True True", "resumed"], out + err
    assert p.returncode == 0


# ---- CPU corner cases against the host CPU ----

def _emu_run(args, **kw):
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True,
                          env=dict(os.environ, PYTHONPATH=EMU_PATH), timeout=300, **kw)


def test_cpu_corner_cases_match_the_host():
    """Branches to non-canonical addresses fault at the branch with nothing
    pushed or popped, non-canonical accesses through SS are #SS (SIGBUS),
    over-long encodings #GP, MOV from CS/SS read 0x33/0x2b."""
    binary = os.path.join(LINUX, "bin", "cpu_corners.glibc")
    with open(os.path.join(LINUX, "expected", "cpu_corners.glibc.out"), "rb") as f:
        expected = f.read()
    r = _emu_run([binary])
    assert r.stdout == expected, r.stdout.decode() + r.stderr.decode()
    if NATIVE:
        n = subprocess.run([binary], capture_output=True, timeout=60)
        assert n.stdout == expected


# instruction encodings of 15 and 16 bytes (12 to 14 prefixes before every
# one- and two-byte opcode); the few that differ for reasons other than
# length (hint NOPs, SYSENTER/SYSEXIT, 16-bit RET, INT n's reported RIP,
# VEX after a prefix) are left out
_NOT_LENGTH = {"0f0d", "0f34", "0f35", "c2", "cd", "c5", "c4"}


def _overlong_lines():
    out = []
    for pre in (12, 13, 14):
        for opc in range(256):
            for op in ("0f%02x" % opc, "%02x" % opc):
                if op in _NOT_LENGTH or op == "0f" or op in ("66", "67", "f0", "f2", "f3", "26", "2e", "36",
                                                              "3e", "64", "65") or op.startswith("4") and len(op) == 2:
                    continue
                out.append("66" * pre + op + "c0")
    return out


@pytest.mark.skipif(not NATIVE, reason="the host CPU is the oracle: needs x86-64 Linux")
def test_overlong_encodings_fault_as_on_the_host():
    probe = os.path.join(LINUX, "bin", "faultprobe.glibc")
    data = ("\n".join(_overlong_lines()) + "\n").encode()
    native = subprocess.run([probe], input=data, capture_output=True, timeout=120).stdout.decode().splitlines()
    got = _emu_run([probe], input=data).stdout.decode().splitlines()
    lines = _overlong_lines()
    diff = [(lines[i], native[i], got[i] if i < len(got) else None) for i in range(len(lines))
            if i >= len(got) or got[i] != native[i]]
    assert not diff, diff[:10]
