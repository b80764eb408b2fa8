"""The sandbox's behaviour report (`emu run --report FILE`): what a guest
program did, one JSON object per line, for every process of its tree (a
forked child appends to the same file; each line carries the guest pid).

Events ("event" field):
- exec: execve's path and argv (logged before the call; its failure follows
  as an exec_failed event);
- open: path, access ("r", "w", "rw"), creat/trunc, the result (fd or -errno);
- file: unlink, rmdir, mkdir, rename, link, symlink, chmod, truncate with
  their path(s) and result;
- net: socket (domain, type), connect, bind, sendto with the address
  (ip:port, or a unix socket path) and the result;
- proc: clone/fork/vfork (the child's pid), kill/tkill/tgkill, ptrace, prctl;
- fault: a CPU exception the guest took (vector, rip, cr2);
- exit: the status, and what the process asked of the machine: system calls
  by name, the CPUID leaves it queried and how many times it read the TSC
  (an anti-analysis program's probes; seen through the hypervisor layer's
  trap policy, which answers them exactly as the profile would).

The report is written through a host file descriptor the guest cannot see.
Nothing here changes what the guest observes.
"""
from __future__ import annotations

import json
import os
import struct

from emu.linux.sysent import name as _sysent_name

AT_FDCWD = -100
SUBLEAF_INDEXED = frozenset((4, 7, 0xB, 0xD, 0xF, 0x10, 0x12, 0x14, 0x17, 0x18, 0x1A, 0x1B, 0x1D, 0x1E,
                             0x1F, 0x20, 0x23, 0x8000001D, 0x80000020))
O_ACCMODE, O_CREAT, O_TRUNC = 3, 0o100, 0o1000


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _s64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _name(nr: int) -> str:
    return _sysent_name(nr)


class BehaviourReport:
    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.cpuid_leaves: set[tuple[int, int]] = set()
        self.rdtsc = 0

    # ---- wiring ----
    def policy(self):
        """The trap policy that counts the guest's CPUID and RDTSC probes (and
        answers them as the profile does)."""
        from emu.hypervisor import Policy

        def on_cpuid(ev):
            # the subleaf only where ECX selects one (elsewhere it is whatever ECX held)
            self.cpuid_leaves.add((ev.leaf, ev.subleaf if ev.leaf in SUBLEAF_INDEXED else None))
            return None

        def on_rdtsc(ev):
            self.rdtsc += 1
            return None
        return Policy(cpuid=on_cpuid, rdtsc=on_rdtsc)

    def attach(self, process) -> None:
        process.add_syscall_hook(self._before, self._after)
        process.add_fault_hook(self._fault)
        process.add_exit_hook(self.summary)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ---- writing ----
    def emit(self, process, event: str, **fields) -> None:
        if self.fd < 0:
            return
        rec = {"pid": process.pid, "event": event}
        rec.update(fields)
        os.write(self.fd, (json.dumps(rec, sort_keys=True) + "\n").encode())

    def summary(self, process, status, signal) -> None:
        counts = {}
        for nr, n in process.syscall_counts.items():
            counts[_name(nr)] = counts.get(_name(nr), 0) + n
        self.emit(process, "exit", status=status, signal=signal, syscalls=dict(sorted(counts.items())),
                  cpuid_leaves=["%#x" % l if sub is None else "%#x/%#x" % (l, sub)
                                for l, sub in sorted(self.cpuid_leaves, key=lambda k: (k[0], k[1] or 0))],
                  rdtsc=self.rdtsc)

    # ---- decoding ----
    @staticmethod
    def _path(p, dirfd: int, addr: int) -> str | None:
        try:
            return p.sys.guest_path_at(dirfd, addr)
        except Exception:
            return None

    @staticmethod
    def _sockaddr(p, addr: int, n: int):
        try:
            raw = p.sys.read(addr, min(max(n, 0), 110))
        except Exception:
            return None
        if len(raw) < 2:
            return None
        fam = struct.unpack_from("<H", raw)[0]
        if fam == 2 and len(raw) >= 8:
            return "%d.%d.%d.%d:%d" % (*raw[4:8], struct.unpack_from(">H", raw, 2)[0])
        if fam == 10 and len(raw) >= 24:
            import ipaddress
            return "[%s]:%d" % (ipaddress.IPv6Address(raw[8:24]), struct.unpack_from(">H", raw, 2)[0])
        if fam == 1:
            return "unix:" + raw[2:].split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
        return "family %d" % fam

    def _argv(self, p, addr: int) -> list[str]:
        out = []
        try:
            for i in range(64):
                ptr = struct.unpack("<Q", p.sys.read(addr + 8 * i, 8))[0]
                if not ptr:
                    break
                out.append(p.sys.cstr(ptr))
        except Exception:
            out.append("...")
        return out

    # ---- hooks ----
    def _before(self, p, nr, args):
        name = _name(nr)
        if name == "execve":
            self.emit(p, "exec", path=self._path(p, AT_FDCWD, args[0]), argv=self._argv(p, args[1]))
        elif name == "execveat":
            self.emit(p, "exec", path=self._path(p, args[0], args[1]), argv=self._argv(p, args[2]))
        return None

    def _after(self, p, nr, args, ret):
        name = _name(nr)
        r = _s64(ret) if ret is not None else None
        a = args
        if name in ("open", "creat", "openat", "openat2"):
            if name == "openat2":
                try:
                    flags = struct.unpack("<Q", p.sys.read(a[2], 8))[0]
                except Exception:
                    flags = 0
                path = self._path(p, a[0], a[1])
            elif name == "openat":
                flags, path = a[2], self._path(p, a[0], a[1])
            elif name == "creat":
                flags, path = O_CREAT | O_TRUNC | 1, self._path(p, AT_FDCWD, a[0])
            else:
                flags, path = a[1], self._path(p, AT_FDCWD, a[0])
            self.emit(p, "open", path=path, access=("r", "w", "rw", "rw")[flags & O_ACCMODE],
                      create=bool(flags & O_CREAT), truncate=bool(flags & O_TRUNC), result=r)
        elif name in ("unlink", "rmdir", "mkdir", "chmod", "truncate"):
            self.emit(p, "file", op=name, path=self._path(p, AT_FDCWD, a[0]), result=r)
        elif name in ("unlinkat", "mkdirat", "fchmodat"):
            self.emit(p, "file", op=name, path=self._path(p, a[0], a[1]), result=r)
        elif name in ("rename", "link", "symlink"):
            src = p.sys.cstr(a[0]) if name == "symlink" else self._path(p, AT_FDCWD, a[0])
            self.emit(p, "file", op=name, path=src, target=self._path(p, AT_FDCWD, a[1]), result=r)
        elif name in ("renameat", "renameat2", "linkat"):
            self.emit(p, "file", op=name, path=self._path(p, a[0], a[1]), target=self._path(p, a[2], a[3]), result=r)
        elif name == "symlinkat":
            self.emit(p, "file", op=name, path=p.sys.cstr(a[0]), target=self._path(p, a[1], a[2]), result=r)
        elif name == "socket":
            self.emit(p, "net", op=name, domain=_s32(a[0]), type=_s32(a[1]) & 0xF, result=r)
        elif name in ("connect", "bind"):
            self.emit(p, "net", op=name, address=self._sockaddr(p, a[1], _s32(a[2])), result=r)
        elif name == "sendto" and a[4]:
            self.emit(p, "net", op=name, address=self._sockaddr(p, a[4], _s32(a[5])), bytes=_s64(a[2]), result=r)
        elif name in ("clone", "clone3", "fork", "vfork"):
            if r is not None and r > 0:                 # the parent's side: the child's pid
                self.emit(p, "proc", op=name, child=r)
            elif r == 0:                                # a forked child: its own probe counts
                self.cpuid_leaves = set()
                self.rdtsc = 0
        elif name in ("kill", "tkill"):
            self.emit(p, "proc", op=name, target=_s32(a[0]), signal=_s32(a[1]), result=r)
        elif name == "tgkill":
            self.emit(p, "proc", op=name, target=_s32(a[1]), signal=_s32(a[2]), result=r)
        elif name in ("ptrace", "prctl"):
            self.emit(p, "proc", op=name, request=_s64(a[0]), result=r)
        elif name in ("execve", "execveat"):
            self.emit(p, "exec_failed", result=r)          # (a successful execve does not return)
        return None

    def _fault(self, p, ex):
        self.emit(p, "fault", vector=ex.vector, rip=ex.rip, cr2=ex.cr2 if ex.vector == 14 else None)
        return None
