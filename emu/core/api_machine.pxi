# The core's Python API, part 1: guest physical memory with its block cache
# (PhysMachine). The vCPU is in api_state.pxi and api_vcpu.pxi, exit records
# in api_exit.pxi, trap completion in traps.pxi.

cdef class PhysMachine:
    """Guest physical RAM (one lazily committed anonymous mapping) and the
    translated-block cache shared by the machine's vCPUs."""
    cdef Mach m
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]
    cdef int exports

    def __cinit__(self, uint64_t ram_size, tier=None, jit_threshold=None):
        if ram_size == 0 or ram_size & 0xfff:
            raise ValueError("RAM size must be a positive multiple of 4096")
        memset(&self.m, 0, sizeof(Mach))
        self.m.tier, self.m.jit_threshold = tier_setting(tier, jit_threshold)
        cdef void* p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if p == MAP_FAILED:
            raise MemoryError("cannot reserve %d bytes of guest RAM" % ram_size)
        self.m.ram = <uint8_t*>p
        self.m.ram_size = ram_size
        self.m.npages = ram_size >> 12
        self.m.code_page = <uint8_t*>calloc(self.m.npages, 1)
        self.m.dirty = <uint8_t*>calloc(self.m.npages, 1)
        self.m.dirty_list = <uint32_t*>malloc(self.m.npages * sizeof(uint32_t))
        self.m.page_blocks = <int32_t*>malloc(self.m.npages * sizeof(int32_t))
        self.m.blocks = <Block*>calloc(MAX_BLOCKS, sizeof(Block))
        self.m.uops = <Uop*>calloc(MAX_UOPS, sizeof(Uop))
        self.m.block_hash = <int32_t*>malloc(HASH_SIZE * sizeof(int32_t))
        if (self.m.code_page == NULL or self.m.dirty == NULL or self.m.dirty_list == NULL
                or self.m.page_blocks == NULL
                or self.m.blocks == NULL or self.m.uops == NULL or self.m.block_hash == NULL):
            raise MemoryError("cannot allocate the block cache")
        memset(self.m.page_blocks, 0xff, self.m.npages * sizeof(int32_t))
        memset(self.m.block_hash, 0xff, HASH_SIZE * sizeof(int32_t))
        live_mach_add(&self.m)            # host signals stop its vCPUs (hostsig.pxi)
        if self.m.tier != TIER_INTERP:
            self.m.jit = jit_new(JIT_CACHE_DEFAULT, MAX_BLOCKS)
            if self.m.jit == NULL:
                if self.m.tier == TIER_JIT:
                    raise MemoryError("cannot map the native-code cache")
                self.m.tier = TIER_INTERP

    def __dealloc__(self):
        global hostsig_mach
        if hostsig_mach == &self.m:
            hostsig_mach = NULL
        live_mach_remove(&self.m)
        if self.m.ram != NULL:
            munmap(self.m.ram, self.m.ram_size)
        free(self.m.code_page)
        free(self.m.dirty)
        free(self.m.dirty_list)
        free(self.m.page_blocks)
        free(self.m.blocks)
        free(self.m.uops)
        free(self.m.block_hash)
        jit_free(self.m.jit)
        free(self.m.hooks)

    # zero-copy view of RAM: numpy.frombuffer(machine, dtype=uint8)
    def __getbuffer__(self, Py_buffer* buf, int flags):
        self.shape[0] = <Py_ssize_t>self.m.ram_size
        self.strides[0] = 1
        buf.buf = self.m.ram
        buf.obj = self
        buf.len = <Py_ssize_t>self.m.ram_size
        buf.readonly = 0
        buf.itemsize = 1
        buf.format = "B"
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL
        self.exports += 1

    def __releasebuffer__(self, Py_buffer* buf):
        self.exports -= 1

    @property
    def ram_size(self):
        return self.m.ram_size

    def invalidate(self, uint64_t paddr, uint64_t size):
        """Drop translated blocks on the physical pages of [paddr, paddr+size):
        call after writing guest code behind the core's back (through the
        numpy view)."""
        cdef uint64_t p = paddr & ~(<uint64_t>0xfff)
        cdef Cpu dummy
        self.mark_dirty(paddr, size)
        memset(&dummy, 0, sizeof(Cpu))
        dummy.m = &self.m
        while p < paddr + size and p < self.m.ram_size:
            if self.m.code_page[p >> 12]:
                smc_invalidate_page(&dummy, p)
            p += 0x1000

    def is_code_page(self, uint64_t paddr):
        return paddr < self.m.ram_size and self.m.code_page[paddr >> 12] != 0

    def flush_code(self):
        """Drop every translated block."""
        cache_flush(&self.m)

    def mark_dirty(self, uint64_t paddr, uint64_t size):
        """Record a write to guest RAM made behind the core's back (through
        the numpy view): snapshots restore what the record names."""
        cdef uint64_t p = paddr >> 12
        if size == 0:
            return
        while p <= (paddr + size - 1) >> 12 and p < self.m.npages:
            page_dirty(&self.m, p)
            p += 1

    def take_dirty(self):
        """Page numbers written since the last take_dirty() (or
        dirty_pages(clear=True)) as bytes of native uint32
        (numpy.frombuffer(..., numpy.uint32)), and forget them. vCPUs keep
        writing unrecorded through their TLB's write entries until those are
        dropped (Vcpu.drop_tlb_writes(); emu.Machine.snapshot does both)."""
        cdef uint32_t i
        cdef bytes out = (<char*>self.m.dirty_list)[:self.m.n_dirty * sizeof(uint32_t)]
        for i in range(self.m.n_dirty):
            self.m.dirty[self.m.dirty_list[i]] = 0
        self.m.n_dirty = 0
        return out

    def load_pages(self, bytes pages, const uint8_t[:, ::1] src, bytes rows):
        """Snapshot restore: page pages[i] (native uint32) of RAM gets row
        rows[i] (native int32) of src (n x 4096 bytes), or zeros for row -1.
        Translated code on those pages is dropped; nothing is marked dirty."""
        cdef const uint32_t* pg = <const uint32_t*><const char*>pages
        cdef const int32_t* rw = <const int32_t*><const char*>rows
        cdef Py_ssize_t i, n = len(pages) // 4
        cdef uint64_t p
        cdef Cpu dummy
        if len(rows) // 4 != n or (src.shape[0] and src.shape[1] != 4096):
            raise ValueError("pages and rows differ in length, or rows are not 4096 bytes")
        memset(&dummy, 0, sizeof(Cpu))
        dummy.m = &self.m
        for i in range(n):
            p = pg[i]
            if p >= self.m.npages or rw[i] >= src.shape[0]:
                raise ValueError("page or row out of range")
            if rw[i] < 0:
                memset(self.m.ram + (p << 12), 0, 4096)
            else:
                memcpy(self.m.ram + (p << 12), &src[rw[i], 0], 4096)
            if self.m.code_page[p]:
                smc_invalidate_page(&dummy, p << 12)

    def set_shared(self, uint64_t paddr, uint64_t size, bint shared=True):
        """Back the RAM frames [paddr, paddr+size) with host memory that a
        host fork() shares (shared=True) or with private memory again; either
        way they read as zeros afterwards. The host address stays the same,
        so TLB entries and the numpy view stay valid. How the Linux
        personality, which forks the host process for a guest fork, gives
        MAP_SHARED|MAP_ANONYMOUS memory its meaning."""
        cdef void* p
        if paddr & 0xfff or size & 0xfff or paddr + size > self.m.ram_size or paddr + size < paddr:
            raise ValueError("frames must be page-aligned and inside RAM")
        if size == 0:
            return
        p = mmap(self.m.ram + paddr, size, PROT_READ | PROT_WRITE,
                 (MAP_SHARED if shared else MAP_PRIVATE | MAP_NORESERVE) | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
        if p == MAP_FAILED:
            raise MemoryError("cannot remap guest frames %#x+%#x" % (paddr, size))
        self.invalidate(paddr, size)

    def stop_on_host_signals(self, signals):
        """Make each host signal in `signals` (already handled in Python)
        also stop this machine's running vCPU at its next block, so the VMM
        sees it while the guest computes (core/hostsig.pxi); the machine
        named last is the one stopped."""
        global hostsig_mach
        hostsig_mach = &self.m
        for sig in signals:
            if emu_hostsig_install(sig):
                raise OSError("cannot install the handler of host signal %d" % sig)

    def dirty_pages(self, bint clear=False):
        """Physical page numbers written since the last clear."""
        cdef uint64_t i
        out = [i for i in range(self.m.npages) if self.m.dirty[i]]
        if clear:
            memset(self.m.dirty, 0, self.m.npages)
            self.m.n_dirty = 0
        return out

    @property
    def tier(self):
        """The execution tier: "interp", "jit" or "auto"."""
        return TIER_NAMES[self.m.tier]

    def jit_code(self):
        """The native tier's compiled blocks, for inspection:
        [(guest rip, host address, code bytes, dispatcher entry offset)]."""
        cdef Jit* j = self.m.jit
        cdef uint32_t i
        out = []
        if j == NULL:
            return out
        for i in range(self.m.n_blocks):
            if j.blocks[i].code and self.m.blocks[i].valid:
                out.append((self.m.blocks[i].vrip, <uint64_t>(j.base + j.blocks[i].code),
                            (<char*>j.base + j.blocks[i].code)[:j.blocks[i].size],
                            j.blocks[i].dispatch - j.blocks[i].code))
        return out

    def jit_fixed_code(self):
        cdef Jit* j = self.m.jit
        if j == NULL:
            return None
        return (<uint64_t>j.base, (<char*>j.base)[:256], j.exit_off)

    @property
    def cache_stats(self):
        return {"blocks_translated": self.m.n_blocks_translated,
                "invalidations": self.m.n_invalidations,
                "cache_flushes": self.m.n_flushes,
                "blocks_live": self.m.n_blocks,
                "uops_used": self.m.n_uops}
