"""A paravirtual compute accelerator for the microVM (`VM(accel=True)`).

The guest offloads dense linear algebra to the host: it writes a command
descriptor into its own RAM and the descriptor's guest-physical address to the
doorbell. The VMM checks every address and length in the descriptor against
guest RAM (the device can reach nothing else: no host memory, no MMIO, no other
VM), runs the command on the host with numpy, writes the results back through
the DMA path every device uses (`PhysMem`: translated code on those pages is
dropped, the pages are recorded dirty for snapshots and live migration), sets a
status and raises its interrupt through the I/O APIC. A descriptor that points
outside RAM, or is malformed, completes with an error status; it never faults
the host.

Register window (4 KiB at ACCEL_BASE; 32-bit registers, little-endian):

    0x00  MAGIC      r   0x4C434341 ("ACCL")
    0x04  VERSION    r   1
    0x08  CAPS       r   bit n set: opcode n is supported
    0x0C  MAX_DIM    r   largest m, n, k (and vector length) a command may use
    0x10  DOORBELL   w   low 32 bits of the descriptor's guest-physical address;
                         the write runs the command (an 8-byte write at 0x10
                         gives the whole address). r: low half of the last one
    0x14  DESC_HI    rw  high 32 bits of the descriptor address (latched)
    0x18  STATUS     r   status of the last command (below)
    0x1C  ISR        r   bit 0: a command completed; w: write 1s to clear
                         (the interrupt line drops when ISR is 0)
    0x20  COMPLETED  r   commands completed (low 32 bits)
    0x24  ERRORS     r   commands that completed with an error (low 32 bits)

Descriptor (64 bytes, in guest RAM; addresses guest-physical, strides in
elements, 0 meaning dense):

    0   u32 op          1 GEMM_I32, 2 GEMM_F32, 3 VADD_I32, 4 VADD_F32, 5 DOT_I32
    4   u32 status      written by the device (also readable at STATUS)
    8   u32 m, n, k     GEMM: C[m x n] = A[m x k] x B[k x n];  vector ops: n elements
    20  u32 lda, ldb, ldc   row strides (GEMM only)
    32  u64 a, b, c     operand addresses (DOT_I32 has no c)
    56  u64 result      DOT_I32: the sum of the int32 products, mod 2**64

GEMM_I32, VADD_I32 and DOT_I32 wrap around as C's unsigned arithmetic does
(int32 results mod 2**32); GEMM_F32 and VADD_F32 are IEEE single precision
(the summation order of GEMM_F32 is the host's).

Status: 0 OK, 2 BAD_ADDRESS (the descriptor or an operand is not inside guest
RAM, or address + length wraps), 3 BAD_OP, 4 BAD_ARGS (a zero size, a stride
below the row length), 5 TOO_BIG (a size above MAX_DIM or more than
`max_work` multiply-adds), 0xFF before any command.

Accounting (`AccelDevice.stats`, plain data, so part of `VM.get_state()`):
commands, errors, bytes read and written, multiply-adds and host seconds,
per VM. VMs that share one `AccelHost` take turns on it: one command at a
time, and when several wait, the device with the least host time used per
share goes next (stride scheduling on accelerator time), so each VM gets the
accelerator in proportion to its `shares`.
"""
from __future__ import annotations

import struct
import threading
import time

import numpy as np

ACCEL_BASE = 0xD0001000
ACCEL_SIZE = 0x1000
ACCEL_IRQ = 6
ACCEL_MAGIC = 0x4C434341
ACCEL_VERSION = 1
DESC_SIZE = 64
MAX_DIM = 1 << 16

OP_GEMM_I32, OP_GEMM_F32, OP_VADD_I32, OP_VADD_F32, OP_DOT_I32 = 1, 2, 3, 4, 5
OP_NAMES = {OP_GEMM_I32: "gemm_i32", OP_GEMM_F32: "gemm_f32", OP_VADD_I32: "vadd_i32",
            OP_VADD_F32: "vadd_f32", OP_DOT_I32: "dot_i32"}
CAPS = sum(1 << op for op in OP_NAMES)

ST_OK, ST_BAD_ADDRESS, ST_BAD_OP, ST_BAD_ARGS, ST_TOO_BIG, ST_NONE = 0, 2, 3, 4, 5, 0xFF

_DESC = struct.Struct("<IIIIIIIIQQQQ")
assert _DESC.size == DESC_SIZE

R_MAGIC, R_VERSION, R_CAPS, R_MAX_DIM = 0x00, 0x04, 0x08, 0x0C
R_DOORBELL, R_DESC_HI, R_STATUS, R_ISR, R_COMPLETED, R_ERRORS = 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24


def gemm_i32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int32 A @ B with C's wraparound (exact mod 2**32). Large products go
    through float64 BLAS on 16-bit halves: with a = ah*2**16 + al (unsigned
    halves), a*b mod 2**32 = al*bl + 2**16*(ah*bl + al*bh) mod 2**32, and every
    half-product sum is an integer below 2**53 while k <= 2**21, so exact;
    small ones use numpy's integer loop."""
    m, k = a.shape
    n = b.shape[1]
    if m * n * k < (1 << 15) or k > (1 << 21):
        return np.matmul(a, b)
    au, bu = a.view(np.uint32), b.view(np.uint32)
    al, ah = (au & 0xFFFF).astype(np.float64), (au >> 16).astype(np.float64)
    bl, bh = (bu & 0xFFFF).astype(np.float64), (bu >> 16).astype(np.float64)
    low = (al @ bl).astype(np.uint64)
    mid = (ah @ bl).astype(np.uint64) + (al @ bh).astype(np.uint64)
    return ((low + (mid << np.uint64(16))) & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.int32)


class CommandError(Exception):
    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status = status


class AccelHost:
    """The host accelerator several VMs' devices share: one command runs at a
    time; among the devices waiting, the one with the lowest pass (host
    seconds used / shares, starting at the current lowest pass when a device
    first queues) goes next."""

    def __init__(self):
        self.cv = threading.Condition()
        self.busy = False
        self.waiting: list = []
        self.pass_: dict = {}            # id(device) -> pass value
        self.grants: list = []           # names of the devices served, in order (last 1000)

    def _pass(self, dev) -> float:
        p = self.pass_.get(id(dev))
        if p is None:
            p = min(self.pass_.values(), default=0.0)
            self.pass_[id(dev)] = p
        return p

    def acquire(self, dev) -> None:
        with self.cv:
            self._pass(dev)
            self.waiting.append(dev)
            while self.busy or min(self.waiting, key=lambda d: self.pass_[id(d)]) is not dev:
                self.cv.wait()
            self.waiting.remove(dev)
            self.busy = True
            self.grants.append(dev.name)
            del self.grants[:-1000]

    def release(self, dev, seconds: float) -> None:
        with self.cv:
            self.pass_[id(dev)] = self._pass(dev) + seconds / max(1, dev.shares)
            self.busy = False
            self.cv.notify_all()


def _new_stats() -> dict:
    return {"commands": 0, "errors": 0, "bytes_in": 0, "bytes_out": 0, "macs": 0, "host_seconds": 0.0,
            "by_op": {name: 0 for name in OP_NAMES.values()}}


class AccelDevice:
    """The accelerator's register window and command engine (see the module
    docstring). mem: the VM's PhysMem; irq_line(level): its I/O APIC pin."""

    def __init__(self, mem, irq_line, *, host: AccelHost | None = None, shares: int = 1,
                 max_work: int = 1 << 32, name: str = "accel"):
        self.mem = mem
        self.irq_line = irq_line
        self.host = host
        self.name = name
        self.shares = shares
        self.max_work = max_work
        self.desc_lo = 0
        self.desc_hi = 0
        self.status = ST_NONE
        self.isr = 0
        self.completed = 0
        self.n_errors = 0
        self.stats = _new_stats()

    # ---- registers ----
    def read(self, off: int, size: int) -> int:
        v = {R_MAGIC: ACCEL_MAGIC, R_VERSION: ACCEL_VERSION, R_CAPS: CAPS, R_MAX_DIM: MAX_DIM,
             R_DOORBELL: self.desc_lo, R_DESC_HI: self.desc_hi, R_STATUS: self.status, R_ISR: self.isr,
             R_COMPLETED: self.completed & 0xFFFFFFFF, R_ERRORS: self.n_errors & 0xFFFFFFFF}.get(off & ~3, 0)
        if size == 8 and off == R_DOORBELL:
            return self.desc_lo | (self.desc_hi << 32)
        return (v >> (8 * (off & 3))) & ((1 << (8 * size)) - 1) if size < 4 else v

    def mmio_read(self, off: int, size: int) -> int:
        return self.read(off, size)

    def mmio_write(self, off: int, size: int, v: int) -> None:
        self.write(off, size, v)

    def write(self, off: int, size: int, v: int) -> None:
        if off == R_DOORBELL:
            if size == 8:
                self.desc_hi = (v >> 32) & 0xFFFFFFFF
            self.desc_lo = v & 0xFFFFFFFF
            self.submit(self.desc_lo | (self.desc_hi << 32))
        elif off == R_DESC_HI:
            self.desc_hi = v & 0xFFFFFFFF
        elif off == R_ISR:
            self.isr &= ~v
            if not self.isr:
                self.irq_line(0)

    # ---- commands ----
    def submit(self, desc: int) -> int:
        """Run the command whose descriptor is at guest-physical `desc`;
        its status (also left in STATUS and in the descriptor when the
        descriptor is in RAM). Raises the completion interrupt."""
        t0 = time.perf_counter()
        if self.host is not None:
            self.host.acquire(self)
            t0 = time.perf_counter()
        st = self.stats
        try:
            try:
                status, result = self._execute(desc)
            except CommandError as e:
                status, result = e.status, None
            except (ValueError, OverflowError, MemoryError):
                status, result = ST_BAD_ARGS, None
            dt = time.perf_counter() - t0
        finally:
            if self.host is not None:
                self.host.release(self, time.perf_counter() - t0)
        self.status = status
        self.completed += 1
        st["commands"] += 1
        st["host_seconds"] += dt
        if status != ST_OK:
            self.n_errors += 1
            st["errors"] += 1
        if self._in_ram(desc, DESC_SIZE):
            self.mem.write(desc + 4, struct.pack("<I", status))
            if result is not None:
                self.mem.write(desc + 56, struct.pack("<Q", result & 0xFFFFFFFFFFFFFFFF))
        self.isr |= 1
        self.irq_line(1)
        return status

    def _in_ram(self, pa: int, n: int) -> bool:
        # guest values are u64: an address + length that wraps is not in RAM
        return 0 <= pa and 0 <= n and pa + n <= self.mem.size and pa + n < (1 << 64)

    def _check(self, pa: int, n: int, what: str) -> None:
        if not self._in_ram(pa, n):
            raise CommandError(ST_BAD_ADDRESS, "%s [%#x, +%#x) is not in guest RAM" % (what, pa, n))

    def _matrix(self, pa: int, rows: int, cols: int, ld: int, dtype, what: str) -> np.ndarray:
        """A rows x cols matrix at pa with row stride ld (elements), copied in."""
        extent = ((rows - 1) * ld + cols) * 4
        self._check(pa, extent, what)
        raw = np.frombuffer(self.mem.read(pa, extent), dtype=dtype)
        self.stats["bytes_in"] += extent
        if ld == cols:
            return raw.reshape(rows, cols)
        return np.lib.stride_tricks.as_strided(raw, (rows, cols), (ld * 4, 4))

    def _store(self, pa: int, out: np.ndarray, ld: int) -> None:
        rows, cols = out.shape
        out = np.ascontiguousarray(out)
        if ld == cols:
            self.mem.write(pa, out.tobytes())
        else:
            for r in range(rows):
                self.mem.write(pa + r * ld * 4, out[r].tobytes())
        self.stats["bytes_out"] += out.nbytes

    def _execute(self, desc: int):
        self._check(desc, DESC_SIZE, "the descriptor")
        op, _st, m, n, k, lda, ldb, ldc, a, b, c, _res = _DESC.unpack(self.mem.read(desc, DESC_SIZE))
        if op not in OP_NAMES:
            raise CommandError(ST_BAD_OP, "unknown opcode %d" % op)
        self.stats["by_op"][OP_NAMES[op]] += 1
        if op in (OP_GEMM_I32, OP_GEMM_F32):
            if not (m and n and k):
                raise CommandError(ST_BAD_ARGS, "a zero dimension")
            if max(m, n, k) > MAX_DIM or m * n * k > self.max_work:
                raise CommandError(ST_TOO_BIG, "%dx%dx%d is too big" % (m, n, k))
            lda, ldb, ldc = lda or k, ldb or n, ldc or n
            if lda < k or ldb < n or ldc < n:
                raise CommandError(ST_BAD_ARGS, "a row stride below the row length")
            # every operand is checked before anything is computed or written
            self._check(c, ((m - 1) * ldc + n) * 4, "C")
            dt = np.dtype("<i4") if op == OP_GEMM_I32 else np.dtype("<f4")
            A = self._matrix(a, m, k, lda, dt, "A")
            B = self._matrix(b, k, n, ldb, dt, "B")
            with np.errstate(all="ignore"):
                C = gemm_i32(A, B) if op == OP_GEMM_I32 else np.matmul(A, B)
            self.stats["macs"] += m * n * k
            self._store(c, C.astype(dt, copy=False), ldc)
            return ST_OK, None
        # vector operations: n elements
        if not n:
            raise CommandError(ST_BAD_ARGS, "a zero length")
        if n > MAX_DIM * 64:
            raise CommandError(ST_TOO_BIG, "%d elements is too many" % n)
        nb = 4 * n
        self._check(a, nb, "a")
        self._check(b, nb, "b")
        if op != OP_DOT_I32:
            self._check(c, nb, "c")
        dt = np.dtype("<f4") if op == OP_VADD_F32 else np.dtype("<i4")
        x = np.frombuffer(self.mem.read(a, nb), dtype=dt)
        y = np.frombuffer(self.mem.read(b, nb), dtype=dt)
        self.stats["bytes_in"] += 2 * nb
        with np.errstate(all="ignore"):
            if op == OP_DOT_I32:
                self.stats["macs"] += n
                return ST_OK, int(np.dot(x.astype(np.int64), y.astype(np.int64)))
            z = x + y
        self._store(c, z.reshape(1, n), n)
        return ST_OK, None
