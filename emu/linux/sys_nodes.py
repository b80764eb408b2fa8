"""Special files: mknod(2) and mknodat(2), which mkfifo(3) calls.

A FIFO is a real host FIFO, made through the file-system gate in the
directory the walk found (inside the sandbox only), so open, read and write
block between guest processes as on Linux and stat reports S_IFIFO. A
socket node is made the same way (any user may). A regular file is created
empty, as mknod(S_IFREG) does. Character and block devices need
CAP_MKNOD (fs/namei.c, vfs_mknod): with a sandbox the guest has no such
capability (a device node would be a way out of it: /dev/mem, a disk),
and it gets EPERM; without one the guest has the host user's privilege and
the host decides. Linux checks that the name is free before the
capability, so an existing name is EEXIST either way."""
from __future__ import annotations

import os
import stat as st

from emu.linux import errno as E
from emu.linux.syscalls import AT_FDCWD, syscall


@syscall(133, "mknod")
def sys_mknod(s, path, mode, dev, *_):
    return sys_mknodat(s, AT_FDCWD, path, mode, dev)


@syscall(259, "mknodat")
def sys_mknodat(s, dirfd, path, mode, dev, *_):
    mode &= 0xFFFFFFFF
    kind = st.S_IFMT(mode) or st.S_IFREG
    perm = mode & 0o7777
    if kind == st.S_IFDIR:
        return -E.EPERM                         # fs/namei.c, may_mknod: directories are mkdir's
    if kind not in (st.S_IFREG, st.S_IFIFO, st.S_IFSOCK, st.S_IFCHR, st.S_IFBLK):
        return -E.EINVAL
    with s.lookup_at(dirfd, path, follow=False, change=True) as r:
        if not r.name:
            return -E.EEXIST                    # "/" or "dir/": the name exists
        if kind in (st.S_IFCHR, st.S_IFBLK):
            try:
                os.stat(r.path, **r.at(), follow_symlinks=False)
                return -E.EEXIST
            except FileNotFoundError:
                pass
            if s.p.fs.sandbox is not None:
                return -E.EPERM                 # no CAP_MKNOD in a sandbox
            dev = os.makedev(os.major(dev & 0xFFFFFFFF), os.minor(dev & 0xFFFFFFFF))
            os.mknod(r.path, kind | perm, dev, **r.at())
        elif kind == st.S_IFIFO:
            os.mkfifo(r.path, perm, **r.at())
        elif kind == st.S_IFSOCK:
            os.mknod(r.path, kind | perm, 0, **r.at())
        else:
            os.close(os.open(r.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, perm,
                             **r.at()))
    return 0
