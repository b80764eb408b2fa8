# SSE state access and data movement: MOVAPS/MOVUPS/MOVDQA/MOVDQU/LDDQU,
# MOVD/MOVQ, MOVSS/MOVSD, MOVLPS/MOVHPS/MOVLPD/MOVHPD/MOVHLPS/MOVLHPS,
# MOVDDUP/MOVSLDUP/MOVSHDUP, non-temporal stores, MOVMSKPS/PD, PMOVMSKB,
# PEXTR*/PINSR*/EXTRACTPS, fences, CLFLUSH, LDMXCSR/STMXCSR
# (SDM Vol. 2, the individual instruction pages; Vol. 1, chapters 10-12).
#
# XMM operands: the uop's reg/rm fields are XMM numbers 0..15 (REX.R/REX.B
# included). Handlers never set D_BYTE so the AH..BH remapping stays off.

cdef enum:
    SSE_CR0_MP = 0x2
    SSE_CR0_EM = 0x4
    SSE_CR0_TS = 0x8
    SSE_CR4_OSXMMEXCPT = 0x400
    SSE_CR4_OSXSAVE = 0x40000
    SSE_MXCSR_MASK = 0xFFFF     # MXCSR bits that may be set (DAZ supported)

cdef inline int sse_check(Cpu* c) noexcept nogil:
    """SSE availability (SDM Vol. 3A, 13.1.3, Table 2-19): CR0.EM or a clear
    CR4.OSFXSR give #UD, CR0.TS gives #NM. Returns 0 or R_EXC."""
    if (c.cr0 & (SSE_CR0_EM | SSE_CR0_TS)) or not (c.cr4 & CR4_OSFXSR):
        if c.cr0 & SSE_CR0_EM or not (c.cr4 & CR4_OSFXSR):
            return raise_ud(c)
        return raise_exc(c, EXC_NM, 0, 0)
    return 0

cdef inline int rd128(Cpu* c, uint64_t a, uint64_t* v) noexcept nogil:
    if mem_read(c, a, 8, &v[0]):
        return R_EXC
    if mem_read(c, a + 8, 8, &v[1]):
        return R_EXC
    return 0

cdef inline int wr128(Cpu* c, uint64_t a, const uint64_t* v) noexcept nogil:
    """16-byte store: both pages are checked for write access before any byte
    is written, so a fault leaves memory untouched."""
    cdef uint64_t t
    if (a & 0xfff) > 0xff0:
        if mem_read_rmw(c, a, 1, &t) or mem_read_rmw(c, a + 15, 1, &t):
            return R_EXC
    if mem_write(c, a, 8, v[0]):
        return R_EXC
    if mem_write(c, a + 8, 8, v[1]):
        return R_EXC
    return 0

cdef inline int src128(Cpu* c, const Uop* u, uint64_t* v, int aligned) noexcept nogil:
    """The xmm/m128 operand. aligned: a misaligned memory operand is #GP(0)."""
    cdef uint64_t a
    if not u.mem:
        v[0] = c.xmm[u.rm][0]
        v[1] = c.xmm[u.rm][1]
        return 0
    a = ea_of(c, u)
    if aligned and (a & 15):
        return raise_gp0(c)
    return rd128(c, a, v)

cdef inline int dst128(Cpu* c, const Uop* u, const uint64_t* v, int aligned) noexcept nogil:
    """Store to the xmm/m128 operand."""
    cdef uint64_t a
    if not u.mem:
        c.xmm[u.rm][0] = v[0]
        c.xmm[u.rm][1] = v[1]
        return 0
    a = ea_of(c, u)
    if aligned and (a & 15):
        return raise_gp0(c)
    return wr128(c, a, v)

# ---- full-register moves ----

cdef int op_sse_load_u(Cpu* c, const Uop* u) noexcept nogil:
    """MOVUPS/MOVUPD/MOVDQU/LDDQU xmm, xmm/m128."""
    cdef uint64_t v[2]
    if sse_check(c) or src128(c, u, v, 0):
        return R_EXC
    c.xmm[u.reg][0] = v[0]
    c.xmm[u.reg][1] = v[1]
    return R_NEXT

cdef int op_sse_load_a(Cpu* c, const Uop* u) noexcept nogil:
    """MOVAPS/MOVAPD/MOVDQA/MOVNTDQA xmm, xmm/m128 (aligned)."""
    cdef uint64_t v[2]
    if sse_check(c) or src128(c, u, v, 1):
        return R_EXC
    c.xmm[u.reg][0] = v[0]
    c.xmm[u.reg][1] = v[1]
    return R_NEXT

cdef int op_sse_store_u(Cpu* c, const Uop* u) noexcept nogil:
    """MOVUPS/MOVUPD/MOVDQU xmm/m128, xmm."""
    if sse_check(c) or dst128(c, u, &c.xmm[u.reg][0], 0):
        return R_EXC
    return R_NEXT

cdef int op_sse_store_a(Cpu* c, const Uop* u) noexcept nogil:
    """MOVAPS/MOVAPD/MOVDQA/MOVNTPS/MOVNTPD/MOVNTDQ xmm/m128, xmm (aligned)."""
    if sse_check(c) or dst128(c, u, &c.xmm[u.reg][0], 1):
        return R_EXC
    return R_NEXT

# ---- MOVD / MOVQ ----

cdef int op_movd_x_rm(Cpu* c, const Uop* u) noexcept nogil:
    """66 [REX.W] 0F 6E: MOVD/MOVQ xmm, r/m32/64 (zero-extended to 128 bits)."""
    cdef uint32_t sz = 8 if u.rex & 8 else 4
    cdef uint64_t v
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), sz, &v):
            return R_EXC
    else:
        v = rget(c, u.rm, sz)
    c.xmm[u.reg][0] = v
    c.xmm[u.reg][1] = 0
    return R_NEXT

cdef int op_movd_rm_x(Cpu* c, const Uop* u) noexcept nogil:
    """66 [REX.W] 0F 7E: MOVD/MOVQ r/m32/64, xmm."""
    cdef uint32_t sz = 8 if u.rex & 8 else 4
    cdef uint64_t v
    if sse_check(c):
        return R_EXC
    v = c.xmm[u.reg][0] & SZ_MASK[sz]
    if u.mem:
        if mem_write(c, ea_of(c, u), sz, v):
            return R_EXC
    else:
        rset(c, u.rm, sz, v)
    return R_NEXT

cdef int op_movq_x_xm(Cpu* c, const Uop* u) noexcept nogil:
    """F3 0F 7E: MOVQ xmm, xmm/m64 (upper half zeroed)."""
    cdef uint64_t v
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), 8, &v):
            return R_EXC
    else:
        v = c.xmm[u.rm][0]
    c.xmm[u.reg][0] = v
    c.xmm[u.reg][1] = 0
    return R_NEXT

cdef int op_movq_xm_x(Cpu* c, const Uop* u) noexcept nogil:
    """66 0F D6: MOVQ xmm/m64, xmm (a register destination's upper half is zeroed)."""
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_write(c, ea_of(c, u), 8, c.xmm[u.reg][0]):
            return R_EXC
    else:
        c.xmm[u.rm][0] = c.xmm[u.reg][0]
        c.xmm[u.rm][1] = 0
    return R_NEXT

# ---- MOVSS / MOVSD ----

cdef int op_movss_load(Cpu* c, const Uop* u) noexcept nogil:
    """F3 0F 10: from memory zero-extends; register to register merges the low dword."""
    cdef uint64_t v
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), 4, &v):
            return R_EXC
        c.xmm[u.reg][0] = v
        c.xmm[u.reg][1] = 0
    else:
        c.xmm[u.reg][0] = (c.xmm[u.reg][0] & 0xffffffff00000000ULL) | (c.xmm[u.rm][0] & 0xffffffffULL)
    return R_NEXT

cdef int op_movss_store(Cpu* c, const Uop* u) noexcept nogil:
    """F3 0F 11."""
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_write(c, ea_of(c, u), 4, c.xmm[u.reg][0] & 0xffffffffULL):
            return R_EXC
    else:
        c.xmm[u.rm][0] = (c.xmm[u.rm][0] & 0xffffffff00000000ULL) | (c.xmm[u.reg][0] & 0xffffffffULL)
    return R_NEXT

cdef int op_movsd_load(Cpu* c, const Uop* u) noexcept nogil:
    """F2 0F 10."""
    cdef uint64_t v
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), 8, &v):
            return R_EXC
        c.xmm[u.reg][0] = v
        c.xmm[u.reg][1] = 0
    else:
        c.xmm[u.reg][0] = c.xmm[u.rm][0]
    return R_NEXT

cdef int op_movsd_store(Cpu* c, const Uop* u) noexcept nogil:
    """F2 0F 11."""
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_write(c, ea_of(c, u), 8, c.xmm[u.reg][0]):
            return R_EXC
    else:
        c.xmm[u.rm][0] = c.xmm[u.reg][0]
    return R_NEXT

# ---- half moves ----

cdef int op_movlps_load(Cpu* c, const Uop* u) noexcept nogil:
    """0F 12: MOVLPS xmm, m64 / MOVHLPS xmm, xmm; 66 0F 12 MOVLPD xmm, m64."""
    cdef uint64_t v
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), 8, &v):
            return R_EXC
    else:
        v = c.xmm[u.rm][1]
    c.xmm[u.reg][0] = v
    return R_NEXT

cdef int op_movhps_load(Cpu* c, const Uop* u) noexcept nogil:
    """0F 16: MOVHPS xmm, m64 / MOVLHPS xmm, xmm; 66 0F 16 MOVHPD xmm, m64."""
    cdef uint64_t v
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), 8, &v):
            return R_EXC
    else:
        v = c.xmm[u.rm][0]
    c.xmm[u.reg][1] = v
    return R_NEXT

cdef int op_movlps_store(Cpu* c, const Uop* u) noexcept nogil:
    """0F 13 / 66 0F 13: MOVLPS/MOVLPD m64, xmm."""
    if sse_check(c) or mem_write(c, ea_of(c, u), 8, c.xmm[u.reg][0]):
        return R_EXC
    return R_NEXT

cdef int op_movhps_store(Cpu* c, const Uop* u) noexcept nogil:
    """0F 17 / 66 0F 17: MOVHPS/MOVHPD m64, xmm."""
    if sse_check(c) or mem_write(c, ea_of(c, u), 8, c.xmm[u.reg][1]):
        return R_EXC
    return R_NEXT

cdef int op_movddup(Cpu* c, const Uop* u) noexcept nogil:
    """F2 0F 12: MOVDDUP xmm, xmm/m64."""
    cdef uint64_t v
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), 8, &v):
            return R_EXC
    else:
        v = c.xmm[u.rm][0]
    c.xmm[u.reg][0] = v
    c.xmm[u.reg][1] = v
    return R_NEXT

cdef int op_movsxdup(Cpu* c, const Uop* u) noexcept nogil:
    """F3 0F 12 MOVSLDUP (u.sub 0) / F3 0F 16 MOVSHDUP (u.sub 1): duplicate the
    even or odd dwords."""
    cdef uint64_t v[2]
    cdef uint64_t x
    cdef int i
    if sse_check(c) or src128(c, u, v, 1):
        return R_EXC
    for i in range(2):
        if u.sub:
            x = v[i] >> 32
        else:
            x = v[i] & 0xffffffffULL
        c.xmm[u.reg][i] = x | (x << 32)
    return R_NEXT

# ---- masks, extracts, inserts ----

cdef int op_movmskps(Cpu* c, const Uop* u) noexcept nogil:
    """0F 50: MOVMSKPS r32/64, xmm (sign bits of the four floats)."""
    cdef uint64_t* s = &c.xmm[u.rm][0]
    cdef uint64_t m
    if sse_check(c):
        return R_EXC
    m = ((s[0] >> 31) & 1) | ((s[0] >> 62) & 2) | (((s[1] >> 31) & 1) << 2) | (((s[1] >> 63) & 1) << 3)
    c.r[u.reg] = m
    return R_NEXT

cdef int op_movmskpd(Cpu* c, const Uop* u) noexcept nogil:
    """66 0F 50: MOVMSKPD r32/64, xmm."""
    if sse_check(c):
        return R_EXC
    c.r[u.reg] = (c.xmm[u.rm][0] >> 63) | ((c.xmm[u.rm][1] >> 63) << 1)
    return R_NEXT

cdef int op_pmovmskb(Cpu* c, const Uop* u) noexcept nogil:
    """66 0F D7: PMOVMSKB r32/64, xmm (sign bit of each byte)."""
    cdef uint64_t m = 0, x
    cdef int i, h
    if sse_check(c):
        return R_EXC
    for h in range(2):
        x = c.xmm[u.rm][h]
        for i in range(8):
            m |= ((x >> (8 * i + 7)) & 1) << (8 * h + i)
    c.r[u.reg] = m
    return R_NEXT

cdef inline uint64_t xmm_elem(Cpu* c, uint32_t r, uint32_t size, uint32_t idx) noexcept nogil:
    cdef uint32_t bit = idx * size * 8
    return (c.xmm[r][bit >> 6] >> (bit & 63)) & SZ_MASK[size]

cdef inline void xmm_set_elem(Cpu* c, uint32_t r, uint32_t size, uint32_t idx, uint64_t v) noexcept nogil:
    cdef uint32_t bit = idx * size * 8
    cdef uint64_t m = SZ_MASK[size] << (bit & 63)
    c.xmm[r][bit >> 6] = (c.xmm[r][bit >> 6] & ~m) | ((v << (bit & 63)) & m)

cdef int op_pextr(Cpu* c, const Uop* u) noexcept nogil:
    """66 0F 3A 14/15/16/17: PEXTRB/PEXTRW/PEXTRD/PEXTRQ/EXTRACTPS r/m, xmm, imm8.
    u.sub is the element size (8 for the REX.W form of 16). A register
    destination is written as a zero-extended 32- or 64-bit register."""
    cdef uint32_t sz = u.sub
    cdef uint64_t v
    if sz == 4 and u.opc == 0x16 and u.rex & 8:
        sz = 8
    if sse_check(c):
        return R_EXC
    v = xmm_elem(c, u.reg, sz, <uint32_t>(u.imm & (15 // sz)))
    if u.mem:
        if mem_write(c, ea_of(c, u), sz, v):
            return R_EXC
    else:
        rset(c, u.rm, 8 if sz == 8 else 4, v)
    return R_NEXT

cdef int op_pextrw_reg(Cpu* c, const Uop* u) noexcept nogil:
    """66 0F C5: PEXTRW r32/64, xmm, imm8 (register forms only)."""
    if sse_check(c):
        return R_EXC
    c.r[u.reg] = xmm_elem(c, u.rm, 2, <uint32_t>(u.imm & 7))
    return R_NEXT

cdef int op_pinsr(Cpu* c, const Uop* u) noexcept nogil:
    """66 0F C4 PINSRW, 66 0F 3A 20 PINSRB, 22 PINSRD/PINSRQ: xmm, r/m, imm8."""
    cdef uint32_t sz = u.sub
    cdef uint64_t v
    if sz == 4 and u.rex & 8:
        sz = 8
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), sz, &v):
            return R_EXC
    else:
        v = c.r[u.rm] & SZ_MASK[sz]
    xmm_set_elem(c, u.reg, sz, <uint32_t>(u.imm & (15 // sz)), v)
    return R_NEXT

# ---- MXCSR, fences, cache control ----

cdef int op_ldmxcsr(Cpu* c, const Uop* u) noexcept nogil:
    """0F AE /2: reserved bits set give #GP(0)."""
    cdef uint64_t v
    if sse_check(c):
        return R_EXC
    if mem_read(c, ea_of(c, u), 4, &v):
        return R_EXC
    if v & ~(<uint64_t>SSE_MXCSR_MASK):
        return raise_gp0(c)
    c.mxcsr = <uint32_t>v
    return R_NEXT

cdef int op_stmxcsr(Cpu* c, const Uop* u) noexcept nogil:
    """0F AE /3."""
    if sse_check(c):
        return R_EXC
    if mem_write(c, ea_of(c, u), 4, c.mxcsr):
        return R_EXC
    return R_NEXT

cdef int op_clflush(Cpu* c, const Uop* u) noexcept nogil:
    """CLFLUSH/CLFLUSHOPT/CLWB m8: no caches to flush, but the address must
    translate (it faults like a byte read)."""
    cdef uint64_t v
    if mem_read(c, ea_of(c, u), 1, &v):
        return R_EXC
    cache_flush_line(c, ea_of(c, u))      # (the cache model's copy goes: core/timing.pxi)
    return R_NEXT

cdef void init_sse_mov():
    # full-register loads and stores
    op(1, 0x10, op_sse_load_u, D_MODRM, I_NONE, 0, 0x3)      # MOVUPS, MOVUPD
    op(1, 0x11, op_sse_store_u, D_MODRM, I_NONE, 0, 0x3)
    op(1, 0x28, op_sse_load_a, D_MODRM, I_NONE, 0, 0x3)      # MOVAPS, MOVAPD
    op(1, 0x29, op_sse_store_a, D_MODRM, I_NONE, 0, 0x3)
    op(1, 0x6f, op_sse_load_a, D_MODRM, I_NONE, 0, 0x2)      # MOVDQA
    op(1, 0x6f, op_sse_load_u, D_MODRM, I_NONE, 0, 0x4)      # MOVDQU
    op(1, 0x7f, op_sse_store_a, D_MODRM, I_NONE, 0, 0x2)
    op(1, 0x7f, op_sse_store_u, D_MODRM, I_NONE, 0, 0x4)
    op(1, 0xf0, op_sse_load_u, D_MODRM | D_MEMONLY, I_NONE, 0, 0x8)   # LDDQU
    op(1, 0x2b, op_sse_store_a, D_MODRM | D_MEMONLY, I_NONE, 0, 0x3)  # MOVNTPS/PD
    op(1, 0xe7, op_sse_store_a, D_MODRM | D_MEMONLY, I_NONE, 0, 0x2)  # MOVNTDQ
    op(1, 0xc3, op_mov_rm_r, D_MODRM | D_MEMONLY, I_NONE, 0, 0x1)     # MOVNTI
    op(2, 0x2a, op_sse_load_a, D_MODRM | D_MEMONLY, I_NONE, 0, 0x2)   # MOVNTDQA
    # MOVD/MOVQ
    op(1, 0x6e, op_movd_x_rm, D_MODRM, I_NONE, 0, 0x2)
    op(1, 0x7e, op_movd_rm_x, D_MODRM, I_NONE, 0, 0x2)
    op(1, 0x7e, op_movq_x_xm, D_MODRM, I_NONE, 0, 0x4)
    op(1, 0xd6, op_movq_xm_x, D_MODRM, I_NONE, 0, 0x2)
    # MOVSS/MOVSD
    op(1, 0x10, op_movss_load, D_MODRM, I_NONE, 0, 0x4)
    op(1, 0x11, op_movss_store, D_MODRM, I_NONE, 0, 0x4)
    op(1, 0x10, op_movsd_load, D_MODRM, I_NONE, 0, 0x8)
    op(1, 0x11, op_movsd_store, D_MODRM, I_NONE, 0, 0x8)
    # half moves and duplicates
    op(1, 0x12, op_movlps_load, D_MODRM, I_NONE, 0, 0x1)            # MOVLPS / MOVHLPS
    op(1, 0x12, op_movlps_load, D_MODRM | D_MEMONLY, I_NONE, 0, 0x2)  # MOVLPD
    op(1, 0x12, op_movsxdup, D_MODRM, I_NONE, 0, 0x4)               # MOVSLDUP
    op(1, 0x12, op_movddup, D_MODRM, I_NONE, 0, 0x8)                # MOVDDUP
    op(1, 0x13, op_movlps_store, D_MODRM | D_MEMONLY, I_NONE, 0, 0x3)
    op(1, 0x16, op_movhps_load, D_MODRM, I_NONE, 0, 0x1)            # MOVHPS / MOVLHPS
    op(1, 0x16, op_movhps_load, D_MODRM | D_MEMONLY, I_NONE, 0, 0x2)  # MOVHPD
    op(1, 0x16, op_movsxdup, D_MODRM, I_NONE, 1, 0x4)               # MOVSHDUP
    op(1, 0x17, op_movhps_store, D_MODRM | D_MEMONLY, I_NONE, 0, 0x3)
    # masks, extracts, inserts
    op(1, 0x50, op_movmskps, D_MODRM | D_REGONLY, I_NONE, 0, 0x1)
    op(1, 0x50, op_movmskpd, D_MODRM | D_REGONLY, I_NONE, 0, 0x2)
    op(1, 0xd7, op_pmovmskb, D_MODRM | D_REGONLY, I_NONE, 0, 0x2)
    op(1, 0xc5, op_pextrw_reg, D_MODRM | D_REGONLY, I_8, 0, 0x2)
    op(1, 0xc4, op_pinsr, D_MODRM, I_8, 2, 0x2)                     # PINSRW
    op(3, 0x14, op_pextr, D_MODRM, I_8, 1, 0x2)                     # PEXTRB
    op(3, 0x15, op_pextr, D_MODRM, I_8, 2, 0x2)                     # PEXTRW
    op(3, 0x16, op_pextr, D_MODRM, I_8, 4, 0x2)                     # PEXTRD/Q
    op(3, 0x17, op_pextr, D_MODRM, I_8, 4, 0x2)                     # EXTRACTPS
    op(3, 0x20, op_pinsr, D_MODRM, I_8, 1, 0x2)                     # PINSRB
    op(3, 0x22, op_pinsr, D_MODRM, I_8, 4, 0x2)                     # PINSRD/Q
    # 0F AE: /2 LDMXCSR, /3 STMXCSR, /7 CLFLUSH (memory) or SFENCE,
    # /5 LFENCE and /6 MFENCE (register forms; the memory forms are XRSTOR/XSAVEOPT)
    grp(1, 0xae, 2, op_ldmxcsr, D_MEMONLY, I_NONE, 0, 0x1)
    grp(1, 0xae, 3, op_stmxcsr, D_MEMONLY, I_NONE, 0, 0x1)
    grp(1, 0xae, 6, op_clflush, D_MEMONLY, I_NONE, 0, 0x2)          # CLWB
    grp(1, 0xae, 7, op_clflush, D_MEMONLY, I_NONE, 0, 0x2)          # CLFLUSHOPT
    # PREFETCHW (0F 0D /1) and friends: hints
    op(1, 0x0d, op_nop, D_MODRM | D_MEMONLY)
