# The vCPU loop: find a block, dispatch over its uops, account, repeat until
# something needs the VMM. This is KVM_RUN for emu.

# c.events bits (core/system.pxi)
cdef enum:
    EV_STOP = 1
    EV_IRQ = 2
    EV_TRAP = 4           # RFLAGS.TF was set when an instruction retired: #DB before the next

# what kind of event is delivered through the IDT (core/system.pxi)
cdef enum:
    EVK_HW = 0            # exception or external interrupt: EXT=1, no gate DPL check
    EVK_SOFT = 1          # INT n, INT3: gate DPL checked, EXT=0
    EVK_ICEBP = 2         # INT1: no DPL check, EXT=1

cdef inline int deliver_exception(Cpu* c) noexcept nogil:
    """A fault at c.rip. In system mode it goes through the guest's IDT (0:
    a handler runs; 1: triple fault, EXIT_SHUTDOWN); otherwise it is handed to
    the VMM as an EXCEPTION exit (the user-mode personality decides what it
    means), unless it is a page fault the core resolves (core/demand.pxi)."""
    if c.exc_vector == EXC_PF and c.m.n_dz and dz_fault(c):
        return 0
    if c.deliver_via_idt:
        # an exception storm (handlers that fault before retiring anything)
        # would keep run() from returning: the VMM gets it back as EXIT_STORM
        if c.icount != c.storm_icount:
            c.storm_icount = c.icount
            c.storm_n = 0
        c.storm_n += 1
        if c.storm_n > STORM_LIMIT:
            c.storm_n = 0
            c.exit_reason = EXIT_STORM
            c.exit_rip = c.rip
            return 1
        return deliver_event(c, c.exc_vector, c.exc_error, c.exc_has_error, EVK_HW, c.rip)
    c.exit_reason = EXIT_EXCEPTION
    c.exit_rip = c.rip
    return 1

cdef int cpu_events(Cpu* c, uint64_t end) noexcept nogil:
    """The block-boundary slow path, taken when c.events is nonzero: a stop
    request (1: exit), or a pending interrupt (2: one was delivered, c.rip
    changed; 1: delivering it shut the vCPU down; 0: not deliverable now)."""
    cdef int r
    if c.events & EV_TRAP:
        # single-step trap (SDM 17.3.1.4): a #DB after the instruction, RIP at the next
        emu_atomic_and32(&c.events, ~(<uint32_t>EV_TRAP))
        c.dr[6] |= 0x4000                 # DR6.BS
        c.exc_vector = 1
        c.exc_error = 0
        c.exc_has_error = 0
        c.exc_soft = 0
        if deliver_exception(c):
            return 1
        return 2
    if c.events & EV_STOP:
        emu_atomic_and32(&c.events, ~(<uint32_t>EV_STOP))
        c.exit_reason = EXIT_STOPPED
        return 1
    if c.icount < end:
        r = irq_service(c)
        if r < 0:
            return 1
        if r > 0:
            return 2
    return 0

ctypedef int (*events_fn)(Cpu* c, uint64_t end) noexcept nogil
# called through a pointer so the compiler keeps the slow path out of the loop
cdef events_fn cpu_events_slow = cpu_events

cdef int cpu_run(Cpu* c, uint64_t budget) noexcept nogil:
    cdef uint64_t end = c.icount + budget
    cdef uint64_t remaining, rip
    cdef Block* b
    cdef Block* prev = NULL
    cdef Block* nb
    cdef const Uop* u
    cdef int r, slot, tf
    cdef uint32_t lim, epoch
    cdef uint64_t retired
    cdef Block* ras_hint = NULL   # the block a RET returns to, as predicted
    cdef int32_t ras_caller = -1  # the call block that learns it, after a lookup
    cdef uint32_t ras_epoch = 0
    cdef Mach* m = c.m
    cdef int32_t chain_src = -1   # a compiled block's direct exit, to link (core/jit_runtime.pxi)
    cdef uint32_t chain_site = 0
    cdef uint64_t chain_rip = 0
    cdef uint64_t ibl_rip = NO_PAGE  # a compiled block's indirect exit, to learn (jit_runtime.pxi)
    c.exit_reason = EXIT_NONE
    if c.halted:
        # HLT: stay halted until an interrupt can be taken
        if irq_deliverable(c) < 0 or not c.deliver_via_idt:
            c.exit_reason = EXIT_HLT
            c.exit_rip = c.rip
            c.n_exits[EXIT_HLT] += 1
            return EXIT_HLT
        c.halted = 0
    m.running = c
    while True:
        if c.events:
            # one test per block: a stop request or a pending interrupt
            r = cpu_events_slow(c, end)
            if r:
                if r == 1:
                    break
                prev = NULL
        if c.icount >= end:
            c.exit_reason = EXIT_BUDGET
            break
        rip = c.rip
        b = NULL
        if ras_hint != NULL:
            # a return the return-address stack predicted (core/predict.pxi),
            # checked against the real target
            if ras_hint.valid and ras_hint.vrip == rip and ras_hint.mode == c.mode and ras_epoch == c.jc_epoch \
                    and ras_hint.page2 == NO_PAGE:
                b = ras_hint
                c.n_ras_hits += 1
                ras_caller = -1
            ras_hint = NULL
        if b == NULL:
            if prev != NULL:
                # the block's successor cache: direct successors, and per-site
                # inline caching of indirect targets; links carry the epoch
                # (within one, addresses map the same way, on any page)
                if prev.chain_rip[0] == rip and prev.chain_epoch[0] == c.jc_epoch:
                    b = &m.blocks[prev.chain_blk[0]]
                elif prev.chain_rip[1] == rip and prev.chain_epoch[1] == c.jc_epoch:
                    b = &m.blocks[prev.chain_blk[1]]
                if b != NULL:
                    if b.valid and b.vrip == rip and b.mode == c.mode and b.page2 == NO_PAGE:
                        c.n_chained += 1    # (a page-straddling block is rechecked by find_block)
                    else:
                        b = NULL
                if b == NULL and prev.term & TERM_IND:
                    b = ibtc_find(c, prev, rip)      # more targets than the slots hold
                    if b != NULL:
                        m.n_ibtc_hits += 1
                if b == NULL:
                    retired = m.n_retired
                    b = find_block(c, rip)
                    # (prev may have been evicted to make room: then no chaining)
                    if b != NULL and m.n_retired == retired:
                        # refill the slot that held this target under an older
                        # epoch, else a free or stale one, else either
                        if prev.chain_rip[0] == rip:
                            slot = 0
                        elif prev.chain_rip[1] == rip:
                            slot = 1
                        elif prev.chain_rip[0] == NO_PAGE or prev.chain_epoch[0] != c.jc_epoch:
                            slot = 0
                        elif prev.chain_rip[1] == NO_PAGE or prev.chain_epoch[1] != c.jc_epoch:
                            slot = 1
                        else:
                            slot = <int>(rip & 1)
                        chain_link(m, <int32_t>(prev - m.blocks), slot, <int32_t>(b - m.blocks), rip, c.jc_epoch)
                        if prev.term & TERM_IND:
                            ibtc_learn(c, prev, rip, b)
            else:
                b = find_block(c, rip)
            if ras_caller >= 0:
                if b != NULL:
                    ras_learn(c, ras_caller, b)
                ras_caller = -1
        if b == NULL:
            prev = NULL
            c.nc_fault = 0
            if deliver_exception(c):
                break
            continue
        if c.hook_flags:          # block hook / coverage (core/hooks.pxi)
            if hook_block_entry(c, b):
                break
        epoch = c.jc_epoch
        remaining = end - c.icount
        tf = (c.rflags & 0x100) != 0 and not c.deliver_via_idt   # (user mode; system mode: to do)
        if tf:
            remaining = 1             # TF: one instruction, then the trap (EV_TRAP)
        if m.jit != NULL and jit_can_enter(c, b, remaining) and jit_tier_up(c, b):
            # the native-code tier (core/jit_*.pxi): it leaves at some block
            # and uop with the result the interpreter loop would have had there
            if chain_src >= 0 and b.vrip == chain_rip:
                jit_chain(c, chain_src, chain_site, b)
            chain_src = -1
            if ibl_rip == b.vrip:
                ibl_learn(c, b)
            ibl_rip = NO_PAGE
            r = jit_run(c, b, end, &b, &u)
            if r == R_BRANCH and c.jit_site:
                chain_src = <int32_t>(b - m.blocks)
                chain_site = c.jit_site
                chain_rip = c.rip
            elif r == R_BRANCH:
                ibl_rip = c.rip       # (an indirect branch, or a jump to another page)
            elif r == JIT_BAIL_ENTRY:
                prev = NULL
                continue
            elif r == JIT_BAIL:
                # the instruction at u runs in the interpreter
                c.icount += u.ninsn - 1
                c.tsc_extra += block_cycles_before(c, u)
                c.rip = u.rip
                mark_resume(c, c.rip, c.icount, 1)
                c.jit_interp = 1
                prev = NULL
                continue
        else:
            c.jit_interp = 0
            chain_src = -1
            ibl_rip = NO_PAGE
            c.cur_block = b
            u = &m.uops[b.uop_start]
            if b.ninsn <= remaining:
                while True:
                    r = u.fn(c, u)
                    if r != R_NEXT:
                        break
                    u += 1
            else:
                # budget ends inside this block: stop after exactly `remaining`
                lim = <uint32_t>remaining
                while True:
                    r = u.fn(c, u)
                    if r != R_NEXT:
                        break
                    if u.ninsn >= lim:        # (not i: hook uops retire nothing)
                        c.icount += u.ninsn
                        c.tsc_extra += u.cyc
                        c.rip = u.rip_next
                        mark_resume(c, c.rip, c.icount, 1)    # resumes inside this block
                        r = -1
                        break
                    u += 1
            c.cur_block = NULL
        if tf and r != R_EXC and r != R_EXIT_BEFORE and r != R_RESTART:
            emu_atomic_or32(&c.events, EV_TRAP)
        if r == R_BRANCH:
            c.icount += u.ninsn
            c.tsc_extra += u.cyc
            if b.term & (TERM_CALL | TERM_RET) and u.ninsn == b.ninsn:   # the return-address stack (not a side exit)
                ras_hint = ras_update(c, b, u, &ras_caller, &ras_epoch)
            # a block that changed address translation (MOV CR3, INVLPG...)
            # must not chain: its successor is looked up afresh
            prev = b if b.valid and c.jc_epoch == epoch else NULL
            continue
        prev = NULL
        if r == -1:
            continue
        # (the resume marks keep a resume inside a block from counting as a
        # block entry for block hooks and coverage, core/hooks.pxi)
        if r == R_EXIT:
            c.icount += u.ninsn
            c.tsc_extra += u.cyc
            if u.ninsn < b.ninsn:
                mark_resume(c, c.rip, c.icount, 1)
            break
        if r == R_RESTART:
            c.icount += u.ninsn - (1 if u.len else 0)
            c.tsc_extra += block_cycles_before(c, u) if u.len else u.cyc
            c.rip = u.rip
            mark_resume(c, c.rip, c.icount, 1)
            continue
        if r == R_EXIT_BEFORE:
            c.icount += u.ninsn - 1
            c.tsc_extra += block_cycles_before(c, u)
            c.rip = u.rip
            c.exit_rip = u.rip
            mark_resume(c, c.rip, c.icount, 1)
            break
        # R_EXC: the instruction did not retire
        c.icount += u.ninsn - 1
        c.tsc_extra += block_cycles_before(c, u)
        c.rip = u.rip
        if c.nc_fault:
            stack_fault_fixup(c, u)
        if c.exit_reason == EXIT_MMIO or c.exit_reason == EXIT_HOOK:
            c.exit_rip = u.rip
            if c.exit_reason == EXIT_MMIO:
                c.mmio_key_rip = u.rip
                c.mmio_key_icount = c.icount
            mark_resume(c, c.rip, c.icount, 3 if c.exit_reason == EXIT_HOOK else 1)
            break
        mark_resume(c, c.rip, c.icount, 1)
        if deliver_exception(c):
            break
    m.running = NULL
    c.n_exits[c.exit_reason] += 1
    return c.exit_reason

cdef int vcpu_run(Cpu* c, uint64_t budget) noexcept nogil:
    """One vCPU run. SSE operations leave the guest's MXCSR in the host
    register (ops_sse_int.pxi); the host's is back when the run returns."""
    cdef uint32_t host_csr = emu_csr_save()
    cdef int r
    c.csr_loaded = host_csr
    r = vcpu_run_inner(c, budget)
    if c.csr_loaded != host_csr:
        emu_csr_load(host_csr)
    return r

cdef int vcpu_run_inner(Cpu* c, uint64_t budget) noexcept nogil:
    """cpu_run, except after a memory-hook exit: the interrupted instruction
    is first stepped alone (its reported accesses complete without exiting
    again), then the log is cleared and the run goes on."""
    cdef int r
    cdef uint32_t ios = c.io_string
    if ios and budget:
        # an INS/OUTS element the VMM handled is committed first (ops_priv.pxi)
        c.exit_reason = EXIT_NONE
        if io_string_commit(c):
            if c.exit_reason == EXIT_HOOK:
                c.io_string = ios    # a write hook saw the INS store: commit it on resume
                c.exit_rip = c.rip
                c.n_exits[EXIT_HOOK] += 1
                return EXIT_HOOK
            if deliver_exception(c):
                c.n_exits[c.exit_reason] += 1
                return c.exit_reason
    if c.mmio_pending or c.mmio_n:
        r = mmio_resume(c, budget)
        if r >= 0:
            return r
    if c.mh_n == 0 or budget == 0:
        return cpu_run(c, budget)
    if not resumed_past(c, c.rip, c.icount, 3):
        c.mh_n = 0                # the VMM moved on: the log is stale
        return cpu_run(c, budget)
    r = cpu_run(c, 1)
    if r == EXIT_HOOK and (c.hook_kind == HK_READ or c.hook_kind == HK_WRITE):
        return r                  # another access of the same instruction
    c.mh_n = 0
    if r != EXIT_BUDGET or budget == 1:
        return r
    c.n_exits[EXIT_BUDGET] -= 1   # the internal step is not an exit
    return cpu_run(c, budget - 1)

cdef int vcpu_enter(Cpu* c, TrapState* t, uint64_t budget) noexcept:
    """The run entry (KVM_RUN): an exception the VMM injected is taken first;
    otherwise guest code runs with the GIL released until an exit. A trap
    exit stays open for completion (traps.pxi)."""
    cdef int reason
    c.exc_soft = 0
    t.reason = 0
    if c.icount + budget < c.icount:
        budget = 0xffffffffffffffffULL - c.icount
    reason = trap_take_injected(c, t)
    if reason == EXIT_NONE:
        with nogil:
            reason = vcpu_run(c, budget)
        trap_note(c, t, reason)
    return reason

cdef int vcpu_enter_held(Cpu* c, TrapState* t, uint64_t budget) noexcept:
    """vcpu_enter keeping the GIL, for a short budget: between two Python hook
    calls, releasing and retaking the GIL is a measurable part of the cost of
    a call (Vcpu.run_calls; a long run goes back to vcpu_enter)."""
    cdef int reason
    c.exc_soft = 0
    t.reason = 0
    if c.icount + budget < c.icount:
        budget = 0xffffffffffffffffULL - c.icount
    reason = trap_take_injected(c, t)
    if reason == EXIT_NONE:
        reason = vcpu_run(c, budget)
        trap_note(c, t, reason)
    return reason
