# Demand paging in the core: a #PF on a not-present page of private memory
# (anonymous, or a private copy of file bytes such as an ELF segment, from a
# buffer or, for a large file mapping, read from the file at that moment) is
# resolved here, as a kernel's fault handler would, instead of exiting to the
# personality. The personality says which ranges are such memory, with which
# protection (PhysMachine.set_demand_ranges), lends the core free frames
# (give_frames), and reads back which pages the core populated
# (take_demand_log). Anything else (a protection fault, a guard page, shared
# or file-backed shared memory, an empty frame pool) still exits.
#
# Copy-on-write after fork needs nothing here: a guest fork forks the host
# process and guest RAM is a private host mapping, so the host kernel copies
# each page on its first write in either process.

cdef enum:
    DZ_PROT_R = 1
    DZ_PROT_W = 2
    DZ_PROT_X = 4


cdef extern from *:
    """
    #include <unistd.h>
    #include <errno.h>
    static void dz_pread(int fd, unsigned char* dst, unsigned long long n, unsigned long long off) {
        while (n > 0) {
            ssize_t k = pread(fd, dst, n, (off_t)off);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return;
            dst += k; n -= (unsigned long long)k; off += (unsigned long long)k;
        }
    }
    """
    void dz_pread(int fd, uint8_t* dst, uint64_t n, uint64_t off) noexcept nogil


cdef inline DzRange* dz_find(Mach* m, uint64_t va) noexcept nogil:
    cdef uint32_t lo = 0, hi = m.n_dz, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if m.dz[mid].end <= va:
            lo = mid + 1
        else:
            hi = mid
    if lo < m.n_dz and m.dz[lo].start <= va:
        return &m.dz[lo]
    return NULL


cdef inline uint64_t dz_take_frame(Cpu* c) noexcept nogil:
    """A zeroed frame from the pool (the caller checked it is not empty)."""
    cdef Mach* m = c.m
    cdef uint64_t f
    m.n_fpool -= 1
    f = m.fpool[m.n_fpool]
    if m.code_page[f >> 12]:
        smc_invalidate_page(c, f & ~(<uint64_t>0xfff))
    if f & 1:
        f &= ~(<uint64_t>1)
        memset(m.ram + f, 0, 4096)
        page_dirty(m, f >> 12)
    return f


cdef int dz_fault(Cpu* c) noexcept nogil:
    """The #PF in c.exc_* hit a not-present page of a demand range that allows
    the access: populate it and return 1 (the instruction runs again), else 0."""
    cdef Mach* m = c.m
    cdef uint64_t err = c.exc_error, va = c.cr2, addr, e, f, off, n
    cdef uint64_t* p
    cdef DzRange* r
    cdef int level
    if c.deliver_via_idt or err & (PFE_P | PFE_RSVD) or not (c.cr0 & CR0_PG):
        return 0
    if (c.cr3 & PTE_ADDR) != m.dz_root or m.n_fpool < 4:
        return 0
    r = dz_find(m, va)
    if r == NULL or r.prot == 0:
        return 0
    if (err & PFE_W and not (r.prot & DZ_PROT_W)) or (err & PFE_I and not (r.prot & DZ_PROT_X)):
        return 0
    if m.n_dz_log + 1 > m.dz_log_cap:
        n = m.dz_log_cap * 2 if m.dz_log_cap else 256
        p = <uint64_t*>realloc(m.dz_log, n * 2 * sizeof(uint64_t))
        if p == NULL:
            return 0
        m.dz_log = p
        m.dz_log_cap = <uint32_t>n
    # walk, creating missing tables as emu/paging.py does (upper levels
    # permissive: the leaf decides)
    addr = c.cr3 & PTE_ADDR
    level = 4
    while level > 1:
        p = pte_ptr(m, addr + ((va >> (9 * level)) & 0xff8))
        if p == NULL:
            return 0
        e = p[0]
        if not (e & PTE_P):
            f = dz_take_frame(c)
            p[0] = f | PTE_P | PTE_RW | PTE_US
            page_dirty(m, (addr >> 12))
            addr = f
        elif e & PTE_PS:
            return 0
        else:
            addr = e & PTE_ADDR
        level -= 1
    p = pte_ptr(m, addr + ((va >> 9) & 0xff8))
    if p == NULL or p[0] & PTE_P:
        return 0
    f = dz_take_frame(c)
    if r.src != NULL or r.src_fd >= 0:
        off = (va & ~(<uint64_t>0xfff)) - r.start
        if off < r.src_len:
            n = r.src_len - off
            if n > 4096:
                n = 4096
            if r.src != NULL:
                memcpy(m.ram + f, r.src + off, n)
            else:
                # a large file mapping: the page is read now, as a kernel
                # reads a file page at its first touch; a short read (the
                # file shrank) leaves the zeros of the fresh frame
                dz_pread(r.src_fd, m.ram + f, n, r.src_foff + off)
            page_dirty(m, f >> 12)
    p[0] = f | PTE_P | PTE_US | (PTE_RW if r.prot & DZ_PROT_W else 0) | (0 if r.prot & DZ_PROT_X else PTE_NX)
    page_dirty(m, addr >> 12)
    m.dz_log[2 * m.n_dz_log] = va & ~(<uint64_t>0xfff)
    m.dz_log[2 * m.n_dz_log + 1] = f
    m.n_dz_log += 1
    m.n_dz_faults += 1
    return 1
