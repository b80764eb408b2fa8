"""The microVM's compute accelerator (emu/vm/accel.py): the guest kernel's
offload test (results equal the CPU's, bad descriptors refused), the device
model's bounds checks and arithmetic on a bare VM, interrupts, dirty-page
records, snapshots across accelerator use, per-VM accounting and the shared
host's fair ordering."""
from __future__ import annotations

import re
import struct
import threading
import time

import numpy as np
import pytest

from emu.services import vmstate
from emu.vm import VM
from emu.vm import accel as A
from emu.vm.accel import AccelDevice, AccelHost
from emu.vm.devices import PhysMem
from test_boot import KERNEL, boot_kernel, fnv1a

MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------- what the guest computes

def _lcg(seed):
    s = seed
    while True:
        s = (s * 1664525 + 1013904223) & MASK32
        yield s


def guest_expected():
    """The guest kernel's accel_test inputs (same LCG), and the lines it must print."""
    g = _lcg(12345)
    GM, GN, GK, LDA = 64, 48, 32, 35
    a = np.array([next(g) for _ in range(GM * LDA)], dtype=np.uint32).view(np.int32).reshape(GM, LDA)[:, :GK]
    b = np.array([next(g) for _ in range(GK * GN)], dtype=np.uint32).view(np.int32).reshape(GK, GN)
    c = (a.astype(np.int64) @ b.astype(np.int64)) & MASK32          # exact, then mod 2**32
    gemm = fnv1a(c.astype(np.uint32).tobytes())
    fa = np.array([(next(g) >> 28) - 8 for _ in range(32 * 32)], dtype=np.int64).reshape(32, 32)
    fb = np.array([(next(g) >> 28) - 8 for _ in range(32 * 32)], dtype=np.int64).reshape(32, 32)
    fc = (fa @ fb).astype(np.float32)
    gemm_f = fnv1a(fc.tobytes())
    xy = [next(g) for _ in range(2000)]
    x, y = xy[0::2], xy[1::2]
    vadd = fnv1a(b"".join(struct.pack("<I", (p + q) & MASK32) for p, q in zip(x, y)))
    s32 = lambda v: v - (1 << 32) if v & 0x80000000 else v
    dot = sum(s32(p) * s32(q) for p, q in zip(x, y)) & MASK64
    return [
        "accel: compute accelerator at 0xd0001000 irq 6, ops 0x3e, max dim 65536",
        "accel: gemm i32 64x48x32 ok checksum 0x%08x" % gemm,
        None,                                  # cycles: matched by pattern
        "accel: gemm f32 32x32x32 ok checksum 0x%08x" % gemm_f,
        "accel: vadd i32 1000 ok checksum 0x%08x" % vadd,
        "accel: dot i32 1000 ok result 0x%x" % dot,
        "accel: bad descriptor (A beyond RAM): status 2 (bad address), C untouched",
        "accel: bad descriptor (C crosses the end of RAM): status 2 (bad address)",
        "accel: bad descriptor (C address + length wraps): status 2 (bad address)",
        "accel: descriptor beyond RAM: status 2 (bad address)",
        "accel: unknown command: status 3 (bad opcode)",
        "accel: 9 commands, 5 errors, 9 interrupts; all results equal the cpu's",
    ]


def test_guest_offloads_to_the_accelerator(tmp_path):
    vm, reason, lines, _disk, _dt = boot_kernel(tmp_path, accel=True)
    assert reason == "halted", lines[-5:]
    assert "cmdline: console=ttyS0 virtio_mmio.device=4K@0xd0000000:16 emu_accel=4K@0xd0001000:6" in lines
    got = [l for l in lines if l.startswith("accel:")]
    want = guest_expected()
    assert len(got) == len(want), got
    for g, w in zip(got, want):
        if w is None:
            m = re.fullmatch(r"accel: gemm i32 on the guest cpu (\d+) cycles, on the accelerator (\d+) cycles", g)
            assert m and int(m.group(1)) > 100 * int(m.group(2)), g
        else:
            assert g == w
    # the accelerator runs next to virtio-blk; the rest of the boot is what it is without it
    i = lines.index(got[0])
    assert lines[i - 1].startswith("disk: wrote and read back sector 255")
    _vm0, reason0, lines0, _d0, _ = boot_kernel(tmp_path)
    strip = lambda ls: [l for l in ls if not l.startswith(("accel:", "cmdline:", "process 16 ",
                                                             "all processes finished:"))]
    assert strip(lines) == strip(lines0) and reason0 == reason
    st = vm.accel.stats
    assert st["commands"] == 9 and st["errors"] == 5
    assert st["by_op"] == {"gemm_i32": 4, "gemm_f32": 1, "vadd_i32": 1, "vadd_f32": 0, "dot_i32": 1}
    assert st["macs"] == 64 * 48 * 32 + 32 ** 3 + 1000
    # only the good commands wrote: C (64 rows of 48), FC, Z
    assert st["bytes_out"] == 4 * (64 * 48 + 32 * 32 + 1000)
    assert st["host_seconds"] > 0


def test_boot_without_accel_has_no_device(tmp_path):
    vm, reason, lines, _d, _ = boot_kernel(tmp_path, disk=False)
    assert vm.accel is None and reason == "halted"
    assert not [l for l in lines if "accel" in l]
    assert "accel" not in vm.get_state()["devices"]


# ---------------------------------------------------------------- the device model on a bare VM

MEM = 4 << 20
DESC = 0x1000


def bare(**kw):
    kw.setdefault("accel", True)
    return VM(None, mem=MEM, **kw)


def put(vm, pa, data: bytes):
    vm.ram[pa:pa + len(data)] = np.frombuffer(data, np.uint8)


def desc(op, m=0, n=0, k=0, lda=0, ldb=0, ldc=0, a=0, b=0, c=0):
    return A._DESC.pack(op, 0xEEEEEEEE, m, n, k, lda, ldb, ldc, a & MASK64, b & MASK64, c & MASK64, 0)


def submit(vm, d: bytes, at=DESC, mmio=True):
    put(vm, at, d)
    if mmio:
        vm.accel.write(A.R_DESC_HI, 4, at >> 32)
        vm.accel.write(A.R_DOORBELL, 4, at & MASK32)
        return vm.accel.read(A.R_STATUS, 4)
    return vm.accel.submit(at)


def status_in_ram(vm, at=DESC):
    return struct.unpack("<I", vm.ram[at + 4:at + 8].tobytes())[0]


def ref_gemm_i32(a, b):
    """Pure Python: C's unsigned 32-bit arithmetic."""
    m, k, n = len(a), len(b), len(b[0])
    return [[sum(a[i][l] * b[l][j] for l in range(k)) & MASK32 for j in range(n)] for i in range(m)]


def test_registers():
    vm = bare()
    d = vm.accel
    assert d.read(A.R_MAGIC, 4) == 0x4C434341 and d.read(A.R_VERSION, 4) == 1
    assert d.read(A.R_CAPS, 4) == 0x3E and d.read(A.R_MAX_DIM, 4) == 1 << 16
    assert d.read(A.R_MAGIC, 1) == 0x41 and d.read(A.R_MAGIC + 1, 1) == 0x43
    assert d.read(A.R_STATUS, 4) == A.ST_NONE and d.read(0x800, 4) == 0
    # an 8-byte doorbell write gives the whole address (here beyond RAM: an error)
    d.write(A.R_DOORBELL, 8, (1 << 40) | 0x10)
    assert d.read(A.R_DESC_HI, 4) == 1 << 8 and d.read(A.R_DOORBELL, 8) == (1 << 40) | 0x10
    assert d.read(A.R_STATUS, 4) == A.ST_BAD_ADDRESS
    assert d.read(A.R_COMPLETED, 4) == 1 and d.read(A.R_ERRORS, 4) == 1


def test_interrupt_line_and_ack():
    levels = []
    ram = np.zeros(1 << 20, np.uint8)

    class Phys:
        def invalidate(self, pa, n):
            pass
    d = AccelDevice(PhysMem(Phys(), ram), levels.append)
    ram[DESC:DESC + 64] = np.frombuffer(desc(A.OP_VADD_I32, n=4, a=0x2000, b=0x3000, c=0x4000), np.uint8)
    d.write(A.R_DOORBELL, 4, DESC)
    assert levels == [1] and d.read(A.R_ISR, 4) == 1
    d.write(A.R_ISR, 4, 1)
    assert levels == [1, 0] and d.read(A.R_ISR, 4) == 0


def test_interrupt_through_the_io_apic():
    vm = bare()
    vm.lapic.svr = 0x1FF
    vm.ioapic.write(0, 0x10 + 2 * A.ACCEL_IRQ)
    vm.ioapic.write(0x10, 0x40)                          # vector 0x40, edge, unmasked
    assert submit(vm, desc(A.OP_VADD_I32, n=8, a=0x2000, b=0x3000, c=0x4000)) == A.ST_OK
    assert vm.lapic.irr >> 0x40 & 1
    vm.lapic.irr = 0
    vm.accel.write(A.R_ISR, 4, 1)                        # ack: line low, the next completion is an edge
    submit(vm, desc(A.OP_VADD_I32, n=8, a=0x2000, b=0x3000, c=0x4000))
    assert vm.lapic.irr >> 0x40 & 1


def test_gemm_i32_wraps_like_c():
    vm = bare()
    rng = np.random.default_rng(7)
    for (m, n, k, lda, ldb, ldc) in [(7, 5, 9, 9, 5, 5), (3, 11, 4, 6, 13, 12), (1, 1, 1, 0, 0, 0), (16, 8, 33, 40, 8, 9)]:
        a = rng.integers(0, 1 << 32, size=(m, lda or k), dtype=np.uint64).astype(np.uint32)
        b = rng.integers(0, 1 << 32, size=(k, ldb or n), dtype=np.uint64).astype(np.uint32)
        a[0, 0], b[0, 0] = 0x7FFFFFFF, 0x80000000          # edge values
        put(vm, 0x10000, a.tobytes())
        put(vm, 0x80000, b.tobytes())
        vm.ram[0x100000:0x140000] = 0xAB
        assert submit(vm, desc(A.OP_GEMM_I32, m, n, k, lda, ldb, ldc, 0x10000, 0x80000, 0x100000)) == A.ST_OK
        assert status_in_ram(vm) == A.ST_OK
        ldc_ = ldc or n
        raw = np.frombuffer(vm.ram[0x100000:0x100000 + 4 * m * ldc_].tobytes(), np.uint32).reshape(m, ldc_)
        want = ref_gemm_i32([[int(v) for v in row[:k]] for row in a], [[int(v) for v in row[:n]] for row in b])
        assert raw[:, :n].tolist() == want
        # the same through numpy with explicit int32 wraparound
        ai, bi = a[:, :k].view(np.int32), b[:, :n].view(np.int32)
        assert np.array_equal(raw[:, :n].view(np.int32), np.matmul(ai, bi, dtype=np.int32))
        assert (raw[:, n:] == 0xABABABAB).all()                       # row padding untouched
        end = 0x100000 + 4 * ((m - 1) * ldc_ + n)
        assert (vm.ram[end:0x140000] == 0xAB).all()


def test_gemm_i32_large_shapes_take_the_blas_path_exactly():
    vm = VM(None, mem=16 << 20, accel=True)
    rng = np.random.default_rng(5)
    for (m, n, k, lda) in [(96, 80, 70, 75), (40, 300, 257, 257), (200, 3, 2000, 2001)]:
        assert m * n * k >= 1 << 15
        a = rng.integers(0, 1 << 32, size=(m, lda), dtype=np.uint64).astype(np.uint32)
        b = rng.integers(0, 1 << 32, size=(k, n), dtype=np.uint64).astype(np.uint32)
        a[0, :], b[:, 0] = 0x80000000, 0xFFFFFFFF
        a[1, :], b[:, 1] = 0x7FFFFFFF, 0x7FFFFFFF
        put(vm, 0x10000, a.tobytes())
        put(vm, 0x400000, b.tobytes())
        assert submit(vm, desc(A.OP_GEMM_I32, m, n, k, lda, 0, 0, 0x10000, 0x400000, 0x800000)) == A.ST_OK
        got = np.frombuffer(vm.ram[0x800000:0x800000 + 4 * m * n].tobytes(), np.uint32).reshape(m, n)
        want = (a[:, :k].view(np.int32).astype(np.int64) @ b.view(np.int32).astype(np.int64)) & MASK32
        assert np.array_equal(got, want.astype(np.uint32))
        for i, j in [(0, 0), (1, 1), (0, 1), (m - 1, n - 1), (m // 2, n // 3)]:     # pure Python spot checks
            assert int(got[i, j]) == sum(int(a[i, l]) * int(b[l, j]) for l in range(k)) & MASK32


def test_gemm_f32_and_vectors():
    vm = bare()
    rng = np.random.default_rng(3)
    a = rng.standard_normal((20, 30)).astype(np.float32)
    b = rng.standard_normal((30, 10)).astype(np.float32)
    put(vm, 0x10000, a.tobytes())
    put(vm, 0x20000, b.tobytes())
    assert submit(vm, desc(A.OP_GEMM_F32, 20, 10, 30, 0, 0, 0, 0x10000, 0x20000, 0x30000)) == A.ST_OK
    c = np.frombuffer(vm.ram[0x30000:0x30000 + 800].tobytes(), np.float32).reshape(20, 10)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-4)
    x = rng.standard_normal(100).astype(np.float32)
    y = rng.standard_normal(100).astype(np.float32)
    put(vm, 0x40000, x.tobytes())
    put(vm, 0x41000, y.tobytes())
    assert submit(vm, desc(A.OP_VADD_F32, n=100, a=0x40000, b=0x41000, c=0x42000)) == A.ST_OK
    assert np.frombuffer(vm.ram[0x42000:0x42000 + 400].tobytes(), np.float32).tobytes() == (x + y).tobytes()
    xi = [int(v) for v in rng.integers(0, 1 << 32, 500, dtype=np.uint64)]
    yi = [int(v) for v in rng.integers(0, 1 << 32, 500, dtype=np.uint64)]
    xi[0], yi[0] = 0x80000000, 0x80000000
    put(vm, 0x50000, struct.pack("<500I", *xi))
    put(vm, 0x51000, struct.pack("<500I", *yi))
    assert submit(vm, desc(A.OP_VADD_I32, n=500, a=0x50000, b=0x51000, c=0x52000)) == A.ST_OK
    assert struct.unpack("<500I", vm.ram[0x52000:0x52000 + 2000].tobytes()) == \
        tuple((p + q) & MASK32 for p, q in zip(xi, yi))
    assert submit(vm, desc(A.OP_DOT_I32, n=500, a=0x50000, b=0x51000)) == A.ST_OK
    s32 = lambda v: v - (1 << 32) if v & 0x80000000 else v
    assert struct.unpack("<Q", vm.ram[DESC + 56:DESC + 64].tobytes())[0] == \
        sum(s32(p) * s32(q) for p, q in zip(xi, yi)) & MASK64


BAD = [
    # (name, descriptor fields, where the descriptor goes, expected status)
    ("A beyond RAM", dict(op=1, m=4, n=4, k=4, a=MEM + 0x1000, b=0x2000, c=0x3000), DESC, A.ST_BAD_ADDRESS),
    ("A crosses the end of RAM", dict(op=1, m=4, n=4, k=4, a=MEM - 32, b=0x2000, c=0x3000), DESC, A.ST_BAD_ADDRESS),
    ("A ends exactly at the end, B beyond", dict(op=1, m=4, n=4, k=4, a=MEM - 64, b=MEM, c=0x3000), DESC,
     A.ST_BAD_ADDRESS),
    ("C crosses the end of RAM", dict(op=1, m=4, n=4, k=4, a=0x2000, b=0x2000, c=MEM - 60), DESC, A.ST_BAD_ADDRESS),
    ("C address + length wraps", dict(op=1, m=4, n=4, k=4, a=0x2000, b=0x2000, c=(1 << 64) - 16), DESC,
     A.ST_BAD_ADDRESS),
    ("A address + length wraps", dict(op=2, m=4, n=4, k=4, a=(1 << 64) - 8, b=0x2000, c=0x3000), DESC,
     A.ST_BAD_ADDRESS),
    ("huge stride", dict(op=1, m=4, n=4, k=4, lda=0xFFFFFFFF, a=0x2000, b=0x2000, c=0x3000), DESC,
     A.ST_BAD_ADDRESS),
    ("vector c beyond RAM", dict(op=3, n=16, a=0x2000, b=0x2000, c=MEM), DESC, A.ST_BAD_ADDRESS),
    ("vector b wraps", dict(op=5, n=16, a=0x2000, b=(1 << 64) - 4), DESC, A.ST_BAD_ADDRESS),
    ("vector a at MMIO", dict(op=4, n=16, a=A.ACCEL_BASE, b=0x2000, c=0x3000), DESC, A.ST_BAD_ADDRESS),
    ("descriptor straddles the end", dict(op=3, n=4, a=0x2000, b=0x2000, c=0x3000), MEM - 32, A.ST_BAD_ADDRESS),
    ("zero dimension", dict(op=1, m=0, n=4, k=4, a=0x2000, b=0x2000, c=0x3000), DESC, A.ST_BAD_ARGS),
    ("zero length", dict(op=3, n=0, a=0x2000, b=0x2000, c=0x3000), DESC, A.ST_BAD_ARGS),
    ("stride below the row", dict(op=1, m=4, n=4, k=4, lda=3, a=0x2000, b=0x2000, c=0x3000), DESC, A.ST_BAD_ARGS),
    ("ldc below the row", dict(op=2, m=4, n=4, k=4, ldc=2, a=0x2000, b=0x2000, c=0x3000), DESC, A.ST_BAD_ARGS),
    ("dimension too big", dict(op=1, m=1, n=1, k=(1 << 16) + 1, a=0x2000, b=0x2000, c=0x3000), DESC, A.ST_TOO_BIG),
    ("unknown opcode", dict(op=0), DESC, A.ST_BAD_OP),
    ("unknown opcode 77", dict(op=77, n=4), DESC, A.ST_BAD_OP),
]


@pytest.mark.parametrize("mmio", [True, False])
def test_bad_descriptors_change_nothing(mmio):
    vm = bare()
    rng = np.random.default_rng(11)
    vm.ram[:] = rng.integers(0, 256, MEM, dtype=np.uint8)
    for name, f, at, want in BAD:
        d = desc(**f)
        put(vm, at, d[:min(64, MEM - at)])
        before = vm.ram.copy()
        vm.phys.take_dirty()
        st = submit(vm, d[:min(64, MEM - at)], at=at, mmio=mmio) if at + 64 <= MEM else None
        if st is None:                                  # a descriptor that does not fit in RAM
            if mmio:
                vm.accel.write(A.R_DOORBELL, 8, at)
                st = vm.accel.read(A.R_STATUS, 4)
            else:
                st = vm.accel.submit(at)
        assert st == want, name
        changed = np.nonzero(vm.ram != before)[0]
        if at + 64 <= MEM:
            # only the status word of the descriptor
            assert set(changed.tolist()) <= set(range(at + 4, at + 8)), name
            assert status_in_ram(vm, at) == want, name
        else:
            assert changed.size == 0, name
    n = len(BAD)
    assert vm.accel.stats["errors"] == n and vm.accel.stats["commands"] == n
    assert vm.accel.stats["bytes_out"] == 0
    assert vm.accel.read(A.R_ERRORS, 4) == n


def test_descriptor_outside_ram_and_max_work():
    vm = bare()
    for at in (MEM, MEM + 0x1000, (1 << 64) - 8, A.ACCEL_BASE, MEM - 63):
        before = vm.ram.copy()
        assert vm.accel.submit(at) == A.ST_BAD_ADDRESS
        assert np.array_equal(vm.ram, before)
    small = VM(None, mem=MEM, accel=True)
    small.accel.max_work = 1000
    assert submit(small, desc(A.OP_GEMM_I32, 10, 10, 11, a=0x2000, b=0x2000, c=0x3000)) == A.ST_TOO_BIG
    assert submit(small, desc(A.OP_GEMM_I32, 10, 10, 10, a=0x2000, b=0x2000, c=0x3000)) == A.ST_OK


def test_results_are_dirty_and_drop_translated_code():
    vm = bare()
    vm.phys.take_dirty()
    assert submit(vm, desc(A.OP_GEMM_I32, 64, 64, 8, a=0x10000, b=0x20000, c=0x35000)) == A.ST_OK
    dirty = set(np.frombuffer(vm.phys.take_dirty(), np.uint32).tolist())
    c_pages = set(range(0x35000 >> 12, (0x35000 + 64 * 64 * 4 - 1 >> 12) + 1))
    assert c_pages | {DESC >> 12} <= dirty
    assert not ({0x10000 >> 12, 0x20000 >> 12} & dirty)     # inputs are only read
    # code on the result page is translated, run, then overwritten by the device: the new code runs
    code = bytes([0xB8, 0x11, 0, 0, 0, 0xF4])               # mov eax, 0x11; hlt
    put(vm, 0x60000, code)
    v = vm.vcpu
    v.system_mode = False
    from emu import _core
    v.rip = 0x60000
    e = v.run(10)
    if v.rax != 0x11:
        pytest.skip("this vCPU does not run flat physical code without paging")
    put(vm, 0x61000, struct.pack("<2i", 0x22 - 0x11, 0))    # vadd: 0x11 + 0x11 in the imm32
    put(vm, 0x61100, struct.pack("<2i", 0x11, 0))
    assert submit(vm, desc(A.OP_VADD_I32, n=1, a=0x61000, b=0x61100, c=0x60001)) == A.ST_OK
    v.rip = 0x60000
    v.run(10)
    assert v.rax == 0x22


# ---------------------------------------------------------------- snapshots, accounting, sharing

STOP_AT = 1_600_000         # after the guest's int32 GEMM, before its float32 one


def test_snapshot_restore_across_accelerator_use(tmp_path):
    ref = []
    r0 = VM(KERNEL, mem="64M", accel=True, output=ref.append)
    reason0 = r0.run(timeout=60)
    out = []
    a = VM(KERNEL, mem="64M", accel=True, output=out.append)
    assert a.run(max_insns=STOP_AT) == "limit"
    head = b"".join(out)
    assert b"accel: gemm i32 64x48x32 ok" in head and b"gemm f32" not in head
    saved = a.get_state()["devices"]["accel"]
    assert saved["stats"]["commands"] == 1 and saved["completed"] == 1
    path = tmp_path / "vm.snap"
    vmstate.save(a, path)
    # the source goes on using the accelerator: the restored VM does not see it
    a.output = lambda data: None
    a.exit_reason = None
    assert a.run(timeout=60) == reason0 and a.accel.stats["commands"] == 9
    b = vmstate.restore(path, output=out.append)       # the snapshot names the device: attached
    assert b.accel is not None and b.accel.stats["commands"] == 1
    assert b.run(timeout=60) == reason0
    assert b"".join(out) == b"".join(ref) and b.vcpu.icount == r0.vcpu.icount
    assert b.accel.stats["commands"] == 9 and b.accel.stats["errors"] == 5
    assert b.accel.read(A.R_COMPLETED, 4) == 9


def test_two_vms_keep_separate_accounts():
    v1, v2 = bare(), bare()
    for _ in range(3):
        submit(v1, desc(A.OP_GEMM_I32, 8, 8, 8, a=0x2000, b=0x2000, c=0x3000))
    submit(v2, desc(A.OP_VADD_I32, n=100, a=0x2000, b=0x2000, c=0x3000))
    submit(v2, desc(A.OP_GEMM_I32, 8, 8, 8, a=MEM, b=0x2000, c=0x3000))
    s1, s2 = v1.accel.stats, v2.accel.stats
    assert (s1["commands"], s1["errors"], s1["macs"], s1["bytes_out"]) == (3, 0, 3 * 512, 3 * 256)
    assert (s2["commands"], s2["errors"], s2["macs"], s2["bytes_out"]) == (2, 1, 0, 400)
    assert s1["by_op"]["gemm_i32"] == 3 and s2["by_op"]["gemm_i32"] == 1 and s2["by_op"]["vadd_i32"] == 1
    assert v1.get_state()["devices"]["accel"]["stats"] == s1
    assert v2.get_state()["devices"]["accel"]["stats"] == s2


def test_shared_host_serves_lowest_pass_first():
    host = AccelHost()
    vms = [bare(accel=host, accel_shares=s) for s in (1, 1, 3)]
    names = [v.accel.name for v in vms]
    # used so far: vm0 2 s, vm1 1 s (one share each), vm2 3 s with three shares
    host.pass_ = {id(vms[0].accel): 2.0, id(vms[1].accel): 1.0, id(vms[2].accel): 3.0 / 3 - 0.5}
    with host.cv:
        host.busy = True
    order = []

    def waiter(v):
        host.acquire(v.accel)
        order.append(v.accel.name)
        host.release(v.accel, 0.0)
    threads = [threading.Thread(target=waiter, args=(v,)) for v in vms]
    for t in threads:
        t.start()
    t_end = time.time() + 10
    while len(host.waiting) < 3 and time.time() < t_end:
        time.sleep(0.01)
    assert len(host.waiting) == 3
    with host.cv:
        host.busy = False
        host.cv.notify_all()
    for t in threads:
        t.join(10)
    assert order == [names[2], names[1], names[0]]
    # a charge advances the pass by seconds / shares
    p = host.pass_[id(vms[2].accel)]
    host.acquire(vms[2].accel)
    host.release(vms[2].accel, 0.3)
    assert host.pass_[id(vms[2].accel)] == pytest.approx(p + 0.1)


def test_shared_host_runs_two_booted_vms():
    host = AccelHost()
    outs = [[], []]
    vms = [VM(KERNEL, mem="64M", accel=host, output=outs[i].append) for i in range(2)]
    ts = [threading.Thread(target=v.run, kwargs={"timeout": 60}) for v in vms]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    for v, o in zip(vms, outs):
        assert v.exit_reason == "halted"
        assert b"accel: 9 commands, 5 errors, 9 interrupts; all results equal the cpu's" in b"".join(o)
        assert v.accel.stats["commands"] == 9
    assert sorted(set(host.grants)) == sorted(v.accel.name for v in vms) and len(host.grants) == 18
    assert not host.busy and not host.waiting


def test_emu_boot_accel_flag():
    import os
    import subprocess
    import sys
    import emu
    # not from the source tree: `python -m` would import ./emu instead of the installed package
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(emu.__file__))))
    r = subprocess.run([sys.executable, "-m", "emu", "boot", KERNEL, "--mem", "64M", "--accel", "--timeout", "60"],
                       cwd=os.path.dirname(root), env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=120)
    out = r.stdout.decode("latin-1")
    assert "accel: 9 commands, 5 errors, 9 interrupts; all results equal the cpu's" in out, out[-500:]
    assert "cmdline: console=ttyS0 emu_accel=4K@0xd0001000:6" in out


def test_live_migration_while_the_guest_offloads():
    """Pre-copy rounds run while the guest uses the accelerator: the pages the
    device writes are in the dirty record, so the destination gets them."""
    import socket
    ref = []
    r0 = VM(KERNEL, mem="64M", accel=True, output=ref.append)
    reason0 = r0.run(timeout=60)
    out = []
    src = VM(KERNEL, mem="64M", accel=True, output=out.append)
    assert src.run(max_insns=1_000_000) == "limit"          # before the first offload
    src.exit_reason = None
    assert b"accel: gemm" not in b"".join(out)
    dst = VM(None, mem="64M", output=out.append)             # the device is attached from the state
    s1, s2 = socket.socketpair()
    figures = {}

    def sender():
        with s1.makefile("wb") as f:
            figures.update(vmstate.send(src, f, slice_insns=300_000, stop_pages=4, rounds=8))
        s1.close()
    t = threading.Thread(target=sender)
    t.start()
    with s2.makefile("rb") as f:
        vmstate.receive(f, dst)
    t.join()
    s2.close()
    assert src.accel.stats["commands"] >= 1                  # the source offloaded during the rounds
    assert dst.accel is not None and dst.accel.stats == src.accel.stats
    assert dst.run(timeout=60) == reason0
    assert b"".join(out) == b"".join(ref) and dst.vcpu.icount == r0.vcpu.icount
