"""The benchmark guests (guests/bench/) run under emu through the perf
harness's static runner (perf/run_static.py): each prints what the same
binary prints natively, and what Python computes independently from the
workload's definition (prime counts, zlib.crc32, sorted(), FNV-1a, numpy
matrix products).

The tests run the -small variants (sizes from guests/build.py's SMALL); the
full-size binaries are checked natively against recorded output lines.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

import native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "perf"))
from run_static import run_static  # noqa: E402

_spec = importlib.util.spec_from_file_location("guests_build", os.path.join(ROOT, "guests", "build.py"))
guests_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guests_build)
SMALL = guests_build.SMALL

BIN = os.path.join(ROOT, "guests", "bench", "bin")
HELLO = os.path.join(ROOT, "guests", "hello", "hello")
M64 = (1 << 64) - 1
needs_native = pytest.mark.skipif(not native.available(), reason="needs an x86-64 Linux host")


# ---- the guests' definitions, in Python ----

class XorShift64Star:
    """guests/include/rt.h's rng_next()."""

    def __init__(self, seed: int):
        self.s = seed or 0x9E3779B97F4A7C15

    def next(self) -> int:
        x = self.s
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        self.s = x
        return (x * 0x2545F4914F6CDD1D) & M64


def random_bytes(seed: int, size: int) -> bytes:
    rng = XorShift64Star(seed)
    return b"".join(rng.next().to_bytes(8, "little") for _ in range(size // 8))


def expect_sieve(N: int, REPS: int) -> str:
    comp = bytearray(N)
    for i in range(2, int(N ** 0.5) + 1):
        if not comp[i]:
            comp[i * i::i] = b"\x01" * len(range(i * i, N, i))
    primes = [i for i in range(2, N) if not comp[i]]
    return "sieve n=%d reps=%d primes=%d sum=%d total=%d\n" % (N, REPS, len(primes), sum(primes),
                                                               len(primes) * REPS)


def expect_crc32(SIZE: int, REPS: int, BITWISE: int) -> str:
    buf = random_bytes(0x1234567, SIZE)
    crc = 0
    for _ in range(REPS):
        crc = zlib.crc32(buf, crc)
    return "crc32 size=%d reps=%d crc=0x%08x head=0x%08x ok\n" % (SIZE, REPS, crc, zlib.crc32(buf[:BITWISE]))


def expect_sort(N: int, REPS: int) -> str:
    rng = XorShift64Star(0xC0FFEE)
    check = 0
    for _ in range(REPS):
        keys = sorted(rng.next() >> 32 for _ in range(N))
        for k in keys:
            check = (check * 31 + k) & M64
    return "sort n=%d reps=%d check=0x%016x sorted\n" % (N, REPS, check)


def expect_hash(SIZE: int, REPS: int) -> str:
    buf = random_bytes(0xFEEDFACE, SIZE)
    words = [int.from_bytes(buf[i:i + 8], "little") for i in range(0, SIZE, 8)]

    def mix64(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    f, m = 0xCBF29CE484222325, 0
    for _ in range(REPS):
        for b in buf:
            f = ((f ^ b) * 0x100000001B3) & M64
        h = m ^ f
        for i, w in enumerate(words):
            h = (mix64(h ^ w) + i) & M64
        m = h
    return "hash size=%d reps=%d fnv=0x%016x mix=0x%016x\n" % (SIZE, REPS, f, m)


def expect_matmul(D: int, REPS: int) -> str:
    rng = XorShift64Star(0xABCDEF)
    A = np.zeros((D, D), dtype=np.uint64)
    B = np.zeros((D, D), dtype=np.uint64)
    for i in range(D):
        for j in range(D):
            r = rng.next()
            A[i, j] = r >> 48
            B[i, j] = (r >> 16) & 0xFFFF
    ij = np.add.outer(np.arange(D), np.arange(D)).astype(np.uint64)
    for _ in range(REPS):
        C = (A @ B) & np.uint64(0xFFFFFFFF)       # uint64 arithmetic wraps mod 2^64
        A = C ^ ij
    check = 0
    for v in C.flatten().tolist():
        check = (check * 1000003 + v) & M64
    return "matmul d=%d reps=%d check=0x%016x\n" % (D, REPS, check)


def expect_nbody(STEPS: int) -> str:
    """The same double-precision operations in the same order: Python floats
    are IEEE doubles and math.sqrt is correctly rounded, like SQRTSD."""
    import math
    PI, DPY = 3.141592653589793, 365.24
    SM = 4 * PI * PI
    bodies = [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, SM],
              [4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
               1.66007664274403694e-03 * DPY, 7.69901118419740425e-03 * DPY, -6.90460016972063023e-05 * DPY,
               9.54791938424326609e-04 * SM],
              [8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
               -2.76742510726862411e-03 * DPY, 4.99852801234917238e-03 * DPY, 2.30417297573763929e-05 * DPY,
               2.85885980666130812e-04 * SM],
              [1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
               2.96460137564761618e-03 * DPY, 2.37847173959480950e-03 * DPY, -2.96589568540237556e-05 * DPY,
               4.36624404335156298e-05 * SM],
              [1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
               2.68067772490389322e-03 * DPY, 1.62824170038242295e-03 * DPY, -9.51592254519715870e-05 * DPY,
               5.15138902046611451e-05 * SM]]

    def energy():
        e = 0.0
        for i, b in enumerate(bodies):
            e += 0.5 * b[6] * (b[3] * b[3] + b[4] * b[4] + b[5] * b[5])
            for c in bodies[i + 1:]:
                dx, dy, dz = b[0] - c[0], b[1] - c[1], b[2] - c[2]
                e -= b[6] * c[6] / math.sqrt(dx * dx + dy * dy + dz * dz)
        return e

    px = py = pz = 0.0
    for b in bodies:
        px += b[3] * b[6]
        py += b[4] * b[6]
        pz += b[5] * b[6]
    bodies[0][3], bodies[0][4], bodies[0][5] = -px / SM, -py / SM, -pz / SM
    e0 = energy()
    dt = 0.01
    for _ in range(STEPS):
        for i, b in enumerate(bodies):
            for c in bodies[i + 1:]:
                dx, dy, dz = b[0] - c[0], b[1] - c[1], b[2] - c[2]
                d2 = dx * dx + dy * dy + dz * dz
                mag = dt / (d2 * math.sqrt(d2))
                b[3] -= dx * c[6] * mag
                b[4] -= dy * c[6] * mag
                b[5] -= dz * c[6] * mag
                c[3] += dx * b[6] * mag
                c[4] += dy * b[6] * mag
                c[5] += dz * b[6] * mag
        for b in bodies:
            b[0] += dt * b[3]
            b[1] += dt * b[4]
            b[2] += dt * b[5]
    e1 = energy()
    return "nbody steps=%d e0=-0.%d e1=-0.%d\n" % (STEPS, int(-e0 * 1e12), int(-e1 * 1e12))


EXPECT = {"sieve": expect_sieve, "crc32": expect_crc32, "sort": expect_sort,
          "hash": expect_hash, "matmul": expect_matmul, "nbody": expect_nbody}

# what the full-size binaries print (perf/bench.py's workloads)
FULL = {
    "sieve": "sieve n=2000000 reps=8 primes=148933 sum=142913828922 total=1191464\n",
    "crc32": "crc32 size=1048576 reps=24 crc=0x2ffee797 head=0xc51b574e ok\n",
    "sort": "sort n=150000 reps=6 check=0x86868529326d2703 sorted\n",
    "hash": "hash size=1048576 reps=24 fnv=0x448aa37e34597bf5 mix=0x286e6a31fa85b430\n",
    "matmul": "matmul d=160 reps=8 check=0xee3576d66659c0b1\n",
    "nbody": "nbody steps=300000 e0=-0.169075163828 e1=-0.169087839994\n",
}


def run_emu(path: str, max_insns: int = 200_000_000):
    out = io.BytesIO()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status, vcpu = run_static(path, out, out)
    msg = err.getvalue().strip()
    if msg:
        print(msg)      # e.g. the instruction behind a #UD, shown on failure
    return status, out.getvalue(), vcpu


def run_native(path: str):
    p = subprocess.run([path], stdout=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout


# ---- tests ----

def test_hello():
    status, out, vcpu = run_emu(HELLO)
    assert (status, out) == (0, b"Hello from emu!\n")
    assert vcpu.counters["exits"]["SYSCALL"] == 2


def test_python_models_known_answers():
    """The Python models against textbook values."""
    assert expect_sieve(100, 1) == "sieve n=100 reps=1 primes=25 sum=1060 total=25\n"
    assert expect_sieve(2000000, 8) == FULL["sieve"]
    assert zlib.crc32(b"123456789") == 0xCBF43926       # the CRC-32 check value
    assert expect_crc32(1 << 20, 24, 65536) == FULL["crc32"]
    assert expect_matmul(160, 8) == FULL["matmul"]


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_bench_guest_under_emu(name):
    path = os.path.join(BIN, name + "-small")
    expected = EXPECT[name](**SMALL[name]).encode()
    status, out, vcpu = run_emu(path)
    assert status == 0, out
    assert out == expected
    assert vcpu.icount > 100_000
    c = vcpu.counters
    if c["tier"] == "interp":
        assert c["block_cache_hits"] > c["block_cache_misses"]
    else:
        # compiled blocks jump to each other without the block cache: most
        # instructions retire in compiled code
        assert c["jit"]["instructions_native"] > 0.9 * vcpu.icount
    if native.available():
        assert run_native(path) == (0, expected)


@needs_native
@pytest.mark.parametrize("name", sorted(EXPECT))
def test_small_binaries_native(name):
    """The Python models agree with the -small binaries run natively."""
    expected = EXPECT[name](**SMALL[name]).encode()
    assert run_native(os.path.join(BIN, name + "-small")) == (0, expected)


@needs_native
@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_binaries_native(name):
    """The committed full-size binaries print the recorded lines."""
    assert run_native(os.path.join(BIN, name)) == (0, FULL[name].encode())


@needs_native
def test_hello_native():
    assert run_native(HELLO) == (0, b"Hello from emu!\n")


# ---- the runner itself, on hand-made executables ----

def make_elf(code: bytes, bss: int = 0, base: int = 0x400000) -> bytes:
    """A static ELF64 x86-64 executable: one RWX PT_LOAD holding the headers
    and code, with bss bytes of zeros after it; entry at the code."""
    ehsize, phsize = 64, 56
    entry = base + ehsize + phsize
    filesz = ehsize + phsize + len(code)
    eh = (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
          + (2).to_bytes(2, "little") + (62).to_bytes(2, "little") + (1).to_bytes(4, "little")
          + entry.to_bytes(8, "little") + ehsize.to_bytes(8, "little") + (0).to_bytes(8, "little")
          + (0).to_bytes(4, "little") + ehsize.to_bytes(2, "little") + phsize.to_bytes(2, "little")
          + (1).to_bytes(2, "little") + (64).to_bytes(2, "little") + (0).to_bytes(2, "little")
          + (0).to_bytes(2, "little"))
    ph = ((1).to_bytes(4, "little") + (7).to_bytes(4, "little") + (0).to_bytes(8, "little")
          + base.to_bytes(8, "little") + base.to_bytes(8, "little")
          + filesz.to_bytes(8, "little") + (filesz + bss).to_bytes(8, "little")
          + (0x1000).to_bytes(8, "little"))
    return eh + ph + code


def run_code(tmp_path, code: bytes, bss: int = 0):
    path = tmp_path / "guest"
    path.write_bytes(make_elf(code, bss))
    path.chmod(0o755)                # a program needs an execute bit (EACCES otherwise, as on Linux)
    out = io.BytesIO()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status, vcpu = run_static(str(path), out, out)
    return status, out.getvalue(), err.getvalue(), vcpu


ENTRY = 0x400000 + 64 + 56


def test_runner_write_exit_status_and_bss(tmp_path):
    msg = b"hi!\n"
    code = bytearray()
    code += b"\x8b\x04\x25" + (ENTRY + 0x800).to_bytes(4, "little")     # mov eax, [bss + 0x800]
    code += b"\x85\xc0\x75\x30"                                         # test eax,eax; jnz fail
    code += b"\xbf\x01\x00\x00\x00"                                     # mov edi, 1
    code += b"\xbe" + (ENTRY + 64).to_bytes(4, "little")                # mov esi, msg
    code += b"\xba" + len(msg).to_bytes(4, "little")                    # mov edx, len
    code += b"\xb8\x01\x00\x00\x00\x0f\x05"                             # write
    code += b"\x89\xc7\x83\xc7\x26"                                     # edi = eax + 38 = 42
    code += b"\xb8\xe7\x00\x00\x00\x0f\x05"                             # exit_group
    code += b"\x90" * (0x36 - len(code)) + b"\x0f\x0b"                  # fail: ud2
    code += b"\x90" * (64 - len(code)) + msg
    status, out, err, vcpu = run_code(tmp_path, bytes(code), bss=0x2000)
    assert err == "" and out == msg and status == 42
    assert vcpu.rsp % 16 == 0
