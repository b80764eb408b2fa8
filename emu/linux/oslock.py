"""Defence in depth for `emu run --sandbox`: the host kernel confines the
emulator process itself, so a bug in emu's own checks (emu/linux/fs.py, the
system-call handlers) still cannot write outside the sandbox, reach the
network or signal host processes.

Two layers, applied once the program is loaded and before any guest code
runs; every process the guest forks inherits them:

- Landlock (Linux 5.13+; the ABI the kernel offers decides what is covered):
  writing, creating, removing, renaming, linking and truncating files only
  beneath the sandbox directory (and the few device files a terminal program
  writes, and a --record log's directory); no TCP bind or connect (ABI 4+);
  no connecting to abstract AF_UNIX sockets and no signals to processes
  outside the sandboxed tree (ABI 6+). Reading and executing files stay
  allowed everywhere, as --sandbox promises.
- seccomp (a BPF filter): sockets other than AF_UNIX fail with EACCES; the
  calls no sandboxed program needs and that reach beyond the process fail
  with EPERM (ptrace, process_vm_readv/writev, mount, unshare/setns, bpf,
  perf_event_open, io_uring, kexec, module loading, keyrings, clock and
  host-name setting...); x32 and foreign-architecture calls are refused.

Both use the kernel's interfaces directly (ctypes over syscall(2) and
prctl(2)), so no library is needed. `confine()` returns what was applied.
"""
from __future__ import annotations

import ctypes
import os
import struct

# Landlock (include/uapi/linux/landlock.h)
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK, FS_MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2

WRITES_V1 = (FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_CHAR | FS_MAKE_DIR | FS_MAKE_REG |
             FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_BLOCK | FS_MAKE_SYM)
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/random", "/dev/urandom")

# seccomp (include/uapi/linux/seccomp.h, filter.h, audit.h)
AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
LD_W_ABS, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06
EPERM, EACCES = 1, 13
SYS_SOCKET = 41
AF_UNIX = 1
# x86-64 numbers of the calls a sandboxed program is refused
DENIED = {
    101: "ptrace", 310: "process_vm_readv", 311: "process_vm_writev", 165: "mount", 166: "umount2",
    155: "pivot_root", 161: "chroot", 272: "unshare", 308: "setns", 321: "bpf", 298: "perf_event_open",
    425: "io_uring_setup", 426: "io_uring_enter", 427: "io_uring_register", 246: "kexec_load",
    320: "kexec_file_load", 175: "init_module", 313: "finit_module", 176: "delete_module", 248: "add_key",
    249: "request_key", 250: "keyctl", 167: "swapon", 168: "swapoff", 169: "reboot", 163: "acct",
    164: "settimeofday", 227: "clock_settime", 159: "adjtimex", 305: "clock_adjtime", 170: "sethostname",
    171: "setdomainname", 172: "iopl", 173: "ioperm", 179: "quotactl", 303: "name_to_handle_at",
    304: "open_by_handle_at", 323: "userfaultfd", 429: "move_mount", 428: "open_tree", 430: "fsopen",
    431: "fsconfig", 432: "fsmount", 433: "fspick", 442: "mount_setattr",
}


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    return libc


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers (0: none)."""
    libc = _libc()
    r = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                     ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(0, int(r))


def _landlock(writable: list[str], abi: int) -> list[str]:
    libc = _libc()
    handled = WRITES_V1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("<QQQ", handled, net, scoped)[:8 if abi < 4 else 16 if abi < 6 else 24]
    buf = ctypes.create_string_buffer(attr, len(attr))
    rs = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if rs < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    covered = ["writes beneath %s only" % ", ".join(writable)]
    try:
        for path, rights in [(p, handled) for p in writable] + \
                [(d, FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0)) for d in DEVICES]:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    rights &= FILE_RIGHTS
                rule = ctypes.create_string_buffer(struct.pack("<Qi", rights, fd), 12)
                if libc.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(rs), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                                rule, ctypes.c_uint32(0)) < 0:
                    raise OSError(ctypes.get_errno(), "landlock_add_rule %s" % path)
            finally:
                os.close(fd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(rs), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(rs)
    if net:
        covered.append("no TCP bind/connect")
    if scoped:
        covered.append("no abstract AF_UNIX connects or signals outside the tree")
    return covered


def seccomp_program() -> bytes:
    """The BPF filter: struct sock_filter entries (code, jt, jf, k)."""
    ins = []

    def op(code, k, jt=0, jf=0):
        ins.append(struct.pack("<HBBI", code, jt, jf, k))
    errno_eperm = RET_ERRNO | EPERM
    op(LD_W_ABS, 4)                                    # seccomp_data.arch
    op(JEQ_K, AUDIT_ARCH_X86_64, 1, 0)
    op(RET_K, RET_KILL_PROCESS)
    op(LD_W_ABS, 0)                                    # seccomp_data.nr
    op(JGE_K, 0x40000000, 0, 1)                        # x32 numbers
    op(RET_K, errno_eperm)
    for nr in sorted(DENIED):
        op(JEQ_K, nr, 0, 1)
        op(RET_K, errno_eperm)
    op(JEQ_K, SYS_SOCKET, 0, 4)
    op(LD_W_ABS, 16)                                   # args[0] (low 32 bits): the family
    op(JEQ_K, AF_UNIX, 0, 1)
    op(RET_K, RET_ALLOW)
    op(RET_K, RET_ERRNO | EACCES)
    op(RET_K, RET_ALLOW)
    return b"".join(ins)


def _seccomp() -> list[str]:
    libc = _libc()
    prog = seccomp_program()
    n = len(prog) // 8
    filt = ctypes.create_string_buffer(prog, len(prog))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fp = Fprog(n, ctypes.cast(filt, ctypes.c_void_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fp), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")
    return ["sockets other than AF_UNIX refused", "%d host-reaching calls refused" % len(DENIED)]


def confine(sandbox: str, extra_writable=()) -> dict:
    """Confine this process (and what it forks later) to the sandbox's
    rules. Returns {"landlock": [...covered] or None, "seccomp": [...] or
    None, "errors": [...]}: a layer the host lacks is reported, not fatal."""
    out = {"landlock": None, "seccomp": None, "errors": []}
    writable = [os.path.realpath(sandbox)] + [os.path.realpath(p) for p in extra_writable if p]
    abi = landlock_abi()
    if abi:
        try:
            out["landlock"] = _landlock(writable, abi)
        except OSError as e:
            out["errors"].append("Landlock: %s" % e)
    else:
        out["errors"].append("Landlock: not offered by this kernel")
    try:
        out["seccomp"] = _seccomp()
    except OSError as e:
        out["errors"].append("seccomp: %s" % e)
    return out
