# Trap-and-emulate: completing, skipping or refusing a sensitive instruction
# that exited to the VMM (the hypervisor's policy decided), and exceptions
# the VMM injects. The Vcpu methods of the same names (api_vcpu.pxi) call
# these. Two trap shapes (docs/architecture.md): most instructions exit after
# decoding but before any effect, with the result still to be written
# (complete_trap performs it); trap_before instructions (HLT, INT n, RDPMC,
# SYSCALL, LLDT, LTR) exit before acting and run once on resume.

cdef struct TrapState:
    int reason            # the open trap exit (0: none) awaiting complete/skip/inject
    bint early            # the open trap exit came before its instruction
    int inj_vector        # an exception the VMM injected (-1: none), taken by the next run()
    uint64_t inj_error
    bint inj_has_error


cdef int trap_take_injected(Cpu* c, TrapState* t) noexcept:
    """An exception inject_exception() left: the guest takes it before
    executing anything. The exit it makes (EXCEPTION, or SHUTDOWN when
    delivery through the IDT fails), or EXIT_NONE."""
    cdef int reason = EXIT_NONE
    if t.inj_vector < 0:
        return reason
    c.exc_vector = <uint32_t>t.inj_vector
    c.exc_error = t.inj_error
    c.exc_has_error = t.inj_has_error
    t.inj_vector = -1
    if c.deliver_via_idt:
        # system mode: through the guest's IDT, like any fault
        if deliver_exception(c):
            reason = c.exit_reason
            c.n_exits[reason] += 1
    else:
        c.exit_reason = EXIT_EXCEPTION
        c.exit_rip = c.rip
        c.n_exits[EXIT_EXCEPTION] += 1
        reason = EXIT_EXCEPTION
    return reason

cdef inline void trap_note(Cpu* c, TrapState* t, int reason) noexcept:
    """A trap exit stays open for complete_trap / skip_trap / inject_exception."""
    if reason == EXIT_CPUID or reason == EXIT_RDTSC or reason == EXIT_MSR or reason == EXIT_PRIV \
            or reason == EXIT_IO:
        t.reason = reason
        t.early = (reason == EXIT_PRIV and c.priv_before) or \
            (reason == EXIT_IO and c.io_string != 0)

cdef void trap_io_in(Cpu* c, uint64_t value) noexcept:
    """Answer the IN that exited: AL, AX or EAX (zero-extended into RAX)
    gets value, by the access size; for an INS element, the value stored
    at ES:rDI when the vCPU resumes."""
    if c.io_string:
        c.io_value = value & szmask(<uint32_t>c.io_size)
    elif c.io_size == 1:
        set8(c, 0, value)
    elif c.io_size == 2:
        rset(c, 0, 2, value)
    else:
        c.r[0] = value & 0xffffffffULL

cdef trap_inject(Cpu* c, TrapState* t, int vector, error_code, cr2):
    """Make the guest take exception `vector`. After a trap exit it is
    taken at the trapped instruction (which then did not retire);
    otherwise at the current RIP. The next run() returns it as an
    EXCEPTION exit, the way the core reports any fault. error_code None:
    0 for the vectors that push one (8, 10-14, 17, 21), none otherwise."""
    if not 0 <= vector < 256:
        raise ValueError("vector 0..255")
    if t.reason:
        c.rip = c.exit_rip
        if not t.early:
            c.icount -= 1
        c.io_string = 0         # a refused INS/OUTS element is not committed
        t.reason = 0
    t.inj_vector = vector
    if error_code is None:
        t.inj_has_error = vector in (8, 10, 11, 12, 13, 14, 17, 21)
        t.inj_error = 0
    else:
        t.inj_has_error = True
        t.inj_error = error_code
    if cr2 is not None:
        c.cr2 = cr2

cdef trap_skip(Cpu* c, TrapState* t):
    """Retire the trapped instruction without its effect (a write the
    policy drops, a HLT, INT n, LLDT... the policy ignores). An INS/OUTS
    element goes on as if the device took or gave nothing."""
    if not t.reason:
        raise RuntimeError("no trapped instruction to skip")
    if t.early and t.reason == EXIT_PRIV:
        c.rip = c.priv_next
        c.icount += 1
    t.reason = 0

cdef bint trap_fault(Cpu* c, TrapState* t, int vector, uint64_t err, int has_err) except -1:
    t.reason = 1            # still open: the fault is taken at the trapped instruction
    trap_inject(c, t, vector, err if has_err else None, None)
    return False

cdef bint trap_complete(Cpu* c, TrapState* t, value) except -1:
    """Perform the effect of the instruction that trapped, as the core
    would have (the policy allowed it). value changes the result: the
    (eax, ebx, ecx, edx) of a CPUID, the value a RDTSC/RDTSCP, RDMSR or
    MOV from CR reads, or the value a WRMSR/MOV to CR/XSETBV/LMSW writes.
    Returns True, or False when the instruction faults instead (#GP for
    an unknown MSR or a reserved bit, #PF for LGDT's operand...): the
    fault is then injected at the instruction."""
    cdef uint32_t out[4]
    cdef uint64_t v, lim, base, old
    cdef int k = 0
    cdef uint32_t op = c.priv_op
    cdef int reason = t.reason
    if not reason:
        raise RuntimeError("no trapped instruction to complete")
    if reason == EXIT_IO:
        if value is not None and not c.io_dir:
            trap_io_in(c, value)
        t.reason = 0
        return True
    if t.early:
        return trap_complete_early(c, t, value)
    t.reason = 0
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
                    return trap_fault(c, t, EXC_GP, 0, 1)
            else:
                v = <uint64_t>value
            c.r[0] = v & 0xffffffffULL
            c.r[2] = v >> 32
            return True
        v = c.priv_value if value is None else <uint64_t>value
        if msr_write(c, <uint32_t>c.msr_index, v, c.icount - 1) < 0:
            return trap_fault(c, t, EXC_GP, 0, 1)
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
            return trap_fault(c, t, c.exc_vector, c.exc_error, c.exc_has_error)
        if op == PRIV_LGDT:
            c.gdtr_limit = <uint32_t>lim
            c.gdtr_base = base
        else:
            c.idtr_limit = <uint32_t>lim
            c.idtr_base = base
    elif op == PRIV_SGDT or op == PRIV_SIDT:
        if mem_read_rmw(c, c.priv_value, 2, &old) or mem_read_rmw(c, c.priv_value + 2, 8, &old):
            return trap_fault(c, t, c.exc_vector, c.exc_error, c.exc_has_error)
        lim = c.gdtr_limit if op == PRIV_SGDT else c.idtr_limit
        base = c.gdtr_base if op == PRIV_SGDT else c.idtr_base
        if mem_write(c, c.priv_value, 2, lim) or mem_write(c, c.priv_value + 2, 8, base):
            return trap_fault(c, t, c.exc_vector, c.exc_error, c.exc_has_error)
    elif op == PRIV_XSETBV:
        v = c.priv_value if value is None else <uint64_t>value
        if <uint32_t>c.r[1] != 0 or not xcr0_valid(c, v):
            k = -1
        else:
            c.xcr0 = v
    if k < 0:
        return trap_fault(c, t, EXC_GP, 0, 1)
    return True

cdef bint trap_complete_early(Cpu* c, TrapState* t, value) except -1:
    """complete_trap() of an instruction that trapped before acting (HLT,
    INT n, RDPMC, SYSCALL, LLDT, LTR): it runs when the vCPU resumes
    (once, without trapping again); a value instead makes RDPMC read it
    (EDX:EAX) or SYSCALL return it in RAX (RCX and R11 as after SYSRET),
    and the instruction retires."""
    cdef uint32_t op = c.priv_op
    t.reason = 0
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
        t.reason = EXIT_PRIV
        raise ValueError("%s takes no result value (allow, deny or ignore it)" % PRIV_NAMES[op])
    c.rip = c.priv_next
    c.icount += 1
    return True
