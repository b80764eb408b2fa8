# ADD OR ADC SBB AND SUB XOR CMP, TEST, INC DEC NEG NOT (SDM Vol. 2).

cdef inline uint64_t alu(Cpu* c, uint32_t op, uint32_t sz, uint64_t a, uint64_t b) noexcept nogil:
    """op is the group-1 number: 0 ADD 1 OR 2 ADC 3 SBB 4 AND 5 SUB 6 XOR 7 CMP."""
    cdef uint64_t r, cin
    if op == 0:
        r = a + b
        lf_set(c, LF_ADD, sz, a, b, r)
    elif op == 5 or op == 7:
        r = a - b
        lf_set(c, LF_SUB, sz, a, b, r)
    elif op == 4:
        r = a & b
        lf_set(c, LF_LOGIC, sz, a, b, r)
    elif op == 6:
        r = a ^ b
        lf_set(c, LF_LOGIC, sz, a, b, r)
    elif op == 1:
        r = a | b
        lf_set(c, LF_LOGIC, sz, a, b, r)
    elif op == 2:
        cin = lf_cf(c)
        r = a + b + cin
        c.lf_c = cin
        lf_set(c, LF_ADC, sz, a, b, r)
    else:
        cin = lf_cf(c)
        r = a - b - cin
        c.lf_c = cin
        lf_set(c, LF_SBB, sz, a, b, r)
    return r & SZ_MASK[sz]

cdef int op_alu_rm_r(Cpu* c, const Uop* u) noexcept nogil:
    """00-39 even forms: r/m op= reg."""
    cdef uint32_t sz = u.osz
    cdef uint64_t a, b = rget(c, u.reg, sz), r, addr
    if u.mem:
        addr = ea_of(c, u)
        if u.sub == 7:
            if mem_read(c, addr, sz, &a):
                return R_EXC
            alu(c, 7, sz, a, b)
            return R_NEXT
        if mem_read_rmw(c, addr, sz, &a):
            return R_EXC
        r = alu(c, u.sub, sz, a, b)
        if mem_write(c, addr, sz, r):
            return R_EXC
        return R_NEXT
    a = rget(c, u.rm, sz)
    r = alu(c, u.sub, sz, a, b)
    if u.sub != 7:
        rset(c, u.rm, sz, r)
    return R_NEXT

cdef int op_alu_r_rm(Cpu* c, const Uop* u) noexcept nogil:
    """02-3B: reg op= r/m."""
    cdef uint32_t sz = u.osz
    cdef uint64_t a = rget(c, u.reg, sz), b, r
    if u.mem:
        if mem_read(c, ea_of(c, u), sz, &b):
            return R_EXC
    else:
        b = rget(c, u.rm, sz)
    r = alu(c, u.sub, sz, a, b)
    if u.sub != 7:
        rset(c, u.reg, sz, r)
    return R_NEXT

cdef int op_alu_a_imm(Cpu* c, const Uop* u) noexcept nogil:
    """04-3D: AL/eAX op= imm."""
    cdef uint32_t sz = u.osz
    cdef uint64_t r = alu(c, u.sub, sz, rget(c, 0, sz), u.imm & SZ_MASK[sz])
    if u.sub != 7:
        rset(c, 0, sz, r)
    return R_NEXT

cdef int op_alu_rm_imm(Cpu* c, const Uop* u) noexcept nogil:
    """80, 81, 83: group 1, r/m op= imm."""
    cdef uint32_t sz = u.osz
    cdef uint64_t a, b = u.imm & SZ_MASK[sz], r, addr
    if u.mem:
        addr = ea_of(c, u)
        if u.sub == 7:
            if mem_read(c, addr, sz, &a):
                return R_EXC
            alu(c, 7, sz, a, b)
            return R_NEXT
        if mem_read_rmw(c, addr, sz, &a):
            return R_EXC
        r = alu(c, u.sub, sz, a, b)
        if mem_write(c, addr, sz, r):
            return R_EXC
        return R_NEXT
    a = rget(c, u.rm, sz)
    r = alu(c, u.sub, sz, a, b)
    if u.sub != 7:
        rset(c, u.rm, sz, r)
    return R_NEXT

cdef int op_test_rm_r(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint32_t sz = u.osz
    cdef uint64_t a, b = rget(c, u.reg, sz)
    if u.mem:
        if mem_read(c, ea_of(c, u), sz, &a):
            return R_EXC
    else:
        a = rget(c, u.rm, sz)
    lf_set(c, LF_LOGIC, sz, a, b, a & b)
    return R_NEXT

cdef int op_test_a_imm(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t a = rget(c, 0, u.osz)
    lf_set(c, LF_LOGIC, u.osz, a, u.imm, a & u.imm)
    return R_NEXT

cdef int op_test_rm_imm(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint32_t sz = u.osz
    cdef uint64_t a
    if u.mem:
        if mem_read(c, ea_of(c, u), sz, &a):
            return R_EXC
    else:
        a = rget(c, u.rm, sz)
    lf_set(c, LF_LOGIC, sz, a, u.imm, a & u.imm)
    return R_NEXT

cdef inline int rmw_unary(Cpu* c, const Uop* u, uint32_t kind) noexcept nogil:
    """kind: 0 INC, 1 DEC, 2 NOT, 3 NEG."""
    cdef uint32_t sz = u.osz
    cdef uint64_t a, r, addr = 0
    if u.mem:
        addr = ea_of(c, u)
        if mem_read_rmw(c, addr, sz, &a):
            return R_EXC
    else:
        a = rget(c, u.rm, sz)
    if kind == 0:
        c.lf_c = lf_cf(c)
        r = a + 1
        lf_set(c, LF_INC, sz, a, 1, r)
    elif kind == 1:
        c.lf_c = lf_cf(c)
        r = a - 1
        lf_set(c, LF_DEC, sz, a, 1, r)
    elif kind == 2:
        r = ~a
    else:
        r = 0 - a
        lf_set(c, LF_SUB, sz, 0, a, r)
    r &= SZ_MASK[sz]
    if u.mem:
        if mem_write(c, addr, sz, r):
            return R_EXC
    else:
        rset(c, u.rm, sz, r)
    return R_NEXT

cdef int op_inc(Cpu* c, const Uop* u) noexcept nogil:
    return rmw_unary(c, u, 0)

cdef int op_dec(Cpu* c, const Uop* u) noexcept nogil:
    return rmw_unary(c, u, 1)

cdef int op_not(Cpu* c, const Uop* u) noexcept nogil:
    return rmw_unary(c, u, 2)

cdef int op_neg(Cpu* c, const Uop* u) noexcept nogil:
    return rmw_unary(c, u, 3)

cdef void init_alu():
    cdef int k, base
    for k in range(8):
        base = k * 8
        op(0, base + 0, op_alu_rm_r, D_MODRM | D_BYTE | (D_LOCK if k != 7 else 0), I_NONE, k)
        op(0, base + 1, op_alu_rm_r, D_MODRM | (D_LOCK if k != 7 else 0), I_NONE, k)
        op(0, base + 2, op_alu_r_rm, D_MODRM | D_BYTE, I_NONE, k)
        op(0, base + 3, op_alu_r_rm, D_MODRM, I_NONE, k)
        op(0, base + 4, op_alu_a_imm, D_BYTE, I_8, k)
        op(0, base + 5, op_alu_a_imm, 0, I_Z, k)
        grp(0, 0x80, k, op_alu_rm_imm, D_BYTE | D_LOCK, I_8, (k != 7))
        grp(0, 0x81, k, op_alu_rm_imm, D_LOCK, I_Z, (k != 7))
        grp(0, 0x83, k, op_alu_rm_imm, D_LOCK, I_8, (k != 7))
    op(0, 0x84, op_test_rm_r, D_MODRM | D_BYTE)
    op(0, 0x85, op_test_rm_r, D_MODRM)
    op(0, 0xa8, op_test_a_imm, D_BYTE, I_8)
    op(0, 0xa9, op_test_a_imm, 0, I_Z)
    for k in range(2):
        grp(0, 0xf6, k, op_test_rm_imm, D_BYTE | D_IMM_TEST | D_LOCK)
        grp(0, 0xf7, k, op_test_rm_imm, D_IMM_TEST | D_LOCK)
    grp(0, 0xf6, 2, op_not, D_BYTE | D_IMM_TEST | D_LOCK, I_NONE, 1)
    grp(0, 0xf7, 2, op_not, D_IMM_TEST | D_LOCK, I_NONE, 1)
    grp(0, 0xf6, 3, op_neg, D_BYTE | D_IMM_TEST | D_LOCK, I_NONE, 1)
    grp(0, 0xf7, 3, op_neg, D_IMM_TEST | D_LOCK, I_NONE, 1)
    grp(0, 0xfe, 0, op_inc, D_BYTE | D_LOCK, I_NONE, 1)
    grp(0, 0xfe, 1, op_dec, D_BYTE | D_LOCK, I_NONE, 1)
    grp(0, 0xff, 0, op_inc, D_LOCK, I_NONE, 1)
    grp(0, 0xff, 1, op_dec, D_LOCK, I_NONE, 1)
