"""Real programs for the modern ISA (guests/isa, built by guests/isa/build.py
against the host's glibc): loops GCC vectorised at -O3 -march=x86-64-v3 give
the native output; glibc's ifunc resolvers pick AVX2 string functions under
--cpu x86-64-v3 and SSE2 ones under x86-64; YMM registers survive a signal
handler; and the three bugs of issue 18: a translation outliving mprotect
for a page-straddling instruction, the legacy vsyscall page, (16-bit SHRD:
test_diff_shift.py)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import native

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "..", "guests", "isa", "bin")
LDSO = "/lib64/ld-linux-x86-64.so.2"

pytestmark = pytest.mark.skipif(not (native.available() and os.path.exists(LDSO)),
                                reason="needs an x86-64 Linux host with glibc")


def emu(*args, cpu=None):
    cmd = [sys.executable, "-m", "emu", "run"] + (["--cpu", cpu] if cpu else []) + list(args)
    return subprocess.run(cmd, capture_output=True, timeout=300)


def host(*args):
    return subprocess.run(list(args), capture_output=True, timeout=60)


@pytest.mark.skipif(not native.has_avx(), reason="the host must run x86-64-v3 code")
@pytest.mark.parametrize("cpu", [None, "x86-64-v3"])
def test_vectorised_loops_match_native(cpu):
    prog = os.path.join(BIN, "vecloops")
    want = host(prog)
    got = emu(prog, cpu=cpu)
    assert want.returncode == 0 and b"checksum" in want.stdout
    assert got.returncode == 0 and got.stdout == want.stdout, got.stderr.decode()


def test_x86_64_v3_program_needs_the_model():
    """Under --cpu x86-64-v2 the AVX2 program dies of SIGILL at its first VEX instruction."""
    got = emu(os.path.join(BIN, "vecloops"), cpu="x86-64-v2")
    assert got.returncode == 128 + 4, (got.returncode, got.stderr)


def _uses_ymm(lib: str, off: int) -> tuple[bool, bool]:
    """(uses YMM registers, uses any VEX/EVEX vector instruction) in the first
    40 instructions of the function at file offset off of lib."""
    import iced_x86 as iced
    from elftools.elf.elffile import ELFFile
    with open(lib, "rb") as f:
        elf = ELFFile(f)
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= off < seg["p_vaddr"] + seg["p_filesz"]:
                f.seek(seg["p_offset"] + off - seg["p_vaddr"])
                code = f.read(400)
                break
    dec = iced.Decoder(64, code, ip=off)
    ymm = vex = False
    for _, ins in zip(range(40), dec):
        if ins.encoding in (iced.EncodingKind.VEX, iced.EncodingKind.EVEX):
            vex = True
        for i in range(ins.op_count):
            if ins.op_kind(i) == iced.OpKind.REGISTER and iced.Register.YMM0 <= ins.op_register(i) <= iced.Register.YMM31:
                ymm = True
    return ymm, vex


@pytest.mark.skipif(not native.has_avx(), reason="the host must run AVX2")
def test_glibc_selects_avx2_string_functions():
    pytest.importorskip("iced_x86")
    prog = os.path.join(BIN, "ifunc_probe")
    for cpu, want_ymm in (("x86-64-v3", True), ("max", True), ("x86-64-v2", False), ("x86-64", False)):
        out = emu(prog, cpu=cpu)
        assert out.returncode == 0, out.stderr
        lines = [l.split() for l in out.stdout.decode().splitlines()]
        for name, lib, off in lines:
            ymm, vex = _uses_ymm(lib, int(off, 16))
            if name in ("strlen", "memchr", "strchr"):
                assert ymm == want_ymm, (cpu, name, off)
            if not want_ymm:
                assert not vex, (cpu, name, off)


@pytest.mark.skipif(not native.has_avx(), reason="the host must run AVX2")
def test_ymm_registers_survive_a_signal_handler():
    prog = os.path.join(BIN, "avx_signal")
    want = host(prog)
    got = emu(prog)
    assert want.returncode == 0 and got.returncode == 0 and got.stdout == want.stdout, got.stdout


def test_mprotect_of_straddled_page_faults_at_the_instruction():
    """Run, translated and cached; then PROT_NONE on the second page: the fetch
    faults at the instruction (si_addr = that page), as natively."""
    prog = os.path.join(BIN, "straddle")
    want = host(prog)
    got = emu(prog)
    assert b"fault: si_addr = page2+0, rip = insn+0" in want.stdout
    assert got.returncode == 0 and got.stdout == want.stdout, got.stdout


def test_legacy_vsyscall_page():
    prog = os.path.join(BIN, "vsyscall")
    got = emu(prog)
    assert got.returncode == 0 and got.stdout == b"time ok: 1\ngettimeofday ok: 1\n", (got.stdout, got.stderr)


@pytest.mark.parametrize("cpu", ["x86-64", "x86-64-v2", "x86-64-v3", "max"])
def test_guests_run_under_every_model(cpu):
    """The Linux guests (static glibc and musl) under each CPU model."""
    lb = os.path.join(HERE, "..", "guests", "linux", "bin")
    for name in ("stdio_malloc.glibc", "stdio_malloc.musl", "floats.glibc", "floats.musl", "setjmp_signals.glibc"):
        prog = os.path.join(lb, name)
        want = host(prog)
        got = emu(prog, cpu=cpu)
        assert got.returncode == want.returncode and got.stdout == want.stdout, (cpu, name, got.stderr)


def test_ymm_state_in_snapshots_and_saved_state():
    """A snapshot/restore and save_state/load_state (migration) carry YMM0-15
    whole (the register file is part of the vCPU state)."""
    import emu as emu_mod
    m = emu_mod.Machine(1 << 22)
    v = m.vcpu
    vals = {i: bytes((i * 16 + k) & 0xFF for k in range(32)) for i in range(16)}
    for i, b in vals.items():
        v.set_ymm(i, b)
    snap = m.snapshot()
    state = v.save_state()
    for i in range(16):
        v.set_ymm(i, bytes(32))
    m.restore(snap)
    assert all(v.get_ymm(i) == vals[i] for i in range(16))
    for i in range(16):
        v.set_ymm(i, bytes(32))
    v.load_state(state)
    assert all(v.get_ymm(i) == vals[i] for i in range(16))
    img = v.xsave_image()
    assert len(img) == 832 and img[512] & 4 and img[576:592] == vals[0][16:]


@pytest.mark.skipif(not native.has_avx(), reason="the host must run AVX2")
def test_avx_program_record_and_replay(tmp_path):
    """The AVX programs replay: same output, same instruction count."""
    for name in ("avx_signal", "vecloops"):
        prog = os.path.join(BIN, name)
        log = str(tmp_path / (name + ".log"))
        rec = subprocess.run([sys.executable, "-m", "emu", "run", "--record", log, prog], capture_output=True,
                             timeout=300)
        rep = subprocess.run([sys.executable, "-m", "emu", "run", "--replay", log, prog], capture_output=True,
                             timeout=300)
        assert rec.returncode == 0 and rep.returncode == 0, rep.stderr
        assert rep.stdout == rec.stdout and b"diverged" not in rep.stderr
