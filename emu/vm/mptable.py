"""The Intel MultiProcessor Specification 1.4 tables (chapter 4): a floating
pointer structure and a configuration table naming the processors, the ISA
bus, the I/O APIC and how each ISA interrupt reaches it. Linux reads them
when booted with acpi=off (arch/x86/kernel/mpparse.c) to find the local
APIC and route device interrupts."""
from __future__ import annotations

import struct

MP_FLOAT_ADDR = 0xF0000           # in the BIOS area, where mpparse scans (F0000-FFFFF)
MP_CONFIG_ADDR = MP_FLOAT_ADDR + 16

MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC = 0, 1, 2, 3, 4
MP_INT, MP_NMI, MP_EXTINT = 0, 1, 3
CPU_ENABLED, CPU_BOOTPROCESSOR = 1, 2
APIC_VERSION = 0x14


def _checksum(b: bytes) -> int:
    return (-sum(b)) & 0xFF


def build(desc, cpu_signature: int, cpu_features: int) -> tuple[int, bytes]:
    """(address, bytes) of the floating pointer followed by the configuration
    table, from the machine description (emu/vm/machine_desc.py)."""
    ent = []
    for i in range(desc.cpus):
        ent.append(struct.pack("<BBBBII8x", MP_PROCESSOR, i, APIC_VERSION,
                               CPU_ENABLED | (CPU_BOOTPROCESSOR if i == 0 else 0), cpu_signature, cpu_features))
    bus_isa = 0
    ent.append(struct.pack("<BB6s", MP_BUS, bus_isa, b"ISA   "))
    ioapic_id = desc.cpus             # after the local APIC IDs
    ent.append(struct.pack("<BBBBI", MP_IOAPIC, ioapic_id, 0x11, 1, desc.ioapic_base))
    # each ISA IRQ line the machine uses, wired to the I/O APIC pin of the same number
    # (flags 0: polarity and trigger conform to the bus: ISA is edge, active high)
    for irq in sorted(desc.isa_irqs()):
        ent.append(struct.pack("<BBHBBBB", MP_INTSRC, MP_INT, 0, bus_isa, irq, ioapic_id, irq))
    # the local APIC's LINT0 takes the 8259's ExtINT, LINT1 NMI (to every local APIC)
    ent.append(struct.pack("<BBHBBBB", MP_LINTSRC, MP_EXTINT, 0, bus_isa, 0, 0xFF, 0))
    ent.append(struct.pack("<BBHBBBB", MP_LINTSRC, MP_NMI, 0, bus_isa, 0, 0xFF, 1))
    body = b"".join(ent)
    hdr = struct.pack("<4sHBB8s12sIHHIHBB", b"PCMP", 44 + len(body), 4, 0, b"EMU     ", b"MICROVM     ",
                      0, 0, len(ent), desc.lapic_base, 0, 0, 0)
    cfg = bytearray(hdr + body)
    cfg[7] = _checksum(cfg)
    flt = bytearray(struct.pack("<4sIBBBBBBBB", b"_MP_", MP_CONFIG_ADDR, 1, 4, 0, 0, 0, 0, 0, 0))
    flt[10] = _checksum(flt)
    return MP_FLOAT_ADDR, bytes(flt) + bytes(cfg)
