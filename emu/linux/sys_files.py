"""File and directory system calls, on host file descriptors, with paths
resolved through the guest file system (emu.linux.fs)."""
from __future__ import annotations

import fcntl as hostfcntl
import os
import select
import stat as st
import struct
import termios

from emu.linux.procfs import proc_fd_entries, proc_file, proc_link
from emu.linux import errno as E
from emu.linux.fdtable import OpenFile
from emu.linux.syscalls import (AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, O_ACCMODE, O_APPEND,
                                O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOCTTY, O_NOFOLLOW, O_NONBLOCK, O_TRUNC, pack_stat,
                                s32, s64, syscall)

MAX_IO = 1 << 24

# guest open flags -> host open flags
_FLAG_MAP = ((O_CREAT, os.O_CREAT), (O_EXCL, os.O_EXCL), (O_TRUNC, os.O_TRUNC), (O_APPEND, os.O_APPEND),
             (O_NONBLOCK, os.O_NONBLOCK), (O_DIRECTORY, os.O_DIRECTORY), (O_NOFOLLOW, os.O_NOFOLLOW),
             # O_NOCTTY matters: without it a session leader opening a terminal makes it its controlling
             # terminal (and gets its SIGHUP), as on Linux; the synchronous-I/O and atime flags pass too
             (O_NOCTTY, os.O_NOCTTY), (0o10000, os.O_DSYNC), (0o4000000, os.O_SYNC & ~os.O_DSYNC),
             (0o1000000, os.O_NOATIME))


def _host_flags(flags: int) -> int:
    out = flags & O_ACCMODE
    for g, h in _FLAG_MAP:
        if flags & g:
            out |= h
    return out


def _open(s, dirfd, path_addr, flags, mode):
    gpath = s.guest_path_at(dirfd, path_addr)
    # the guest's own /proc/self files (emu/linux/procfs.py); hypervisor layer:
    # /proc/cpuinfo, the DMI strings and /proc/uptime come from the virtual platform
    data = proc_file(s.p, gpath)
    g = getattr(s.p, "guest", None)
    if data is None and g is not None:
        data = g.virtual_file(gpath, s.v)
    if data is not None:
        return _open_virtual(s, gpath, data, flags)
    if g is not None and g.virtual_dir(gpath) is not None:
        return _open_virtual_dir(s, g, gpath, flags)
    write = bool(flags & O_ACCMODE or flags & (O_CREAT | O_TRUNC | O_APPEND))
    from emu.linux.procmem import is_own_mem
    if is_own_mem(s.p, gpath):            # the guest's own memory (emu/linux/procmem.py)
        from emu.linux.procmem import open_mem
        return open_mem(s, gpath, flags, bool(flags & O_CLOEXEC))
    from emu.linux.fs import host_proc_refused
    if host_proc_refused(gpath):
        return -E.EACCES                  # the emulator's own memory and pointers
    if write and flags & O_ACCMODE or flags & O_TRUNC:
        r = _text_busy(s, dirfd, path_addr, flags)
        if r:
            return r
    special = s._special_path(gpath)
    if special is not None:               # this process's own files: reopened as Linux does
        host, inside = special
        if write and not inside:
            return -E.EROFS
        hfd = os.open(host, _host_flags(flags) | os.O_CLOEXEC, mode & 0o7777)
    else:                                 # through the gate: resolved once, opened relative to it
        hfd, r = s.p.fs.open(gpath, _host_flags(flags) | os.O_CLOEXEC, mode & 0o7777, write=write,
                                   internal=True)
        host, inside = r.host, r.inside
        r.close()
    is_dir = st.S_ISDIR(os.fstat(hfd).st_mode)
    f = OpenFile(hfd, host, flags, is_dir, gpath=gpath)
    if not inside:
        f.outside = True                  # fchmod, ftruncate... refuse it (Syscalls.check_fd_write)
    fd = s.p.fds.install(f, cloexec=bool(flags & O_CLOEXEC))
    if is_dir:
        f.dir_entries = proc_fd_entries(s.p, gpath)   # /proc/self/fd lists the guest's descriptors
        if f.dir_entries is None and g is not None:
            f.dir_entries = _virtual_dir_entries(g, gpath)   # a machine template's /sys/devices/system/cpu
    return fd


def _text_busy(s, dirfd, path_addr, flags) -> int:
    """-ETXTBSY when a write open (or O_TRUNC) names the program a process
    of the guest's tree runs, as Linux refuses (the running image is read
    from the file as it is touched, emu/linux/process.ProgramFile); else 0."""
    ptree = s.p.ptree
    if ptree is None:
        return 0
    try:
        with s.lookup_at(dirfd, path_addr, follow=not flags & O_NOFOLLOW) as r:
            info = r.stat()
    except (OSError, ValueError):
        return 0                            # no such file (yet): the open itself answers
    if st.S_ISREG(info.st_mode) and ptree.busy(info.st_dev, info.st_ino):
        return -E.ETXTBSY
    return 0


def _virtual_dir_entries(g, gpath):
    """getdents64 entries of a directory the hypervisor describes, or None."""
    names = g.virtual_dir(gpath)
    if names is None:
        return None
    d = os.stat_result((0o40755, 1, 0, 2, 0, 0, 0, 0, 0, 0))
    ents = [(".", d), ("..", d)]
    for i, n in enumerate(names):
        full = gpath.rstrip("/") + "/" + n
        isdir = g.virtual_dir(full) is not None
        ents.append((n, os.stat_result((0o40755 if isdir else 0o100444, 2000 + i, 0, 1, 0, 0, 4096, 0, 0, 0))))
    return ents


def _open_virtual_dir(s, g, gpath, flags):
    """A directory the hypervisor describes (it may not exist on the host:
    a template's cpu3 on a two-CPU host): listed from the template."""
    if flags & O_ACCMODE or flags & (O_CREAT | O_TRUNC | O_APPEND):
        return -E.EISDIR
    hfd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)    # (a directory to hold; never listed)
    f = OpenFile(hfd, gpath, flags, True, gpath=gpath)
    f.dir_entries = _virtual_dir_entries(g, gpath)
    return s.p.fds.install(f, cloexec=bool(flags & O_CLOEXEC))


def _open_virtual(s, gpath, data, flags):
    """An in-memory read-only file (a memfd) with the given contents."""
    if data is False:
        return -E.ENOENT
    if flags & O_ACCMODE or flags & (O_CREAT | O_TRUNC | O_APPEND):
        return -E.EACCES
    hfd = os.memfd_create("emu-virtual", os.MFD_CLOEXEC)
    os.write(hfd, data)
    os.lseek(hfd, 0, os.SEEK_SET)
    f = OpenFile(hfd, gpath, flags, False, gpath=gpath)
    return s.p.fds.install(f, cloexec=bool(flags & O_CLOEXEC))


@syscall(2, "open")
def sys_open(s, path, flags, mode, *_):
    return _open(s, AT_FDCWD, path, flags, mode)


@syscall(257, "openat")
def sys_openat(s, dirfd, path, flags, mode, *_):
    return _open(s, dirfd, path, flags, mode)


@syscall(85, "creat")
def sys_creat(s, path, mode, *_):
    return _open(s, AT_FDCWD, path, O_CREAT | O_TRUNC | 1, mode)


@syscall(3, "close")
def sys_close(s, fd, *_):
    return 0 if s.p.fds.close(s32(fd)) else -E.EBADF


@syscall(0, "read")
def sys_read(s, fd, buf, count, *_):
    f = s.fd(fd)
    if f.is_dir:
        return -E.EISDIR
    if getattr(f, "timerfd", None) is not None:
        from emu.linux.sys_proc import timerfd_read
        return timerfd_read(s, f, buf, count)
    if getattr(f, "special", None) == "mem":
        from emu.linux.procmem import transfer
        return transfer(s, f, buf, count, None, False)
    if s.p.itimers or s.p.bridge is not None:                  # a timer's signal may interrupt a blocking read
        from emu.linux.timers import wait_ready
        r = wait_ready(s, f.host_fd)
        if r is not None:
            return r
    data = os.read(f.host_fd, min(count, MAX_IO))
    s.write(buf, data)
    return len(data)


@syscall(1, "write")
def sys_write(s, fd, buf, count, *_):
    f = s.fd(fd)
    if getattr(f, "special", None) == "mem":
        from emu.linux.procmem import transfer
        return transfer(s, f, buf, count, None, True)
    data = s.read(buf, min(count, MAX_IO))
    try:
        return os.write(f.host_fd, data)
    except BrokenPipeError:
        from emu.linux.timers import raise_signal
        raise_signal(s, 13)          # SIGPIPE, delivered after the call returns EPIPE
        return -E.EPIPE


@syscall(17, "pread64")
def sys_pread64(s, fd, buf, count, off, *_):
    f = s.fd(fd)
    if getattr(f, "special", None) == "mem":
        from emu.linux.procmem import transfer
        return transfer(s, f, buf, count, off, False)
    data = os.pread(f.host_fd, min(count, MAX_IO), s64(off))     # (loff_t: a negative one is EINVAL)
    s.write(buf, data)
    return len(data)


@syscall(18, "pwrite64")
def sys_pwrite64(s, fd, buf, count, off, *_):
    f = s.fd(fd)
    if getattr(f, "special", None) == "mem":
        from emu.linux.procmem import transfer
        return transfer(s, f, buf, count, off, True)
    return os.pwrite(s.fd(fd).host_fd, s.read(buf, min(count, MAX_IO)), s64(off))


def _iovecs(s, iov, cnt):
    if cnt > 1024:
        raise OSError(22, "EINVAL")
    raw = s.read(iov, 16 * cnt) if cnt else b""
    return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(cnt)]


@syscall(19, "readv")
def sys_readv(s, fd, iov, cnt, *_):
    f = s.fd(fd)
    if s.p.itimers or s.p.bridge is not None:
        from emu.linux.timers import wait_ready
        r = wait_ready(s, f.host_fd)
        if r is not None:
            return r
    total = 0
    for base, length in _iovecs(s, iov, cnt):
        if not length:
            continue
        data = os.read(f.host_fd, min(length, MAX_IO))
        s.write(base, data)
        total += len(data)
        if len(data) < length:
            break
    return total


@syscall(20, "writev")
def sys_writev(s, fd, iov, cnt, *_):
    f = s.fd(fd)
    data = b"".join(s.read(base, length) for base, length in _iovecs(s, iov, cnt) if length)
    try:
        return os.write(f.host_fd, data) if data else 0
    except BrokenPipeError:
        from emu.linux.timers import raise_signal
        raise_signal(s, 13)          # SIGPIPE, delivered after the call returns EPIPE
        return -E.EPIPE


@syscall(8, "lseek")
def sys_lseek(s, fd, off, whence, *_):
    f = s.fd(fd)
    if f.is_dir:
        if s64(off) == 0 and whence == 0:
            f.dir_entries, f.dir_pos = None, 0
            return 0
        return -E.EINVAL
    if getattr(f, "special", None) == "mem":
        from emu.linux.procmem import lseek
        return lseek(f, off, whence)
    return os.lseek(f.host_fd, s64(off), whence)


@syscall(5, "fstat")
def sys_fstat(s, fd, buf, *_):
    s.write(buf, pack_stat(os.fstat(s.fd(fd).host_fd)))
    return 0


@syscall(4, "stat")
def sys_stat(s, path, buf, *_):
    with s.lookup_at(AT_FDCWD, path) as r:
        s.write(buf, pack_stat(r.stat()))
    return 0


@syscall(6, "lstat")
def sys_lstat(s, path, buf, *_):
    with s.lookup_at(AT_FDCWD, path, follow=False) as r:
        s.write(buf, pack_stat(r.stat()))
    return 0


def _stat_at(s, dirfd, path, flags):
    if flags & AT_EMPTY_PATH and s.cstr(path) == "":
        if s32(dirfd) == AT_FDCWD:
            return os.stat(s.p.fs.cwd)
        return os.fstat(s.fd(dirfd).host_fd)
    with s.lookup_at(dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW) as r:
        return r.stat()


@syscall(262, "newfstatat")
def sys_newfstatat(s, dirfd, path, buf, flags, *_):
    s.write(buf, pack_stat(_stat_at(s, dirfd, path, flags)))
    return 0


@syscall(332, "statx")
def sys_statx(s, dirfd, path, flags, mask, buf, *_):
    r = _stat_at(s, dirfd, path, flags)

    def ts(sec_f, ns):
        return struct.pack("<qI4x", int(sec_f), ns % 10**9)
    out = struct.pack("<IIQIIIHxxQQQQ", 0x7FF, r.st_blksize, 0, r.st_nlink, r.st_uid, r.st_gid,
                      r.st_mode & 0xFFFF, r.st_ino, r.st_size, r.st_blocks, 0)
    out += ts(r.st_atime, r.st_atime_ns) + ts(getattr(r, "st_birthtime", r.st_ctime), r.st_ctime_ns)
    out += ts(r.st_ctime, r.st_ctime_ns) + ts(r.st_mtime, r.st_mtime_ns)
    out += struct.pack("<IIII", os.major(r.st_rdev), os.minor(r.st_rdev), os.major(r.st_dev), os.minor(r.st_dev))
    s.write(buf, out.ljust(256, b"\0"))
    return 0


@syscall(21, "access")
def sys_access(s, path, mode, *_):
    return sys_faccessat(s, AT_FDCWD, path, mode)


@syscall(269, "faccessat")
def sys_faccessat(s, dirfd, path, mode, *_):
    with s.lookup_at(dirfd, path) as r:
        r.stat()                                  # ENOENT, ENOTDIR...
        if mode & 2 and not r.inside:
            return -E.EROFS
        return 0 if os.access(r.path, mode, **r.at(), follow_symlinks=not r.nofollow) else -E.EACCES


@syscall(439, "faccessat2")
def sys_faccessat2(s, dirfd, path, mode, flags, *_):
    return sys_faccessat(s, dirfd, path, mode)


# terminal and pty ioctls the host answers for the same descriptor (each guest
# process is a host process, its terminal the host's): request -> (bytes read
# from the guest before, bytes written back after); the kernel's struct
# layouts are the host's (x86-64). Process groups are the host's, as for
# getpgrp/setpgid. (include/uapi/asm-generic/ioctls.h)
_TTY_IOCTLS = {
    0x5401: (0, 36),       # TCGETS: struct termios
    0x5402: (36, 0),       # TCSETS
    0x5403: (36, 0),       # TCSETSW
    0x5404: (36, 0),       # TCSETSF
    0x540F: (0, 4),        # TIOCGPGRP
    0x5410: (4, 0),        # TIOCSPGRP
    0x5411: (0, 4),        # TIOCOUTQ
    0x5413: (0, 8),        # TIOCGWINSZ
    0x5414: (8, 0),        # TIOCSWINSZ
    0x541B: (0, 4),        # FIONREAD
    0x5420: (4, 0),        # TIOCPKT
    0x5424: (0, 4),        # TIOCGETD
    0x5425: (4, 0),        # TIOCSETD
    0x5429: (0, 4),        # TIOCGSID
    0x80045430: (0, 4),    # TIOCGPTN: the pty's number
    0x40045431: (4, 0),    # TIOCSPTLCK: (un)lock the pty
    0x80045432: (0, 4),    # TIOCGDEV
    0x80045438: (0, 4),    # TIOCGPKT
    0x80045439: (0, 4),    # TIOCGPTLCK
}
# requests whose argument is a plain value
_TTY_VALUE_IOCTLS = frozenset((0x5409, 0x540A, 0x540B, 0x540C, 0x540D, 0x540E, 0x5422, 0x5427, 0x5428))
# TCSBRK, TCXONC, TCFLSH, TIOCEXCL, TIOCNXCL, TIOCSCTTY, TIOCNOTTY, TIOCSBRK, TIOCCBRK
TIOCGPTPEER = 0x5441


@syscall(16, "ioctl")
def sys_ioctl(s, fd, req, arg, *_):
    f = s.fd(fd)
    req &= 0xFFFFFFFF
    if req == 0x5421:            # FIONBIO: what fcntl(F_SETFL, O_NONBLOCK) does (Python's setblocking)
        (on,) = struct.unpack("<i", s.read(arg, 4))
        if getattr(f, "timerfd", None) is not None:
            f.flags = (f.flags & ~O_NONBLOCK) | (O_NONBLOCK if on else 0)
        else:
            os.set_blocking(f.host_fd, not on)
        return 0
    if req in (0x5450, 0x5451):  # FIONCLEX, FIOCLEX
        (s.p.fds.cloexec.add if req == 0x5451 else s.p.fds.cloexec.discard)(s32(fd))
        return 0
    if req == 0x541B and getattr(f, "timerfd", None) is not None:
        return -E.ENOTTY
    io = _TTY_IOCTLS.get(req)
    if io is not None:
        n_in, n_out = io
        buf = s.read(arg, n_in) if n_in else bytes(max(n_out, 4))
        out = hostfcntl.ioctl(f.host_fd, req, buf)
        if n_out:
            s.write(arg, out[:n_out])
        return 0
    if req in _TTY_VALUE_IOCTLS:
        return hostfcntl.ioctl(f.host_fd, req, arg & 0xFFFFFFFF)
    if req == TIOCGPTPEER:       # the slave of a pty master, opened (flags in arg)
        from emu.linux.syscalls import O_CLOEXEC
        hfd = hostfcntl.ioctl(f.host_fd, req, _host_flags(arg & ~O_CLOEXEC) | os.O_CLOEXEC)
        return s.p.fds.install(OpenFile(hfd, "/dev/pts/?", arg & 3), cloexec=bool(arg & O_CLOEXEC))
    return -E.ENOTTY


@syscall(32, "dup")
def sys_dup(s, fd, *_):
    f = s.fd(fd)
    f.refs += 1
    return s.p.fds.install(f)


def _dup3(s, old, new, flags):
    f = s.fd(old)
    old, new = s32(old), s32(new)
    if new < 0 or new > 65535:
        return -E.EBADF
    if old == new:
        return new
    s.p.fds.put_at(new, f, cloexec=bool(flags & O_CLOEXEC))
    return new


@syscall(33, "dup2")
def sys_dup2(s, old, new, *_):
    if s32(old) == s32(new):
        s.fd(old)
        return s32(new)
    return _dup3(s, old, new, 0)


@syscall(292, "dup3")
def sys_dup3(s, old, new, flags, *_):
    if s32(old) == s32(new):
        return -E.EINVAL
    return _dup3(s, old, new, flags)


@syscall(72, "fcntl")
def sys_fcntl(s, fd, cmd, arg, *_):
    f = s.fd(fd)
    fd = s32(fd)
    if cmd in (0, 1030):         # F_DUPFD, F_DUPFD_CLOEXEC
        f.refs += 1
        return s.p.fds.install(f, lowest=arg, cloexec=cmd == 1030)
    if cmd == 1:                 # F_GETFD
        return 1 if fd in s.p.fds.cloexec else 0
    if cmd == 2:                 # F_SETFD
        (s.p.fds.cloexec.add if arg & 1 else s.p.fds.cloexec.discard)(fd)
        return 0
    if cmd in (3, 4) and getattr(f, "timerfd", None) is not None:   # the guest's O_NONBLOCK (the eventfd behind never blocks)
        if cmd == 4:
            f.flags = (f.flags & ~O_NONBLOCK) | (arg & O_NONBLOCK)
            return 0
        return (f.flags & (O_NONBLOCK | 3)) | 0o100000
    if cmd == 3:                 # F_GETFL
        hf = hostfcntl.fcntl(f.host_fd, hostfcntl.F_GETFL)
        out = hf & 3
        for g, h in _FLAG_MAP:
            if hf & h:
                out |= g
        return out | 0o100000    # O_LARGEFILE, as the kernel reports on x86-64
    if cmd == 4:                 # F_SETFL
        hostfcntl.fcntl(f.host_fd, hostfcntl.F_SETFL, _host_flags(arg & (O_APPEND | O_NONBLOCK)))
        return 0
    if cmd in _FCNTL_LOCKS:
        # record locks (F_GETLK/F_SETLK/F_SETLKW and the OFD ones): each guest
        # process is a host process, so the host's locks are the guest's, across
        # the tree; struct flock is the same on the host (x86-64)
        raw = s.read(arg, 32)
        if cmd == 7 or cmd == 38:
            out = _blocking_lock(s, f.host_fd, cmd, raw)
        else:
            out = hostfcntl.fcntl(f.host_fd, cmd, raw)
        if cmd in (5, 36):       # F_GETLK: the holder's pid, in the guest's namespace
            l_type, l_pid = struct.unpack_from("<h", out, 0)[0], struct.unpack_from("<i", out, 24)[0]
            if l_type != 2 and l_pid > 0 and s.p.ptree is not None:    # (F_UNLCK: no holder)
                out = out[:24] + struct.pack("<i", s.p.ptree.guest_pid(l_pid)) + out[28:]
            s.write(arg, out)
        return 0
    if cmd in _FCNTL_HOST:
        # plain integer commands the host answers for this file as Linux would:
        # F_NOTIFY, F_SETPIPE_SZ/F_GETPIPE_SZ, F_ADD_SEALS/F_GET_SEALS, leases
        return hostfcntl.fcntl(f.host_fd, cmd, arg & 0xFFFFFFFF)
    return -E.EINVAL


_FCNTL_LOCKS = frozenset((5, 6, 7, 36, 37, 38))
_FCNTL_HOST = frozenset((1024, 1025, 1026, 1031, 1032, 1033, 1034))


def _blocking_lock(s, host_fd, cmd, raw):
    """F_SETLKW / F_OFD_SETLKW: waits for the lock; a deliverable signal
    interrupts the wait (ERESTARTSYS), as on Linux."""
    bridge = s.p.bridge
    if bridge is not None:
        bridge.interruptible = True
    try:
        return hostfcntl.fcntl(host_fd, cmd, raw)
    finally:
        if bridge is not None:
            bridge.interruptible = False


@syscall(79, "getcwd")
def sys_getcwd(s, buf, size, *_):
    cwd = s.p.fs.guest_view(s.p.fs.cwd).encode("utf-8", "surrogateescape") + b"\0"
    if len(cwd) > size:
        return -E.ERANGE
    s.write(buf, cwd)
    return len(cwd)


@syscall(80, "chdir")
def sys_chdir(s, path, *_):
    p = s.cstr(path)
    g = s.p.fs.guest_abspath(p)
    with s.lookup_at(AT_FDCWD, path) as r:
        if not st.S_ISDIR(r.stat().st_mode):
            return -E.ENOTDIR
    s.p.fs.cwd = g
    return 0


@syscall(81, "fchdir")
def sys_fchdir(s, fd, *_):
    f = s.fd(fd)
    if not f.is_dir:
        return -E.ENOTDIR
    s.p.fs.cwd = f.gpath or f.path
    return 0


@syscall(161, "chroot")
def sys_chroot(s, path, *_):
    # CAP_SYS_CHROOT (fs/open.c): the guest has the host user's privilege
    p = s.cstr(path)
    with s.lookup_at(AT_FDCWD, path) as r:          # ENOENT, ENOTDIR, ELOOP first, as Linux's lookup
        if not st.S_ISDIR(r.stat().st_mode):
            return -E.ENOTDIR
    if os.geteuid() != 0:
        return -E.EPERM
    s.p.fs.chroot(p)
    return 0


def _readlink(s, r, buf, size):
    if s32(size) <= 0:
        return -E.EINVAL
    target = os.fsencode(os.readlink(r.path, **r.at()))[:size]
    s.write(buf, target)
    return len(target)


@syscall(89, "readlink")
def sys_readlink(s, path, buf, size, *_):
    return sys_readlinkat(s, AT_FDCWD, path, buf, size)


@syscall(267, "readlinkat")
def sys_readlinkat(s, dirfd, path, buf, size, *_):
    if s32(size) <= 0:
        return -E.EINVAL
    link = proc_link(s.p, s.guest_path_at(dirfd, path))   # the guest's own /proc/self links
    if link is False:
        return -E.ENOENT
    if link is not None:
        data = link.encode("utf-8", "surrogateescape")[:size]
        s.write(buf, data)
        return len(data)
    with s.lookup_at(dirfd, path, follow=False) as r:
        return _readlink(s, r, buf, size)


@syscall(217, "getdents64")
def sys_getdents64(s, fd, buf, count, *_):
    f = s.fd(fd)
    if not f.is_dir:
        return -E.ENOTDIR
    if f.dir_entries is None:
        # through the open directory itself, never its path looked up again
        top = os.path.realpath(f.path) == s.p.fs.root_host
        ents = [(".", os.fstat(f.host_fd)), ("..", os.fstat(f.host_fd) if top else
                                           os.stat("..", dir_fd=f.host_fd))]
        with os.scandir(os.dup(f.host_fd)) as it:
            for e in it:                       # the host's order, as a native run sees it
                try:
                    ents.append((e.name, e.stat(follow_symlinks=False)))
                except OSError:
                    continue
        f.dir_entries, f.dir_pos = ents, 0
    out = bytearray()
    while f.dir_pos < len(f.dir_entries):
        name, sr = f.dir_entries[f.dir_pos]
        nb = name.encode("utf-8", "surrogateescape") + b"\0"
        reclen = (19 + len(nb) + 7) & ~7
        if len(out) + reclen > count:
            break
        dtype = {st.S_IFDIR: 4, st.S_IFREG: 8, st.S_IFLNK: 10, st.S_IFCHR: 2, st.S_IFBLK: 6,
                 st.S_IFIFO: 1, st.S_IFSOCK: 12}.get(st.S_IFMT(sr.st_mode), 0)
        out += struct.pack("<QqHB", sr.st_ino, f.dir_pos + 1, reclen, dtype) + nb.ljust(reclen - 19, b"\0")
        f.dir_pos += 1
    if not out and f.dir_pos < len(f.dir_entries):
        return -E.EINVAL
    s.write(buf, bytes(out))
    return len(out)


def _mutating(s, dirfd, path, follow=False):
    """The gate's answer for a call that changes what the path names."""
    return s.lookup_at(dirfd, path, follow=follow, change=True)


def _by_fd(r, fn, *a) -> None:
    """fn (chmod, chown) on the object the walk found, through a descriptor
    of it: a symlink swapped in meanwhile is never followed."""
    if r.dirfd < 0:
        fn(r.host, *a)
        return
    pin = os.open(r.target, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=r.dirfd)
    try:
        if st.S_ISLNK(os.fstat(pin).st_mode):
            raise OSError(40, "Too many levels of symbolic links")
        fn("/proc/self/fd/%d" % pin, *a)
    finally:
        os.close(pin)


@syscall(83, "mkdir")
def sys_mkdir(s, path, mode, *_):
    return sys_mkdirat(s, AT_FDCWD, path, mode)


@syscall(258, "mkdirat")
def sys_mkdirat(s, dirfd, path, mode, *_):
    with _mutating(s, dirfd, path) as r:
        os.mkdir(r.path, mode & 0o7777, **r.at())
    return 0


@syscall(87, "unlink")
def sys_unlink(s, path, *_):
    with _mutating(s, AT_FDCWD, path) as r:
        os.unlink(r.path, **r.at())
    return 0


@syscall(84, "rmdir")
def sys_rmdir(s, path, *_):
    with _mutating(s, AT_FDCWD, path) as r:
        os.rmdir(r.path, **r.at())
    return 0


@syscall(263, "unlinkat")
def sys_unlinkat(s, dirfd, path, flags, *_):
    with _mutating(s, dirfd, path) as r:
        (os.rmdir if flags & AT_REMOVEDIR else os.unlink)(r.path, **r.at())
    return 0


@syscall(82, "rename")
def sys_rename(s, old, new, *_):
    return sys_renameat2(s, AT_FDCWD, old, AT_FDCWD, new, 0)


@syscall(264, "renameat")
def sys_renameat(s, olddir, old, newdir, new, *_):
    return sys_renameat2(s, olddir, old, newdir, new, 0)


@syscall(316, "renameat2")
def sys_renameat2(s, olddir, old, newdir, new, flags, *_):
    with _mutating(s, olddir, old) as a, _mutating(s, newdir, new) as b:
        if flags & 1:                           # RENAME_NOREPLACE
            try:
                os.stat(b.path, **b.at(), follow_symlinks=False)
                return -E.EEXIST
            except FileNotFoundError:
                pass
        os.rename(a.path, b.path, src_dir_fd=a.at().get("dir_fd"), dst_dir_fd=b.at().get("dir_fd"))
    return 0


@syscall(88, "symlink")
def sys_symlink(s, target, path, *_):
    return sys_symlinkat(s, target, AT_FDCWD, path)


@syscall(266, "symlinkat")
def sys_symlinkat(s, target, dirfd, path, *_):
    with _mutating(s, dirfd, path) as r:
        os.symlink(s.cstr(target), r.path, **r.at())
    return 0


@syscall(86, "link")
def sys_link(s, old, new, *_):
    return sys_linkat(s, AT_FDCWD, old, AT_FDCWD, new, 0)


@syscall(265, "linkat")
def sys_linkat(s, olddir, old, newdir, new, flags, *_):
    # the source must be writable too: a hard link to a file outside the
    # sandbox would make it writable through the link
    with _mutating(s, olddir, old, follow=bool(flags & 0x400)) as a, _mutating(s, newdir, new) as b:
        os.link(a.path, b.path, src_dir_fd=a.at().get("dir_fd"), dst_dir_fd=b.at().get("dir_fd"),
                follow_symlinks=False)
    return 0


@syscall(90, "chmod")
def sys_chmod(s, path, mode, *_):
    return sys_fchmodat(s, AT_FDCWD, path, mode)


@syscall(268, "fchmodat")
def sys_fchmodat(s, dirfd, path, mode, *_):
    with _mutating(s, dirfd, path, follow=True) as r:
        _by_fd(r, os.chmod, mode & 0o7777)
    return 0


@syscall(91, "fchmod")
def sys_fchmod(s, fd, mode, *_):
    f = s.fd(fd)
    s.check_fd_write(f)
    os.fchmod(f.host_fd, mode & 0o7777)
    return 0


@syscall(77, "ftruncate")
def sys_ftruncate(s, fd, length, *_):
    f = s.fd(fd)
    s.check_fd_write(f)
    if s64(length) < 0:
        return -E.EINVAL
    os.ftruncate(f.host_fd, s64(length))
    return 0


@syscall(76, "truncate")
def sys_truncate(s, path, length, *_):
    if s64(length) < 0:
        return -E.EINVAL
    busy = _text_busy(s, AT_FDCWD, path, 0)         # (do_sys_truncate: get_write_access)
    if busy:
        return busy
    with _mutating(s, AT_FDCWD, path, follow=True) as r:
        if r.dirfd < 0:
            os.truncate(r.host, s64(length))
        else:
            fd = os.open(r.target, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=r.dirfd)
            try:
                os.ftruncate(fd, s64(length))
            finally:
                os.close(fd)
    return 0


@syscall(74, "fsync")
def sys_fsync(s, fd, *_):
    os.fsync(s.fd(fd).host_fd)
    return 0


@syscall(75, "fdatasync")
def sys_fdatasync(s, fd, *_):
    os.fsync(s.fd(fd).host_fd)
    return 0


@syscall(280, "utimensat")
def sys_utimensat(s, dirfd, path, times, flags, *_):
    ns = None
    if times:
        raw = struct.unpack("<qqqq", s.read(times, 32))
        for sec, nsec in (raw[0:2], raw[2:4]):
            if not (0 <= nsec < 10**9 or nsec in (UTIME_NOW, UTIME_OMIT)) or abs(sec) > (1 << 62) // 10**9:
                return -E.EINVAL
        ns = raw
    if not path:                          # futimens: the descriptor itself
        f = s.fd(dirfd)
        s.check_fd_write(f)
        _utime(f.host_fd, _times_ns(os.fstat(f.host_fd), ns) if ns else None)
        return 0
    with _mutating(s, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW) as r:
        if r.dirfd < 0:
            cur = os.stat(r.host, follow_symlinks=r.follow)
            _utime(r.host, _times_ns(cur, ns) if ns else None, follow_symlinks=r.follow)
            return 0
        # the object the walk found, through a descriptor of it
        pin = os.open(r.target, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=r.dirfd)
        try:
            info = os.fstat(pin)
            if st.S_ISLNK(info.st_mode):  # AT_SYMLINK_NOFOLLOW on a link: the link itself
                _utime(r.target, _times_ns(info, ns) if ns else None, dir_fd=r.dirfd, follow_symlinks=False)
            else:
                _utime("/proc/self/fd/%d" % pin, _times_ns(info, ns) if ns else None)
        finally:
            os.close(pin)
    return 0


def _utime(target, ns, **kw):
    """os.utime with (atime, mtime) in ns, or None: both now (os.utime takes no ns=None)."""
    if ns is None:
        os.utime(target, None, **kw)
    else:
        os.utime(target, ns=ns, **kw)


UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


def _times_ns(cur, ns):
    """(atime, mtime) in ns from utimensat's two timespecs and the current times."""
    import time as _t
    a_s, a_ns, m_s, m_ns = ns
    now = _t.time_ns()
    at = now if a_ns == UTIME_NOW else cur.st_atime_ns if a_ns == UTIME_OMIT else a_s * 10**9 + a_ns
    mt = now if m_ns == UTIME_NOW else cur.st_mtime_ns if m_ns == UTIME_OMIT else m_s * 10**9 + m_ns
    return at, mt


def _pipe(s, fds, flags):
    r, w = os.pipe()
    if flags & O_NONBLOCK:
        os.set_blocking(r, False)
        os.set_blocking(w, False)
    cl = bool(flags & O_CLOEXEC)
    gr = s.p.fds.install(OpenFile(r, "pipe:[r]", 0), cloexec=cl)
    gw = s.p.fds.install(OpenFile(w, "pipe:[w]", 1), cloexec=cl)
    s.write(fds, struct.pack("<ii", gr, gw))
    return 0


@syscall(22, "pipe")
def sys_pipe(s, fds, *_):
    return _pipe(s, fds, 0)


@syscall(293, "pipe2")
def sys_pipe2(s, fds, flags, *_):
    return _pipe(s, fds, flags)


@syscall(7, "poll")
def sys_poll(s, fds, nfds, timeout, *_):
    t = s32(timeout)
    return _poll(s, fds, nfds, None if t < 0 else t * 10**6)[0]


@syscall(271, "ppoll")
def sys_ppoll(s, fds, nfds, tsp, sigmask, sigsetsize, *_):
    from emu.linux.timers import read_sigmask
    timeout = None
    if tsp:
        sec, nsec = struct.unpack("<qq", s.read(tsp, 16))
        if sec < 0 or not 0 <= nsec < 10**9:
            return -E.EINVAL
        timeout = sec * 10**9 + nsec
    try:
        mask = read_sigmask(s, sigmask, sigsetsize)
    except ValueError:
        return -E.EINVAL
    n, elapsed = _poll(s, fds, nfds, timeout, mask)
    if tsp and timeout:                  # the time not slept goes back (fs/select.c poll_select_finish)
        left = max(0, timeout - elapsed)
        s.write(tsp, struct.pack("<qq", left // 10**9, left % 10**9))
    return n


def _poll(s, fds, nfds, timeout_ns, sigmask=None):
    """poll/ppoll on the host fds, timed on the guest clock (emu/linux/timers.py
    wait): (result, ns elapsed)."""
    from emu.linux.timers import ceil_s, wait
    if nfds > 1 << 20:
        return -E.EINVAL, 0
    raw = bytearray(s.read(fds, 8 * nfds)) if nfds else bytearray()
    poller = select.poll()
    entries = []
    nval = 0
    for i in range(nfds):
        fd, events, _ = struct.unpack_from("<ihh", raw, 8 * i)
        f = s.p.fds.get(fd) if fd >= 0 else None
        entries.append((fd, f))
        if f is not None:
            poller.register(f.host_fd, events & 0xFFFF)
        elif fd >= 0:
            nval += 1                   # POLLNVAL: ready at once
    ready = {}

    def poll(timeout_s):
        ready.clear()
        ready.update(poller.poll(0 if nval else ceil_s(timeout_s)))
        n = nval
        for fd, f in entries:
            if f is not None and ready.get(f.host_fd, 0):
                n += 1
        return n

    from emu.linux.timers import timerfds_of
    tfds = timerfds_of(f for _fd, f in entries)
    host = any(f is not None and getattr(f, "timerfd", None) is None for _fd, f in entries) or nval
    n, elapsed, interrupted = wait(s, timeout_ns, poll if host or tfds else None, sigmask, tfds, bool(host))
    if interrupted and not n:
        return -E.EINTR, elapsed
    n = 0
    for i, (fd, f) in enumerate(entries):
        rev = 0x20 if f is None and fd >= 0 else ready.get(f.host_fd, 0) if f else 0   # POLLNVAL
        struct.pack_into("<h", raw, 8 * i + 6, rev)
        n += bool(rev)
    if nfds:
        s.write(fds, bytes(raw))
    return n, elapsed


# ---- descriptor kinds with no file behind: eventfd, memfd ----

@syscall(290, "eventfd2")
def sys_eventfd2(s, initval, flags, *_):
    if flags & ~(O_CLOEXEC | O_NONBLOCK | 1):        # EFD_SEMAPHORE = 1
        return -E.EINVAL
    hfd = os.eventfd(initval & 0xFFFFFFFF, (os.EFD_NONBLOCK if flags & O_NONBLOCK else 0) |
                     (os.EFD_SEMAPHORE if flags & 1 else 0) | os.EFD_CLOEXEC)
    return s.p.fds.install(OpenFile(hfd, "anon_inode:[eventfd]", 2, gpath="anon_inode:[eventfd]"),
                           cloexec=bool(flags & O_CLOEXEC))


@syscall(284, "eventfd")
def sys_eventfd(s, initval, *_):
    return sys_eventfd2(s, initval, 0)


@syscall(319, "memfd_create")
def sys_memfd_create(s, name, flags, *_):
    MFD_CLOEXEC, MFD_ALLOW_SEALING = 1, 2
    if flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING):
        return -E.EINVAL
    label = s.cstr(name, 250)
    hfd = os.memfd_create(label, os.MFD_CLOEXEC | (os.MFD_ALLOW_SEALING if flags & MFD_ALLOW_SEALING else 0))
    path = "/memfd:%s (deleted)" % label
    return s.p.fds.install(OpenFile(hfd, path, 2, gpath=path), cloexec=bool(flags & MFD_CLOEXEC))


# ---- positioned vectored I/O, space allocation ----

def _preadv(s, fd, iov, cnt, off):
    f = s.fd(fd)
    if f.is_dir:
        return -E.EISDIR
    off = s64(off)
    if off == -1:                                    # preadv2 with offset -1: the file position
        return sys_readv(s, fd, iov, cnt)
    if off < 0:
        return -E.EINVAL
    total = 0
    for base, length in _iovecs(s, iov, cnt):
        if not length:
            continue
        data = os.pread(f.host_fd, min(length, MAX_IO), off + total)
        s.write(base, data)
        total += len(data)
        if len(data) < length:
            break
    return total


def _pwritev(s, fd, iov, cnt, off):
    f = s.fd(fd)
    off = s64(off)
    if off == -1:
        return sys_writev(s, fd, iov, cnt)
    if off < 0:
        return -E.EINVAL
    data = b"".join(s.read(base, length) for base, length in _iovecs(s, iov, cnt) if length)
    return os.pwrite(f.host_fd, data, off) if data else 0


@syscall(295, "preadv")
def sys_preadv(s, fd, iov, cnt, off_lo, off_hi, *_):
    return _preadv(s, fd, iov, cnt, off_lo)


@syscall(296, "pwritev")
def sys_pwritev(s, fd, iov, cnt, off_lo, off_hi, *_):
    return _pwritev(s, fd, iov, cnt, off_lo)


@syscall(327, "preadv2")
def sys_preadv2(s, fd, iov, cnt, off_lo, off_hi, flags):
    return _preadv(s, fd, iov, cnt, off_lo)


@syscall(328, "pwritev2")
def sys_pwritev2(s, fd, iov, cnt, off_lo, off_hi, flags):
    return _pwritev(s, fd, iov, cnt, off_lo)


@syscall(285, "fallocate")
def sys_fallocate(s, fd, mode, off, length, *_):
    f = s.fd(fd)
    s.check_fd_write(f)
    if mode:                                         # punching holes, keeping the size...
        return -E.ENOTSUP                           # (EOPNOTSUPP, the same number)
    if s64(off) < 0 or s64(length) <= 0:
        return -E.EINVAL
    os.posix_fallocate(f.host_fd, off, length)
    return 0
