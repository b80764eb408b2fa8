"""Guest path resolution: the guest's `/` is a host directory (default the
host's own `/`, as qemu-user does); with a sandbox every write is confined
to one directory and the rest is read-only."""
from __future__ import annotations

import os
import posixpath


class PathEscape(Exception):
    """A path that would leave the guest root or the sandbox."""


class FileSystem:
    def __init__(self, root: str = "/", sandbox: str | None = None):
        self.root = os.path.realpath(root)
        self.sandbox = os.path.realpath(sandbox) if sandbox else None
        self.cwd = os.getcwd() if self.root == "/" else "/"
        if self.sandbox and self.root == "/":
            self.cwd = self.sandbox

    def guest_abspath(self, path: str, dirpath: str | None = None) -> str:
        base = dirpath if dirpath is not None else self.cwd
        return posixpath.normpath(posixpath.join(base, path)) if path else base

    def resolve(self, path: str, follow: bool = True, dirpath: str | None = None) -> str:
        """Host path for a guest path. Symlinks are resolved inside the guest
        root, so neither `..` nor a symlink can lead out of it."""
        gpath = self.guest_abspath(path, dirpath)
        if self.root == "/":
            return gpath
        # walk component by component, resolving symlinks relative to the root
        parts = [p for p in gpath.split("/") if p]
        resolved: list[str] = []
        hops = 0
        while parts:
            p = parts.pop(0)
            if p == ".":
                continue
            if p == "..":
                if resolved:
                    resolved.pop()
                continue
            host = os.path.join(self.root, *resolved, p)
            if os.path.islink(host) and (parts or follow):
                hops += 1
                if hops > 40:
                    raise PathEscape("too many symlinks")
                target = os.readlink(host)
                if target.startswith("/"):
                    resolved = []
                parts = [q for q in target.split("/") if q] + parts
                continue
            resolved.append(p)
        return os.path.join(self.root, *resolved)

    def writable(self, host_path: str, follow: bool = True) -> bool:
        """May the guest create or modify host_path? (follow=False: the
        operation acts on a final symlink itself, not on what it points to.)"""
        if self.sandbox is None:
            return True
        if follow:
            real = os.path.realpath(host_path)
        else:
            real = os.path.join(os.path.realpath(os.path.dirname(host_path)), os.path.basename(host_path))
        return real == self.sandbox or real.startswith(self.sandbox + os.sep)
