"""--strace: each system call with its arguments decoded the way strace(1)
shows them, and its result."""
from __future__ import annotations

import os
import sys

# argument kinds: d signed int, u unsigned, x hex, f fd, s C string, b buffer
# (length in the next argument, shown for writes), p pointer, o open flags,
# m mmap prot, M mmap flags
SIGNATURES = {
    "read": "fpu", "write": "fbu", "open": "sod", "close": "f", "stat": "sp", "fstat": "fp", "lstat": "sp",
    "poll": "pud", "lseek": "fdd", "mmap": "xumMfx", "mprotect": "xum", "munmap": "xu", "brk": "x",
    "rt_sigaction": "dppu", "rt_sigprocmask": "dppu", "ioctl": "fxp", "pread64": "fpud", "pwrite64": "fbud",
    "readv": "fpd", "writev": "fpd", "access": "sd", "pipe": "p", "dup": "f", "dup2": "ff", "getpid": "",
    "exit": "d", "wait4": "dpdp", "kill": "dd", "uname": "p", "fcntl": "fdx", "getcwd": "pu", "chdir": "s",
    "mkdir": "sd", "rmdir": "s", "unlink": "s", "rename": "ss", "readlink": "spu", "umask": "o",
    "arch_prctl": "xx", "set_tid_address": "p", "exit_group": "d", "openat": "fsod", "newfstatat": "fspx",
    "readlinkat": "fspu", "faccessat": "fsd", "faccessat2": "fsdx", "pipe2": "px", "prlimit64": "ddpp",
    "getrandom": "pux", "statx": "fsxxp", "execve": "spp", "clone": "xpppx", "futex": "pxdpxd",
    "getdents64": "fpu", "clock_gettime": "dp", "nanosleep": "pp", "unlinkat": "fsx", "mkdirat": "fsd",
    "renameat": "fsfs", "renameat2": "fsfsx", "ftruncate": "fd", "fsync": "f", "chmod": "sd",
    "socket": "ddd", "connect": "fpd", "sendto": "fbdxpd", "recvfrom": "fpdxpp",
}

O_FLAGS = ((0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
           (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"),
           (0o2000000, "O_CLOEXEC"))
PROT = ((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"))
MAP = ((1, "MAP_SHARED"), (2, "MAP_PRIVATE"), (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"),
       (0x100, "MAP_GROWSDOWN"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"))


def _flags(v: int, table, zero: str) -> str:
    names = [n for bit, n in table if v & bit]
    rest = v & ~sum(bit for bit, _ in table)
    if rest:
        names.append("%#x" % rest)
    return "|".join(names) or zero


def _s64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _str(s, addr: int, limit: int = 64) -> str:
    try:
        data = s.read(addr, limit) if addr else None
    except Exception:
        return "%#x" % addr
    if data is None:
        return "NULL"
    end = data.find(b"\0")
    text = data[:end] if end >= 0 else data
    return repr(text.decode("utf-8", "backslashreplace")).replace("'", '"') + ("" if end >= 0 else "...")


def _buf(s, addr: int, n: int, limit: int = 32) -> str:
    """A write buffer: its first bytes as strace shows them."""
    try:
        data = s.read(addr, min(n, limit))
    except Exception:
        return "%#x" % addr
    text = repr(data.decode("utf-8", "backslashreplace")).replace("'", '"')
    return text + ("..." if n > limit else "")


def format_call(s, name: str, args) -> str:
    sig = SIGNATURES.get(name)
    if sig is None:
        return "%s(%s)" % (name, ", ".join("%#x" % a for a in args[:3]))
    out = []
    for i, kind in enumerate(sig):
        a = args[i]
        if kind == "d":
            out.append(str(_s64(a) if a >> 31 == 0x1FFFFFFFF or a >> 63 else a))
        elif kind == "f":
            v = a & 0xFFFFFFFF
            out.append("AT_FDCWD" if v == 0xFFFFFF9C else str(v - (1 << 32) if v >> 31 else v))
        elif kind == "u":
            out.append(str(a))
        elif kind == "s":
            out.append(_str(s, a))
        elif kind == "b":
            out.append(_buf(s, a, args[i + 1] if i + 1 < len(args) else 32))
        elif kind == "o":
            out.append(("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[a & 3] + "".join(
                "|" + n for bit, n in O_FLAGS if a & bit))
        elif kind == "m":
            out.append(_flags(a, PROT, "PROT_NONE"))
        elif kind == "M":
            out.append(_flags(a, MAP, "0"))
        elif kind == "p":
            out.append("NULL" if a == 0 else "%#x" % a)
        else:
            out.append("%#x" % a)
    return "%s(%s)" % (name, ", ".join(out))


def format_result(ret) -> str:
    if ret is None:
        return "?"
    if -4096 < ret < 0:
        import errno
        return "-1 %s (%s)" % (errno.errorcode.get(-ret, str(-ret)), os.strerror(-ret))
    return str(ret) if ret < 1 << 16 else "%#x" % ret


def trace(s, name: str, args, ret) -> None:
    print("%s = %s" % (format_call(s, name, args), format_result(ret)), file=sys.stderr)
