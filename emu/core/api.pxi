# The core's Python API: physical memory with its block cache (PhysMachine)
# and vCPUs (Vcpu). The hypervisor layer (emu/machine.py) builds on these.

EXIT_NAMES = {EXIT_NONE: "NONE", EXIT_HLT: "HLT", EXIT_IO: "IO", EXIT_MMIO: "MMIO",
              EXIT_CPUID: "CPUID", EXIT_RDTSC: "RDTSC", EXIT_MSR: "MSR",
              EXIT_SYSCALL: "SYSCALL", EXIT_EXCEPTION: "EXCEPTION", EXIT_HOOK: "HOOK",
              EXIT_BUDGET: "BUDGET", EXIT_SHUTDOWN: "SHUTDOWN", EXIT_STOPPED: "STOPPED",
              EXIT_PRIV: "PRIV"}

GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


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

    def __dealloc__(self):
        global hostsig_mach
        if hostsig_mach == &self.m:
            hostsig_mach = NULL
        if self.m.ram != NULL:
            munmap(self.m.ram, self.m.ram_size)
        free(self.m.code_page)
        free(self.m.dirty)
        free(self.m.dirty_list)
        free(self.m.page_blocks)
        free(self.m.blocks)
        free(self.m.uops)
        free(self.m.block_hash)
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

    @property
    def cache_stats(self):
        return {"blocks_translated": self.m.n_blocks_translated,
                "invalidations": self.m.n_invalidations,
                "cache_flushes": self.m.n_flushes,
                "blocks_live": self.m.n_blocks,
                "uops_used": self.m.n_uops}


cdef class Exit:
    """What vcpu.run() hands back: why the vCPU stopped, and the details."""
    cdef public int reason
    cdef public object name
    cdef public uint64_t rip          # RIP of the instruction that caused the exit
    cdef public int vector            # EXCEPTION
    cdef public uint64_t error_code
    cdef public bint has_error_code
    cdef public uint64_t cr2
    cdef public uint64_t port, size, value   # IO, MMIO
    cdef public bint write
    cdef public uint64_t address             # MMIO
    cdef public uint64_t msr
    cdef public object op                    # PRIV / MSR: the trapped instruction (PRIV_NAMES)
    cdef public int cr, gpr                  # PRIV: control register, general register operand
    cdef public bint software                # EXCEPTION from INT n
    cdef public bint string                  # IO: one element of INS/OUTS
    cdef public int hook_id                  # HOOK: the hook (0 for the block hook)
    cdef public object kind                  # HOOK: "code", "block", "read", "write", "fetch"

    def __repr__(self):
        if self.reason == EXIT_EXCEPTION:
            return "<Exit EXCEPTION vector=%d error=%#x rip=%#x>" % (self.vector, self.error_code, self.rip)
        if self.reason == EXIT_MMIO:
            return "<Exit MMIO %s %#x size=%d value=%#x>" % ("write" if self.write else "read", self.address, self.size, self.value)
        if self.reason == EXIT_HOOK:
            return "<Exit HOOK %s id=%d address=%#x size=%d rip=%#x>" % (self.kind, self.hook_id, self.address, self.size, self.rip)
        return "<Exit %s rip=%#x>" % (self.name, self.rip)


cdef class Vcpu:
    """One virtual CPU. Registers live in a C struct; run() executes guest
    code with the GIL released until an exit."""
    cdef Cpu c
    cdef readonly PhysMachine machine
    # hypervisor support: the last exit was a trapped instruction not yet
    # completed or refused (complete_trap / inject_exception), and an
    # exception the VMM injected, delivered by the next run()
    cdef int trap_reason
    cdef bint trap_early           # the open trap exit came before its instruction
    cdef int inj_vector
    cdef uint64_t inj_error
    cdef bint inj_has_error

    def __cinit__(self, PhysMachine machine):
        memset(&self.c, 0, sizeof(Cpu))
        self.machine = machine
        self.c.m = &machine.m
        self.c.tlb = <TlbEntry*>malloc(TLB_SIZE * sizeof(TlbEntry))
        self.c.jc = <JcEntry*>calloc(JC_SIZE, sizeof(JcEntry))
        if self.c.tlb == NULL or self.c.jc == NULL:
            raise MemoryError()
        memset(self.c.tlb, 0xff, TLB_SIZE * sizeof(TlbEntry))
        new_epoch(&self.c)
        self.c.seg_base[SEG_NONE] = 0
        self.c.rflags = 2
        self.c.tsc_per_insn = 1 << 16
        self.c.rng_state = 0x5eed
        self.c.xcr0 = 3
        self.c.msr_pat = PAT_RESET
        self.c.cpuid = NULL
        self.c.n_cpuid = 0
        self.c.mxcsr = 0x1F80
        self.c.fcw = 0x037F
        self.c.ftw = 0xFFFF
        self.c.dr[6] = 0xFFFF0FF0ULL
        self.c.dr[7] = 0x400
        self.c.hook_owner = hook_new_owner()
        self.c.trap_pass_rip = NO_PASS
        self.inj_vector = -1

    def __dealloc__(self):
        free(self.c.tlb)
        free(self.c.jc)
        free(self.c.cpuid)
        free(self.c.cov_map)
        if self.machine is not None:
            hook_drop_owner(&self.machine.m, self.c.hook_owner)

    def run(self, uint64_t budget=0xffffffffffffffffULL):
        """Execute until an exit; budget caps the instructions retired."""
        cdef int reason
        self.c.exc_soft = 0
        self.trap_reason = 0
        if self.c.icount + budget < self.c.icount:
            budget = 0xffffffffffffffffULL - self.c.icount
        reason = self.take_injected()
        if reason == EXIT_NONE:
            with nogil:
                reason = vcpu_run(&self.c, budget)
            self.note_trap(reason)
        return self.make_exit(reason)

    cdef int take_injected(self):
        """An exception inject_exception() left: the guest takes it before
        executing anything. The exit it makes (EXCEPTION, or SHUTDOWN when
        delivery through the IDT fails), or EXIT_NONE."""
        cdef int reason = EXIT_NONE
        if self.inj_vector < 0:
            return reason
        self.c.exc_vector = <uint32_t>self.inj_vector
        self.c.exc_error = self.inj_error
        self.c.exc_has_error = self.inj_has_error
        self.inj_vector = -1
        if self.c.deliver_via_idt:
            # system mode: through the guest's IDT, like any fault
            if deliver_exception(&self.c):
                reason = self.c.exit_reason
                self.c.n_exits[reason] += 1
        else:
            self.c.exit_reason = EXIT_EXCEPTION
            self.c.exit_rip = self.c.rip
            self.c.n_exits[EXIT_EXCEPTION] += 1
            reason = EXIT_EXCEPTION
        return reason

    cdef inline void note_trap(self, int reason):
        """A trap exit stays open for complete_trap / skip_trap / inject_exception."""
        if reason == EXIT_CPUID or reason == EXIT_RDTSC or reason == EXIT_MSR or reason == EXIT_PRIV \
                or reason == EXIT_IO:
            self.trap_reason = reason
            self.trap_early = (reason == EXIT_PRIV and self.c.priv_before) or \
                (reason == EXIT_IO and self.c.io_string != 0)

    def run_hooks(self, dict direct, object slow, uint64_t budget=0xffffffffffffffffULL):
        """run(), calling back into Python for HOOK exits without building
        Exit objects (emu/hooks.py): direct maps a hook id (0: the block
        hook) to fn(vcpu, address, size) for code and block hooks or
        fn(vcpu, kind, address, size, value) for read/write/fetch hooks; other hook
        exits go to slow(hook_id, kind, address, size, value). A callback
        returning False stops: the HOOK exit is returned."""
        cdef int reason
        cdef uint64_t end
        cdef uint32_t kind
        self.c.exc_soft = 0
        self.trap_reason = 0
        reason = self.take_injected()
        if reason != EXIT_NONE:
            return self.make_exit(reason)
        end = self.c.icount + budget
        if end < self.c.icount:
            end = 0xffffffffffffffffULL
        while True:
            with nogil:
                reason = vcpu_run(&self.c, end - self.c.icount)
            if reason != EXIT_HOOK:
                self.note_trap(reason)
                return self.make_exit(reason)
            kind = self.c.hook_kind
            fn = direct.get(self.c.hook_id)
            if fn is None:
                r = slow(self.c.hook_id, HOOK_KIND_NAMES[kind], self.c.hook_addr, self.c.hook_size, self.c.hook_value)
            elif kind == HK_READ or kind == HK_WRITE or kind == HK_FETCH:
                r = fn(self, HOOK_KIND_NAMES[kind], self.c.hook_addr, self.c.hook_size, self.c.hook_value)
            else:
                r = fn(self, self.c.hook_addr, self.c.hook_size)
            if r is False:
                return self.make_exit(reason)

    cdef Exit make_exit(self, int reason):
        cdef Exit e = Exit.__new__(Exit)
        e.reason = reason
        e.name = EXIT_NAMES.get(reason, str(reason))
        e.rip = self.c.exit_rip if reason != EXIT_BUDGET and reason != EXIT_STOPPED else self.c.rip
        if reason == EXIT_EXCEPTION:
            e.rip = self.c.rip
            e.vector = self.c.exc_vector
            e.error_code = self.c.exc_error
            e.has_error_code = self.c.exc_has_error
            e.cr2 = self.c.cr2
        elif reason == EXIT_MMIO:
            e.address = self.c.mmio_addr
            e.size = self.c.mmio_size
            e.write = self.c.mmio_write
            e.value = self.c.mmio_value
        elif reason == EXIT_IO:
            e.port = self.c.io_port
            e.size = self.c.io_size
            e.write = self.c.io_dir
            e.value = self.c.io_value
            e.string = self.c.io_string != 0
            e.op = ("outs" if e.write else "ins") if e.string else ("out" if e.write else "in")
        elif reason == EXIT_MSR:
            e.msr = self.c.msr_index
            e.op = PRIV_NAMES[self.c.priv_op]
            e.write = self.c.priv_op == PRIV_WRMSR
            e.value = self.c.priv_value
        elif reason == EXIT_RDTSC:
            e.op = PRIV_NAMES[self.c.priv_op]
        elif reason == EXIT_CPUID:
            e.op = "cpuid"
        elif reason == EXIT_PRIV:
            e.op = PRIV_NAMES[self.c.priv_op]
            if self.c.priv_op == PRIV_INT:
                e.vector = <int>self.c.priv_value
            e.cr = self.c.priv_cr
            e.gpr = self.c.priv_gpr if self.c.priv_gpr < 16 else -1
            e.value = self.c.priv_value
            e.address = self.c.priv_value
        elif reason == EXIT_HOOK:
            e.hook_id = self.c.hook_id
            e.kind = HOOK_KIND_NAMES.get(self.c.hook_kind)
            e.address = self.c.hook_addr
            e.size = self.c.hook_size
            e.value = self.c.hook_value
            e.write = self.c.hook_kind == HK_WRITE
        if reason == EXIT_EXCEPTION:
            e.software = self.c.exc_soft != 0
        return e

    def copy_state_from(self, Vcpu other):
        """Take over other's architectural state (registers, control registers,
        CPUID table, traps): how a new thread's vCPU starts. Counters, TLB and
        caches are not copied."""
        cdef TlbEntry* tlb = self.c.tlb
        cdef JcEntry* jc = self.c.jc
        cdef CpuidEntry* cpuid = self.c.cpuid
        cdef uint32_t n = other.c.n_cpuid
        cdef uint32_t owner = self.c.hook_owner
        cdef uint8_t* cov = self.c.cov_map
        self.c = other.c
        self.c.hook_owner = owner          # hooks and coverage stay per vCPU
        self.c.cov_map = cov
        self.c.hook_flags = 0
        self.c.mh_n = 0
        self.c.resume_stage = 0
        hook_recompute(&self.c)
        self.c.tlb = tlb
        self.c.jc = jc
        memset(self.c.tlb, 0xff, TLB_SIZE * sizeof(TlbEntry))
        new_epoch(&self.c)
        self.c.icount = 0
        self.c.n_jc_hits = self.c.n_jc_misses = self.c.n_chained = 0
        self.c.n_tlb_hits = self.c.n_tlb_misses = self.c.n_tlb_flushes = 0
        memset(self.c.n_exits, 0, sizeof(self.c.n_exits))
        if self.c.tsc_mode == TSC_VIRTUAL:
            self.c.tsc_offset = read_tsc(&other.c)   # the TSC goes on from the parent's value
        free(cpuid)
        self.c.cpuid = <CpuidEntry*>calloc(max(1, n), sizeof(CpuidEntry))
        if n:
            memcpy(self.c.cpuid, other.c.cpuid, n * sizeof(CpuidEntry))
        self.c.cur_block = NULL
        self.c.events = 0
        memset(self.c.irq_bits, 0, sizeof(self.c.irq_bits))
        self.c.halted = 0
        self.c.shadow_end = 0
        self.c.io_string = 0
        self.c.trap_pass_rip = NO_PASS

    def stop(self):
        """Ask a running vCPU (in another thread) to exit at the next block."""
        emu_atomic_or32(&self.c.events, EV_STOP)

    def complete_mmio_read(self, uint64_t value):
        """Answer the pending MMIO read; the instruction completes on the next run()."""
        self.c.mmio_value = value & szmask(<uint32_t>self.c.mmio_size) if self.c.mmio_size in (1, 2, 4, 8) else value
        self.c.mmio_pending = 1

    def complete_io_in(self, uint64_t value):
        """Answer the IN that exited: AL, AX or EAX (zero-extended into RAX)
        gets value, by the access size; for an INS element, the value stored
        at ES:rDI when the vCPU resumes."""
        if self.c.io_string:
            self.c.io_value = value & szmask(<uint32_t>self.c.io_size)
        elif self.c.io_size == 1:
            set8(&self.c, 0, value)
        elif self.c.io_size == 2:
            rset(&self.c, 0, 2, value)
        else:
            self.c.r[0] = value & 0xffffffffULL

    def complete_mmio_write(self):
        """The VMM performed the pending MMIO write; the instruction completes
        on the next run()."""
        self.c.mmio_pending = 1

    # ---- registers ----
    def get_gpr(self, int i):
        if not 0 <= i < 16:
            raise IndexError(i)
        return self.c.r[i]

    def syscall_regs(self):
        """(RAX, RDI, RSI, RDX, R10, R8, R9): a system call's number and its six
        arguments in one call (the Linux personality's hot path)."""
        cdef uint64_t* r = self.c.r
        return (r[0], r[7], r[6], r[2], r[10], r[8], r[9])

    def set_gpr(self, int i, uint64_t v):
        if not 0 <= i < 16:
            raise IndexError(i)
        self.c.r[i] = v

    @property
    def rip(self):
        return self.c.rip

    @rip.setter
    def rip(self, uint64_t v):
        self.c.rip = v
        self.c.halted = 0

    # ---- system mode (core/system.pxi) ----
    @property
    def system_mode(self):
        """True: exceptions and interrupts are delivered through the guest's
        IDT (a guest kernel runs at CPL 0); False: faults exit to the VMM as
        EXCEPTION exits."""
        return self.c.deliver_via_idt != 0

    @system_mode.setter
    def system_mode(self, bint v):
        self.c.deliver_via_idt = v

    @property
    def deliver_via_idt(self):
        """The same switch as system_mode."""
        return self.c.deliver_via_idt != 0

    @deliver_via_idt.setter
    def deliver_via_idt(self, bint v):
        self.c.deliver_via_idt = v

    def raise_irq(self, int vector):
        """Make external interrupt `vector` pending (callable from another
        thread while run() executes). It is delivered through the IDT at a
        block boundary once RFLAGS.IF=1, no STI/MOV SS shadow is active and
        its priority class (vector >> 4) is above CR8; it wakes a HLT."""
        if not 0 <= vector < 256:
            raise ValueError("vector is 0..255")
        irq_raise(&self.c, <uint32_t>vector)

    def clear_irq(self, int vector):
        """Withdraw a pending external interrupt."""
        if not 0 <= vector < 256:
            raise ValueError("vector is 0..255")
        emu_atomic_and64(&self.c.irq_bits[vector >> 6], ~((<uint64_t>1) << (vector & 63)))

    @property
    def pending_irqs(self):
        """Pending external interrupt vectors, highest first."""
        return [v for v in range(255, -1, -1) if (self.c.irq_bits[v >> 6] >> (v & 63)) & 1]

    @property
    def halted(self):
        """HLT executed in system mode and no interrupt has woken the vCPU."""
        return self.c.halted != 0

    @halted.setter
    def halted(self, bint v):
        self.c.halted = v

    @property
    def interrupt_shadow(self):
        """Interrupts are blocked for one more instruction (after STI or MOV SS)."""
        return self.c.icount < self.c.shadow_end

    @property
    def tr(self):
        """(selector, base, limit) of the task register."""
        return (self.c.tr_sel, self.c.tr_base, self.c.tr_limit)

    @tr.setter
    def tr(self, v):
        self.c.tr_sel, self.c.tr_base, self.c.tr_limit = v[0], v[1], v[2]

    def get_dr(self, int i):
        """Debug register DRi (0-3, 6, 7)."""
        if not 0 <= i < 8:
            raise IndexError(i)
        return self.c.dr[i]

    def set_dr(self, int i, uint64_t v):
        if not 0 <= i < 8:
            raise IndexError(i)
        self.c.dr[i] = v

    @property
    def ldtr(self):
        """(selector, base, limit) of the LDT register."""
        return (self.c.ldtr_sel, self.c.ldtr_base, self.c.ldtr_limit)

    @ldtr.setter
    def ldtr(self, v):
        self.c.ldtr_sel, self.c.ldtr_base, self.c.ldtr_limit = v[0], v[1], v[2]

    @property
    def rflags(self):
        return get_rflags(&self.c)

    @rflags.setter
    def rflags(self, uint64_t v):
        self.c.rflags = (v & 0x3f7fd7) | 2
        self.c.lf_op = LF_NONE

    # ---- SSE / x87 state ----
    def get_xmm(self, int i):
        """XMM register i as 16 little-endian bytes."""
        if not 0 <= i < 16:
            raise IndexError(i)
        return (<char*>&self.c.xmm[i][0])[:16]

    def set_xmm(self, int i, v):
        cdef bytes b = bytes(v)
        if not 0 <= i < 16:
            raise IndexError(i)
        if len(b) != 16:
            raise ValueError("an XMM register takes 16 bytes")
        memcpy(&self.c.xmm[i][0], <char*>b, 16)

    @property
    def mxcsr(self):
        return self.c.mxcsr

    @mxcsr.setter
    def mxcsr(self, uint32_t v):
        if v & ~(<uint32_t>0xFFFF):
            raise ValueError("reserved MXCSR bits")
        self.c.mxcsr = v

    @property
    def xcr0(self):
        return self.c.xcr0

    @xcr0.setter
    def xcr0(self, uint64_t v):
        self.c.xcr0 = v

    def get_st(self, int i):
        """x87 ST(i) as 10 raw bytes (80-bit extended format)."""
        if not 0 <= i < 8:
            raise IndexError(i)
        return (<char*>&self.c.fpr[(self.c.ftop + i) & 7][0])[:10]

    def fxsave(self):
        """The FXSAVE64 image (512 bytes) of the x87 and SSE state."""
        cdef uint8_t b[512]
        memset(b, 0, 512)
        fx_image(&self.c, b, 1, 1, 1)
        return (<char*>b)[:512]

    def fxrstor(self, data):
        """Load x87 and SSE state from an FXSAVE64 image (512 bytes)."""
        cdef bytes d = bytes(data)
        cdef uint32_t csr
        if len(d) != 512:
            raise ValueError("an FXSAVE image is 512 bytes")
        memcpy(&csr, <char*>d + 24, 4)
        if csr & ~(<uint32_t>0xFFFF):
            raise ValueError("reserved MXCSR bits")
        self.c.mxcsr = csr
        memcpy(&self.c.xmm[0][0], <char*>d + 160, 256)
        fx_load_x87(&self.c, <const uint8_t*><char*>d, 1)

    @property
    def fpu_state(self):
        """x87 control, status (with TOP) and full tag words."""
        return {"fcw": self.c.fcw, "fsw": (self.c.fsw & 0xC7FF) | ((self.c.ftop & 7) << 11),
                "ftw": self.c.ftw, "fop": self.c.fop, "fip": self.c.fip, "fdp": self.c.fdp}

    @property
    def cpl(self):
        return self.c.cpl

    @cpl.setter
    def cpl(self, uint32_t v):
        if v > 3:
            raise ValueError("CPL is 0..3")
        set_cpl(&self.c, v)
        new_epoch(&self.c)

    def get_seg_base(self, int i):
        return self.c.seg_base[i]

    def set_seg_base(self, int i, uint64_t v):
        if not 0 <= i < 6:
            raise IndexError(i)
        self.c.seg_base[i] = v

    def get_seg_sel(self, int i):
        return self.c.seg_sel[i]

    def set_seg_sel(self, int i, uint16_t v):
        self.c.seg_sel[i] = v

    @property
    def cr0(self):
        return self.c.cr0

    @cr0.setter
    def cr0(self, uint64_t v):
        self.c.cr0 = v
        tlb_flush(&self.c)

    @property
    def cr2(self):
        return self.c.cr2

    @cr2.setter
    def cr2(self, uint64_t v):
        self.c.cr2 = v

    @property
    def cr3(self):
        return self.c.cr3

    @cr3.setter
    def cr3(self, uint64_t v):
        self.c.cr3 = v
        tlb_flush(&self.c)

    @property
    def cr4(self):
        return self.c.cr4

    @cr4.setter
    def cr4(self, uint64_t v):
        self.c.cr4 = v
        tlb_flush(&self.c)

    @property
    def cr8(self):
        return self.c.cr8

    @cr8.setter
    def cr8(self, uint64_t v):
        self.c.cr8 = v & 15

    @property
    def efer(self):
        return self.c.efer

    @efer.setter
    def efer(self, uint64_t v):
        self.c.efer = v
        tlb_flush(&self.c)

    @property
    def kernel_gs_base(self):
        return self.c.kernel_gs_base

    @kernel_gs_base.setter
    def kernel_gs_base(self, uint64_t v):
        self.c.kernel_gs_base = v

    @property
    def gdtr(self):
        """(base, limit)"""
        return (self.c.gdtr_base, self.c.gdtr_limit)

    @gdtr.setter
    def gdtr(self, v):
        self.c.gdtr_base, self.c.gdtr_limit = v[0], v[1] & 0xffff

    @property
    def idtr(self):
        """(base, limit)"""
        return (self.c.idtr_base, self.c.idtr_limit)

    @idtr.setter
    def idtr(self, v):
        self.c.idtr_base, self.c.idtr_limit = v[0], v[1] & 0xffff

    def get_msr(self, uint32_t index):
        """An MSR as RDMSR would read it; KeyError for one the core lacks."""
        cdef uint64_t v
        if msr_read(&self.c, index, &v, self.c.icount) < 0:
            raise KeyError(hex(index))
        return v

    def set_msr(self, uint32_t index, uint64_t value):
        """Write an MSR with WRMSR's checks; ValueError where WRMSR would #GP."""
        if msr_write(&self.c, index, value, self.c.icount) < 0:
            raise ValueError("WRMSR %#x <- %#x would raise #GP" % (index, value))

    @property
    def trap_mask(self):
        return self.c.trap_mask

    @trap_mask.setter
    def trap_mask(self, uint64_t v):
        self.c.trap_mask = v

    # ---- instrumentation (core/hooks.pxi; emu/hooks.py has the callback layer) ----
    def add_code_hook(self, uint64_t begin, uint64_t end):
        """Exit (HOOK, kind "code") before each instruction starting in
        begin..end (inclusive; begin > end: every instruction). The instruction
        runs when the VMM resumes. Returns the hook id. Hooks belong to this
        vCPU; add and remove them while no vCPU of the machine runs (code
        hooks flush the machine's block cache)."""
        return hook_add(&self.c, begin, end, HK_CODE)

    def add_mem_hook(self, uint64_t begin, uint64_t end, kinds=("read", "write")):
        """Exit (HOOK, kind "read"/"write"/"fetch") before each access of
        those kinds that overlaps virtual begin..end (inclusive); the access
        completes when the VMM resumes. Fetch hooks fire before each
        instruction whose bytes overlap the range. Returns the hook id."""
        return hook_add(&self.c, begin, end, hook_kinds_of(kinds))

    def remove_hook(self, uint32_t hook_id):
        if not hook_remove(&self.c, hook_id):
            raise KeyError(hook_id)

    @property
    def hooks(self):
        """This vCPU's hooks: (id, begin, end, kinds)."""
        return hook_list(&self.c)

    def set_block_hook(self, bint enabled):
        """Exit (HOOK, kind "block", address = block start, size = its bytes,
        value = its instructions) at the start of each block execution. A
        block is emu's translation unit (up to a branch, 64 instructions or
        a page end); resuming inside a block after an exit is no new block."""
        if enabled:
            self.c.hook_flags |= HF_BLOCK
        else:
            self.c.hook_flags &= ~(<uint32_t>HF_BLOCK)

    def trap(self, name, bint on=True):
        """Make an instruction class exit to the VMM (names: TRAPS)."""
        cdef uint64_t bit = TRAPS[name]
        if on:
            self.c.trap_mask |= bit
        else:
            self.c.trap_mask &= ~bit

    def enable_coverage(self, bint on=True):
        """AFL-style edge coverage: map[cur ^ prev] += 1 per block executed."""
        cov_enable(&self.c, on)

    def clear_coverage(self):
        if self.c.cov_map != NULL:
            memset(self.c.cov_map, 0, 65536)
        self.c.cov_prev = 0

    @property
    def coverage(self):
        """The 65536-byte edge map as a zero-copy numpy uint8 array."""
        return cov_view(&self.c, self)

    @property
    def icount(self):
        """Instructions retired."""
        return self.c.icount

    @property
    def tsc_aux(self):
        return self.c.tsc_aux

    @tsc_aux.setter
    def tsc_aux(self, uint64_t v):
        self.c.tsc_aux = v

    def set_tsc(self, uint64_t offset, double cycles_per_insn):
        """Virtual TSC = offset + instructions retired x cycles_per_insn."""
        self.c.tsc_mode = TSC_VIRTUAL
        self.c.tsc_offset = offset
        self.c.tsc_per_insn = <uint64_t>(cycles_per_insn * 65536.0)

    def set_tsc_host(self, double freq_hz, offset=None):
        """Host TSC mode: TSC = offset + host CLOCK_MONOTONIC time since now
        x freq_hz. offset None: go on from the current TSC value."""
        cdef uint64_t off = read_tsc(&self.c) if offset is None else <uint64_t>offset
        if freq_hz <= 0:
            raise ValueError("the TSC frequency must be positive")
        self.c.tsc_host_mult = <uint64_t>(freq_hz / 1e9 * 4294967296.0)
        self.c.tsc_host_base = host_ns()
        self.c.tsc_offset = off
        self.c.tsc_mode = TSC_HOST

    @property
    def tsc_mode(self):
        return "host" if self.c.tsc_mode == TSC_HOST else "virtual"

    @property
    def tsc_offset(self):
        return self.c.tsc_offset

    @property
    def tsc_cycles_per_insn(self):
        return self.c.tsc_per_insn / 65536.0

    def tsc_at_trap(self):
        """The TSC the trapped RDTSC/RDTSCP would have read (the current TSC
        when no trap is open)."""
        if self.trap_reason:
            return tsc_at_count(&self.c, self.c.icount - 1)
        return read_tsc(&self.c)

    def tsc_advance(self, uint64_t cycles):
        """Move the TSC forward (virtual time passing while the guest sleeps)."""
        self.c.tsc_offset += cycles

    # ---- hypervisor: MSR table, completing or refusing trapped instructions ----
    def set_msr_policy(self, entries):
        """entries: up to 16 (msr, action bits (MSR_POLICY), value); applied
        by RDMSR/WRMSR in the core before the trap check (no exit)."""
        entries = list(entries)
        if len(entries) > 16:
            raise ValueError("at most 16 MSR policy entries")
        for i, (idx, action, value) in enumerate(entries):
            self.c.msr_pol[i].index = idx
            self.c.msr_pol[i].action = action
            self.c.msr_pol[i].value = value
        self.c.n_msr_pol = len(entries)

    @property
    def trap_open(self):
        """The last exit was a trapped instruction still waiting for
        complete_trap() or inject_exception()."""
        return self.trap_reason != 0

    def inject_exception(self, int vector, error_code=None, cr2=None):
        """Make the guest take exception `vector`. After a trap exit it is
        taken at the trapped instruction (which then did not retire);
        otherwise at the current RIP. The next run() returns it as an
        EXCEPTION exit, the way the core reports any fault. error_code None:
        0 for the vectors that push one (8, 10-14, 17, 21), none otherwise."""
        if not 0 <= vector < 256:
            raise ValueError("vector 0..255")
        if self.trap_reason:
            self.c.rip = self.c.exit_rip
            if not self.trap_early:
                self.c.icount -= 1
            self.c.io_string = 0         # a refused INS/OUTS element is not committed
            self.trap_reason = 0
        self.inj_vector = vector
        if error_code is None:
            self.inj_has_error = vector in (8, 10, 11, 12, 13, 14, 17, 21)
            self.inj_error = 0
        else:
            self.inj_has_error = True
            self.inj_error = error_code
        if cr2 is not None:
            self.c.cr2 = cr2

    def skip_trap(self):
        """Retire the trapped instruction without its effect (a write the
        policy drops, a HLT, INT n, LLDT... the policy ignores). An INS/OUTS
        element goes on as if the device took or gave nothing."""
        if not self.trap_reason:
            raise RuntimeError("no trapped instruction to skip")
        if self.trap_early and self.trap_reason == EXIT_PRIV:
            self.c.rip = self.c.priv_next
            self.c.icount += 1
        self.trap_reason = 0

    def _trap_fault(self, int vector, uint64_t err, int has_err):
        self.trap_reason = 1            # still open: the fault is taken at the trapped instruction
        self.inject_exception(vector, err if has_err else None)
        return False

    def complete_trap(self, value=None):
        """Perform the effect of the instruction that trapped, as the core
        would have (the policy allowed it). value changes the result: the
        (eax, ebx, ecx, edx) of a CPUID, the value a RDTSC/RDTSCP, RDMSR or
        MOV from CR reads, or the value a WRMSR/MOV to CR/XSETBV/LMSW writes.
        Returns True, or False when the instruction faults instead (#GP for
        an unknown MSR or a reserved bit, #PF for LGDT's operand...): the
        fault is then injected at the instruction."""
        cdef uint32_t out[4]
        cdef uint64_t v, lim, base, t
        cdef int k = 0
        cdef uint32_t op = self.c.priv_op
        cdef int reason = self.trap_reason
        cdef Cpu* c = &self.c
        if not reason:
            raise RuntimeError("no trapped instruction to complete")
        if reason == EXIT_IO:
            if value is not None and not c.io_dir:
                self.complete_io_in(value)
            self.trap_reason = 0
            return True
        if self.trap_early:
            return self._complete_early(value)
        self.trap_reason = 0
        if reason == EXIT_CPUID:
            if value is None:
                cpuid_lookup(c, <uint32_t>c.r[0], <uint32_t>c.r[1], out)
            else:
                out[0], out[1], out[2], out[3] = value
            c.r[0] = out[0]
            c.r[3] = out[1]
            c.r[1] = out[2]
            c.r[2] = out[3]
            return True
        if reason == EXIT_RDTSC:
            v = tsc_at_count(c, c.icount - 1) if value is None else <uint64_t>value
            c.r[0] = v & 0xffffffffULL
            c.r[2] = v >> 32
            if op == PRIV_RDTSCP:
                c.r[1] = c.tsc_aux & 0xffffffffULL
            return True
        if reason == EXIT_MSR:
            if op == PRIV_RDMSR:
                if value is None:
                    if msr_read(c, <uint32_t>c.msr_index, &v, c.icount - 1) < 0:
                        return self._trap_fault(EXC_GP, 0, 1)
                else:
                    v = <uint64_t>value
                c.r[0] = v & 0xffffffffULL
                c.r[2] = v >> 32
                return True
            v = c.priv_value if value is None else <uint64_t>value
            if msr_write(c, <uint32_t>c.msr_index, v, c.icount - 1) < 0:
                return self._trap_fault(EXC_GP, 0, 1)
            return True
        # EXIT_PRIV
        if op == PRIV_MOV_FROM_CR:
            if value is None:
                v = (c.cr0 if c.priv_cr == 0 else c.cr2 if c.priv_cr == 2 else c.cr3 if c.priv_cr == 3
                     else c.cr4 if c.priv_cr == 4 else c.cr8)
            else:
                v = <uint64_t>value
            c.r[c.priv_gpr] = v
        elif op == PRIV_MOV_TO_CR:
            v = c.priv_value if value is None else <uint64_t>value
            if c.priv_cr == 2:
                c.cr2 = v
            elif c.priv_cr == 8:
                if v >> 4:
                    k = -1
                else:
                    c.cr8 = v
            elif c.priv_cr == 0:
                k = write_cr0(c, v)
            elif c.priv_cr == 3:
                k = write_cr3(c, v)
            else:
                k = write_cr4(c, v)
        elif op == PRIV_CLTS:
            c.cr0 &= ~(<uint64_t>CR0_TS)
        elif op == PRIV_LMSW:
            v = c.priv_value if value is None else <uint64_t>value
            c.cr0 = (c.cr0 & ~(<uint64_t>0xe)) | (v & 0xf)
        elif op == PRIV_INVLPG:
            invlpg_va(c, c.priv_value)
        elif op == PRIV_LGDT or op == PRIV_LIDT:
            if mem_read(c, c.priv_value, 2, &lim) or mem_read(c, c.priv_value + 2, 8, &base):
                return self._trap_fault(c.exc_vector, c.exc_error, c.exc_has_error)
            if op == PRIV_LGDT:
                c.gdtr_limit = <uint32_t>lim
                c.gdtr_base = base
            else:
                c.idtr_limit = <uint32_t>lim
                c.idtr_base = base
        elif op == PRIV_SGDT or op == PRIV_SIDT:
            if mem_read_rmw(c, c.priv_value, 2, &t) or mem_read_rmw(c, c.priv_value + 2, 8, &t):
                return self._trap_fault(c.exc_vector, c.exc_error, c.exc_has_error)
            lim = c.gdtr_limit if op == PRIV_SGDT else c.idtr_limit
            base = c.gdtr_base if op == PRIV_SGDT else c.idtr_base
            if mem_write(c, c.priv_value, 2, lim) or mem_write(c, c.priv_value + 2, 8, base):
                return self._trap_fault(c.exc_vector, c.exc_error, c.exc_has_error)
        elif op == PRIV_XSETBV:
            v = c.priv_value if value is None else <uint64_t>value
            if <uint32_t>c.r[1] != 0 or not (v & 1) or v & ~(<uint64_t>XCR0_SUPPORTED):
                k = -1
            else:
                c.xcr0 = v
        if k < 0:
            return self._trap_fault(EXC_GP, 0, 1)
        return True

    cdef _complete_early(self, value):
        """complete_trap() of an instruction that trapped before acting (HLT,
        INT n, RDPMC, SYSCALL, LLDT, LTR): it runs when the vCPU resumes
        (once, without trapping again); a value instead makes RDPMC read it
        (EDX:EAX) or SYSCALL return it in RAX (RCX and R11 as after SYSRET),
        and the instruction retires."""
        cdef Cpu* c = &self.c
        cdef uint32_t op = c.priv_op
        self.trap_reason = 0
        if value is None:
            c.trap_pass_rip = c.rip
            c.trap_pass_icount = c.icount
            return True
        if op == PRIV_RDPMC:
            c.r[0] = <uint64_t>value & 0xffffffffULL
            c.r[2] = (<uint64_t>value >> 32) & 0xffffffffULL
        elif op == PRIV_SYSCALL:
            c.r[0] = <uint64_t>value
            c.r[1] = c.priv_next
            c.r[11] = get_rflags(c) & ~(<uint64_t>0x10000)
        else:
            self.trap_reason = EXIT_PRIV
            raise ValueError("%s takes no result value (allow, deny or ignore it)" % PRIV_NAMES[op])
        c.rip = c.priv_next
        c.icount += 1
        return True

    @property
    def tsc(self):
        return read_tsc(&self.c)

    def seed_rng(self, uint64_t seed):
        self.c.rng_state = seed

    def set_cpuid_table(self, entries):
        """entries: iterable of (leaf, subleaf or None, eax, ebx, ecx, edx);
        CPUID then answers from this table inside the core."""
        entries = list(entries)
        cdef CpuidEntry* t = <CpuidEntry*>calloc(max(1, len(entries)), sizeof(CpuidEntry))
        if t == NULL:
            raise MemoryError()
        for i, (leaf, sub, a, b, cc, d) in enumerate(entries):
            t[i].leaf = leaf
            t[i].subleaf = sub or 0
            t[i].flags = 0 if sub is None else 1
            t[i].eax = a
            t[i].ebx = b
            t[i].ecx = cc
            t[i].edx = d
        free(self.c.cpuid)
        self.c.cpuid = t
        self.c.n_cpuid = len(entries)

    def get_cpuid_table(self):
        """The installed table as set_cpuid_table takes it."""
        cdef uint32_t i
        return [(self.c.cpuid[i].leaf, self.c.cpuid[i].subleaf if self.c.cpuid[i].flags & 1 else None,
                 self.c.cpuid[i].eax, self.c.cpuid[i].ebx, self.c.cpuid[i].ecx, self.c.cpuid[i].edx)
                for i in range(self.c.n_cpuid)]

    def cpuid(self, uint32_t leaf, uint32_t subleaf=0):
        """What the guest's CPUID returns for this leaf."""
        cdef uint32_t out[4]
        cpuid_lookup(&self.c, leaf, subleaf, out)
        return (out[0], out[1], out[2], out[3])

    # ---- memory through this vCPU's page tables ----
    def flush_tlb(self):
        tlb_flush(&self.c)

    def drop_tlb_writes(self):
        """Drop the TLB's fast write entries, so the next write to each page
        walks (and records the page as dirty for PhysMachine.take_dirty)."""
        cdef int i
        for i in range(TLB_SIZE):
            self.c.tlb[i].tag_w = TLB_INVALID

    # ---- snapshots ----
    def save_state(self):
        """The vCPU's whole architectural state (registers, control and
        system registers, x87/SSE, TSC and RNG state, CPUID table, pending
        interrupts, instructions retired) as bytes, for load_state() on a
        vCPU of the same build. Open trap exits are not part of it."""
        cdef bytes cpu = (<char*>&self.c)[:sizeof(Cpu)]
        cdef bytes tab = (<char*>self.c.cpuid)[:self.c.n_cpuid * sizeof(CpuidEntry)] if self.c.n_cpuid else b""
        return STATE_MAGIC + (<uint64_t>sizeof(Cpu)).to_bytes(8, "little") + cpu + tab

    def load_state(self, state):
        """Restore what save_state() returned. Instrumentation (hooks,
        coverage), the trap policy (trap bits, MSR table) and the statistics
        counters stay as they are; the TLB and block-lookup cache start empty."""
        cdef bytes b = bytes(state)
        cdef Cpu saved = self.c
        cdef uint64_t size
        cdef Py_ssize_t head = len(STATE_MAGIC) + 8
        cdef uint32_t n
        cdef CpuidEntry* tab
        if b[:len(STATE_MAGIC)] != STATE_MAGIC or len(b) < head + <Py_ssize_t>sizeof(Cpu):
            raise ValueError("not a vCPU state of this build of emu")
        size = int.from_bytes(b[len(STATE_MAGIC):head], "little")
        if size != sizeof(Cpu) or (len(b) - head - sizeof(Cpu)) % sizeof(CpuidEntry):
            raise ValueError("not a vCPU state of this build of emu")
        n = <uint32_t>((len(b) - head - sizeof(Cpu)) // sizeof(CpuidEntry))
        tab = <CpuidEntry*>calloc(max(1, n), sizeof(CpuidEntry))
        if tab == NULL:
            raise MemoryError()
        memcpy(&self.c, <char*>b + head, sizeof(Cpu))
        if n:
            memcpy(tab, <char*>b + head + sizeof(Cpu), n * sizeof(CpuidEntry))
        free(saved.cpuid)
        self.c.cpuid = tab
        self.c.n_cpuid = n
        # this vCPU's own memory and identity
        self.c.m = saved.m
        self.c.tlb = saved.tlb
        self.c.jc = saved.jc
        self.c.cur_block = NULL
        self.c.events = saved.events & ~(<uint32_t>EV_STOP)
        if self.c.irq_bits[0] | self.c.irq_bits[1] | self.c.irq_bits[2] | self.c.irq_bits[3]:
            self.c.events |= EV_IRQ
        # instrumentation and policy stay
        self.c.hook_owner = saved.hook_owner
        self.c.hook_flags = saved.hook_flags
        self.c.hook_mem = saved.hook_mem
        self.c.cov_map = saved.cov_map
        self.c.cov_prev = 0
        self.c.mh_n = 0
        self.c.resume_stage = 0
        self.c.trap_mask = saved.trap_mask
        self.c.n_msr_pol = saved.n_msr_pol
        memcpy(self.c.msr_pol, saved.msr_pol, sizeof(saved.msr_pol))
        # statistics keep counting
        self.c.n_jc_hits, self.c.n_jc_misses = saved.n_jc_hits, saved.n_jc_misses
        self.c.n_chained, self.c.n_tlb_hits = saved.n_chained, saved.n_tlb_hits
        self.c.n_tlb_misses, self.c.n_tlb_flushes = saved.n_tlb_misses, saved.n_tlb_flushes
        memcpy(self.c.n_exits, saved.n_exits, sizeof(saved.n_exits))
        self.trap_reason = 0
        self.inj_vector = -1
        memset(self.c.tlb, 0xff, TLB_SIZE * sizeof(TlbEntry))
        self.c.tlb_large = 0
        new_epoch(&self.c)

    def invlpg(self, uint64_t va):
        invlpg_va(&self.c, va)

    def translate(self, uint64_t va, int access=0):
        """Guest physical address of va as an access of kind access (0 read,
        1 write, 2 execute) at the current CPL would see it, or None if it
        would fault. No A/D bits are set."""
        cdef uint64_t pa
        cdef uint32_t perm
        cdef Cpu tmp = self.c
        if mmu_walk_peek(&tmp, va, access, &pa, &perm) < 0:
            return None
        return pa

    @property
    def counters(self):
        m = self.c.m
        return {"instructions": self.c.icount,
                "blocks_translated": m.n_blocks_translated,
                "block_cache_hits": self.c.n_jc_hits + self.c.n_chained,
                "block_cache_misses": self.c.n_jc_misses,
                "chained": self.c.n_chained,
                "invalidations": m.n_invalidations,
                "cache_flushes": m.n_flushes,
                "tlb_hits": self.c.n_tlb_hits,
                "tlb_misses": self.c.n_tlb_misses,
                "tlb_flushes": self.c.n_tlb_flushes,
                "exits": {EXIT_NAMES[i]: self.c.n_exits[i] for i in range(N_EXIT_REASONS) if self.c.n_exits[i]}}

STATE_MAGIC = b"emu-vcpu-state-1"

# trap_mask bits, for the hypervisor layer
TRAPS = {"cpuid": TRAP_CPUID, "rdtsc": TRAP_RDTSC, "msr": TRAP_MSR, "hlt": TRAP_HLT,
         "cr": TRAP_CR, "invlpg": TRAP_INVLPG, "desc": TRAP_DESC, "int": TRAP_INT,
         "rdpmc": TRAP_RDPMC, "xsetbv": TRAP_XSETBV, "syscall": TRAP_SYSCALL,
         "syscall_insn": TRAP_SYSCALL_INSN}
EXIT = {v: k for k, v in EXIT_NAMES.items()}
# Vcpu.set_msr_policy action bits
MSR_POLICY = {"deny_read": MSRP_DENY_R, "deny_write": MSRP_DENY_W, "fixed_read": MSRP_FIXED_R,
              "ignore_write": MSRP_IGNORE_W}
