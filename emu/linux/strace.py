"""--strace: each system call with its arguments decoded the way strace(1)
shows them, and its result. The argument kinds come from the one
system-call table (emu/linux/sysent.py); this file only turns each kind into
text. Structs a call stores (stat, a pipe's descriptors, a time) are shown
after the call succeeds, as strace does; memory is read without side
effects (no page is faulted in, and --record's observer does not see it)."""
from __future__ import annotations

import errno as _errno
import os
import struct
import sys

from emu.linux import sysent

STRLEN = 32                      # strace's default -s: bytes of a string or buffer shown

O_FLAGS = ((0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
           (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"), (0o20000, "O_ASYNC"),
           (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"), (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"),
           (0o2000000, "O_CLOEXEC"), (0o4000000, "__O_SYNC"), (0o10000000, "O_PATH"), (0o20000000, "__O_TMPFILE"),
           (0o200000, "O_DIRECTORY"))        # (strace's order)
PROT = ((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"))
MAP = ((1, "MAP_SHARED"), (2, "MAP_PRIVATE"), (3, "MAP_SHARED_VALIDATE"), (0x10, "MAP_FIXED"),
       (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"),
       (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"),
       (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"),
       (0x100000, "MAP_FIXED_NOREPLACE"))
AT_FLAGS = ((0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"), (0x400, "AT_SYMLINK_FOLLOW"),
            (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH"), (0x2000, "AT_STATX_FORCE_SYNC"),
            (0x4000, "AT_STATX_DONT_SYNC"))
AMODE = ((4, "R_OK"), (2, "W_OK"), (1, "X_OK"))
SA_FLAGS = ((1, "SA_NOCLDSTOP"), (2, "SA_NOCLDWAIT"), (4, "SA_SIGINFO"), (0x04000000, "SA_RESTORER"),
            (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"), (0x40000000, "SA_NODEFER"),
            (0x80000000, "SA_RESETHAND"))
CLONE = ((0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"), (0x800, "CLONE_SIGHAND"),
         (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"), (0x4000, "CLONE_VFORK"), (0x8000, "CLONE_PARENT"),
         (0x10000, "CLONE_THREAD"), (0x20000, "CLONE_NEWNS"), (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"),
         (0x100000, "CLONE_PARENT_SETTID"), (0x200000, "CLONE_CHILD_CLEARTID"), (0x400000, "CLONE_DETACHED"),
         (0x800000, "CLONE_UNTRACED"), (0x1000000, "CLONE_CHILD_SETTID"), (0x2000000, "CLONE_NEWCGROUP"),
         (0x4000000, "CLONE_NEWUTS"), (0x8000000, "CLONE_NEWIPC"), (0x10000000, "CLONE_NEWUSER"),
         (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO"))
WAIT = ((1, "WNOHANG"), (2, "WUNTRACED"), (4, "WEXITED"), (8, "WCONTINUED"), (0x01000000, "WNOWAIT"),
        (0x20000000, "__WNOTHREAD"), (0x40000000, "__WALL"), (0x80000000, "__WCLONE"))
MSG = ((1, "MSG_OOB"), (2, "MSG_PEEK"), (4, "MSG_DONTROUTE"), (8, "MSG_CTRUNC"), (0x20, "MSG_TRUNC"),
       (0x40, "MSG_DONTWAIT"), (0x80, "MSG_EOR"), (0x100, "MSG_WAITALL"), (0x4000, "MSG_NOSIGNAL"),
       (0x8000, "MSG_MORE"), (0x40000000, "MSG_CMSG_CLOEXEC"))
SOCK_FLAGS = ((0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC"))
POLL = ((1, "POLLIN"), (2, "POLLPRI"), (4, "POLLOUT"), (8, "POLLERR"), (0x10, "POLLHUP"), (0x20, "POLLNVAL"),
        (0x40, "POLLRDNORM"), (0x80, "POLLRDBAND"), (0x100, "POLLWRNORM"), (0x200, "POLLWRBAND"),
        (0x2000, "POLLRDHUP"))
WHENCE = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}
CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID", 3: "CLOCK_THREAD_CPUTIME_ID",
          4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE", 6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME",
          8: "CLOCK_REALTIME_ALARM", 9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"}
FUTEX = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD", 3: "FUTEX_REQUEUE", 4: "FUTEX_CMP_REQUEUE",
         5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI", 7: "FUTEX_UNLOCK_PI", 8: "FUTEX_TRYLOCK_PI",
         9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET", 11: "FUTEX_WAIT_REQUEUE_PI", 12: "FUTEX_CMP_REQUEUE_PI",
         13: "FUTEX_LOCK_PI2"}
FCNTL = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK", 6: "F_SETLK",
         7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG", 11: "F_GETSIG", 1024: "F_SETLEASE",
         1025: "F_GETLEASE", 1026: "F_NOTIFY", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ",
         1033: "F_ADD_SEALS", 1034: "F_GET_SEALS", 36: "F_OFD_GETLK", 37: "F_OFD_SETLK", 38: "F_OFD_SETLKW"}
IOCTL = {0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF", 0x540B: "TCFLSH",
         0x540E: "TIOCSCTTY", 0x540F: "TIOCGPGRP", 0x5410: "TIOCSPGRP", 0x5413: "TIOCGWINSZ", 0x5414: "TIOCSWINSZ",
         0x541B: "FIONREAD", 0x5421: "FIONBIO", 0x5422: "TIOCNOTTY", 0x5429: "TIOCGSID", 0x5450: "FIONCLEX",
         0x5451: "FIOCLEX", 0x5452: "FIOASYNC", 0x80045430: "TIOCGPTN", 0x40045431: "TIOCSPTLCK"}
DOMAINS = {0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}
SOCKTYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 5: "SOCK_SEQPACKET"}
RLIMITS = {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK", 4: "RLIMIT_CORE",
           5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE", 8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS",
           10: "RLIMIT_LOCKS", 11: "RLIMIT_SIGPENDING", 12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE",
           14: "RLIMIT_RTPRIO", 15: "RLIMIT_RTTIME"}
ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS", 0x1004: "ARCH_GET_GS",
              0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID", 0x3001: "ARCH_CET_STATUS"}
PRCTL = {1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
         15: "PR_SET_NAME", 16: "PR_GET_NAME", 22: "PR_SET_SECCOMP", 21: "PR_GET_SECCOMP", 38: "PR_SET_NO_NEW_PRIVS",
         39: "PR_GET_NO_NEW_PRIVS", 36: "PR_SET_CHILD_SUBREAPER", 37: "PR_GET_CHILD_SUBREAPER",
         0x59616d61: "PR_SET_PTRACER", 23: "PR_CAPBSET_READ", 47: "PR_CAP_AMBIENT", 1398164801: "PR_SET_VMA"}
MADVISE = {0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED", 4: "MADV_DONTNEED",
           8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK", 11: "MADV_DOFORK", 12: "MADV_MERGEABLE",
           14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP", 17: "MADV_DODUMP",
           18: "MADV_WIPEONFORK", 20: "MADV_COLD", 21: "MADV_PAGEOUT", 22: "MADV_POPULATE_READ",
           23: "MADV_POPULATE_WRITE", 100: "MADV_HWPOISON"}
EPOLL_OPS = {1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"}
S_IFMT = {0o140000: "S_IFSOCK", 0o120000: "S_IFLNK", 0o100000: "S_IFREG", 0o60000: "S_IFBLK",
          0o40000: "S_IFDIR", 0o20000: "S_IFCHR", 0o10000: "S_IFIFO"}
SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
           8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM",
           15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP",
           21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM",
           27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS", 34: "SIGRTMIN"}
# the descriptor-creating calls' flags: O_CLOEXEC and O_NONBLOCK under each family's names
_CFLAGS = {k: ((0o4000, p + "NONBLOCK"), (0o2000000, p + "CLOEXEC")) + extra for k, p, extra in (
    ("cflags", "O_", ((0o40000, "O_DIRECT"),)), ("sockflags", "SOCK_", ()), ("epflags", "EPOLL_", ()),
    ("efdflags", "EFD_", ((1, "EFD_SEMAPHORE"),)), ("sfdflags", "SFD_", ()), ("inflags", "IN_", ()),
    ("tfdflags", "TFD_", ()))}
_CFLAGS["mfdflags"] = ((1, "MFD_CLOEXEC"), (2, "MFD_ALLOW_SEALING"), (4, "MFD_HUGETLB"), (8, "MFD_NOEXEC_SEAL"),
                       (0x10, "MFD_EXEC"))
OUT_KINDS = frozenset(("rbuf", "rstr", "otimespec", "stat", "fds2", "osigaction", "osigset"))
# fcntl commands and ioctl requests that take no third argument (strace omits it)
FCNTL_NO_ARG = frozenset((1, 3, 9, 11, 1025, 1032, 1034))
IOCTL_NO_ARG = frozenset((0x5450, 0x5451, 0x5422))
IOCTL_INT_ARG = frozenset((0x5421, 0x5452, 0x541B, 0x540F, 0x5410, 0x5429, 0x80045430, 0x40045431))
# kinds that read the same from an i386 program (int 0x80): numbers, strings, flags
I386_KINDS = frozenset(("int", "uint", "hex", "ptr", "fd", "path", "wbuf", "rbuf", "rstr", "oflags", "cflags",
                        "mode", "prot", "mapflags", "whence", "sig", "how", "clock", "atflags", "amode", "futexop",
                        "ioctl", "fcntl", "waitopts", "domain", "socktype", "rlimit", "madvise", "msgflags"))
RET_HEX = frozenset(("mmap", "brk", "mremap", "shmat"))     # calls returning an address


def _flags(v: int, table, zero: str = "0") -> str:
    names, rest = [], v
    for bit, n in table:
        if v & bit == bit and rest & bit:
            names.append(n)
            rest &= ~bit
    if rest:
        names.append("%#x" % rest)
    return "|".join(names) or zero


def _enum(v: int, table: dict) -> str:
    return table.get(v, "%#x" % v if v > 9 else str(v))


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _s64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _peek(s, addr: int, n: int):
    """Guest bytes at addr, or None (unmapped, not yet populated)."""
    if not addr or n < 0:
        return None
    try:
        return s.m.read(addr, n)
    except Exception:
        return None


def quote(data: bytes, more: bool = False) -> str:
    """Bytes as strace quotes them: C escapes, octal for the rest."""
    out = ['"']
    for i, c in enumerate(data):
        if c == 0x22 or c == 0x5C:
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        elif c in _ESC:
            out.append(_ESC[c])
        else:
            nxt = data[i + 1] if i + 1 < len(data) else None
            out.append("\\%03o" % c if nxt is not None and 0x30 <= nxt <= 0x37 else "\\%o" % c)
    out.append('"')
    if more:
        out.append("...")
    return "".join(out)


_ESC = {9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


def _cstr(s, addr: int, limit: int = 4096) -> str:
    if not addr:
        return "NULL"
    data = bytearray()
    while len(data) < limit:
        n = min(256, 4096 - ((addr + len(data)) & 4095))
        chunk = _peek(s, addr + len(data), n)
        if chunk is None:
            if not data:
                return "%#x" % addr
            break
        k = chunk.find(b"\0")
        if k >= 0:
            data += chunk[:k]
            return quote(bytes(data))
        data += chunk
    return quote(bytes(data[:limit]), True)


def _buf(s, addr: int, n: int) -> str:
    data = _peek(s, addr, min(max(n, 0), STRLEN))
    if data is None:
        return "%#x" % addr if addr else "NULL"
    return quote(data, n > STRLEN)


def _sigset(s, addr: int) -> str:
    raw = _peek(s, addr, 8)
    if raw is None:
        return "NULL" if not addr else "%#x" % addr
    bits = struct.unpack("<Q", raw)[0]
    if bin(bits).count("1") > 32:          # strace shows a mostly full set by what it lacks
        return "~[" + " ".join(_signame(i + 1, short=True) for i in range(64) if not bits >> i & 1) + "]"
    return "[" + " ".join(_signame(i + 1, short=True) for i in range(64) if bits >> i & 1) + "]"


def _signame(sig: int, short: bool = False) -> str:
    n = SIGNALS.get(sig)
    if n is None:
        n = "SIGRT_%d" % (sig - 34) if 34 < sig <= 64 else str(sig)
    return n[3:] if short and n.startswith("SIG") else n


def _sigaction(s, addr: int) -> str:
    raw = _peek(s, addr, 32)
    if raw is None:
        return "NULL" if not addr else "%#x" % addr
    handler, flags, restorer, mask = struct.unpack("<QQQQ", raw)
    h = {0: "SIG_DFL", 1: "SIG_IGN"}.get(handler, "%#x" % handler)
    mask_s = "[" + " ".join(_signame(i + 1, short=True) for i in range(64) if mask >> i & 1) + "]"
    text = "{sa_handler=%s, sa_mask=%s, sa_flags=%s" % (h, mask_s, _flags(flags, SA_FLAGS))
    if flags & 0x04000000:
        text += ", sa_restorer=%#x" % restorer
    return text + "}"


def _timespec(s, addr: int) -> str:
    raw = _peek(s, addr, 16)
    if raw is None:
        return "NULL" if not addr else "%#x" % addr
    sec, nsec = struct.unpack("<qq", raw)
    return "{tv_sec=%d, tv_nsec=%d}" % (sec, nsec)


def _timeval(s, addr: int) -> str:
    raw = _peek(s, addr, 16)
    if raw is None:
        return "NULL" if not addr else "%#x" % addr
    sec, usec = struct.unpack("<qq", raw)
    return "{tv_sec=%d, tv_usec=%d}" % (sec, usec)


def _mode(v: int) -> str:
    fmt = S_IFMT.get(v & 0o170000)
    bits = [n for bit, n in ((0o4000, "S_ISUID"), (0o2000, "S_ISGID"), (0o1000, "S_ISVTX")) if v & bit]
    perm = "0%o" % (v & 0o777)
    return "|".join(([fmt] if fmt else []) + bits + [perm])


def _stat(s, addr: int) -> str:
    raw = _peek(s, addr, 144)
    if raw is None:
        return "%#x" % addr
    mode = struct.unpack_from("<I", raw, 24)[0]
    size = struct.unpack_from("<q", raw, 48)[0]
    rdev = struct.unpack_from("<Q", raw, 40)[0]
    fmt = mode & 0o170000
    if fmt in (0o20000, 0o60000):
        return "{st_mode=%s, st_rdev=makedev(%#x, %#x), ...}" % (_mode(mode), os.major(rdev), os.minor(rdev))
    return "{st_mode=%s, st_size=%d, ...}" % (_mode(mode), size)


def _pollfds(s, addr: int, n: int, after: bool, ret) -> str:
    raw = _peek(s, addr, 8 * min(n, 16))
    if raw is None:
        return "%#x" % addr if addr else "NULL"
    items = []
    for k in range(min(n, 16)):
        fd, ev, rev = struct.unpack_from("<ihh", raw, 8 * k)
        items.append("{fd=%d, events=%s}" % (fd, _flags(ev & 0xFFFF, POLL)))
    text = "[" + ", ".join(items) + (", ..." if n > 16 else "") + "]"
    return text


def _poll_result(s, addr: int, n: int, ret) -> str:
    raw = _peek(s, addr, 8 * min(n, 16))
    if raw is None or not isinstance(ret, int) or ret <= 0:
        return ""
    hits = []
    for k in range(min(n, 16)):
        fd, _ev, rev = struct.unpack_from("<ihh", raw, 8 * k)
        if rev:
            hits.append("{fd=%d, revents=%s}" % (fd, _flags(rev & 0xFFFF, POLL)))
    return " ([" + ", ".join(hits) + "])" if hits else ""


def _iov(s, addr: int, n: int) -> str:
    raw = _peek(s, addr, 16 * min(n, 8))
    if raw is None:
        return "%#x" % addr if addr else "NULL"
    items = []
    for k in range(min(n, 8)):
        base, ln = struct.unpack_from("<QQ", raw, 16 * k)
        items.append("{iov_base=%s, iov_len=%d}" % (_buf(s, base, ln), ln))
    return "[" + ", ".join(items) + (", ..." if n > 8 else "") + "]"


def _argv(s, addr: int) -> str:
    if not addr:
        return "NULL"
    items = []
    for k in range(33):
        raw = _peek(s, addr + 8 * k, 8)
        if raw is None:
            return "%#x" % addr
        p = struct.unpack("<Q", raw)[0]
        if p == 0:
            break
        if k == 32:
            items.append("...")
            break
        items.append(_cstr(s, p))
    return "[" + ", ".join(items) + "]"


def _sockaddr(s, addr: int, n: int) -> str:
    raw = _peek(s, addr, min(max(n, 0), 128))
    if raw is None or len(raw) < 2:
        return "NULL" if not addr else "%#x" % addr
    fam = struct.unpack_from("<H", raw)[0]
    if fam == 1:
        path = raw[2:]
        if path[:1] == b"\0":
            return '{sa_family=AF_UNIX, sun_path=@%s}' % quote(path[1:].split(b"\0", 1)[0])
        return "{sa_family=AF_UNIX, sun_path=%s}" % quote(path.split(b"\0", 1)[0])
    if fam == 2 and len(raw) >= 8:
        port = struct.unpack_from(">H", raw, 2)[0]
        return '{sa_family=AF_INET, sin_port=htons(%d), sin_addr=inet_addr("%s")}' % (
            port, ".".join(str(b) for b in raw[4:8]))
    if fam == 10 and len(raw) >= 24:
        import ipaddress
        port = struct.unpack_from(">H", raw, 2)[0]
        return '{sa_family=AF_INET6, sin6_port=htons(%d), sin6_addr=inet_pton(AF_INET6, "%s")}' % (
            port, ipaddress.IPv6Address(raw[8:24]))
    return "{sa_family=%s, ...}" % DOMAINS.get(fam, str(fam))


def _oflags(a: int) -> str:
    acc = ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[a & 3]
    rest = a & ~3
    if rest & 0o20000000:                 # O_TMPFILE includes O_DIRECTORY
        rest &= ~0o200000
    return acc + ("|" + _flags(rest, O_FLAGS) if rest else "")


def _futexop(a: int) -> str:
    cmd = a & 0x7F
    name = FUTEX.get(cmd, str(cmd))
    if a & 0x80:
        name += "_PRIVATE"
    if a & 0x100:
        name += "|FUTEX_CLOCK_REALTIME"
    return name


def _socktype(a: int) -> str:
    base = SOCKTYPES.get(a & 0xF, str(a & 0xF))
    rest = a & ~0xF
    return base + ("|" + _flags(rest, SOCK_FLAGS) if rest else "")


def _arg(s, kind: str, i: int, args, ret, failed: bool) -> str:
    a = args[i]
    nxt = args[i + 1] if i + 1 < len(args) else 0
    if kind == "int":
        return str(_s64(a))
    if kind == "uint":
        return str(a)
    if kind == "fd":
        v = _s32(a)
        return "AT_FDCWD" if v == -100 else str(v)
    if kind == "path":
        return _cstr(s, a)
    if kind == "wbuf":
        return _buf(s, a, nxt)
    if kind in OUT_KINDS and (failed or ret is None):
        return "NULL" if not a else "%#x" % a
    if kind == "rbuf":
        return _buf(s, a, ret)
    if kind == "rstr":
        data = _peek(s, a, min(ret, 4096)) if ret > 0 else b""
        return quote((data or b"").rstrip(b"\0"))
    if kind == "otimespec":
        return _timespec(s, a)
    if kind == "stat":
        return _stat(s, a)
    if kind == "fds2":
        raw = _peek(s, a, 8)
        return "[%d, %d]" % struct.unpack("<ii", raw) if raw else "%#x" % a
    if kind == "oflags":
        return _oflags(a)
    if kind in _CFLAGS:
        return _flags(a, _CFLAGS[kind])
    if kind == "mode":
        return "0%o" % a if a else "000"
    if kind == "prot":
        return _flags(a, PROT, "PROT_NONE")
    if kind == "mapflags":
        return _flags(a, MAP)
    if kind == "whence":
        return WHENCE.get(a, str(a))
    if kind == "sig":
        v = _s32(a)
        return _signame(v) if 0 < v <= 64 else str(v)
    if kind == "osigaction":
        return _sigaction(s, a)
    if kind in ("sigset", "osigset"):
        return _sigset(s, a)
    if kind == "sigaction":
        return _sigaction(s, a)
    if kind == "how":
        return HOW.get(a, str(a))
    if kind == "clock":
        return _enum(_s32(a) & 0xFFFFFFFF, CLOCKS) if _s32(a) >= 0 else str(_s32(a))
    if kind == "atflags":
        return _flags(a, AT_FLAGS)
    if kind == "amode":
        return _flags(a, AMODE, "F_OK")
    if kind == "futexop":
        return _futexop(a)
    if kind == "ioctl":
        return IOCTL.get(a & 0xFFFFFFFF, "%#x" % a)
    if kind == "intp":
        raw = _peek(s, a, 4)
        return "[%d]" % struct.unpack("<i", raw)[0] if raw else ("NULL" if not a else "%#x" % a)
    if kind == "fcntl":
        return FCNTL.get(a, str(a))
    if kind == "cloneflags":
        sig = a & 0xFF
        text = _flags(a & ~0xFF, CLONE)
        return (text + "|" + _signame(sig)) if sig else text
    if kind == "waitopts":
        return _flags(a, WAIT)
    if kind == "domain":
        return DOMAINS.get(a, str(a))
    if kind == "socktype":
        return _socktype(a)
    if kind == "sockaddr":
        return _sockaddr(s, a, nxt)
    if kind == "rlimit":
        return RLIMITS.get(a, str(a))
    if kind == "archprctl":
        return ARCH_PRCTL.get(a, "%#x" % a)
    if kind == "prctl":
        return PRCTL.get(a, str(a))
    if kind == "madvise":
        return MADVISE.get(a, str(a))
    if kind == "epollop":
        return EPOLL_OPS.get(a, str(a))
    if kind == "timerflags":
        return _flags(a, ((1, "TIMER_ABSTIME"), (2, "TFD_TIMER_CANCEL_ON_SET")))
    if kind == "msgflags":
        return _flags(a, MSG)
    if kind == "timespec":
        return _timespec(s, a)
    if kind == "timeval":
        return _timeval(s, a)
    if kind == "pollfds":
        return _pollfds(s, a, nxt, True, ret)
    if kind == "iov":
        return _iov(s, a, nxt)
    if kind == "argv":
        return _argv(s, a)
    if kind == "ptr":
        return "NULL" if a == 0 else "%#x" % a
    return "%#x" % a if a else "0"                     # hex


def format_call(s, name: str, args, ret=None) -> str:
    """name(arguments) as strace prints the call (after it returned: ret)."""
    i386 = name.startswith("int80:")
    entry = sysent.BY_NAME.get(name[6:] if i386 else name)
    if entry is None:
        return "%s(%s)" % (name, ", ".join("%#x" % a for a in args[:6]))
    failed = isinstance(ret, int) and -4096 < ret < 0
    out = []
    kinds = entry.args
    if kinds[-1:] == ("mode",) and kinds[-2:-1] == ("oflags",) and not args[len(kinds) - 2] & 0o20000100:
        kinds = kinds[:-1]                     # open's mode only with O_CREAT or O_TMPFILE, as strace shows it
    elif (name == "fcntl" and args[1] in FCNTL_NO_ARG) or (name == "ioctl" and args[1] & 0xFFFFFFFF in IOCTL_NO_ARG):
        kinds = kinds[:2]
    elif name == "ioctl" and args[1] & 0xFFFFFFFF in IOCTL_INT_ARG:
        kinds = ("fd", "ioctl", "intp")         # an int the call reads or stores: its value
    elif name == "fcntl" and args[1] == 4:
        kinds = ("fd", "fcntl", "oflags")      # F_SETFL: the file status flags
    for i, kind in enumerate(kinds):
        if i386 and kind not in I386_KINDS:
            kind = "ptr"                       # (an i386 struct's layout differs: its address)
        try:
            out.append(_arg(s, kind, i, args, ret if isinstance(ret, int) else 0, failed))
        except Exception:                      # a struct the guest left unreadable: its address
            out.append("%#x" % args[i])
    text = "%s(%s)" % (name, ", ".join(out))
    return text


def format_result(ret, name: str = "") -> str:
    if ret is None:
        return "?"
    if -4096 < ret < 0:
        return "-1 %s (%s)" % (_errno.errorcode.get(-ret, str(-ret)), os.strerror(-ret))
    return "%#x" % ret if (name[6:] if name.startswith("int80:") else name) in RET_HEX and ret else str(ret)


def trace(s, name: str, args, ret) -> None:
    base = getattr(s.p, "vdso_base", 0)
    if base and base <= s.v.rip < base + 4096:
        return               # a vDSO function's call: strace does not see those on Linux either
    # strace pads the call to 39 columns before " = "
    line = "%-39s = %s" % (format_call(s, name, args, ret), format_result(ret, name))
    entry = sysent.BY_NAME.get(name)
    if entry is not None and entry.args[:1] == ("pollfds",) and isinstance(ret, int) and ret > 0:
        line += _poll_result(s, args[0], args[1], ret)
    print(line, file=sys.stderr)
