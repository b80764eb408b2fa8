"""virtio-rng / entropy device (virtio 1.2, 5.4): fills each buffer the
driver offers. The bytes come from a seeded generator (SHA-256 of the seed
and a counter), so a run is reproducible and the generator's state is two
integers in a snapshot."""
from __future__ import annotations

import hashlib

from emu.vm.virtio.mmio import VirtioDevice

DEVICE_ID = 4
MAX_REQUEST = 1 << 16


class VirtioRng(VirtioDevice):
    device_id = DEVICE_ID
    queue_sizes = (64,)

    def __init__(self, seed: int = 0):
        self.seed = seed & ((1 << 64) - 1)
        self.counter = 0
        self.n_bytes = 0

    def _bytes(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self.seed.to_bytes(8, "little") + self.counter.to_bytes(8, "little")).digest()
            self.counter += 1
        return bytes(out[:n])

    def handle(self, qi, chain) -> int:
        n = min(chain.write_len(), MAX_REQUEST)
        written = chain.write(self.mem, self._bytes(n))
        self.n_bytes += written
        return written

    def get_state(self) -> dict:
        return {"seed": self.seed, "counter": self.counter, "n_bytes": self.n_bytes}

    def set_state(self, st: dict) -> None:
        self.seed, self.counter, self.n_bytes = int(st["seed"]), int(st["counter"]), int(st["n_bytes"])
