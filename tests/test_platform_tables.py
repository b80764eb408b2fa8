"""The platform the VMM builds from its machine description: ACPI tables and
their AML, the MP table, and the CMOS RTC."""
from __future__ import annotations

import calendar
import os
import shutil
import struct
import subprocess

import pytest

from emu.vm import acpi, aml, mptable
from emu.vm.machine_desc import DeviceDesc, MachineDesc
from emu.vm.rtc import CmosRtc


def machine():
    d = MachineDesc(128 << 20)
    d.add(DeviceDesc("uart", "uart", ports=((0x3F8, 8),), irq=4))
    d.add(DeviceDesc("rtc", "rtc", ports=((0x70, 2),), irq=8))
    d.add_virtio("blk", "virtio-blk", 2)
    d.add_virtio("net", "virtio-net", 1)
    return d


def test_pkg_length_encoding():
    # ACPI 6.4, 20.2.4: one byte up to 63 (counting itself), then 1-3 extra bytes
    assert aml.pkg_length(0) == b"\x01" and aml.pkg_length(62) == b"\x3f"
    assert aml.pkg_length(63) == bytes([0x40 | 1, 4])          # 65 = 0x41: low nibble 1, next byte 4
    assert aml.pkg_length(4093) == bytes([0x40 | 0xF, 0xFF])     # 4095 with one extra byte
    assert aml.pkg_length(4094) == bytes([0x80 | 1, 0x00, 0x01])  # 4097 = 0x1001 needs two
    assert aml.name_string("\\_SB.COM1") == b"\\\x2e_SB_COM1"
    assert aml.eisa_id("PNP0501") == b"\x0c\x41\xd0\x05\x01"
    with pytest.raises(ValueError):
        aml.name_seg("TOOLONG")


def test_acpi_tables_checksums_and_links():
    d = machine()
    rsdp_addr, blob = acpi.build(d, base=0xE0000)
    mem = {0xE0000 + i: b for i, b in enumerate(blob)}

    def at(addr, n):
        return bytes(mem[addr + i] for i in range(n))

    rsdp = at(rsdp_addr, 36)
    assert rsdp[:8] == b"RSD PTR " and sum(rsdp[:20]) % 256 == 0 and sum(rsdp) % 256 == 0
    assert rsdp[15] == 2 and struct.unpack_from("<I", rsdp, 20)[0] == 36
    xsdt_addr = struct.unpack_from("<Q", rsdp, 24)[0]

    def table(addr):
        n = struct.unpack_from("<I", at(addr, 8), 4)[0]
        t = at(addr, n)
        assert sum(t) % 256 == 0, t[:4]
        return t

    xsdt = table(xsdt_addr)
    ptrs = struct.unpack_from("<%dQ" % ((len(xsdt) - 36) // 8), xsdt, 36)
    tabs = {table(p)[:4]: table(p) for p in ptrs}
    assert set(tabs) == {b"FACP", b"APIC"}
    facp = tabs[b"FACP"]
    assert len(facp) == 276 and facp[8] == 6
    flags = struct.unpack_from("<I", facp, 112)[0]
    assert flags & acpi.FADT_HW_REDUCED and flags & acpi.FADT_RESET_REG_SUP
    # reset register and sleep control: system I/O space GAS at our ports
    assert struct.unpack_from("<BBBBQ", facp, 116) == (1, 8, 0, 1, acpi.RESET_PORT) and facp[128] == 1
    assert struct.unpack_from("<BBBBQ", facp, 244)[4] == acpi.SLEEP_CONTROL
    dsdt = table(struct.unpack_from("<Q", facp, 140)[0])
    assert dsdt[:4] == b"DSDT" and struct.unpack_from("<I", facp, 40)[0] == struct.unpack_from("<Q", facp, 140)[0]
    madt = tabs[b"APIC"]
    assert struct.unpack_from("<I", madt, 36)[0] == 0xFEE00000
    entries, off = [], 44
    while off < len(madt):
        entries.append((madt[off], madt[off + 1]))
        off += madt[off + 1]
    assert entries == [(0, 8), (1, 12), (4, 6)]


@pytest.mark.skipif(shutil.which("iasl") is None, reason="iasl (acpica-tools) is not installed")
def test_dsdt_disassembles_with_acpica(tmp_path):
    p = tmp_path / "dsdt.aml"
    p.write_bytes(acpi.dsdt(machine()))
    r = subprocess.run(["iasl", "-d", str(p)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    dsl = (tmp_path / "dsdt.dsl").read_text()
    assert 'EisaId ("PNP0501")' in dsl and 'EisaId ("PNP0B00")' in dsl
    assert dsl.count('Name (_HID, "LNRO0005")') == 2
    assert "0xD0000000," in dsl and "0xD0001000," in dsl
    assert "Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )" in dsl
    assert "0x00000010," in dsl and "0x00000011," in dsl
    assert "Name (\\_S5, Package (0x04)" in dsl


def test_mp_table():
    addr, b = mptable.build(machine(), 0x50650, 0x1234)
    assert addr == 0xF0000 and b[:4] == b"_MP_" and sum(b[:16]) % 256 == 0
    cfg_addr = struct.unpack_from("<I", b, 4)[0]
    cfg = b[cfg_addr - addr:]
    n = struct.unpack_from("<H", cfg, 4)[0]
    cfg = cfg[:n]
    assert cfg[:4] == b"PCMP" and sum(cfg) % 256 == 0
    count = struct.unpack_from("<H", cfg, 34)[0]
    off, kinds, intsrc = 44, [], []
    for _ in range(count):
        kinds.append(cfg[off])
        if cfg[off] == 3:
            intsrc.append((cfg[off + 5], cfg[off + 7]))        # source IRQ -> I/O APIC pin
        off += 20 if cfg[off] == 0 else 8
    assert off == len(cfg)
    assert kinds[0] == 0 and kinds.count(2) == 1 and kinds.count(4) == 2
    assert intsrc == [(4, 4), (8, 8)]                          # the ISA lines the machine uses


class Clock:
    def __init__(self):
        self.tsc = 0

    def __call__(self):
        return self.tsc


def rtc_at(epoch, hz=1_000_000_000):
    c = Clock()
    return CmosRtc(c, hz, epoch=epoch), c


def rd(r, reg):
    r.io_write(0, 1, reg)
    return r.io_read(1, 1)


def wr(r, reg, v):
    r.io_write(0, 1, reg)
    r.io_write(1, 1, v)


def bcd(v):
    return (v // 10) * 16 + v % 10


def test_rtc_time_from_guest_time():
    t0 = calendar.timegm((2024, 2, 29, 23, 59, 58, 0, 0, 0))
    r, clk = rtc_at(t0)
    assert [rd(r, i) for i in (0, 2, 4, 7, 8, 9, 0x32)] == [bcd(58), bcd(59), bcd(23), bcd(29), bcd(2), bcd(24), bcd(20)]
    clk.tsc = 3 * 10 ** 9                                         # three guest seconds later
    assert [rd(r, i) for i in (0, 2, 4, 7, 8)] == [bcd(1), 0, 0, 1, 3]
    wr(r, 0x0B, 0x06)                                             # binary, 24 hour
    assert rd(r, 0) == 1 and rd(r, 8) == 3
    wr(r, 0x0B, 0x04)                                             # binary, 12 hour
    assert rd(r, 4) == 12                                         # 00:00 is 12 AM
    assert rd(r, 0x0D) == 0x80 and rd(r, 0x0A) & 0x7F == 0x26


def test_rtc_update_in_progress_window():
    r, clk = rtc_at(1_000_000_000)
    hz = 10 ** 9
    clk.tsc = hz // 2
    assert not rd(r, 0x0A) & 0x80
    clk.tsc = hz - 100_000                                       # 100 us before the update: UIP
    assert rd(r, 0x0A) & 0x80
    clk.tsc = hz - 300_000                                       # 300 us before: not yet
    assert not rd(r, 0x0A) & 0x80


def test_rtc_set_freezes_and_sets_the_clock():
    r, clk = rtc_at(calendar.timegm((2020, 1, 1, 0, 0, 0, 0, 0, 0)))
    wr(r, 0x0B, 0x82)                                             # SET: updates stop
    wr(r, 0x09, bcd(30))
    wr(r, 0x04, bcd(12))
    clk.tsc = 5 * 10 ** 9
    assert rd(r, 0) == 0 and rd(r, 9) == bcd(30)                  # frozen while SET
    assert not rd(r, 0x0A) & 0x80
    wr(r, 0x0B, 0x02)
    clk.tsc = 7 * 10 ** 9                                         # two seconds after SET cleared
    assert (rd(r, 9), rd(r, 4), rd(r, 0)) == (bcd(30), bcd(12), 2)
    assert rd(r, 0x0C) & 0x10                                     # update-ended flag, cleared by the read
    assert not rd(r, 0x0C) & 0x10


def test_rtc_state_is_plain_data():
    from emu.vm.vmm import _registers, _set_registers
    r, clk = rtc_at(1_700_000_000.5)
    wr(r, 0x20, 0x5A)                                             # CMOS RAM
    st = _registers(r)
    assert "tsc" not in st and st["epoch"] == 1_700_000_000.5
    assert eval(repr(st)) == st                                   # literals only
    r2, _ = rtc_at(0)
    _set_registers(r2, st)
    assert rd(r2, 0x20) == 0x5A and rd(r2, 0) == rd(r, 0)
