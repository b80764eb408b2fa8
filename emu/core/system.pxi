# The system-level CPU (Intel SDM Vol. 3A chapters 5, 6 and 7): exception and
# interrupt delivery through the 64-bit IDT with TSS stack switching and IST
# stacks, double and triple faults, IRETQ, far RET, external interrupts
# (pending vectors, RFLAGS.IF, the STI / MOV SS shadow, CR8 masking, HLT),
# segment selector loads from the GDT/LDT, LTR/LLDT/STR/SLDT, SYSRET, the TSS
# I/O permission bitmap and RDPMC; LAR, LSL, VERR, VERW, LSS/LFS/LGS and far
# JMP/CALL through memory (code segments and 64-bit call gates).
#
# All of it applies when the VMM puts the vCPU in system mode
# (c.deliver_via_idt). Without it faults keep exiting to the VMM as EXCEPTION
# exits (the user-mode personality and the bare API); there, while no GDT is
# loaded (GDTR 0, 0), descriptor reads see the GDT Linux gives a 64-bit
# process (linux_desc), so selectors 0x2b/0x33 load and LAR/LSL/VERR/VERW
# answer as on Linux.
#
# Deviations: compatibility mode (a CS with L=0) is not implemented, so
# IRET/RET far and JMP/CALL far to such a CS raise #GP(selector) and SYSRET
# without REX.W raises #UD; the RF flag is never set (no debug breakpoints), so the frames
# pushed carry RF=0 and IRET does not load it; descriptor Accessed bits are
# not set.

cdef enum:
    F_NT_ = 0x4000
    F_RF_ = 0x10000
    F_VM_ = 0x20000
    CR4_PCE = 0x100

cdef extern from *:
    """
    #define emu_atomic_or32(p, v) ((void)__atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST))
    #define emu_atomic_and32(p, v) ((void)__atomic_fetch_and((p), (v), __ATOMIC_SEQ_CST))
    #define emu_atomic_or64(p, v) ((void)__atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST))
    #define emu_atomic_and64(p, v) ((void)__atomic_fetch_and((p), (v), __ATOMIC_SEQ_CST))
    #define emu_atomic_load64(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
    """
    void emu_atomic_or32(volatile uint32_t* p, uint32_t v) nogil
    void emu_atomic_and32(volatile uint32_t* p, uint32_t v) nogil
    void emu_atomic_or64(uint64_t* p, uint64_t v) nogil
    void emu_atomic_and64(uint64_t* p, uint64_t v) nogil
    uint64_t emu_atomic_load64(uint64_t* p) nogil
    int __builtin_clzll(unsigned long long x) nogil

# ---- implicit supervisor-mode accesses (descriptor tables, TSS) ----

cdef int sys_read(Cpu* c, uint64_t a, uint32_t sz, uint64_t* out) noexcept nogil:
    """Read as a supervisor whatever the CPL (SDM 4.6: implicit accesses to the
    GDT, LDT, IDT and TSS). Nonzero on a fault (c.exc_* set)."""
    cdef uint32_t cpl = c.cpl
    cdef uint64_t tlbm = c.tlbm
    cdef int k
    c.cpl = 0
    c.tlbm = (<uint64_t>c.pcid_slot << 1) | 1
    k = mem_read(c, a, sz, out)
    c.cpl = cpl
    c.tlbm = tlbm
    return k

cdef int sys_write(Cpu* c, uint64_t a, uint32_t sz, uint64_t v) noexcept nogil:
    cdef uint32_t cpl = c.cpl
    cdef uint64_t tlbm = c.tlbm
    cdef int k
    c.cpl = 0
    c.tlbm = (<uint64_t>c.pcid_slot << 1) | 1
    k = mem_write(c, a, sz, v)
    c.cpl = cpl
    c.tlbm = tlbm
    return k

# ---- segment descriptors (SDM 3.4.5) ----

cdef inline uint32_t desc_dpl(uint64_t d) noexcept nogil:
    return <uint32_t>(d >> 45) & 3

cdef inline int desc_present(uint64_t d) noexcept nogil:
    return <int>((d >> 47) & 1)

cdef inline int desc_is_code(uint64_t d) noexcept nogil:
    """S=1 and type bit 3 (code)."""
    return (d >> 43) & 3 == 3

cdef inline int desc_is_data(uint64_t d) noexcept nogil:
    return (d >> 43) & 3 == 2

cdef inline uint64_t desc_base32(uint64_t d) noexcept nogil:
    return ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24)

cdef inline uint32_t desc_limit(uint64_t d) noexcept nogil:
    cdef uint32_t lim = <uint32_t>((d & 0xffff) | (((d >> 48) & 0xf) << 16))
    if d & (<uint64_t>1 << 55):          # G: 4 KiB granularity
        lim = (lim << 12) | 0xfff
    return lim

# The GDT Linux gives a 64-bit process (arch/x86/include/asm/segment.h), seen
# by descriptor reads outside system mode while no GDT is loaded (GDTR base
# and limit 0: the user-mode personality and the bare API): 0x08 kernel code
# 32, 0x10 kernel code 64, 0x18 kernel data, 0x23 user code 32, 0x2b user
# data, 0x33 user code 64, 0x40 the busy 64-bit TSS, 0x50 the LDT slot
# (empty), 0x60-0x70 TLS slots (Cpu.tls_desc: set_thread_area), 0x7b the CPU/node segment (limit =
# TSC_AUX, as Linux keeps them equal). Accessed bits are set, as in Linux.
cdef inline int linux_gdt(Cpu* c) noexcept nogil:
    return not c.deliver_via_idt and c.gdtr_limit == 0 and c.gdtr_base == 0

cdef uint64_t linux_desc(Cpu* c, uint32_t i) noexcept nogil:
    cdef uint64_t aux
    if i == 1:
        return 0x00cf9b000000ffffULL
    if i == 2:
        return 0x00af9b000000ffffULL
    if i == 3:
        return 0x00cf93000000ffffULL
    if i == 4:
        return 0x00cffb000000ffffULL
    if i == 5:
        return 0x00cff3000000ffffULL
    if i == 6:
        return 0x00affb000000ffffULL
    if i == 8:
        return 0x00008b0030004087ULL         # busy TSS, base 0xfffffe0000003000, limit 0x4087
    if i == 9:
        return 0xfffffe00ULL
    if 12 <= i <= 14:
        return c.tls_desc[i - 12]
    if i == 15:
        aux = c.tsc_aux & 0xfffff
        return (aux & 0xffff) | (<uint64_t>0xf5 << 40) | ((aux >> 16) << 48) | (<uint64_t>4 << 52)
    return 0

cdef int desc_lookup(Cpu* c, uint32_t sel, uint64_t* d, uint64_t* d_hi) noexcept nogil:
    """Read the descriptor for selector sel from the GDT or (TI=1) the LDT;
    d_hi, when not NULL, gets the second half of a 16-byte system
    descriptor. 0 read, 1 outside the table (or TI=1 with no LDT; nothing
    raised), -1 a fault reading it (c.exc_* set)."""
    cdef uint64_t base, off = sel & 0xfff8
    cdef uint32_t limit
    cdef uint32_t need = 15 if d_hi != NULL else 7
    if sel & 4:
        if (c.ldtr_sel & 0xfffc) == 0:
            return 1
        base = c.ldtr_base
        limit = c.ldtr_limit
    elif linux_gdt(c):
        if off + need > LINUX_GDT_LIMIT:
            return 1
        d[0] = linux_desc(c, <uint32_t>(off >> 3))
        if d_hi != NULL:
            d_hi[0] = linux_desc(c, <uint32_t>(off >> 3) + 1)
        return 0
    else:
        base = c.gdtr_base
        limit = c.gdtr_limit
    if off + need > limit:
        return 1
    if sys_read(c, base + off, 8, d):
        return -1
    if d_hi != NULL and sys_read(c, base + off + 8, 8, d_hi):
        return -1
    return 0

cdef int read_desc(Cpu* c, uint32_t sel, uint32_t ext, uint64_t* d, uint64_t* d_hi) noexcept nogil:
    """desc_lookup, where outside the table is #GP(selector | ext). 0 or R_EXC."""
    cdef int k = desc_lookup(c, sel, d, d_hi)
    if k == 0:
        return 0
    if k > 0:
        return raise_exc(c, EXC_GP, (sel & 0xfffc) | ext, 1)
    return R_EXC

cdef int check_code_target(Cpu* c, uint32_t sel, uint32_t ext, uint64_t* d) noexcept nogil:
    """Common checks for a 64-bit code segment a far return loads:
    non-null, in the table, code, present, L=1 D=0."""
    if (sel & 0xfffc) == 0:
        return raise_exc(c, EXC_GP, ext, 1)
    if read_desc(c, sel, ext, d, NULL):
        return R_EXC
    if not desc_is_code(d[0]):
        return raise_exc(c, EXC_GP, (sel & 0xfffc) | ext, 1)
    return 0

cdef inline int code_is_64(uint64_t d) noexcept nogil:
    return (d >> 53) & 3 == 1           # L=1, D=0

cdef int load_ss_for_return(Cpu* c, uint32_t ss, uint32_t rpl) noexcept nogil:
    """SS checks of IRET / RET far (SDM IRET, RET; 64-bit mode): a null SS is
    allowed when returning to CPL < 3; otherwise RPL = the new CPL, a writable
    data segment with DPL = the new CPL, present (#SS)."""
    cdef uint64_t d
    if (ss & 0xfffc) == 0:
        if rpl == 3:
            return raise_exc(c, EXC_GP, 0, 1)
        return 0
    if (ss & 3) != rpl:
        return raise_exc(c, EXC_GP, ss & 0xfffc, 1)
    if read_desc(c, ss, 0, &d, NULL):
        return R_EXC
    if not desc_is_data(d) or not (d & (<uint64_t>1 << 41)) or desc_dpl(d) != rpl:
        return raise_exc(c, EXC_GP, ss & 0xfffc, 1)
    if not desc_present(d):
        return raise_exc(c, EXC_SS, ss & 0xfffc, 1)
    return 0

cdef int load_seg(Cpu* c, uint32_t sr, uint32_t sel) noexcept nogil:
    """MOV/POP to SS, DS, ES, FS or GS in 64-bit mode (SDM MOV, POP). 0 or R_EXC."""
    cdef uint64_t d
    cdef uint32_t rpl = sel & 3, dpl
    if (sel & 0xfffc) == 0:
        if sr == SEG_SS and (c.cpl == 3 or rpl != c.cpl):
            return raise_exc(c, EXC_GP, 0, 1)
        c.seg_sel[sr] = sel
        if sr == SEG_FS or sr == SEG_GS:
            c.seg_base[sr] = 0
        return 0
    if read_desc(c, sel, 0, &d, NULL):
        return R_EXC
    dpl = desc_dpl(d)
    if sr == SEG_SS:
        if rpl != c.cpl or not desc_is_data(d) or not (d & (<uint64_t>1 << 41)) or dpl != c.cpl:
            return raise_exc(c, EXC_GP, sel & 0xfffc, 1)
        if not desc_present(d):
            return raise_exc(c, EXC_SS, sel & 0xfffc, 1)
    else:
        # data, or readable code
        if not (desc_is_data(d) or (desc_is_code(d) and d & (<uint64_t>1 << 41))):
            return raise_exc(c, EXC_GP, sel & 0xfffc, 1)
        # data and non-conforming code: RPL and CPL must not exceed DPL
        if (desc_is_data(d) or not (d & (<uint64_t>1 << 42))) and (rpl > dpl or c.cpl > dpl):
            return raise_exc(c, EXC_GP, sel & 0xfffc, 1)
        if not desc_present(d):
            return raise_exc(c, EXC_NP, sel & 0xfffc, 1)
    c.seg_sel[sr] = sel
    if sr == SEG_FS or sr == SEG_GS:
        c.seg_base[sr] = desc_base32(d)
    return 0

cdef void null_outer_segs(Cpu* c) noexcept nogil:
    """After IRET / RET far to an outer level (SDM IRET, RET): ES, DS, FS and
    GS that hold a data or non-conforming code segment more privileged than
    the new CPL get a null selector (bases are kept). An unreadable
    descriptor leaves the register alone (and no fault is raised)."""
    cdef uint64_t d, cr2 = c.cr2
    cdef uint32_t sr, sel
    cdef uint32_t vec = c.exc_vector, has = c.exc_has_error
    cdef uint64_t err = c.exc_error
    for sr in range(6):
        if sr == SEG_CS or sr == SEG_SS:
            continue
        sel = c.seg_sel[sr]
        if (sel & 0xfffc) == 0:
            continue
        if read_desc(c, sel, 0, &d, NULL):
            if c.exit_reason == EXIT_MMIO:
                c.exit_reason = EXIT_NONE
            continue
        if (desc_is_data(d) or (desc_is_code(d) and not (d & (<uint64_t>1 << 42)))) and desc_dpl(d) < c.cpl:
            c.seg_sel[sr] = 0
    c.cr2 = cr2
    c.exc_vector = vec
    c.exc_error = err
    c.exc_has_error = has

# ---- the TSS (SDM 7.7) ----

cdef int tss_read64(Cpu* c, uint32_t off, uint32_t ext, uint64_t* out) noexcept nogil:
    """A quadword of the 64-bit TSS (RSPn at 4 + 8n, ISTn at 36 + 8(n-1));
    outside the TSS limit: #TS(TR selector | ext)."""
    if (c.tr_sel & 0xfffc) == 0 or off + 7 > c.tr_limit:
        return raise_exc(c, EXC_TS, (c.tr_sel & 0xfffc) | ext, 1)
    return sys_read(c, c.tr_base + off, 8, out)

cdef int io_allowed(Cpu* c, uint32_t port, uint32_t size) noexcept nogil:
    """The I/O permission bitmap (SDM 19.5.2) for CPL > IOPL: 1 when every
    bit for port..port+size-1 is clear and inside the TSS limit."""
    cdef uint64_t mapbase, bits
    cdef uint32_t off
    if (c.tr_sel & 0xfffc) == 0 or c.tr_limit < 103:
        return 0
    if sys_read(c, c.tr_base + 102, 2, &mapbase):
        return 0
    off = <uint32_t>mapbase + (port >> 3)
    if off + 1 > c.tr_limit:
        return 0
    if sys_read(c, c.tr_base + off, 2, &bits):
        return 0
    return ((bits >> (port & 7)) & ((<uint32_t>1 << size) - 1)) == 0

# ---- delivery through the IDT (SDM 6.14) ----

cdef inline int exc_class(uint32_t v) noexcept nogil:
    """Table 6-4: 1 contributory, 2 page fault, 0 benign (and interrupts)."""
    if v == EXC_DE or (EXC_TS <= v <= EXC_GP):
        return 1
    if v == EXC_PF:
        return 2
    return 0

cdef int idt_deliver(Cpu* c, uint32_t vec, uint64_t err, int has_err, int kind,
                     uint64_t ret_rip) noexcept nogil:
    """One attempt to deliver vector vec through the 64-bit IDT with return
    address ret_rip. 0 on success (c.rip at the handler), R_EXC when the
    delivery itself faulted (the new fault in c.exc_*; CPU state unchanged)."""
    cdef uint32_t ext = 0 if kind == EVK_SOFT else 1
    cdef uint64_t gerr = vec * 8 + 2 + ext
    cdef uint64_t lo, hi, cd, target, rsp, rfl, sp
    cdef uint32_t sel, typ, ist, new_cpl, old_cpl = c.cpl
    if <uint64_t>vec * 16 + 15 > c.idtr_limit:
        return raise_exc(c, EXC_GP, gerr, 1)
    if sys_read(c, c.idtr_base + vec * 16, 8, &lo) or sys_read(c, c.idtr_base + vec * 16 + 8, 8, &hi):
        return R_EXC
    typ = <uint32_t>(lo >> 40) & 0x1f          # S bit and type
    if typ != 0xe and typ != 0xf:
        return raise_exc(c, EXC_GP, gerr, 1)
    if kind == EVK_SOFT and desc_dpl(lo) < old_cpl:
        return raise_exc(c, EXC_GP, gerr, 1)
    if not desc_present(lo):
        return raise_exc(c, EXC_NP, gerr, 1)
    sel = <uint32_t>(lo >> 16) & 0xffff
    ist = <uint32_t>(lo >> 32) & 7
    target = (lo & 0xffff) | ((lo >> 32) & 0xffff0000ULL) | ((hi & 0xffffffffULL) << 32)
    # the handler's code segment
    if (sel & 0xfffc) == 0:
        return raise_exc(c, EXC_GP, ext, 1)
    if read_desc(c, sel, ext, &cd, NULL):
        return R_EXC
    if not desc_is_code(cd) or desc_dpl(cd) > old_cpl or not code_is_64(cd):
        return raise_exc(c, EXC_GP, (sel & 0xfffc) | ext, 1)
    if not desc_present(cd):
        return raise_exc(c, EXC_NP, (sel & 0xfffc) | ext, 1)
    new_cpl = old_cpl if cd & (<uint64_t>1 << 42) else desc_dpl(cd)   # conforming keeps CPL
    if not is_canonical(target):
        return raise_exc(c, EXC_GP, ext, 1)
    # the stack
    if ist:
        if tss_read64(c, 36 + 8 * (ist - 1), ext, &rsp):
            return R_EXC
    elif new_cpl < old_cpl:
        if tss_read64(c, 4 + 8 * new_cpl, ext, &rsp):
            return R_EXC
    else:
        rsp = c.r[4]
    rsp &= ~(<uint64_t>15)
    sp = rsp - (48 if has_err else 40)
    if not is_canonical(rsp - 1) or not is_canonical(sp):
        return raise_exc(c, EXC_SS, ext, 1)
    rfl = get_rflags(c)
    # push SS, RSP, RFLAGS, CS, RIP, error code at the new privilege level
    set_cpl(c, new_cpl)
    if (mem_write(c, rsp - 8, 8, c.seg_sel[SEG_SS]) or mem_write(c, rsp - 16, 8, c.r[4])
            or mem_write(c, rsp - 24, 8, rfl) or mem_write(c, rsp - 32, 8, c.seg_sel[SEG_CS])
            or mem_write(c, rsp - 40, 8, ret_rip)
            or (has_err and mem_write(c, rsp - 48, 8, err))):
        set_cpl(c, old_cpl)
        return R_EXC
    c.r[4] = sp
    c.seg_sel[SEG_CS] = (sel & 0xfffc) | new_cpl
    set_code_mode(c, 0)                      # the handler is 64-bit code
    if new_cpl != old_cpl:
        c.seg_sel[SEG_SS] = new_cpl          # a null selector with RPL = CPL
    materialize_flags(c)
    c.rflags &= ~(<uint64_t>(F_TF | F_NT_ | F_RF_ | F_VM_))
    if typ == 0xe:
        c.rflags &= ~(<uint64_t>F_IF)        # interrupt gate
    c.rip = target
    c.halted = 0
    return 0

cdef int idt_deliver_checked(Cpu* c, uint32_t vec, uint64_t err, int has_err, int kind,
                             uint64_t ret_rip) noexcept nogil:
    """idt_deliver, where a descriptor table, TSS or stack outside RAM (an
    MMIO exit) counts as #GP(EXT): the core does not deliver events through
    device memory."""
    if idt_deliver(c, vec, err, has_err, kind, ret_rip) == 0:
        return 0
    if c.exit_reason == EXIT_MMIO:
        c.exit_reason = EXIT_NONE
        return raise_exc(c, EXC_GP, 0 if kind == EVK_SOFT else 1, 1)
    return R_EXC

cdef int deliver_event(Cpu* c, uint32_t vec, uint64_t err, int has_err, int kind,
                       uint64_t ret_rip) noexcept nogil:
    """Deliver an event, turning faults during delivery into a double fault
    or a triple fault (SDM 6.15, interrupt 8, Table 6-5). 0 when a handler
    runs, 1 on shutdown (c.exit_reason = EXIT_SHUTDOWN)."""
    cdef uint32_t first = vec if kind == EVK_HW else 256   # 256: benign (interrupt)
    cdef uint32_t second
    cdef int cf, cs, n = 0
    while True:
        if idt_deliver_checked(c, vec, err, has_err, kind, ret_rip) == 0:
            return 0
        second = c.exc_vector
        cf = exc_class(first) if first < 256 else 0
        cs = exc_class(second)
        n += 1
        if (first == EXC_DF and cs != 0) or n > 8:
            c.exit_reason = EXIT_SHUTDOWN
            c.exit_rip = c.rip
            return 1
        if (cf == 1 and cs == 1) or (cf == 2 and cs != 0):
            vec = EXC_DF
            err = 0
            has_err = 1
        else:
            vec = second
            err = c.exc_error
            has_err = c.exc_has_error
        first = vec
        kind = EVK_HW

cdef inline int soft_interrupt(Cpu* c, const Uop* u, uint32_t vec, int kind) noexcept nogil:
    """INT n / INT3 / INT1 in system mode: a trap through the IDT, returning
    after the instruction. A fault during delivery is a fault of the INT
    instruction (software interrupts are benign: no double fault)."""
    if idt_deliver_checked(c, vec, 0, 0, kind, u.rip_next):
        return R_EXC
    return R_BRANCH

# ---- external interrupts ----

cdef inline int irq_highest(Cpu* c) noexcept nogil:
    """Highest pending external interrupt vector, or -1."""
    cdef int i
    cdef uint64_t w
    i = 3
    while i >= 0:
        w = emu_atomic_load64(&c.irq_bits[i])
        if w:
            return i * 64 + 63 - __builtin_clzll(w)
        i -= 1
    return -1

cdef inline int irq_deliverable(Cpu* c) noexcept nogil:
    """A pending vector RFLAGS.IF and CR8 let through (the shadow aside)."""
    cdef int v
    if not (c.rflags & F_IF):
        return -1
    v = irq_highest(c)
    if v < 0 or <uint64_t>(v >> 4) <= c.cr8:
        return -1
    return v

cdef void irq_raise(Cpu* c, uint32_t vec) noexcept nogil:
    emu_atomic_or64(&c.irq_bits[vec >> 6], (<uint64_t>1) << (vec & 63))
    emu_atomic_or32(&c.events, EV_IRQ)

cdef int irq_service(Cpu* c) noexcept nogil:
    """At a block boundary with EV_IRQ set: deliver the highest pending
    interrupt if it may be taken now. 1 delivered, 0 not now, -1 shutdown."""
    cdef int v
    if not c.deliver_via_idt or c.icount < c.shadow_end:
        return 0
    v = irq_deliverable(c)
    if v < 0:
        if irq_highest(c) < 0:
            # nothing pending any more: drop the attention bit, then look
            # again in case another thread raised one meanwhile
            emu_atomic_and32(&c.events, ~(<uint32_t>EV_IRQ))
            if irq_highest(c) >= 0:
                emu_atomic_or32(&c.events, EV_IRQ)
        return 0
    emu_atomic_and64(&c.irq_bits[v >> 6], ~((<uint64_t>1) << (v & 63)))
    if deliver_event(c, <uint32_t>v, 0, 0, EVK_HW, c.rip):
        return -1
    return 1

# ---- instructions ----

cdef int op_iret(Cpu* c, const Uop* u) noexcept nogil:
    """CF IRET / IRETD, REX.W CF IRETQ in 64-bit mode (SDM IRET, IA-32e mode):
    pops RIP, CS, RFLAGS, RSP, SS; returns to the same or an outer level."""
    cdef uint32_t sz = u.osz
    cdef uint64_t sp = c.r[4], nrip, ncs, nfl, nrsp, nss, cd, old, mask
    cdef uint32_t rpl, cpl = c.cpl
    cdef int kind
    if c.rflags & F_NT_:
        return raise_gp0(c)                  # task return: not in IA-32e mode
    if (mem_read(c, sp, sz, &nrip) or mem_read(c, sp + sz, sz, &ncs) or mem_read(c, sp + 2 * sz, sz, &nfl)
            or mem_read(c, sp + 3 * sz, sz, &nrsp) or mem_read(c, sp + 4 * sz, sz, &nss)):
        return R_EXC
    ncs &= 0xffff
    nss &= 0xffff
    rpl = <uint32_t>ncs & 3
    if check_code_target(c, <uint32_t>ncs, 0, &cd):
        return R_EXC
    if rpl < cpl:
        return raise_exc(c, EXC_GP, ncs & 0xfffc, 1)
    if cd & (<uint64_t>1 << 42):
        if desc_dpl(cd) > rpl:
            return raise_exc(c, EXC_GP, ncs & 0xfffc, 1)
    elif desc_dpl(cd) != rpl:
        return raise_exc(c, EXC_GP, ncs & 0xfffc, 1)
    if not desc_present(cd):
        return raise_exc(c, EXC_NP, ncs & 0xfffc, 1)
    kind = code_kind(c, cd)
    if kind < 0:
        return raise_exc(c, EXC_GP, ncs & 0xfffc, 1)   # 16-bit code: not modelled
    if kind == 1:
        nrip &= 0xffffffffULL                          # to compatibility mode
    if not is_canonical(nrip):
        return raise_gp0(c)
    if load_ss_for_return(c, <uint32_t>nss, rpl):
        return R_EXC
    # RFLAGS: IOPL (and VIF/VIP) only at CPL 0, IF at CPL <= IOPL; VM and RF stay clear
    old = get_rflags(c)
    mask = F_ARITH | F_TF | F_DF | F_NT_ | F_AC | F_ID
    if cpl == 0:
        mask |= 0x3000 | 0x180000
    if cpl <= ((old >> 12) & 3):
        mask |= F_IF
    if sz == 2:
        mask &= 0xffff
    c.rflags = (old & ~mask) | (nfl & mask) | 2
    c.lf_op = LF_NONE
    c.r[4] = nrsp
    c.seg_sel[SEG_CS] = <uint16_t>ncs
    c.seg_sel[SEG_SS] = <uint16_t>nss
    c.cs32 = <uint32_t>kind
    set_cpl(c, rpl)
    if rpl > cpl:
        null_outer_segs(c)
    c.rip = nrip
    if old & ~c.rflags & F_AC and c.cr4 & CR4_SMAP:
        tlb_smap_ac_cleared(c)
    return R_BRANCH

cdef int op_retf(Cpu* c, const Uop* u) noexcept nogil:
    """CB / CA imm16 RET far (REX.W: 64-bit pops): to the same level, or to an
    outer level popping SS:RSP as well (SDM RET)."""
    cdef uint32_t sz = u.osz
    cdef uint64_t sp = c.r[4], nrip, ncs, nrsp, nss, cd
    cdef uint64_t imm = u.imm & 0xffff
    cdef uint32_t rpl, cpl = c.cpl
    cdef int kind
    if mem_read(c, sp, sz, &nrip) or mem_read(c, sp + sz, sz, &ncs):
        return R_EXC
    ncs &= 0xffff
    rpl = <uint32_t>ncs & 3
    if check_code_target(c, <uint32_t>ncs, 0, &cd):
        return R_EXC
    if rpl < cpl:
        return raise_exc(c, EXC_GP, ncs & 0xfffc, 1)
    if cd & (<uint64_t>1 << 42):
        if desc_dpl(cd) > rpl:
            return raise_exc(c, EXC_GP, ncs & 0xfffc, 1)
    elif desc_dpl(cd) != rpl:
        return raise_exc(c, EXC_GP, ncs & 0xfffc, 1)
    if not desc_present(cd):
        return raise_exc(c, EXC_NP, ncs & 0xfffc, 1)
    kind = code_kind(c, cd)
    if kind < 0:
        return raise_exc(c, EXC_GP, ncs & 0xfffc, 1)
    if kind == 1:
        nrip &= 0xffffffffULL
    if not is_canonical(nrip):
        return raise_gp0(c)
    if rpl > cpl:
        if mem_read(c, sp + 2 * sz + imm, sz, &nrsp) or mem_read(c, sp + 3 * sz + imm, sz, &nss):
            return R_EXC
        nss &= 0xffff
        if load_ss_for_return(c, <uint32_t>nss, rpl):
            return R_EXC
        c.r[4] = nrsp + imm
        c.seg_sel[SEG_SS] = <uint16_t>nss
        set_cpl(c, rpl)
        null_outer_segs(c)
    else:
        c.r[4] = sp + 2 * sz + imm
    c.seg_sel[SEG_CS] = <uint16_t>ncs
    set_code_mode(c, <uint32_t>kind)
    c.rip = nrip
    return R_BRANCH

cdef int op_sysret(Cpu* c, const Uop* u) noexcept nogil:
    """0F 07 SYSRET: REX.W to 64-bit CPL 3 code (RIP = RCX, CS = STAR[63:48]
    + 16), else to compatibility mode (EIP = ECX, CS = STAR[63:48]); RFLAGS =
    R11, SS = STAR[63:48] + 8, both RPL 3 (SDM SYSRET)."""
    cdef uint64_t base = (c.msr_star >> 48) & 0xffff
    cdef uint64_t old
    if not (c.efer & EFER_SCE) or not (c.efer & EFER_LMA):
        return raise_ud(c)
    if c.cpl != 0:
        return raise_gp0(c)
    if u.osz == 8 and not is_canonical(c.r[1]):
        return raise_gp0(c)
    old = get_rflags(c)
    c.rflags = (c.r[11] & 0x3c7fd7) | 2
    c.lf_op = LF_NONE
    c.seg_sel[SEG_SS] = <uint16_t>((base + 8) | 3)
    if u.osz == 8:
        c.rip = c.r[1]
        c.seg_sel[SEG_CS] = <uint16_t>((base + 16) | 3)
        c.cs32 = 0
    else:                                    # to compatibility mode: CS = STAR[63:48], EIP = ECX
        c.rip = c.r[1] & 0xffffffffULL
        c.seg_sel[SEG_CS] = <uint16_t>(base | 3)
        c.cs32 = 1
    set_cpl(c, 3)
    if old & ~c.rflags & F_AC and c.cr4 & CR4_SMAP:
        tlb_smap_ac_cleared(c)
    return R_BRANCH

cdef int op_mov_to_sreg(Cpu* c, const Uop* u) noexcept nogil:
    """8E: MOV Sreg, r/m16. CS (and encodings 6, 7) are #UD; MOV SS blocks
    interrupts until the next instruction completes."""
    cdef uint32_t sr = u.reg & 7
    cdef uint64_t v
    if sr == SEG_CS or sr > SEG_GS:
        return raise_ud(c)
    if u.mem:
        if mem_read(c, ea_of(c, u), 2, &v):
            return R_EXC
    else:
        v = c.r[u.rm] & 0xffff
    if load_seg(c, sr, <uint32_t>v & 0xffff):
        return R_EXC
    if sr == SEG_SS:
        c.shadow_end = c.icount + u.ninsn + 1
    return R_NEXT

cdef int op_mov_from_sreg(Cpu* c, const Uop* u) noexcept nogil:
    """8C: MOV r/m, Sreg: 16 bits to memory; to a register zero-extended to
    32/64 bits (16-bit operand: low word only)."""
    cdef uint32_t sr = u.reg & 7
    if sr > SEG_GS:
        return raise_ud(c)
    if u.mem:
        if mem_write(c, ea_of(c, u), 2, c.seg_sel[sr]):
            return R_EXC
    else:
        rset(c, u.rm, u.osz, c.seg_sel[sr])
    return R_NEXT

cdef int op_push_sreg(Cpu* c, const Uop* u) noexcept nogil:
    """0F A0 PUSH FS, 0F A8 PUSH GS."""
    return push64(c, c.seg_sel[u.sub], u.osz)

cdef int op_pop_sreg(Cpu* c, const Uop* u) noexcept nogil:
    """0F A1 POP FS, 0F A9 POP GS."""
    cdef uint64_t v
    if mem_read(c, c.r[4], u.osz, &v):
        return R_EXC
    if load_seg(c, u.sub, <uint32_t>v & 0xffff):
        return R_EXC
    c.r[4] += u.osz
    return R_NEXT

cdef int op_sldt_str(Cpu* c, const Uop* u) noexcept nogil:
    """0F 00 /0 SLDT, /1 STR: #GP at CPL > 0 with CR4.UMIP. A Linux process
    (linux_gdt) sees no LDT and the TSS selector 0x40."""
    cdef uint64_t v = c.ldtr_sel if u.sub == 0 else c.tr_sel
    if c.cpl != 0 and c.cr4 & CR4_UMIP:
        return raise_gp0(c)
    if c.cpl != 0 and linux_gdt(c):
        v = 0 if u.sub == 0 else LINUX_TSS_SEL
    if u.mem:
        if mem_write(c, ea_of(c, u), 2, v):
            return R_EXC
    else:
        rset(c, u.rm, u.osz, v)
    return R_NEXT

cdef int op_lldt_ltr(Cpu* c, const Uop* u) noexcept nogil:
    """0F 00 /2 LLDT, /3 LTR (SDM LLDT, LTR; 16-byte system descriptors).
    LTR marks the TSS descriptor busy."""
    cdef uint64_t v, d, dh, base
    cdef uint32_t sel, typ
    if c.cpl != 0:
        return raise_gp0(c)
    if u.mem:
        if mem_read(c, ea_of(c, u), 2, &v):
            return R_EXC
    else:
        v = c.r[u.rm]
    sel = <uint32_t>v & 0xffff
    if c.trap_mask & TRAP_DESC and trap_before(c, u, PRIV_LLDT if u.sub == 2 else PRIV_LTR, sel):
        return R_EXIT_BEFORE
    if (sel & 0xfffc) == 0:
        if u.sub == 3:
            return raise_gp0(c)
        c.ldtr_sel = sel                     # a null LDT selector: no LDT
        c.ldtr_base = 0
        c.ldtr_limit = 0
        return R_NEXT
    if sel & 4:
        return raise_exc(c, EXC_GP, sel & 0xfffc, 1)
    if read_desc(c, sel, 0, &d, &dh):
        return R_EXC
    typ = <uint32_t>(d >> 40) & 0x1f
    if (u.sub == 2 and typ != 2) or (u.sub == 3 and typ != 9):
        return raise_exc(c, EXC_GP, sel & 0xfffc, 1)
    if not desc_present(d):
        return raise_exc(c, EXC_NP, sel & 0xfffc, 1)
    base = desc_base32(d) | ((dh & 0xffffffffULL) << 32)
    if not is_canonical(base):
        return raise_exc(c, EXC_GP, sel & 0xfffc, 1)
    if u.sub == 2:
        c.ldtr_sel = sel
        c.ldtr_base = base
        c.ldtr_limit = desc_limit(d)
    else:
        if sys_write(c, c.gdtr_base + (sel & 0xfff8) + 5, 1, ((d >> 40) & 0xff) | 2):
            return R_EXC
        c.tr_sel = sel
        c.tr_base = base
        c.tr_limit = desc_limit(d)
    return R_NEXT

cdef int op_rdpmc(Cpu* c, const Uop* u) noexcept nogil:
    """0F 33 RDPMC: #GP(0) at CPL > 0 without CR4.PCE, and for a counter
    CPUID leaf 0AH does not list; the counters read 0 (no events counted)."""
    cdef uint32_t out[4]
    cdef uint32_t idx = <uint32_t>c.r[1]
    if c.cpl != 0 and not (c.cr4 & CR4_PCE):
        return raise_gp0(c)
    if c.trap_mask & TRAP_RDPMC and trap_before(c, u, PRIV_RDPMC, idx):
        return R_EXIT_BEFORE
    cpuid_lookup(c, 0xa, 0, out)
    if idx & 0x40000000:
        if (idx & 0x3fffffff) >= (out[3] & 0x1f):
            return raise_gp0(c)
    elif idx >= ((out[0] >> 8) & 0xff):
        return raise_gp0(c)
    c.r[0] = 0
    c.r[2] = 0
    return R_NEXT

cdef int fix_mov_dr(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """0F 21 / 0F 23: like MOV CR the ModRM byte is read as imm8 (mod is
    ignored). REX.R (DR8-15) is #UD."""
    cdef uint32_t m = <uint32_t>u.imm & 0xff
    if d.rex & 4:
        return raise_ud(c)
    u.reg = (m >> 3) & 7
    u.rm = (m & 7) | ((d.rex & 1) << 3)
    u.mem = 0
    u.osz = 8
    return 0

cdef int op_mov_dr(Cpu* c, const Uop* u) noexcept nogil:
    """0F 21 MOV r64, DRn (u.sub 0) / 0F 23 MOV DRn, r64 (u.sub 1) (SDM MOV
    Debug Registers): #GP(0) at CPL > 0; DR4/DR5 alias DR6/DR7 unless
    CR4.DE (then #UD); DR6/DR7 upper halves must be written as zero. The
    values are kept but no debug exceptions are generated."""
    cdef uint32_t n = u.reg
    cdef uint64_t v
    if n == 4 or n == 5:
        if c.cr4 & 8:
            return raise_ud(c)
        n += 2
    if c.cpl != 0:
        return raise_gp0(c)
    if u.sub == 0:
        c.r[u.rm] = c.dr[n]
        return R_NEXT
    v = c.r[u.rm]
    if n == 6:
        if v >> 32:
            return raise_gp0(c)
        v = (v & 0xe00f) | 0xffff0ff0ULL
    elif n == 7:
        if v >> 32:
            return raise_gp0(c)
        v = (v & 0xffff2bffULL) | 0x400
    c.dr[n] = v
    return R_NEXT

# ---- LAR, LSL, VERR, VERW (SDM Vol. 2; Vol. 3A 5.10.1) ----

cdef enum:
    CHK_LAR = 0
    CHK_LSL = 1
    CHK_VERR = 2
    CHK_VERW = 3

cdef int desc_visible(Cpu* c, uint32_t sel, int kind, uint64_t* d) noexcept nogil:
    """The checks of LAR / LSL / VERR / VERW: 1 when sel names a descriptor
    in its table, of a type valid for the instruction in IA-32e mode, and
    visible at the CPL and RPL (DPL >= both, or conforming code); 0 when not
    (ZF = 0); -1 on a fault reading the descriptor. System descriptors are
    16 bytes in IA-32e mode: the upper half must be inside the table and
    have a zero type field (bits 12:8 of its second doubleword)."""
    cdef uint64_t hi
    cdef uint32_t typ, dpl, rpl = sel & 3
    cdef int k, conforming
    if (sel & 0xfffc) == 0:
        return 0
    k = desc_lookup(c, sel, d, NULL)
    if k:
        return -1 if k < 0 else 0
    typ = <uint32_t>(d[0] >> 40) & 0xf
    dpl = desc_dpl(d[0])
    conforming = 0
    if d[0] & (<uint64_t>1 << 44):                 # code or data
        if typ & 8:
            conforming = (typ & 4) != 0
            if kind == CHK_VERW or (kind == CHK_VERR and not (typ & 2)):
                return 0                           # code is never writable; execute-only
        elif kind == CHK_VERW and not (typ & 2):
            return 0                               # read-only data
    else:
        # LAR: 64-bit TSS (available, busy) and call gate; LSL: LDT and 64-bit TSS
        if kind == CHK_LAR:
            if typ != 9 and typ != 0xb and typ != 0xc:
                return 0
        elif kind == CHK_LSL:
            if typ != 2 and typ != 9 and typ != 0xb:
                return 0
        else:
            return 0
    if not conforming and (c.cpl > dpl or rpl > dpl):
        return 0
    if not (d[0] & (<uint64_t>1 << 44)):
        k = desc_lookup(c, sel, d, &hi)
        if k:
            return -1 if k < 0 else 0
        if (hi >> 40) & 0x1f:
            return 0
    return 1

cdef inline void set_zf(Cpu* c, int z) noexcept nogil:
    materialize_flags(c)
    if z:
        c.rflags |= F_ZF
    else:
        c.rflags &= ~(<uint64_t>F_ZF)

cdef inline int selector_operand(Cpu* c, const Uop* u, uint32_t* sel) noexcept nogil:
    cdef uint64_t v
    if u.mem:
        if mem_read(c, ea_of(c, u), 2, &v):
            return R_EXC
    else:
        v = c.r[u.rm]
    sel[0] = <uint32_t>v & 0xffff
    return 0

cdef int op_lar_lsl(Cpu* c, const Uop* u) noexcept nogil:
    """0F 02 LAR r, r/m16 (u.sub CHK_LAR) and 0F 03 LSL r, r/m16 (CHK_LSL):
    ZF = 1 and the access rights (second doubleword AND 00FFFF00H; 16-bit:
    AND FF00H) or the byte-granular segment limit (scaled by G) when the
    descriptor is visible and of a valid type; else ZF = 0 and the
    destination is left alone (all 64 bits). Bits 19:16 of LAR's result (the
    limit's top, undefined in the SDM's 00FxFF00H mask) are returned, as AMD
    processors do."""
    cdef uint32_t sel
    cdef uint64_t d, v
    cdef int k
    if selector_operand(c, u, &sel):
        return R_EXC
    k = desc_visible(c, sel, u.sub, &d)
    if k < 0:
        return R_EXC
    if k:
        if u.sub == CHK_LAR:
            v = (d >> 32) & (0xff00 if u.osz == 2 else 0x00ffff00)
        else:
            v = desc_limit(d)
        rset(c, u.reg, u.osz, v)
    set_zf(c, k)
    return R_NEXT

cdef int op_verr_verw(Cpu* c, const Uop* u) noexcept nogil:
    """0F 00 /4 VERR, /5 VERW r/m16: ZF = 1 when the segment is readable /
    writable at the CPL and RPL (no fault for an invalid selector)."""
    cdef uint32_t sel
    cdef uint64_t d
    cdef int k
    if selector_operand(c, u, &sel):
        return R_EXC
    k = desc_visible(c, sel, CHK_VERR if u.sub == 4 else CHK_VERW, &d)
    if k < 0:
        return R_EXC
    set_zf(c, k)
    return R_NEXT

# ---- far pointers: LSS, LFS, LGS, far JMP and CALL through memory ----

cdef int op_load_far_ptr(Cpu* c, const Uop* u) noexcept nogil:
    """0F B2 LSS, 0F B4 LFS, 0F B5 LGS r, m16:16 / m16:32 / m16:64 (REX.W):
    the offset into the register, the selector (after it in memory) into
    the segment register through the MOV Sreg checks (load_seg)."""
    cdef uint64_t a = ea_of(c, u), off, sel
    if mem_read(c, a, u.osz, &off) or mem_read(c, a + u.osz, 2, &sel):
        return R_EXC
    if load_seg(c, u.sub, <uint32_t>sel & 0xffff):
        return R_EXC
    rset(c, u.reg, u.osz, off)
    return R_NEXT

cdef int far_through_gate(Cpu* c, const Uop* u, uint32_t gsel, int call) noexcept nogil:
    """JMP / CALL far through a 64-bit call gate (SDM JMP, CALL: CALL-GATE;
    Vol. 3A 5.8.6). CALL to a more privileged non-conforming segment
    switches to the TSS stack for the new CPL (SS = null, RPL = new CPL) and
    pushes SS, RSP, CS, RIP as quadwords; otherwise CS and RIP are pushed
    on the current stack (the gate size is 64 bits)."""
    cdef uint64_t g, gh, cd, target, nsp, sp = c.r[4]
    cdef uint32_t csel, cpl = c.cpl, new_cpl, gdpl, cdpl
    cdef int conforming
    if read_desc(c, gsel, 0, &g, &gh):
        return R_EXC
    gdpl = desc_dpl(g)
    if (gh >> 40) & 0x1f or gdpl < cpl or gdpl < (gsel & 3):
        return raise_exc(c, EXC_GP, gsel & 0xfffc, 1)
    if not desc_present(g):
        return raise_exc(c, EXC_NP, gsel & 0xfffc, 1)
    csel = <uint32_t>(g >> 16) & 0xffff
    if (csel & 0xfffc) == 0:
        return raise_gp0(c)
    if read_desc(c, csel, 0, &cd, NULL):
        return R_EXC
    cdpl = desc_dpl(cd)
    conforming = (cd & (<uint64_t>1 << 42)) != 0
    if not desc_is_code(cd) or cdpl > cpl or (not call and not conforming and cdpl != cpl):
        return raise_exc(c, EXC_GP, csel & 0xfffc, 1)
    if not code_is_64(cd):
        return raise_exc(c, EXC_GP, csel & 0xfffc, 1)
    if not desc_present(cd):
        return raise_exc(c, EXC_NP, csel & 0xfffc, 1)
    target = (g & 0xffff) | ((g >> 32) & 0xffff0000ULL) | ((gh & 0xffffffffULL) << 32)
    if not is_canonical(target):
        return raise_gp0(c)
    new_cpl = cpl if conforming else cdpl
    if call and new_cpl < cpl:
        if tss_read64(c, 4 + 8 * new_cpl, 0, &nsp):
            return R_EXC
        if not is_canonical(nsp) or not is_canonical(nsp - 1) or not is_canonical(nsp - 32):
            return raise_exc(c, EXC_SS, 0, 1)
        set_cpl(c, new_cpl)
        if (mem_write(c, nsp - 8, 8, c.seg_sel[SEG_SS]) or mem_write(c, nsp - 16, 8, sp)
                or mem_write(c, nsp - 24, 8, c.seg_sel[SEG_CS]) or mem_write(c, nsp - 32, 8, u.rip_next)):
            set_cpl(c, cpl)
            return R_EXC
        c.r[4] = nsp - 32
        c.seg_sel[SEG_SS] = <uint16_t>new_cpl
    elif call:
        if mem_write(c, sp - 8, 8, c.seg_sel[SEG_CS]) or mem_write(c, sp - 16, 8, u.rip_next):
            return R_EXC
        c.r[4] = sp - 16
    c.seg_sel[SEG_CS] = <uint16_t>((csel & 0xfffc) | new_cpl)
    set_code_mode(c, 0)
    c.rip = target
    return R_BRANCH

cdef int far_branch(Cpu* c, const Uop* u, int call) noexcept nogil:
    """FF /5 JMP m16:xx and FF /3 CALL m16:xx: the far pointer from memory."""
    cdef uint32_t sz = u.osz
    cdef uint64_t a = ea_of(c, u), off, s
    if mem_read(c, a, sz, &off) or mem_read(c, a + sz, 2, &s):
        return R_EXC
    return far_to(c, u, <uint32_t>s & 0xffff, off, call)

cdef int far_to(Cpu* c, const Uop* u, uint32_t sel, uint64_t off, int call) noexcept nogil:
    """JMP / CALL far (SDM JMP, CALL; IA-32e mode and protected mode): to a
    code segment at the same privilege (conforming: DPL <= CPL;
    non-conforming: RPL <= CPL and DPL = CPL; CS.RPL becomes the CPL), 64-bit
    or 32-bit (compatibility mode, compat32.pxi), or through a 64-bit call
    gate. CALL pushes CS and the return address as operand-size slots
    (16-bit: IP, 32-bit: EIP, 64-bit: RIP)."""
    cdef uint32_t sz = u.osz, cpl = c.cpl, dpl
    cdef uint64_t d, sp = c.r[4]
    cdef int kind
    if (sel & 0xfffc) == 0:
        return raise_gp0(c)
    if read_desc(c, sel, 0, &d, NULL):
        return R_EXC
    if not desc_is_code(d):
        if d & (<uint64_t>1 << 44) or ((d >> 40) & 0xf) != 0xc:
            return raise_exc(c, EXC_GP, sel & 0xfffc, 1)
        return far_through_gate(c, u, sel, call)
    dpl = desc_dpl(d)
    kind = code_kind(c, d)
    if kind < 0:                                 # L and D both set, or 16-bit code
        return raise_exc(c, EXC_GP, sel & 0xfffc, 1)
    if d & (<uint64_t>1 << 42):
        if dpl > cpl:
            return raise_exc(c, EXC_GP, sel & 0xfffc, 1)
    elif (sel & 3) > cpl or dpl != cpl:
        return raise_exc(c, EXC_GP, sel & 0xfffc, 1)
    if not desc_present(d):
        return raise_exc(c, EXC_NP, sel & 0xfffc, 1)
    if kind == 1:
        off &= 0xffffffffULL
    if not is_canonical(off):
        return raise_gp0(c)
    if call:
        if mem_write(c, sp - sz, sz, c.seg_sel[SEG_CS]) or mem_write(c, sp - 2 * sz, sz, u.rip_next):
            return R_EXC
        c.r[4] = sp - 2 * sz
    c.seg_sel[SEG_CS] = <uint16_t>((sel & 0xfffc) | cpl)
    set_code_mode(c, <uint32_t>kind)
    c.rip = off
    return R_BRANCH

cdef int op_jmp_far(Cpu* c, const Uop* u) noexcept nogil:
    return far_branch(c, u, 0)

cdef int op_call_far(Cpu* c, const Uop* u) noexcept nogil:
    return far_branch(c, u, 1)

cdef void init_sysmode():
    op(0, 0xcf, op_iret, D_END)
    op(0, 0xcb, op_retf, D_END)
    op(0, 0xca, op_retf, D_END, I_16)
    op(1, 0x07, op_sysret, D_END)
    op(0, 0x8e, op_mov_to_sreg, D_MODRM)
    op(0, 0x8c, op_mov_from_sreg, D_MODRM)
    op(1, 0xa0, op_push_sreg, D_DEF64, I_NONE, SEG_FS)
    op(1, 0xa8, op_push_sreg, D_DEF64, I_NONE, SEG_GS)
    op(1, 0xa1, op_pop_sreg, D_DEF64, I_NONE, SEG_FS)
    op(1, 0xa9, op_pop_sreg, D_DEF64, I_NONE, SEG_GS)
    grp(1, 0x00, 0, op_sldt_str, 0)
    grp(1, 0x00, 1, op_sldt_str, 0)
    grp(1, 0x00, 2, op_lldt_ltr, 0)
    grp(1, 0x00, 3, op_lldt_ltr, 0)
    op(1, 0x33, op_rdpmc, 0)
    op(1, 0x21, op_mov_dr, D_F64, I_8, 0)
    op(1, 0x23, op_mov_dr, D_F64, I_8, 1)
    opfix(1, 0x21, fix_mov_dr)
    opfix(1, 0x23, fix_mov_dr)
    op(1, 0x02, op_lar_lsl, D_MODRM, I_NONE, CHK_LAR)
    op(1, 0x03, op_lar_lsl, D_MODRM, I_NONE, CHK_LSL)
    grp(1, 0x00, 4, op_verr_verw, 0)
    grp(1, 0x00, 5, op_verr_verw, 0)
    op(1, 0xb2, op_load_far_ptr, D_MODRM | D_MEMONLY, I_NONE, SEG_SS)
    op(1, 0xb4, op_load_far_ptr, D_MODRM | D_MEMONLY, I_NONE, SEG_FS)
    op(1, 0xb5, op_load_far_ptr, D_MODRM | D_MEMONLY, I_NONE, SEG_GS)
    grp(0, 0xff, 3, op_call_far, D_MEMONLY | D_END)
    grp(0, 0xff, 5, op_jmp_far, D_MEMONLY | D_END)
