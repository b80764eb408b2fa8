"""ACPI tables for the microVM (ACPI 6.4, chapter 5): RSDP, XSDT, FADT,
MADT and a DSDT, built from the machine description.

The platform is hardware-reduced ACPI (FADT flag HW_REDUCED_ACPI, as
Firecracker's): no PM1 event/control blocks, no SCI sources, no FACS. Power
off is the sleep control register (S5 from the DSDT's \\_S5 package), reboot
the FADT reset register. The DSDT describes the COM1 UART (PNP0501), the CMOS RTC (PNP0B00) and each
virtio-mmio device (LNRO0005, its window and interrupt), so a distribution
kernel finds them with no command-line device options."""
from __future__ import annotations

import struct

from emu.vm import aml
from emu.vm.machine_desc import ACPI_ADDR, PM_PORT

OEM_ID = b"EMU   "
OEM_TABLE = b"EMUMICRO"
CREATOR = b"EMU "

SLEEP_CONTROL = PM_PORT           # write SLP_TYP << 2 | SLP_EN (ACPI 6.4, 4.8.3.7)
SLEEP_STATUS = PM_PORT + 1
RESET_PORT = PM_PORT + 2
RESET_VALUE = 0x01
S5_TYPE = 5                       # \_S5's SLP_TYP
SLP_EN = 0x20
SCI_IRQ = 9

FADT_WBINVD, FADT_RESET_REG_SUP, FADT_HW_REDUCED = 1 << 0, 1 << 10, 1 << 20
BOOT_ARCH_NO_VGA = 1 << 2


def _checksum(b) -> int:
    return (-sum(b)) & 0xFF


def _table(sig: bytes, rev: int, body: bytes) -> bytes:
    t = bytearray(struct.pack("<4sIBB6s8sI4sI", sig, 36 + len(body), rev, 0, OEM_ID, OEM_TABLE, 1, CREATOR, 1))
    t += body
    t[9] = _checksum(t)
    return bytes(t)


def _gas_io(port: int, width_bits: int = 8) -> bytes:
    """Generic Address Structure: system I/O space, byte access."""
    return struct.pack("<BBBBQ", 1, width_bits, 0, 1, port)


def dsdt(desc) -> bytes:
    devs = []
    n_virtio = 0
    for d in desc.devices:
        if d.kind == "uart":
            port, size = d.ports[0]
            devs.append(aml.device("COM1", aml.name("_HID", aml.eisa_id("PNP0501")), aml.name("_UID", 0),
                                   aml.name("_CRS", aml.resource_template(aml.res_io(port, size),
                                                                         aml.res_irq_noflags(d.irq)))))
        elif d.kind == "rtc":
            port, size = d.ports[0]
            devs.append(aml.device("RTC", aml.name("_HID", aml.eisa_id("PNP0B00")),
                                   aml.name("_CRS", aml.resource_template(aml.res_io(port, size),
                                                                         aml.res_irq_noflags(d.irq)))))
        elif d.acpi_hid == "LNRO0005":
            base, size = d.mmio[0]
            devs.append(aml.device("VR%02X" % n_virtio, aml.name("_HID", "LNRO0005"), aml.name("_UID", n_virtio),
                                   aml.name("_CCA", 1),
                                   aml.name("_CRS", aml.resource_template(aml.res_memory32_fixed(base, size),
                                                                         aml.res_interrupt(d.irq)))))
            n_virtio += 1
    body = aml.scope("\\_SB", *devs) + aml.name("\\_S5", [S5_TYPE, 0, 0, 0])
    return _table(b"DSDT", 2, body)


def madt(desc) -> bytes:
    body = struct.pack("<II", desc.lapic_base, 0)          # flags 0: no 8259 pair
    for i in range(desc.cpus):
        body += struct.pack("<BBBBI", 0, 8, i, i, 1)        # processor local APIC, enabled
    body += struct.pack("<BBBBII", 1, 12, desc.cpus, 0, desc.ioapic_base, 0)   # I/O APIC, GSI base 0
    body += struct.pack("<BBBHB", 4, 6, 0xFF, 0, 1)          # local APIC NMI on LINT1 of every CPU
    return _table(b"APIC", 5, body)


def fadt(dsdt_addr: int) -> bytes:
    b = bytearray(276 - 36)

    def put(off, fmt, *v):
        struct.pack_into(fmt, b, off - 36, *v)

    put(40, "<I", dsdt_addr)
    put(46, "<H", SCI_IRQ)
    put(109, "<H", BOOT_ARCH_NO_VGA)
    put(112, "<I", FADT_WBINVD | FADT_RESET_REG_SUP | FADT_HW_REDUCED)
    b[116 - 36:128 - 36] = _gas_io(RESET_PORT)
    put(128, "<B", RESET_VALUE)
    put(131, "<B", 4)                                       # FADT minor version (6.4)
    put(140, "<Q", dsdt_addr)
    b[244 - 36:256 - 36] = _gas_io(SLEEP_CONTROL)
    b[256 - 36:268 - 36] = _gas_io(SLEEP_STATUS)
    put(268, "<Q", int.from_bytes(b"EMUEMU\0\0", "little"))  # hypervisor vendor identity
    return _table(b"FACP", 6, bytes(b))


def build(desc, base: int = ACPI_ADDR) -> tuple[int, bytes]:
    """(RSDP address, bytes to place at base): RSDP, XSDT, FADT, MADT, DSDT."""
    def align(n):
        return (n + 15) & ~15

    rsdp_off = 0
    xsdt_off = 48
    d = dsdt(desc)
    m = madt(desc)
    n_tables = 2
    fadt_off = align(xsdt_off + 36 + 8 * n_tables)
    madt_off = align(fadt_off + 276)
    dsdt_off = align(madt_off + len(m))
    f = fadt(base + dsdt_off)
    x = _table(b"XSDT", 1, struct.pack("<QQ", base + fadt_off, base + madt_off))
    rsdp = bytearray(struct.pack("<8sB6sBIIQB3x", b"RSD PTR ", 0, OEM_ID, 2, 0, 36, base + xsdt_off, 0))
    rsdp[8] = _checksum(rsdp[:20])
    rsdp[32] = _checksum(rsdp)
    out = bytearray(dsdt_off + len(d))
    for off, blob in ((rsdp_off, rsdp), (xsdt_off, x), (fadt_off, f), (madt_off, m), (dsdt_off, d)):
        out[off:off + len(blob)] = blob
    return base + rsdp_off, bytes(out)
