"""Guest paths: the one gate between a guest path and the host's files.

The guest's `/` is a host directory (default the host's own `/`, as
qemu-user does; `--root DIR` makes DIR the guest's `/`); with `--sandbox DIR`
every write is confined to DIR and the rest is read-only.

With a root or a sandbox, a guest path is resolved once, to a descriptor,
by a walk that opens one component at a time relative to the descriptor of
the directory before it, never following a symbolic link by name: each
link is read and its target walked in turn (an absolute target from the
guest's root, `..` never above it). What the walk returns (`Resolved`) is a
descriptor of the parent directory and the last component's name, plus
where that is in the guest's tree; the system calls then act on that pair
(`*at()` calls, `O_NOFOLLOW`), so a component swapped for a symlink
between the check and the use makes the call fail instead of leading out.
Whether the place is inside the sandbox comes from the walk's own record of
the directories it opened, not from a path string looked up again.

Files opened outside the sandbox are marked (`OpenFile.outside`), so the
calls that change a file through a descriptor (fchmod, fchown, futimens,
ftruncate, fallocate, fsetxattr...) refuse them too (`check_fd_write`).
AF_UNIX socket addresses go through the same gate (`unix_address`), and the
emulator's own /proc entries (its memory, pointers and environment) are
refused (`host_proc_refused`).

Without a root or sandbox there is no boundary to keep, and host paths are
used as they are (as qemu-user does).

chroot(2) works inside this gate, with Linux's rules (fs/namei.c,
path lookup stops `..` at the process's root; fs/open.c, chroot changes
neither the working directory nor open descriptors). The guest's paths are
kept internally as paths below the emulator's root (`--root`, or the host's
/); a chroot adds a jail, a directory below it: an absolute path the guest
gives starts there, an absolute symbolic link restarts there, and `..` at
the jail stays there. A working directory or a directory descriptor from
before the chroot (or made with fchdir from one) still names its place
outside the jail, and relative lookups from it go there, as on Linux, but
every lookup is still the walk above, under the emulator's root and the
sandbox: the jail is a restriction added to the gate, never a way around
it. Paths shown to the guest (getcwd, /proc/self/cwd and fd/N) are
relative to the jail, and ones outside it read "(unreachable)/...", as
Linux's d_path gives them."""
from __future__ import annotations

import os
import posixpath
import re
import stat as st
from emu.linux.record import record

O_PATH = getattr(os, "O_PATH", 0o10000000)
MAX_HOPS = 40                       # symlinks followed in one lookup (ELOOP past it), as Linux
EROFS, ELOOP, ENOTDIR, ENOENT, EACCES, ENAMETOOLONG = 30, 40, 20, 2, 13, 36


class PathEscape(Exception):
    """A path that would leave the guest root or the sandbox."""


@record
class Resolved:
    """Where a guest path leads: the last component `name` in the directory
    `dirfd` (a descriptor the caller closes with close()); name "" when the
    path names that directory itself. `host` is the host path, for messages
    and for code that needs a string; `inside` says whether the place is in
    the sandbox (always True without one)."""
    dirfd: int
    name: str
    host: str
    inside: bool
    owned: bool = True
    follow: bool = True       # (no boundary: whether the host call follows a last symlink)

    def at(self) -> dict:
        return {"dir_fd": self.dirfd} if self.dirfd >= 0 else {}

    @property
    def target(self) -> str:
        """The name for *at() calls: the component, or "." for the directory."""
        return self.name or "."

    @property
    def path(self) -> str:
        """What to hand a host call with at(): the name in dirfd, or (no
        boundary) the host path."""
        return self.target if self.dirfd >= 0 else self.host

    @property
    def nofollow(self) -> bool:
        """follow_symlinks=False for the host call: the walk followed already."""
        return self.dirfd >= 0 or not self.follow

    def stat(self) -> os.stat_result:
        return os.stat(self.path, **self.at(), follow_symlinks=not self.nofollow)

    def close(self) -> None:
        if self.owned and self.dirfd >= 0:
            os.close(self.dirfd)
            self.dirfd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_PROC_SELF = re.compile(r"^/proc/(?:self|thread-self|\d+)(?:/task/\d+)?/(mem|pagemap|smaps|smaps_rollup|auxv|"
                        r"environ|syscall|stack|map_files|clear_refs|numa_maps|attr|coredump_filter|"
                        r"oom_adj|oom_score_adj|setgroups|uid_map|gid_map|projid_map|timerslack_ns|"
                        r"personality|wchan|io|sched|schedstat|mountinfo|mounts|mountstats)(?:/.*)?$")


def host_proc_refused(gpath: str) -> bool:
    """Entries of the host's /proc that would show the emulator's own memory,
    pointers or environment (or another emu process's, or write them):
    the guest's own /proc files come from emu/linux/procfs.py first."""
    return _PROC_SELF.match(gpath) is not None


class FileSystem:
    def __init__(self, root: str = "/", sandbox: str | None = None):
        self.root = os.path.realpath(root)
        self.sandbox = os.path.realpath(sandbox) if sandbox else None
        self.cwd = os.getcwd() if self.root == "/" else "/"
        if self.sandbox and self.root == "/":
            self.cwd = self.sandbox
        self.bounded = self.root != "/" or self.sandbox is not None
        self.root_fd = -1
        self.jail: list[str] | None = None   # chroot: the guest's root, as components below self.root
        self.jail_path = "/"                  # ... and as an internal path
        self._box: list[str] | None = None
        if self.bounded:
            self.root_fd = os.open(self.root, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if self.sandbox is not None:
            rel = os.path.relpath(self.sandbox, self.root)
            # the sandbox as components below the guest root (None: outside it,
            # so nothing is writable)
            self._box = None if rel == ".." or rel.startswith("../") else \
                [c for c in rel.split("/") if c and c != "."]

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass

    def guest_abspath(self, path: str, dirpath: str | None = None) -> str:
        """The internal absolute path of a guest path (relative ones from
        dirpath, else the working directory)."""
        base = dirpath if dirpath is not None else self.cwd
        if self.jail is None:
            return posixpath.normpath(posixpath.join(base, path)) if path else base
        if not path:
            return base
        if path.startswith("/"):
            cur, path = list(self.jail), path.lstrip("/")
        else:
            cur = [c for c in posixpath.normpath(base).split("/") if c]
        for c in path.split("/"):
            if c in ("", "."):
                continue
            if c == "..":
                if cur != self.jail and cur:    # `..` at the process's root stays there
                    cur.pop()
            else:
                cur.append(c)
        return "/" + "/".join(cur)

    def guest_view(self, internal: str) -> str:
        """An internal path as the guest sees it: relative to its root."""
        if self.jail is None:
            return internal
        jp = self.jail_path
        if internal == jp:
            return "/"
        if internal.startswith(jp + "/"):
            return internal[len(jp):]
        return "(unreachable)" + internal

    @property
    def root_host(self) -> str:
        """The host directory that is the guest's / (its chroot's)."""
        return os.path.join(self.root, *self.jail) if self.jail else self.root

    def chroot(self, path: str) -> None:
        """chroot(2): the directory path names becomes the guest's root.
        OSError as Linux's lookup fails, ENOTDIR for a file."""
        if not self.bounded:                # the host's / as the emulator's root, walked from now on
            self.root_fd = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self.bounded = True
        try:
            with self.lookup(path, True) as r:
                if not st.S_ISDIR(r.stat().st_mode):
                    raise OSError(ENOTDIR, "Not a directory")
                host = r.host
        except BaseException:
            if self.jail is None and self.root == "/" and self.sandbox is None:
                os.close(self.root_fd)
                self.root_fd, self.bounded = -1, False
            raise
        rel = os.path.relpath(host, self.root)
        comps = [c for c in rel.split("/") if c and c != "."]
        self.jail = comps if comps else None
        self.jail_path = "/" + "/".join(comps)

    # ---- the gate ----
    def lookup(self, path: str, follow: bool = True, dirpath: str | None = None, internal: bool = False) -> Resolved:
        """Resolve a guest path to (directory descriptor, last component).
        follow: a symlink as the last component is followed (else the
        operation acts on the link itself). OSError as Linux's lookup fails
        (ENOENT for a missing directory, ENOTDIR, ELOOP). internal: path is
        an internal absolute path already (guest_abspath's, as the system calls
        hold them), not one the guest gave."""
        gpath = path if internal and self.jail is not None else self.guest_abspath(path, dirpath)
        trailing = path.endswith("/") and path.rstrip("/") != ""
        if not self.bounded:
            name = "" if trailing or gpath == "/" else posixpath.basename(gpath)
            return Resolved(-1, name, gpath + ("/" if trailing else ""), True, owned=False, follow=follow)
        return self._walk(gpath, follow or trailing, trailing)

    def _walk(self, gpath: str, follow: bool, want_dir: bool) -> Resolved:
        comps = [c for c in gpath.split("/") if c and c != "."]
        fds: list[int] = []             # descriptors of the directories below the root, in order
        names: list[str] = []           # their names: where the walk is, in the guest's tree
        hops = 0
        try:
            while comps:
                c = comps.pop(0)
                cur = fds[-1] if fds else self.root_fd
                if c == "..":
                    # never above the root, nor above the jail from inside it
                    if fds and names != self.jail:
                        os.close(fds.pop())
                        names.pop()
                    continue
                if len(c) > 255:
                    raise OSError(ENAMETOOLONG, "File name too long")
                last = not comps
                try:
                    info = os.stat(c, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    if last:
                        return self._result(fds, names, c)
                    raise
                if st.S_ISLNK(info.st_mode) and (follow or not last):
                    hops += 1
                    if hops > MAX_HOPS:
                        raise OSError(ELOOP, "Too many levels of symbolic links")
                    target = os.readlink(c, dir_fd=cur)
                    if target.startswith("/"):
                        while fds:
                            os.close(fds.pop())
                        names.clear()
                        comps = list(self.jail or ()) + \
                            [t for t in target.split("/") if t and t != "."] + comps
                        continue
                    comps = [t for t in target.split("/") if t and t != "."] + comps
                    continue
                if last and not want_dir:
                    return self._result(fds, names, c)
                if not st.S_ISDIR(info.st_mode):
                    raise OSError(ENOTDIR, "Not a directory")
                # O_NOFOLLOW: swapped for a symlink since the stat, the open fails
                fds.append(os.open(c, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur))
                names.append(c)
            # the path names a directory (the root, "a/..", "dir/")
            if fds:
                name = names.pop()
                os.close(fds.pop())
                return self._result(fds, names, name)
            return Resolved(os.dup(self.root_fd), "", self.root, self.sandbox is None or self._box == [])
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    def _result(self, fds: list[int], names: list[str], name: str) -> Resolved:
        parent = fds.pop() if fds else os.dup(self.root_fd)
        for fd in fds:
            os.close(fd)
        where = names + [name]
        if self.sandbox is None:
            inside = True
        else:
            box = self._box
            inside = box is not None and where[:len(box)] == box
        host = os.path.join(self.root, *where)
        return Resolved(parent, name, host, inside)

    def resolve(self, path: str, follow: bool = True, dirpath: str | None = None, internal: bool = False) -> str:
        """The host path of a guest path (for code that needs a string; the
        system calls use lookup())."""
        with self.lookup(path, follow, dirpath, internal) as r:
            return r.host

    def writable(self, host_path: str, follow: bool = True) -> bool:
        """May the guest create or modify what a host path names? (For
        callers holding a string; the gate's own check is Resolved.inside.)"""
        if self.sandbox is None:
            return True
        real = os.path.realpath(host_path) if follow else os.path.join(
            os.path.realpath(os.path.dirname(host_path)), os.path.basename(host_path))
        return real == self.sandbox or real.startswith(self.sandbox + os.sep)

    # ---- operations through the gate ----
    def open(self, path: str, flags: int, mode: int = 0o666, dirpath: str | None = None,
             write: bool = False, internal: bool = False) -> tuple[int, Resolved]:
        """Open a guest path (host open flags): (host fd, where it is). A
        write (O_WRONLY/O_RDWR/O_CREAT/O_TRUNC/O_APPEND) outside the sandbox
        is EROFS; the last component is opened with O_NOFOLLOW after the
        walk followed any symlink itself."""
        # O_CREAT|O_EXCL never follows a last symlink (it fails EEXIST on it)
        follow = not flags & os.O_NOFOLLOW and (flags & (os.O_CREAT | os.O_EXCL)) != (os.O_CREAT | os.O_EXCL)
        r = self.lookup(path, follow, dirpath, internal)
        try:
            if write and not r.inside:
                raise OSError(EROFS, "Read-only file system")
            if r.dirfd < 0:
                return os.open(r.host, flags, mode), r
            if not r.name:
                if flags & os.O_CREAT and flags & os.O_EXCL:
                    raise OSError(17, "File exists")
                fd = os.open(".", flags & ~(os.O_CREAT | os.O_EXCL) | os.O_NOFOLLOW, mode, dir_fd=r.dirfd)
            else:
                try:
                    fd = os.open(r.name, flags | os.O_NOFOLLOW, mode, dir_fd=r.dirfd)
                except OSError as e:
                    if e.errno == ELOOP and follow:
                        # a symlink appeared after the walk looked: look again (bounded)
                        r.close()
                        return self._open_again(path, flags, mode, dirpath, write, internal)
                    raise
            return fd, r
        except BaseException:
            r.close()
            raise

    def _open_again(self, path, flags, mode, dirpath, write, internal, tries: int = 8):
        for _ in range(tries):
            r = self.lookup(path, True, dirpath, internal)
            try:
                if write and not r.inside:
                    raise OSError(EROFS, "Read-only file system")
                return os.open(r.target, flags | os.O_NOFOLLOW, mode, dir_fd=r.dirfd), r
            except OSError as e:
                r.close()
                if e.errno != ELOOP:
                    raise
        raise OSError(ELOOP, "Too many levels of symbolic links")

    def for_change(self, path: str, follow: bool = False, dirpath: str | None = None,
                   internal: bool = False) -> Resolved:
        """lookup() for a call that creates, removes or changes what the path
        names: EROFS outside the sandbox."""
        r = self.lookup(path, follow, dirpath, internal)
        if not r.inside:
            r.close()
            raise OSError(EROFS, "Read-only file system")
        return r

    def pin(self, r: Resolved, follow_link: bool = False) -> int:
        """A descriptor (O_PATH) of the object itself at r, for calls that
        act through /proc/self/fd/N (chmod, chown, utime): never a symlink
        swapped in after the walk."""
        if r.dirfd < 0:
            return os.open(r.host, O_PATH | os.O_CLOEXEC | (0 if follow_link else os.O_NOFOLLOW))
        fd = os.open(r.target, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=r.dirfd)
        if st.S_ISLNK(os.fstat(fd).st_mode) and follow_link:
            os.close(fd)
            raise OSError(ELOOP, "Too many levels of symbolic links")
        return fd

    # ---- AF_UNIX addresses ----
    def unix_address(self, raw: bytes, bind: bool) -> tuple[bytes, list[int]]:
        """A sockaddr_un the guest gave, as the host must see it: a path is
        resolved through the gate (bind: creates in a directory inside the
        sandbox; connect/sendto: an existing socket inside it) and named by
        its descriptor (/proc/self/fd/N); the abstract namespace (host
        services) is refused in a sandbox. Returns the address and the
        descriptors to close after the call."""
        if not self.bounded or len(raw) <= 2:
            return raw, []
        path = raw[2:]
        if path[:1] == b"\0":
            if self.sandbox is not None:
                raise OSError(EACCES, "Permission denied (abstract socket in a sandbox)")
            return raw, []
        path = path.split(b"\0", 1)[0]
        if not path:
            return raw, []
        gpath = os.fsdecode(path)
        if bind:
            r = self.for_change(gpath, follow=False)
            if not r.name:
                r.close()
                raise OSError(98, "Address already in use")
            host = "/proc/self/fd/%d/%s" % (r.dirfd, r.name)
            keep = [r.dirfd]
        else:
            r = self.lookup(gpath, True)
            try:
                if not r.inside:
                    raise OSError(EACCES, "Permission denied (a socket outside the sandbox)")
                fd = self.pin(r, follow_link=True)
            finally:
                r.close()
            if not st.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(111, "Connection refused")
            host = "/proc/self/fd/%d" % fd
            keep = [fd]
        b = os.fsencode(host)
        if len(b) > 107:
            for fd in keep:
                os.close(fd)
            raise OSError(ENAMETOOLONG, "File name too long")
        return raw[:2] + b + b"\0", keep
