# System calls answered in the core (issue 10). In user mode every SYSCALL
# exits to the personality, about 3 us of Python each; for the calls that only
# move bytes between a descriptor and guest memory that is most of their cost.
# The personality delegates those here: it names the call numbers and, per
# guest descriptor, the host descriptor behind it (PhysMachine.sysfast_*), and
# switches the whole thing off whenever Python must see every call (strace,
# hooks, record/replay, timers or signals pending). op_syscall then asks
# sysfast_try first: it performs the call on the host descriptor (the GIL is
# already released while a vCPU runs) and writes RAX, or declines and the
# SYSCALL exits as before. It declines whenever the answer is not plainly the
# host's: an event pending, an undelegated descriptor, a read that could
# block (Python parks the thread or waits interruptibly), any host error (EINTR,
# EPIPE and its SIGPIPE, EAGAIN...: the personality makes the call again and
# answers), and any guest page that is not present with the access allowed
# (Python faults it in or answers EFAULT). A declined call has had no effect,
# so the Python path's answer is the answer.

cdef extern from * nogil:
    """
    #include <sys/uio.h>
    #include <sys/stat.h>
    #include <sys/ioctl.h>
    #include <unistd.h>
    #include <poll.h>
    #include <string.h>
    #include <stdint.h>

    /* struct stat as x86-64 Linux lays it out (arch/x86/include/uapi/asm/stat.h),
       from the host's, field by field (the host may be another architecture) */
    static void emu_pack_stat(const struct stat* s, uint8_t* o) {
        uint64_t q; uint32_t d; int64_t t;
        memset(o, 0, 144);
        q = s->st_dev; memcpy(o + 0, &q, 8);
        q = s->st_ino; memcpy(o + 8, &q, 8);
        q = s->st_nlink; memcpy(o + 16, &q, 8);
        d = s->st_mode; memcpy(o + 24, &d, 4);
        d = s->st_uid; memcpy(o + 28, &d, 4);
        d = s->st_gid; memcpy(o + 32, &d, 4);
        q = s->st_rdev; memcpy(o + 40, &q, 8);
        t = s->st_size; memcpy(o + 48, &t, 8);
        t = s->st_blksize; memcpy(o + 56, &t, 8);
        t = s->st_blocks; memcpy(o + 64, &t, 8);
        t = s->st_atim.tv_sec; memcpy(o + 72, &t, 8);
        t = s->st_atim.tv_nsec; memcpy(o + 80, &t, 8);
        t = s->st_mtim.tv_sec; memcpy(o + 88, &t, 8);
        t = s->st_mtim.tv_nsec; memcpy(o + 96, &t, 8);
        t = s->st_ctim.tv_sec; memcpy(o + 104, &t, 8);
        t = s->st_ctim.tv_nsec; memcpy(o + 112, &t, 8);
    }

    static int emu_fstat_pack(int fd, uint8_t* out) {
        struct stat s;
        if (fstat(fd, &s) < 0)
            return -1;
        emu_pack_stat(&s, out);
        return 0;
    }

    /* ready to read without blocking (POLLIN, or a hang-up: read returns 0) */
    static int emu_readable(int fd) {
        struct pollfd p;
        p.fd = fd; p.events = POLLIN; p.revents = 0;
        return poll(&p, 1, 0) == 1 && !(p.revents & POLLNVAL);
    }

    /* bytes a read at off (-1: the file position) would find now, or -1
       when the file cannot say: a regular file's size past the offset (in 64
       bits: FIONREAD's int would wrap), else FIONREAD (pipes, sockets) */
    static long emu_available(int fd, long off) {
        struct stat s;
        int n = 0;
        if (fstat(fd, &s) < 0)
            return -1;
        if (S_ISREG(s.st_mode)) {
            if (off < 0 && (off = lseek(fd, 0, SEEK_CUR)) < 0)
                return -1;
            return s.st_size > off ? (long)(s.st_size - off) : 0;
        }
        if (off >= 0 || ioctl(fd, FIONREAD, &n) < 0)
            return -1;
        return n;
    }
    """
    cdef struct iovec:
        void* iov_base
        size_t iov_len
    ssize_t readv(int fd, const iovec* iov, int n)
    ssize_t writev(int fd, const iovec* iov, int n)
    ssize_t preadv(int fd, const iovec* iov, int n, long off)
    ssize_t pwritev(int fd, const iovec* iov, int n, long off)
    long lseek(int fd, long off, int whence)
    int emu_fstat_pack(int fd, uint8_t* out)
    int emu_readable(int fd)
    long emu_available(int fd, long off)

cdef enum:
    SF_NCALLS = 512          # call numbers the switch can name
    SF_NFDS = 65536          # guest descriptors (dup2 allows up to 65535)
    SF_MAX_IO = 1 << 24      # one read/write moves at most this (the Python path's cap too)
    SF_IOV = 256             # host iovecs per call (adjacent guest frames merge)
    SF_GUEST_IOV = 1024      # readv/writev: UIO_MAXIOV
    # a delegated descriptor's kind (PhysMachine.sysfast_fd flags)
    SFD_POLL = 1             # read only when poll says it will not block (pipes, sockets, devices)
    SFD_NOREAD = 2           # never read here (terminals: job control is Python's)
    SFD_NOSEEK = 4           # not seekable: no positional reads, lseek goes to Python

cdef int64_t SF_PY = -(<int64_t>1 << 62)      # "not here": the call exits to Python

# newfstatat(fd, "", buf, AT_EMPTY_PATH), glibc's fstat, is fstat here.
# (the SysFast struct, Mach.sysfast, is in _core.pxd)

cdef SysFast* sysfast_new() noexcept nogil:
    cdef SysFast* f = <SysFast*>calloc(1, sizeof(SysFast))
    if f == NULL:
        return NULL
    f.fds = <uint32_t*>calloc(SF_NFDS, sizeof(uint32_t))     # (untouched pages cost nothing)
    if f.fds == NULL:
        free(f)
        return NULL
    return f

cdef void sysfast_free(SysFast* f) noexcept nogil:
    if f != NULL:
        free(f.fds)
        free(f)

cdef inline int sf_fd(SysFast* f, uint64_t arg, uint32_t* flags) noexcept nogil:
    """The host descriptor behind guest fd arg (its low 32 bits, signed, as
    Linux reads an int argument), or -1."""
    cdef int32_t g = <int32_t>(arg & 0xffffffffULL)
    cdef uint32_t e
    if g < 0 or g >= SF_NFDS:
        return -1
    e = f.fds[g]
    if e == 0:
        return -1
    flags[0] = e >> 24
    return <int>(e & 0xffffff) - 1

cdef uint8_t* sf_page(Cpu* c, uint64_t va, int write, uint64_t* pa_out) noexcept nogil:
    """Host address of guest va (good to the end of its page) for the kernel
    side of a call, and its physical address: from the TLB, else a page walk.
    A page the walk refuses (not present, not allowed, not RAM) gives NULL,
    leaving no trace of the fault in the vCPU: the call then goes to Python."""
    cdef TlbEntry* e = &c.tlb[(va >> 12) & (TLB_SIZE - 1)]
    cdef uint64_t tag = (va & ~(<uint64_t>0xfff)) | c.tlbm
    cdef uint64_t pa, cr2
    cdef uint32_t vec, has
    cdef uint64_t err
    cdef int k
    if (e.tag_w == tag) if write else (e.tag_r == tag):
        pa_out[0] = (e.ppage & ~(<uint64_t>0xfff)) | (va & 0xfff)
        return <uint8_t*>(va + e.addend)
    cr2, vec, err, has = c.cr2, c.exc_vector, c.exc_error, c.exc_has_error
    k = tlb_fill(c, va, ACC_W if write else ACC_R, &e, &pa)
    c.cr2, c.exc_vector, c.exc_error, c.exc_has_error = cr2, vec, err, has
    if k != 0:
        return NULL
    pa_out[0] = pa
    return c.m.ram + pa

cdef int sf_map(Cpu* c, uint64_t va, uint64_t n, int write, iovec* iov, int* niov) noexcept nogil:
    """Host iovecs for guest [va, va+n), appended at iov[*niov]; -1 when a
    page is refused or the iovecs run out."""
    cdef uint64_t k, pa
    cdef uint8_t* p
    cdef int i
    while n:
        p = sf_page(c, va, write, &pa)
        if p == NULL:
            return -1
        k = 0x1000 - (va & 0xfff)
        if k > n:
            k = n
        i = niov[0]
        if i and <uint8_t*>iov[i - 1].iov_base + iov[i - 1].iov_len == p:
            iov[i - 1].iov_len += k
        else:
            if i == SF_IOV:
                return -1
            iov[i].iov_base = p
            iov[i].iov_len = k
            niov[0] = i + 1
        va += k
        n -= k
    return 0

cdef void sf_written(Cpu* c, uint64_t va, uint64_t n) noexcept nogil:
    """Guest [va, va+n) was written behind the TLB: record the pages dirty
    (snapshots) and drop translated code on them (self-modifying code)."""
    cdef uint64_t k, pa, end = va + n
    va &= ~(<uint64_t>0xfff)
    while va < end:
        if sf_page(c, va, 1, &pa) != NULL:
            pa &= ~(<uint64_t>0xfff)
            if c.m.code_page[pa >> 12]:
                smc_invalidate_page(c, pa)
            page_dirty(c.m, pa >> 12)
        va += 0x1000

cdef int64_t sf_read(Cpu* c, SysFast* f, int positional) noexcept nogil:
    """read(fd, buf, count) and pread64(fd, buf, count, offset)."""
    cdef uint32_t flags = 0
    cdef int fd = sf_fd(f, c.r[7], &flags)
    cdef uint64_t n = c.r[2]
    cdef long avail
    cdef iovec iov[SF_IOV]
    cdef int niov = 0
    cdef ssize_t r
    if fd < 0 or flags & SFD_NOREAD or (positional and flags & SFD_NOSEEK):
        return SF_PY
    if positional and <int64_t>c.r[10] < 0:
        return SF_PY
    if n > SF_MAX_IO:
        n = SF_MAX_IO
    if flags & SFD_POLL and not emu_readable(fd):
        return SF_PY                  # it would block: Python waits or parks the thread
    if sf_map(c, c.r[6], n, 1, iov, &niov) < 0:
        # only the pages the data will fill need be there (as on the Python
        # path, which writes back what the read returned)
        avail = emu_available(fd, <long>c.r[10] if positional else -1)
        if avail < 0 or <uint64_t>avail >= n:
            return SF_PY
        n = <uint64_t>avail
        niov = 0
        if sf_map(c, c.r[6], n, 1, iov, &niov) < 0:
            return SF_PY
    if positional:
        r = preadv(fd, iov, niov, <long>c.r[10]) if niov else 0
    else:
        r = readv(fd, iov, niov) if niov else 0
    if r < 0:
        return SF_PY
    sf_written(c, c.r[6], <uint64_t>r)
    return r

cdef int64_t sf_write(Cpu* c, SysFast* f, int positional) noexcept nogil:
    """write(fd, buf, count) and pwrite64(fd, buf, count, offset)."""
    cdef uint32_t flags = 0
    cdef int fd = sf_fd(f, c.r[7], &flags)
    cdef uint64_t n = c.r[2]
    cdef iovec iov[SF_IOV]
    cdef int niov = 0
    cdef ssize_t r
    if fd < 0 or (positional and (flags & SFD_NOSEEK or <int64_t>c.r[10] < 0)):
        return SF_PY
    if n > SF_MAX_IO:
        n = SF_MAX_IO
    if sf_map(c, c.r[6], n, 0, iov, &niov) < 0:
        return SF_PY
    if positional:
        r = pwritev(fd, iov, niov, <long>c.r[10]) if niov else 0
    else:
        r = writev(fd, iov, niov) if niov else 0
    if r < 0:
        return SF_PY                  # (EPIPE: Python raises SIGPIPE; EINTR, EAGAIN: Python answers)
    return r

cdef int sf_guest_iovecs(Cpu* c, uint64_t addr, uint64_t cnt, uint64_t* out, uint64_t* total) noexcept nogil:
    """The guest's struct iovec[cnt] at addr as (base, len) pairs in out; -1
    when it cannot be read here or a length is out of the fast path's range."""
    cdef uint64_t i, pa, k, n = cnt * 16, va = addr
    cdef uint8_t* p
    cdef uint8_t* dst = <uint8_t*>out
    total[0] = 0
    while n:
        p = sf_page(c, va, 0, &pa)
        if p == NULL:
            return -1
        k = 0x1000 - (va & 0xfff)
        if k > n:
            k = n
        memcpy(dst, p, k)
        dst += k
        va += k
        n -= k
    for i in range(cnt):
        if out[2 * i + 1] > SF_MAX_IO:
            return -1
        total[0] += out[2 * i + 1]
    return 0 if total[0] <= SF_MAX_IO else -1

cdef int64_t sf_readv_writev(Cpu* c, SysFast* f, int write) noexcept nogil:
    """readv and writev (a read only from files that never block: the
    Python path reads iovec by iovec)."""
    cdef uint32_t flags = 0
    cdef int fd = sf_fd(f, c.r[7], &flags)
    cdef uint64_t cnt = c.r[2], total, want, i, n
    cdef uint64_t gv[2 * SF_GUEST_IOV]
    cdef iovec iov[SF_IOV]
    cdef int niov = 0
    cdef long avail
    cdef ssize_t r
    if fd < 0 or cnt > SF_GUEST_IOV or (not write and flags & (SFD_POLL | SFD_NOREAD)):
        return SF_PY
    if sf_guest_iovecs(c, c.r[6], cnt, gv, &total) < 0:
        return SF_PY
    want = total
    if not write:
        avail = emu_available(fd, -1)
        if avail >= 0 and <uint64_t>avail < want:
            want = <uint64_t>avail
    for i in range(cnt):
        n = gv[2 * i + 1]
        if not write and n > want:
            n = want
        if n and sf_map(c, gv[2 * i], n, not write, iov, &niov) < 0:
            return SF_PY
        if not write:
            want -= n
    if write:
        r = writev(fd, iov, niov) if niov else 0
    else:
        r = readv(fd, iov, niov) if niov else 0
    if r < 0:
        return SF_PY
    if not write:
        want = <uint64_t>r
        for i in range(cnt):
            n = gv[2 * i + 1]
            if n > want:
                n = want
            if n:
                sf_written(c, gv[2 * i], n)
            want -= n
    return r

cdef int64_t sf_lseek(Cpu* c, SysFast* f) noexcept nogil:
    cdef uint32_t flags = 0
    cdef int fd = sf_fd(f, c.r[7], &flags)
    cdef long r
    if fd < 0 or flags & SFD_NOSEEK or c.r[2] > 4:
        return SF_PY
    r = lseek(fd, <long>c.r[6], <int>c.r[2])
    return SF_PY if r < 0 else r

cdef int64_t sf_fstat(Cpu* c, SysFast* f, uint64_t fdarg, uint64_t buf) noexcept nogil:
    """fstat(fd, buf); newfstatat(fd, "", buf, AT_EMPTY_PATH) comes here too."""
    cdef uint32_t flags = 0
    cdef int fd = sf_fd(f, fdarg, &flags)
    cdef uint8_t st[144]
    cdef iovec iov[SF_IOV]
    cdef int niov = 0, i
    cdef uint64_t off = 0
    if fd < 0 or sf_map(c, buf, 144, 1, iov, &niov) < 0 or emu_fstat_pack(fd, st) < 0:
        return SF_PY
    for i in range(niov):
        memcpy(iov[i].iov_base, st + off, iov[i].iov_len)
        off += iov[i].iov_len
    sf_written(c, buf, 144)
    return 0

cdef int64_t sf_newfstatat(Cpu* c, SysFast* f) noexcept nogil:
    """newfstatat(dirfd, path, buf, flags): only the empty path with
    AT_EMPTY_PATH (the descriptor itself) is answered here."""
    cdef uint64_t pa
    cdef uint8_t* p
    if not (c.r[10] & 0x1000):
        return SF_PY
    p = sf_page(c, c.r[6], 0, &pa)
    if p == NULL or p[0] != 0:
        return SF_PY
    return sf_fstat(c, f, c.r[7], c.r[2])

cdef int sysfast_try(Cpu* c) noexcept nogil:
    """Answer the SYSCALL here (1: RAX holds the result) or not (0: it exits
    to the personality). RCX and R11 are already set."""
    cdef SysFast* f = c.m.sysfast
    cdef uint64_t nr = c.r[0]
    cdef int64_t r
    if f == NULL or not f.on or c.events or nr >= SF_NCALLS or not (f.calls[nr >> 6] >> (nr & 63)) & 1:
        return 0
    if nr == 0 or nr == 17:
        r = sf_read(c, f, nr == 17)
    elif nr == 1 or nr == 18:
        r = sf_write(c, f, nr == 18)
    elif nr == 19 or nr == 20:
        r = sf_readv_writev(c, f, nr == 20)
    elif nr == 8:
        r = sf_lseek(c, f)
    elif nr == 5:
        r = sf_fstat(c, f, c.r[7], c.r[6])
    elif nr == 262:
        r = sf_newfstatat(c, f)
    elif nr == 39 or nr == 186:
        r = (f.pid if nr == 39 else f.tid) if f.tid else SF_PY
    else:
        r = SF_PY
    if r == SF_PY:
        f.n_declined += 1
        return 0
    c.r[0] = <uint64_t>r
    f.count[nr] += 1
    f.n_new += 1
    f.n_done += 1
    return 1
