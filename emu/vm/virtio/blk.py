"""virtio-blk (virtio 1.2, 5.2) over a host file."""
from __future__ import annotations

import os
import struct

from emu.vm.virtio.mmio import VirtioDevice

DEVICE_ID = 2
F_RO, F_BLK_SIZE, F_FLUSH = 1 << 5, 1 << 6, 1 << 9
T_IN, T_OUT, T_FLUSH, T_GET_ID = 0, 1, 4, 8
S_OK, S_IOERR, S_UNSUPP = 0, 1, 2
SECTOR = 512


class VirtioBlk(VirtioDevice):
    device_id = DEVICE_ID
    queue_sizes = (256,)

    def __init__(self, path: str, readonly: bool = False):
        self.path = path
        self.readonly = readonly or not os.access(path, os.W_OK)
        self.fd = os.open(path, os.O_RDONLY if self.readonly else os.O_RDWR)
        self.size = os.fstat(self.fd).st_size
        self.features = F_FLUSH | F_BLK_SIZE | (F_RO if self.readonly else 0)
        self.n_requests = 0
        self.n_errors = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def config(self) -> bytes:
        # capacity (sectors), size_max, seg_max, geometry (c h s), blk_size
        return struct.pack("<QIIHBBI", self.size // SECTOR, 1 << 20, 128, 0, 0, 0, SECTOR) + bytes(0x40)

    def get_state(self) -> dict:
        return {"n_requests": self.n_requests, "n_errors": self.n_errors}

    def set_state(self, st: dict) -> None:
        self.n_requests, self.n_errors = int(st["n_requests"]), int(st["n_errors"])

    def bad_request(self, qi, chain) -> int:
        """A chain that failed its checks: IOERR in its status byte, when the
        last writable buffer checked before the fault can hold it."""
        self.n_errors += 1
        if chain.writable and chain.writable[-1][1] >= 1:
            addr, _n = chain.writable[-1]
            self.mem.write(addr, bytes([S_IOERR]))
            return 1
        return 0

    def handle(self, qi, chain) -> int:
        """One request (5.2.6): header, data buffers, status byte; bytes written."""
        self.n_requests += 1
        m = self.mem
        if not chain.writable or chain.writable[-1][1] < 1 or chain.read_len() < 16:
            self.n_errors += 1
            self.t.log("VirtioBlk: request %d malformed (no header or no status byte)" % chain.head)
            return self.bad_request(qi, chain)
        hdr = chain.read(m, 16)
        rtype, _res, sector = struct.unpack("<IIQ", hdr)
        st_addr, st_len = chain.writable[-1]
        # data: the readable buffers after the 16-byte header, the writable ones before the status
        out_data = []
        skip = 16
        for a, n in chain.readable:
            if skip >= n:
                skip -= n
                continue
            out_data.append((a + skip, n - skip))
            skip = 0
        in_data = list(chain.writable[:-1])
        if st_len > 1:
            in_data.append((st_addr, st_len - 1))
            st_addr += st_len - 1
        status, written = S_OK, 0
        pos = sector * SECTOR
        if rtype == T_IN:
            total = sum(n for _a, n in in_data)
            if out_data or pos + total > self.size:
                status = S_IOERR
            else:
                for a, n in in_data:
                    m.write(a, os.pread(self.fd, n, pos))
                    pos += n
                    written += n
        elif rtype == T_OUT:
            total = sum(n for _a, n in out_data)
            if self.readonly or in_data or pos + total > self.size:
                status = S_IOERR
            else:
                for a, n in out_data:
                    os.pwrite(self.fd, m.read(a, n), pos)
                    pos += n
        elif rtype == T_FLUSH:
            if not self.readonly:
                os.fsync(self.fd)
        elif rtype == T_GET_ID:
            ident = b"emu-virtio-blk".ljust(20, b"\0")
            for a, n in in_data:
                k = min(n, 20 - written)
                if k <= 0:
                    break
                m.write(a, ident[written:written + k])
                written += k
        else:
            status = S_UNSUPP
        if status != S_OK:
            self.n_errors += 1
        m.write(st_addr, bytes([status]))
        return written + 1
