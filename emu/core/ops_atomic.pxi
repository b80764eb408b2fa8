# CMPXCHG, CMPXCHG8B/CMPXCHG16B, XADD (SDM Vol. 2). One vCPU runs at a
# time per machine thread, so "locked" means: read with write permission
# checked up front, then write, with no other guest access in between.

cdef int op_cmpxchg(Cpu* c, const Uop* u) noexcept nogil:
    """0F B0/B1: compare rAX with r/m; equal: r/m = reg, else rAX = r/m.
    Flags as CMP rAX, r/m. A memory destination is always written (the old
    value back on failure), so it needs write permission either way."""
    cdef uint32_t sz = u.osz
    cdef uint64_t a = rget(c, 0, sz), d, src = rget(c, u.reg, sz), addr = 0
    if u.mem:
        addr = ea_of(c, u)
        if mem_read_rmw(c, addr, sz, &d):
            return R_EXC
    else:
        d = rget(c, u.rm, sz)
    lf_set(c, LF_SUB, sz, a, d, a - d)
    if a == d:
        if u.mem:
            if mem_write(c, addr, sz, src):
                return R_EXC
        else:
            rset(c, u.rm, sz, src)
    else:
        if u.mem:
            if mem_write(c, addr, sz, d):
                return R_EXC
        rset(c, 0, sz, d)
    return R_NEXT

cdef int op_cmpxchg8b(Cpu* c, const Uop* u) noexcept nogil:
    """0F C7 /1: CMPXCHG8B m64, or CMPXCHG16B m128 with REX.W (16-byte
    alignment required, else #GP(0)). Only ZF changes."""
    cdef uint64_t addr = ea_of(c, u), lo, hi, cmp_lo, cmp_hi
    cdef int eq
    materialize_flags(c)
    if u.rex & 8:
        if addr & 15:
            return raise_gp0(c)
        if mem_read_rmw(c, addr, 8, &lo) or mem_read_rmw(c, addr + 8, 8, &hi):
            return R_EXC
        eq = lo == c.r[0] and hi == c.r[2]
        if eq:
            if mem_write(c, addr, 8, c.r[3]) or mem_write(c, addr + 8, 8, c.r[1]):
                return R_EXC
        else:
            if mem_write(c, addr, 8, lo) or mem_write(c, addr + 8, 8, hi):
                return R_EXC
            c.r[0] = lo
            c.r[2] = hi
    else:
        if mem_read_rmw(c, addr, 8, &lo):
            return R_EXC
        cmp_lo = c.r[0] & 0xffffffffULL
        cmp_hi = c.r[2] & 0xffffffffULL
        eq = lo == (cmp_lo | (cmp_hi << 32))
        if eq:
            if mem_write(c, addr, 8, (c.r[3] & 0xffffffffULL) | (c.r[1] << 32)):
                return R_EXC
        else:
            if mem_write(c, addr, 8, lo):
                return R_EXC
            c.r[0] = lo & 0xffffffffULL
            c.r[2] = lo >> 32
    if eq:
        c.rflags |= F_ZF
    else:
        c.rflags &= ~(<uint64_t>F_ZF)
    return R_NEXT

cdef int op_xadd(Cpu* c, const Uop* u) noexcept nogil:
    """0F C0/C1: temp = src + dest; src = dest; dest = temp. Flags as ADD."""
    cdef uint32_t sz = u.osz
    cdef uint64_t s = rget(c, u.reg, sz), d, r, addr
    if u.mem:
        addr = ea_of(c, u)
        if mem_read_rmw(c, addr, sz, &d):
            return R_EXC
        r = s + d
        if mem_write(c, addr, sz, r):
            return R_EXC
        rset(c, u.reg, sz, d)
    else:
        d = rget(c, u.rm, sz)
        r = s + d
        rset(c, u.reg, sz, d)
        rset(c, u.rm, sz, r)
    lf_set(c, LF_ADD, sz, s, d, r)
    return R_NEXT

cdef void init_atomic():
    op(1, 0xb0, op_cmpxchg, D_MODRM | D_BYTE | D_LOCK)
    op(1, 0xb1, op_cmpxchg, D_MODRM | D_LOCK)
    op(1, 0xc0, op_xadd, D_MODRM | D_BYTE | D_LOCK)
    op(1, 0xc1, op_xadd, D_MODRM | D_LOCK)
    grp(1, 0xc7, 1, op_cmpxchg8b, D_MEMONLY | D_LOCK, I_NONE, 1, 0xf)
