# Lazy RFLAGS: arithmetic instructions record (op, size, a, b, result) and
# the six status flags are computed only when something reads them.

cdef uint8_t[256] PARITY
for _i in range(256):
    PARITY[_i] = 1 - (bin(_i).count('1') & 1)

cdef inline void lf_set(Cpu* c, uint32_t op, uint32_t sz, uint64_t a, uint64_t b, uint64_t r) noexcept nogil:
    c.lf_op = op
    c.lf_sz = sz
    c.lf_a = a
    c.lf_b = b
    c.lf_r = r

cdef inline uint64_t lf_cf(Cpu* c) noexcept nogil:
    cdef uint32_t op = c.lf_op
    cdef uint64_t m, a, b, r
    cdef uint32_t bits, n
    if op == LF_NONE:
        return c.rflags & F_CF
    m = SZ_MASK[c.lf_sz]
    a = c.lf_a & m
    b = c.lf_b & m
    r = c.lf_r & m
    if op == LF_SUB:
        return a < b
    if op == LF_ADD:
        return r < a
    if op == LF_LOGIC:
        return 0
    if op == LF_ADC:
        return (r < a) or (c.lf_c != 0 and r == a)
    if op == LF_SBB:
        return (a < b) or (c.lf_c != 0 and a == b)
    if op == LF_INC or op == LF_DEC:
        return c.lf_c & 1
    bits = c.lf_sz * 8
    n = <uint32_t>c.lf_b      # shift count, 1..63
    if op == LF_SHL:
        if n > bits:
            return 0
        return (a >> (bits - n)) & 1
    if op == LF_SHR:
        if n > bits:
            return 0
        return (a >> (n - 1)) & 1
    if op == LF_SAR:
        if n > bits:
            n = bits
        return (<uint64_t>(sext(a, c.lf_sz) >> (n - 1))) & 1
    return 0

cdef inline uint64_t lf_zf(Cpu* c) noexcept nogil:
    if c.lf_op == LF_NONE:
        return (c.rflags >> 6) & 1
    return (c.lf_r & SZ_MASK[c.lf_sz]) == 0

cdef inline uint64_t lf_sf(Cpu* c) noexcept nogil:
    if c.lf_op == LF_NONE:
        return (c.rflags >> 7) & 1
    return (c.lf_r & SZ_SIGN[c.lf_sz]) != 0

cdef inline uint64_t lf_pf(Cpu* c) noexcept nogil:
    if c.lf_op == LF_NONE:
        return (c.rflags >> 2) & 1
    return PARITY[c.lf_r & 0xff]

cdef inline uint64_t lf_af(Cpu* c) noexcept nogil:
    cdef uint32_t op = c.lf_op
    if op == LF_NONE:
        return (c.rflags >> 4) & 1
    if op == LF_LOGIC or op >= LF_SHL:
        return 0
    return ((c.lf_a ^ c.lf_b ^ c.lf_r) >> 4) & 1

cdef inline uint64_t lf_of(Cpu* c) noexcept nogil:
    cdef uint32_t op = c.lf_op
    cdef uint64_t s, a, b, r
    if op == LF_NONE:
        return (c.rflags >> 11) & 1
    s = SZ_SIGN[c.lf_sz]
    a = c.lf_a
    b = c.lf_b
    r = c.lf_r
    if op == LF_ADD or op == LF_ADC or op == LF_INC:
        return (((a ^ r) & (b ^ r)) & s) != 0
    if op == LF_SUB or op == LF_SBB or op == LF_DEC:
        return (((a ^ b) & (a ^ r)) & s) != 0
    if op == LF_SHL:
        return ((r & s) != 0) ^ <int>lf_cf(c)
    if op == LF_SHR:
        return (a & s) != 0
    return 0

cdef inline uint64_t flags_arith(Cpu* c) noexcept nogil:
    """The six status flags as RFLAGS bits."""
    if c.lf_op == LF_NONE:
        return c.rflags & F_ARITH
    return (lf_cf(c) | (lf_pf(c) << 2) | (lf_af(c) << 4) | (lf_zf(c) << 6)
            | (lf_sf(c) << 7) | (lf_of(c) << 11))

cdef inline uint64_t get_rflags(Cpu* c) noexcept nogil:
    return (c.rflags & ~(<uint64_t>F_ARITH)) | flags_arith(c) | 2

cdef inline void materialize_flags(Cpu* c) noexcept nogil:
    if c.lf_op != LF_NONE:
        c.rflags = (c.rflags & ~(<uint64_t>F_ARITH)) | flags_arith(c)
        c.lf_op = LF_NONE

cdef inline void set_arith_flags(Cpu* c, uint64_t f) noexcept nogil:
    """Replace the six status flags with the given RFLAGS bits."""
    c.rflags = (c.rflags & ~(<uint64_t>F_ARITH)) | (f & F_ARITH)
    c.lf_op = LF_NONE

cdef inline uint64_t szp_flags(uint64_t r, uint32_t sz) noexcept nogil:
    """ZF, SF and PF of a result, as RFLAGS bits."""
    r &= SZ_MASK[sz]
    return ((r == 0) << 6) | (((r & SZ_SIGN[sz]) != 0) << 7) | (<uint64_t>PARITY[r & 0xff] << 2)

cdef inline int eval_cond(Cpu* c, uint32_t cc) noexcept nogil:
    """Condition codes tttn (SDM Vol. 1, Appendix B)."""
    cdef uint64_t m, a, b
    cdef int64_t sa, sb
    cdef int res
    cdef uint64_t f
    cdef uint32_t cc_hi
    if c.lf_op == LF_SUB:
        m = SZ_MASK[c.lf_sz]
        a = c.lf_a & m
        b = c.lf_b & m
        cc_hi = cc >> 1
        if cc_hi == 1:      # B / AE
            res = a < b
        elif cc_hi == 2:    # E / NE
            res = a == b
        elif cc_hi == 3:    # BE / A
            res = a <= b
        elif cc_hi == 6:    # L / GE
            res = sext(a, c.lf_sz) < sext(b, c.lf_sz)
        elif cc_hi == 7:    # LE / G
            res = sext(a, c.lf_sz) <= sext(b, c.lf_sz)
        elif cc_hi == 4:    # S / NS
            res = (c.lf_r & SZ_SIGN[c.lf_sz]) != 0
        else:
            f = flags_arith(c)
            return cond_from_flags(f, cc)
        return res ^ (cc & 1)
    f = flags_arith(c)
    return cond_from_flags(f, cc)

cdef inline int cond_from_flags(uint64_t f, uint32_t cc) noexcept nogil:
    cdef int res
    cdef uint32_t k = cc >> 1
    if k == 0:
        res = (f & F_OF) != 0
    elif k == 1:
        res = (f & F_CF) != 0
    elif k == 2:
        res = (f & F_ZF) != 0
    elif k == 3:
        res = (f & (F_CF | F_ZF)) != 0
    elif k == 4:
        res = (f & F_SF) != 0
    elif k == 5:
        res = (f & F_PF) != 0
    elif k == 6:
        res = ((f & F_SF) != 0) != ((f & F_OF) != 0)
    else:
        res = ((f & F_ZF) != 0) or (((f & F_SF) != 0) != ((f & F_OF) != 0))
    return res ^ (cc & 1)
