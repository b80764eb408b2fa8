"""The virtio-mmio transport (virtio 1.2, 4.2.2: register layout version 2)
and the contract between it and a device type.

A device (VirtioDevice) names its device ID, feature bits, queue sizes and
configuration space, and handles chains; the transport owns the registers,
the feature negotiation, the queues and the interrupt line. Every chain the
device sees has been checked (queue.py); a bad one is logged through
`log(source, message)` and answered by the device's `bad_request`. A queue
whose rings are unusable puts the device in DEVICE_NEEDS_RESET with a
configuration-change interrupt (2.1.2), never an exception out of the VMM."""
from __future__ import annotations

import struct

from emu.vm.virtio.queue import BadChain, Chain, QueueError, Virtqueue

MAGIC = 0x74726976                # "virt"
VENDOR = 0x20554D45               # "EMU "
F_VERSION_1 = 1 << 32
F_INDIRECT_DESC = 1 << 28
S_ACKNOWLEDGE, S_DRIVER, S_DRIVER_OK, S_FEATURES_OK, S_NEEDS_RESET, S_FAILED = 1, 2, 4, 8, 0x40, 0x80
ISR_USED, ISR_CONFIG = 1, 2


class VirtioDevice:
    """A device type. Subclasses set device_id, features, queue_sizes and
    implement config() and handle(qi, chain) -> bytes written."""
    device_id = 0
    features = 0
    queue_sizes = (256,)

    def attach(self, transport) -> None:
        self.t = transport
        self.mem = transport.mem

    def config(self) -> bytes:
        return b""

    def config_write(self, off: int, data: bytes) -> None:
        pass

    def handle(self, qi: int, chain: Chain) -> int:
        return 0

    def bad_request(self, qi: int, chain: BadChain) -> int:
        """Answer a chain that failed its checks; bytes written (0: none)."""
        return 0

    def notify(self, qi: int) -> None:
        """The driver made buffers available in queue qi."""
        self.t.process(qi)

    def activate(self) -> None:
        """The driver set DRIVER_OK."""

    def reset(self) -> None:
        pass

    def poll(self) -> None:
        """Host-side input (sockets): move what arrived into the guest."""

    def wait_fds(self) -> list:
        """Host descriptors whose readiness should wake a halted guest."""
        return []

    def active(self) -> bool:
        """Traffic with the host lately: a halted guest then waits for the host
        in real time rather than letting virtual time run ahead."""
        return False

    def get_state(self) -> dict:
        return {}

    def set_state(self, st: dict) -> None:
        pass

    def close(self) -> None:
        pass


class VirtioMmio:
    def __init__(self, dev: VirtioDevice, mem, irq_line, log):
        self.dev = dev
        self.mem = mem
        self.irq_line = irq_line
        self.log = log
        self.name = type(dev).__name__
        self.queues = [Virtqueue(n) for n in dev.queue_sizes]
        self.offered = dev.features | F_VERSION_1 | F_INDIRECT_DESC
        self.n_bad = 0
        self._reset()
        dev.attach(self)

    def _reset(self) -> None:
        self.status = 0
        self.dev_feat_sel = 0
        self.drv_feat_sel = 0
        self.driver_features = 0
        self.queue_sel = 0
        self.isr = 0
        self.config_generation = 0
        for q in self.queues:
            q.reset()
        self.irq_line(0)

    # ---- state ----
    def get_state(self) -> dict:
        return {"status": self.status, "dev_feat_sel": self.dev_feat_sel, "drv_feat_sel": self.drv_feat_sel,
                "driver_features": self.driver_features, "queue_sel": self.queue_sel, "isr": self.isr,
                "config_generation": self.config_generation, "n_bad": self.n_bad,
                "queues": [q.get_state() for q in self.queues], "device": self.dev.get_state()}

    def set_state(self, st: dict) -> None:
        for k in ("status", "dev_feat_sel", "drv_feat_sel", "driver_features", "queue_sel", "isr",
                  "config_generation", "n_bad"):
            v = st[k]
            if not isinstance(v, int) or not 0 <= v < 1 << 64:
                raise ValueError("virtio-mmio field %s out of range" % k)
            setattr(self, k, v)
        if len(st["queues"]) != len(self.queues):
            raise ValueError("virtio-mmio: the state has %d queues, the device %d"
                             % (len(st["queues"]), len(self.queues)))
        for q, qs in zip(self.queues, st["queues"]):
            q.set_state(qs)
        self.dev.set_state(st["device"])
        self.irq_line(1 if self.isr else 0)

    # ---- interrupts ----
    def interrupt(self, config: bool = False) -> None:
        self.isr |= ISR_CONFIG if config else ISR_USED
        self.irq_line(1)

    def needs_reset(self, why: str) -> None:
        self.log("%s: %s; device needs reset" % (self.name, why))
        if not self.status & S_NEEDS_RESET:
            self.status |= S_NEEDS_RESET
            self.interrupt(config=True)

    # ---- queue processing for devices ----
    def process(self, qi: int, handler=None) -> int:
        """Take every available chain of queue qi to the device's handler and
        return it through the used ring; the number of chains."""
        q = self.queues[qi]
        if not q.ready or not self.status & S_DRIVER_OK or self.status & S_NEEDS_RESET:
            return 0
        handler = handler or self.dev.handle
        done = 0
        try:
            while True:
                c = q.pop(self.mem)
                if c is None:
                    break
                if isinstance(c, BadChain):
                    self.n_bad += 1
                    self.log("%s: queue %d: bad descriptor chain %d: %s" % (self.name, qi, c.head, c.reason))
                    written = self.dev.bad_request(qi, c)
                else:
                    written = handler(qi, c)
                    if written is None:           # the device keeps the chain for later (rx)
                        q.last_avail = (q.last_avail - 1) & 0xFFFF
                        break
                q.push(self.mem, c.head, written)
                done += 1
            if done and q.wants_interrupt(self.mem):
                self.interrupt()
        except QueueError as e:
            self.needs_reset("queue %d: %s" % (qi, e))
        return done

    def used(self, qi: int, head: int, written: int) -> None:
        """Return one chain the device held (deferred requests)."""
        q = self.queues[qi]
        q.push(self.mem, head, written)
        if q.wants_interrupt(self.mem):
            self.interrupt()

    def driver_ok(self) -> bool:
        return bool(self.status & S_DRIVER_OK) and not self.status & S_NEEDS_RESET

    # ---- registers ----
    def mmio_read(self, off: int, size: int) -> int:
        if off >= 0x100:
            cfg = self.dev.config()
            o = off - 0x100
            return int.from_bytes(cfg[o:o + size].ljust(size, b"\0"), "little")
        q = self.queues[self.queue_sel] if self.queue_sel < len(self.queues) else None
        if off == 0x00:
            return MAGIC
        if off == 0x04:
            return 2
        if off == 0x08:
            return self.dev.device_id
        if off == 0x0C:
            return VENDOR
        if off == 0x10:
            return (self.offered >> (32 * self.dev_feat_sel)) & 0xFFFFFFFF if self.dev_feat_sel < 2 else 0
        if off == 0x34:
            return q.max_size if q else 0
        if off == 0x44:
            return q.ready if q else 0
        if off == 0x60:
            return self.isr
        if off == 0x70:
            return self.status
        if off == 0xFC:
            return self.config_generation
        if q is not None:
            regs = {0x80: q.desc, 0x90: q.avail, 0xA0: q.used}
            base = off & ~4
            if base in regs:
                return (regs[base] >> (32 if off & 4 else 0)) & 0xFFFFFFFF
        return 0

    def mmio_write(self, off: int, size: int, v: int) -> None:
        if off >= 0x100:
            self.dev.config_write(off - 0x100, v.to_bytes(size, "little"))
            return
        v &= 0xFFFFFFFF
        q = self.queues[self.queue_sel] if self.queue_sel < len(self.queues) else None
        if off == 0x14:
            self.dev_feat_sel = v
        elif off == 0x20:
            if self.drv_feat_sel < 2 and not self.status & S_FEATURES_OK:
                sh = 32 * self.drv_feat_sel
                self.driver_features = (self.driver_features & ~(0xFFFFFFFF << sh)) | ((v & (self.offered >> sh)) << sh)
        elif off == 0x24:
            self.drv_feat_sel = v
        elif off == 0x30:
            self.queue_sel = v
        elif off == 0x38:
            if q is not None and not q.ready and 0 < v <= q.max_size and v & (v - 1) == 0:
                q.num = v
        elif off == 0x44:
            if q is None:
                return
            if v & 1 and not q.ready:
                why = q.check_rings(self.mem.size)
                if why is not None:
                    self.needs_reset("queue %d: %s" % (self.queue_sel, why))
                    return
                q.ready = 1
            elif not v & 1:
                q.ready = 0
        elif off == 0x50:
            if v < len(self.queues) and self.driver_ok():
                self.dev.notify(v)
        elif off == 0x64:
            self.isr &= ~v
            if not self.isr:
                self.irq_line(0)
        elif off == 0x70:
            if v == 0:
                self._reset()
                self.dev.reset()
                return
            if v & S_FEATURES_OK and not self.driver_features & F_VERSION_1:
                v &= ~S_FEATURES_OK               # legacy drivers are not supported
            old = self.status
            self.status = (v & 0xFF) | (old & S_NEEDS_RESET)
            if v & S_DRIVER_OK and not old & S_DRIVER_OK:
                self.dev.activate()
        elif q is not None and not q.ready and off in (0x80, 0x84, 0x90, 0x94, 0xA0, 0xA4):
            name = {0x80: "desc", 0x90: "avail", 0xA0: "used"}[off & ~4]
            cur = getattr(q, name)
            if off & 4:
                cur = (cur & 0xFFFFFFFF) | (v << 32)
            else:
                cur = (cur & ~0xFFFFFFFF) | v
            setattr(q, name, cur)
