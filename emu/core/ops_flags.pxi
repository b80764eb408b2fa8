# Flag instructions: CLC STC CMC CLD STD, LAHF SAHF, PUSHF POPF, and ENTER
# (SDM Vol. 2). CLI/STI live with the privileged instructions.

cdef enum:
    F_IOPL = 0x3000
    F_NT = 0x4000
    F_RF = 0x10000
    F_VM = 0x20000
    # the bits POPF may write at CPL 0: all defined flags but RF VM VIF VIP
    POPF_BITS = 0x247fd5

cdef int op_clc(Cpu* c, const Uop* u) noexcept nogil:
    materialize_flags(c)
    c.rflags &= ~(<uint64_t>F_CF)
    return R_NEXT

cdef int op_stc(Cpu* c, const Uop* u) noexcept nogil:
    materialize_flags(c)
    c.rflags |= F_CF
    return R_NEXT

cdef int op_cmc(Cpu* c, const Uop* u) noexcept nogil:
    materialize_flags(c)
    c.rflags ^= F_CF
    return R_NEXT

cdef int op_cld(Cpu* c, const Uop* u) noexcept nogil:
    c.rflags &= ~(<uint64_t>F_DF)
    return R_NEXT

cdef int op_std(Cpu* c, const Uop* u) noexcept nogil:
    c.rflags |= F_DF
    return R_NEXT

cdef int op_lahf(Cpu* c, const Uop* u) noexcept nogil:
    """AH = SF:ZF:0:AF:0:PF:1:CF."""
    set8(c, 17, (flags_arith(c) & 0xd5) | 2)
    return R_NEXT

cdef int op_sahf(Cpu* c, const Uop* u) noexcept nogil:
    """SF ZF AF PF CF from AH; OF is kept."""
    materialize_flags(c)
    c.rflags = (c.rflags & ~(<uint64_t>0xd5)) | (get8(c, 17) & 0xd5)
    return R_NEXT

cdef int op_pushf(Cpu* c, const Uop* u) noexcept nogil:
    """9C: the image has RF and VM clear; 66 pushes the low 16 bits."""
    return push64(c, get_rflags(c) & ~(<uint64_t>(F_RF | F_VM)), u.osz)

cdef int op_popf(Cpu* c, const Uop* u) noexcept nogil:
    """9D (64-bit mode, no virtual-8086): CPL 0 may change IOPL and IF;
    CPL <= IOPL may change IF but not IOPL; otherwise neither changes.
    RF is cleared; VM, VIF, VIP and reserved bits keep their values.
    With 66 only the low 16 bits are loaded."""
    cdef uint64_t v, old, allowed, iopl
    if mem_read(c, c.r[4], u.osz, &v):
        return R_EXC
    old = get_rflags(c)
    allowed = POPF_BITS
    iopl = (old >> 12) & 3
    if c.cpl > 0:
        allowed &= ~(<uint64_t>F_IOPL)
        if c.cpl > iopl:
            allowed &= ~(<uint64_t>F_IF)
    if u.osz == 2:
        allowed &= 0xffff
    v = ((old & ~allowed) | (v & allowed)) & ~(<uint64_t>F_RF)
    c.r[4] += u.osz
    c.rflags = v | 2
    c.lf_op = LF_NONE
    # SMAP permissions cached in the TLB depend on AC for supervisor accesses
    if old & ~v & F_AC and c.cr4 & CR4_SMAP:
        tlb_smap_ac_cleared(c)
    if (old ^ v) & 0x100:
        # TF changed: end the block, so single-stepping starts (or stops)
        # at the next instruction boundary (core/run.pxi)
        c.rip = u.rip_next
        return R_BRANCH
    return R_NEXT

cdef int op_enter(Cpu* c, const Uop* u) noexcept nogil:
    """C8 imm16, imm8: push rBP; copy level-1 frame pointers from the old
    frame; push the new frame pointer when level >= 1; rBP = frame;
    rSP -= imm16. The new stack top is then checked for writing (the host
    CPU faults there without changing it). Registers change only when every
    access succeeded."""
    cdef uint32_t sz = u.osz
    cdef uint32_t level = <uint32_t>(u.imm2 & 31)
    cdef uint64_t sp = c.r[4], bp = c.r[5], frame, v
    cdef uint32_t i
    sp -= sz
    if mem_write(c, sp, sz, bp):
        return R_EXC
    frame = sp
    if level > 0:
        for i in range(1, level):
            if mem_read(c, bp - i * sz, sz, &v):
                return R_EXC
            sp -= sz
            if mem_write(c, sp, sz, v):
                return R_EXC
        sp -= sz
        if mem_write(c, sp, sz, frame):
            return R_EXC
    sp -= u.imm & 0xffff
    if mem_read_rmw(c, sp, sz, &v):
        return R_EXC
    rset(c, 5, sz, frame)
    c.r[4] = sp
    return R_NEXT

cdef void init_flags():
    op(0, 0xf8, op_clc, 0)
    op(0, 0xf9, op_stc, 0)
    op(0, 0xf5, op_cmc, 0)
    op(0, 0xfc, op_cld, 0)
    op(0, 0xfd, op_std, 0)
    op(0, 0x9f, op_lahf, 0)
    op(0, 0x9e, op_sahf, 0)
    op(0, 0x9c, op_pushf, D_DEF64)
    op(0, 0x9d, op_popf, D_DEF64)
    op(0, 0xc8, op_enter, D_DEF64, I_16_8)
