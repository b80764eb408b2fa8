"""Processes: fork/vfork/clone (as host processes, like qemu-user), execve,
wait4/waitid."""
from __future__ import annotations

import gc
import os
import resource
import signal
import struct
import sys

from emu.linux import errno as E
from emu.linux.syscalls import s32, syscall

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x1000, 0x4000, 0x8000, 0x10000
CLONE_SETTLS, CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x80000, 0x100000, 0x200000, 0x1000000


def _fork(s, flags=0, child_stack=0, ptid=0, ctid=0, tls=0):
    sys.stdout.flush()
    sys.stderr.flush()
    # shared file mappings reach their files first: parent and child then each
    # write back only what they change afterwards (emu/linux/mm.py)
    s.p.mm.write_back()
    # vfork: the parent sleeps until the child has exec'd or exited; the child
    # holds the write end of this pipe and closes it then
    sync = os.pipe() if flags & CLONE_VFORK else None
    sched = s.p.ptree.sched(s.p.pid) if s.p.ptree is not None else None     # fork inherits it
    # the emulator's objects so far go to the collector's permanent
    # generation first: a collection in the child then never walks them,
    # which would write to (and so copy) every page of the heap the two
    # processes share after the fork (the gc module's advice for fork)
    gc.freeze()
    pid = os.fork()
    if pid:
        gc.unfreeze()               # the parent collects as before
    if pid == 0:
        p = s.p
        p.forked_child = True
        if sync:
            os.close(sync[0])
            p.vfork_done_fd = sync[1]
        p.pid = os.getpid()
        v = s.v
        if child_stack:
            v.rsp = child_stack
        if flags & CLONE_SETTLS:
            v.fs_base = tls
        if flags & CLONE_CHILD_SETTID and ctid:
            s.write(ctid, struct.pack("<i", p.pid))
        if flags & CLONE_CHILD_CLEARTID:
            p.current.clear_tid = ctid
        p.threads = [p.current]
        p.current.tid = p.pid
        p.itimers = {}              # a child starts with no timers, no pending signals, no children
        p.pending_signals = 0
        p.children = set()
        p.posix_timers = {}
        p.sig_info = {}
        p.after_fork(sched)
        return 0
    s.p.children.add(pid)           # for waits a timer may interrupt
    if s.p.ptree is not None:       # in the guest's pid namespace before fork returns (kill $!)
        from emu.linux.procfs import comm
        from emu.linux.ptree import DEFAULT_SCHED
        s.p.ptree.register(pid, pid, comm(s.p), s.p.argv, sched or DEFAULT_SCHED, s.p.exe_id)
    if flags & CLONE_PARENT_SETTID and ptid:
        s.write(ptid, struct.pack("<i", pid))
    if sync:
        os.close(sync[1])
        os.read(sync[0], 1)            # EOF when the child execs or exits
        os.close(sync[0])
    return pid


@syscall(57, "fork")
def sys_fork(s, *_):
    return _fork(s)


@syscall(58, "vfork")
def sys_vfork(s, *_):
    return _fork(s, CLONE_VFORK)


@syscall(56, "clone")
def sys_clone(s, flags, stack, ptid, ctid, tls, *_):
    if flags & CLONE_THREAD:
        from emu.linux.threads import clone_thread
        return clone_thread(s, flags, stack, ptid, ctid, tls)
    return _fork(s, flags, stack, ptid, ctid, tls)


@syscall(435, "clone3")
def sys_clone3(s, args, size, *_):
    return -E.ENOSYS        # glibc falls back to clone


def _blocking_wait(s, poll_child):
    """A wait4/waitid that would block, in a process taking part in a guest
    tree (emu/linux/hostsig.py): poll_child() (the call with WNOHANG) until
    it finds a child, sleeping between tries until a host signal arrives
    (SIGCHLD for the child's change); a signal the guest handles ends it
    with ERESTARTSYS, as on Linux (after the child it may have found)."""
    from emu.linux.syscalls import ERESTARTSYS
    from emu.linux.timers import ceil_s, wait
    bridge = s.p.bridge
    pl = bridge.poller()
    from emu.linux.timers import interrupting
    while True:
        r = poll_child()
        if r is not None:
            return r
        if interrupting(s.p):
            return ERESTARTSYS
        if not s.p.itimers:
            # no guest time passes (as before a host wait4): the next host signal
            from emu.linux.timers import RECHECK_MS
            pl.poll(RECHECK_MS)
            bridge.drain()
            continue

        def sleep(t):
            if pl.poll(ceil_s(t)):                 # a host signal came: look again
                bridge.drain()
                return 1
            return 0
        _r, _el, interrupted = wait(s, None, sleep, host_fds=True)
        if interrupted:
            r = poll_child()
            return ERESTARTSYS if r is None else r


@syscall(61, "wait4")
def sys_wait4(s, pid, status, options, rusage, *_):
    if s.p.bridge is not None and not options & os.WNOHANG:
        def once():
            r = sys_wait4(s, pid, status, options | os.WNOHANG, rusage)
            return None if r == 0 else r
        return _blocking_wait(s, once)
    if s.p.itimers and not options & os.WNOHANG:     # a timer's signal may interrupt the wait
        from emu.linux.timers import wait_child
        r = wait_child(s, s32(pid))
        if r is not None:
            return r
    try:
        wpid, wstatus, ru = os.wait4(s32(pid), options & 0xFFFFFFFF)
    except ChildProcessError:
        return -E.ECHILD
    if wpid > 0:
        s.p.children.discard(wpid)
    if wpid and status:
        s.write(status, struct.pack("<i", wstatus))
    if wpid and rusage:
        s.write(rusage, struct.pack("<qqqq", int(ru.ru_utime), int(ru.ru_utime % 1 * 1e6),
                                    int(ru.ru_stime), int(ru.ru_stime % 1 * 1e6)).ljust(144, b"\0"))
    return wpid


@syscall(247, "waitid")
def sys_waitid(s, idtype, ident, infop, options, *_):
    if s.p.bridge is not None and not options & os.WNOHANG:
        def once():
            try:            # look without reaping; then the call proper takes it
                got = os.waitid(idtype, ident, (options | os.WNOHANG | 0x01000000) & 0xFFFFFFFF)
            except ChildProcessError:
                return -E.ECHILD
            except OSError as e:
                return -E.from_oserror(e)
            return None if got is None else sys_waitid(s, idtype, ident, infop, options | os.WNOHANG)
        return _blocking_wait(s, once)
    if s.p.itimers and not options & os.WNOHANG:     # a timer's signal may interrupt the wait
        from emu.linux.timers import wait_child
        r = wait_child(s, s32(ident) if idtype == 1 else -1)      # P_PID, else any child
        if r is not None:
            return r
    try:
        r = os.waitid(idtype, ident, options)
    except ChildProcessError:
        return -E.ECHILD
    if r is not None and options & 4:     # WEXITED: reaped (unless WNOWAIT)
        if not options & 0x01000000:
            s.p.children.discard(r.si_pid)
    if infop:
        if r is None:
            s.write(infop, bytes(128))
        else:
            s.write(infop, struct.pack("<iiiiiii", r.si_signo, 0, r.si_code, 0, r.si_pid, r.si_uid,
                                       r.si_status).ljust(128, b"\0"))
    return 0


def _strings(s, addr):
    out = []
    while addr:
        (p,) = struct.unpack("<Q", s.read(addr, 8))
        if not p:
            break
        out.append(s.cstr(p, 1 << 17))
        addr += 8
        if len(out) > 1 << 16:
            raise OSError(7, "E2BIG")
    return out


@syscall(59, "execve")
def sys_execve(s, path, argv, envp, *_):
    return s.p.execve(s.cstr(path), _strings(s, argv), _strings(s, envp))


@syscall(322, "execveat")
def sys_execveat(s, dirfd, path, argv, envp, flags, *_):
    if flags & ~0x1100:                          # AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW
        return -E.EINVAL
    if flags & 0x1000 and s.cstr(path) == "":   # AT_EMPTY_PATH: the file open on dirfd (fexecve)
        f = s.fd(dirfd)
        if not f.gpath:
            return -E.ENOENT
        return s.p.execve(f.gpath, _strings(s, argv), _strings(s, envp))
    return s.p.execve(s.path_at(dirfd, path), _strings(s, argv), _strings(s, envp))


def die_like(signo: int) -> None:
    """End this host process the way the guest died, so a waiting parent
    (guest or shell) sees the same status."""
    sys.stdout.flush()
    sys.stderr.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signo, signal.SIG_DFL)
    os.kill(os.getpid(), signo)
    os._exit(128 + signo)
