"""Linux errno values (asm-generic/errno-base.h, errno.h)."""
import errno as _host
import sys as _sys

_LINUX_HOST = _sys.platform.startswith("linux")

EPERM, ENOENT, ESRCH, EINTR, EIO, ENXIO, E2BIG, ENOEXEC, EBADF, ECHILD = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
EAGAIN, ENOMEM, EACCES, EFAULT, EBUSY, EEXIST, EXDEV, ENODEV, ENOTDIR, EISDIR = 11, 12, 13, 14, 16, 17, 18, 19, 20, 21
EINVAL, ENFILE, EMFILE, ENOTTY, EFBIG, ENOSPC, ESPIPE, EROFS, EMLINK, EPIPE = 22, 23, 24, 25, 27, 28, 29, 30, 31, 32
ERANGE, ENAMETOOLONG, ENOSYS, ENOTEMPTY, ELOOP, ENOTSUP = 34, 36, 38, 39, 40, 95
EAFNOSUPPORT, ETIMEDOUT, EOVERFLOW = 97, 110, 75
ETXTBSY = 26


def from_oserror(e: OSError) -> int:
    """The guest errno for a host OSError (Linux hosts share the numbering;
    others are mapped by name)."""
    if e.errno is None:
        return EIO
    if _LINUX_HOST and 0 < e.errno < 4096:
        return e.errno              # (ENOTCONN, ECONNREFUSED...: every one, not only those named here)
    name = _host.errorcode.get(e.errno)
    return globals().get(name, EIO) if name else EIO
