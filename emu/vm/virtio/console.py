"""virtio-console (virtio 1.2, 5.3), one port, no multiport: what the guest
writes to /dev/hvc0 goes to `sink(bytes)`; `feed(bytes)` is input that
fills the receive queue's buffers as the driver offers them."""
from __future__ import annotations

import struct

from emu.vm.virtio.mmio import VirtioDevice

DEVICE_ID = 3
F_SIZE = 1 << 0
RX, TX = 0, 1


class VirtioConsole(VirtioDevice):
    device_id = DEVICE_ID
    features = F_SIZE
    queue_sizes = (64, 64)

    def __init__(self, sink=None):
        self.sink = sink or (lambda data: None)
        self.pending = bytearray()        # input not yet taken by the guest
        self.output = bytearray()         # everything the guest wrote

    def config(self) -> bytes:
        return struct.pack("<HHII", 80, 25, 1, 0)    # cols rows max_nr_ports emerg_wr

    def config_write(self, off, data) -> None:
        if off == 8 and data:                        # emerg_wr: one character out
            self._out(data[:1])

    def _out(self, data: bytes) -> None:
        self.output += data
        self.sink(bytes(data))

    def feed(self, data: bytes) -> None:
        self.pending += data
        self.poll()

    def poll(self) -> None:
        if self.pending and self.t.driver_ok():
            self.t.process(RX)

    def handle(self, qi, chain) -> int:
        if qi == TX:
            self._out(chain.read(self.mem))
            return 0
        if not self.pending:
            return None                              # keep the buffer until input arrives
        n = chain.write(self.mem, bytes(self.pending[:chain.write_len()]))
        del self.pending[:n]
        return n

    def notify(self, qi) -> None:
        if qi == TX or self.pending:
            self.t.process(qi)

    def get_state(self) -> dict:
        return {"pending": bytes(self.pending)}

    def set_state(self, st: dict) -> None:
        self.pending = bytearray(st["pending"])
