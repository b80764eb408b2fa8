"""The virtio layer's checks: descriptor chains that point outside guest RAM,
wrap around, loop, nest indirect tables, or put a readable buffer after a
writable one are refused with the device's error status and an event in the
VMM log; unusable rings put the device in NEEDS_RESET. A guest notifies the
device with a real MMIO write, and VM.run never raises."""
from __future__ import annotations

import os
import struct

import pytest

from emu.vm import VM
from emu.vm.virtio import queue as vq
from emu.vm.virtio.mmio import S_NEEDS_RESET

from test_boot import tiny_elf

NOTIFY_CODE = bytes.fromhex("b8500000d0c70000000000f4")   # mov eax, 0xd0000050; mov dword [rax], 0; hlt
DESC, AVAIL, USED = 0x10000, 0x11000, 0x12000
HDR, DATA, STATUS = 0x20000, 0x21000, 0x22000
NUM = 8
BASE = 0xD0000000


@pytest.fixture
def vm(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(range(256)) * 64)              # 16 KiB, sector n starts with byte 0
    v = VM(tiny_elf(NOTIFY_CODE), mem="4M", disk=str(disk), output=lambda d: None)
    w = lambda off, val: v.bus.mmio_write(BASE + off, 4, val)   # the driver's register writes
    assert v.bus.mmio_read(BASE, 4) == 0x74726976 and v.bus.mmio_read(BASE + 8, 4) == 2
    w(0x70, 1 | 2)
    w(0x24, 1)
    w(0x20, 1)                                            # VIRTIO_F_VERSION_1
    w(0x70, 1 | 2 | 8)
    w(0x30, 0)
    w(0x38, NUM)
    for off, addr in ((0x80, DESC), (0x90, AVAIL), (0xA0, USED)):
        w(off, addr)
        w(off + 4, 0)
    w(0x44, 1)
    w(0x70, 1 | 2 | 8 | 4)                                # DRIVER_OK
    v.w = w
    yield v
    v.close()


def put_desc(vm, i, addr, length, flags, nxt=0, table=DESC):
    vm.mem.write(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))


def submit(vm, head, n=1):
    """Offer chain `head` (the n-th request) and let the guest notify the device."""
    vm.mem.write(AVAIL + 4 + 2 * ((n - 1) % NUM), struct.pack("<H", head))
    vm.mem.write(AVAIL + 2, struct.pack("<H", n))
    vm.vcpu.rip = 0x200000
    vm.vcpu.halted = False
    vm.exit_reason = None
    assert vm.run(timeout=10) == "halted"                 # the guest's notify, then HLT: no exception


def used(vm, n):
    idx = struct.unpack("<H", vm.mem.read(USED + 2, 2))[0]
    head, length = struct.unpack("<II", vm.mem.read(USED + 4 + 8 * ((n - 1) % NUM), 8))
    return idx, head, length


def read_request(vm, data_addr, data_len, sector=1):
    vm.mem.write(HDR, struct.pack("<IIQ", 0, 0, sector))
    vm.mem.write(STATUS, b"\xff")
    put_desc(vm, 0, HDR, 16, vq.DESC_F_NEXT, 1)
    put_desc(vm, 1, data_addr, data_len, vq.DESC_F_NEXT | vq.DESC_F_WRITE, 2)
    put_desc(vm, 2, STATUS, 1, vq.DESC_F_WRITE)


def test_a_good_read_request(vm):
    read_request(vm, DATA, 512, sector=1)
    submit(vm, 0)
    assert used(vm, 1) == (1, 0, 513)
    assert vm.mem.read(STATUS, 1) == b"\x00"
    assert vm.mem.read(DATA, 512) == bytes(range(256)) * 2
    assert vm.events == []


@pytest.mark.parametrize("addr,length,why", [
    (4 * 1024 * 1024 - 100, 512, "outside guest RAM"),                 # runs past the end of RAM
    ((1 << 64) - 256, 512, "outside guest RAM"),                        # wraps around 2^64
    (1 << 40, 512, "outside guest RAM"),                                # far outside
])
def test_buffers_outside_ram_are_refused(vm, addr, length, why):
    read_request(vm, addr, length)
    submit(vm, 0)
    assert vm.mem.read(STATUS, 1) == b"\xff"              # the fault came before the status buffer
    assert used(vm, 1)[:2] == (1, 0)                       # the chain is returned all the same
    assert any(why in m for _t, m in vm.events), vm.events
    assert vm.virtio["blk"].n_bad == 1


def test_a_loop_an_out_of_range_index_and_an_order_violation(vm):
    vm.mem.write(STATUS, b"\xff")
    put_desc(vm, 0, STATUS, 1, vq.DESC_F_WRITE | vq.DESC_F_NEXT, 1)
    put_desc(vm, 1, HDR, 16, vq.DESC_F_WRITE | vq.DESC_F_NEXT, 0)    # 0 -> 1 -> 0 -> ...
    submit(vm, 0)
    assert "loops" in vm.events[-1][1]
    # IOERR goes into the last writable buffer checked before the fault (the 8th: HDR)
    assert vm.mem.read(HDR, 1) == b"\x01"
    put_desc(vm, 3, HDR, 16, vq.DESC_F_NEXT, 100)          # next index outside the table
    submit(vm, 3, n=2)
    assert "outside a table of 8" in vm.events[-1][1]
    put_desc(vm, 4, STATUS, 1, vq.DESC_F_WRITE | vq.DESC_F_NEXT, 5)
    put_desc(vm, 5, HDR, 16, 0)                            # readable after writable
    submit(vm, 4, n=3)
    assert "readable buffer after a device-writable" in vm.events[-1][1]
    assert used(vm, 3)[0] == 3


def test_indirect_tables_are_checked(vm):
    table = 0x30000
    vm.mem.write(HDR, struct.pack("<IIQ", 0, 0, 0))
    put_desc(vm, 0, HDR, 16, vq.DESC_F_NEXT, 1, table=table)
    put_desc(vm, 1, DATA, 512, vq.DESC_F_WRITE | vq.DESC_F_NEXT, 2, table=table)
    put_desc(vm, 2, STATUS, 1, vq.DESC_F_WRITE, table=table)
    put_desc(vm, 0, table, 48, vq.DESC_F_INDIRECT)
    submit(vm, 0)                                          # a good indirect request
    assert used(vm, 1) == (1, 0, 513) and vm.mem.read(STATUS, 1) == b"\x00"
    put_desc(vm, 1, (1 << 64) - 16, 32, vq.DESC_F_INDIRECT)  # a table that wraps around
    submit(vm, 1, n=2)
    assert "indirect table" in vm.events[-1][1]
    put_desc(vm, 0, table, 16, vq.DESC_F_INDIRECT, table=table)   # an indirect inside an indirect
    put_desc(vm, 2, table, 16, vq.DESC_F_INDIRECT)
    submit(vm, 2, n=3)
    assert "indirect descriptor inside an indirect table" in vm.events[-1][1]


def test_unusable_rings_need_a_reset(vm):
    vm.mem.write(AVAIL + 2, struct.pack("<H", 100))        # the index jumps past the queue size
    vm.vcpu.rip = 0x200000
    vm.vcpu.halted = False
    assert vm.run(timeout=10) == "halted"
    t = vm.virtio["blk"]
    assert t.status & S_NEEDS_RESET and t.isr & 2          # DEVICE_NEEDS_RESET with a config interrupt
    assert "needs reset" in vm.events[-1][1]
    # a reset makes it usable again; rings outside RAM are refused when made ready
    vm.w(0x70, 0)
    assert t.status == 0
    vm.w(0x70, 1 | 2 | 8)
    vm.w(0x80, 0xFFFFF000)
    vm.w(0x44, 1)
    assert not t.queues[0].ready and t.status & S_NEEDS_RESET


def test_the_chain_walk_alone():
    class Mem:
        size = 1 << 20

        def __init__(self):
            self.b = bytearray(self.size)

        def read(self, a, n):
            assert 0 <= a and a + n <= self.size
            return bytes(self.b[a:a + n])

        def write(self, a, d):
            self.b[a:a + len(d)] = d

    m = Mem()
    q = vq.Virtqueue(4)
    q.desc, q.num = 0x1000, 4
    m.write(0x1000, struct.pack("<QIHH", 0x2000, vq.MAX_CHAIN_BYTES, vq.DESC_F_NEXT, 1))
    m.write(0x1010, struct.pack("<QIHH", 0x2000, 16, 0, 0))
    assert isinstance(q.walk(m, 0), vq.BadChain)           # larger than RAM
    m.write(0x1000, struct.pack("<QIHH", 0x2000, 0, vq.DESC_F_NEXT, 1))
    c = q.walk(m, 0)
    assert isinstance(c, vq.Chain) and c.readable == [(0x2000, 0), (0x2000, 16)]
