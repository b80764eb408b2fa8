# The core's Python API: the vCPU as the VMM drives it (Vcpu): run() and
# its exit records, trap completion (traps.pxi), instrumentation, time, the
# CPUID table and counters.

cdef enum:
    HELD_CHUNK = 20000    # instructions run_calls runs on without releasing the GIL

cdef class Vcpu(VcpuState):
    """One virtual CPU. Registers live in a C struct (VcpuState); run()
    executes guest code with the GIL released until an exit."""

    def run(self, uint64_t budget=0xffffffffffffffffULL):
        """Execute until an exit; budget caps the instructions retired.
        Ctrl-C (Python's SIGINT handler) stops the guest at an instruction
        boundary and raises KeyboardInterrupt here."""
        cdef int reason
        emu_sigint_ensure()
        reason = vcpu_enter(&self.c, &self.t, budget)
        if reason == EXIT_STOPPED:
            PyErr_CheckSignals()      # Python's handlers run now (KeyboardInterrupt)
        return exit_record(&self.c, reason)

    def run_hooks(self, dict direct, object slow, uint64_t budget=0xffffffffffffffffULL):
        """run(), calling back into Python for HOOK exits without building
        Exit objects (emu/hooks.py): direct maps a hook id (0: the block
        hook) to fn(vcpu, address, size) for code and block hooks or
        fn(vcpu, kind, address, size, value) for read/write/fetch hooks; other hook
        exits go to slow(hook_id, kind, address, size, value). A callback
        returning False stops: the HOOK exit is returned."""
        cdef int reason
        cdef uint64_t end = self.c.icount + budget
        cdef uint32_t kind
        if end < self.c.icount:
            end = 0xffffffffffffffffULL
        emu_sigint_ensure()
        while True:
            reason = vcpu_enter(&self.c, &self.t, end - self.c.icount)
            if reason == EXIT_STOPPED:
                PyErr_CheckSignals()
            if reason != EXIT_HOOK:
                return exit_record(&self.c, reason)
            kind = self.c.hook_kind
            fn = direct.get(self.c.hook_id)
            if fn is None:
                r = slow(self.c.hook_id, HOOK_KIND_NAMES[kind], self.c.hook_addr, self.c.hook_size, self.c.hook_value)
            elif kind == HK_READ or kind == HK_WRITE or kind == HK_FETCH:
                r = fn(self, HOOK_KIND_NAMES[kind], self.c.hook_addr, self.c.hook_size, self.c.hook_value)
            else:
                r = fn(self, self.c.hook_addr, self.c.hook_size)
            if r is False:
                return exit_record(&self.c, reason)

    def run_calls(self, dict direct, object slow, object owner, tuple access, tuple exits=(),
                  uint64_t budget=0xffffffffffffffffULL, bint hold_gil=True):
        """run_hooks() with Unicorn's callback shapes (emu/unicorn): direct
        maps a hook id to (fn, user_data); code and block callbacks are called
        fn(owner, address, size, user_data), read/write/fetch ones
        fn(owner, access[i], address, size, value, user_data) (access: the
        codes for read, write and fetch, i in that order), value as a
        signed 64-bit number as Unicorn passes it. Other hook exits go to
        slow(hook_id, kind, address, size, value). A stop() made during a
        callback ends the run there (STOPPED exit; the hooked instruction or
        access has not happened). Made for the hook-call cost: no wrapper
        frame between the core and the user's function."""
        cdef int reason
        cdef uint64_t end = self.c.icount + budget
        cdef uint32_t kind
        cdef tuple ent
        cdef uint64_t stop_at[8]
        cdef int n_stop = len(exits), i
        if n_stop > 8:
            raise ValueError("at most 8 exit addresses")
        for i in range(n_stop):
            stop_at[i] = exits[i]
        cdef bint held = hold_gil
        cdef uint64_t left
        if end < self.c.icount:
            end = 0xffffffffffffffffULL
        emu_sigint_ensure()
        while True:
            left = end - self.c.icount
            if held:
                reason = vcpu_enter_held(&self.c, &self.t, left if left < HELD_CHUNK else HELD_CHUNK)
                if reason == EXIT_BUDGET and self.c.icount < end:
                    held = False          # a long stretch without hooks: let other threads in
                    continue
            else:
                reason = vcpu_enter(&self.c, &self.t, left)
            if reason == EXIT_STOPPED:
                PyErr_CheckSignals()
            if reason != EXIT_HOOK:
                return exit_record(&self.c, reason)
            held = hold_gil
            kind = self.c.hook_kind
            if kind == HK_CODE or kind == HK_BLOCK:
                for i in range(n_stop):
                    if self.c.hook_addr == stop_at[i]:
                        return exit_record(&self.c, reason)
            ent = direct.get(self.c.hook_id)
            if ent is None:
                r = slow(self.c.hook_id, HOOK_KIND_NAMES[kind], self.c.hook_addr, self.c.hook_size, self.c.hook_value)
            elif kind == HK_READ or kind == HK_WRITE or kind == HK_FETCH:
                r = ent[0](owner, access[0 if kind == HK_READ else (1 if kind == HK_WRITE else 2)],
                           self.c.hook_addr, self.c.hook_size,
                           <int64_t>self.c.hook_value, ent[1])
            else:
                r = ent[0](owner, self.c.hook_addr, self.c.hook_size, ent[1])
            if self.c.events & EV_STOP:
                emu_atomic_and32(&self.c.events, ~(<uint32_t>EV_STOP))
                return exit_record(&self.c, EXIT_STOPPED)
            if r is False and ent is None:
                return exit_record(&self.c, reason)

    def forget_resume(self):
        """Start the instruction at RIP afresh on the next run: its code,
        fetch and memory hooks fire again (a hook or debugger that sets RIP,
        even to the same address, asks for a new start, as in Unicorn)."""
        self.c.resume_rip = 0xffffffffffffffffULL
        self.c.resume_stage = 0
        self.c.mh_n = 0

    def clear_stop(self):
        """Forget a stop() request not yet acted on."""
        emu_atomic_and32(&self.c.events, ~(<uint32_t>EV_STOP))

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
        trap_io_in(&self.c, value)

    def complete_mmio_write(self):
        """The VMM performed the pending MMIO write; the instruction completes
        on the next run()."""
        self.c.mmio_pending = 1

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
            basic_blocks_only(self.c.m)
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

    def enable_block_coverage(self, bint on=True):
        """Record the set of blocks executed (start address, bytes), each at
        its first entry: drcov-style coverage (emu/drcov.py). Off keeps what
        was recorded."""
        if on:
            if self.c.bcov == NULL:
                self.c.bcov = <BlockCov*>calloc(1, sizeof(BlockCov))
                if self.c.bcov == NULL:
                    raise MemoryError()
            basic_blocks_only(self.c.m)
            self.c.hook_flags |= HF_BCOV
        else:
            self.c.hook_flags &= ~(<uint32_t>HF_BCOV)

    def block_coverage(self):
        """The blocks executed since block coverage was enabled (or cleared):
        a sorted list of (start address, size in bytes)."""
        cdef BlockCov* t = self.c.bcov
        cdef uint32_t i
        if t == NULL:
            return []
        return sorted((t.keys[i] - 1, t.sizes[i]) for i in range(t.cap) if t.keys[i])

    def clear_block_coverage(self):
        cdef BlockCov* t = self.c.bcov
        if t != NULL and t.cap:
            memset(t.keys, 0, t.cap * sizeof(uint64_t))
            t.n = 0
            t.lost = 0

    @property
    def block_coverage_lost(self):
        """Blocks executed but not recorded (the table could not grow)."""
        return self.c.bcov.lost if self.c.bcov != NULL else 0

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
        if self.t.reason:
            return tsc_at_count(&self.c, self.c.icount - 1)
        return read_tsc(&self.c)

    def set_timing(self, bint class_costs, bint cache=False):
        """Deceptive time (core/timing.pxi): charge the machine's instruction
        class costs, and the cache model's misses, to this vCPU's virtual TSC.
        While on, the vCPU runs in the interpreter."""
        if cache and (self.c.m == NULL or self.c.m.cache == NULL):
            raise ValueError("no cache model: PhysMachine.set_cache_model first")
        self.c.timing = (TIMING_COSTS if class_costs else 0) | (TIMING_CACHE if cache else 0)
        self.c.cache_last = <uint64_t>-1

    @property
    def timing_state(self):
        return {"class_costs": bool(self.c.timing & TIMING_COSTS), "cache": bool(self.c.timing & TIMING_CACHE)}

    @property
    def tsc_extra(self):
        """Cycles the class costs and cache misses added to the TSC."""
        return self.c.tsc_extra

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
        return self.t.reason != 0

    def inject_exception(self, int vector, error_code=None, cr2=None):
        """Make the guest take exception `vector`. After a trap exit it is
        taken at the trapped instruction (which then did not retire);
        otherwise at the current RIP. The next run() returns it as an
        EXCEPTION exit, the way the core reports any fault. error_code None:
        0 for the vectors that push one (8, 10-14, 17, 21), none otherwise."""
        trap_inject(&self.c, &self.t, vector, error_code, cr2)

    def skip_trap(self):
        """Retire the trapped instruction without its effect (a write the
        policy drops, a HLT, INT n, LLDT... the policy ignores). An INS/OUTS
        element goes on as if the device took or gave nothing."""
        trap_skip(&self.c, &self.t)

    def complete_trap(self, value=None):
        """Perform the effect of the instruction that trapped, as the core
        would have (the policy allowed it). value changes the result: the
        (eax, ebx, ecx, edx) of a CPUID, the value a RDTSC/RDTSCP, RDMSR or
        MOV from CR reads, or the value a WRMSR/MOV to CR/XSETBV/LMSW writes;
        for RDPMC the counter, for SYSCALL the value it returns. Returns True,
        or False when the instruction faults instead (#GP for an unknown MSR
        or a reserved bit, #PF for LGDT's operand...): the fault is then
        injected at the instruction."""
        return trap_complete(&self.c, &self.t, value)

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
        self._model_features()

    def _model_features(self):
        """Cpu.feat from the table (what the decoder lets through), bounded by
        what this core can run on this host; translated code decoded under
        other features is dropped."""
        cdef uint32_t out[4]
        cdef uint64_t f = 0
        cdef int i
        for i in range(N_FEAT_BITS):
            cpuid_lookup(&self.c, FEAT_BITS[i].leaf, FEAT_BITS[i].sub, out)
            if (out[FEAT_BITS[i].reg] >> FEAT_BITS[i].bit) & 1:
                f |= FEAT_BITS[i].feat
        f &= core_features()
        if f != self.c.feat:
            self.c.feat = f
            if self.c.m.n_blocks_translated:      # (nothing to drop before the first translation)
                cache_flush(self.c.m)
            new_epoch(&self.c)

    @property
    def features(self):
        """The FEAT_* bits the decoder accepts (from the CPUID table)."""
        return self.c.feat

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

    @property
    def counters(self):
        m = self.c.m
        d = {"instructions": self.c.icount,
                "block_cache_hits": self.c.n_jc_hits + self.c.n_chained,
                "block_cache_misses": self.c.n_jc_misses,
                "chained": self.c.n_chained,
                "vrip_cache_hits": self.c.n_jc_hits,
                "tlb_hits": self.c.n_tlb_hits,
                "tlb_misses": self.c.n_tlb_misses,
                "tlb_flushes": self.c.n_tlb_flushes,
                "pcid_kept": self.c.n_pcid_kept,            # CR3 loads that kept the new PCID's TLB entries
                "pcid_evictions": self.c.n_pcid_evictions,  # PCIDs that lost their TLB slot to another
                "exits": {EXIT_NAMES[i]: self.c.n_exits[i] for i in range(N_EXIT_REASONS) if self.c.n_exits[i]},
                "tier": TIER_NAMES[m.tier],
                "syscalls_in_core": m.sysfast.n_done if m.sysfast != NULL else 0,
                "jit": jit_counters(&self.c)}
        d.update(code_cache_stats(m))
        d["page_faults_in_core"] = m.n_dz_faults
        d["ras_hits"] = self.c.n_ras_hits          # returns the return-address stack predicted
        d["ras_misses"] = self.c.n_ras_misses      # returns elsewhere than the pushed address
        d["ibtc_hits"] = m.n_ibtc_hits             # indirect branches found in the target cache
        # block lookups answered without translating (chained, virtual-RIP
        # cache or hash hits) over all lookups
        looks = d["block_cache_hits"] + d["block_cache_misses"]
        d["code_cache_hit_rate"] = 1.0 - m.n_blocks_translated / looks if looks else 1.0
        return d
