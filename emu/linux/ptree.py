"""The guest's process table: one record per process of the guest tree, in
memory every emu process of the tree shares (created by the first one,
inherited through fork). It is the guest's pid namespace: kill(2) reaches
the processes listed here and no other host process, and /proc/PID of one
of them shows its guest name and command line, not the emulator's.

A record: host pid, guest pid, state, the scheduling attributes any process
of the tree may read or set (policy, real-time priority, CPU affinity mask:
sched_setscheduler(2), sched_setaffinity(2)), the task name (comm, as Linux
sets it at execve and PR_SET_NAME), the identity (device, inode) of the
program it runs, which no process of the tree may open for writing while it
runs (ETXTBSY, `busy`), and the command line (NUL-separated, cut at
CMDLINE bytes). The records' heads (pids, state, name) lie together at the
start of the table and the command lines after them, so a lookup reads a few
pages rather than touching (and committing) the whole table. Records are claimed under a POSIX lock on the table's
memfd (per process, so it excludes forked processes too); a record whose
host process is gone is reused."""
from __future__ import annotations

import fcntl
import mmap
import os
import struct

SLOTS = 1024
SLOT = 1024
LIVE, EXITED = 1, 2
# host pid, guest pid, state, command line length, policy, priority, affinity, comm,
# the program's inode and device (each as low and high 32-bit words)
_HEAD = struct.Struct("<iiiiiii16sIIII")
SCHED = 4                           # word of the policy (then priority, affinity)
DEFAULT_SCHED = (0, 0, 1)           # SCHED_OTHER, priority 0, CPU 0
EXE = 11                            # word of the program's inode (low half; then high, device low, high)
CMDLINE = SLOT - _HEAD.size     # a record is its head and its command line: SLOT bytes
W = _HEAD.size // 4                 # 32-bit words per head
CMD_BASE = SLOTS * _HEAD.size       # record i's command line: CMD_BASE + i * CMDLINE


class ProcessTable:
    def __init__(self):
        self.fd = os.memfd_create("emu-ptree", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, SLOTS * SLOT)
        self.mem = mmap.mmap(self.fd, SLOTS * SLOT, mmap.MAP_SHARED)
        self.words = memoryview(self.mem)[:CMD_BASE].cast("i")     # record i's head word k: words[i * W + k]
        self.slot = -1

    def _column(self, k: int) -> list[int]:
        """Word k of every record."""
        return self.words[k::W].tolist()

    def _lookup(self, hpid: int) -> int:
        try:
            return self._column(0).index(hpid)
        except ValueError:
            return -1

    def _by_gpid(self, gpid: int) -> list[int]:
        """The records (in use) of guest pid gpid."""
        gpids, out, i = self._column(1), [], -1
        while True:                 # (list.index scans in C: this runs at every fork)
            try:
                i = gpids.index(gpid, i + 1)
            except ValueError:
                return out
            if self.words[i * W] != 0:
                out.append(i)

    def register(self, hpid: int, gpid: int, comm: str, argv, sched=DEFAULT_SCHED, exe=(0, 0)) -> None:
        """Claim the record of this process (at start and after a fork,
        where sched is the parent's: fork inherits it)."""
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            i = self._lookup(hpid)
            if i >= 0 and hpid != os.getpid() and self.words[i * W + 1] == gpid and \
                    self.words[i * W + 2] == LIVE:
                return      # the parent, after fork: the child has its record already (and may have renamed itself)
            if i < 0:
                i = self._lookup(0)
                if i < 0:
                    i = self._reclaim()
            if hpid == os.getpid():
                self.slot = i
            self._write(i, hpid, gpid, LIVE, comm, argv, sched, exe)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def _reclaim(self) -> int:
        for i in range(SLOTS):
            hpid = self.words[i * W]
            try:
                os.kill(hpid, 0)
            except ProcessLookupError:
                return i
            except OSError:
                pass
        raise OSError(11, "the guest process table is full")

    def _write(self, i, hpid, gpid, state, comm, argv, sched, exe=(0, 0)) -> None:
        cmd = b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in argv)[:CMDLINE]
        _HEAD.pack_into(self.mem, i * _HEAD.size, hpid, gpid, state, len(cmd), *sched,
                        comm.encode("utf-8", "surrogateescape")[:15], *_exe_words(exe))
        self.mem[CMD_BASE + i * CMDLINE:CMD_BASE + i * CMDLINE + len(cmd)] = cmd

    def update(self, comm: str, argv=None, exe=None) -> None:
        """execve (name, command line and program) or PR_SET_NAME (the name)."""
        if self.slot < 0:
            return
        hpid, gpid, state, n, p0, p1, p2, _c, *words = _HEAD.unpack_from(self.mem, self.slot * _HEAD.size)
        if argv is None:
            _HEAD.pack_into(self.mem, self.slot * _HEAD.size, hpid, gpid, state, n, p0, p1, p2,
                            comm.encode("utf-8", "surrogateescape")[:15], *words)
            return
        self._write(self.slot, hpid, gpid, state, comm, argv, (p0, p1, p2),
                    exe if exe is not None else _exe_of(words))

    def busy(self, dev: int, ino: int) -> bool:
        """A live process of the tree runs the program (dev, ino): Linux
        refuses to open it for writing (ETXTBSY, fs/namei.c's
        get_write_access against exec's deny_write_access)."""
        want = _exe_words((dev, ino))
        lo = want[0] - (1 << 32) if want[0] >> 31 else want[0]      # (the words view is signed)
        inos, i = self._column(EXE), -1
        while True:
            try:
                i = inos.index(lo, i + 1)
            except ValueError:
                return False
            rec = _HEAD.unpack_from(self.mem, i * _HEAD.size)
            if tuple(rec[8:]) == want and rec[0] != 0 and rec[2] == LIVE and _alive(rec[0]):
                return True

    def exited(self) -> None:
        if self.slot >= 0:
            self.words[self.slot * W + 2] = EXITED

    # ---- lookups ----
    def host_pid(self, gpid: int):
        """The host pid of guest process gpid, or None outside the tree."""
        for i in self._by_gpid(gpid):
            hpid = self.words[i * W]
            if _alive(hpid):
                return hpid
        return None

    def guest_pid(self, hpid: int) -> int:
        i = self._lookup(hpid)
        return self.words[i * W + 1] if i >= 0 else hpid

    def members(self) -> list[int]:
        """Host pids of the tree's processes."""
        return [h for h in self._column(0) if h and _alive(h)]

    def record(self, gpid: int):
        """(comm, cmdline bytes) of guest process gpid, or None."""
        hit = self._by_gpid(gpid)
        if not hit or not _alive(self.words[hit[0] * W]):
            return None
        i = hit[0]
        _h, _g, _s, n, _p0, _p1, _p2, comm, *_exe = _HEAD.unpack_from(self.mem, i * _HEAD.size)
        return comm.rstrip(b"\0").decode("utf-8", "replace"), bytes(self.mem[CMD_BASE + i * CMDLINE:CMD_BASE + i * CMDLINE + n])

    def _live_slot(self, gpid: int) -> int:
        for i in self._by_gpid(gpid):
            if _alive(self.words[i * W]):
                return i
        return -1

    def sched(self, gpid: int):
        """(policy, priority, affinity mask) of guest process gpid, or None."""
        i = self._live_slot(gpid)
        if i < 0:
            return None
        return tuple(self.words[i * W + SCHED:i * W + SCHED + 3])

    def set_sched(self, gpid: int, policy: int, prio: int, mask: int) -> bool:
        i = self._live_slot(gpid)
        if i < 0:
            return False
        for k, v in enumerate((policy, prio, mask)):
            self.words[i * W + SCHED + k] = v
        return True


def _exe_words(exe) -> tuple[int, int, int, int]:
    dev, ino = exe
    return ino & 0xFFFFFFFF, (ino >> 32) & 0xFFFFFFFF, dev & 0xFFFFFFFF, (dev >> 32) & 0xFFFFFFFF


def _exe_of(words) -> tuple[int, int]:
    return words[2] | words[3] << 32, words[0] | words[1] << 32


def _alive(hpid: int) -> bool:
    try:
        os.kill(hpid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
