# MUL, IMUL (F6/F7 /4 /5, 0F AF, 69, 6B), DIV, IDIV (F6/F7 /6 /7).
# SDM Vol. 2 "MUL", "IMUL", "DIV", "IDIV".
#
# MUL/IMUL set CF = OF = "the high half is significant"; SF ZF AF PF are
# undefined (we give SF ZF PF of the low result, AF 0). DIV/IDIV leave all
# flags undefined: we leave them unchanged. #DE on a zero divisor or when the
# quotient does not fit, raised before any register is written.

cdef inline void md_flags(Cpu* c, uint64_t ovf, uint64_t lo, uint32_t sz) noexcept nogil:
    set_arith_flags(c, ((F_CF | F_OF) if ovf else 0) | szp_flags(lo, sz))

cdef int op_mul1(Cpu* c, const Uop* u) noexcept nogil:
    """F6/F7 /4: unsigned rDX:rAX = rAX * r/m."""
    cdef uint32_t sz = u.osz
    cdef uint64_t b, p, hi
    cdef emu_u128 w
    if ar_load(c, u, sz, &b):
        return R_EXC
    if sz == 8:
        w = (<emu_u128>c.r[0]) * b
        c.r[0] = <uint64_t>w
        hi = <uint64_t>(w >> 64)
        c.r[2] = hi
        md_flags(c, hi, c.r[0], 8)
    elif sz == 4:
        p = (c.r[0] & 0xffffffffULL) * b
        hi = p >> 32
        c.r[0] = p & 0xffffffffULL
        c.r[2] = hi
        md_flags(c, hi, p, 4)
    elif sz == 2:
        p = (c.r[0] & 0xffff) * b
        hi = p >> 16
        rset(c, 0, 2, p)
        rset(c, 2, 2, hi)
        md_flags(c, hi, p, 2)
    else:
        p = (c.r[0] & 0xff) * b
        hi = p >> 8
        rset(c, 0, 2, p)
        md_flags(c, hi, p, 1)
    return R_NEXT

cdef int op_imul1(Cpu* c, const Uop* u) noexcept nogil:
    """F6/F7 /5: signed rDX:rAX = rAX * r/m."""
    cdef uint32_t sz = u.osz
    cdef uint64_t b
    cdef int64_t p
    cdef emu_i128 w
    if ar_load(c, u, sz, &b):
        return R_EXC
    if sz == 8:
        w = (<emu_i128><int64_t>c.r[0]) * <int64_t>b
        c.r[0] = <uint64_t>w
        c.r[2] = <uint64_t>(w >> 64)
        md_flags(c, w != <emu_i128><int64_t>c.r[0], c.r[0], 8)
        return R_NEXT
    p = sext(c.r[0], sz) * sext(b, sz)
    if sz == 4:
        c.r[0] = (<uint64_t>p) & 0xffffffffULL
        c.r[2] = (<uint64_t>p >> 32) & 0xffffffffULL
    elif sz == 2:
        rset(c, 0, 2, <uint64_t>p)
        rset(c, 2, 2, (<uint64_t>p) >> 16)
    else:
        rset(c, 0, 2, <uint64_t>p)
    md_flags(c, p != sext(<uint64_t>p, sz), <uint64_t>p, sz)
    return R_NEXT

cdef inline void md_imul2(Cpu* c, const Uop* u, uint64_t a, uint64_t b) noexcept nogil:
    """Truncating signed multiply into the reg operand (0F AF, 69, 6B)."""
    cdef uint32_t sz = u.osz
    cdef int64_t p
    cdef emu_i128 w
    cdef uint64_t r
    if sz == 8:
        w = (<emu_i128><int64_t>a) * <int64_t>b
        r = <uint64_t>w
        c.r[u.reg] = r
        md_flags(c, w != <emu_i128><int64_t>r, r, 8)
        return
    p = sext(a, sz) * sext(b, sz)
    r = (<uint64_t>p) & SZ_MASK[sz]
    rset(c, u.reg, sz, r)
    md_flags(c, p != sext(r, sz), r, sz)

cdef int op_imul_r_rm(Cpu* c, const Uop* u) noexcept nogil:
    """0F AF: reg = reg * r/m."""
    cdef uint64_t b
    if ar_load(c, u, u.osz, &b):
        return R_EXC
    md_imul2(c, u, rget(c, u.reg, u.osz), b)
    return R_NEXT

cdef int op_imul_r_rm_imm(Cpu* c, const Uop* u) noexcept nogil:
    """69 (imm16/32) / 6B (imm8): reg = r/m * imm."""
    cdef uint64_t a
    if ar_load(c, u, u.osz, &a):
        return R_EXC
    md_imul2(c, u, a, u.imm)
    return R_NEXT

cdef int op_div(Cpu* c, const Uop* u) noexcept nogil:
    """F6/F7 /6: unsigned divide rDX:rAX by r/m."""
    cdef uint32_t sz = u.osz
    cdef uint64_t b, n, q
    cdef emu_u128 w, wb
    if ar_load(c, u, sz, &b):
        return R_EXC
    if b == 0:
        return raise_exc(c, EXC_DE, 0, 0)
    if sz == 8:
        if c.r[2] == 0:
            n = c.r[0]
            c.r[0] = n / b
            c.r[2] = n % b
            return R_NEXT
        if c.r[2] >= b:          # the quotient would need more than 64 bits
            return raise_exc(c, EXC_DE, 0, 0)
        w = ((<emu_u128>c.r[2]) << 64) | c.r[0]
        wb = b                   # same C type on both sides: Cython would narrow a mixed division
        c.r[0] = <uint64_t>(w / wb)
        c.r[2] = <uint64_t>(w % wb)
        return R_NEXT
    if sz == 4:
        n = ((c.r[2] & 0xffffffffULL) << 32) | (c.r[0] & 0xffffffffULL)
        q = n / b
        if q > 0xffffffffULL:
            return raise_exc(c, EXC_DE, 0, 0)
        c.r[0] = q
        c.r[2] = n % b
    elif sz == 2:
        n = ((c.r[2] & 0xffff) << 16) | (c.r[0] & 0xffff)
        q = n / b
        if q > 0xffff:
            return raise_exc(c, EXC_DE, 0, 0)
        rset(c, 0, 2, q)
        rset(c, 2, 2, n % b)
    else:
        n = c.r[0] & 0xffff
        q = n / b
        if q > 0xff:
            return raise_exc(c, EXC_DE, 0, 0)
        rset(c, 0, 2, q | ((n % b) << 8))
    return R_NEXT

cdef int op_idiv(Cpu* c, const Uop* u) noexcept nogil:
    """F6/F7 /7: signed divide rDX:rAX by r/m; the quotient truncates toward
    zero and the remainder has the dividend's sign."""
    cdef uint32_t sz = u.osz
    cdef uint64_t b
    cdef int64_t n, d, q, r, lim
    cdef emu_i128 w, wq, wd
    if ar_load(c, u, sz, &b):
        return R_EXC
    d = sext(b, sz)
    if d == 0:
        return raise_exc(c, EXC_DE, 0, 0)
    if sz == 8:
        n = <int64_t>c.r[0]
        if c.r[2] == <uint64_t>(n >> 63):     # the dividend fits in 64 bits
            if d == -1:
                if <uint64_t>n == 0x8000000000000000ULL:
                    return raise_exc(c, EXC_DE, 0, 0)
                c.r[0] = <uint64_t>(-n)
                c.r[2] = 0
                return R_NEXT
            c.r[0] = <uint64_t>(n / d)
            c.r[2] = <uint64_t>(n % d)
            return R_NEXT
        w = <emu_i128>(((<emu_u128>c.r[2]) << 64) | c.r[0])
        # the dividend is outside int64 here: a divisor of 1 always overflows,
        # -1 only fits for +2^63 (and must not reach the C division:
        # INT128_MIN / -1 traps)
        if d == -1:
            if c.r[2] == 0 and c.r[0] == 0x8000000000000000ULL:
                c.r[2] = 0
                return R_NEXT
            return raise_exc(c, EXC_DE, 0, 0)
        if d == 1:
            return raise_exc(c, EXC_DE, 0, 0)
        wd = d
        wq = w / wd
        if wq != <emu_i128><int64_t>wq:
            return raise_exc(c, EXC_DE, 0, 0)
        c.r[0] = <uint64_t>wq
        c.r[2] = <uint64_t>(w % wd)
        return R_NEXT
    if sz == 4:
        n = <int64_t>(((c.r[2] & 0xffffffffULL) << 32) | (c.r[0] & 0xffffffffULL))
        if d == -1 and <uint64_t>n == 0x8000000000000000ULL:
            return raise_exc(c, EXC_DE, 0, 0)
        lim = 0x7fffffff
    elif sz == 2:
        n = <int32_t>(((c.r[2] & 0xffff) << 16) | (c.r[0] & 0xffff))
        lim = 0x7fff
    else:
        n = <int16_t>(c.r[0] & 0xffff)
        lim = 0x7f
    q = n / d
    r = n % d
    if q > lim or q < -lim - 1:
        return raise_exc(c, EXC_DE, 0, 0)
    if sz == 4:
        c.r[0] = (<uint64_t>q) & 0xffffffffULL
        c.r[2] = (<uint64_t>r) & 0xffffffffULL
    elif sz == 2:
        rset(c, 0, 2, <uint64_t>q)
        rset(c, 2, 2, <uint64_t>r)
    else:
        rset(c, 0, 2, ((<uint64_t>q) & 0xff) | (((<uint64_t>r) & 0xff) << 8))
    return R_NEXT

cdef void init_muldiv():
    grp(0, 0xf6, 4, op_mul1, D_BYTE | D_IMM_TEST)
    grp(0, 0xf7, 4, op_mul1, D_IMM_TEST)
    grp(0, 0xf6, 5, op_imul1, D_BYTE | D_IMM_TEST)
    grp(0, 0xf7, 5, op_imul1, D_IMM_TEST)
    grp(0, 0xf6, 6, op_div, D_BYTE | D_IMM_TEST)
    grp(0, 0xf7, 6, op_div, D_IMM_TEST)
    grp(0, 0xf6, 7, op_idiv, D_BYTE | D_IMM_TEST)
    grp(0, 0xf7, 7, op_idiv, D_IMM_TEST)
    op(1, 0xaf, op_imul_r_rm, D_MODRM)
    op(0, 0x69, op_imul_r_rm_imm, D_MODRM, I_Z)
    op(0, 0x6b, op_imul_r_rm_imm, D_MODRM, I_8)
