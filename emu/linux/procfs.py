"""The guest's own /proc/self (and /proc/<its pid>, /proc/thread-self)
files, generated from the personality's state: without them a guest would
read the host Python process's (its memory map, name and command line),
which is wrong for programs that parse them (glibc's pthread_getattr_np
finds the main thread's stack in /proc/self/maps) and gives the emulator
away (formats follow Documentation/filesystems/proc.rst and fs/proc/).

Served: maps, smaps, smaps_rollup, auxv, status, cmdline, comm, environ,
stat, statm; the links fd/N,
cwd, exe and root, and the fd directory's listing. Other /proc files fall
through to the host's.
"""
from __future__ import annotations

import os
import re

from emu.linux.mm import PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, MAP_SHARED

_SELF = re.compile(r"^/proc/(self|thread-self|\d+)(?:/task/\d+)?/(maps|smaps|smaps_rollup|auxv|status|cmdline|comm|environ|stat|statm)$")


def comm(p) -> str:
    """The task name: PR_SET_NAME's, else the file name execve was given
    (a script's own name, not its interpreter's), 15 bytes at most."""
    if getattr(p, "comm", None):
        return p.comm[:15]
    name = getattr(p, "exec_name", "") or os.path.basename(p.argv[0] if p.argv else p.exe_path) or "?"
    return name[:15]


def _maps(p) -> str:
    # (only metadata: a vanished file shows inode 0)
    return "".join(_vma_line(p, v) + "\n" for v in sorted(p.mm.vmas, key=lambda v: v.start))


def _vma_line(p, v) -> str:
    perms = ("r" if v.prot & PROT_READ else "-") + ("w" if v.prot & PROT_WRITE else "-") + \
        ("x" if v.prot & PROT_EXEC else "-") + ("s" if v.flags & MAP_SHARED else "p")
    name = v.name or ""
    dev, ino = "00:00", 0
    if name and not name.startswith("["):
        try:
            st = os.stat(p.fs.resolve(name, follow=True))
            dev, ino = "%02x:%02x" % (os.major(st.st_dev) & 0xFF, os.minor(st.st_dev) & 0xFF), st.st_ino
        except Exception:
            pass
    line = "%08x-%08x %s %08x %s %d" % (v.start, v.end, perms, v.file_off if name and ino else 0, dev, ino)
    return line.ljust(73) + name if name else line + " "


def _resident(p):
    """The populated pages, sorted (for the per-VMA counts of smaps)."""
    import bisect
    pages = sorted(p.mm.pages)
    return lambda lo, hi: bisect.bisect_left(pages, hi) - bisect.bisect_left(pages, lo)


def _vm_flags(v) -> str:
    """VmFlags as fs/proc/task_mmu.c names them."""
    shared = bool(v.flags & MAP_SHARED)
    anon = v.data is None and v.host_fd < 0
    f = [n for bit, n in ((PROT_READ, "rd"), (PROT_WRITE, "wr"), (PROT_EXEC, "ex")) if v.prot & bit]
    if shared:
        f.append("sh")
    f += ["mr", "mw", "me"]
    if shared:
        f.append("ms")
    if v.name == "[stack]":
        f.append("gd")
    if v.name == "[vdso]":
        f.append("de")
    elif (v.prot & PROT_WRITE and not shared) or (anon and not shared):
        f.append("ac")
    return " ".join(f)


_SMAPS_FIELDS = ("Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss", "Pss_Dirty", "Shared_Clean",
                 "Shared_Dirty", "Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "KSM", "LazyFree",
                 "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb", "Private_Hugetlb", "Swap",
                 "SwapPss", "Locked")


def _vma_counts(p, v, resident) -> dict:
    """Sizes in kB of one VMA: its resident pages split the way Linux does
    (anonymous and written private pages dirty; shared ones shared)."""
    rss = resident(v.start, v.end) * PAGE // 1024
    shared = bool(v.flags & MAP_SHARED)
    anon = v.data is None and v.host_fd < 0 and not shared
    dirty = anon or bool(v.prot & PROT_WRITE)
    c = dict.fromkeys(_SMAPS_FIELDS, 0)
    c.update(Size=(v.end - v.start) // 1024, KernelPageSize=PAGE // 1024, MMUPageSize=PAGE // 1024, Rss=rss,
             Pss=rss, Referenced=rss, Anonymous=rss if anon else 0)
    key = ("Shared_" if shared else "Private_") + ("Dirty" if dirty else "Clean")
    c[key] = rss
    if dirty:
        c["Pss_Dirty"] = rss
    return c


def _smaps(p) -> str:
    resident = _resident(p)
    out = []
    for v in sorted(p.mm.vmas, key=lambda v: v.start):
        out.append(_vma_line(p, v) + "\n")
        c = _vma_counts(p, v, resident)
        out.extend("%-16s%8d kB\n" % (k + ":", c[k]) for k in _SMAPS_FIELDS)
        out.append("%-16s%8d\n" % ("THPeligible:", 0))
        out.append("VmFlags: %s \n" % _vm_flags(v))
    return "".join(out)


def _smaps_rollup(p) -> str:
    resident = _resident(p)
    vmas = sorted(p.mm.vmas, key=lambda v: v.start)
    total = dict.fromkeys(_SMAPS_FIELDS, 0)
    for v in vmas:
        for k, n in _vma_counts(p, v, resident).items():
            total[k] += n
    lo, hi = (vmas[0].start, vmas[-1].end) if vmas else (0, 0)
    head = ("%08x-%08x ---p 00000000 00:00 0" % (lo, hi)).ljust(73) + "[rollup]\n"
    keys = [k for k in _SMAPS_FIELDS if k not in ("Size", "KernelPageSize", "MMUPageSize")]
    return head + "".join("%-16s%8d kB\n" % (k + ":", total[k]) for k in keys)


def _sizes(p) -> tuple[int, int]:
    """(virtual size, resident pages) of the address space."""
    return sum(v.end - v.start for v in p.mm.vmas), len(p.mm.pages)


def _ppid(p) -> int:
    return os.getppid() if p.seed is None else 1


def _ncpus(p) -> int:
    """The CPUs the guest is told of (a machine template's, else one)."""
    g = getattr(p, "guest", None)
    return g.ncpus if g is not None else 1


def _status(p) -> str:
    vsize, rss = _sizes(p)
    uid, gid = os.getuid(), os.getgid()
    blocked = getattr(p.current, "signal_mask", p.signal_mask)
    ign = sum(1 << (s - 1) for s, a in p.signal_actions.items() if a[0] == 1)
    cgt = sum(1 << (s - 1) for s, a in p.signal_actions.items() if a[0] not in (0, 1))
    rows = [("Name", comm(p)), ("Umask", "0022"), ("State", "R (running)"), ("Tgid", p.pid), ("Ngid", 0),
            ("Pid", p.pid), ("PPid", _ppid(p)), ("TracerPid", 0),
            ("Uid", "%d\t%d\t%d\t%d" % (uid, uid, uid, uid)), ("Gid", "%d\t%d\t%d\t%d" % (gid, gid, gid, gid)),
            ("FDSize", 64), ("Groups", ""), ("VmPeak", "%8d kB" % (vsize // 1024)),
            ("VmSize", "%8d kB" % (vsize // 1024)), ("VmLck", "%8d kB" % 0), ("VmPin", "%8d kB" % 0),
            ("VmHWM", "%8d kB" % (rss * PAGE // 1024)), ("VmRSS", "%8d kB" % (rss * PAGE // 1024)),
            ("Threads", len(p.threads)), ("SigQ", "0/63432"),
            ("SigPnd", "%016x" % 0), ("ShdPnd", "%016x" % getattr(p, "pending_signals", 0)),
            ("SigBlk", "%016x" % blocked), ("SigIgn", "%016x" % ign), ("SigCgt", "%016x" % cgt),
            ("CapInh", "%016x" % 0), ("CapPrm", "%016x" % (0x1FFFFFFFFFF if uid == 0 else 0)),
            ("CapEff", "%016x" % (0x1FFFFFFFFFF if uid == 0 else 0)), ("CapBnd", "%016x" % 0x1FFFFFFFFFF),
            ("CapAmb", "%016x" % 0), ("NoNewPrivs", 0), ("Seccomp", 0), ("Seccomp_filters", 0),
            ("Speculation_Store_Bypass", "thread vulnerable"), ("Cpus_allowed", "%x" % ((1 << _ncpus(p)) - 1)),
            ("Cpus_allowed_list", "0" if _ncpus(p) == 1 else "0-%d" % (_ncpus(p) - 1)),
            ("Mems_allowed", "1"), ("Mems_allowed_list", "0"),
            ("voluntary_ctxt_switches", 0), ("nonvoluntary_ctxt_switches", 0)]
    return "".join("%s:\t%s\n" % (k, v) for k, v in rows)


def _stat(p) -> str:
    vsize, rss = _sizes(p)
    stack = [v for v in p.mm.vmas if v.name == "[stack]"]
    start_stack = p.vcpu.rsp if not stack else stack[0].end - PAGE
    fields = [p.pid, "(%s)" % comm(p), "R", _ppid(p), p.pid, p.pid, 0, -1, 0x400000, 0, 0, 0, 0, 0, 0, 0, 0,
              20, 0, len(p.threads), 0, 0, vsize, rss, (1 << 64) - 1, 0, 0, start_stack, 0, 0,
              0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, p.mm.brk_start, 0, 0, 0, 0, 0]
    return " ".join(str(f) for f in fields) + "\n"


_LINK = re.compile(r"^/proc/(self|thread-self|\d+)(?:/task/\d+)?/(?:fd/(\d+)|(cwd|exe|root))$")
_FD_DIR = re.compile(r"^/proc/(self|thread-self|\d+)(?:/task/\d+)?/fd/?$")


def _ours(p, who: str) -> bool:
    return who in ("self", "thread-self") or int(who) == p.pid


def proc_link(p, guest_path: str):
    """readlink of the guest's /proc/self/{fd/N, cwd, exe, root}: the target
    as the guest names it, False for a descriptor it does not have, None when
    the path is not one of these links."""
    m = _LINK.match(guest_path)
    if m is None or not _ours(p, m.group(1)):
        return None
    if m.group(3) == "cwd":
        return p.fs.guest_view(p.fs.cwd)
    if m.group(3) == "exe":
        return p.exe_path
    if m.group(3) == "root":
        return "/"
    f = p.fds.get(int(m.group(2)))
    if f is None:
        return False
    if f.gpath:
        return p.fs.guest_view(f.gpath)
    try:                            # pipes, sockets, inherited descriptors: what the host says
        return os.readlink("/proc/self/fd/%d" % f.host_fd)
    except OSError:
        return False


def proc_fd_entries(p, guest_path: str):
    """getdents64 entries of the guest's /proc/self/fd directory: its own
    descriptors (symbolic links), or None when the path is not that one."""
    m = _FD_DIR.match(guest_path)
    if m is None or not _ours(p, m.group(1)):
        return None
    d = os.stat_result((0o40500, 1, 0, 2, 0, 0, 0, 0, 0, 0))
    entries = [(".", d), ("..", d)]
    for n in sorted(p.fds.fds):
        entries.append((str(n), os.stat_result((0o120700, 1000 + n, 0, 1, 0, 0, 64, 0, 0, 0))))
    return entries


def _other(p, gpid: int, what: str) -> bytes | None:
    """/proc/PID/{comm,cmdline,stat,status} of another process of the guest's
    tree: its name and command line from the process table (what its execve
    or PR_SET_NAME set, never the emulator's), the other fields of stat and
    status from the host's entry of the process that runs it."""
    tree = getattr(p, "ptree", None)
    rec = tree.record(gpid) if tree is not None else None
    if rec is None:
        return None
    name, cmdline = rec
    if what == "comm":
        return (name + "\n").encode("utf-8", "surrogateescape")
    if what == "cmdline":
        return cmdline
    if what not in ("stat", "status"):
        return None
    hpid = tree.host_pid(gpid)
    try:
        with open("/proc/%d/%s" % (hpid, what), "rb") as f:
            host = f.read()
    except OSError:
        return False
    enc = name.encode("utf-8", "surrogateescape")
    if what == "stat":                      # "pid (name) state ...": the name may hold ") "
        head, _sep, rest = host.partition(b" (")
        return head + b" (" + enc + b")" + rest[rest.rfind(b")") + 1:]
    lines = host.split(b"\n")
    return b"\n".join(b"Name:\t" + enc if ln.startswith(b"Name:") else ln for ln in lines)


def proc_file(p, guest_path: str) -> bytes | None:
    """Contents of one of the guest's own /proc files (or a few of another
    process of its tree), or None."""
    m = _SELF.match(guest_path)
    if m is None:
        return None
    if not _ours(p, m.group(1)):
        return _other(p, int(m.group(1)), m.group(2))
    what = m.group(2)
    if what == "maps":
        return _maps(p).encode("utf-8", "surrogateescape")
    if what == "smaps":
        return _smaps(p).encode("utf-8", "surrogateescape")
    if what == "smaps_rollup":
        return _smaps_rollup(p).encode("utf-8", "surrogateescape")
    if what == "auxv":
        return p.auxv                       # the vector the program was started with (binfmt_elf's saved copy)
    if what == "status":
        return _status(p).encode("utf-8", "surrogateescape")
    if what == "cmdline":
        return b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in p.argv)
    if what == "comm":
        return (comm(p) + "\n").encode("utf-8", "surrogateescape")
    if what == "environ":
        return b"".join(("%s=%s" % kv).encode("utf-8", "surrogateescape") + b"\0" for kv in p.env.items())
    if what == "statm":
        vsize, rss = _sizes(p)
        return ("%d %d 0 0 0 0 0\n" % (vsize // PAGE, rss)).encode("utf-8", "surrogateescape")
    return _stat(p).encode("utf-8", "surrogateescape")
