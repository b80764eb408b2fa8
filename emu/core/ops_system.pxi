# Instructions that reach the VMM or the virtual platform: HLT, SYSCALL,
# INT3, UD2, CPUID, RDTSC/RDTSCP, RDRAND/RDSEED.

cdef inline int exit_after(Cpu* c, const Uop* u, uint32_t reason) noexcept nogil:
    c.exit_reason = reason
    c.exit_rip = u.rip
    c.rip = u.rip_next
    return R_EXIT

# which instruction a trapped PRIV exit was (c.priv_op; names in PRIV_NAMES,
# ops_priv.pxi): the instructions that trap before they act
cdef enum:
    PRIV_HLT = 15
    PRIV_INT = 16
    PRIV_RDPMC = 17
    PRIV_SYSCALL = 18
    PRIV_LLDT = 19
    PRIV_LTR = 20

cdef inline int trap_before(Cpu* c, const Uop* u, uint32_t pop, uint64_t value) noexcept nogil:
    """A trap policy sees the instruction before it acts (HLT, INT n, RDPMC,
    SYSCALL, LLDT, LTR: their effects cannot be replayed from a record the
    way a CR or MSR write can). 1: exit (the handler returns R_EXIT_BEFORE;
    nothing changed, nothing retired); 0: the VMM let this execution through
    (Vcpu.complete_trap set the one-shot pass for it)."""
    cdef uint64_t icount = c.icount + u.ninsn - 1
    if c.trap_pass_rip == u.rip and c.trap_pass_icount == icount:
        c.trap_pass_rip = NO_PASS
        return 0
    c.priv_op = pop
    c.priv_cr = 0
    c.priv_gpr = NOREG
    c.priv_value = value
    c.priv_before = 1
    c.priv_next = u.rip_next
    c.exit_reason = EXIT_PRIV
    return 1

cdef int op_hlt(Cpu* c, const Uop* u) noexcept nogil:
    """In system mode HLT retires at once when an interrupt can be taken
    (it is delivered at the block boundary, returning after the HLT);
    otherwise the vCPU halts: EXIT_HLT, and run() keeps returning EXIT_HLT
    until an interrupt is deliverable (core/system.pxi)."""
    if c.cpl != 0:
        return raise_gp0(c)
    if c.trap_mask & TRAP_HLT and trap_before(c, u, PRIV_HLT, 0):
        return R_EXIT_BEFORE
    if c.deliver_via_idt:
        if irq_deliverable(c) >= 0:
            c.rip = u.rip_next
            return R_BRANCH
        c.halted = 1
    return exit_after(c, u, EXIT_HLT)

cdef int op_syscall(Cpu* c, const Uop* u) noexcept nogil:
    """In user mode the personality is the kernel: SYSCALL exits to it, with
    RCX and R11 set as the instruction does (SDM SYSCALL). A trap policy on
    SYSCALL (TRAP_SYSCALL_INSN) sees it first, after the #UD check."""
    if c.trap_mask & TRAP_SYSCALL_INSN and (c.trap_mask & TRAP_SYSCALL or c.efer & EFER_SCE):
        if trap_before(c, u, PRIV_SYSCALL, c.r[0]):
            return R_EXIT_BEFORE
    if c.trap_mask & TRAP_SYSCALL:
        c.r[1] = u.rip_next
        c.r[11] = get_rflags(c) & ~(<uint64_t>0x10000)
        if c.m.sysfast != NULL and sysfast_try(c):
            c.rip = u.rip_next        # answered in the core (core/syscall_fast.pxi)
            return R_BRANCH
        return exit_after(c, u, EXIT_SYSCALL)
    if not (c.efer & EFER_SCE):
        return raise_ud(c)
    return syscall_enter(c, u)

cdef int op_int3(Cpu* c, const Uop* u) noexcept nogil:
    """#BP is a trap: RIP points after the INT3. In system mode it goes
    through the IDT like INT 3 (gate DPL checked)."""
    if c.deliver_via_idt:
        return soft_interrupt(c, u, EXC_BP, EVK_SOFT)
    c.exc_vector = EXC_BP
    c.exc_error = 0
    c.exc_has_error = 0
    return exit_after(c, u, EXIT_EXCEPTION)

cdef int op_ud2(Cpu* c, const Uop* u) noexcept nogil:
    return raise_ud(c)

cdef enum:
    CR4_OSXSAVE_BIT = 0x40000

cdef void cpuid_lookup(Cpu* c, uint32_t leaf, uint32_t subleaf, uint32_t* out) noexcept nogil:
    cdef uint32_t i
    cdef CpuidEntry* e
    out[0] = 0
    out[1] = 0
    out[2] = 0
    out[3] = 0
    for i in range(c.n_cpuid):
        e = &c.cpuid[i]
        if e.leaf == leaf and (e.subleaf == subleaf or not (e.flags & 1)):
            out[0] = e.eax
            out[1] = e.ebx
            out[2] = e.ecx
            out[3] = e.edx
            break
    if leaf == 0xD and subleaf <= 1 and out[0] | out[1]:
        # EBX: the XSAVE area size for the components enabled now (sub-leaf
        # 0: XCR0, standard form; 1: XCR0 | IA32_XSS, compacted form)
        out[1] = xsave_size(c.xcr0 | (c.xss if subleaf == 1 else 0), subleaf == 1)
    if leaf == 1:
        # OSXSAVE mirrors CR4.OSXSAVE (SDM Vol. 2A, CPUID leaf 1 ECX bit 27)
        if c.cr4 & CR4_OSXSAVE_BIT and out[2] & (1 << 26):
            out[2] |= 1 << 27
        else:
            out[2] &= ~(<uint32_t>1 << 27)

cdef int op_cpuid(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint32_t out[4]
    if c.trap_mask & TRAP_CPUID:
        return exit_after(c, u, EXIT_CPUID)
    cpuid_lookup(c, <uint32_t>c.r[0], <uint32_t>c.r[1], out)
    c.r[0] = out[0]
    c.r[3] = out[1]
    c.r[1] = out[2]
    c.r[2] = out[3]
    return R_NEXT

cdef extern from "time.h" nogil:
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec* ts)
    int CLOCK_MONOTONIC

# which instruction a trapped RDTSC exit was (c.priv_op; names in PRIV_NAMES)
cdef enum:
    PRIV_RDTSC = 13
    PRIV_RDTSCP = 14

cdef inline uint64_t host_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000ULL + <uint64_t>ts.tv_nsec

cdef inline uint64_t tsc_host_part(Cpu* c) noexcept nogil:
    """TSC_HOST: cycles since tsc_host_base at the configured frequency."""
    return <uint64_t>((<emu_u128>(host_ns() - c.tsc_host_base) * c.tsc_host_mult) >> 32)

cdef inline uint64_t tsc_at_count(Cpu* c, uint64_t retired) noexcept nogil:
    """The TSC after `retired` instructions: virtual (deterministic: offset +
    retired x cycles per instruction) or, with TSC_HOST, the host's monotonic
    clock scaled to the guest frequency plus the offset."""
    if c.tsc_mode == TSC_HOST:
        return c.tsc_offset + tsc_host_part(c)
    return c.tsc_offset + c.tsc_extra + <uint64_t>((<emu_u128>retired * c.tsc_per_insn) >> 16)

cdef inline uint64_t read_tsc(Cpu* c) noexcept nogil:
    """Virtual time: TSC = offset + instructions retired x cycles per instruction,
    so the value is deterministic and exits cost the guest no visible time."""
    return tsc_at_count(c, c.icount)

cdef inline uint64_t read_tsc_at(Cpu* c, const Uop* u) noexcept nogil:
    """The TSC as an instruction inside a block sees it: c.icount is only
    brought up to date at block boundaries, u.ninsn - 1 instructions of this
    block have retired before u."""
    if c.timing and c.tsc_mode != TSC_HOST:
        return tsc_at_count(c, c.icount + u.ninsn - 1) + block_cycles_before(c, u)
    return tsc_at_count(c, c.icount + u.ninsn - 1)

cdef int op_rdtsc(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t t
    if c.cr4 & 4 and c.cpl != 0:      # CR4.TSD
        return raise_gp0(c)
    if c.trap_mask & TRAP_RDTSC:
        c.priv_op = PRIV_RDTSC if u.opc == 0x31 else PRIV_RDTSCP
        return exit_after(c, u, EXIT_RDTSC)
    t = read_tsc_at(c, u)
    c.r[0] = t & 0xffffffffULL
    c.r[2] = t >> 32
    return R_NEXT

cdef int op_rdtscp(Cpu* c, const Uop* u) noexcept nogil:
    cdef int k = op_rdtsc(c, u)
    if k == R_NEXT:
        c.r[1] = c.tsc_aux & 0xffffffffULL
    return k

cdef inline uint64_t rng_next(Cpu* c) noexcept nogil:
    """splitmix64: RDRAND/RDSEED are seeded so runs are reproducible."""
    cdef uint64_t z
    c.rng_state += 0x9e3779b97f4a7c15ULL
    z = c.rng_state
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL
    return z ^ (z >> 31)

cdef int op_rdrand(Cpu* c, const Uop* u) noexcept nogil:
    """0F C7 /6 (RDRAND) and /7 (RDSEED): CF=1, other status flags cleared.
    The generator is seeded (Cpu.rng_state), so a replay with the recorded
    seed reads the same numbers; #UD when the CPU model lacks the instruction."""
    if not (c.feat & (FEAT_RDRAND if u.sub == 6 else FEAT_RDSEED)):
        return raise_ud(c)
    rset(c, u.rm, u.osz, rng_next(c))
    set_arith_flags(c, F_CF)
    return R_NEXT

cdef int syscall_enter(Cpu* c, const Uop* u) noexcept nogil:
    """SYSCALL at CPL 3 to the kernel's LSTAR (SDM SYSCALL; flat 64-bit segments)."""
    cdef uint64_t old
    c.r[1] = u.rip_next
    c.r[11] = get_rflags(c)
    materialize_flags(c)
    old = c.rflags
    c.rflags &= ~(c.msr_sfmask | 0x10000)
    if old & ~c.rflags & F_AC and c.cr4 & CR4_SMAP:
        tlb_smap_ac_cleared(c)       # SMAP permissions cached in the TLB depend on AC
    c.rip = c.msr_lstar
    c.seg_sel[SEG_CS] = (c.msr_star >> 32) & 0xfffc
    c.cs32 = 0
    c.seg_sel[SEG_SS] = ((c.msr_star >> 32) + 8) & 0xfffc
    set_cpl(c, 0)
    return R_BRANCH

cdef inline void set_cpl(Cpu* c, uint32_t cpl) noexcept nogil:
    c.cpl = cpl
    # (user-mode tags carry no bit without PCIDs: one instruction less in compiled code)
    c.tlbm = (<uint64_t>c.pcid_slot << 1) | (0 if cpl == 3 else 1)
    c.mode = cpl | (c.cs32 << 2) | (c.mode & MODE_PCID)

cdef void init_system():
    op(0, 0xf4, op_hlt, D_END)
    op(1, 0x05, op_syscall, D_END)
    op(0, 0xcc, op_int3, D_END)
    op(1, 0x0b, op_ud2, D_END)
    op(1, 0xa2, op_cpuid, 0)
    op(1, 0x31, op_rdtsc, 0)
    grp(1, 0xc7, 6, op_rdrand, D_REGONLY, I_NONE, 0, 0x3)
    grp(1, 0xc7, 7, op_rdrand, D_REGONLY, I_NONE, 0, 0x3)
