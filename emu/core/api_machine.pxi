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
    cdef list dz_keep             # the buffers demand ranges copy from (kept alive)

    def __cinit__(self, uint64_t ram_size, tier=None, jit_threshold=None, code_cache=None):
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
        self.m.code_page = <uint8_t*>emu_zalloc(self.m.npages, 1)     # (codecache.pxi: lazily zero)
        self.m.dirty = <uint8_t*>emu_zalloc(self.m.npages, 1)
        self.m.dirty_list = <uint32_t*>malloc(self.m.npages * sizeof(uint32_t))
        # per page: the head of its block list, complemented (0: none), so
        # only pages with code commit memory (codecache.pxi, page_link)
        self.m.page_blocks = <int32_t*>emu_zalloc(self.m.npages, sizeof(int32_t))
        if (self.m.code_page == NULL or self.m.dirty == NULL or self.m.dirty_list == NULL
                or self.m.page_blocks == NULL or cc_init(&self.m, code_cache_setting(code_cache)) < 0):
            raise MemoryError("cannot allocate the code cache")
        live_mach_add(&self.m)            # host signals stop its vCPUs (hostsig.pxi)
        if self.m.tier != TIER_INTERP:
            self.m.jit = jit_new(jit_cache_bytes(self.m.cc_budget), self.m.max_blocks)
            if self.m.jit == NULL:
                if self.m.tier == TIER_JIT:
                    raise MemoryError("cannot map the native-code cache")
                self.m.tier = TIER_INTERP

    # ---- deceptive time (core/timing.pxi) ----
    def set_class_costs(self, dict costs):
        """Extra cycles per instruction class ({name: cycles}, names in
        TIMING_CLASSES) charged to the virtual TSC of vCPUs with timing on;
        applies to code translated from now on."""
        class_costs_set(&self.m, costs)

    def set_cache_model(self, levels, int sample=1):
        """[(sets, ways, extra cycles of a hit)] for L1d, L2 and LLC (sets a
        power of two), then (0, 0, extra cycles of a DRAM access); None: no
        cache model. sample N: of the accesses past a set's most recent L1
        line, model 1 in N and charge it N times (the access after a
        CLFLUSH is always modelled)."""
        if sample < 1 or sample > 64:
            raise ValueError("cache model: sample 1..64")
        if levels is None:
            cache_free(&self.m)
        else:
            cache_new(&self.m, list(levels), sample)

    def timing_cache_stats(self):
        """{accesses, l1, l2, llc, dram} counts of the cache model, or None
        (a vCPU's accesses to the line it touched last are L1 hits by
        construction and are not modelled or counted)."""
        cdef CacheModel* cm = self.m.cache
        if cm == NULL:
            return None
        return {"accesses": cm.n_hit[0] + cm.n_hit[1] + cm.n_hit[2] + cm.n_hit[3], "l1": cm.n_hit[0], "l2": cm.n_hit[1], "llc": cm.n_hit[2],
                "dram": cm.n_hit[3]}

    def __dealloc__(self):
        global hostsig_mach
        if hostsig_mach == &self.m:
            hostsig_mach = NULL
        live_mach_remove(&self.m)
        if self.m.ram != NULL:
            munmap(self.m.ram, self.m.ram_size)
        cache_free(&self.m)
        emu_zfree(self.m.code_page)
        emu_zfree(self.m.dirty)
        free(self.m.dirty_list)
        emu_zfree(self.m.page_blocks)
        cc_free(&self.m)
        free(self.m.dz)
        free(self.m.fpool)
        free(self.m.dz_log)
        jit_free(self.m.jit)
        free(self.m.hooks)
        sysfast_free(self.m.sysfast)

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

    def map_file(self, uint64_t paddr, uint64_t size, int fd, uint64_t offset, bint shared=False):
        """Back the RAM frames [paddr, paddr+size) with a private (copy-on-write)
        mapping of the host file `fd` from `offset`: pages are read from the
        file when the guest first touches them, and guest writes never reach
        the file. How a snapshot's memory is restored without copying it (the
        way Firecracker maps a memory file). The host address stays the same.
        shared=True maps the file shared instead (fd open for reading and
        writing): guest stores are the file's contents at once, seen by read(2)
        and by every other mapping of it, in this process and others -- how the
        Linux personality gives MAP_SHARED file mappings their meaning.
        set_shared(paddr, size, False) gives the frames private memory again."""
        cdef void* p
        if paddr & 0xfff or size & 0xfff or offset & 0xfff or paddr + size > self.m.ram_size or paddr + size < paddr:
            raise ValueError("frames and file offset must be page-aligned and inside RAM")
        if size == 0:
            return
        p = mmap(self.m.ram + paddr, size, PROT_READ | PROT_WRITE, (MAP_SHARED if shared else MAP_PRIVATE) | MAP_FIXED,
                 fd, <long>offset)
        if p == MAP_FAILED:
            raise OSError("cannot map the file over guest frames %#x+%#x" % (paddr, size))
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

    # ---- system calls answered in the core (core/syscall_fast.pxi) ----
    def sysfast_enable(self, calls):
        """Let the core answer these system call numbers (read 0, write 1,
        fstat 5, lseek 8, pread64 17, pwrite64 18, readv 19, writev 20,
        newfstatat 262 with AT_EMPTY_PATH, on delegated descriptors; getpid
        39 and gettid 186 from sysfast_ids); the switch (sysfast_on) starts off."""
        cdef uint64_t nr
        if self.m.sysfast == NULL:
            self.m.sysfast = sysfast_new()
            if self.m.sysfast == NULL:
                raise MemoryError("cannot allocate the system-call table")
        memset(self.m.sysfast.calls, 0, sizeof(self.m.sysfast.calls))
        for nr in calls:
            if nr >= SF_NCALLS:
                raise ValueError("system call number %d out of range" % nr)
            self.m.sysfast.calls[nr >> 6] |= <uint64_t>1 << (nr & 63)

    @property
    def sysfast_on(self):
        """The personality's switch: off, every SYSCALL exits to it."""
        return self.m.sysfast != NULL and self.m.sysfast.on != 0

    @sysfast_on.setter
    def sysfast_on(self, bint on):
        if self.m.sysfast == NULL:
            if on:
                raise ValueError("sysfast_enable() first")
            return
        self.m.sysfast.on = on

    def sysfast_fd(self, int guest_fd, int host_fd, unsigned int kind=0):
        """Delegate guest descriptor guest_fd to host descriptor host_fd
        (kind: 1 reads poll first, 2 no reads, 4 not seekable); host_fd < 0
        takes the delegation back."""
        if self.m.sysfast == NULL or guest_fd < 0 or guest_fd >= SF_NFDS:
            return
        if host_fd < 0:
            self.m.sysfast.fds[guest_fd] = 0
        elif host_fd < 0xffffff and kind < 256:
            self.m.sysfast.fds[guest_fd] = <uint32_t>(host_fd + 1) | (kind << 24)

    def sysfast_ids(self, int64_t pid, int64_t tid):
        """What getpid and gettid answer for the thread about to run (tid 0:
        they go to the personality)."""
        if self.m.sysfast != NULL:
            self.m.sysfast.pid, self.m.sysfast.tid = pid, tid

    def sysfast_clear_fds(self):
        if self.m.sysfast != NULL:
            memset(self.m.sysfast.fds, 0, SF_NFDS * sizeof(uint32_t))

    @property
    def sysfast_pending(self):
        """Calls answered in the core since the last sysfast_take_counts()."""
        return 0 if self.m.sysfast == NULL else self.m.sysfast.n_new

    def sysfast_take_counts(self):
        """{call number: times answered in the core} since the last take."""
        cdef SysFast* f = self.m.sysfast
        cdef int i
        out = {}
        if f == NULL or not f.n_new:
            return out
        for i in range(SF_NCALLS):
            if f.count[i]:
                out[i] = f.count[i]
                f.count[i] = 0
        f.n_new = 0
        return out

    @property
    def sysfast_counters(self):
        """{"answered": calls answered in the core, "declined": delegated
        calls it sent to the personality}."""
        if self.m.sysfast == NULL:
            return {"answered": 0, "declined": 0}
        return {"answered": self.m.sysfast.n_done, "declined": self.m.sysfast.n_declined}

    @property
    def tier(self):
        """The execution tier: "interp", "jit" or "auto"."""
        return TIER_NAMES[self.m.tier]

    # ---- demand paging in the core (core/demand.pxi) ----

    def set_demand_ranges(self, uint64_t root, list ranges):
        """The private memory of the address space whose PML4 is at `root`:
        (start, end, prot, data, data_off) per range, sorted, page-aligned,
        not overlapping; data (bytes-like, or None for anonymous memory) from
        data_off is what the range holds from its start, zeros after; data
        may also be a tuple (fd, file offset, length): file bytes the core
        reads with pread when a page is first touched (the descriptor must
        stay open while the ranges are in force). A not-present fault there
        that prot allows is resolved in the core."""
        cdef uint32_t n = len(ranges), i = 0
        cdef DzRange* d
        cdef const uint8_t[::1] buf
        cdef uint64_t prev_end = 0, off
        keep = []
        if n > self.m.dz_cap:
            d = <DzRange*>realloc(self.m.dz, n * sizeof(DzRange))
            if d == NULL:
                raise MemoryError("demand ranges")
            self.m.dz = d
            self.m.dz_cap = n
        self.m.n_dz = 0
        for start, end, prot, data, data_off in ranges:
            if start & 0xfff or end & 0xfff or end <= start or start < prev_end:
                raise ValueError("demand ranges must be page-aligned, sorted and disjoint")
            d = &self.m.dz[i]
            d.start = start
            d.end = end
            d.prot = prot & 7
            d.src = NULL
            d.src_len = 0
            d.src_fd = -1
            d.src_foff = 0
            if isinstance(data, tuple):
                fd, foff, flen = data
                if fd < 0 or foff < 0 or flen < 0:
                    raise ValueError("file demand range: bad descriptor, offset or length")
                off = data_off
                if off < <uint64_t>flen:
                    d.src_fd = fd
                    d.src_foff = <uint64_t>foff + off
                    d.src_len = <uint64_t>flen - off
            elif data is not None:
                buf = data
                off = data_off
                if off < <uint64_t>buf.shape[0]:
                    d.src = &buf[off]
                    d.src_len = buf.shape[0] - off
                keep.append(data)
            prev_end = end
            i += 1
        self.m.n_dz = n
        self.m.dz_root = root & PTE_ADDR
        self.dz_keep = keep

    def demand_pool_room(self, uint32_t want=512):
        """How many frames give_frames() should add to hold `want`."""
        return want - self.m.n_fpool if self.m.n_fpool < want else 0

    def give_frames(self, frames, zeroed):
        """Lend the core free frames for demand paging; zeroed[i] says
        frames[i] already reads as zeros (else the core clears it first)."""
        cdef uint32_t n = len(frames), i
        cdef uint64_t* p
        cdef uint64_t f
        if self.m.n_fpool + n > self.m.fpool_cap:
            p = <uint64_t*>realloc(self.m.fpool, (self.m.n_fpool + n) * sizeof(uint64_t))
            if p == NULL:
                raise MemoryError("frame pool")
            self.m.fpool = p
            self.m.fpool_cap = self.m.n_fpool + n
        for i in range(n):
            f = frames[i]
            if f & 0xfff or f >= self.m.ram_size:
                raise ValueError("frame %#x is not a page of RAM" % f)
            self.m.fpool[self.m.n_fpool] = f | (0 if zeroed[i] else 1)
            self.m.n_fpool += 1

    def take_frames(self):
        """Take back the frames lent and not used (list of addresses)."""
        out = [self.m.fpool[i] & ~(<uint64_t>1) for i in range(self.m.n_fpool)]
        self.m.n_fpool = 0
        return out

    def take_demand_log(self):
        """The pages the core populated since the last call, as native
        uint64 (virtual page, frame) pairs, and forget them."""
        cdef bytes out = (<char*>self.m.dz_log)[:self.m.n_dz_log * 2 * sizeof(uint64_t)] if self.m.n_dz_log else b""
        self.m.n_dz_log = 0
        return out

    @property
    def demand_faults(self):
        """Page faults resolved in the core."""
        return self.m.n_dz_faults

    @property
    def code_cache(self):
        """The code cache's budget in bytes."""
        return self.m.cc_budget

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
        return code_cache_stats(&self.m)


cdef uint64_t code_cache_setting(object size) except? 0:
    """The code cache budget in bytes for Machine(code_cache=...): None is
    the default (EMU_CODE_CACHE in MiB from the environment, else
    DEFAULT_CODE_CACHE); at least MIN_CODE_CACHE."""
    if size is None:
        env = _os.environ.get("EMU_CODE_CACHE")
        if env:
            try:
                size = int(float(env) * (1 << 20))
            except ValueError:
                raise ValueError("EMU_CODE_CACHE must be a size in MiB, not %r" % env) from None
        else:
            size = DEFAULT_CODE_CACHE
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError("code_cache must be a size in bytes")
    if size < MIN_CODE_CACHE or size > (1 << 40):
        raise ValueError("code cache size out of range: %d bytes (minimum %d)" % (size, MIN_CODE_CACHE))
    return size


cdef dict code_cache_stats(Mach* m):
    """The code cache's figures (vcpu.counters and PhysMachine.cache_stats)."""
    return {"blocks_translated": m.n_blocks_translated,
            "distinct_blocks": m.n_blocks_translated - m.n_retranslated,
            "retranslations": m.n_retranslated,
            "evictions": m.n_evicted,
            "eviction_rounds": m.n_evict_rounds,
            "invalidations": m.n_invalidations,
            "cache_flushes": m.n_flushes,
            "blocks_live": m.n_live,
            "code_cache_bytes": cc_bytes(m),
            "code_cache_budget": m.cc_budget}
