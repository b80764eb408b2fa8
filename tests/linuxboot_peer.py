"""Host-side peers for the Linux boot tests: a minimal Ethernet/IPv4 host on
the other end of the VM's virtio-net socket (it answers ARP for its address,
ICMP echo requests, UDP datagrams to port 7 upper-cased, and TFTP reads of
its `files`; TFTP writes are kept in `uploads`) and a vsock listener."""
from __future__ import annotations

import socket
import struct
import threading

HOST_MAC = bytes.fromhex("525400000002")
HOST_IP = bytes([10, 0, 2, 2])
ECHO_PORT = 7
TFTP_PORT = 69


def _ip_checksum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class EthernetPeer:
    """Runs in a thread on one end of a SOCK_DGRAM socketpair."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sock.settimeout(0.2)
        self.received = []                # UDP payloads seen (echo port)
        self.pings = 0
        self.files = {}                   # TFTP: name -> bytes served
        self.uploads = {}                 # TFTP: name -> bytes written by the guest
        self._wrq = {}                    # (guest port) -> [name, data]
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()

    def _loop(self) -> None:
        while not self.stop:
            try:
                f = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self._frame(f)
            except (struct.error, IndexError):
                pass

    def _frame(self, f: bytes) -> None:
        dst, src, etype = f[:6], f[6:12], struct.unpack("!H", f[12:14])[0]
        if etype == 0x0806:                       # ARP
            htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", f[14:22])
            sha, spa, tha, tpa = f[22:28], f[28:32], f[32:38], f[38:42]
            if op == 1 and tpa == HOST_IP:
                arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + HOST_MAC + HOST_IP + sha + spa
                self.sock.send(src + HOST_MAC + struct.pack("!H", 0x0806) + arp)
        elif etype == 0x0800:                     # IPv4
            ip = f[14:]
            ihl = (ip[0] & 0xF) * 4
            proto, saddr, daddr = ip[9], ip[12:16], ip[16:20]
            total = struct.unpack("!H", ip[2:4])[0]
            if daddr != HOST_IP:
                return
            if proto == 1 and ip[ihl] == 8:              # ICMP echo request
                icmp = bytearray(ip[ihl:total])
                icmp[0] = 0
                icmp[2:4] = b"\0\0"
                icmp[2:4] = struct.pack("!H", _ip_checksum(bytes(icmp)))
                self.pings += 1
                self._ip(src, saddr, 1, bytes(icmp))
                return
            if proto != 17:
                return
            sport, dport, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
            payload = ip[ihl + 8:ihl + ulen]
            if dport == ECHO_PORT:
                self.received.append(payload)
                self._udp(src, saddr, ECHO_PORT, sport, payload.upper())
            elif dport == TFTP_PORT:
                self._tftp(src, saddr, sport, payload)

    def _ip(self, mac, daddr, proto, body) -> None:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, proto, 0, HOST_IP, daddr)
        hdr = hdr[:10] + struct.pack("!H", _ip_checksum(hdr)) + hdr[12:]
        self.sock.send(mac + HOST_MAC + struct.pack("!H", 0x0800) + hdr + body)

    def _udp(self, mac, daddr, sport, dport, data) -> None:
        self._ip(mac, daddr, 17, struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data)

    def _tftp(self, mac, daddr, sport, p) -> None:
        """RFC 1350, one block each way (files under 512 bytes), options ignored (RFC 2347)."""
        op = struct.unpack("!H", p[:2])[0]
        if op == 1:                                       # RRQ
            name = p[2:].split(b"\0")[0].decode()
            data = self.files.get(name)
            if data is None:
                self._udp(mac, daddr, TFTP_PORT, sport, struct.pack("!HH", 5, 1) + b"no such file\0")
            else:
                self._udp(mac, daddr, TFTP_PORT, sport, struct.pack("!HH", 3, 1) + data[:511])
        elif op == 2:                                     # WRQ
            name = p[2:].split(b"\0")[0].decode()
            self._wrq[sport] = [name, b""]
            self._udp(mac, daddr, TFTP_PORT, sport, struct.pack("!HH", 4, 0))
        elif op == 3 and sport in self._wrq:              # DATA of an upload
            block = struct.unpack("!H", p[2:4])[0]
            self._wrq[sport][1] += p[4:]
            self._udp(mac, daddr, TFTP_PORT, sport, struct.pack("!HH", 4, block))
            if len(p) - 4 < 512:
                name, data = self._wrq.pop(sport)
                self.uploads[name] = data


class VsockListener:
    """A host process's side of a guest-initiated vsock connection: listens on
    <uds>_<port>, reads to the end, replies reversed."""

    def __init__(self, path: str):
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.srv.settimeout(120)
        self.got = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            c, _ = self.srv.accept()
        except OSError:
            return
        with c:
            c.settimeout(120)
            data = b""
            while True:
                b = c.recv(4096)
                if not b:
                    break
                data += b
            self.got = data
            c.sendall(data[::-1])

    def close(self) -> None:
        self.srv.close()
