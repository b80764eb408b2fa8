# The native-code tier at run time: what compiled code calls (the TLB slow
# path, interpreter handlers for what it does not cover) and how the run
# loop (core/run.pxi) enters it, tiers blocks up and chains them.

cdef extern from *:
    """
    #define emu_fence() __atomic_thread_fence(__ATOMIC_SEQ_CST)
    """
    void emu_fence() nogil

cdef inline uint32_t flags_to_fsave(uint64_t f) noexcept nogil:
    """RFLAGS status bits -> the LAHF/SETO format compiled code keeps."""
    return (<uint32_t>(f & 0xd5) << 8) | <uint32_t>((f >> 11) & 1) | 0x200

cdef inline uint64_t fsave_to_flags(uint32_t s) noexcept nogil:
    return ((s >> 8) & 0xd5) | (<uint64_t>(s & 1) << 11)

cdef inline void jit_flags_in(Cpu* c) noexcept nogil:
    """Before compiled code runs: the status flags in its format."""
    c.jit_fsave = flags_to_fsave(flags_arith(c))

cdef inline void jit_flags_out(Cpu* c) noexcept nogil:
    """After compiled code: back to the interpreter's representation."""
    if c.lf_op == LF_JIT:
        c.lf_op = LF_NONE
        c.rflags = (c.rflags & ~(<uint64_t>F_ARITH)) | fsave_to_flags(c.jit_fsave)

cdef int jit_mem_fill(Cpu* c, uint64_t va, uint32_t szacc) noexcept nogil:
    """The TLB missed for a plain access of compiled code: 0 when the entry
    now holds the page for this access (compiled code probes again), -2
    when the instruction must run in the interpreter instead (a fault,
    MMIO, a page-crossing access, a hooked or a code page)."""
    cdef uint32_t sz = szacc & 0xff
    cdef int acc = <int>(szacc >> 8)
    cdef TlbEntry* e
    cdef uint64_t pa, tag
    if (va & 0xfff) + sz > 0x1000 or not is_canonical(va):
        return -2
    if tlb_fill(c, va, acc, &e, &pa) != 0:
        return -2
    tag = (va & ~(<uint64_t>0xfff)) | c.tlbm
    if acc == ACC_W:
        return 0 if e.tag_w == tag else -2
    return 0 if e.tag_r == tag else -2

cdef int jit_fallback(Cpu* c, const Uop* u, uop_fn fn, int32_t bi) noexcept nogil:
    """Compiled code runs an instruction it does not cover through the
    interpreter's handler. R_NEXT lets it go on; anything else ends the
    compiled run at this uop. After a handler that changed what compiled
    code assumes (the address space, TF, the block's own code), the run
    ends after the instruction."""
    cdef uint32_t epoch = c.jc_epoch
    cdef int r
    cdef Mach* m = c.m
    cdef uint32_t fp = c.jit_fp, mxcsr
    # the interpreter's view: flags in its format, icount at the block's start
    c.lf_op = LF_NONE
    c.rflags = (c.rflags & ~(<uint64_t>F_ARITH)) | fsave_to_flags(c.jit_fsave)
    c.icount = c.jit_limit - c.jit_left - m.blocks[bi].ninsn
    jit_fp_sync(c)
    c.jit_fp = fp                 # (compiled SSE may go on after this)
    mxcsr = c.mxcsr
    r = fn(c, u)
    ibl_refresh(c)                # (the handler may have dropped compiled code)
    if r == R_NEXT:
        # what compiled code assumes changed: the address space, TF, the
        # block's own code, the MXCSR its SSE checked at entry
        if not m.blocks[bi].valid or c.jc_epoch != epoch or c.rflags & F_TF or c.mxcsr != mxcsr:
            c.rip = u.rip_next
            r = R_BRANCH
        elif c.events:
            # an event for the block boundary: no further block is entered
            c.jit_limit -= c.jit_left
            c.jit_left = 0
    c.jit_fsave = flags_to_fsave(c.rflags if c.lf_op == LF_NONE else flags_arith(c))
    return r

cdef inline void ibl_refresh(Cpu* c) noexcept nogil:
    """A new stamp for the indirect-branch table when what its entries
    assume changed: the address space (jc_epoch: addresses map the same way
    within one, core/mmu.pxi), the mode blocks are keyed by, or the code
    cache (a block's code dropped). Entries of older stamps never match."""
    cdef uint64_t gen = c.m.jit.gen
    if c.ibl_stamp == 0 or c.ibl_epoch != c.jc_epoch or c.ibl_mode != c.mode or c.ibl_gen != gen:
        c.ibl_stamp += 1
        if c.ibl_stamp == 0:
            c.ibl_stamp = 1
            memset(c.ibl, 0, sizeof(c.ibl))      # (after 2^32 stamps)
        c.ibl_epoch = c.jc_epoch
        c.ibl_mode = c.mode
        c.ibl_gen = gen

cdef inline void ibl_learn(Cpu* c, Block* b) noexcept nogil:
    """Compiled code left through an indirect branch for b, which is
    compiled: the next time, it jumps there itself (jit_emit.pxi e_exit_rcx)."""
    cdef JitBlock* jb = &c.m.jit.blocks[b - c.m.blocks]
    cdef IblEntry* e = &c.ibl[((b.vrip >> 9) ^ b.vrip) & (IBL_SIZE - 1)]
    if jb.code == 0 or b.page2 != NO_PAGE or b.mode != c.mode:
        return                    # (a page-straddling block is rechecked at every entry)
    ibl_refresh(c)
    e.rip = b.vrip
    e.code = jb.code
    e.stamp = c.ibl_stamp

cdef inline uint8_t jit_variant(Cpu* c) noexcept nogil:
    """The variant of compiled code this vCPU runs (JitBlock.variant)."""
    return <uint8_t>((JV_CACHE if c.timing & TIMING_CACHE else 0) | (JV_COV if c.hook_flags & HF_COV else 0))

cdef inline int jit_can_enter(Cpu* c, Block* b, uint64_t remaining) noexcept nogil:
    cdef JitBlock* jb = &c.m.jit.blocks[b - c.m.blocks]
    return (b.ninsn <= remaining and not c.jit_interp and not (c.rflags & F_TF)
            and c.mh_n == 0 and (jb.code == 0 or jb.variant == jit_variant(c)))

cdef int jit_tier_up(Cpu* c, Block* b) noexcept nogil:
    """Count an interpreted execution of b; compile it once it is hot.
    1 when b has compiled code now."""
    cdef Mach* m = c.m
    cdef int32_t bi = <int32_t>(b - m.blocks)
    cdef JitBlock* jb = &m.jit.blocks[bi]
    if jb.code:
        return 1
    if jb.failed:
        return 0
    b.exec_count += 1
    if b.exec_count <= m.jit_threshold:
        return 0
    return jit_compile(c, bi) == 0

cdef int jit_run(Cpu* c, Block* b, uint64_t end, Block** b_out, const Uop** u_out) noexcept nogil:
    """Run compiled code from block b (its dispatcher entry) until it
    leaves; the block and uop it left at, and the result as the interpreter
    loop reports it (or JIT_BAIL, JIT_BAIL_ENTRY)."""
    cdef Mach* m = c.m
    cdef Jit* j = m.jit
    cdef int32_t bi = <int32_t>(b - m.blocks)
    cdef uint64_t start = c.icount
    cdef emu_jit_entry_fn enter = <emu_jit_entry_fn>(j.base + j.enter_off)
    cdef int r
    cdef Block* xb
    if c.events or c.hook_flags & ~(<uint32_t>(HF_COV if j.blocks[bi].variant & JV_COV else 0)):
        # this block only: events and block hooks are handled between blocks
        # (compiled code updates the edge map itself, e_cov_edge)
        c.jit_limit = c.icount + b.ninsn
    else:
        c.jit_limit = end
        emu_fence()
        if c.events:
            c.jit_limit = c.icount + b.ninsn
    c.jit_left = c.jit_limit - c.icount - b.ninsn
    c.jit_site = 0
    c.jit_epoch = c.jc_epoch
    ibl_refresh(c)
    jit_flags_in(c)
    c.n_jit_enters += 1
    r = enter(<void*>c, <void*>(j.base + j.blocks[bi].dispatch))
    jit_flags_out(c)
    jit_fp_sync(c)
    xb = &m.blocks[c.jit_blk]
    b_out[0] = xb
    u_out[0] = &m.uops[xb.uop_start + c.jit_k]
    # instructions retired in compiled code: the blocks before xb, and xb's own
    c.n_jit_insns += c.icount - start
    if r == R_BRANCH or r == R_EXIT:
        c.n_jit_insns += u_out[0].ninsn
    elif r == JIT_BAIL or r == R_EXC or r == R_EXIT_BEFORE or r == R_RESTART:
        c.n_jit_insns += u_out[0].ninsn - (1 if u_out[0].len else 0)
    if r == JIT_BAIL:
        c.n_jit_bails += 1
    return r

cdef void jit_chain(Cpu* c, int32_t src, uint32_t site, Block* nb) noexcept nogil:
    """The compiled block src left through the direct exit at site for nb's
    RIP: link them when nb is compiled and on the same virtual page."""
    cdef Mach* m = c.m
    cdef int32_t dst = <int32_t>(nb - m.blocks)
    if m.jit.blocks[dst].code == 0 or not m.blocks[src].valid or m.jit.blocks[src].code == 0:
        return
    if m.jit.blocks[dst].variant != m.jit.blocks[src].variant:
        return
    if (m.blocks[src].vrip ^ nb.vrip) >> 12 or m.blocks[src].mode != nb.mode or nb.page2 != NO_PAGE:
        return                    # (a page-straddling block is rechecked at every entry)
    jit_link(m, src, site, dst)


cdef dict jit_counters(Cpu* c):
    """The native tier's figures for Vcpu.counters: its code cache (shared by
    the machine's vCPUs) and this vCPU's share of instructions retired."""
    cdef Jit* j = c.m.jit
    out = {"instructions_native": c.n_jit_insns,
           "instructions_interpreted": c.icount - c.n_jit_insns if c.icount >= c.n_jit_insns else 0,
           "entries": c.n_jit_enters, "bails": c.n_jit_bails}
    if j != NULL:
        out.update({"blocks_compiled": j.n_compiled, "tier_ups": j.n_compiled,
                    "code_bytes": j.code_bytes, "code_cache_size": j.size,
                    "compile_failures": j.n_failed, "invalidations": j.n_invalidated,
                    "evictions": j.n_evicted, "links": j.n_linked, "flushes": j.n_flushes})
    return out
