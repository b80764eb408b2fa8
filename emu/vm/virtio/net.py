"""virtio-net (virtio 1.2, 5.1) over a host datagram socket: each datagram
is one Ethernet frame. The backend is a Unix socket (one end of a
socketpair, or the path of a Unix datagram socket a host process bound),
so the guest's network reaches only that host process and nothing outside
this machine."""
from __future__ import annotations

import socket
import time
import struct

from emu.vm.virtio.mmio import VirtioDevice

DEVICE_ID = 1
F_MAC, F_STATUS = 1 << 5, 1 << 16
RX, TX = 0, 1
HDR_LEN = 12                      # struct virtio_net_hdr_v1 (with VERSION_1)
MAX_FRAME = 1514
DEFAULT_MAC = bytes.fromhex("525400123456")


ACTIVE_SECONDS = 1.0              # host traffic this recent: the halted guest waits in real time


class VirtioNet(VirtioDevice):
    device_id = DEVICE_ID
    features = F_MAC | F_STATUS
    queue_sizes = (256, 256)

    def __init__(self, backend, mac: bytes = DEFAULT_MAC):
        self.path = None
        if isinstance(backend, socket.socket):
            self.sock = backend
        else:
            self.path = backend
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self.sock.connect(backend)
            except OSError as e:
                raise ValueError("net: cannot connect to %s: %s" % (backend, e)) from None
        if self.sock.type != socket.SOCK_DGRAM and self.sock.type != socket.SOCK_SEQPACKET:
            raise ValueError("net: the backend must be a datagram socket")
        self.sock.setblocking(False)
        self.mac = mac
        self.rx_frames: list[bytes] = []
        self.n_tx = self.n_rx = self.n_dropped = 0
        self.last_activity = 0.0

    def config(self) -> bytes:
        return self.mac + struct.pack("<HH", 1, 1)       # mac, status LINK_UP, max_virtqueue_pairs

    def close(self) -> None:
        self.sock.close()

    def get_state(self) -> dict:
        return {"n_tx": self.n_tx, "n_rx": self.n_rx, "n_dropped": self.n_dropped}

    def set_state(self, st: dict) -> None:
        self.n_tx, self.n_rx, self.n_dropped = int(st["n_tx"]), int(st["n_rx"]), int(st["n_dropped"])

    def handle(self, qi, chain) -> int:
        if qi == TX:
            data = chain.read(self.mem, min(chain.read_len(), HDR_LEN + 65536))
            frame = data[HDR_LEN:]
            if frame:
                try:
                    self.sock.send(frame)
                    self.n_tx += 1
                    self.last_activity = time.monotonic()
                except OSError:
                    self.n_dropped += 1
            return 0
        if not self.rx_frames:
            return None
        frame = self.rx_frames[0]
        if chain.write_len() < HDR_LEN + len(frame):
            self.rx_frames.pop(0)
            self.n_dropped += 1
            return 0
        self.rx_frames.pop(0)
        hdr = struct.pack("<BBHHHHH", 0, 0, 0, 0, 0, 0, 1)   # no offloads, one buffer
        self.n_rx += 1
        return chain.write(self.mem, hdr + frame)

    def active(self) -> bool:
        return time.monotonic() - self.last_activity < ACTIVE_SECONDS

    def wait_fds(self) -> list:
        return [self.sock]

    def poll(self) -> None:
        if not self.t.driver_ok():
            return
        while len(self.rx_frames) < 256:
            try:
                f = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if len(f) >= 14:
                self.rx_frames.append(f[:MAX_FRAME])
                self.last_activity = time.monotonic()
        if self.rx_frames:
            self.t.process(RX)

    def notify(self, qi) -> None:
        if qi == TX:
            self.t.process(TX)
        elif self.rx_frames:
            self.t.process(RX)
