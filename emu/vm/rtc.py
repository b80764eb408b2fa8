"""The CMOS real-time clock (Motorola MC146818A, as in every PC): index port
0x70 (bit 7 masks NMI), data port 0x71.

Date and time come from guest time: `epoch` (seconds since 1970 UTC at
guest TSC 0) plus the guest's TSC over its frequency, so under virtual time
the guest's clock is deterministic and a restored snapshot reads on from
where it stood. The update-in-progress bit (register A bit 7) is set during
the last 244 us of each second, as the chip does before it updates the time
registers, and registers B-D behave as the data sheet says: binary or BCD,
12 or 24 hour, SET freezes updates and a write of the time registers sets the
clock. Register C's flags (update-ended, alarm, periodic) accumulate and a
read clears them; the chip's IRQ 8 is raised for an enabled update or alarm
interrupt."""
from __future__ import annotations

import calendar
import time

RTC_PORT = 0x70
RTC_IRQ = 8
UIP_WINDOW = 244e-6               # seconds before the update during which UIP reads 1

REG_A, REG_B, REG_C, REG_D = 0x0A, 0x0B, 0x0C, 0x0D
B_SET, B_PIE, B_AIE, B_UIE, B_DM, B_24H = 0x80, 0x40, 0x20, 0x10, 0x04, 0x02
C_IRQF, C_PF, C_AF, C_UF = 0x80, 0x40, 0x20, 0x10
CENTURY = 0x32


class CmosRtc:
    ports = ((RTC_PORT, 2),)
    irq = RTC_IRQ

    def __init__(self, tsc, tsc_hz: int, irq_line=None, epoch: float | None = None):
        self.tsc = tsc                    # callable: guest TSC
        self.tsc_hz = tsc_hz
        self.irq_line = irq_line or (lambda lvl: None)
        self.epoch = float(time.time() if epoch is None else epoch)   # guest seconds at TSC 0
        self.index = 0
        self.nmi_masked = 0
        self.ram = bytearray(128)
        self.ram[REG_A] = 0x26            # 32.768 kHz time base, 1024 Hz periodic rate
        self.ram[REG_B] = B_24H           # BCD, 24 hour
        self.ram[REG_D] = 0x80            # valid RAM and time
        self.frozen = None                # guest seconds while SET holds the update
        self.last_second = int(self.now())   # whole second of the last update the flags account for
        self.flags = 0

    # ---- guest time ----
    def now(self) -> float:
        return self.epoch + self.tsc() / self.tsc_hz

    def _seconds(self) -> int:
        return int(self.frozen if self.frozen is not None else self.now())

    def _bcd(self, v: int) -> int:
        return v if self.ram[REG_B] & B_DM else ((v // 10) << 4) | (v % 10)

    def _unbcd(self, v: int) -> int:
        return v if self.ram[REG_B] & B_DM else (v >> 4) * 10 + (v & 0xF)

    def _time_regs(self) -> dict:
        t = time.gmtime(self._seconds())
        hour = t.tm_hour
        if not self.ram[REG_B] & B_24H:
            pm = hour >= 12
            hour = hour % 12 or 12
            hv = self._bcd(hour) | (0x80 if pm else 0)
        else:
            hv = self._bcd(hour)
        return {0: self._bcd(t.tm_sec), 2: self._bcd(t.tm_min), 4: hv, 6: self._bcd((t.tm_wday + 1) % 7 + 1),
                7: self._bcd(t.tm_mday), 8: self._bcd(t.tm_mon), 9: self._bcd(t.tm_year % 100),
                CENTURY: self._bcd(t.tm_year // 100)}

    def _update_flags(self) -> None:
        """Register C's flags for the updates since the last look."""
        if self.frozen is not None:
            return
        sec = int(self.now())
        if sec != self.last_second:
            self.flags |= C_UF
            a = self.ram
            t = self._time_regs()
            if all((a[k] & 0xC0) == 0xC0 or a[k] == t[j] for k, j in ((1, 0), (3, 2), (5, 4))):
                self.flags |= C_AF
            self.last_second = sec
        if self.ram[REG_B] & self.flags & (C_UF | C_AF):
            self.irq_line(1)
            self.irq_line(0)

    # ---- ports ----
    def io_read(self, off: int, size: int) -> int:
        if off == 0:
            return 0xFF                   # the index register is write-only
        r = self.index
        if r == REG_A:
            frac = self.now() % 1.0
            uip = 0x80 if self.frozen is None and frac >= 1.0 - UIP_WINDOW else 0
            return (self.ram[REG_A] & 0x7F) | uip
        if r == REG_C:
            self._update_flags()
            v = self.flags
            if v & self.ram[REG_B] & (C_PF | C_AF | C_UF):
                v |= C_IRQF
            self.flags = 0
            return v
        if r == REG_D:
            return 0x80
        t = self._time_regs()
        if r in t:
            return t[r]
        return self.ram[r & 0x7F]

    def io_write(self, off: int, size: int, value: int) -> None:
        value &= 0xFF
        if off == 0:
            self.index = value & 0x7F
            self.nmi_masked = value >> 7
            return
        r = self.index
        if r in (0, 2, 4, 6, 7, 8, 9, CENTURY):
            self._set_time_reg(r, value)
        elif r == REG_B:
            old = self.ram[REG_B]
            self.ram[REG_B] = value
            if value & B_SET and not old & B_SET:
                self.frozen = self.now()
            elif old & B_SET and not value & B_SET:
                self.epoch += self.frozen - self.now()   # the clock runs on from the time set
                self.frozen = None
                self.last_second = int(self.now())
        elif r == REG_A:
            self.ram[REG_A] = value & 0x7F
        elif r in (REG_C, REG_D):
            pass                          # read-only
        else:
            self.ram[r] = value

    def _set_time_reg(self, r: int, value: int) -> None:
        cur = self._seconds()
        t = list(time.gmtime(cur)[:6])    # year mon mday hour min sec
        if r == 4:
            pm = bool(value & 0x80) and not self.ram[REG_B] & B_24H
            h = self._unbcd(value & 0x7F)
            if not self.ram[REG_B] & B_24H:
                h = (h % 12) + (12 if pm else 0)
            t[3] = h
        elif r == 0:
            t[5] = self._unbcd(value)
        elif r == 2:
            t[4] = self._unbcd(value)
        elif r == 7:
            t[2] = self._unbcd(value)
        elif r == 8:
            t[1] = self._unbcd(value)
        elif r == 9:
            t[0] = t[0] // 100 * 100 + self._unbcd(value)
        elif r == CENTURY:
            t[0] = self._unbcd(value) * 100 + t[0] % 100
        else:
            self.ram[r] = value           # day of week: kept as written
            return
        try:
            new = calendar.timegm(tuple(t) + (0, 0, 0))
        except (ValueError, OverflowError):
            return
        if self.frozen is not None:
            self.frozen = new + (self.frozen % 1.0)
        else:
            self.epoch += new - cur
