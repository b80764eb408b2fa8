"""The guest's process table: one record per process of the guest tree, in
memory every emu process of the tree shares (created by the first one,
inherited through fork). It is the guest's pid namespace: kill(2) reaches
the processes listed here and no other host process, and /proc/PID of one
of them shows its guest name and command line, not the emulator's.

A record: host pid, guest pid, state, the task name (comm, as Linux sets
it at execve and PR_SET_NAME) and the command line (NUL-separated, cut at
CMDLINE bytes). Records are claimed under a POSIX lock on the table's
memfd (per process, so it excludes forked processes too); a record whose
host process is gone is reused."""
from __future__ import annotations

import fcntl
import mmap
import os
import struct

import numpy as np

SLOTS = 1024
SLOT = 1024
CMDLINE = SLOT - 32
LIVE, EXITED = 1, 2
_HEAD = struct.Struct("<iiii16s")


class ProcessTable:
    def __init__(self):
        self.fd = os.memfd_create("emu-ptree", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, SLOTS * SLOT)
        self.mem = mmap.mmap(self.fd, SLOTS * SLOT, mmap.MAP_SHARED)
        self.words = np.frombuffer(self.mem, dtype=np.int32).reshape(SLOTS, SLOT // 4)
        self.slot = -1

    def _lookup(self, hpid: int) -> int:
        hit = np.nonzero(self.words[:, 0] == hpid)[0]
        return int(hit[0]) if len(hit) else -1

    def register(self, hpid: int, gpid: int, comm: str, argv) -> None:
        """Claim the record of this process (at start and after a fork)."""
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            i = self._lookup(hpid)
            if i < 0:
                free = np.nonzero(self.words[:, 0] == 0)[0]
                i = int(free[0]) if len(free) else self._reclaim()
            if hpid == os.getpid():
                self.slot = i
            self._write(i, hpid, gpid, LIVE, comm, argv)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def _reclaim(self) -> int:
        for i in range(SLOTS):
            hpid = int(self.words[i, 0])
            try:
                os.kill(hpid, 0)
            except ProcessLookupError:
                return i
            except OSError:
                pass
        raise OSError(11, "the guest process table is full")

    def _write(self, i, hpid, gpid, state, comm, argv) -> None:
        cmd = b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in argv)[:CMDLINE]
        base = i * SLOT
        self.mem[base:base + SLOT] = _HEAD.pack(hpid, gpid, state, len(cmd), comm.encode("utf-8", "surrogateescape")[:15]) + cmd.ljust(CMDLINE, b"\0")

    def update(self, comm: str, argv=None) -> None:
        """execve or PR_SET_NAME: the record's name (and command line)."""
        if self.slot < 0:
            return
        hpid, gpid, state, n, _c = _HEAD.unpack_from(self.mem, self.slot * SLOT)
        if argv is None:
            argv_b = bytes(self.mem[self.slot * SLOT + 32:self.slot * SLOT + 32 + n])
            base = self.slot * SLOT
            self.mem[base:base + 32] = _HEAD.pack(hpid, gpid, state, n, comm.encode("utf-8", "surrogateescape")[:15])
            return
        self._write(self.slot, hpid, gpid, state, comm, argv)

    def exited(self) -> None:
        if self.slot >= 0:
            self.words[self.slot, 2] = EXITED

    # ---- lookups ----
    def host_pid(self, gpid: int):
        """The host pid of guest process gpid, or None outside the tree."""
        hit = np.nonzero((self.words[:, 1] == gpid) & (self.words[:, 0] != 0))[0]
        for i in hit:
            hpid = int(self.words[i, 0])
            if _alive(hpid):
                return hpid
        return None

    def guest_pid(self, hpid: int) -> int:
        i = self._lookup(hpid)
        return int(self.words[i, 1]) if i >= 0 else hpid

    def members(self) -> list[int]:
        """Host pids of the tree's processes."""
        return [int(h) for h in self.words[:, 0] if h and _alive(int(h))]

    def record(self, gpid: int):
        """(comm, cmdline bytes) of guest process gpid, or None."""
        hit = np.nonzero((self.words[:, 1] == gpid) & (self.words[:, 0] != 0))[0]
        if not len(hit) or not _alive(int(self.words[hit[0], 0])):
            return None
        base = int(hit[0]) * SLOT
        _h, _g, _s, n, comm = _HEAD.unpack_from(self.mem, base)
        return comm.rstrip(b"\0").decode("utf-8", "replace"), bytes(self.mem[base + 32:base + 32 + n])


def _alive(hpid: int) -> bool:
    try:
        os.kill(hpid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
