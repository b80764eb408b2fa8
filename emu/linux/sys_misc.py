"""The smaller system calls real tools make: file-system statistics,
extended attributes, process groups and sessions, resource usage, and a few
that only need a well-formed answer."""
from __future__ import annotations

import os
import resource
import struct
import time

from emu.linux import errno as E
from emu.linux.syscalls import AT_FDCWD, s32, syscall

ENODATA = 61


def _statfs_bytes(v: os.statvfs_result) -> bytes:
    """struct statfs (x86-64)."""
    return struct.pack("<qqQQQQQiiqqq4q", 0xEF53, v.f_bsize, v.f_blocks, v.f_bfree, v.f_bavail,
                       v.f_files, v.f_ffree, 0, 0, v.f_namemax, v.f_frsize, v.f_flag, 0, 0, 0, 0)


@syscall(137, "statfs")
def sys_statfs(s, path, buf, *_):
    s.write(buf, _statfs_bytes(os.statvfs(s.path_at(AT_FDCWD, path))))
    return 0


@syscall(138, "fstatfs")
def sys_fstatfs(s, fd, buf, *_):
    s.write(buf, _statfs_bytes(os.fstatvfs(s.fd(fd).host_fd)))
    return 0


def _getxattr(s, host, name, buf, size, follow=True):
    try:
        value = os.getxattr(host, s.cstr(name), follow_symlinks=follow)
    except OSError as e:
        if e.errno in (61, 95):          # ENODATA, ENOTSUP
            return -e.errno
        raise
    if size == 0:
        return len(value)
    if len(value) > size:
        return -E.ERANGE
    s.write(buf, value)
    return len(value)


@syscall(191, "getxattr")
def sys_getxattr(s, path, name, buf, size, *_):
    return _getxattr(s, s.path_at(AT_FDCWD, path), name, buf, size)


@syscall(192, "lgetxattr")
def sys_lgetxattr(s, path, name, buf, size, *_):
    return _getxattr(s, s.path_at(AT_FDCWD, path, follow=False), name, buf, size, follow=False)


@syscall(193, "fgetxattr")
def sys_fgetxattr(s, fd, name, buf, size, *_):
    return _getxattr(s, s.fd(fd).host_fd, name, buf, size)


def _listxattr(s, host, buf, size, follow=True):
    names = b"".join(n.encode("utf-8", "surrogateescape") + b"\0" for n in os.listxattr(host, follow_symlinks=follow))
    if size == 0:
        return len(names)
    if len(names) > size:
        return -E.ERANGE
    s.write(buf, names)
    return len(names)


@syscall(194, "listxattr")
def sys_listxattr(s, path, buf, size, *_):
    return _listxattr(s, s.path_at(AT_FDCWD, path), buf, size)


@syscall(195, "llistxattr")
def sys_llistxattr(s, path, buf, size, *_):
    return _listxattr(s, s.path_at(AT_FDCWD, path, follow=False), buf, size, follow=False)


@syscall(196, "flistxattr")
def sys_flistxattr(s, fd, buf, size, *_):
    return _listxattr(s, s.fd(fd).host_fd, buf, size)


XATTR_CREATE, XATTR_REPLACE = 1, 2


def _setxattr(s, host, name, value, size, flags, follow=True):
    if flags & ~(XATTR_CREATE | XATTR_REPLACE) or size > 65536:
        return -E.EINVAL if flags & ~3 else -E.E2BIG
    if not isinstance(host, int):
        s.check_write(host, follow)     # (EROFS outside the sandbox)
    os.setxattr(host, s.cstr(name), s.read(value, size) if size else b"", flags, follow_symlinks=follow)
    return 0


@syscall(188, "setxattr")
def sys_setxattr(s, path, name, value, size, flags, *_):
    return _setxattr(s, s.path_at(AT_FDCWD, path), name, value, size, flags)


@syscall(189, "lsetxattr")
def sys_lsetxattr(s, path, name, value, size, flags, *_):
    return _setxattr(s, s.path_at(AT_FDCWD, path, follow=False), name, value, size, flags, follow=False)


@syscall(190, "fsetxattr")
def sys_fsetxattr(s, fd, name, value, size, flags, *_):
    f = s.fd(fd)
    s.check_fd_write(f)
    return _setxattr(s, f.host_fd, name, value, size, flags)


def _removexattr(s, host, name, follow=True):
    if not isinstance(host, int):
        s.check_write(host, follow)
    os.removexattr(host, s.cstr(name), follow_symlinks=follow)
    return 0


@syscall(197, "removexattr")
def sys_removexattr(s, path, name, *_):
    return _removexattr(s, s.path_at(AT_FDCWD, path), name)


@syscall(198, "lremovexattr")
def sys_lremovexattr(s, path, name, *_):
    return _removexattr(s, s.path_at(AT_FDCWD, path, follow=False), name, follow=False)


@syscall(199, "fremovexattr")
def sys_fremovexattr(s, fd, name, *_):
    f = s.fd(fd)
    s.check_fd_write(f)
    return _removexattr(s, f.host_fd, name)


def _virtual_clock(s):
    g = getattr(s.p, "guest", None)
    return g.clock if g is not None and g.clock.virtual else None


@syscall(98, "getrusage")
def sys_getrusage(s, who, buf, *_):
    ru = resource.getrusage(resource.RUSAGE_CHILDREN if s32(who) == -1 else resource.RUSAGE_SELF)
    utime, stime = ru.ru_utime, ru.ru_stime
    c = _virtual_clock(s)
    if c is not None:                # virtual time: the CPU time the guest clock counts (children: none)
        utime, stime = (c.cputime_ns(s.v) / 1e9 if s32(who) != -1 else 0.0), 0.0
    tv = lambda t: struct.pack("<qq", int(t), int(t % 1 * 1e6))
    s.write(buf, (tv(utime) + tv(stime) + struct.pack("<14q", ru.ru_maxrss, 0, 0, 0, ru.ru_minflt,
             ru.ru_majflt, 0, 0, 0, 0, 0, 0, ru.ru_nvcsw, ru.ru_nivcsw)))
    return 0


@syscall(100, "times")
def sys_times(s, buf, *_):
    """Clock ticks (USER_HZ 100): the process's CPU times, and the return
    value counts CLOCK_BOOTTIME (both from the guest clock)."""
    g = getattr(s.p, "guest", None)
    c = _virtual_clock(s)
    if c is not None:
        ticks = (c.cputime_ns(s.v) // 10**7, 0, 0, 0)
    else:
        t = os.times()
        ticks = tuple(int(x * 100) for x in (t.user, t.system, t.children_user, t.children_system))
    if buf:
        s.write(buf, struct.pack("<qqqq", *ticks))
    up = g.clock.uptime(s.v)[0] if g is not None else time.monotonic_ns()
    return up // 10**7 & 0x7FFFFFFF


@syscall(111, "getpgrp")
def sys_getpgrp(s, *_):
    return os.getpgrp()


@syscall(121, "getpgid")
def sys_getpgid(s, pid, *_):
    return os.getpgid(s32(pid))


@syscall(109, "setpgid")
def sys_setpgid(s, pid, pgid, *_):
    os.setpgid(s32(pid), s32(pgid))
    return 0


@syscall(124, "getsid")
def sys_getsid(s, pid, *_):
    return os.getsid(s32(pid))


@syscall(112, "setsid")
def sys_setsid(s, *_):
    return os.setsid()


@syscall(115, "getgroups")
def sys_getgroups(s, size, lst, *_):
    groups = os.getgroups()
    if size == 0:
        return len(groups)
    if size < len(groups):
        return -E.EINVAL
    s.write(lst, struct.pack("<%dI" % len(groups), *groups))
    return len(groups)


@syscall(118, "getresuid")
def sys_getresuid(s, r, e, su, *_):
    for addr, v in zip((r, e, su), os.getresuid()):
        s.write(addr, struct.pack("<I", v))
    return 0


@syscall(120, "getresgid")
def sys_getresgid(s, r, e, sg, *_):
    for addr, v in zip((r, e, sg), os.getresgid()):
        s.write(addr, struct.pack("<I", v))
    return 0


@syscall(157, "prctl")
def sys_prctl(s, option, a2, *_):
    if option == 15:              # PR_SET_NAME
        from emu.linux.procfs import comm
        raw = s.read(a2, 16)
        s.p.comm = raw.split(b"\0", 1)[0][:15].decode("utf-8", "surrogateescape")
        if s.p.ptree is not None:
            s.p.ptree.update(comm(s.p))
        return 0
    if option == 16:              # PR_GET_NAME
        from emu.linux.procfs import comm
        s.write(a2, comm(s.p).encode("utf-8", "surrogateescape")[:15].ljust(16, b"\0"))
        return 0
    if option in (4, 3):          # PR_SET_DUMPABLE, PR_GET_DUMPABLE
        return 1 if option == 3 else 0
    return -E.EINVAL


@syscall(160, "setrlimit")
def sys_setrlimit(s, resource_, rlim, *_):
    return 0                      # limits are not enforced on the guest


@syscall(221, "fadvise64")
def sys_fadvise64(s, *_):
    return 0


@syscall(73, "flock")
def sys_flock(s, fd, op, *_):
    s.fd(fd)
    return 0


@syscall(309, "getcpu")
def sys_getcpu(s, cpu, node, *_):
    if cpu:
        s.write(cpu, b"\0\0\0\0")
    if node:
        s.write(node, b"\0\0\0\0")
    return 0


@syscall(436, "close_range")
def sys_close_range(s, first, last, flags, *_):
    for fd in [fd for fd in s.p.fds.fds if first <= fd <= last]:
        if flags & 4:             # CLOSE_RANGE_CLOEXEC
            s.p.fds.cloexec.add(fd)
        else:
            s.p.fds.close(fd)
    return 0


def _id(x: int) -> int:
    """A uid_t/gid_t argument: 32 bits unsigned, (uid_t)-1 "leave it"."""
    x &= 0xFFFFFFFF
    return -1 if x == 0xFFFFFFFF else x


def _chown(s, dirfd, path, uid, gid, follow=True):
    """chown through the file-system gate (EROFS outside the sandbox)."""
    from emu.linux.sys_files import _by_fd
    uid, gid = _id(uid), _id(gid)
    with s.lookup_at(dirfd, path, follow=follow, change=True) as r:
        if r.dirfd < 0:
            os.chown(r.host, uid, gid, follow_symlinks=r.follow)
        elif not follow:
            os.chown(r.target, uid, gid, dir_fd=r.dirfd, follow_symlinks=False)
        else:
            _by_fd(r, lambda p, u, g: os.chown(p, u, g), uid, gid)
    return 0


@syscall(92, "chown")
def sys_chown(s, path, uid, gid, *_):
    return _chown(s, AT_FDCWD, path, uid, gid)


@syscall(94, "lchown")
def sys_lchown(s, path, uid, gid, *_):
    return _chown(s, AT_FDCWD, path, uid, gid, follow=False)


@syscall(93, "fchown")
def sys_fchown(s, fd, uid, gid, *_):
    f = s.fd(fd)
    s.check_fd_write(f)
    os.fchown(f.host_fd, _id(uid), _id(gid))
    return 0


@syscall(260, "fchownat")
def sys_fchownat(s, dirfd, path, uid, gid, flags, *_):
    if flags & 0x1000 and s.cstr(path) == "":           # AT_EMPTY_PATH: the descriptor
        return sys_fchown(s, dirfd, uid, gid)
    return _chown(s, dirfd, path, uid, gid, follow=not flags & 0x100)


@syscall(40, "sendfile")
def sys_sendfile(s, out_fd, in_fd, offset, count, *_):
    src, dst = s.fd(in_fd), s.fd(out_fd)
    if offset:
        (off,) = struct.unpack("<q", s.read(offset, 8))
        data = os.pread(src.host_fd, min(count, 1 << 24), off)
        s.write(offset, struct.pack("<q", off + len(data)))
    else:
        data = os.read(src.host_fd, min(count, 1 << 24))
    return os.write(dst.host_fd, data) if data else 0


@syscall(326, "copy_file_range")
def sys_copy_file_range(s, fd_in, off_in, fd_out, off_out, length, flags):
    """A read from fd_in and a write to fd_out, through the guest's
    descriptors (at most 16 MiB per call, as the kernel may also stop short)."""
    if flags:
        return -E.EINVAL
    src, dst = s.fd(fd_in), s.fd(fd_out)
    if src.is_dir or dst.is_dir:
        return -E.EISDIR
    n = min(length, 1 << 24)
    if off_in:
        (oi,) = struct.unpack("<q", s.read(off_in, 8))
        data = os.pread(src.host_fd, n, oi)
    else:
        data = os.read(src.host_fd, n)
    if not data:
        return 0
    if off_out:
        (oo,) = struct.unpack("<q", s.read(off_out, 8))
        done = os.pwrite(dst.host_fd, data, oo)
        s.write(off_out, struct.pack("<q", oo + done))
    else:
        done = os.write(dst.host_fd, data)
    if off_in:
        s.write(off_in, struct.pack("<q", oi + done))
    elif done < len(data):
        os.lseek(src.host_fd, done - len(data), os.SEEK_CUR)   # give back what was not written
    return done


def _prio_target(s, which, who):
    """(which, who) for the host, only inside the guest's own process tree
    (a pid of the tree, the tree's own process group): other host processes
    are not the guest's to see or renice (ESRCH), nor all of the user's
    (PRIO_USER: EPERM)."""
    who = s32(who)
    if which == 0:                                   # PRIO_PROCESS
        if who in (0, s.p.pid):
            return os.PRIO_PROCESS, 0
        host = s.p.ptree.host_pid(who) if s.p.ptree is not None else None
        if host is None:
            raise OSError(3, "ESRCH")
        return os.PRIO_PROCESS, host
    if which == 1:                                   # PRIO_PGRP: the tree's own group
        pg = os.getpgrp()
        if who not in (0, pg):
            raise OSError(3, "ESRCH")
        # only a group the tree leads (emu started as a job of its own): a group
        # shared with host processes (a parent that did not make one) is not the guest's
        mine = pg == os.getpid() or s.p.ptree is not None and pg in s.p.ptree.members()
        if not mine:
            raise OSError(1, "EPERM")
        return os.PRIO_PGRP, 0
    raise OSError(1, "EPERM")                        # PRIO_USER: every process of the user


@syscall(140, "getpriority")
def sys_getpriority(s, which, who, *_):
    if s32(which) not in (0, 1, 2):
        return -E.EINVAL
    w, t = _prio_target(s, s32(which), who)
    return 20 - os.getpriority(w, t)                 # the raw system call returns 20 - nice


@syscall(141, "setpriority")
def sys_setpriority(s, which, who, prio, *_):
    if s32(which) not in (0, 1, 2):
        return -E.EINVAL
    w, t = _prio_target(s, s32(which), who)
    os.setpriority(w, t, max(-20, min(19, s32(prio))))
    return 0


@syscall(275, "splice")
def sys_splice(s, fd_in, off_in, fd_out, off_out, length, flags, *_):
    """splice(2) between the host descriptors (one of them a pipe): the
    kernel moves the bytes, as on Linux; offsets in guest memory are read and
    advanced."""
    src, dst = s.fd(fd_in), s.fd(fd_out)
    s.check_fd_write(dst)
    oi = struct.unpack("<q", s.read(off_in, 8))[0] if off_in else None
    oo = struct.unpack("<q", s.read(off_out, 8))[0] if off_out else None
    if (oi is not None and oi < 0) or (oo is not None and oo < 0):
        return -E.EINVAL
    n = os.splice(src.host_fd, dst.host_fd, min(length, 1 << 30), offset_src=oi, offset_dst=oo, flags=flags & 0xF)
    if off_in:
        s.write(off_in, struct.pack("<q", oi + n))
    if off_out:
        s.write(off_out, struct.pack("<q", oo + n))
    return n
