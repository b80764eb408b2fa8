"""A Linux process in user mode: the machine it runs on, its address space,
its files, and the loop that hands SYSCALL and fault exits to the kernel
code in this package."""
from __future__ import annotations

import os
import select
import struct
import sys
import time

from emu.linux import elf
from emu.linux.fs import FileSystem
from emu.linux.fdtable import FdTable
from emu.linux.mm import (MMAP_TOP32, PAGE, PROT_READ, PROT_WRITE, STACK_SIZE, STACK_TOP, STACK_TOP32, AddressSpace,
                          Vma, page_up)
from emu.linux.signals import SIGNAL_NAMES, SIGSEGV, SIGILL, SIGFPE, SIGTRAP, SIGBUS
from emu.machine import Machine

MASK64 = (1 << 64) - 1
GUEST_RAM = 4 << 30     # lazily committed: only touched pages cost host memory

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_SYSINFO_EHDR, AT_MINSIGSTKSZ = 23, 25, 26, 31, 33, 51


def user_selectors(v) -> None:
    """CS and SS as Linux loads them for 64-bit user code (__USER_CS 0x33,
    __USER_DS 0x2b): MOV from CS/SS and PUSH CS read them."""
    v.set_seg_sel(1, 0x33)
    v.set_seg_sel(2, 0x2B)


MAX_PROGRAM = 1 << 31       # larger program files are refused (ENOMEM), never read whole


def read_program(host: str, path: str, need_exec: bool = True, fd: int | None = None) -> bytes:
    """The bytes of a program file, with execve's checks first (fs/exec.c
    do_open_execat): a regular file (not a directory, device or FIFO: EACCES)
    with an execute bit (EACCES). Opened without blocking, so a FIFO named as
    the program is refused instead of waiting for a writer, and /dev/zero is
    never read."""
    import stat as st
    try:
        if fd is None:
            fd = os.open(host, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProgramNotFound("%s: No such file or directory" % path) from None
    except IsADirectoryError:
        raise ProgramNotExecutable("%s: Is a directory" % path) from None
    except PermissionError:
        raise ProgramNotExecutable("%s: Permission denied" % path) from None
    except OSError as e:
        if e.errno == 20:               # ENOTDIR: a path component is a file
            raise ProgramNotFound("%s: Not a directory" % path) from None
        raise ProgramNotExecutable("%s: %s" % (path, e.strerror)) from None
    try:
        info = os.fstat(fd)
        if st.S_ISDIR(info.st_mode):
            raise ProgramNotExecutable("%s: Is a directory" % path)
        if not st.S_ISREG(info.st_mode):
            raise ProgramNotExecutable("%s: Permission denied (not a regular file)" % path)
        if need_exec and (not info.st_mode & 0o111 or not os.access("/proc/self/fd/%d" % fd, os.X_OK)):
            raise ProgramNotExecutable("%s: Permission denied" % path)
        if info.st_size > MAX_PROGRAM:
            raise ProgramNotExecutable("%s: Cannot allocate memory (program too large)" % path)
        return _read_whole(fd, info.st_size)
    except OSError as e:
        raise ProgramNotExecutable("%s: %s" % (path, e.strerror)) from None
    finally:
        os.close(fd)


LAZY_PROGRAM = 256 << 10        # program files from this size are read as needed (ProgramFile)


class ProgramFile:
    """A large program file, read as it is needed rather than whole: the
    loader reads the headers, and each segment's pages are read by the
    core's demand paging when the program first touches them
    (sys_mem.FileBytes), as Linux maps an executable from the page cache.
    A spawn of a 2 MiB static busybox then reads the 60-odd pages `true`
    runs instead of all 480. (Linux refuses writes to a running executable,
    ETXTBSY; emu does not, and a page not yet touched would show what a
    writer put there.)"""

    def __init__(self, fd: int, size: int):
        self.fd = os.dup(fd)
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, k):
        if isinstance(k, slice):
            start, stop, _ = k.indices(self.size)
            return os.pread(self.fd, stop - start, start) if stop > start else b""
        if k < 0:
            k += self.size
        if not 0 <= k < self.size:
            raise IndexError("ProgramFile index out of range")
        return os.pread(self.fd, 1, k)[0]

    def prefix(self) -> bytes:
        """The bytes from the start through the program-header table (at
        least the first page): what the ELF loader parses."""
        head = os.pread(self.fd, 4096, 0)
        if len(head) >= 64 and head[:4] == b"\x7fELF":
            if head[4] == 2:
                phoff = int.from_bytes(head[32:40], "little")
                entsize, num = int.from_bytes(head[54:56], "little"), int.from_bytes(head[56:58], "little")
            else:
                phoff = int.from_bytes(head[28:32], "little")
                entsize, num = int.from_bytes(head[42:44], "little"), int.from_bytes(head[44:46], "little")
            end = min(self.size, phoff + entsize * num)     # (the loader bounds entsize * num)
            if end > len(head):
                head += os.pread(self.fd, end - len(head), len(head))
        return head

    def segment(self, off: int, length: int):
        from emu.linux.sys_mem import FileBytes
        return FileBytes(self.fd, off, max(0, min(length, self.size - off)))

    def __del__(self):
        try:
            os.close(self.fd)
        except OSError:
            pass


def _read_whole(fd: int, size: int):
    """The file's bytes, in a private anonymous mapping populated in one
    call (MAP_POPULATE) and filled by readv: on a busy host each page fault
    of a fresh buffer costs microseconds, and a program of a few MiB read
    at every execve would take that many of them. A private copy, not a
    mapping of the file: the running image never changes (nor faults) when
    the file is rewritten or truncated afterwards. Short files come as
    bytes."""
    import mmap
    if size >= LAZY_PROGRAM:
        return ProgramFile(fd, size)
    if size < 64 * 1024:
        chunks = []
        while size > 0:
            b = os.read(fd, size)
            if not b:
                break
            chunks.append(b)
            size -= len(b)
        return b"".join(chunks)
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0))
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:got + (1 << 24)]])
        if n <= 0:
            break
        got += n
    view.release()
    if got < size:                      # the file shrank under us: what was there
        data = buf[:got]
        buf.close()
        return data
    return buf


class ProgramNotFound(Exception):
    """The program file does not exist (shell status 127)."""


class ProgramNotExecutable(Exception):
    """The program exists but cannot be executed (shell status 126)."""


class GuestExit(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class SyscallHook:
    """before(process, nr, args) -> None, new args (tuple), or a result (int:
    the call is not made); after(process, nr, args, result) -> None or a new
    result. args are the six argument registers."""

    def __init__(self, before=None, after=None):
        self.before = before
        self.after = after


class Reexec(Exception):
    """execve succeeded: restart the run loop on the new image."""


class GuestKilled(Exception):
    def __init__(self, signo: int, core: bool = False):
        super().__init__(signo)
        self.signo = signo
        self.core = core


class Process:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None, *, root: str = "/",
                 sandbox: str | None = None, strace: bool = False, seed: int | None = None,
                 stdio: tuple[int, int, int] = (0, 1, 2), profile: str = "transparent", time: str = "host",
                 guest=None, cpu: str | None = None, code_cache: int | None = None):
        self.argv = list(argv)
        self.env = dict(os.environ if env is None else env)
        self.code_cache = code_cache     # bytes of translated code kept (None: the default)
        self.machine = Machine(ram_size=GUEST_RAM, cpl=3, code_cache=code_cache)
        self.vcpu = self.machine.vcpu
        user_selectors(self.vcpu)
        # hypervisor layer: CPUID profile, guest clock, platform files (emu/hypervisor)
        from emu.hypervisor import Guest
        self.guest = guest if guest is not None else Guest(profile, time, cpu=cpu)
        self.guest.install(self.vcpu)
        self.mm = AddressSpace(self.machine)
        self.fs = FileSystem(root=root, sandbox=sandbox)
        self.fds = FdTable.standard(stdio)
        if sandbox:
            for f in self.fds.fds.values():
                f.outside = True        # the host's own files: no fchmod/ftruncate... through them
        self.strace = strace
        self.seed = seed
        self._rng = None
        if seed is not None:
            self.vcpu.seed_rng(seed)
        self.pid = os.getpid() if seed is None else 1000
        self.exe_path = ""
        self.exe_id = (0, 0)            # (device, inode) of the program: busy while it runs (ptree.busy)
        self.exec_name = ""             # the name execve was given: the task name (comm)
        self.comm = None                # PR_SET_NAME's name
        self.signal_actions: dict[int, tuple] = {}
        self.signal_mask = 0
        self.pending_signals = 0        # bit sig-1: raised, not yet delivered (blocked, or due from a timer)
        self.saved_sigmask = None       # the caller's mask during a wait with a temporary one (emu/linux/timers.py)
        self.itimers: dict[int, list] = {}   # armed interval timers: which -> [deadline ns, interval ns]
        self.children: set[int] = set()      # host pids of forked children not yet reaped
        self.posix_timers: dict[int, dict] = {}   # timer_create: id -> clock, signal, sigval, overruns
        self.sig_info: dict[int, tuple] = {}      # a pending timer signal -> its source (emu/linux/timers.py)
        self.warned: set[int] = set()
        self.enosys: dict[str, int] = {}          # name -> calls that returned ENOSYS (--stats)
        self.forked_child = False
        self.syscall_hooks: list[SyscallHook] = []   # add_syscall_hook()
        self.fault_hooks: list = []                  # fn(process, exit) -> True: handled, resume
        self.exit_hooks: list = []                   # fn(process, status, signal) as the process ends
        self._syscall_counts: dict[int, int] = {}    # system call number -> times called (syscall_counts)
        self.hooks = None                            # an emu.hooks.Hooks on self.vcpu: HOOK exits go there
        self.on_stopped = None                       # fn(vcpu) -> True: a STOPPED exit was the caller's (gdb's Ctrl-C)
        self.auxv = b""                              # the auxiliary vector given to the program (gdb's qXfer:auxv)
        self.last_fault = None                       # (rip, vector, cr2) of the last CPU exception turned into a signal
        self.mem_observer = None                     # fn(addr, data, is_write) on each Syscalls.read/write (emu/linux/replay.py)
        self.vfork_done_fd = -1         # a vfork child: closed at execve or exit to wake the parent
        self.bridge = None              # host signals <-> guest signals (enable_host_signals)
        self.ptree = None               # the guest's process table (emu/linux/ptree.py)
        self.insn_limit = None          # `emu run --max-insns`: SIGXCPU once the vCPUs retired this many
        self.insns_before = 0           # instructions retired by earlier images of this process (exec)
        from emu.linux.threads import Thread
        self.current = Thread(self.pid, self.vcpu)
        self.threads = [self.current]
        self.next_tid = self.pid + 1
        from emu.linux.syscalls import Syscalls
        self.sys = Syscalls(self)
        # system calls the core answers itself on plain descriptors (emu/linux/fastcalls.py)
        self.fast = None
        from emu.linux import fastcalls
        if fastcalls.wanted():
            self.fast = fastcalls.FastCalls(self)

    def insns_retired(self) -> int:
        """Instructions this process's threads retired (across exec)."""
        return self.insns_before + sum(t.vcpu.icount for t in self.threads)

    @property
    def syscall_counts(self) -> dict[int, int]:
        """System call number -> times called (those the core answered too)."""
        fast = self.fast
        if fast is not None and fast.phys.sysfast_pending:
            fast.take_counts(self._syscall_counts)
        return self._syscall_counts

    @syscall_counts.setter
    def syscall_counts(self, counts: dict[int, int]) -> None:
        self._syscall_counts = counts

    @property
    def rng(self):
        """The seeded generator of AT_RANDOM and getrandom (--seed); made
        when first used (without a seed they come from os.urandom)."""
        if self._rng is None:
            import random
            self._rng = random.Random(self.seed)
        return self._rng

    # ---- exec ----
    def load(self, path: str, from_host: bool = True, depth: int = 0, program: tuple[str, bytes] | None = None) -> None:
        """Load the program. The command line names it as the user's shell
        would (relative to the host's working directory); inside a --root,
        an absolute path is inside the root. execve() names it in the guest
        and passes the (host path, bytes) it has read already as program.
        A `#!` script runs its interpreter (fs/binfmt_script.c): argv becomes
        interpreter [optional argument] script args..."""
        if program is not None:
            host, data = program
        elif from_host and not (self.fs.root != "/" and path.startswith("/")):
            host = os.path.abspath(path)
            data = read_program(host, path)
        else:
            host, data = self.read_guest_program(path)
        if depth == 0:
            self.exec_name = os.path.basename(path)
        if data[:2] == b"#!":
            line = data[2:].split(b"\n", 1)[0].strip().decode("utf-8", "surrogateescape")
            if not line or depth >= 4:
                raise ProgramNotExecutable("%s: bad interpreter line" % path)
            interp, _, arg = line.partition(" ")
            if not interp:
                raise ProgramNotExecutable("%s: bad interpreter line" % path)
            arg = arg.strip()
            self.argv = [interp] + ([arg] if arg else []) + [path] + self.argv[1:]
            return self.load(interp, from_host=False, depth=depth + 1)
        try:
            image = elf.load(self.mm, data, path)
            interp_base = 0
            entry = image.entry
            if image.interp:
                try:
                    _ihost, idata = self.read_guest_program(image.interp, need_exec=False)
                except (ProgramNotFound, ProgramNotExecutable):
                    raise ProgramNotFound("%s: cannot load interpreter %s" % (path, image.interp)) from None
                interp = elf.load(self.mm, idata, image.interp, base_hint=elf.INTERP_BASE)
                interp_base = interp.base
                entry = interp.entry
        except elf.ExecFormatError as e:
            raise ProgramNotExecutable(str(e)) from None
        self.exe_path = os.path.abspath(host)
        try:
            info = os.stat(self.exe_path)
            self.exe_id = (info.st_dev, info.st_ino)
        except OSError:
            self.exe_id = (0, 0)
        self.vdso_base = 0
        if image.bits == 64:
            # below the dynamic loader's place whether or not there is one (a static program too)
            from emu.linux.vdso import map_vdso
            self.vdso_base = map_vdso(self.mm, elf.INTERP_BASE)
        brk = page_up(image.end)
        self.mm.brk_start = self.mm.brk = brk
        self.bits = image.bits
        top = STACK_TOP if image.bits == 64 else STACK_TOP32
        if image.bits == 32:
            self.mm.mmap_top = MMAP_TOP32          # mmap stays below 4 GiB
        # the stack: reserved, populated on demand
        self.mm._insert(Vma(top - STACK_SIZE, top, PROT_READ | PROT_WRITE, name="[stack]"))
        sp = self._build_stack(image, interp_base, path, top)
        v = self.vcpu
        for i in range(16):
            v.set_gpr(i, 0)
        v.rsp = sp
        v.rip = entry
        v.rflags = 0x202
        if image.bits == 32:
            # an i386 program: compatibility mode with Linux's 32-bit user segments
            v.set_seg_sel(1, 0x23)
            for sr in (0, 2, 3):
                v.set_seg_sel(sr, 0x2B)
            v.cs32 = True

    def read_guest_program(self, path: str, need_exec: bool = True) -> tuple[str, bytes]:
        """(host path, bytes) of a program the guest names, opened through the
        file-system gate (emu/linux/fs.py) and checked as execve does."""
        try:
            fd, r = self.fs.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ProgramNotFound("%s: No such file or directory" % path) from None
        except OSError as e:
            if e.errno in (2, 20):
                raise ProgramNotFound("%s: %s" % (path, e.strerror)) from None
            raise ProgramNotExecutable("%s: %s" % (path, e.strerror)) from None
        host = r.host
        r.close()
        return host, read_program(host, path, need_exec, fd=fd)

    def _build_stack(self, image, interp_base: int, path: str, stack_top: int = None) -> int:
        """argc, argv, envp and the auxiliary vector, as Linux lays them out
        (fs/binfmt_elf.c's create_elf_tables order); 4-byte words for an
        i386 program."""
        strings = bytearray()
        top = (stack_top or STACK_TOP) - PAGE   # leave the very top page unused as Linux does (roughly)

        def put(b: bytes) -> int:
            strings.extend(b)
            return len(strings) - len(b)

        execfn_off = put(path.encode("utf-8", "surrogateescape") + b"\0")
        arg_offs = [put(a.encode("utf-8", "surrogateescape") + b"\0") for a in self.argv]
        env_offs = [put(("%s=%s" % kv).encode("utf-8", "surrogateescape") + b"\0") for kv in self.env.items()]
        plat_off = put(b"x86_64\0" if image.bits == 64 else b"i686\0")
        rand_off = put(bytes(self.rng.getrandbits(8) for _ in range(16)) if self.seed is not None else os.urandom(16))
        str_base = (top - len(strings)) & ~15
        addr = lambda off: str_base + off
        from emu.cpuid import hwcap_bits
        hwcap, hwcap2 = hwcap_bits(self.vcpu)
        auxv = [(AT_SYSINFO_EHDR, self.vdso_base)] if self.vdso_base else []
        auxv += [(AT_PHDR, image.phdr), (AT_PHENT, image.phent), (AT_PHNUM, image.phnum),
                (AT_PAGESZ, PAGE), (AT_BASE, interp_base), (AT_FLAGS, 0), (AT_ENTRY, image.entry),
                (AT_UID, os.getuid()), (AT_EUID, os.geteuid()), (AT_GID, os.getgid()), (AT_EGID, os.getegid()),
                (AT_SECURE, 0), (AT_RANDOM, addr(rand_off)), (AT_HWCAP, hwcap), (AT_HWCAP2, hwcap2),
                (AT_CLKTCK, 100), (AT_PLATFORM, addr(plat_off)), (AT_EXECFN, addr(execfn_off)),
                (AT_MINSIGSTKSZ, 2048), (AT_NULL, 0)]
        words = [len(self.argv)] + [addr(o) for o in arg_offs] + [0] + [addr(o) for o in env_offs] + [0]
        for k, val in auxv:
            words += [k, val]
        self.auxv = struct.pack("<%dQ" % (2 * len(auxv)) if image.bits == 64 else "<%dI" % (2 * len(auxv)),
                                *[w & (MASK64 if image.bits == 64 else 0xFFFFFFFF) for kv in auxv for w in kv])
        wsize = 8 if image.bits == 64 else 4
        sp = (str_base - wsize * len(words)) & ~15
        self.sys.write(str_base, bytes(strings))
        if wsize == 8:
            self.sys.write(sp, struct.pack("<%dQ" % len(words), *[w & MASK64 for w in words]))
        else:
            self.sys.write(sp, struct.pack("<%dI" % len(words), *[w & 0xFFFFFFFF for w in words]))
        return sp

    def enable_host_signals(self) -> None:
        """Take part in a guest process tree as `emu run` does: a process
        table shared with every process this one forks, and host signals
        carrying guest signals (emu/linux/hostsig.py). Installs host signal
        handlers: for the main thread of a program that runs one guest."""
        import signal as _signal
        from emu.linux.hostsig import CARRIED, SignalBridge
        from emu.linux.procfs import comm
        from emu.linux.ptree import ProcessTable
        for sig in CARRIED:
            # a signal ignored by whoever started emu stays ignored in the guest,
            # as exec keeps SIG_IGN on Linux (a background job's SIGINT, nohup's
            # SIGHUP); not SIGPIPE and SIGXFSZ, which Python ignores itself
            if sig not in (13, 25) and sig not in self.signal_actions:
                try:
                    if _signal.getsignal(sig) == _signal.SIG_IGN:
                        self.signal_actions[sig] = (1, 0, 0, 0)
                except (ValueError, OSError):
                    pass
        self.ptree = ProcessTable()
        self.ptree.register(os.getpid(), self.pid, comm(self), self.argv, exe=self.exe_id)
        self.bridge = SignalBridge(self)

    def after_fork(self, sched=None) -> None:
        """In the host child of a guest fork: its own record (with the
        parent's scheduling attributes, which fork inherits) and wake-up pipe."""
        if self.ptree is not None:
            from emu.linux.procfs import comm
            from emu.linux.ptree import DEFAULT_SCHED
            self.ptree.register(os.getpid(), self.pid, comm(self), self.argv, sched or DEFAULT_SCHED, self.exe_id)
        if self.bridge is not None:
            self.bridge.after_fork(self)

    # ---- running ----
    def run(self) -> int:
        """Run to the end; returns the exit status (128 + signal for a fatal signal)."""
        try:
            self._loop()
        except GuestExit as e:
            return e.status & 0xFF
        except GuestKilled as e:
            return 128 + e.signo
        return 0

    def _loop(self) -> None:
        """Run until the guest exits (GuestExit) or dies (GuestKilled). In a
        process forked by the guest, never return to the caller: end the host
        process with the guest's status instead."""
        try:
            while True:
                try:
                    self._run_image()
                except Reexec:
                    continue
        except GuestExit as e:
            if self.ptree is not None:
                self.ptree.exited()
            self.mm.write_back()
            for fn in self.exit_hooks:
                fn(self, e.status & 0xFF, None)
            if self.forked_child:
                sys.stdout.flush()
                os._exit(e.status & 0xFF)
            raise
        except GuestKilled as e:
            if self.ptree is not None:
                self.ptree.exited()
            self.mm.write_back()
            for fn in self.exit_hooks:
                fn(self, None, e.signo)
            if self.forked_child:
                from emu.linux.sys_exec import die_like
                die_like(e.signo)
            raise

    def execve(self, path: str, argv: list[str], envp: list[str]) -> int:
        """Replace the program: on success the old image is gone and the loop
        restarts in the new one; on failure the old image is untouched."""
        from emu.linux import errno as E
        if path in ("/proc/self/exe", "/proc/%d/exe" % self.pid):
            path = self.exe_path
        try:
            program = self.read_guest_program(path)
        except ProgramNotFound:
            return -E.ENOENT
        except ProgramNotExecutable:
            return -E.EACCES
        head = program[1][:64]
        if head[:2] != b"#!":
            try:
                elf.check_header(head, path)
            except elf.ExecFormatError:
                return -E.ENOEXEC
        self.mm.write_back()
        self.insns_before = self.insns_retired()
        for fd in list(self.fds.cloexec):
            self.fds.close(fd)
        self.argv = argv
        self.env = dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in envp)
        old_vcpu = self.vcpu
        self.machine = Machine(ram_size=GUEST_RAM, cpl=3, code_cache=self.code_cache)
        self.vcpu = self.machine.vcpu
        user_selectors(self.vcpu)
        self.guest.install(self.vcpu, like=old_vcpu)     # the clock goes on across exec
        if self.fast is not None:
            self.fast.take_counts(self._syscall_counts)   # (the old machine's answers)
            self.fast.attach(self.machine)
        self.mm = AddressSpace(self.machine)
        from emu.linux.threads import Thread
        self.current = Thread(self.pid, self.vcpu, signal_mask=self.current.signal_mask)
        self.threads = [self.current]
        self.signal_actions = {k: a for k, a in self.signal_actions.items() if a[0] == 1}
        self.altstack = (0, 2, 0)               # exec disables the alternate signal stack (SS_DISABLE)
        from emu.linux.timers import POSIX_KEY
        self.posix_timers = {}                  # exec deletes POSIX timers; setitimer's go on
        self.itimers = {k: t for k, t in self.itimers.items() if k < POSIX_KEY}
        from emu.linux.syscalls import Syscalls
        self.sys = Syscalls(self)
        if self.seed is not None:
            self.vcpu.seed_rng(self.seed)
        if self.vfork_done_fd >= 0:
            os.close(self.vfork_done_fd)
            self.vfork_done_fd = -1
        try:
            self.load(path, from_host=False, program=program)     # (the file is read once)
        except (ProgramNotFound, ProgramNotExecutable) as e:
            import logging
            logging.getLogger(__name__).error("emu: execve: %s", e)
            raise GuestKilled(9)
        self.comm = None                        # the new program's name (procfs.comm)
        if self.ptree is not None:
            from emu.linux.procfs import comm
            self.ptree.update(comm(self), self.argv, self.exe_id)
        if self.bridge is not None:
            self.bridge.attach(self.machine)
        raise Reexec()

    def _run_image(self) -> None:
        from emu.linux.threads import QUANTUM
        syscall = self.sys.dispatch
        fault = self.mm.handle_fault
        from emu.linux import timers, vsyscall
        fast = self.fast
        while True:
            t = self.current
            v = self.vcpu = t.vcpu
            if len(self.threads) > 1:
                # the time slice runs across system calls: a thread that makes
                # a call every few instructions (a polling loop) is still
                # preempted after QUANTUM instructions, as by a timer tick
                if t.slice_end is None:
                    t.slice_end = v.icount + QUANTUM
                budget = max(1, t.slice_end - v.icount)
            else:
                budget = 1 << 62
            timer_stop = False
            if self.itimers:
                n = timers.run_budget(self, v)      # stop when the earliest timer is due
                if n is not None and n < budget:
                    budget, timer_stop = n, True
            if self.insn_limit is not None:
                # the budget also ends where the limit falls; past it the guest
                # dies as by RLIMIT_CPU's signal (SIGXCPU), a per-sample cap
                left = self.insn_limit - self.insns_retired()
                if left <= 0:
                    raise GuestKilled(24)
                budget = min(budget, left)
            if self.mm._dz_dirty:
                self.mm.dz_sync()              # VMAs changed: the core's demand ranges follow
            if fast is not None:
                fast.sync(t)
            ex = v.run(budget)
            name = ex.name
            if name == "SYSCALL":
                if len(self.threads) > 1 and self._park_read(v, ex):
                    self._switch()
                    continue
                syscall()
            elif name == "EXCEPTION":
                if ex.vector == 14 and fault(ex.cr2, ex.error_code):
                    continue
                if ex.vector == 14 and vsyscall.emulate(self, v, ex):
                    continue
                self.fault_signal(ex)
            elif name == "HOOK" and self.hooks is not None:
                if not self.hooks.dispatch(ex):
                    raise GuestKilled(9)          # a hook callback asked to stop the guest
                continue
            elif name == "BUDGET" and timer_stop:
                timers.check(self.sys)          # a timer is due: its signal interrupts the guest here
                continue
            elif name == "STOPPED" and self.on_stopped is not None and self.on_stopped(v):
                continue                        # a debugger stopped the vCPU (emu/gdbstub.py)
            elif name == "STOPPED" and self.pending_signals:
                timers.check(self.sys)          # a host signal stopped the vCPU: deliver it here
                continue
            elif name == "BUDGET" or name == "STOPPED":
                self._switch()
                continue
            elif self.guest.hypervisor is not None and self.guest.hypervisor.handle(v, ex):
                continue                 # a trapped instruction the policy answered
            else:
                self.fatal(SIGSEGV, "unexpected exit %r" % ex)
            if t.exited or t.futex is not None:
                self._switch()

    # system calls that read one descriptor and may block: read, readv,
    # recvfrom, recvmsg, accept, accept4 (the descriptor is the first argument)
    FD_READS = frozenset((0, 19, 45, 47, 43, 288))
    # waits on several descriptors with a timeout: poll, ppoll, select,
    # pselect6, epoll_wait, epoll_pwait
    FD_WAITS = frozenset((7, 271, 23, 270, 232, 281))

    def _park_read(self, v, ex) -> bool:
        """With several threads, a call that would block parks its thread
        instead of blocking the whole process (another thread may be the one
        to write): RIP goes back to the SYSCALL, which runs again once a
        descriptor it waits on is ready, or (poll, select, epoll) its timeout
        passed on the guest clock, the call then seeing a zero timeout. Not
        while recording or replaying (the thread schedule must not depend on
        the host's timing), nor with timers armed or timerfds involved."""
        nr = v.rax
        if nr not in self.FD_READS and nr not in self.FD_WAITS and nr not in self.SLEEPS and nr != 128:
            return False
        if self.mem_observer is not None or self.itimers:
            return False
        if nr == 128:
            # rt_sigtimedwait: the thread parks until a signal of its set is
            # pending (sent by another thread, or from outside) or its timeout
            try:
                (these,) = struct.unpack("<Q", self.sys.read(v.rdi, 8))
                if v.r10 != 8 or self.pending_signals & these:
                    return False
                deadline = None
                if v.rdx:
                    sec, nsec = struct.unpack("<qq", self.sys.read(v.rdx, 16))
                    if sec < 0 or not 0 <= nsec < 1_000_000_000 or sec == nsec == 0:
                        return False
                    deadline = self.guest.clock.now_ns(v, 1) + sec * 1_000_000_000 + nsec
            except Exception:
                return False
            t = self.current
            t.fd_wait = []
            t.wait_deadline = deadline
            t.sig_wait = these
            v.rip = ex.rip
            return True
        if nr in self.SLEEPS:
            # a sleeping thread parks until its deadline on the guest clock; the
            # others run meanwhile (a sleep used to stop the whole process)
            try:
                deadline = self._sleep_deadline(v, nr)
            except Exception:
                return False
            if deadline is None:
                return False
            t = self.current
            t.fd_wait = []
            t.wait_deadline = deadline
            v.rip = ex.rip
            return True
        try:
            if nr in self.FD_READS:
                f = self.fds.get(v.rdi & 0xFFFFFFFF)
                if f is None or f.is_dir or getattr(f, "timerfd", None) is not None \
                        or not os.get_blocking(f.host_fd):
                    return False
                wait, deadline = [(f.host_fd, select.POLLIN)], None
            else:
                got = self._wait_set(v, nr)
                if got is None:
                    return False
                wait, deadline = got
            probe = select.poll()
            for fd, ev in wait:
                probe.register(fd, ev)
            if probe.poll(0):
                return False                  # something is ready: the call returns at once
        except (OSError, ValueError, struct.error):
            return False
        t = self.current
        t.fd_wait = wait
        t.wait_deadline = deadline
        v.rip = ex.rip
        return True

    # nanosleep, clock_nanosleep: park the thread (above)
    SLEEPS = frozenset((35, 230))

    def _sleep_deadline(self, v, nr):
        """The guest CLOCK_MONOTONIC time a nanosleep/clock_nanosleep ends,
        or None (invalid or already over: the call itself answers)."""
        clk = self.guest.clock
        now = clk.now_ns(v, 1)
        if nr == 35:
            req, clock, absolute = v.rdi, 1, False
        else:
            clock, absolute, req = v.rdi & 0xFFFFFFFF, bool(v.rsi & 1), v.rdx
            if clock not in (0, 1, 7):
                return None
        sec, nsec = struct.unpack("<qq", self.sys.read(req, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            return None
        ns = sec * 1_000_000_000 + nsec
        if absolute:
            ns -= clk.now_ns(v, clock)             # the time left on that clock
        return now + ns if ns > 0 else None

    def _wait_set(self, v, nr):
        """([(host fd, poll events)], deadline ns on the guest clock or None)
        of a poll/select/epoll wait that would wait, or None (a zero timeout,
        descriptors the call will report at once, timerfds)."""
        rd = self.sys.read
        ms = None                              # the timeout in ns (None: none)
        fds = []
        if nr in (7, 271):                     # poll, ppoll: struct pollfd[nfds]
            n = v.rsi
            if n > 4096:
                return None
            raw = rd(v.rdi, 8 * n) if n else b""
            for k in range(n):
                fd, ev, _ = struct.unpack_from("<ihh", raw, 8 * k)
                if fd < 0:
                    continue
                f = self.fds.get(fd)
                if f is None or getattr(f, "timerfd", None) is not None:
                    return None                # POLLNVAL at once, or a timerfd on the guest clock
                fds.append((f.host_fd, ev & 0xFFFF))
            if nr == 7:
                t = v.rdx & 0xFFFFFFFF
                t = t - (1 << 32) if t >> 31 else t
                ms = None if t < 0 else t * 1_000_000
            elif v.rdx:
                sec, nsec = struct.unpack("<qq", rd(v.rdx, 16))
                ms = sec * 1_000_000_000 + nsec
        elif nr in (232, 281):                 # epoll_wait, epoll_pwait: wait on the epoll itself
            f = self.fds.get(v.rdi & 0xFFFFFFFF)
            e = getattr(f, "epoll", None)
            if e is None or any(getattr(x, "timerfd", None) is not None for x in e.files.values()):
                return None
            fds.append((f.host_fd, select.POLLIN))
            t = v.r10 & 0xFFFFFFFF
            t = t - (1 << 32) if t >> 31 else t
            ms = None if t < 0 else t * 1_000_000
        else:                                  # select, pselect6: fd_sets
            n = min(v.rdi & 0xFFFFFFFF, 1024)
            for addr, ev in ((v.rsi, select.POLLIN), (v.rdx, select.POLLOUT), (v.r10, select.POLLPRI)):
                if not addr or not n:
                    continue
                bits = int.from_bytes(rd(addr, (n + 63) // 64 * 8), "little")
                for fd in range(n):
                    if bits >> fd & 1:
                        f = self.fds.get(fd)
                        if f is None or getattr(f, "timerfd", None) is not None:
                            return None
                        fds.append((f.host_fd, ev))
            if v.r8:
                sec, frac = struct.unpack("<qq", rd(v.r8, 16))
                ms = sec * 1_000_000_000 + (frac * 1000 if nr == 23 else frac)
        if ms is not None and ms <= 0:
            return None
        now = self.guest.clock.now_ns(v, 1)
        return fds, (None if ms is None else now + ms)

    def _expire_wait(self, t) -> None:
        """A parked wait's timeout passed: the call runs again with a zero
        timeout (poll/epoll: the register; select/ppoll: the struct, which the
        kernel leaves at zero after a timeout anyway)."""
        v = t.vcpu
        nr = v.rax
        if nr == 128:                          # rt_sigtimedwait's timeout passed: EAGAIN
            v.rip = v.rip + 2
            v.rax = (-11) & MASK64
            return
        if nr in self.SLEEPS:                  # the sleep is over: the call returns 0
            if self.strace:
                from emu.linux import sysent
                from emu.linux.strace import trace
                self.current, self.vcpu = t, v
                trace(self.sys, sysent.name(nr), (v.rdi, v.rsi, v.rdx, v.r10, v.r8, v.r9), 0)
            v.rip = v.rip + 2
            v.rax = 0
            return
        if nr == 7:
            v.rdx = 0
        elif nr in (232, 281):
            v.r10 = 0
        elif nr == 271 and v.rdx:
            self.sys.write(v.rdx, bytes(16))
        elif nr in (23, 270) and v.r8:
            self.sys.write(v.r8, bytes(16))

    def _readable(self, timeout=0.0) -> set:
        """The threads parked on descriptors whose wait is over (ready)."""
        waits = [t for t in self.threads if t.fd_wait is not None]
        if not waits:
            return set()
        p = select.poll()
        seen = {}
        for t in waits:
            for fd, ev in t.fd_wait:
                seen[fd] = seen.get(fd, 0) | ev
        for fd, ev in seen.items():
            p.register(fd, ev)
        wake = self.bridge.wake_r if self.bridge is not None and any(t.sig_wait for t in waits) else -1
        if wake >= 0 and wake not in seen:
            p.register(wake, select.POLLIN)    # a signal from outside ends a sigtimedwait
        try:
            hit = {fd for fd, _ in p.poll(None if timeout is None else int(timeout * 1000))}
        except (OSError, ValueError):
            return {id(t) for t in waits}
        if wake in hit:
            self.bridge.drain()
        return {id(t) for t in waits if any(fd in hit for fd, _ in t.fd_wait)}

    def _switch(self) -> None:
        """Round robin to the next runnable thread (deterministic, but for
        threads parked on descriptors, which run when one is ready or their
        timeout passed)."""
        self.threads = [t for t in self.threads if not t.exited]
        if not self.threads:
            raise GuestExit(0)
        n = len(self.threads)
        start = self.threads.index(self.current) + 1 if self.current in self.threads else 0
        order = [self.threads[(start + k) % n] for k in range(n)]
        clk = self.guest.clock
        while True:
            ready = self._readable()
            now = clk.now_ns(self.vcpu, 1)
            for t in order:
                if t.futex is not None and not self._shared_futex_changed(t):
                    dl = getattr(t, "futex_deadline", None) if t.timed else None
                    if dl is None or now < dl:
                        continue
                    t.futex = None                 # its timeout passed while others ran: ETIMEDOUT
                    t.futex_shared = False
                    t.vcpu.rax = (-110) & MASK64
                if t.fd_wait is not None and id(t) not in ready and not (t.sig_wait & self.pending_signals):
                    if t.wait_deadline is None or now < t.wait_deadline:
                        continue
                    self._expire_wait(t)
                t.fd_wait = t.wait_deadline = None
                t.sig_wait = 0
                t.slice_end = None             # a fresh time slice
                self.current = t
                if getattr(t, "rseq", None) is not None:     # preempted in a restartable sequence?
                    from emu.linux.rseq import fixup
                    fixup(self.sys, t)
                return
            sleepers = [t for t in order if t.fd_wait is None]       # on futexes
            if len(sleepers) == n:
                if not any(getattr(t, "futex_shared", False) for t in sleepers):
                    break
                if self.pending_signals and self._signal_interrupts_futex(sleepers):
                    return                     # a host signal (SIGTERM...) ends the wait, as on Linux
                # a futex word in memory other processes share: only they can
                # change it; look again after a short host wait (timed waits
                # still end at their deadline, below)
                from emu.hypervisor.timekeeping import futex_deadline_ns
                dls = [d for d in (futex_deadline_ns(self, t) for t in sleepers if t.timed) if d is not None]
                if dls and now >= min(dls):
                    break
                pause = min(0.005, 0.0002 * (1 << min(5, getattr(self, "_futex_polls", 0))))
                self._futex_polls = getattr(self, "_futex_polls", 0) + 1
                time.sleep(pause)
                if clk.virtual:
                    clk.sleep([t.vcpu for t in self.threads], int(pause * 1e9))
                continue
            # every thread waits, some on descriptors: wait for one to be ready or
            # for the earliest timeout (timed futex waits included), on the host
            # clock; virtual time then moves on by what passed
            from emu.hypervisor.timekeeping import futex_deadline_ns
            dls = [t.wait_deadline for t in order if t.wait_deadline is not None]
            dls += [d for d in (futex_deadline_ns(self, t) for t in sleepers if t.timed) if d is not None]
            dl = min(dls) if dls else None
            t0 = time.monotonic_ns()
            woke = self._readable(None if dl is None else max(0, dl - now) / 1e9)
            if clk.virtual:
                passed = time.monotonic_ns() - t0
                step = (dl - now) if dl is not None and not woke else passed
                if dl is not None:
                    step = min(step, dl - now)
                clk.sleep([t.vcpu for t in self.threads], max(0, step))
            if not woke and dl is not None and not any(t.wait_deadline is not None and t.wait_deadline <= dl
                                                       for t in order):
                break                          # a timed futex wait is the one that ends: below
        # everyone sleeps: time out the first timed wait, else it is a deadlock
        waiting = sleepers
        from emu.hypervisor.timekeeping import earliest_timeout
        if self._timer_interrupts_futex(waiting):
            return
        waiting = earliest_timeout(self, waiting)    # the clock passes to the earliest deadline
        for t in waiting:
            if t.timed:
                t.futex = None
                t.vcpu.rax = (-110) & MASK64      # ETIMEDOUT
                self.current = t
                return
        import logging
        logging.getLogger(__name__).error("emu: every thread is blocked on a futex (deadlock)")
        raise GuestKilled(9)

    def _shared_futex_changed(self, t) -> bool:
        """A thread asleep on a shared futex whose word another process
        changed: it wakes (a futex wait may end spuriously; its caller
        looks at the word again)."""
        if not getattr(t, "futex_shared", False):
            return False
        try:
            (cur,) = struct.unpack("<I", self.sys.read(t.futex, 4))
        except Exception:
            return False
        if cur == t.futex_val:
            return False
        t.futex = None
        t.futex_shared = False
        t.vcpu.rax = 0
        self._futex_polls = 0
        return True

    def _signal_interrupts_futex(self, waiting) -> bool:
        """A pending signal that a handler or the default action takes ends
        a futex wait (EINTR, as Linux's futex_wait returns after a signal) and
        is delivered at once; without this a process whose threads all wait
        on a futex in shared memory would ignore SIGTERM."""
        from emu.linux import timers
        t = self.current if self.current in waiting else waiting[0]
        self.current, self.vcpu = t, t.vcpu
        if not timers.interrupting(self):
            return False
        t.futex = None
        t.futex_shared = False
        t.vcpu.rax = (-4) & MASK64              # EINTR
        timers.check(self.sys)
        return True

    def _timer_interrupts_futex(self, waiting) -> bool:
        """Every thread waits on a futex and an ITIMER_REAL deadline comes
        before every futex timeout: the clock passes to it and its signal
        interrupts the first waiter's futex wait (EINTR)."""
        from emu.linux import timers
        from emu.hypervisor.timekeeping import futex_deadline_ns
        dl = timers.next_real_deadline(self)
        if dl is None:
            return False
        for t in waiting:
            if t.timed:
                d = futex_deadline_ns(self, t)
                if d is not None and d <= dl:
                    return False
        t = waiting[0]
        clk = self.guest.clock
        self.current, self.vcpu = t, t.vcpu
        clk.sleep([x.vcpu for x in self.threads], dl - clk.now_ns(t.vcpu, 1))
        timers.fire_due(self.sys)
        if not timers.interrupting(self):
            return False
        t.futex = None
        t.vcpu.rax = (-4) & MASK64              # EINTR
        timers.check(self.sys)
        return True

    def add_syscall_hook(self, before=None, after=None) -> SyscallHook:
        """Observe or change system calls: see SyscallHook."""
        h = SyscallHook(before, after)
        self.syscall_hooks.append(h)
        return h

    def add_exit_hook(self, fn) -> None:
        """fn(process, status, signal) when the process ends: its exit status
        (signal None), or the fatal signal (status None). In a child the guest
        forked it runs in that child."""
        self.exit_hooks.append(fn)

    def add_fault_hook(self, fn) -> None:
        """fn(process, exit) for every CPU exception the guest takes (after
        demand paging): return True if fn handled it (the guest resumes),
        anything else to let the kernel turn it into a signal."""
        self.fault_hooks.append(fn)

    def fault_signal(self, ex) -> None:
        """A CPU exception the kernel turns into a signal (arch/x86/kernel/traps.c)."""
        for fn in self.fault_hooks:
            if fn(self, ex) is True:
                return
        from emu.linux.sigframe import fault_info
        if (getattr(ex, "software", False) or ex.vector >= 32) and ex.vector == 0x80:
            from emu.linux.ia32 import int80
            int80(self.sys)                # the i386 system call ABI, kept for 64-bit code
            return
        info = fault_info(self, ex)
        self.last_fault = (ex.rip, ex.vector, ex.cr2 if ex.vector == 14 else None)
        if info[0] == 8 and info[1] == 0 and ex.vector in (16, 19):
            return                         # a spurious math fault: no signal (as Linux)
        self.vcpu.rip = info[5]
        self.sys.deliver_signal(info[0], fault=info)

    def fatal(self, sig: int, why: str = "") -> None:
        raise GuestKilled(sig)


def run_program(argv: list[str], **kw) -> int:
    """Load and run argv[0]; returns the exit status like a shell would."""
    p = Process(argv, **kw)
    p.load(argv[0])
    return p.run()
