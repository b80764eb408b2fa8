"""The microVM's platform devices: a 16550 UART, a local APIC (xAPIC MMIO and
x2APIC MSRs, timer in one-shot, periodic and TSC-deadline modes), an I/O
APIC, the VMM's control ports, and guest-physical memory access for DMA.
The virtio devices are in emu/vm/virtio/, the CMOS RTC in emu/vm/rtc.py.

Time is the vCPU's virtual TSC (instructions retired x cycles per
instruction); the APIC timer counts TSC cycles through its divider."""
from __future__ import annotations

import os
import struct

import numpy as np

# ---------------------------------------------------------------- 16550 UART

UART_BASE = 0x3F8
UART_IRQ = 4

IER_RDA, IER_THRE, IER_RLS = 1, 2, 4
LSR_DR, LSR_THRE, LSR_TEMT = 1, 0x20, 0x40


class Uart16550:
    """COM1. Output goes to `sink(bytes)`; input comes from `feed()`."""

    def __init__(self, sink, irq_line):
        self.sink = sink
        self.irq_line = irq_line          # callable(level)
        self.rx = bytearray()
        self.ier = 0
        self.lcr = 0x03
        self.mcr = 0
        self.scr = 0
        self.dll, self.dlm = 0x01, 0
        self.fcr = 0
        self.thre_pending = False         # THR-empty interrupt latched
        self.level = 0
        self.out = bytearray()

    def feed(self, data: bytes) -> None:
        self.rx += data
        self._update()

    def _update(self) -> None:
        lvl = 1 if ((self.ier & IER_RDA and self.rx) or (self.ier & IER_THRE and self.thre_pending)) else 0
        if lvl != self.level:
            self.level = lvl
            self.irq_line(lvl)

    def _iir(self) -> int:
        fifo = 0xC0 if self.fcr & 1 else 0
        if self.ier & IER_RDA and self.rx:
            return fifo | 0x04
        if self.ier & IER_THRE and self.thre_pending:
            return fifo | 0x02
        return fifo | 0x01

    def io_read(self, off: int, size: int = 1) -> int:
        dlab = self.lcr & 0x80
        if off == 0:
            if dlab:
                return self.dll
            v = self.rx.pop(0) if self.rx else 0
            self._update()
            return v
        if off == 1:
            return self.dlm if dlab else self.ier
        if off == 2:
            v = self._iir()
            if v & 0xF == 0x02:
                self.thre_pending = False    # reading IIR clears a THRE interrupt
                self._update()
            return v
        if off == 3:
            return self.lcr
        if off == 4:
            return self.mcr
        if off == 5:
            return LSR_THRE | LSR_TEMT | (LSR_DR if self.rx else 0)
        if off == 6:
            return 0xB0                      # DCD DSR CTS
        return self.scr

    def io_write(self, off: int, size: int, v: int) -> None:
        v &= 0xFF
        dlab = self.lcr & 0x80
        if off == 0:
            if dlab:
                self.dll = v
                return
            self.out.append(v)
            if v == 10 or len(self.out) >= 4096:
                self.flush()
            self.thre_pending = True         # the byte left at once: THR empty again
            self._update()
        elif off == 1:
            if dlab:
                self.dlm = v
                return
            old = self.ier
            self.ier = v & 0x0F
            if self.ier & IER_THRE and not old & IER_THRE:
                self.thre_pending = True
            self._update()
        elif off == 2:
            self.fcr = v
            if v & 2:
                self.rx.clear()
                self._update()
        elif off == 3:
            self.lcr = v
        elif off == 4:
            self.mcr = v
        elif off == 7:
            self.scr = v

    def flush(self) -> None:
        if self.out:
            data = bytes(self.out)
            self.out.clear()
            self.sink(data)


# ---------------------------------------------------------------- local APIC

LAPIC_BASE = 0xFEE00000
LAPIC_SIZE = 0x1000
MSR_APIC_BASE = 0x1B
MSR_TSC_DEADLINE = 0x6E0
X2APIC_MSR_BASE = 0x800

LVT_MASK = 1 << 16
TIMER_ONESHOT, TIMER_PERIODIC, TIMER_DEADLINE = 0, 1, 2


class LocalApic:
    """One xAPIC. Interrupt state is IRR/ISR as 256-bit integers."""

    def __init__(self, clock):
        self.clock = clock                # callable: current virtual TSC
        self.id = 0
        self.tpr = 0
        self.svr = 0xFF                   # software-disabled at reset
        self.ldr = 0
        self.dfr = 0xFFFFFFFF
        self.esr = 0
        self.icr = 0
        self.lvt = {0x320: LVT_MASK, 0x330: LVT_MASK, 0x340: LVT_MASK,
                    0x350: LVT_MASK, 0x360: LVT_MASK, 0x370: LVT_MASK}
        self.irr = 0
        self.isr = 0
        self.tmr = 0
        self.divide = 0
        self.initial = 0
        self.start = 0                    # TSC when the count was loaded
        self.deadline = 0                 # TSC-deadline mode target (0: disarmed)
        self.fired = True                 # one-shot has expired
        self.eoi_listeners = []           # callables(vector) for level-triggered EOIs
        self.base = LAPIC_BASE | 0x900    # BSP, xAPIC global enable
        self.n_timer = 0

    # -- timer --
    def div(self) -> int:
        d = ((self.divide >> 1) & 4) | (self.divide & 3)
        return 1 if d == 7 else 2 << d

    def timer_mode(self) -> int:
        return (self.lvt[0x320] >> 17) & 3

    def next_deadline(self):
        """TSC at which the timer next fires, or None."""
        lvt = self.lvt[0x320]
        mode = (lvt >> 17) & 3
        if mode == TIMER_DEADLINE:
            return self.deadline or None
        if self.initial == 0 or (mode == TIMER_ONESHOT and self.fired):
            return None
        period = self.initial * self.div()
        if mode == TIMER_PERIODIC:
            now = self.clock()
            n = max(1, (now - self.start) // period + 1)
            return self.start + n * period
        return self.start + period

    def poll(self, now: int) -> None:
        """Fire the timer if its deadline passed."""
        lvt = self.lvt[0x320]
        mode = (lvt >> 17) & 3
        if mode == TIMER_DEADLINE:
            if self.deadline and now >= self.deadline:
                self.deadline = 0
                self._timer_fire(lvt)
            return
        if self.initial == 0:
            return
        period = self.initial * self.div()
        if mode == TIMER_PERIODIC:
            if now >= self.start + period:
                # ticks missed while the guest was busy collapse into one (like an unserviced IRR bit)
                self.start += ((now - self.start) // period) * period
                self._timer_fire(lvt)
        elif not self.fired and now >= self.start + period:
            self.fired = True
            self._timer_fire(lvt)

    def _timer_fire(self, lvt: int) -> None:
        self.n_timer += 1
        if not lvt & LVT_MASK and self.svr & 0x100:
            self.set_irr(lvt & 0xFF)

    def current_count(self) -> int:
        mode = self.timer_mode()
        if self.initial == 0 or mode == TIMER_DEADLINE:
            return 0
        el = (self.clock() - self.start) // self.div()
        if mode == TIMER_PERIODIC:
            return self.initial - (el % self.initial)
        return max(0, self.initial - el) if not self.fired else 0

    # -- interrupt acceptance --
    def set_irr(self, vector: int, level: bool = False) -> None:
        if vector < 16:
            self.esr |= 0x40              # illegal vector received
            return
        self.irr |= 1 << vector
        if level:
            self.tmr |= 1 << vector
        else:
            self.tmr &= ~(1 << vector)

    def ppr(self) -> int:
        isrv = self.isr.bit_length() - 1 if self.isr else 0
        return max(self.tpr & 0xF0, isrv & 0xF0)

    def pending(self):
        """Highest-priority deliverable vector, or None."""
        if not self.irr or not self.svr & 0x100:
            return None
        v = self.irr.bit_length() - 1
        if (v & 0xF0) <= self.ppr():
            return None
        return v

    def accept(self) -> int:
        """The CPU takes the pending vector: IRR -> ISR."""
        v = self.irr.bit_length() - 1
        self.irr &= ~(1 << v)
        self.isr |= 1 << v
        return v

    def eoi(self) -> None:
        if not self.isr:
            return
        v = self.isr.bit_length() - 1
        self.isr &= ~(1 << v)
        if self.tmr >> v & 1:
            for f in self.eoi_listeners:
                f(v)

    # -- registers (xAPIC offsets; x2APIC MSR n is offset (n - 0x800) << 4) --
    def mmio_read(self, off: int, size: int) -> int:
        return self.read(off & ~0xF)

    def mmio_write(self, off: int, size: int, v: int) -> None:
        self.write(off & ~0xF, v)

    def read(self, off: int) -> int:
        if off == 0x20:
            return self.id << 24
        if off == 0x30:
            return 0x00050014             # version 0x14, 6 LVT entries
        if off == 0x80:
            return self.tpr
        if off == 0xA0:
            return self.ppr()
        if off == 0xD0:
            return self.ldr
        if off == 0xE0:
            return self.dfr
        if off == 0xF0:
            return self.svr
        if 0x100 <= off < 0x180:
            return (self.isr >> ((off - 0x100) >> 4 << 5)) & 0xFFFFFFFF
        if 0x180 <= off < 0x200:
            return (self.tmr >> ((off - 0x180) >> 4 << 5)) & 0xFFFFFFFF
        if 0x200 <= off < 0x280:
            return (self.irr >> ((off - 0x200) >> 4 << 5)) & 0xFFFFFFFF
        if off == 0x280:
            return self.esr
        if off == 0x300:
            return self.icr & 0xFFFFFFFF
        if off == 0x310:
            return self.icr >> 32
        if off in self.lvt:
            return self.lvt[off]
        if off == 0x380:
            return self.initial
        if off == 0x390:
            return self.current_count()
        if off == 0x3E0:
            return self.divide
        return 0

    def write(self, off: int, v: int) -> None:
        v &= 0xFFFFFFFF
        if off == 0x20:
            self.id = v >> 24
        elif off == 0x80:
            self.tpr = v & 0xFF
        elif off == 0xB0:
            self.eoi()
        elif off == 0xD0:
            self.ldr = v & 0xFF000000
        elif off == 0xE0:
            self.dfr = v | 0x0FFFFFFF
        elif off == 0xF0:
            self.svr = v & 0x13FF
            if not v & 0x100:
                for k in self.lvt:
                    self.lvt[k] |= LVT_MASK
        elif off == 0x280:
            self.esr = 0
        elif off == 0x300:
            self.icr = (self.icr & ~0xFFFFFFFF) | v
            # self-IPI (shorthand 01 or destination = own ID), fixed delivery
            if (v >> 8) & 7 == 0 and ((v >> 18) & 3 == 1 or ((v >> 18) & 3 == 0 and (self.icr >> 56) == self.id)):
                self.set_irr(v & 0xFF)
        elif off == 0x310:
            self.icr = (self.icr & 0xFFFFFFFF) | (v << 32)
        elif off in self.lvt:
            if not self.svr & 0x100:
                v |= LVT_MASK
            old_mode = self.timer_mode() if off == 0x320 else None
            self.lvt[off] = v & (0x7F0FF if off == 0x320 else 0x1F7FF)
            if off == 0x320 and self.timer_mode() != old_mode:
                self.initial = 0          # changing mode disarms the timer (SDM 10.5.4.1)
                self.deadline = 0
        elif off == 0x380:
            if self.timer_mode() == TIMER_DEADLINE:
                return
            self.initial = v
            self.start = self.clock()
            self.fired = v == 0
        elif off == 0x3E0:
            self.divide = v & 0xB

    def msr_read(self, idx: int):
        if idx == MSR_APIC_BASE:
            return self.base
        if idx == MSR_TSC_DEADLINE:
            return self.deadline
        if X2APIC_MSR_BASE <= idx < X2APIC_MSR_BASE + 0x40:
            off = (idx - X2APIC_MSR_BASE) << 4
            if off == 0x20:
                return self.id
            return self.read(off)
        return None

    def msr_write(self, idx: int, v: int) -> bool:
        if idx == MSR_APIC_BASE:
            self.base = (v & ~0xFFF) | (v & 0xD00)
            return True
        if idx == MSR_TSC_DEADLINE:
            if self.timer_mode() == TIMER_DEADLINE:
                self.deadline = v
            return True
        if X2APIC_MSR_BASE <= idx < X2APIC_MSR_BASE + 0x40:
            off = (idx - X2APIC_MSR_BASE) << 4
            if off == 0x300:
                self.write(0x310, v >> 32)
            elif off == 0x3F0:            # SELF IPI
                self.set_irr(v & 0xFF)
                return True
            self.write(off, v)
            return True
        return False


# ---------------------------------------------------------------- I/O APIC

IOAPIC_BASE = 0xFEC00000
IOAPIC_SIZE = 0x1000
IOAPIC_PINS = 24


class IoApic:
    def __init__(self, lapic: LocalApic):
        self.lapic = lapic
        self.sel = 0
        self.id = 0
        self.redir = [1 << 16] * IOAPIC_PINS     # masked
        self.lines = [0] * IOAPIC_PINS
        lapic.eoi_listeners.append(self._eoi)

    def set_irq(self, pin: int, level: int) -> None:
        old = self.lines[pin]
        self.lines[pin] = level
        if level and not old:
            self._deliver(pin)
        elif level and self.redir[pin] & (1 << 15):
            self._deliver(pin)

    def _deliver(self, pin: int) -> None:
        e = self.redir[pin]
        if e & (1 << 16):
            return
        level = bool(e & (1 << 15))
        if level:
            if e & (1 << 14):
                return                           # remote IRR: the last one is not EOId yet
            self.redir[pin] = e | (1 << 14)
        self.lapic.set_irr(e & 0xFF, level)

    def _eoi(self, vector: int) -> None:
        for pin, e in enumerate(self.redir):
            if e & (1 << 14) and e & 0xFF == vector:
                self.redir[pin] = e & ~(1 << 14)
                if self.lines[pin]:
                    self._deliver(pin)

    def mmio_read(self, off: int, size: int) -> int:
        return self.read(off & ~0xF)

    def mmio_write(self, off: int, size: int, v: int) -> None:
        self.write(off & ~0xF, v)

    def read(self, off: int) -> int:
        if off == 0:
            return self.sel
        if off != 0x10:
            return 0
        r = self.sel
        if r == 0:
            return self.id << 24
        if r == 1:
            return ((IOAPIC_PINS - 1) << 16) | 0x11
        if r == 2:
            return self.id << 24
        if 0x10 <= r < 0x10 + 2 * IOAPIC_PINS:
            e = self.redir[(r - 0x10) >> 1]
            return (e >> 32) if r & 1 else e & 0xFFFFFFFF
        return 0

    def write(self, off: int, v: int) -> None:
        v &= 0xFFFFFFFF
        if off == 0:
            self.sel = v & 0xFF
            return
        if off != 0x10:
            return
        r = self.sel
        if r == 0:
            self.id = (v >> 24) & 0xF
        elif 0x10 <= r < 0x10 + 2 * IOAPIC_PINS:
            pin = (r - 0x10) >> 1
            e = self.redir[pin]
            if r & 1:
                e = (e & 0xFFFFFFFF) | (v << 32)
            else:
                e = (e & ~0xFFFFFFFF) | (v & ~((1 << 12) | (1 << 14))) | (e & ((1 << 12) | (1 << 14)))
            self.redir[pin] = e
            if self.lines[pin] and not e & (1 << 16):
                self._deliver(pin)


# ---------------------------------------------------------------- platform control ports


class SystemControl:
    """The VMM's own ports: POST codes (0x80, timestamped markers), the debug
    exit (0x501), and the ACPI hardware-reduced sleep control / status and
    reset registers (emu/vm/acpi.py: PM_PORT + 0, 1, 2; a QEMU-style PM1
    control write of SLP_EN at PM_PORT + 4 also powers off)."""

    def __init__(self, vm, base: int):
        self.vm = vm
        self.base = base                  # the first port of the range it is attached at

    def io_read(self, off: int, size: int) -> int:
        return 0 if self.base == self.vm.pm_port else 0xFF

    def io_write(self, off: int, size: int, value: int) -> None:
        self.vm.system_port_write(self.base + off, size, value)


class GuestMemoryError(ValueError):
    """A device access outside guest RAM (devices check before they touch)."""


class PhysMem:
    """Guest physical memory for device DMA: reads and writes of RAM, with
    translated code invalidated on writes. An access outside RAM (address +
    length as unbounded integers: no wraparound) raises GuestMemoryError;
    devices check guest addresses before they get here, and the VMM turns
    one that slips through into a logged event."""

    def __init__(self, phys, ram: np.ndarray):
        self.phys = phys
        self.ram = ram
        self.size = len(ram)

    def read(self, pa: int, n: int) -> bytes:
        if pa < 0 or n < 0 or pa + n > self.size:
            raise GuestMemoryError("DMA read outside RAM at %#x+%#x" % (pa, n))
        return self.ram[pa:pa + n].tobytes()

    def write(self, pa: int, data: bytes) -> None:
        n = len(data)
        if pa < 0 or pa + n > self.size:
            raise GuestMemoryError("DMA write outside RAM at %#x+%#x" % (pa, n))
        self.ram[pa:pa + n] = np.frombuffer(data, dtype=np.uint8)
        self.phys.invalidate(pa, n)

    def u64(self, pa: int) -> int:
        if pa < 0 or pa + 8 > self.size:
            raise GuestMemoryError("DMA read outside RAM at %#x+8" % pa)
        return int.from_bytes(self.ram[pa:pa + 8].tobytes(), "little")
