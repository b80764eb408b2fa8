# SSE/SSE2/SSE3/SSE4.1 floating point: packed and scalar arithmetic, compares,
# [U]COMIS*, conversions (including to and from general registers), logic,
# shuffles and unpacks, horizontal ops, ROUND*, DPPS/DPPD, INSERTPS.
# The table helpers are built from the macros in ops_sse_int.pxi (host
# execution under the guest MXCSR; see the note there).

cdef extern from *:
    """
    #define FP2_LIST(X) \\
        X(1, P0, 0x51, 16, EK_ALIGN, sqrtps) X(1, P66, 0x51, 16, EK_ALIGN, sqrtpd) \\
        X(1, PF3, 0x51, 4, 0, sqrtss) X(1, PF2, 0x51, 8, 0, sqrtsd) \\
        X(1, P0, 0x52, 16, EK_ALIGN, rsqrtps) X(1, PF3, 0x52, 4, 0, rsqrtss) \\
        X(1, P0, 0x53, 16, EK_ALIGN, rcpps) X(1, PF3, 0x53, 4, 0, rcpss) \\
        X(1, P0, 0x58, 16, EK_ALIGN, addps) X(1, P66, 0x58, 16, EK_ALIGN, addpd) \\
        X(1, PF3, 0x58, 4, 0, addss) X(1, PF2, 0x58, 8, 0, addsd) \\
        X(1, P0, 0x59, 16, EK_ALIGN, mulps) X(1, P66, 0x59, 16, EK_ALIGN, mulpd) \\
        X(1, PF3, 0x59, 4, 0, mulss) X(1, PF2, 0x59, 8, 0, mulsd) \\
        X(1, P0, 0x5a, 8, 0, cvtps2pd) X(1, P66, 0x5a, 16, EK_ALIGN, cvtpd2ps) \\
        X(1, PF3, 0x5a, 4, 0, cvtss2sd) X(1, PF2, 0x5a, 8, 0, cvtsd2ss) \\
        X(1, P0, 0x5b, 16, EK_ALIGN, cvtdq2ps) X(1, P66, 0x5b, 16, EK_ALIGN, cvtps2dq) \\
        X(1, PF3, 0x5b, 16, EK_ALIGN, cvttps2dq) \\
        X(1, P0, 0x5c, 16, EK_ALIGN, subps) X(1, P66, 0x5c, 16, EK_ALIGN, subpd) \\
        X(1, PF3, 0x5c, 4, 0, subss) X(1, PF2, 0x5c, 8, 0, subsd) \\
        X(1, P0, 0x5d, 16, EK_ALIGN, minps) X(1, P66, 0x5d, 16, EK_ALIGN, minpd) \\
        X(1, PF3, 0x5d, 4, 0, minss) X(1, PF2, 0x5d, 8, 0, minsd) \\
        X(1, P0, 0x5e, 16, EK_ALIGN, divps) X(1, P66, 0x5e, 16, EK_ALIGN, divpd) \\
        X(1, PF3, 0x5e, 4, 0, divss) X(1, PF2, 0x5e, 8, 0, divsd) \\
        X(1, P0, 0x5f, 16, EK_ALIGN, maxps) X(1, P66, 0x5f, 16, EK_ALIGN, maxpd) \\
        X(1, PF3, 0x5f, 4, 0, maxss) X(1, PF2, 0x5f, 8, 0, maxsd) \\
        X(1, P66, 0xe6, 16, EK_ALIGN, cvttpd2dq) X(1, PF2, 0xe6, 16, EK_ALIGN, cvtpd2dq) \\
        X(1, PF3, 0xe6, 8, 0, cvtdq2pd) \\
        X(1, P66, 0x7c, 16, EK_ALIGN, haddpd) X(1, PF2, 0x7c, 16, EK_ALIGN, haddps) \\
        X(1, P66, 0x7d, 16, EK_ALIGN, hsubpd) X(1, PF2, 0x7d, 16, EK_ALIGN, hsubps) \\
        X(1, P66, 0xd0, 16, EK_ALIGN, addsubpd) X(1, PF2, 0xd0, 16, EK_ALIGN, addsubps)
    #define LOGIC_LIST(X) \\
        X(1, P0, 0x54, 16, EK_ALIGN, andps) X(1, P66, 0x54, 16, EK_ALIGN, andpd) \\
        X(1, P0, 0x55, 16, EK_ALIGN, andnps) X(1, P66, 0x55, 16, EK_ALIGN, andnpd) \\
        X(1, P0, 0x56, 16, EK_ALIGN, orps) X(1, P66, 0x56, 16, EK_ALIGN, orpd) \\
        X(1, P0, 0x57, 16, EK_ALIGN, xorps) X(1, P66, 0x57, 16, EK_ALIGN, xorpd) \\
        X(1, P0, 0x14, 16, EK_ALIGN, unpcklps) X(1, P66, 0x14, 16, EK_ALIGN, unpcklpd) \\
        X(1, P0, 0x15, 16, EK_ALIGN, unpckhps) X(1, P66, 0x15, 16, EK_ALIGN, unpckhpd)
    #define FPI_LIST(X) \\
        X(1, P0, 0xc2, 16, EK_ALIGN, cmpps) X(1, P66, 0xc2, 16, EK_ALIGN, cmppd) \\
        X(1, PF3, 0xc2, 4, 0, cmpss) X(1, PF2, 0xc2, 8, 0, cmpsd) \\
        X(3, P66, 0x08, 16, EK_ALIGN, roundps) X(3, P66, 0x09, 16, EK_ALIGN, roundpd) \\
        X(3, P66, 0x0a, 4, 0, roundss) X(3, P66, 0x0b, 8, 0, roundsd) \\
        X(3, P66, 0x40, 16, EK_ALIGN, dpps) X(3, P66, 0x41, 16, EK_ALIGN, dppd)
    #define FLG_LIST(X) \\
        X(1, P0, 0x2e, 4, 0, ucomiss) X(1, P66, 0x2e, 8, 0, ucomisd) \\
        X(1, P0, 0x2f, 4, 0, comiss) X(1, P66, 0x2f, 8, 0, comisd)

    #define EMU_DEF_FP2(m, p, o, ms, al, name) EMU_FP2(name)
    #define EMU_DEF_FPI(m, p, o, ms, al, name) EMU_FPI(name)
    #define EMU_DEF_FLG(m, p, o, ms, al, name) EMU_FLG(name, 1)
    FP2_LIST(EMU_DEF_FP2)
    LOGIC_LIST(EMU_DEF_INT2)
    FPI_LIST(EMU_DEF_FPI)
    FLG_LIST(EMU_DEF_FLG)
    EMU_INTI(insertps)

    #define EMU_TABFP(m, p, o, ms, al, name) {m, p, o, ms, (al) | EK_FP, emu_##name},
    #define EMU_TABFPI(m, p, o, ms, al, name) {m, p, o, ms, (al) | EK_FP | EK_IMM, emu_##name},
    #define EMU_TABFLG(m, p, o, ms, al, name) {m, p, o, ms, (al) | EK_FP | EK_FLAGS, emu_##name},
    static const emu_sse_def emu_fp_defs[] = {
        FP2_LIST(EMU_TABFP)
        LOGIC_LIST(EMU_TAB)
        FPI_LIST(EMU_TABFPI)
        FLG_LIST(EMU_TABFLG)
        {3, P66, 0x21, 4, EK_ALIGN | EK_IMM | EK_MEMIMM, emu_insertps},
        {0, 0, 0, 0, 0, 0}
    };

    /* CVTSI2SS/SD xmm, r/m32/64 (which: 0 SS, 1 SD; q: 64-bit source) */
    static unsigned int emu_cvtsi2f(unsigned int csr, uint64_t* d, uint64_t v, int which, int q) {
        __m128i a; unsigned int sv, v32 = (unsigned int)v;
        memcpy(&a, d, 16);
        sv = emu_csr_enter(csr);
        if (which == 0) {
            if (q) __asm__ volatile("cvtsi2ssq %1, %0" : "+x"(a) : "r"(v));
            else __asm__ volatile("cvtsi2ssl %1, %0" : "+x"(a) : "r"(v32));
        } else {
            if (q) __asm__ volatile("cvtsi2sdq %1, %0" : "+x"(a) : "r"(v));
            else __asm__ volatile("cvtsi2sdl %1, %0" : "+x"(a) : "r"(v32));
        }
        csr = emu_csr_leave(sv);
        memcpy(d, &a, 16);
        return csr;
    }
    /* CVT[T]SS2SI / CVT[T]SD2SI r32/64, xmm: which 0 cvttss2si, 1 cvtss2si,
       2 cvttsd2si, 3 cvtsd2si */
    static unsigned int emu_cvtf2si(unsigned int csr, const uint64_t* s, int which, int q, uint64_t* out) {
        __m128i b; unsigned int sv, r32 = 0; uint64_t r64 = 0;
        memcpy(&b, s, 16);
        sv = emu_csr_enter(csr);
        switch (which * 2 + (q != 0)) {
        case 0: __asm__ volatile("cvttss2si %1, %0" : "=r"(r32) : "x"(b)); break;
        case 1: __asm__ volatile("cvttss2si %1, %0" : "=r"(r64) : "x"(b)); break;
        case 2: __asm__ volatile("cvtss2si %1, %0" : "=r"(r32) : "x"(b)); break;
        case 3: __asm__ volatile("cvtss2si %1, %0" : "=r"(r64) : "x"(b)); break;
        case 4: __asm__ volatile("cvttsd2si %1, %0" : "=r"(r32) : "x"(b)); break;
        case 5: __asm__ volatile("cvttsd2si %1, %0" : "=r"(r64) : "x"(b)); break;
        case 6: __asm__ volatile("cvtsd2si %1, %0" : "=r"(r32) : "x"(b)); break;
        default: __asm__ volatile("cvtsd2si %1, %0" : "=r"(r64) : "x"(b)); break;
        }
        csr = emu_csr_leave(sv);
        *out = q ? r64 : r32;
        return csr;
    }
    """
    const emu_sse_def* emu_fp_defs
    unsigned int emu_cvtsi2f(unsigned int csr, uint64_t* d, uint64_t v, int which, int q) noexcept nogil
    unsigned int emu_cvtf2si(unsigned int csr, const uint64_t* s, int which, int q, uint64_t* out) noexcept nogil

cdef inline int sse_fp_flags(Cpu* c, uint32_t csr) noexcept nogil:
    """Merge the exception flags of a masked run into MXCSR; an unmasked one
    faults (the destination must then stay unwritten). Returns 0 or R_EXC."""
    cdef uint32_t fl = csr & 0x3f
    if fl:
        c.mxcsr |= fl
        if fl & ~(c.mxcsr >> 7) & 0x3f:
            return sse_simd_fault(c)
    return 0

cdef int op_cvtsi2f(Cpu* c, const Uop* u) noexcept nogil:
    """F3/F2 [REX.W] 0F 2A: CVTSI2SS/CVTSI2SD xmm, r/m32/64."""
    cdef uint32_t sz = 8 if u.rex & 8 else 4
    cdef uint64_t v
    cdef uint64_t d[2]
    cdef uint32_t csr
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), sz, &v):
            return R_EXC
    else:
        v = rget(c, u.rm, sz)
    d[0] = c.xmm[u.reg][0]
    d[1] = c.xmm[u.reg][1]
    csr = sse_csr_done(c, emu_cvtsi2f(sse_csr_arg(c), d, v, u.rep == REP_F2, sz == 8))
    if sse_fp_flags(c, csr):
        return R_EXC
    c.xmm[u.reg][0] = d[0]
    return R_NEXT

cdef int op_cvtf2si(Cpu* c, const Uop* u) noexcept nogil:
    """F3/F2 [REX.W] 0F 2C (truncating) / 2D: CVT[T]SS2SI, CVT[T]SD2SI r32/64, xmm/m32/64."""
    cdef uint32_t dsz = 8 if u.rex & 8 else 4
    cdef uint32_t ssz = 8 if u.rep == REP_F2 else 4
    cdef uint64_t s[2]
    cdef uint64_t out
    cdef uint32_t csr
    if sse_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), ssz, &s[0]):
            return R_EXC
        s[1] = 0
    else:
        s[0] = c.xmm[u.rm][0]
        s[1] = c.xmm[u.rm][1]
    csr = sse_csr_done(c, emu_cvtf2si(sse_csr_arg(c), s,
                                      (2 if ssz == 8 else 0) + (1 if u.opc == 0x2d else 0), dsz == 8, &out))
    if sse_fp_flags(c, csr):
        return R_EXC
    rset(c, u.reg, dsz, out)
    return R_NEXT

cdef void init_sse_fp():
    sse_register(emu_fp_defs)
    op(1, 0x2a, op_cvtsi2f, D_MODRM, I_NONE, 0, 0xc)
    op(1, 0x2c, op_cvtf2si, D_MODRM, I_NONE, 0, 0xc)
    op(1, 0x2d, op_cvtf2si, D_MODRM, I_NONE, 0, 0xc)
