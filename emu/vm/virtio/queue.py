"""Split virtqueues (virtio 1.2, 2.7) with every guest-controlled value
checked before it is used.

The descriptor table, the available ring and the used ring are checked to
lie in guest RAM when the driver makes the queue ready. Walking a chain
checks each descriptor: its index against the table, its buffer (address +
length, as unbounded integers so nothing wraps) against RAM, device-writable
buffers only after device-readable ones, one level of indirect table (a
multiple of 16 bytes, in RAM, not itself chained), at most as many
descriptors as the table holds (a loop ends there), and a total length
limit. A chain that fails is a BadChain naming the reason: the device
answers it with its error status where it can, and the VMM logs it; no
guest value can raise out of the device."""
from __future__ import annotations

import struct

DESC_F_NEXT, DESC_F_WRITE, DESC_F_INDIRECT = 1, 2, 4
AVAIL_F_NO_INTERRUPT = 1
MAX_CHAIN_BYTES = 1 << 26         # 64 MiB: far above what any request of ours needs


class Chain:
    """A valid descriptor chain: device-readable then device-writable buffers."""

    __slots__ = ("head", "readable", "writable")

    def __init__(self, head, readable, writable):
        self.head = head
        self.readable = readable          # [(guest physical address, length)]
        self.writable = writable

    def read_len(self) -> int:
        return sum(n for _a, n in self.readable)

    def write_len(self) -> int:
        return sum(n for _a, n in self.writable)

    def read(self, mem, limit: int | None = None) -> bytes:
        out = []
        left = self.read_len() if limit is None else limit
        for a, n in self.readable:
            if left <= 0:
                break
            k = min(n, left)
            out.append(mem.read(a, k))
            left -= k
        return b"".join(out)

    def write(self, mem, data: bytes, skip: int = 0) -> int:
        """Write data into the writable buffers from byte `skip` on; bytes written."""
        pos, done = 0, 0
        for a, n in self.writable:
            if skip >= pos + n:
                pos += n
                continue
            start = max(0, skip - pos)
            k = min(n - start, len(data) - done)
            if k <= 0:
                break
            mem.write(a + start, data[done:done + k])
            done += k
            pos += n
        return done


class BadChain:
    __slots__ = ("head", "reason", "writable")

    def __init__(self, head, reason, writable):
        self.head = head
        self.reason = reason
        self.writable = writable          # the writable buffers checked before the fault


class QueueError(Exception):
    """The queue's rings themselves are unusable (the device needs a reset)."""


class Virtqueue:
    def __init__(self, max_size: int = 256):
        self.max_size = max_size
        self.reset()

    def reset(self) -> None:
        self.num = self.max_size
        self.ready = 0
        self.desc = self.avail = self.used = 0
        self.last_avail = 0               # next available-ring index the device takes
        self.used_idx = 0                 # the device's own used index (never read back from the guest)

    def get_state(self) -> dict:
        return {k: getattr(self, k) for k in ("num", "ready", "desc", "avail", "used", "last_avail", "used_idx")}

    def set_state(self, st: dict) -> None:
        for k in ("num", "ready", "desc", "avail", "used", "last_avail", "used_idx"):
            v = st[k]
            if not isinstance(v, int) or v < 0 or v >= 1 << 64:
                raise ValueError("virtqueue field %s out of range" % k)
            setattr(self, k, v)
        if not 0 < self.num <= self.max_size or self.last_avail > 0xFFFF or self.used_idx > 0xFFFF:
            raise ValueError("virtqueue size or index out of range")

    def check_rings(self, ram_size: int) -> str | None:
        """Why the rings cannot be used, or None (2.7: alignment and sizes)."""
        n = self.num
        if not 0 < n <= self.max_size or n & (n - 1):
            return "queue size %d" % n
        for name, addr, size, align in (("descriptor table", self.desc, 16 * n, 16),
                                         ("available ring", self.avail, 6 + 2 * n, 2),
                                         ("used ring", self.used, 6 + 8 * n, 4)):
            if addr % align or addr + size > ram_size:
                return "%s at %#x+%#x outside guest RAM or misaligned" % (name, addr, size)
        return None

    # ---- the driver's side, read through mem (PhysMem: bounds-checked) ----
    def _u16(self, mem, addr) -> int:
        return struct.unpack("<H", mem.read(addr, 2))[0]

    def pending(self, mem) -> int:
        """Available chains not taken yet. QueueError when the index jumped by more than the queue holds."""
        n = (self._u16(mem, self.avail + 2) - self.last_avail) & 0xFFFF
        if n > self.num:
            raise QueueError("available index moved by %d in a queue of %d" % (n, self.num))
        return n

    def pop(self, mem):
        """The next available chain (Chain or BadChain), or None."""
        if not self.ready or self.pending(mem) == 0:
            return None
        head = self._u16(mem, self.avail + 4 + 2 * (self.last_avail % self.num))
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        return self.walk(mem, head)

    def walk(self, mem, head: int):
        ram = mem.size
        table, size, i = self.desc, self.num, head
        readable, writable = [], []
        count, total, indirect = 0, 0, False
        while True:
            if i >= size:
                return BadChain(head, "descriptor index %d outside a table of %d" % (i, size), writable)
            count += 1
            if count > size:
                return BadChain(head, "descriptor chain loops (more than %d descriptors)" % size, writable)
            addr, length, flags, nxt = struct.unpack("<QIHH", mem.read(table + 16 * i, 16))
            if flags & DESC_F_INDIRECT:
                if indirect:
                    return BadChain(head, "indirect descriptor inside an indirect table", writable)
                if flags & DESC_F_NEXT:
                    return BadChain(head, "indirect descriptor with NEXT set", writable)
                if length == 0 or length % 16 or addr + length > ram or addr % 16:
                    return BadChain(head, "indirect table at %#x+%#x outside guest RAM or misaligned"
                                    % (addr, length), writable)
                table, size, i, count, indirect = addr, length // 16, 0, 0, True
                continue
            if length and addr + length > ram:
                return BadChain(head, "buffer at %#x+%#x outside guest RAM" % (addr, length), writable)
            total += length
            if total > MAX_CHAIN_BYTES:
                return BadChain(head, "chain longer than %d bytes" % MAX_CHAIN_BYTES, writable)
            if flags & DESC_F_WRITE:
                writable.append((addr, length))
            else:
                if writable:
                    return BadChain(head, "device-readable buffer after a device-writable one", writable)
                readable.append((addr, length))
            if not flags & DESC_F_NEXT:
                return Chain(head, readable, writable)
            i = nxt

    def push(self, mem, head: int, written: int) -> None:
        """Return a chain to the driver through the used ring."""
        mem.write(self.used + 4 + 8 * (self.used_idx % self.num), struct.pack("<II", head, written))
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        mem.write(self.used + 2, struct.pack("<H", self.used_idx))

    def wants_interrupt(self, mem) -> bool:
        return not self._u16(mem, self.avail) & AVAIL_F_NO_INTERRUPT
