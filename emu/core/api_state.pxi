# The core's Python API: the vCPU's architectural state (VcpuState), its
# register accessors, and save/load of it. Running it is in api_vcpu.pxi.

cdef enum:
    MAX_CPUID_ENTRIES = 4096

cdef object state_problem(Cpu* t):
    """Why a vCPU state read from outside (a snapshot, a migration stream)
    cannot be loaded, or None. Each field checked here indexes a table in
    the core, selects a code path, or is loaded into the host CPU."""
    if t.lf_op > LF_SAR:
        return "lazy-flags operation %d" % t.lf_op
    if t.lf_sz > 8 or (t.lf_op != LF_NONE and t.lf_sz not in (1, 2, 4, 8)):
        return "lazy-flags size %d" % t.lf_sz
    if t.cpl > 3:
        return "CPL %d" % t.cpl
    if t.mxcsr & ~(<uint32_t>0xFFFF):
        return "reserved MXCSR bits %#x" % t.mxcsr
    if t.ftop > 7:
        return "x87 TOP %d" % t.ftop
    if t.tsc_mode > 1:
        return "TSC mode %d" % t.tsc_mode
    if t.exc_vector > 255:
        return "exception vector %d" % t.exc_vector
    if t.priv_gpr > 16 or t.priv_cr > 15:
        return "trapped-instruction record"
    if t.mmio_size > 8 or t.io_size > 4 or t.mmio_write > 1 or t.mmio_pending > 1:
        return "device access record"
    if t.mmio_n > MMIO_LOG:
        return "MMIO log of %d entries" % t.mmio_n
    if t.gdtr_limit > 0xffff or t.idtr_limit > 0xffff:
        return "descriptor-table limit"
    if t.halted > 1 or t.deliver_via_idt > 1 or t.priv_before > 1:
        return "flag field out of range"
    if t.xcr0 & ~(<uint64_t>XCR0_SUPPORTED) or not (t.xcr0 & 1):
        return "XCR0 %#x" % t.xcr0
    return None

cdef size_t cpu_state_size() noexcept nogil:
    """The bytes of a Cpu that make up its state: everything before the TLB."""
    return <size_t>(<char*>&layout_cpu.tlb_arr[0] - <char*>&layout_cpu)


cdef class VcpuState:
    """A virtual CPU's architectural state: the Cpu struct (registers, control
    and system registers, x87/SSE, the TLB), its accessors, and snapshots of
    it. Vcpu (api_vcpu.pxi) adds running, traps, hooks and time."""
    cdef Cpu c
    cdef readonly PhysMachine machine
    # trap-and-emulate state (traps.pxi): an open trap exit, an injected exception
    cdef TrapState t

    def __cinit__(self, PhysMachine machine):
        memset(&self.c, 0, sizeof(Cpu))
        self.machine = machine
        self.c.m = &machine.m
        self.c.tlb = self.c.tlb_arr
        set_cpl(&self.c, 0)
        self.c.jc = <JcEntry*>calloc(JC_SIZE, sizeof(JcEntry))
        if self.c.tlb == NULL or self.c.jc == NULL:
            raise MemoryError()
        memset(self.c.tlb, 0xff, TLB_SIZE * sizeof(TlbEntry))
        pcid_reset(&self.c)
        self.c.seg_base[SEG_NONE] = 0
        self.c.rflags = 2
        self.c.tsc_per_insn = 1 << 16
        self.c.rng_state = 0x5eed
        self.c.xcr0 = 3
        self.c.vendor_intel = HOST_INTEL
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
        self.t.inj_vector = -1

    def __dealloc__(self):
        free(self.c.jc)
        free(self.c.cpuid)
        free(self.c.cov_map)
        bcov_free(self.c.bcov)
        if self.machine is not None:
            hook_drop_owner(&self.machine.m, self.c.hook_owner)

    def copy_state_from(self, VcpuState other):
        """Take over other's architectural state (registers, control registers,
        CPUID table, traps): how a new thread's vCPU starts. Counters, TLB and
        caches are not copied."""
        cdef TlbEntry* tlb = self.c.tlb
        cdef JcEntry* jc = self.c.jc
        cdef CpuidEntry* cpuid = self.c.cpuid
        cdef uint32_t n = other.c.n_cpuid
        cdef uint32_t owner = self.c.hook_owner
        cdef uint8_t* cov = self.c.cov_map
        cdef BlockCov* bcov = self.c.bcov
        self.c = other.c
        self.c.hook_owner = owner          # hooks and coverage stay per vCPU
        self.c.cov_map = cov
        self.c.bcov = bcov
        self.c.hook_flags = 0
        self.c.mh_n = 0
        self.c.resume_stage = 0
        hook_recompute(&self.c)
        self.c.tlb = tlb
        self.c.jc = jc
        memset(self.c.tlb, 0xff, TLB_SIZE * sizeof(TlbEntry))
        pcid_reset(&self.c)
        self.c.icount = 0
        self.c.n_jc_hits = self.c.n_jc_misses = self.c.n_chained = 0
        self.c.n_tlb_hits = self.c.n_tlb_misses = self.c.n_tlb_flushes = 0
        memset(self.c.n_exits, 0, sizeof(self.c.n_exits))
        if self.c.tsc_mode == TSC_VIRTUAL:
            self.c.tsc_offset = read_tsc(&other.c)   # the TSC goes on from the parent's value
        self.c.tsc_extra = 0                         # (read_tsc counted the parent's charged cycles)
        if self.c.m == NULL or self.c.m.cache == NULL:
            self.c.timing &= ~TIMING_CACHE           # (core/timing.pxi: no cache model on this machine)
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
    def cs32(self):
        """The code segment is 32-bit: compatibility mode (IA-32e) or legacy
        protected mode (core/compat32.pxi). Set it with the CS selector when
        placing a vCPU in 32-bit code."""
        return self.c.cs32 != 0

    @cs32.setter
    def cs32(self, bint v):
        self.c.cs32 = v
        self.c.mode = self.c.cpl | ((<uint32_t>v) << 2) | (self.c.mode & MODE_PCID)

    def set_tls_desc(self, uint32_t index, uint64_t desc):
        """GDT entry 12 + index (0..2) of the built-in Linux GDT: a TLS
        segment descriptor (set_thread_area). Segment registers keep the
        base they loaded; a later load reads the new descriptor."""
        if index > 2:
            raise ValueError("TLS entries are 0..2 (GDT entries 12-14)")
        self.c.tls_desc[index] = desc

    def get_tls_desc(self, uint32_t index):
        if index > 2:
            raise ValueError("TLS entries are 0..2 (GDT entries 12-14)")
        return self.c.tls_desc[index]

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
        xmm_load16(&self.c, <const uint8_t*><char*>d + 160)
        fx_load_x87(&self.c, <const uint8_t*><char*>d, 1)
        self.c.xinuse_mod |= 3

    def get_ymm(self, int i):
        """YMMi as 32 little-endian bytes."""
        if not 0 <= i < 16:
            raise IndexError(i)
        return (<char*>&self.c.xmm[i][0])[:32]

    def set_ymm(self, int i, v):
        """Set YMMi (32 bytes); bits 511:256 are zeroed, as a VEX write does."""
        cdef bytes b = bytes(v)
        if not 0 <= i < 16:
            raise IndexError(i)
        if len(b) != 32:
            raise ValueError("a YMM value is 32 bytes")
        vset(&self.c, i, <const uint64_t*><char*>b, 4)
        self.c.xinuse_mod |= 4

    @property
    def xsave_size(self):
        """Bytes of the standard-form XSAVE image of the components XCR0
        enables (CPUID.(EAX=0DH,ECX=0):EBX): 576, or 832 with AVX."""
        return xsave_size(self.c.xcr0, 0)

    def xsave_image(self):
        """The x87/SSE/AVX state as the standard-form XSAVE image of the
        components XCR0 enables (what XSAVE64 with EDX:EAX = XCR0 stores,
        XSTATE_BV = XINUSE; the legacy region's bytes 464-511 zero): the one
        format signal frames, snapshots and migration carry vector state in."""
        cdef uint8_t b[XSAVE_MAX]
        cdef uint64_t rfbm = self.c.xcr0 & XSTATE_SUPPORTED, bv
        cdef uint32_t n = xsave_size(rfbm, 0)
        xsave_build(&self.c, b, rfbm, 1)
        bv = xstate_inuse(&self.c) & rfbm
        memcpy(b + 512, &bv, 8)
        return (<char*>b)[:n]

    def xrstor_image(self, data):
        """Load state from a standard- or compacted-form XSAVE image (as
        XRSTOR64 with EDX:EAX = XCR0 does); ValueError for an image XRSTOR
        would refuse with #GP."""
        cdef bytes d = bytes(data)
        cdef uint8_t b[XSAVE_MAX]
        cdef uint64_t rfbm = self.c.xcr0 & XSTATE_SUPPORTED
        if len(d) < 576:
            raise ValueError("an XSAVE image is at least 576 bytes")
        memset(b, 0, XSAVE_MAX)
        memcpy(b, <char*>d, min(len(d), XSAVE_MAX))
        if xrstor_apply(&self.c, b, rfbm, 1, 0):
            raise ValueError("invalid XSAVE image (header, XSTATE_BV or MXCSR)")

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
        pcid_reset(&self.c)

    @property
    def cr4(self):
        return self.c.cr4

    @cr4.setter
    def cr4(self, uint64_t v):
        self.c.cr4 = v
        tlb_flush(&self.c)
        pcid_reset(&self.c)

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
        cdef size_t n = cpu_state_size()
        cdef bytes cpu = (<char*>&self.c)[:n]
        cdef bytes tab = (<char*>self.c.cpuid)[:self.c.n_cpuid * sizeof(CpuidEntry)] if self.c.n_cpuid else b""
        return STATE_MAGIC + (<uint64_t>n).to_bytes(8, "little") + cpu + tab

    def load_state(self, state):
        """Restore what save_state() returned. Instrumentation (hooks,
        coverage), the trap policy (trap bits, MSR table) and the statistics
        counters stay as they are; the TLB and block-lookup cache start empty."""
        cdef bytes b = bytes(state)
        cdef Cpu saved = self.c
        cdef uint64_t size
        cdef Py_ssize_t head = len(STATE_MAGIC) + 8
        cdef uint32_t n
        cdef size_t nstate = cpu_state_size()
        cdef CpuidEntry* tab
        cdef Cpu* probe
        if b[:len(STATE_MAGIC)] != STATE_MAGIC or len(b) < head + <Py_ssize_t>nstate:
            raise ValueError("not a vCPU state of this build of emu")
        size = int.from_bytes(b[len(STATE_MAGIC):head], "little")
        if size != nstate or (len(b) - head - nstate) % sizeof(CpuidEntry):
            raise ValueError("not a vCPU state of this build of emu")
        n = <uint32_t>((len(b) - head - nstate) // sizeof(CpuidEntry))
        if n > MAX_CPUID_ENTRIES:
            raise ValueError("vCPU state: %d CPUID entries (at most %d)" % (n, MAX_CPUID_ENTRIES))
        # every field the core indexes with, or hands to the host CPU, is checked
        # before any of it replaces the live state (a crafted file or a migration
        # peer must not make the core read out of bounds or fault on the host)
        probe = <Cpu*>calloc(1, sizeof(Cpu))
        if probe == NULL:
            raise MemoryError()
        memcpy(probe, <char*>b + head, nstate)
        bad = state_problem(probe)
        free(probe)
        if bad is not None:
            raise ValueError("vCPU state: " + bad)
        tab = <CpuidEntry*>calloc(max(1, n), sizeof(CpuidEntry))
        if tab == NULL:
            raise MemoryError()
        memcpy(&self.c, <char*>b + head, nstate)
        if n:
            memcpy(tab, <char*>b + head + nstate, n * sizeof(CpuidEntry))
        free(saved.cpuid)
        self.c.cpuid = tab
        self.c.n_cpuid = n
        # this vCPU's own memory and identity
        self.c.m = saved.m
        self.c.tlb = saved.tlb
        self.c.jc = saved.jc
        self.c.cur_block = NULL
        if self.c.m == NULL or self.c.m.cache == NULL:
            self.c.timing &= ~TIMING_CACHE           # (core/timing.pxi: no cache model on this machine)
        # derived and transient state is rebuilt, not taken from the file
        set_cpl(&self.c, self.c.cpl)
        self.c.exit_reason = EXIT_NONE
        self.c.mmio_replay = 0
        self.c.mmio_cur = 0
        self.c.nc_fault = 0
        self.c.storm_n = 0
        self.c.jit_interp = 0
        self.c.jit_site = 0
        self.c.csr_loaded = saved.csr_loaded
        self.c.events = saved.events & ~(<uint32_t>EV_STOP)
        if self.c.irq_bits[0] | self.c.irq_bits[1] | self.c.irq_bits[2] | self.c.irq_bits[3]:
            self.c.events |= EV_IRQ
        # instrumentation and policy stay
        self.c.hook_owner = saved.hook_owner
        self.c.hook_flags = saved.hook_flags
        self.c.hook_mem = saved.hook_mem
        self.c.cov_map = saved.cov_map
        self.c.bcov = saved.bcov
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
        self.t.reason = 0
        self.t.inj_vector = -1
        memset(self.c.tlb, 0xff, TLB_SIZE * sizeof(TlbEntry))
        self.c.tlb_large = 0
        pcid_reset(&self.c)

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
