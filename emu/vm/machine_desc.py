"""One description of the microVM: RAM, vCPUs, the interrupt controllers and
each device's ports, MMIO window and interrupt line. Everything the guest
can read about the machine is generated from it: the e820 map, the ACPI
tables (emu/vm/acpi.py), the MP table (emu/vm/mptable.py), and the devices
put on the bus (emu/vm/vmm.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

LAPIC_BASE = 0xFEE00000
IOAPIC_BASE = 0xFEC00000
IOAPIC_PINS = 24
VIRTIO_MMIO_BASE = 0xD0000000     # one 4 KiB window per virtio-mmio device
VIRTIO_MMIO_SIZE = 0x1000
VIRTIO_GSI_BASE = 16              # above the ISA lines: level-triggered, one per device
PM_PORT = 0x600                   # ACPI sleep control (0x600), sleep status (0x601), reset (0x602)
ACPI_ADDR = 0xE0000               # RSDP and tables, in the reserved BIOS area


@dataclass
class DeviceDesc:
    name: str                     # the device's name on the bus and in snapshots
    kind: str                     # "virtio-blk", "virtio-net", ..., "uart", "rtc", "accel"
    ports: tuple = ()             # ((base, size), ...)
    mmio: tuple = ()              # ((base, size), ...)
    irq: int | None = None        # ISA IRQ or GSI (I/O APIC pin)
    acpi_hid: str | None = None   # _HID in the DSDT (None: not described there)
    virtio_id: int | None = None


@dataclass
class MachineDesc:
    mem_size: int
    cpus: int = 1
    lapic_base: int = LAPIC_BASE
    ioapic_base: int = IOAPIC_BASE
    ioapic_pins: int = IOAPIC_PINS
    acpi: bool = True
    devices: list = field(default_factory=list)

    def add(self, d: DeviceDesc) -> DeviceDesc:
        if any(x.name == d.name for x in self.devices):
            raise ValueError("two devices named %s" % d.name)
        self.devices.append(d)
        return d

    def add_virtio(self, name: str, kind: str, virtio_id: int) -> DeviceDesc:
        used_irq = {d.irq for d in self.devices}
        gsi = next((g for g in range(VIRTIO_GSI_BASE, self.ioapic_pins) if g not in used_irq), None)
        if gsi is None:
            raise ValueError("too many virtio devices (%d interrupt lines)" % (self.ioapic_pins - VIRTIO_GSI_BASE))
        taken = [r for d in self.devices for r in d.mmio]
        base = VIRTIO_MMIO_BASE
        while any(b < base + VIRTIO_MMIO_SIZE and base < b + n for b, n in taken):
            base += VIRTIO_MMIO_SIZE
        return self.add(DeviceDesc(name, kind, mmio=((base, VIRTIO_MMIO_SIZE),), irq=gsi,
                                   acpi_hid="LNRO0005", virtio_id=virtio_id))

    def virtio(self) -> list:
        return [d for d in self.devices if d.virtio_id is not None]

    def isa_irqs(self) -> set:
        return {d.irq for d in self.devices if d.irq is not None and d.irq < 16}

    def find(self, name: str):
        for d in self.devices:
            if d.name == name:
                return d
        return None
