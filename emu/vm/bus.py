"""The VMM's device bus: each device declares the port and MMIO ranges it
decodes; an access is routed by a binary search over the sorted ranges
(no chains of address tests). A device answers

    io_read(offset, size) -> int        io_write(offset, size, value)
    mmio_read(offset, size) -> int      mmio_write(offset, size, value)

with the offset from the start of its range. An access nothing decodes
reads as all ones and writes are dropped, as on a PC's open bus."""
from __future__ import annotations

import bisect


class BusError(Exception):
    pass


class _Space:
    def __init__(self, kind: str):
        self.kind = kind
        self.starts: list[int] = []
        self.ranges: list[tuple] = []     # (start, end exclusive, device, name)

    def add(self, start: int, size: int, dev, name: str) -> None:
        end = start + size
        if size <= 0:
            raise BusError("%s: empty %s range" % (name, self.kind))
        i = bisect.bisect_left(self.starts, start)
        if (i > 0 and self.ranges[i - 1][1] > start) or (i < len(self.ranges) and self.ranges[i][0] < end):
            other = self.ranges[i - 1] if i > 0 and self.ranges[i - 1][1] > start else self.ranges[i]
            raise BusError("%s: %s range %#x+%#x overlaps %s" % (name, self.kind, start, size, other[3]))
        self.starts.insert(i, start)
        self.ranges.insert(i, (start, end, dev, name))

    def find(self, addr: int):
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0:
            start, end, dev, _name = self.ranges[i]
            if addr < end:
                return dev, addr - start
        return None, 0


class Bus:
    def __init__(self):
        self.pio = _Space("port")
        self.mmio = _Space("MMIO")
        self.devices: dict[str, object] = {}

    def attach(self, name: str, dev, ports=(), mmio=()) -> None:
        if name in self.devices:
            raise BusError("two devices named %s" % name)
        for base, size in ports:
            self.pio.add(base, size, dev, name)
        for base, size in mmio:
            self.mmio.add(base, size, dev, name)
        self.devices[name] = dev

    def io_read(self, port: int, size: int) -> int:
        dev, off = self.pio.find(port)
        if dev is None:
            return (1 << (8 * size)) - 1
        return dev.io_read(off, size) & ((1 << (8 * size)) - 1)

    def io_write(self, port: int, size: int, value: int) -> None:
        dev, off = self.pio.find(port)
        if dev is not None:
            dev.io_write(off, size, value)

    def mmio_read(self, addr: int, size: int) -> int:
        dev, off = self.mmio.find(addr)
        if dev is None:
            return (1 << (8 * size)) - 1
        return dev.mmio_read(off, size) & ((1 << (8 * size)) - 1)

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        dev, off = self.mmio.find(addr)
        if dev is not None:
            dev.mmio_write(off, size, value)
