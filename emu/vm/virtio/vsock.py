"""virtio-vsock (virtio 1.2, 5.10) to host Unix sockets, by Firecracker's
convention:

- a guest connecting to the host (CID 2) port P is connected to the Unix
  socket `<uds_path>_<P>` (a host process listens there);
- a host process connects to `<uds_path>` and writes "CONNECT <P>\\n"; the
  guest's listener on port P gets the connection and the host reads
  "OK <host port>\\n" before the stream.

Stream sockets only, with the specification's credit flow control: the
device advertises BUF_ALLOC bytes of buffer and its forwarded count, and
sends the guest no more than the guest's own credit allows. Connections are
host resources: a snapshot keeps the queues, not the connections."""
from __future__ import annotations

import os
import socket
import time
import struct

from emu.vm.virtio.mmio import VirtioDevice

DEVICE_ID = 19
RX, TX, EVT = 0, 1, 2
HOST_CID = 2
HDR = struct.Struct("<QQIIIHHIII")      # src_cid dst_cid src_port dst_port len type op flags buf_alloc fwd_cnt
TYPE_STREAM = 1
OP_REQUEST, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST = 1, 2, 3, 4, 5, 6, 7
SHUT_RCV, SHUT_SEND = 1, 2
BUF_ALLOC = 256 * 1024
MAX_PKT = 64 * 1024
HOST_PORT_BASE = 1 << 30


class _Conn:
    def __init__(self, sock, guest_port, host_port, connected):
        self.sock = sock
        self.guest_port = guest_port
        self.host_port = host_port
        self.connected = connected        # the guest answered / we answered the request
        self.fwd_cnt = 0                  # guest -> host bytes handed to the socket
        self.tx_cnt = 0                   # host -> guest bytes sent
        self.peer_buf_alloc = 0
        self.peer_fwd_cnt = 0
        self.host_eof = False
        self.handshake = b""              # host-initiated: "CONNECT n\n" being read

    def credit(self) -> int:
        return self.peer_buf_alloc - (self.tx_cnt - self.peer_fwd_cnt)


ACTIVE_SECONDS = 1.0              # host traffic this recent: the halted guest waits in real time


class VirtioVsock(VirtioDevice):
    device_id = DEVICE_ID
    queue_sizes = (128, 128, 16)

    def __init__(self, uds_path: str, cid: int = 3):
        if cid < 3 or cid >= 0xFFFFFFFF:
            raise ValueError("the guest CID must be at least 3")
        self.uds_path = uds_path
        self.cid = cid
        self.conns: dict[tuple, _Conn] = {}   # (guest port, host port) -> connection
        self.rx_queue: list[bytes] = []   # control packets for the guest, waiting for rx buffers
        self.next_host_port = HOST_PORT_BASE
        self.listener = None
        self.accepting: list[_Conn] = []  # host-initiated, before "CONNECT n"
        self.n_packets = 0
        self.last_activity = 0.0
        try:
            if os.path.exists(uds_path):
                os.unlink(uds_path)
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(uds_path)
            self.listener.listen(16)
            self.listener.setblocking(False)
        except OSError as e:
            raise ValueError("vsock: cannot listen on %s: %s" % (uds_path, e)) from None

    def config(self) -> bytes:
        return struct.pack("<Q", self.cid)

    def close(self) -> None:
        for c in list(self.conns.values()) + self.accepting:
            c.sock.close()
        self.conns.clear()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self.uds_path)
            except OSError:
                pass

    def reset(self) -> None:
        for c in self.conns.values():
            c.sock.close()
        self.conns.clear()
        self.rx_queue.clear()

    def get_state(self) -> dict:
        return {"n_packets": self.n_packets}

    def set_state(self, st: dict) -> None:
        self.n_packets = int(st["n_packets"])

    # ---- packets ----
    def _pkt(self, c: _Conn, op: int, payload: bytes = b"", flags: int = 0) -> bytes:
        return HDR.pack(HOST_CID, self.cid, c.host_port, c.guest_port, len(payload), TYPE_STREAM, op, flags,
                        BUF_ALLOC, c.fwd_cnt) + payload

    def _rst(self, src_port, dst_port) -> bytes:
        return HDR.pack(HOST_CID, self.cid, src_port, dst_port, 0, TYPE_STREAM, OP_RST, 0, 0, 0)

    def _queue(self, pkt: bytes) -> None:
        self.rx_queue.append(pkt)

    def _drop(self, c: _Conn, rst: bool = True) -> None:
        self.conns.pop((c.guest_port, c.host_port), None)
        try:
            c.sock.close()
        except OSError:
            pass
        if rst:
            self._queue(self._pkt(c, OP_RST))

    # ---- guest -> host (tx queue) ----
    def handle(self, qi, chain) -> int:
        if qi == RX:
            if not self.rx_queue:
                return None                          # keep the buffer for later
            pkt = self.rx_queue.pop(0)
            if chain.write_len() < len(pkt):
                self.t.log("VirtioVsock: rx buffer of %d bytes for a %d-byte packet" % (chain.write_len(), len(pkt)))
                return 0
            return chain.write(self.mem, pkt)
        if qi == EVT:
            return None
        if chain.read_len() < HDR.size:
            self.t.log("VirtioVsock: tx packet shorter than its header")
            return 0
        data = chain.read(self.mem, min(chain.read_len(), HDR.size + MAX_PKT))
        self._from_guest(data)
        return 0

    def _from_guest(self, data: bytes) -> None:
        self.n_packets += 1
        self.last_activity = time.monotonic()
        (src_cid, dst_cid, src_port, dst_port, length, typ, op, flags, buf_alloc, fwd_cnt) = HDR.unpack_from(data)
        payload = data[HDR.size:HDR.size + length]
        if dst_cid != HOST_CID or src_cid != self.cid or typ != TYPE_STREAM:
            if op != OP_RST:
                self._queue(self._rst(dst_port, src_port))
            return
        key = (src_port, dst_port)
        c = self.conns.get(key)
        if c is not None:
            c.peer_buf_alloc, c.peer_fwd_cnt = buf_alloc, fwd_cnt
        if op == OP_REQUEST:
            if c is not None:
                return
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect("%s_%d" % (self.uds_path, dst_port))
                s.setblocking(False)
            except OSError:
                self._queue(self._rst(dst_port, src_port))
                return
            c = _Conn(s, src_port, dst_port, True)
            c.peer_buf_alloc, c.peer_fwd_cnt = buf_alloc, fwd_cnt
            self.conns[key] = c
            self._queue(self._pkt(c, OP_RESPONSE))
        elif c is None:
            if op != OP_RST:
                self._queue(self._rst(dst_port, src_port))
        elif op == OP_RESPONSE:
            c.connected = True
            try:
                c.sock.sendall(b"OK %d\n" % c.host_port)
            except OSError:
                self._drop(c)
        elif op == OP_RW:
            try:
                c.sock.setblocking(True)
                c.sock.sendall(payload)
                c.sock.setblocking(False)
                c.fwd_cnt += len(payload)
            except OSError:
                self._drop(c)
                return
            if c.fwd_cnt & 0xFFFF < len(payload):      # every 64 KiB: tell the guest its credit
                self._queue(self._pkt(c, OP_CREDIT_UPDATE))
        elif op == OP_CREDIT_REQUEST:
            self._queue(self._pkt(c, OP_CREDIT_UPDATE))
        elif op == OP_SHUTDOWN:
            if flags & SHUT_SEND:
                try:
                    c.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            if flags & (SHUT_RCV | SHUT_SEND) == (SHUT_RCV | SHUT_SEND):
                self._drop(c)                 # closed both ways: the RST completes it (5.10.6.6)
        elif op == OP_RST:
            self._drop(c, rst=False)

    # ---- host -> guest ----
    def active(self) -> bool:
        return bool(self.conns or self.accepting) or time.monotonic() - self.last_activity < ACTIVE_SECONDS

    def wait_fds(self) -> list:
        fds = [c.sock for c in self.conns.values() if c.connected and not c.host_eof and c.credit() > 0]
        fds += [c.sock for c in self.accepting]
        if self.listener is not None:
            fds.append(self.listener)
        return fds

    def poll(self) -> None:
        if not self.t.driver_ok():
            return
        self._accept()
        for c in list(self.conns.values()):
            if not c.connected or c.host_eof:
                continue
            while c.credit() > 0 and len(self.rx_queue) < 64:
                try:
                    data = c.sock.recv(min(MAX_PKT, c.credit()))
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    c.host_eof = True         # the host will send no more (it may still read)
                    self._queue(self._pkt(c, OP_SHUTDOWN, flags=SHUT_SEND))
                    break
                c.tx_cnt += len(data)
                self.last_activity = time.monotonic()
                self._queue(self._pkt(c, OP_RW, data))
        if self.rx_queue:
            self.t.process(RX)

    def _accept(self) -> None:
        if self.listener is None:
            return
        while True:
            try:
                s, _ = self.listener.accept()
            except (BlockingIOError, OSError):
                break
            s.setblocking(False)
            self.accepting.append(_Conn(s, 0, 0, False))
        for c in list(self.accepting):
            try:
                b = c.sock.recv(64)
            except BlockingIOError:
                continue
            except OSError:
                b = b""
            if not b:
                self.accepting.remove(c)
                c.sock.close()
                continue
            c.handshake += b
            if b"\n" not in c.handshake:
                if len(c.handshake) > 32:
                    self.accepting.remove(c)
                    c.sock.close()
                continue
            self.accepting.remove(c)
            line, _, rest = c.handshake.partition(b"\n")
            parts = line.split()
            if len(parts) != 2 or parts[0] != b"CONNECT" or not parts[1].isdigit() or int(parts[1]) >= 1 << 32:
                c.sock.close()
                continue
            c.guest_port = int(parts[1])
            c.host_port = self.next_host_port
            self.next_host_port += 1
            self.conns[(c.guest_port, c.host_port)] = c
            self._queue(self._pkt(c, OP_REQUEST))
            if rest:
                c.handshake = rest            # bytes after the line wait for the connection (rare)

    def notify(self, qi) -> None:
        if qi == TX:
            self.t.process(TX)
            if self.rx_queue:
                self.t.process(RX)
        elif qi == RX and self.rx_queue:
            self.t.process(RX)
