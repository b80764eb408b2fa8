"""System calls of the user-mode personality (x86-64 numbering,
arch/x86/entry/syscalls/syscall_64.tbl). Each handler takes the six
argument registers and returns the value for RAX (negative errno on error)."""
from __future__ import annotations

import os
import posixpath
import stat as st
import struct
import time

from emu.linux import errno as E
from emu.linux import sysent
from emu.linux.fdtable import OpenFile
from emu.linux.hostsig import STOP_SIGNALS, Interrupted
from emu.linux.mm import MAP_ANONYMOUS, MAP_SHARED, PAGE
from emu.linux.signals import DEFAULT_CORE, DEFAULT_IGNORE, SIGNAL_NAMES, SIGSEGV
from emu.machine import GuestMemoryError

MASK64 = (1 << 64) - 1
_STRICT = bool(os.environ.get("EMU_STRICT"))
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_EMPTY_PATH = 0x100, 0x200, 0x1000

# guest open(2) flags (x86-64 values)
O_ACCMODE, O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_APPEND, O_NONBLOCK = 3, 0o100, 0o200, 0o400, 0o1000, 0o2000, 0o4000
O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC, O_PATH, O_TMPFILE = 0o200000, 0o400000, 0o2000000, 0o10000000, 0o20200000

SYSCALLS: dict[int, tuple[str, callable]] = {}
ERESTARTSYS = -512           # a handler may return it: EINTR, or run again after a signal handler with SA_RESTART

def syscall(nr: int, name: str):
    """Register the handler of system call nr (emu/linux/sysent.py names it:
    the name given here must be the table's)."""
    if sysent.name(nr) != name:
        raise AssertionError("system call %d is %s in the table, not %s" % (nr, sysent.name(nr), name))

    def deco(fn):
        SYSCALLS[nr] = (name, fn)
        return fn
    return deco


def s64(x: int) -> int:
    x &= MASK64
    return x - (1 << 64) if x >> 63 else x


def s32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >> 31 else x


class Fault(Exception):
    """A bad guest pointer: the system call returns EFAULT."""


class Syscalls:
    def __init__(self, proc):
        self.p = proc
        self.m = proc.machine
        self.start_ns = time.monotonic_ns()

    @property
    def v(self):
        """The vCPU of the thread making the call."""
        return self.p.vcpu

    # ---- guest memory ----
    def read(self, addr: int, n: int) -> bytes:
        try:
            data = self.m.read(addr, n)
        except GuestMemoryError:
            # populate on demand, as a kernel's copy_from_user would fault pages in
            self._touch(addr, n, write=False)
            data = self.m.read(addr, n)
        if self.p.mem_observer is not None:
            self.p.mem_observer(addr, data, False)
        return data

    def write(self, addr: int, data: bytes) -> None:
        """Every access of guest memory by the kernel side goes through read
        and write (Process.mem_observer sees them: --record, emu/linux/replay.py)."""
        self._touch(addr, len(data), write=True)
        self.m.write(addr, data)
        if self.p.mem_observer is not None:
            self.p.mem_observer(addr, data, True)

    def _touch(self, addr: int, n: int, write: bool) -> None:
        mm = self.p.mm
        page = addr & ~(PAGE - 1)
        while page < addr + n:
            vma = mm.find(page)
            if vma is None or (write and not vma.prot & 2) or (not write and not vma.prot & 1):
                raise Fault()
            if page not in mm.pages:
                mm.populate(page, vma)
            page += PAGE

    def cstr(self, addr: int, limit: int = 4096) -> str:
        if addr == 0:
            raise Fault()
        out = bytearray()
        while len(out) < limit:
            chunk = self.read(addr + len(out), min(256, PAGE - ((addr + len(out)) & (PAGE - 1))))
            i = chunk.find(b"\0")
            if i >= 0:
                out += chunk[:i]
                return out.decode("utf-8", "surrogateescape")
            out += chunk
        raise Fault()

    # ---- dispatch ----
    def dispatch(self) -> None:
        p = self.p
        regs = p.vcpu.syscall_regs()
        nr, args = regs[0], regs[1:]
        p.syscall_counts[nr] = p.syscall_counts.get(nr, 0) + 1
        if p.syscall_hooks:
            # before-hooks: may return new arguments (a tuple) or a result (an int: the call is skipped)
            for hook in p.syscall_hooks:
                r = hook.before(p, nr, args) if hook.before else None
                if isinstance(r, tuple):
                    args = tuple(r) + args[len(r):]
                elif r is not None:
                    self._finish(nr, args, r, sysent.name(nr))
                    return
        entry = SYSCALLS.get(nr)
        if entry is None:
            name = sysent.name(nr)
            if nr not in self.p.warned:
                self.p.warned.add(nr)
                import logging          # (only now: importing it costs every run start-up time)
                logging.getLogger(__name__).warning("emu: unimplemented system call %s (%d)", name, nr)
            ret = -E.ENOSYS
        else:
            name, fn = entry
            bridge = p.bridge
            if bridge is not None:
                bridge.in_syscall = True
            try:
                ret = fn(self, *args)
            except Fault:
                ret = -E.EFAULT
            except Interrupted:
                ret = ERESTARTSYS
            except OSError as e:
                ret = -E.from_oserror(e)
            except (OverflowError, ValueError, UnicodeError, struct.error) as e:
                # an argument a handler did not range-check: the guest gets
                # EINVAL, as from a kernel, never a Python error (EMU_STRICT=1,
                # set by tests and tools/hardfuzz.py, raises it to find the handler)
                if _STRICT:
                    raise
                ret = -E.EINVAL
            except BaseException:
                if self.p.strace:           # exit, or a fatal signal: the call never returns
                    self._trace(name, args, None)
                raise
            finally:
                if bridge is not None:
                    bridge.in_syscall = False
            if p.fast is not None and nr in _FAST and ret is not None and ret >= 0:
                p.fast.learn(args[0])        # a plain descriptor: the core may answer the next ones
        self._finish(nr, args, ret, name)

    def _finish(self, nr, args, ret, name) -> None:
        p = self.p
        for hook in p.syscall_hooks:
            if hook.after:
                r = hook.after(p, nr, args, ret)      # may replace the result
                if r is not None:
                    ret = r
        if ret == ERESTARTSYS:
            from emu.linux.timers import restart_after_signal
            if restart_after_signal(p):          # the handler has SA_RESTART: the call runs again after it
                self.v.rip = self.v.rip - 2
                ret = None
                self.v.rax = nr
            else:
                ret = -E.EINTR
        if ret == -E.ENOSYS:
            # a call the kernel has and emu does not (or not with these
            # arguments): --stats lists them with how often the guest tried
            p.enosys[name] = p.enosys.get(name, 0) + 1
        if p.strace:
            self._trace(name, args, ret)
        if ret is not None:
            self.v.rax = ret & MASK64
        if p.itimers or p.pending_signals or p.saved_sigmask is not None:
            from emu.linux.timers import check
            check(self)              # due timers and pending signals are delivered on the way back

    def _trace(self, name, args, ret) -> None:
        from emu.linux.strace import trace
        trace(self, name, args, ret)

    # ---- signals (minimal: default actions) ----
    def deliver_signal(self, sig: int, fault=None) -> None:
        from emu.linux.process import GuestKilled
        act = self.p.signal_actions.get(sig)
        handler = act[0] if act else 0
        if handler == 1 and fault is None:      # SIG_IGN
            return
        if handler == 0 or fault is not None and handler == 1:
            if sig in DEFAULT_IGNORE and fault is None:
                return
            if sig in STOP_SIGNALS and fault is None:
                if self.p.bridge is not None:
                    self.p.bridge.stop_self(sig)     # until a SIGCONT (emu/linux/hostsig.py)
                return
            raise GuestKilled(sig, core=sig in DEFAULT_CORE)
        from emu.linux.sigframe import setup_frame
        try:
            setup_frame(self, sig, act, fault)
        except Fault:
            # the frame does not fit where it must go (a bad stack or alternate
            # stack): Linux forces SIGSEGV, which kills the process (force_sigsegv)
            raise GuestKilled(SIGSEGV, core=True) from None

    # ---- helpers ----
    def fd(self, fd: int) -> OpenFile:
        f = self.p.fds.get(s32(fd))
        if f is None:
            raise OSError(9, "bad fd")
        return f

    def guest_path_at(self, dirfd: int, addr: int) -> str:
        """The absolute guest path a (dirfd, path) pair names."""
        path = self.cstr(addr)
        dirfd = s32(dirfd)
        base = None
        if not path.startswith("/") and dirfd != AT_FDCWD:
            f = self.fd(dirfd)
            if not f.is_dir:
                raise OSError(20, "ENOTDIR")
            base = f.gpath
        return self.p.fs.guest_abspath(path, base)

    def lookup_at(self, dirfd: int, addr: int, follow: bool = True, change: bool = False):
        """Where a (dirfd, path) pair leads, through the file-system gate
        (emu/linux/fs.py): a Resolved the caller closes. change: the call
        creates, removes or changes it (EROFS outside the sandbox)."""
        from emu.linux.fs import Resolved, host_proc_refused
        gpath = self.guest_path_at(dirfd, addr)
        if host_proc_refused(gpath):
            raise OSError(13, "the emulator's own /proc entry")
        special = self._special_path(gpath)
        if special is not None:
            host, inside = special
            if change and not inside:
                raise OSError(30, "read-only file system")
            return Resolved(-1, posixpath.basename(host), host, inside, owned=False, follow=follow)
        if change:
            return self.p.fs.for_change(gpath, follow, internal=True)
        return self.p.fs.lookup(gpath, follow, internal=True)

    def _special_path(self, gpath: str):
        """(host path, inside the sandbox) for the paths that name something
        of this process's: /proc/self/exe and its own descriptors."""
        if gpath in ("/proc/self/exe", "/proc/%d/exe" % self.p.pid):
            return self.p.exe_path, self.p.fs.writable(self.p.exe_path)
        fd = self.fd_path(gpath)
        if fd is not None:
            f = self.p.fds.get(fd)
            if f is None:
                raise OSError(2, "ENOENT")
            return "/proc/self/fd/%d" % f.host_fd, not getattr(f, "outside", False)
        return None

    def path_at(self, dirfd: int, addr: int, follow: bool = True) -> str:
        """The host path for a (dirfd, path) pair, resolved inside the guest root."""
        gpath = self.guest_path_at(dirfd, addr)
        if gpath in ("/proc/self/exe", "/proc/%d/exe" % self.p.pid):
            return self.p.exe_path
        fd = self.fd_path(gpath)
        if fd is not None:
            # the guest's own open file: the host's link to emu's descriptor for
            # it, which the host kernel resolves (and reopens) as Linux does
            f = self.p.fds.get(fd)
            if f is None:
                raise OSError(2, "ENOENT")
            return "/proc/self/fd/%d" % f.host_fd
        from emu.linux.fs import host_proc_refused
        if host_proc_refused(gpath):
            raise OSError(13, "the emulator's own /proc entry")
        return self.p.fs.resolve(gpath, follow=follow, internal=True)

    def fd_path(self, gpath: str):
        """The guest descriptor that /dev/fd/N, /dev/std{in,out,err} or
        /proc/{self,PID}/fd/N names (this process's), else None."""
        std = _STD_PATHS.get(gpath)
        if std is not None:
            return std
        m = _FD_PATH.match(gpath)
        if m is None or m.group(1) is not None and int(m.group(1)) != self.p.pid:
            return None
        return int(m.group(2))

    def check_write(self, host: str, follow: bool = True) -> None:
        if not self.p.fs.writable(host, follow):
            raise OSError(30, "read-only file system")

    def check_fd_write(self, f) -> None:
        """A call that changes a file through a descriptor (fchmod, fchown,
        futimens, ftruncate, fallocate...): refused for files opened outside
        the sandbox (and the host's stdin/stdout/stderr in a sandbox)."""
        if getattr(f, "outside", False):
            raise OSError(30, "read-only file system")


_FAST = frozenset((0, 1, 5, 8, 17, 18, 19, 20, 262))    # calls the core may answer (emu/linux/fastcalls.py)
_STD_PATHS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = __import__("re").compile(r"^/(?:dev/fd|proc/(?:self|thread-self|(\d+))(?:/task/\d+)?/fd)/(\d+)$")


def pack_stat(s: os.stat_result) -> bytes:
    """struct stat for x86-64 (arch/x86/include/uapi/asm/stat.h). Seconds and
    nanoseconds from the exact st_*time_ns (the float st_*time can round a
    second up, and truncates toward zero before 1970)."""
    return struct.pack("<QQQIIIIQqqqqqqqqq24x", s.st_dev, s.st_ino, s.st_nlink, s.st_mode, s.st_uid, s.st_gid, 0,
                       s.st_rdev, s.st_size, s.st_blksize, s.st_blocks,
                       *divmod(s.st_atime_ns, 10**9), *divmod(s.st_mtime_ns, 10**9), *divmod(s.st_ctime_ns, 10**9))


from emu.linux import sigframe, sys_exec, sys_files, sys_mem, sys_misc, sys_net, sys_nodes, sys_ns, sys_proc, sys_sched, rseq  # noqa: E402,F401  (register the handlers)
