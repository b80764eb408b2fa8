# JMP, Jcc, CALL, RET, LOOP/JRCXZ, PUSH, POP, LEAVE, SETcc, CMOVcc.

cdef inline int push64(Cpu* c, uint64_t v, uint32_t sz) noexcept nogil:
    cdef uint64_t sp = c.r[4] - sz
    if mem_write(c, sp, sz, v):
        return R_EXC
    c.r[4] = sp
    return R_NEXT

cdef int op_jmp(Cpu* c, const Uop* u) noexcept nogil:
    c.rip = u.imm
    return R_BRANCH

cdef int op_jcc(Cpu* c, const Uop* u) noexcept nogil:
    return jcc_taken(c, u, eval_cond(c, u.sub))

cdef int op_call(Cpu* c, const Uop* u) noexcept nogil:
    if push64(c, u.rip_next, 8):
        return R_EXC
    c.rip = u.imm
    return R_BRANCH

cdef int op_ret(Cpu* c, const Uop* u) noexcept nogil:
    """C3 / C2 imm16."""
    cdef uint64_t v
    if mem_read(c, c.r[4], 8, &v):
        return R_EXC
    if not is_canonical(v):
        return raise_gp0(c)       # faults at the RET, nothing popped (SDM RET, 64-bit mode)
    c.r[4] += 8 + (u.imm & 0xffff)
    c.rip = v
    return R_BRANCH

cdef int op_call_ind(Cpu* c, const Uop* u) noexcept nogil:
    """FF /2."""
    cdef uint64_t t
    if u.mem:
        if mem_read(c, ea_of(c, u), 8, &t):
            return R_EXC
    else:
        t = c.r[u.rm]
    if not is_canonical(t):
        return raise_gp0(c)       # faults at the CALL, before the push (SDM CALL)
    if push64(c, u.rip_next, 8):
        return R_EXC
    c.rip = t
    return R_BRANCH

cdef int op_jmp_ind(Cpu* c, const Uop* u) noexcept nogil:
    """FF /4."""
    cdef uint64_t t
    if u.mem:
        if mem_read(c, ea_of(c, u), 8, &t):
            return R_EXC
    else:
        t = c.r[u.rm]
    if not is_canonical(t):
        return raise_gp0(c)       # faults at the JMP (SDM JMP, 64-bit mode)
    c.rip = t
    return R_BRANCH

cdef int op_branch_nc(Cpu* c, const Uop* u) noexcept nogil:
    """A direct JMP/Jcc/CALL/LOOP whose target is not canonical (decode_one
    puts the real handler in imm2): taken, it faults at the branch with
    nothing done, as the SDM's "IF tempRIP is not canonical THEN #GP(0)"."""
    cdef uint64_t sp = c.r[4]
    cdef uint64_t cx = c.r[1]
    cdef int r = (<uop_fn><uintptr_t>u.imm2)(c, u)
    if r == R_BRANCH and c.rip == u.imm:
        c.r[4] = sp
        c.r[1] = cx
        return raise_gp0(c)
    return r

cdef int op_loop(Cpu* c, const Uop* u) noexcept nogil:
    """E0 LOOPNE, E1 LOOPE, E2 LOOP, E3 JRCXZ (count in RCX, or ECX with 67)."""
    cdef uint64_t cnt
    cdef int take
    cdef uint64_t m = 0xffffffffULL if u.asz32 else 0xffffffffffffffffULL
    if u.sub == 3:
        take = (c.r[1] & m) == 0
    else:
        cnt = (c.r[1] - 1) & m
        if u.asz32:
            c.r[1] = cnt
        else:
            c.r[1] = cnt
        take = cnt != 0
        if u.sub == 0:
            take = take and not lf_zf(c)
        elif u.sub == 1:
            take = take and lf_zf(c)
    c.rip = u.imm if take else u.rip_next
    return R_BRANCH

cdef int op_push_r(Cpu* c, const Uop* u) noexcept nogil:
    return push64(c, rget(c, u.reg, u.osz), u.osz)

cdef int op_pop_r(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t v
    if mem_read(c, c.r[4], u.osz, &v):
        return R_EXC
    c.r[4] += u.osz
    rset(c, u.reg, u.osz, v)
    return R_NEXT

cdef int op_push_imm(Cpu* c, const Uop* u) noexcept nogil:
    return push64(c, u.imm, u.osz)

cdef int op_push_rm(Cpu* c, const Uop* u) noexcept nogil:
    """FF /6."""
    cdef uint64_t v
    if u.mem:
        if mem_read(c, ea_of(c, u), u.osz, &v):
            return R_EXC
    else:
        v = rget(c, u.rm, u.osz)
    return push64(c, v, u.osz)

cdef int op_pop_rm(Cpu* c, const Uop* u) noexcept nogil:
    """8F /0: RSP is incremented before the destination address is computed
    (SDM POP)."""
    cdef uint64_t v, old = c.r[4]
    if mem_read(c, old, u.osz, &v):
        return R_EXC
    if u.mem:
        c.r[4] = old + u.osz
        if mem_write(c, ea_of(c, u), u.osz, v):
            c.r[4] = old
            return R_EXC
    else:
        c.r[4] = old + u.osz
        rset(c, u.rm, u.osz, v)
    return R_NEXT

cdef int op_leave(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t v
    if mem_read(c, c.r[5], u.osz, &v):
        return R_EXC
    c.r[4] = c.r[5] + u.osz
    rset(c, 5, u.osz, v)
    return R_NEXT

cdef int op_setcc(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t v = eval_cond(c, u.opc & 15)
    if u.mem:
        if mem_write(c, ea_of(c, u), 1, v):
            return R_EXC
    else:
        set8(c, u.rm, v)
    return R_NEXT

cdef int op_cmovcc(Cpu* c, const Uop* u) noexcept nogil:
    """The source is read (and may fault) whatever the condition; a 32-bit
    destination is zero-extended even when the move does not happen."""
    cdef uint64_t v
    if u.mem:
        if mem_read(c, ea_of(c, u), u.osz, &v):
            return R_EXC
    else:
        v = rget(c, u.rm, u.osz)
    if eval_cond(c, u.opc & 15):
        rset(c, u.reg, u.osz, v)
    elif u.osz == 4:
        c.r[u.reg] &= 0xffffffffULL
    return R_NEXT

cdef void init_control():
    cdef int k
    op(0, 0xeb, op_jmp, D_F64 | D_END, I_REL8)
    op(0, 0xe9, op_jmp, D_F64 | D_END, I_RELZ)
    op(0, 0xe8, op_call, D_F64 | D_END, I_RELZ)
    op(0, 0xc3, op_ret, D_F64 | D_END)
    op(0, 0xc2, op_ret, D_F64 | D_END, I_16)
    for k in range(16):
        op(0, 0x70 + k, op_jcc, D_F64 | D_END, I_REL8, k)
        op(1, 0x80 + k, op_jcc, D_F64 | D_END, I_RELZ, k)
        op(1, 0x90 + k, op_setcc, D_MODRM | D_BYTE)
        op(1, 0x40 + k, op_cmovcc, D_MODRM)
    for k in range(4):
        op(0, 0xe0 + k, op_loop, D_F64 | D_END, I_REL8, k)
    for k in range(8):
        op(0, 0x50 + k, op_push_r, D_OPREG | D_DEF64)
        op(0, 0x58 + k, op_pop_r, D_OPREG | D_DEF64)
    op(0, 0x68, op_push_imm, D_DEF64, I_Z)
    op(0, 0x6a, op_push_imm, D_DEF64, I_8)
    grp(0, 0x8f, 0, op_pop_rm, D_DEF64)
    grp(0, 0xff, 2, op_call_ind, D_F64 | D_END)
    grp(0, 0xff, 4, op_jmp_ind, D_F64 | D_END)
    grp(0, 0xff, 6, op_push_rm, D_DEF64)
    op(0, 0xc9, op_leave, D_DEF64)
