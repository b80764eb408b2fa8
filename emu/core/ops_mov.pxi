# MOV, MOVZX, MOVSX, MOVSXD, LEA, XCHG with a register, NOP forms.

cdef int op_mov_rm_r(Cpu* c, const Uop* u) noexcept nogil:
    """88/89: r/m = reg."""
    cdef uint64_t v = rget(c, u.reg, u.osz)
    if u.mem:
        if mem_write(c, ea_of(c, u), u.osz, v):
            return R_EXC
    else:
        rset(c, u.rm, u.osz, v)
    return R_NEXT

cdef int op_mov_r_rm(Cpu* c, const Uop* u) noexcept nogil:
    """8A/8B: reg = r/m."""
    cdef uint64_t v
    if u.mem:
        if mem_read(c, ea_of(c, u), u.osz, &v):
            return R_EXC
    else:
        v = rget(c, u.rm, u.osz)
    rset(c, u.reg, u.osz, v)
    return R_NEXT

cdef int op_mov_r64_rm64(Cpu* c, const Uop* u) noexcept nogil:
    """REX.W 8B with a memory operand: the most common load."""
    cdef uint64_t v
    if mem_read(c, ea_of(c, u), 8, &v):
        return R_EXC
    c.r[u.reg] = v
    return R_NEXT

cdef int op_mov_rm_imm(Cpu* c, const Uop* u) noexcept nogil:
    """C6/C7 /0."""
    cdef uint64_t v = u.imm & SZ_MASK[u.osz]
    if u.mem:
        if mem_write(c, ea_of(c, u), u.osz, v):
            return R_EXC
    else:
        rset(c, u.rm, u.osz, v)
    return R_NEXT

cdef int op_mov_r_imm(Cpu* c, const Uop* u) noexcept nogil:
    """B0-BF."""
    rset(c, u.reg, u.osz, u.imm)
    return R_NEXT

cdef int op_mov_a_moffs(Cpu* c, const Uop* u) noexcept nogil:
    """A0/A1."""
    cdef uint64_t v
    if mem_read(c, ea_of(c, u), u.osz, &v):
        return R_EXC
    rset(c, 0, u.osz, v)
    return R_NEXT

cdef int op_mov_moffs_a(Cpu* c, const Uop* u) noexcept nogil:
    """A2/A3."""
    if mem_write(c, ea_of(c, u), u.osz, rget(c, 0, u.osz)):
        return R_EXC
    return R_NEXT

cdef int op_lea(Cpu* c, const Uop* u) noexcept nogil:
    """8D: the offset only, no segment base."""
    cdef uint64_t a = <uint64_t>u.disp + c.r[u.base] + (c.r[u.index] << u.scale)
    if u.asz32:
        a &= 0xffffffffULL
    rset(c, u.reg, u.osz, a)
    return R_NEXT

cdef int op_movzx(Cpu* c, const Uop* u) noexcept nogil:
    """0F B6 / 0F B7: u.sub is the source size."""
    cdef uint64_t v
    if u.mem:
        if mem_read(c, ea_of(c, u), u.sub, &v):
            return R_EXC
    else:
        v = rget(c, u.rm, u.sub)
    rset(c, u.reg, u.osz, v)
    return R_NEXT

cdef int op_movsx(Cpu* c, const Uop* u) noexcept nogil:
    """0F BE / 0F BF / 63: sign-extend a u.sub-byte source."""
    cdef uint64_t v
    if u.mem:
        if mem_read(c, ea_of(c, u), u.sub, &v):
            return R_EXC
    else:
        v = rget(c, u.rm, u.sub)
    rset(c, u.reg, u.osz, <uint64_t>sext(v, u.sub))
    return R_NEXT

cdef int op_xchg_rm_r(Cpu* c, const Uop* u) noexcept nogil:
    """86/87: always locked with memory."""
    cdef uint64_t a, b = rget(c, u.reg, u.osz), addr
    if u.mem:
        addr = ea_of(c, u)
        if mem_read_rmw(c, addr, u.osz, &a):
            return R_EXC
        if mem_write(c, addr, u.osz, b):
            return R_EXC
    else:
        a = rget(c, u.rm, u.osz)
        rset(c, u.rm, u.osz, b)
    rset(c, u.reg, u.osz, a)
    return R_NEXT

cdef int op_xchg_a_r(Cpu* c, const Uop* u) noexcept nogil:
    """91-97 (and 90 with REX.B)."""
    cdef uint64_t a = rget(c, 0, u.osz), b = rget(c, u.reg, u.osz)
    rset(c, 0, u.osz, b)
    rset(c, u.reg, u.osz, a)
    return R_NEXT

cdef int op_nop(Cpu* c, const Uop* u) noexcept nogil:
    return R_NEXT

cdef int fix_nop90(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """90 is NOP (or PAUSE with F3) unless REX.B makes it XCHG R8, RAX."""
    if d.rex & 1:
        u.fn = op_xchg_a_r
    else:
        u.fn = op_nop
    return 0

cdef int fix_mov_load(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    if u.osz == 8 and u.mem:
        u.fn = op_mov_r64_rm64
    return 0

cdef void init_mov():
    cdef int k
    op(0, 0x88, op_mov_rm_r, D_MODRM | D_BYTE)
    op(0, 0x89, op_mov_rm_r, D_MODRM)
    op(0, 0x8a, op_mov_r_rm, D_MODRM | D_BYTE)
    op(0, 0x8b, op_mov_r_rm, D_MODRM)
    opfix(0, 0x8b, fix_mov_load)
    grp(0, 0xc6, 0, op_mov_rm_imm, D_BYTE, I_8)
    grp(0, 0xc7, 0, op_mov_rm_imm, 0, I_Z)
    for k in range(8):
        op(0, 0xb0 + k, op_mov_r_imm, D_OPREG | D_BYTE, I_8)
        op(0, 0xb8 + k, op_mov_r_imm, D_OPREG, I_V)
        if k:
            op(0, 0x90 + k, op_xchg_a_r, D_OPREG)
    op(0, 0x90, op_nop, D_OPREG)
    opfix(0, 0x90, fix_nop90)
    op(0, 0xa0, op_mov_a_moffs, D_BYTE, I_MOFFS)
    op(0, 0xa1, op_mov_a_moffs, 0, I_MOFFS)
    op(0, 0xa2, op_mov_moffs_a, D_BYTE, I_MOFFS)
    op(0, 0xa3, op_mov_moffs_a, 0, I_MOFFS)
    op(0, 0x8d, op_lea, D_MODRM | D_MEMONLY)
    op(1, 0xb6, op_movzx, D_MODRM | D_BYTE_RM, I_NONE, 1)
    op(1, 0xb7, op_movzx, D_MODRM, I_NONE, 2)
    op(1, 0xbe, op_movsx, D_MODRM | D_BYTE_RM, I_NONE, 1)
    op(1, 0xbf, op_movsx, D_MODRM, I_NONE, 2)
    op(0, 0x63, op_movsx, D_MODRM, I_NONE, 4)
    op(0, 0x86, op_xchg_rm_r, D_MODRM | D_BYTE | D_LOCK)
    op(0, 0x87, op_xchg_rm_r, D_MODRM | D_LOCK)
    # NOP r/m (0F 1F /0 and the hint space 0F 18-1F), ENDBR64 is F3 0F 1E FA
    for k in range(0x18, 0x20):
        op(1, k, op_nop, D_MODRM)
