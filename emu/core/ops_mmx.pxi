# MMX (SDM Vol. 1, chapter 9; Vol. 2 instruction pages): the MMX register
# file aliases the x87 physical registers R0-R7 (MMi = the low 64 bits of
# Ri). Any MMX instruction sets TOP to 0 and every tag to valid; a write of
# MMi also sets bits 79:64 of Ri to all ones. EMMS empties every tag.
#
# Covered: the MMX instructions (0F 60-7F, D1-FF without prefix, the shift
# groups 0F 71-73, EMMS), the SSE/SSSE3 instructions' MMX forms (PSHUFB,
# PHADD*, PHSUB*, PMADDUBSW, PMULHRSW, PSIGN*, PABS*, PALIGNR, PAVGB/W,
# PEXTRW, PINSRW, PMAXSW, PMAXUB, PMINSW, PMINUB, PMOVMSKB, PMULHUW,
# PSADBW, PSUBQ, PMULUDQ, PADDQ, PSHUFW, MASKMOVQ, MOVNTQ), the conversions
# between MMX and XMM registers (CVTPI2PS CVTPS2PI CVTTPS2PI CVTPI2PD
# CVTPD2PI CVTTPD2PI MOVDQ2Q MOVQ2DQ) and MASKMOVDQU.
#
# Host dependency (as ops_sse_int.pxi): the two-operand table entries run
# the very MMX instruction on the host (then EMMS, so the host's x87 stack
# stays empty); the conversions run under the guest's MXCSR. Replace the
# emu_mmx_* helpers with C implementations to port.

cdef extern from *:
    """
    typedef void (*emu_mmx_fn)(uint64_t* d, const uint64_t* s);
    typedef struct { unsigned char map, opc, msize; emu_mmx_fn fn; } emu_mmx_def;

    #define EMU_MMX2(name) static void emu_mmx_##name(uint64_t* d, const uint64_t* s) { \\
        __asm__ volatile("movq %0, %%mm0\\n\\tmovq %1, %%mm1\\n\\t" #name " %%mm1, %%mm0\\n\\t" \\
                         "movq %%mm0, %0\\n\\temms" : "+m"(*d) : "m"(*s) : "mm0", "mm1"); }
    #define MMX2_LIST(X) \\
        X(1, 0x60, 4, punpcklbw) X(1, 0x61, 4, punpcklwd) X(1, 0x62, 4, punpckldq) X(1, 0x63, 8, packsswb) \\
        X(1, 0x64, 8, pcmpgtb) X(1, 0x65, 8, pcmpgtw) X(1, 0x66, 8, pcmpgtd) X(1, 0x67, 8, packuswb) \\
        X(1, 0x68, 8, punpckhbw) X(1, 0x69, 8, punpckhwd) X(1, 0x6a, 8, punpckhdq) X(1, 0x6b, 8, packssdw) \\
        X(1, 0x74, 8, pcmpeqb) X(1, 0x75, 8, pcmpeqw) X(1, 0x76, 8, pcmpeqd) \\
        X(1, 0xd1, 8, psrlw) X(1, 0xd2, 8, psrld) X(1, 0xd3, 8, psrlq) X(1, 0xd4, 8, paddq) \\
        X(1, 0xd5, 8, pmullw) X(1, 0xd8, 8, psubusb) X(1, 0xd9, 8, psubusw) X(1, 0xda, 8, pminub) \\
        X(1, 0xdb, 8, pand) X(1, 0xdc, 8, paddusb) X(1, 0xdd, 8, paddusw) X(1, 0xde, 8, pmaxub) \\
        X(1, 0xdf, 8, pandn) X(1, 0xe0, 8, pavgb) X(1, 0xe1, 8, psraw) X(1, 0xe2, 8, psrad) \\
        X(1, 0xe3, 8, pavgw) X(1, 0xe4, 8, pmulhuw) X(1, 0xe5, 8, pmulhw) X(1, 0xe8, 8, psubsb) \\
        X(1, 0xe9, 8, psubsw) X(1, 0xea, 8, pminsw) X(1, 0xeb, 8, por) X(1, 0xec, 8, paddsb) \\
        X(1, 0xed, 8, paddsw) X(1, 0xee, 8, pmaxsw) X(1, 0xef, 8, pxor) X(1, 0xf1, 8, psllw) \\
        X(1, 0xf2, 8, pslld) X(1, 0xf3, 8, psllq) X(1, 0xf4, 8, pmuludq) X(1, 0xf5, 8, pmaddwd) \\
        X(1, 0xf6, 8, psadbw) X(1, 0xf8, 8, psubb) X(1, 0xf9, 8, psubw) X(1, 0xfa, 8, psubd) \\
        X(1, 0xfb, 8, psubq) X(1, 0xfc, 8, paddb) X(1, 0xfd, 8, paddw) X(1, 0xfe, 8, paddd) \\
        X(2, 0x00, 8, pshufb) X(2, 0x01, 8, phaddw) X(2, 0x02, 8, phaddd) X(2, 0x03, 8, phaddsw) \\
        X(2, 0x04, 8, pmaddubsw) X(2, 0x05, 8, phsubw) X(2, 0x06, 8, phsubd) X(2, 0x07, 8, phsubsw) \\
        X(2, 0x08, 8, psignb) X(2, 0x09, 8, psignw) X(2, 0x0a, 8, psignd) X(2, 0x0b, 8, pmulhrsw) \\
        X(2, 0x1c, 8, pabsb) X(2, 0x1d, 8, pabsw) X(2, 0x1e, 8, pabsd)
    #define EMU_DEF_MMX2(m, o, ms, name) EMU_MMX2(name)
    MMX2_LIST(EMU_DEF_MMX2)
    #define EMU_TAB_MMX(m, o, ms, name) {m, o, ms, emu_mmx_##name},
    static const emu_mmx_def emu_mmx_defs[] = {
        MMX2_LIST(EMU_TAB_MMX)
        {0, 0, 0, 0}
    };

    /* conversions between MMX and XMM registers under the guest MXCSR
       (all exceptions masked by the caller); returns MXCSR afterwards.
       op 0 CVTPI2PS, 1 CVTPI2PD (x: the XMM destination, m: the source);
       2 CVTPS2PI, 3 CVTTPS2PI, 4 CVTPD2PI, 5 CVTTPD2PI (x: the XMM source,
       m: the MMX destination). */
    static unsigned int emu_mmx_cvt(int op, unsigned int csr, uint64_t* x, uint64_t* m) {
        __m128i a;
        unsigned int sv;
        memcpy(&a, x, 16);
        sv = emu_csr_enter(csr);
        switch (op) {
        case 0: __asm__ volatile("movq %1, %%mm0\\n\\tcvtpi2ps %%mm0, %0\\n\\temms" : "+x"(a) : "m"(*m) : "mm0"); break;
        case 1: __asm__ volatile("movq %1, %%mm0\\n\\tcvtpi2pd %%mm0, %0\\n\\temms" : "+x"(a) : "m"(*m) : "mm0"); break;
        case 2: __asm__ volatile("cvtps2pi %1, %%mm0\\n\\tmovq %%mm0, %0\\n\\temms" : "=m"(*m) : "x"(a) : "mm0"); break;
        case 3: __asm__ volatile("cvttps2pi %1, %%mm0\\n\\tmovq %%mm0, %0\\n\\temms" : "=m"(*m) : "x"(a) : "mm0"); break;
        case 4: __asm__ volatile("cvtpd2pi %1, %%mm0\\n\\tmovq %%mm0, %0\\n\\temms" : "=m"(*m) : "x"(a) : "mm0"); break;
        default: __asm__ volatile("cvttpd2pi %1, %%mm0\\n\\tmovq %%mm0, %0\\n\\temms" : "=m"(*m) : "x"(a) : "mm0"); break;
        }
        csr = emu_csr_leave(sv);
        memcpy(x, &a, 16);
        return csr;
    }
    """
    ctypedef void (*emu_mmx_fn)(uint64_t* d, const uint64_t* s) noexcept nogil
    ctypedef struct emu_mmx_def:
        unsigned char map, opc, msize
        emu_mmx_fn fn
    const emu_mmx_def* emu_mmx_defs
    void emu_mmx_psrlw(uint64_t* d, const uint64_t* s) noexcept nogil
    void emu_mmx_psrld(uint64_t* d, const uint64_t* s) noexcept nogil
    void emu_mmx_psrlq(uint64_t* d, const uint64_t* s) noexcept nogil
    void emu_mmx_psraw(uint64_t* d, const uint64_t* s) noexcept nogil
    void emu_mmx_psrad(uint64_t* d, const uint64_t* s) noexcept nogil
    void emu_mmx_psllw(uint64_t* d, const uint64_t* s) noexcept nogil
    void emu_mmx_pslld(uint64_t* d, const uint64_t* s) noexcept nogil
    void emu_mmx_psllq(uint64_t* d, const uint64_t* s) noexcept nogil
    unsigned int emu_mmx_cvt(int op, unsigned int csr, uint64_t* x, uint64_t* m) noexcept nogil

cdef emu_mmx_def mmx_tab[128]
cdef int mmx_ntab = 0

cdef inline int mmx_check(Cpu* c) noexcept nogil:
    """CR0.EM: #UD; CR0.TS: #NM; a pending x87 exception: #MF."""
    if c.cr0 & SSE_CR0_EM:
        return raise_ud(c)
    if c.cr0 & SSE_CR0_TS:
        return raise_exc(c, EXC_NM, 0, 0)
    if c.fsw & FSW_ES:
        return raise_exc(c, EXC_MF, 0, 0)
    return 0

cdef inline void mmx_enter(Cpu* c) noexcept nogil:
    """The x87 -> MMX transition: TOP = 0, every tag valid."""
    c.ftop = 0
    c.ftw = 0

cdef inline uint64_t mm_get(Cpu* c, uint32_t i) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, &c.fpr[i & 7][0], 8)
    return v

cdef inline void mm_set(Cpu* c, uint32_t i, uint64_t v) noexcept nogil:
    memcpy(&c.fpr[i & 7][0], &v, 8)
    c.fpr[i & 7][8] = 0xff
    c.fpr[i & 7][9] = 0xff

cdef inline int mm_src(Cpu* c, const Uop* u, uint32_t size, uint64_t* v) noexcept nogil:
    """The mm/m64 (or m32/m16) source operand."""
    if u.mem:
        v[0] = 0
        return R_EXC if mem_read(c, ea_of(c, u), size, v) else 0
    v[0] = mm_get(c, u.rm)
    return 0

cdef int op_mmx_tab(Cpu* c, const Uop* u) noexcept nogil:
    """Table-driven "mm, mm/m64" instructions (u.sub indexes mmx_tab)."""
    cdef const emu_mmx_def* o = &mmx_tab[u.sub]
    cdef uint64_t s, d
    if mmx_check(c) or mm_src(c, u, o.msize, &s):
        return R_EXC
    d = mm_get(c, u.reg)
    o.fn(&d, &s)
    mmx_enter(c)
    mm_set(c, u.reg, d)
    return R_NEXT

cdef int op_mmx_shift_imm(Cpu* c, const Uop* u) noexcept nogil:
    """0F 71/72/73 /2 /4 /6 ib (no prefix): the count-operand forms with the
    count the immediate."""
    cdef uint64_t s = u.imm & 0xff, d
    if mmx_check(c):
        return R_EXC
    d = mm_get(c, u.rm)
    if u.opc == 0x71:
        if u.sub == 2:
            emu_mmx_psrlw(&d, &s)
        elif u.sub == 4:
            emu_mmx_psraw(&d, &s)
        else:
            emu_mmx_psllw(&d, &s)
    elif u.opc == 0x72:
        if u.sub == 2:
            emu_mmx_psrld(&d, &s)
        elif u.sub == 4:
            emu_mmx_psrad(&d, &s)
        else:
            emu_mmx_pslld(&d, &s)
    else:
        if u.sub == 2:
            emu_mmx_psrlq(&d, &s)
        else:
            emu_mmx_psllq(&d, &s)
    mmx_enter(c)
    mm_set(c, u.rm, d)
    return R_NEXT

cdef int op_emms(Cpu* c, const Uop* u) noexcept nogil:
    """0F 77: TOP = 0 (as any MMX instruction) and every x87 tag empty."""
    if mmx_check(c):
        return R_EXC
    c.ftop = 0
    c.ftw = 0xffff
    return R_NEXT

cdef int op_movd_mm_rm(Cpu* c, const Uop* u) noexcept nogil:
    """0F 6E: MOVD mm, r/m32 (REX.W: MOVQ mm, r/m64), zero-extended."""
    cdef uint64_t v = 0
    cdef uint32_t size = 8 if u.rex & 8 else 4
    if mmx_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), size, &v):
            return R_EXC
    else:
        v = c.r[u.rm] & SZ_MASK[size]
    mmx_enter(c)
    mm_set(c, u.reg, v)
    return R_NEXT

cdef int op_movd_rm_mm(Cpu* c, const Uop* u) noexcept nogil:
    """0F 7E: MOVD r/m32, mm (REX.W: MOVQ r/m64, mm)."""
    cdef uint32_t size = 8 if u.rex & 8 else 4
    cdef uint64_t v
    if mmx_check(c):
        return R_EXC
    v = mm_get(c, u.reg) & SZ_MASK[size]
    if u.mem:
        if mem_write(c, ea_of(c, u), size, v):
            return R_EXC
    else:
        c.r[u.rm] = v
    mmx_enter(c)
    return R_NEXT

cdef int op_movq_mm_mmm(Cpu* c, const Uop* u) noexcept nogil:
    """0F 6F: MOVQ mm, mm/m64."""
    cdef uint64_t v
    if mmx_check(c) or mm_src(c, u, 8, &v):
        return R_EXC
    mmx_enter(c)
    mm_set(c, u.reg, v)
    return R_NEXT

cdef int op_movq_mmm_mm(Cpu* c, const Uop* u) noexcept nogil:
    """0F 7F: MOVQ mm/m64, mm; 0F E7: MOVNTQ m64, mm."""
    cdef uint64_t v
    if mmx_check(c):
        return R_EXC
    v = mm_get(c, u.reg)
    if u.mem:
        if mem_write(c, ea_of(c, u), 8, v):
            return R_EXC
    else:
        mm_set(c, u.rm, v)
    mmx_enter(c)
    return R_NEXT

cdef int op_pshufw(Cpu* c, const Uop* u) noexcept nogil:
    """0F 70: PSHUFW mm, mm/m64, imm8."""
    cdef uint64_t s, r = 0
    cdef uint32_t j, imm = <uint32_t>u.imm
    if mmx_check(c) or mm_src(c, u, 8, &s):
        return R_EXC
    for j in range(4):
        r |= ((s >> (16 * ((imm >> (2 * j)) & 3))) & 0xffff) << (16 * j)
    mmx_enter(c)
    mm_set(c, u.reg, r)
    return R_NEXT

cdef int op_palignr_mm(Cpu* c, const Uop* u) noexcept nogil:
    """0F 3A 0F: PALIGNR mm, mm/m64, imm8: (dest:src) >> 8*imm8, low 64 bits."""
    cdef uint64_t s, d, r
    cdef uint32_t n = <uint32_t>u.imm & 0xff
    cdef emu_u128 w
    if mmx_check(c) or mm_src(c, u, 8, &s):
        return R_EXC
    d = mm_get(c, u.reg)
    if n >= 16:
        r = 0
    else:
        w = ((<emu_u128>d) << 64) | s
        r = <uint64_t>(w >> (8 * n))
    mmx_enter(c)
    mm_set(c, u.reg, r)
    return R_NEXT

cdef int op_pinsrw_mm(Cpu* c, const Uop* u) noexcept nogil:
    """0F C4: PINSRW mm, r32/m16, imm8."""
    cdef uint64_t v = 0, d
    cdef uint32_t k = (<uint32_t>u.imm & 3) * 16
    if mmx_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), 2, &v):
            return R_EXC
    else:
        v = c.r[u.rm]
    d = mm_get(c, u.reg)
    d = (d & ~(0xffffULL << k)) | ((v & 0xffff) << k)
    mmx_enter(c)
    mm_set(c, u.reg, d)
    return R_NEXT

cdef int op_pextrw_mm(Cpu* c, const Uop* u) noexcept nogil:
    """0F C5: PEXTRW r32/r64, mm, imm8 (zero-extended)."""
    if mmx_check(c):
        return R_EXC
    c.r[u.reg] = (mm_get(c, u.rm) >> ((<uint32_t>u.imm & 3) * 16)) & 0xffff
    mmx_enter(c)
    return R_NEXT

cdef int op_pmovmskb_mm(Cpu* c, const Uop* u) noexcept nogil:
    """0F D7: PMOVMSKB r32/r64, mm."""
    cdef uint64_t s, r = 0
    cdef uint32_t j
    if mmx_check(c):
        return R_EXC
    s = mm_get(c, u.rm)
    for j in range(8):
        r |= ((s >> (8 * j + 7)) & 1) << j
    c.r[u.reg] = r
    mmx_enter(c)
    return R_NEXT

cdef int masked_store(Cpu* c, const Uop* u, const uint8_t* data, const uint8_t* mask, uint32_t n) noexcept nogil:
    """MASKMOVQ/MASKMOVDQU: the bytes whose mask byte has bit 7 set go to
    seg:[rDI]; every selected byte is checked for write access first."""
    cdef uint64_t a = ea_of(c, u), t
    cdef uint32_t j
    for j in range(n):
        if mask[j] & 0x80:
            if mem_read_rmw(c, a + j, 1, &t):
                return R_EXC
    for j in range(n):
        if mask[j] & 0x80:
            if mem_write(c, a + j, 1, data[j]):
                return R_EXC
    return 0

cdef int op_maskmovq(Cpu* c, const Uop* u) noexcept nogil:
    """0F F7: MASKMOVQ mm1, mm2."""
    cdef uint64_t d, m
    if mmx_check(c):
        return R_EXC
    d = mm_get(c, u.reg)
    m = mm_get(c, u.rm)
    if masked_store(c, u, <uint8_t*>&d, <uint8_t*>&m, 8):
        return R_EXC
    mmx_enter(c)
    return R_NEXT

cdef int op_maskmovdqu(Cpu* c, const Uop* u) noexcept nogil:
    """66 0F F7: MASKMOVDQU xmm1, xmm2."""
    if sse_check(c):
        return R_EXC
    return R_EXC if masked_store(c, u, <uint8_t*>&c.xmm[u.reg][0], <uint8_t*>&c.xmm[u.rm][0], 16) else R_NEXT

cdef int maskmov_fix(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """MASKMOVQ/MASKMOVDQU address seg:rDI (the segment override applies)."""
    if d.mod == 3:
        u.base = 7
        u.index = NOREG
        u.disp = 0
        u.seg = d.seg
    return 0

cdef int op_movq2dq(Cpu* c, const Uop* u) noexcept nogil:
    """F3 0F D6: MOVQ2DQ xmm, mm."""
    if sse_check(c) or mmx_check(c):
        return R_EXC
    c.xmm[u.reg][0] = mm_get(c, u.rm)
    c.xmm[u.reg][1] = 0
    mmx_enter(c)
    return R_NEXT

cdef int op_movdq2q(Cpu* c, const Uop* u) noexcept nogil:
    """F2 0F D6: MOVDQ2Q mm, xmm."""
    if sse_check(c) or mmx_check(c):
        return R_EXC
    mmx_enter(c)
    mm_set(c, u.reg, c.xmm[u.rm][0])
    return R_NEXT

cdef int op_cvt_mmx(Cpu* c, const Uop* u) noexcept nogil:
    """0F 2A/2C/2D without prefix or with 66: CVTPI2PS/CVTPI2PD xmm, mm/m64;
    CVT[T]PS2PI mm, xmm/m64; CVT[T]PD2PI mm, xmm/m128 (aligned). With a
    memory source CVTPI2Px leaves the x87 state alone."""
    cdef uint64_t x[2]
    cdef uint64_t m = 0, a
    cdef uint32_t op, csr, fl, un
    cdef int to_mm = u.opc != 0x2a
    if sse_check(c):
        return R_EXC
    if (to_mm or not u.mem) and mmx_check(c):
        return R_EXC
    if not to_mm:
        op = 1 if u.pfx66 else 0
        if mm_src(c, u, 8, &m):
            return R_EXC
        x[0] = c.xmm[u.reg][0]
        x[1] = c.xmm[u.reg][1]
    else:
        op = (4 if u.pfx66 else 2) + (1 if u.opc == 0x2c else 0)
        if u.mem:
            a = ea_of(c, u)
            if u.pfx66:
                if a & 15:
                    return raise_gp0(c)
                if rd128(c, a, x):
                    return R_EXC
            else:
                if mem_read(c, a, 8, &x[0]):
                    return R_EXC
                x[1] = 0
        else:
            x[0] = c.xmm[u.rm][0]
            x[1] = c.xmm[u.rm][1]
            if not u.pfx66:
                x[1] = 0
    csr = sse_csr_done(c, emu_mmx_cvt(op, sse_csr_arg(c), x, &m))
    fl = csr & 0x3f
    if fl:
        un = fl & ~(c.mxcsr >> 7) & 0x3f
        c.mxcsr |= fl
        if un:
            return sse_simd_fault(c)
    if to_mm:
        mmx_enter(c)
        mm_set(c, u.reg, m)
    else:
        if not u.mem:
            mmx_enter(c)
        c.xmm[u.reg][0] = x[0]
        c.xmm[u.reg][1] = x[1]
    return R_NEXT

cdef void init_mmx():
    global mmx_ntab
    cdef int i = 0, k
    while emu_mmx_defs[i].fn != NULL:
        mmx_tab[mmx_ntab] = emu_mmx_defs[i]
        op(emu_mmx_defs[i].map, emu_mmx_defs[i].opc, op_mmx_tab, D_MODRM, I_NONE, mmx_ntab, 0x1)
        mmx_ntab += 1
        i += 1
    for k in (2, 4, 6):
        grp(1, 0x71, k, op_mmx_shift_imm, D_REGONLY, I_8, 0, 0x1)
        grp(1, 0x72, k, op_mmx_shift_imm, D_REGONLY, I_8, 0, 0x1)
    for k in (2, 6):
        grp(1, 0x73, k, op_mmx_shift_imm, D_REGONLY, I_8, 0, 0x1)
    op(1, 0x77, op_emms, 0, I_NONE, 0, 0x1)
    op(1, 0x6e, op_movd_mm_rm, D_MODRM, I_NONE, 0, 0x1)
    op(1, 0x7e, op_movd_rm_mm, D_MODRM, I_NONE, 0, 0x1)
    op(1, 0x6f, op_movq_mm_mmm, D_MODRM, I_NONE, 0, 0x1)
    op(1, 0x7f, op_movq_mmm_mm, D_MODRM, I_NONE, 0, 0x1)
    op(1, 0xe7, op_movq_mmm_mm, D_MODRM | D_MEMONLY, I_NONE, 0, 0x1)       # MOVNTQ
    op(1, 0x70, op_pshufw, D_MODRM, I_8, 0, 0x1)
    op(3, 0x0f, op_palignr_mm, D_MODRM, I_8, 0, 0x1)
    op(1, 0xc4, op_pinsrw_mm, D_MODRM, I_8, 0, 0x1)
    op(1, 0xc5, op_pextrw_mm, D_MODRM | D_REGONLY, I_8, 0, 0x1)
    op(1, 0xd7, op_pmovmskb_mm, D_MODRM | D_REGONLY, I_NONE, 0, 0x1)
    op(1, 0xf7, op_maskmovq, D_MODRM | D_REGONLY, I_NONE, 0, 0x1)
    op(1, 0xf7, op_maskmovdqu, D_MODRM | D_REGONLY, I_NONE, 0, 0x2)
    opfix(1, 0xf7, maskmov_fix, 0x3)
    op(1, 0xd6, op_movq2dq, D_MODRM | D_REGONLY, I_NONE, 0, 0x4)
    op(1, 0xd6, op_movdq2q, D_MODRM | D_REGONLY, I_NONE, 0, 0x8)
    for k in (0x2a, 0x2c, 0x2d):
        op(1, k, op_cvt_mmx, D_MODRM, I_NONE, 0, 0x3)
