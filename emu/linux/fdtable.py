"""The guest's file descriptors: small integers naming host file
descriptors (or emulated files), with the close-on-exec flag."""
from __future__ import annotations

import os

from emu.linux.record import record


@record
class OpenFile:
    host_fd: int
    path: str = ""
    flags: int = 0
    is_dir: bool = False
    dir_entries: list | None = None   # getdents64 state
    dir_pos: int = 0
    refs: int = 1
    gpath: str = ""                   # the path as the guest named it (for *at() calls)


class FdTable:
    def __init__(self):
        self.fds: dict[int, OpenFile] = {}
        self.cloexec: set[int] = set()
        self.on_change = None           # fn(fd) when the file at fd changes (emu/linux/fastcalls.py)

    @classmethod
    def standard(cls, stdio: tuple[int, int, int] = (0, 1, 2)) -> "FdTable":
        """Guest fds 0, 1 and 2 on (copies of) the given host fds."""
        t = cls()
        for fd, host in enumerate(stdio):
            try:
                t.fds[fd] = OpenFile(os.dup(host), "<std%d>" % fd, os.O_RDWR)
            except OSError:
                pass
        return t

    def get(self, fd: int) -> OpenFile | None:
        return self.fds.get(fd)

    def install(self, f: OpenFile, lowest: int = 0, cloexec: bool = False) -> int:
        fd = lowest
        while fd in self.fds:
            fd += 1
        self.fds[fd] = f
        if self.on_change is not None:
            self.on_change(fd)
        if cloexec:
            self.cloexec.add(fd)
        return fd

    def put_at(self, fd: int, f: OpenFile, cloexec: bool = False) -> None:
        if fd in self.fds:
            self.close(fd)
        self.fds[fd] = f
        if self.on_change is not None:
            self.on_change(fd)
        f.refs += 1
        self.cloexec.discard(fd)
        if cloexec:
            self.cloexec.add(fd)

    def close(self, fd: int) -> bool:
        f = self.fds.pop(fd, None)
        self.cloexec.discard(fd)
        if f is None:
            return False
        if self.on_change is not None:
            self.on_change(fd)
        f.refs -= 1
        if f.refs <= 0:
            try:
                os.close(f.host_fd)
            except OSError:
                pass
        return True

    def close_all(self) -> None:
        for fd in list(self.fds):
            self.close(fd)
