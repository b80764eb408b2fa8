"""Sockets on host sockets (AF_UNIX, AF_INET, AF_INET6), denied in a
sandbox; select/pselect6 and epoll on host file descriptors."""
from __future__ import annotations

import os
import select
import struct
from typing import TYPE_CHECKING

from emu.linux import errno as E
from emu.linux.fdtable import OpenFile
from emu.linux.syscalls import s32, syscall

if TYPE_CHECKING:
    import socket

SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
AF_UNIX = 1                         # <sys/socket.h>; the socket module loads lazily


def _net_allowed(s) -> bool:
    return s.p.fs.sandbox is None


def _install_socket(s, sock: socket.socket, flags: int) -> int:
    fd = sock.detach()
    if flags & SOCK_NONBLOCK:
        os.set_blocking(fd, False)
    return s.p.fds.install(OpenFile(fd, "socket:[%d]" % fd, 2), cloexec=bool(flags & SOCK_CLOEXEC))


@syscall(41, "socket")
def sys_socket(s, family, type_, proto, *_):
    if not _net_allowed(s):
        return -E.EACCES
    import socket                   # (here, not at start-up: the module costs milliseconds)
    if family not in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6):
        return -E.EAFNOSUPPORT
    sock = socket.socket(family, type_ & 0xF, proto)
    return _install_socket(s, sock, type_)


@syscall(53, "socketpair")
def sys_socketpair(s, family, type_, proto, sv, *_):
    import socket
    if family != socket.AF_UNIX:
        return -E.EAFNOSUPPORT
    a, b = socket.socketpair(family, type_ & 0xF, proto)
    fa, fb = _install_socket(s, a, type_), _install_socket(s, b, type_)
    s.write(sv, struct.pack("<ii", fa, fb))
    return 0


def _sock(s, fd) -> socket.socket:
    import socket
    f = s.fd(fd)
    return socket.socket(fileno=os.dup(f.host_fd))


def _sockaddr(s, addr, length) -> bytes:
    return s.read(addr, length) if addr and length else b""


def _unix_address(s, raw: bytes, bind: bool):
    """An AF_UNIX address through the file-system gate (emu/linux/fs.py):
    (address for the host, descriptors to close after the call)."""
    if len(raw) >= 2 and struct.unpack_from("<H", raw)[0] == AF_UNIX:
        return s.p.fs.unix_address(raw, bind)
    return raw, []


def _call_addr(s, fd, addr, length, op):
    """connect/bind through the raw sockaddr bytes (libc on the host side)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if s32(length) < 0 or s32(length) > 4096:
        return -E.EINVAL
    raw, keep = _unix_address(s, _sockaddr(s, addr, length), op == "bind")
    try:
        buf = ctypes.create_string_buffer(raw, len(raw))
        r = getattr(libc, op)(s.fd(fd).host_fd, buf, len(raw))
        if r < 0:
            return -E.from_oserror(OSError(ctypes.get_errno(), ""))
        return r
    finally:
        for k in keep:
            os.close(k)


@syscall(42, "connect")
def sys_connect(s, fd, addr, length, *_):
    return _call_addr(s, fd, addr, length, "connect")


@syscall(49, "bind")
def sys_bind(s, fd, addr, length, *_):
    return _call_addr(s, fd, addr, length, "bind")


@syscall(50, "listen")
def sys_listen(s, fd, backlog, *_):
    sock = _sock(s, fd)
    try:
        sock.listen(s32(backlog))
    finally:
        sock.close()
    return 0


@syscall(288, "accept4")
def sys_accept4(s, fd, addr, addrlen, flags, *_):
    import ctypes
    if s.p.itimers or s.p.bridge is not None:                  # a timer's signal may interrupt a blocking accept
        from emu.linux.timers import wait_ready
        r = wait_ready(s, s.fd(fd).host_fd)
        if r is not None:
            return r
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.accept4(s.fd(fd).host_fd, None, None, 0)
    if r < 0:
        return -E.from_oserror(OSError(ctypes.get_errno(), ""))
    if flags & SOCK_NONBLOCK:
        os.set_blocking(r, False)
    return s.p.fds.install(OpenFile(r, "socket:[%d]" % r, 2), cloexec=bool(flags & SOCK_CLOEXEC))


@syscall(43, "accept")
def sys_accept(s, fd, addr, addrlen, *_):
    return sys_accept4(s, fd, addr, addrlen, 0)


@syscall(44, "sendto")
def sys_sendto(s, fd, buf, length, flags, addr, addrlen):
    data = s.read(buf, min(length, 1 << 24))
    if addr:
        import ctypes
        if s32(addrlen) < 0 or s32(addrlen) > 4096:
            return -E.EINVAL
        raw, keep = _unix_address(s, _sockaddr(s, addr, addrlen), False)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            name = ctypes.create_string_buffer(raw, max(1, len(raw)))
            dbuf = ctypes.create_string_buffer(data, max(1, len(data)))
            return _libc_call(libc.sendto, s.fd(fd).host_fd, dbuf, ctypes.c_size_t(len(data)), ctypes.c_int(s32(flags)),
                              name, ctypes.c_uint(len(raw)))
        finally:
            for k in keep:
                os.close(k)
    sock = _sock(s, fd)
    try:
        return sock.send(data, flags)
    finally:
        sock.close()


# ---- sendmsg / recvmsg: through the host's libc on a host msghdr, with the
# descriptors SCM_RIGHTS carries translated between guest and host numbers ----

SOL_SOCKET, SCM_RIGHTS, MSG_CMSG_CLOEXEC = 1, 1, 0x40000000


def _cmsgs(raw: bytes):
    """(offset of the data, level, type, data) for each cmsghdr in raw."""
    off = 0
    while off + 16 <= len(raw):
        ln, level, typ = struct.unpack_from("<Qii", raw, off)
        if ln < 16 or off + ln > len(raw):
            break
        yield off + 16, level, typ, raw[off + 16:off + ln]
        off += (ln + 7) & ~7


def _host_msghdr(ct, name, data_len, control):
    class Iov(ct.Structure):
        _fields_ = [("base", ct.c_void_p), ("len", ct.c_size_t)]

    class Msg(ct.Structure):
        _fields_ = [("name", ct.c_void_p), ("namelen", ct.c_uint32), ("iov", ct.POINTER(Iov)),
                    ("iovlen", ct.c_size_t), ("control", ct.c_void_p), ("controllen", ct.c_size_t),
                    ("flags", ct.c_int)]
    nbuf = ct.create_string_buffer(name, max(len(name), 1))
    dbuf = ct.create_string_buffer(max(data_len, 1))
    cbuf = ct.create_string_buffer(control, max(len(control), 1))
    iov = Iov(ct.cast(dbuf, ct.c_void_p), data_len)
    msg = Msg(ct.cast(nbuf, ct.c_void_p) if name else None, len(name), ct.pointer(iov), 1,
              ct.cast(cbuf, ct.c_void_p) if control else None, len(control), 0)
    return msg, nbuf, dbuf, cbuf, iov


def _libc_call(fn, *args):
    import ctypes
    r = fn(*args)
    if r < 0:
        return -E.from_oserror(OSError(ctypes.get_errno(), ""))
    return r


@syscall(46, "sendmsg")
def sys_sendmsg(s, fd, msg, flags, *_):
    import ctypes as ct
    f = s.fd(fd)
    name_p, namelen, iov_p, iovlen, ctrl_p, ctrllen, _ = struct.unpack("<QI4xQQQQi4x", s.read(msg, 56))
    if iovlen > 1024:
        return -E.EINVAL
    data = b"".join(s.read(b, n) for b, n in (struct.unpack_from("<QQ", s.read(iov_p, 16 * iovlen), 16 * i)
                                              for i in range(iovlen)) if n) if iovlen else b""
    control = bytearray(s.read(ctrl_p, ctrllen) if ctrl_p and ctrllen else b"")
    for off, level, typ, payload in _cmsgs(bytes(control)):
        if level == SOL_SOCKET and typ == SCM_RIGHTS:
            for i in range(len(payload) // 4):
                g = s.fd(struct.unpack_from("<i", payload, 4 * i)[0])      # EBADF for a descriptor not there
                struct.pack_into("<i", control, off + 4 * i, g.host_fd)
    if namelen > 4096:
        return -E.EINVAL
    name, keep = _unix_address(s, s.read(name_p, namelen) if name_p and namelen else b"", False)
    try:
        m, nbuf, dbuf, cbuf, iov = _host_msghdr(ct, name, len(data), bytes(control))
        ct.memmove(dbuf, data, len(data))
        libc = ct.CDLL(None, use_errno=True)
        r = _libc_call(libc.sendmsg, f.host_fd, ct.byref(m), flags)
        del nbuf, dbuf, cbuf, iov
    finally:
        for k in keep:
            os.close(k)
    if r == -E.EPIPE and not flags & 0x4000:         # not MSG_NOSIGNAL: SIGPIPE after the call
        from emu.linux.timers import raise_signal
        raise_signal(s, 13)
    return r


@syscall(47, "recvmsg")
def sys_recvmsg(s, fd, msg, flags, *_):
    import ctypes as ct
    f = s.fd(fd)
    if (s.p.itimers or s.p.bridge is not None) and not flags & 0x40:
        from emu.linux.timers import wait_ready
        r = wait_ready(s, f.host_fd)
        if r is not None:
            return r
    name_p, namelen, iov_p, iovlen, ctrl_p, ctrllen, _ = struct.unpack("<QI4xQQQQi4x", s.read(msg, 56))
    if iovlen > 1024:
        return -E.EINVAL
    iovs = [struct.unpack_from("<QQ", s.read(iov_p, 16 * iovlen), 16 * i) for i in range(iovlen)] if iovlen else []
    total = min(sum(n for _, n in iovs), 1 << 24)
    m, nbuf, dbuf, cbuf, iov = _host_msghdr(ct, b"\0" * (namelen if name_p else 0), total,
                                            b"\0" * (ctrllen if ctrl_p else 0))
    libc = ct.CDLL(None, use_errno=True)
    n = _libc_call(libc.recvmsg, f.host_fd, ct.byref(m), flags & ~MSG_CMSG_CLOEXEC | MSG_CMSG_CLOEXEC)
    if n < 0:
        return n
    data = dbuf.raw[:n]
    pos = 0
    for base, ln in iovs:
        if pos >= n:
            break
        s.write(base, data[pos:pos + ln])
        pos += ln
    control = bytearray(cbuf.raw[:m.controllen] if m.control else b"")
    for off, level, typ, payload in _cmsgs(bytes(control)):
        if level == SOL_SOCKET and typ == SCM_RIGHTS:
            for i in range(len(payload) // 4):
                h = struct.unpack_from("<i", payload, 4 * i)[0]
                try:
                    what = os.readlink("/proc/self/fd/%d" % h)
                except OSError:
                    what = ""
                g = s.p.fds.install(OpenFile(h, what, 2), cloexec=bool(flags & MSG_CMSG_CLOEXEC))
                struct.pack_into("<i", control, off + 4 * i, g)
    if control:
        s.write(ctrl_p, bytes(control))
    if name_p and m.namelen:
        s.write(name_p, nbuf.raw[:min(m.namelen, namelen)])
    s.write(msg + 8, struct.pack("<I", m.namelen if name_p else 0))
    s.write(msg + 40, struct.pack("<Q", len(control)))
    s.write(msg + 48, struct.pack("<i", m.flags))
    return n


@syscall(45, "recvfrom")
def sys_recvfrom(s, fd, buf, length, flags, addr, addrlen):
    if (s.p.itimers or s.p.bridge is not None) and not flags & 0x40:      # not MSG_DONTWAIT: a timer's signal may interrupt the wait
        from emu.linux.timers import wait_ready
        r = wait_ready(s, s.fd(fd).host_fd)
        if r is not None:
            return r
    sock = _sock(s, fd)
    try:
        data = sock.recv(min(length, 1 << 24), flags)
    finally:
        sock.close()
    s.write(buf, data)
    if addrlen:
        s.write(addrlen, struct.pack("<I", 0))
    return len(data)


@syscall(48, "shutdown")
def sys_shutdown(s, fd, how, *_):
    sock = _sock(s, fd)
    try:
        sock.shutdown(how)
    finally:
        sock.close()
    return 0


@syscall(54, "setsockopt")
def sys_setsockopt(s, fd, level, name, val, length, *_):
    sock = _sock(s, fd)
    try:
        sock.setsockopt(level, name, s.read(val, length))
    finally:
        sock.close()
    return 0


@syscall(55, "getsockopt")
def sys_getsockopt(s, fd, level, name, val, lenp, *_):
    (length,) = struct.unpack("<I", s.read(lenp, 4))
    sock = _sock(s, fd)
    try:
        data = sock.getsockopt(level, name, length)
    finally:
        sock.close()
    s.write(val, data)
    s.write(lenp, struct.pack("<I", len(data)))
    return 0


def _name(s, fd, addr, lenp, peer):
    (length,) = struct.unpack("<I", s.read(lenp, 4))
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(128)
    ln = ctypes.c_uint(128)
    r = (libc.getpeername if peer else libc.getsockname)(s.fd(fd).host_fd, buf, ctypes.byref(ln))
    if r < 0:
        return -E.from_oserror(OSError(ctypes.get_errno(), ""))
    s.write(addr, buf.raw[:min(length, ln.value)])
    s.write(lenp, struct.pack("<I", ln.value))
    return 0


@syscall(51, "getsockname")
def sys_getsockname(s, fd, addr, lenp, *_):
    return _name(s, fd, addr, lenp, False)


@syscall(52, "getpeername")
def sys_getpeername(s, fd, addr, lenp, *_):
    return _name(s, fd, addr, lenp, True)


# ---- select ----
def _fdset(s, addr, nfds):
    if not addr:
        return []
    raw = s.read(addr, (nfds + 63) // 64 * 8)
    bits = int.from_bytes(raw, "little")
    return [i for i in range(nfds) if bits >> i & 1]


def _put_fdset(s, addr, nfds, fds):
    if addr:
        bits = sum(1 << i for i in fds)
        s.write(addr, bits.to_bytes((nfds + 63) // 64 * 8, "little"))


def _select(s, nfds, r, w, x, timeout_ns, sigmask=None):
    """select/pselect6 on the host fds, timed on the guest clock
    (emu/linux/timers.py wait: a wait without fds is a sleep; a timer's
    signal interrupts it with EINTR, leaving the sets alone)."""
    from emu.linux.timers import wait
    nfds = s32(nfds)
    if nfds < 0:
        return -E.EINVAL
    nfds = min(nfds, 1024)
    sets = [_fdset(s, a, nfds) for a in (r, w, x)]
    hmap = {}
    for lst in sets:
        for fd in lst:
            f = s.p.fds.get(fd)
            if f is None:
                return -E.EBADF
            hmap[fd] = f.host_fd
    host_sets = [[hmap[fd] for fd in lst] for lst in sets]
    found = [[], [], []]

    def poll(timeout_s):
        res = select.select(*host_sets, timeout_s)
        found[:] = [[fd for fd in lst if hmap[fd] in hits] for lst, hits in zip(sets, res)]
        return sum(len(lst) for lst in found)

    from emu.linux.timers import timerfds_of
    files = [s.p.fds.get(fd) for fd in hmap]
    tfds = timerfds_of(files)
    host = len(tfds) < len(files)
    n, elapsed, interrupted = wait(s, timeout_ns, poll if hmap else None, sigmask, tfds, host)
    if interrupted and not n:
        return -E.EINTR, elapsed
    for a, lst in zip((r, w, x), found):
        _put_fdset(s, a, nfds, lst)
    return n, elapsed


def _timeout_back(s, addr, timeout_ns, elapsed, fmt_us):
    """Linux writes the time not slept back (fs/select.c poll_select_finish;
    not for a zero timeout)."""
    if not addr or not timeout_ns:
        return
    left = max(0, timeout_ns - elapsed)
    sub = left % 10**9 // 1000 if fmt_us else left % 10**9
    try:
        s.write(addr, struct.pack("<qq", left // 10**9, sub))
    except Exception:
        pass


@syscall(23, "select")
def sys_select(s, nfds, r, w, x, tv, *_):
    timeout = None
    if tv:
        sec, usec = struct.unpack("<qq", s.read(tv, 16))
        q = abs(usec) // 10**6 * (1 if usec >= 0 else -1)        # C division, as kern_select normalizes
        sec, usec = sec + q, usec - q * 10**6
        if sec < 0 or usec < 0:
            return -E.EINVAL
        timeout = sec * 10**9 + usec * 1000
    ret = _select(s, nfds, r, w, x, timeout)
    if isinstance(ret, int):
        return ret
    _timeout_back(s, tv, timeout, ret[1], True)
    return ret[0]


@syscall(270, "pselect6")
def sys_pselect6(s, nfds, r, w, x, ts, sig):
    from emu.linux.timers import read_sigmask
    timeout = None
    if ts:
        sec, nsec = struct.unpack("<qq", s.read(ts, 16))
        if sec < 0 or not 0 <= nsec < 10**9:
            return -E.EINVAL
        timeout = sec * 10**9 + nsec
    mask = None
    if sig:
        addr, size = struct.unpack("<QQ", s.read(sig, 16))
        try:
            mask = read_sigmask(s, addr, size)
        except ValueError:
            return -E.EINVAL
    ret = _select(s, nfds, r, w, x, timeout, mask)
    if isinstance(ret, int):
        return ret
    _timeout_back(s, ts, timeout, ret[1], False)
    return ret[0]


# ---- epoll ----
class Epoll:
    def __init__(self):
        self.ep = select.epoll()
        self.data: dict[int, tuple[int, int]] = {}    # host fd -> (guest events, user data)
        self.files: dict[int, OpenFile] = {}            # host fd -> the guest's open file


@syscall(291, "epoll_create1")
def sys_epoll_create1(s, flags, *_):
    e = Epoll()
    f = OpenFile(os.dup(e.ep.fileno()), "anon_inode:[eventpoll]", 2)
    f.epoll = e
    return s.p.fds.install(f, cloexec=bool(flags & 0o2000000))


@syscall(213, "epoll_create")
def sys_epoll_create(s, size, *_):
    return sys_epoll_create1(s, 0) if s32(size) > 0 else -E.EINVAL


@syscall(233, "epoll_ctl")
def sys_epoll_ctl(s, epfd, op, fd, event, *_):
    e = getattr(s.fd(epfd), "epoll", None)
    if e is None:
        return -E.EINVAL
    f = s.fd(fd)
    host = f.host_fd
    if op == 2:                       # EPOLL_CTL_DEL
        e.ep.unregister(host)
        e.data.pop(host, None)
        e.files.pop(host, None)
        return 0
    events, data = struct.unpack("<IQ", s.read(event, 12))
    if op == 1:
        e.ep.register(host, events)
    else:
        e.ep.modify(host, events)
    e.data[host] = (events, data)
    e.files[host] = f
    return 0


def _epoll_wait(s, epfd, events, maxevents, timeout_ms, sigmask=None):
    from emu.linux.timers import ceil_s, wait
    e = getattr(s.fd(epfd), "epoll", None)
    if e is None or maxevents <= 0:
        return -E.EINVAL
    found = []

    def poll(timeout_s):
        found[:] = e.ep.poll(-1 if timeout_s is None else ceil_s(timeout_s) / 1000.0, maxevents)
        return len(found)

    from emu.linux.timers import timerfds_of
    tfds = timerfds_of(e.files.values())
    host = len(tfds) < len(e.files)
    n, _elapsed, interrupted = wait(s, None if timeout_ms < 0 else timeout_ms * 10**6,
                                    poll if e.data else None, sigmask, tfds, host)
    if interrupted and not n:
        return -E.EINTR
    out = b"".join(struct.pack("<IQ", ev, e.data.get(hfd, (0, 0))[1]) for hfd, ev in found)
    s.write(events, out)
    return n


@syscall(232, "epoll_wait")
def sys_epoll_wait(s, epfd, events, maxevents, timeout, *_):
    return _epoll_wait(s, epfd, events, s32(maxevents), s32(timeout))


@syscall(281, "epoll_pwait")
def sys_epoll_pwait(s, epfd, events, maxevents, timeout, sigmask, sigsetsize):
    from emu.linux.timers import read_sigmask
    try:
        mask = read_sigmask(s, sigmask, sigsetsize)
    except ValueError:
        return -E.EINVAL
    return _epoll_wait(s, epfd, events, s32(maxevents), s32(timeout), mask)
