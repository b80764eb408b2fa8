# SSE arithmetic framework and the packed-integer instructions (SSE2, SSSE3,
# SSE4.1, SSE4.2): the table-driven "xmm, xmm/mN [, imm8]" handlers, the
# shift-by-immediate groups, PCMPxSTRx, CRC32.
#
# Host dependency: the table entries run the very instruction on the host
# CPU (x86-64) with the guest's MXCSR loaded (all exceptions masked), so
# results, NaN propagation, DAZ/FTZ, rounding and exception flags are those
# of the host silicon bit for bit. Every helper has the one signature
# emu_sse_fn and is built by a macro from the mnemonic: to port to a
# non-x86 host, replace each macro expansion with a C implementation of the
# same name (the Cython side only sees the table emu_sse_defs).

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #include <immintrin.h>

    typedef unsigned int (*emu_sse_fn)(unsigned int csr, uint64_t* d, const uint64_t* s,
                                       unsigned int imm, uint64_t* aux);
    typedef struct { unsigned char map, pcs, opc, msize; unsigned int kind; emu_sse_fn fn; } emu_sse_def;

    /* kind bits */
    #define EK_FP 1        /* floating point: MXCSR in, exception flags out */
    #define EK_ALIGN 2     /* an m128 operand must be 16-byte aligned */
    #define EK_IMM 4       /* imm8 follows */
    #define EK_FLAGS 8     /* sets RFLAGS (aux[0]) instead of writing the destination */
    #define EK_MEMIMM 16   /* INSERTPS: with a memory source, imm8[7:6] are ignored */
    #define EK_XMM0 32     /* implicit XMM0 operand (BLENDV*, SHA256RNDS2), passed in aux */

    /* Run with the guest MXCSR. LDMXCSR and STMXCSR are slow (they wait for
       the SSE pipeline), so the host register is not restored after each
       operation: it keeps the MXCSR of the last one, which the caller records
       (Cpu.csr_loaded) and announces with EMU_CSR_LOADED when it is already
       the one wanted; the run loop puts the host's back when a vCPU run ends
       (emu_csr_save / emu_csr_load in vcpu_run). leave returns the MXCSR
       after the operation (its exception flags). */
    #define EMU_CSR_LOADED 0x80000000u
    static inline unsigned int emu_csr_enter(unsigned int csr) {
        if (!(csr & EMU_CSR_LOADED))
            __asm__ volatile("ldmxcsr %0" : : "m"(csr) : "memory");
        return 0;
    }
    static inline unsigned int emu_csr_leave(unsigned int saved) {
        unsigned int out;
        (void)saved;
        __asm__ volatile("stmxcsr %0" : "=m"(out) : : "memory");
        return out;
    }
    static inline unsigned int emu_csr_save(void) {
        unsigned int v;
        __asm__ volatile("stmxcsr %0" : "=m"(v) : : "memory");
        return v;
    }
    static inline void emu_csr_load(unsigned int v) {
        __asm__ volatile("ldmxcsr %0" : : "m"(v) : "memory");
    }
    /* lahf/seto result (AX) -> RFLAGS bits CF PF AF ZF SF OF */
    static inline uint64_t emu_ax_flags(unsigned int ax) {
        return ((ax >> 8) & 0xD5) | ((uint64_t)(ax & 1) << 11);
    }

    #define EMU_LOAD2 __m128i a, b; memcpy(&a, d, 16); memcpy(&b, s, 16);
    #define EMU_STORE memcpy(d, &a, 16);

    /* integer two-operand: insn xmm, xmm */
    #define EMU_INT2(name) static unsigned int emu_##name(unsigned int csr, uint64_t* d, \\
            const uint64_t* s, unsigned int imm, uint64_t* aux) { \\
        EMU_LOAD2 __asm__ volatile(#name " %1, %0" : "+x"(a) : "x"(b)); EMU_STORE return csr; }
    /* floating-point two-operand */
    #define EMU_FP2(name) static unsigned int emu_##name(unsigned int csr, uint64_t* d, \\
            const uint64_t* s, unsigned int imm, uint64_t* aux) { \\
        unsigned int sv; EMU_LOAD2 sv = emu_csr_enter(csr); \\
        __asm__ volatile(#name " %1, %0" : "+x"(a) : "x"(b)); \\
        csr = emu_csr_leave(sv); EMU_STORE return csr; }
    /* with imm8: a 256-way switch so the immediate is a constant */
    #define EMU_I1(name, k) case (k): __asm__ volatile(#name " %2, %1, %0" : "+x"(a) : "x"(b), "i"(k)); break;
    #define EMU_I4(n, k) EMU_I1(n, k) EMU_I1(n, k + 1) EMU_I1(n, k + 2) EMU_I1(n, k + 3)
    #define EMU_I16(n, k) EMU_I4(n, k) EMU_I4(n, k + 4) EMU_I4(n, k + 8) EMU_I4(n, k + 12)
    #define EMU_I64(n, k) EMU_I16(n, k) EMU_I16(n, k + 16) EMU_I16(n, k + 32) EMU_I16(n, k + 48)
    #define EMU_I256(n) EMU_I64(n, 0) EMU_I64(n, 64) EMU_I64(n, 128) EMU_I64(n, 192)
    #define EMU_INTI(name) static unsigned int emu_##name(unsigned int csr, uint64_t* d, \\
            const uint64_t* s, unsigned int imm, uint64_t* aux) { \\
        EMU_LOAD2 switch (imm & 255) { EMU_I256(name) } EMU_STORE return csr; }
    #define EMU_FPI(name) static unsigned int emu_##name(unsigned int csr, uint64_t* d, \\
            const uint64_t* s, unsigned int imm, uint64_t* aux) { \\
        unsigned int sv; EMU_LOAD2 sv = emu_csr_enter(csr); \\
        switch (imm & 255) { EMU_I256(name) } \\
        csr = emu_csr_leave(sv); EMU_STORE return csr; }
    /* implicit XMM0 operand (PBLENDVB, BLENDVPS, BLENDVPD): aux holds XMM0 */
    #define EMU_X0(name) static unsigned int emu_##name(unsigned int csr, uint64_t* d, \\
            const uint64_t* s, unsigned int imm, uint64_t* aux) { \\
        __m128i x0v; EMU_LOAD2 memcpy(&x0v, aux, 16); register __m128i x0 __asm__("xmm0") = x0v; \\
        __asm__ volatile(#name " %2, %1, %0" : "+x"(a) : "x"(b), "x"(x0)); EMU_STORE return csr; }
    /* flag-setting compares (PTEST, [U]COMISS/SD) */
    #define EMU_FLG(name, fp) static unsigned int emu_##name(unsigned int csr, uint64_t* d, \\
            const uint64_t* s, unsigned int imm, uint64_t* aux) { \\
        unsigned int sv = 0, ax; EMU_LOAD2 if (fp) { sv = emu_csr_enter(csr); } \\
        __asm__ volatile(#name " %2, %1\\n\\tlahf\\n\\tseto %%al" : "=a"(ax) : "x"(a), "x"(b) : "cc"); \\
        if (fp) { csr = emu_csr_leave(sv); } aux[0] = emu_ax_flags(ax); return csr; }

    /* ---- the integer table ---- */
    #define P0 1
    #define P66 2
    #define PF3 4
    #define PF2 8
    #define INT2_LIST(X) \\
        X(1, P66, 0x60, 16, EK_ALIGN, punpcklbw) X(1, P66, 0x61, 16, EK_ALIGN, punpcklwd) X(1, P66, 0x62, 16, EK_ALIGN, punpckldq) \\
        X(1, P66, 0x63, 16, EK_ALIGN, packsswb) X(1, P66, 0x64, 16, EK_ALIGN, pcmpgtb) X(1, P66, 0x65, 16, EK_ALIGN, pcmpgtw) \\
        X(1, P66, 0x66, 16, EK_ALIGN, pcmpgtd) X(1, P66, 0x67, 16, EK_ALIGN, packuswb) X(1, P66, 0x68, 16, EK_ALIGN, punpckhbw) \\
        X(1, P66, 0x69, 16, EK_ALIGN, punpckhwd) X(1, P66, 0x6a, 16, EK_ALIGN, punpckhdq) X(1, P66, 0x6b, 16, EK_ALIGN, packssdw) \\
        X(1, P66, 0x6c, 16, EK_ALIGN, punpcklqdq) X(1, P66, 0x6d, 16, EK_ALIGN, punpckhqdq) X(1, P66, 0x74, 16, EK_ALIGN, pcmpeqb) \\
        X(1, P66, 0x75, 16, EK_ALIGN, pcmpeqw) X(1, P66, 0x76, 16, EK_ALIGN, pcmpeqd) X(1, P66, 0xd1, 16, EK_ALIGN, psrlw) \\
        X(1, P66, 0xd2, 16, EK_ALIGN, psrld) X(1, P66, 0xd3, 16, EK_ALIGN, psrlq) X(1, P66, 0xd4, 16, EK_ALIGN, paddq) \\
        X(1, P66, 0xd5, 16, EK_ALIGN, pmullw) X(1, P66, 0xd8, 16, EK_ALIGN, psubusb) X(1, P66, 0xd9, 16, EK_ALIGN, psubusw) \\
        X(1, P66, 0xda, 16, EK_ALIGN, pminub) X(1, P66, 0xdb, 16, EK_ALIGN, pand) X(1, P66, 0xdc, 16, EK_ALIGN, paddusb) \\
        X(1, P66, 0xdd, 16, EK_ALIGN, paddusw) X(1, P66, 0xde, 16, EK_ALIGN, pmaxub) X(1, P66, 0xdf, 16, EK_ALIGN, pandn) \\
        X(1, P66, 0xe0, 16, EK_ALIGN, pavgb) X(1, P66, 0xe1, 16, EK_ALIGN, psraw) X(1, P66, 0xe2, 16, EK_ALIGN, psrad) \\
        X(1, P66, 0xe3, 16, EK_ALIGN, pavgw) X(1, P66, 0xe4, 16, EK_ALIGN, pmulhuw) X(1, P66, 0xe5, 16, EK_ALIGN, pmulhw) \\
        X(1, P66, 0xe8, 16, EK_ALIGN, psubsb) X(1, P66, 0xe9, 16, EK_ALIGN, psubsw) X(1, P66, 0xea, 16, EK_ALIGN, pminsw) \\
        X(1, P66, 0xeb, 16, EK_ALIGN, por) X(1, P66, 0xec, 16, EK_ALIGN, paddsb) X(1, P66, 0xed, 16, EK_ALIGN, paddsw) \\
        X(1, P66, 0xee, 16, EK_ALIGN, pmaxsw) X(1, P66, 0xef, 16, EK_ALIGN, pxor) X(1, P66, 0xf1, 16, EK_ALIGN, psllw) \\
        X(1, P66, 0xf2, 16, EK_ALIGN, pslld) X(1, P66, 0xf3, 16, EK_ALIGN, psllq) X(1, P66, 0xf4, 16, EK_ALIGN, pmuludq) \\
        X(1, P66, 0xf5, 16, EK_ALIGN, pmaddwd) X(1, P66, 0xf6, 16, EK_ALIGN, psadbw) X(1, P66, 0xf8, 16, EK_ALIGN, psubb) \\
        X(1, P66, 0xf9, 16, EK_ALIGN, psubw) X(1, P66, 0xfa, 16, EK_ALIGN, psubd) X(1, P66, 0xfb, 16, EK_ALIGN, psubq) \\
        X(1, P66, 0xfc, 16, EK_ALIGN, paddb) X(1, P66, 0xfd, 16, EK_ALIGN, paddw) X(1, P66, 0xfe, 16, EK_ALIGN, paddd) \\
        X(2, P66, 0x00, 16, EK_ALIGN, pshufb) X(2, P66, 0x01, 16, EK_ALIGN, phaddw) X(2, P66, 0x02, 16, EK_ALIGN, phaddd) \\
        X(2, P66, 0x03, 16, EK_ALIGN, phaddsw) X(2, P66, 0x04, 16, EK_ALIGN, pmaddubsw) X(2, P66, 0x05, 16, EK_ALIGN, phsubw) \\
        X(2, P66, 0x06, 16, EK_ALIGN, phsubd) X(2, P66, 0x07, 16, EK_ALIGN, phsubsw) X(2, P66, 0x08, 16, EK_ALIGN, psignb) \\
        X(2, P66, 0x09, 16, EK_ALIGN, psignw) X(2, P66, 0x0a, 16, EK_ALIGN, psignd) X(2, P66, 0x0b, 16, EK_ALIGN, pmulhrsw) \\
        X(2, P66, 0x1c, 16, EK_ALIGN, pabsb) X(2, P66, 0x1d, 16, EK_ALIGN, pabsw) X(2, P66, 0x1e, 16, EK_ALIGN, pabsd) \\
        X(2, P66, 0x20, 8, 0, pmovsxbw) X(2, P66, 0x21, 4, 0, pmovsxbd) X(2, P66, 0x22, 2, 0, pmovsxbq) \\
        X(2, P66, 0x23, 8, 0, pmovsxwd) X(2, P66, 0x24, 4, 0, pmovsxwq) X(2, P66, 0x25, 8, 0, pmovsxdq) \\
        X(2, P66, 0x28, 16, EK_ALIGN, pmuldq) X(2, P66, 0x29, 16, EK_ALIGN, pcmpeqq) X(2, P66, 0x2b, 16, EK_ALIGN, packusdw) \\
        X(2, P66, 0x30, 8, 0, pmovzxbw) X(2, P66, 0x31, 4, 0, pmovzxbd) X(2, P66, 0x32, 2, 0, pmovzxbq) \\
        X(2, P66, 0x33, 8, 0, pmovzxwd) X(2, P66, 0x34, 4, 0, pmovzxwq) X(2, P66, 0x35, 8, 0, pmovzxdq) \\
        X(2, P66, 0x37, 16, EK_ALIGN, pcmpgtq) X(2, P66, 0x38, 16, EK_ALIGN, pminsb) X(2, P66, 0x39, 16, EK_ALIGN, pminsd) \\
        X(2, P66, 0x3a, 16, EK_ALIGN, pminuw) X(2, P66, 0x3b, 16, EK_ALIGN, pminud) X(2, P66, 0x3c, 16, EK_ALIGN, pmaxsb) \\
        X(2, P66, 0x3d, 16, EK_ALIGN, pmaxsd) X(2, P66, 0x3e, 16, EK_ALIGN, pmaxuw) X(2, P66, 0x3f, 16, EK_ALIGN, pmaxud) \\
        X(2, P66, 0x40, 16, EK_ALIGN, pmulld) X(2, P66, 0x41, 16, EK_ALIGN, phminposuw)
    #define INTI_LIST(X) \\
        X(1, P66, 0x70, 16, EK_ALIGN, pshufd) X(1, PF3, 0x70, 16, EK_ALIGN, pshufhw) X(1, PF2, 0x70, 16, EK_ALIGN, pshuflw) \\
        X(3, P66, 0x0e, 16, EK_ALIGN, pblendw) X(3, P66, 0x0f, 16, EK_ALIGN, palignr) X(3, P66, 0x42, 16, EK_ALIGN, mpsadbw) \\
        X(3, P66, 0x0c, 16, EK_ALIGN, blendps) X(3, P66, 0x0d, 16, EK_ALIGN, blendpd) \\
        X(1, P0, 0xc6, 16, EK_ALIGN, shufps) X(1, P66, 0xc6, 16, EK_ALIGN, shufpd)
    #define X0_LIST(X) \\
        X(2, P66, 0x10, 16, EK_ALIGN, pblendvb) X(2, P66, 0x14, 16, EK_ALIGN, blendvps) X(2, P66, 0x15, 16, EK_ALIGN, blendvpd)

    #define EMU_DEF_INT2(m, p, o, ms, al, name) EMU_INT2(name)
    #define EMU_DEF_INTI(m, p, o, ms, al, name) EMU_INTI(name)
    #define EMU_DEF_X0(m, p, o, ms, al, name) EMU_X0(name)
    INT2_LIST(EMU_DEF_INT2)
    INTI_LIST(EMU_DEF_INTI)
    X0_LIST(EMU_DEF_X0)
    EMU_FLG(ptest, 0)

    #define EMU_TAB(m, p, o, ms, al, name) {m, p, o, ms, al, emu_##name},
    #define EMU_TABI(m, p, o, ms, al, name) {m, p, o, ms, (al) | EK_IMM, emu_##name},
    #define EMU_TABX0(m, p, o, ms, al, name) {m, p, o, ms, (al) | EK_XMM0, emu_##name},
    static const emu_sse_def emu_int_defs[] = {
        INT2_LIST(EMU_TAB)
        INTI_LIST(EMU_TABI)
        X0_LIST(EMU_TABX0)
        {2, P66, 0x17, 16, EK_ALIGN | EK_FLAGS, emu_ptest},
        {0, 0, 0, 0, 0, 0}
    };

    /* ---- PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM ----
       which: 0 ESTRM, 1 ESTRI, 2 ISTRM, 3 ISTRI (the low two opcode bits).
       la/lb: the explicit lengths (already saturated to 0..16). The index goes
       to *idx, the mask to m; returns RFLAGS bits. */
    #define EMU_SE1(name, k) case (k): __asm__ volatile(#name " %5, %3, %2\\n\\tlahf\\n\\tseto %%al" \\
        : "+a"(la), "=c"(ix) : "x"(a), "x"(b), "d"(lb), "i"(k) : "cc"); break;
    #define EMU_SM1(name, k) case (k): __asm__ volatile(#name " %5, %3, %2\\n\\tlahf\\n\\tseto %%al" \\
        : "+a"(la), "=x"(r0) : "x"(a), "x"(b), "d"(lb), "i"(k) : "cc"); break;
    #define EMU_S4(M, n, k) M(n, k) M(n, k + 1) M(n, k + 2) M(n, k + 3)
    #define EMU_S16(M, n, k) EMU_S4(M, n, k) EMU_S4(M, n, k + 4) EMU_S4(M, n, k + 8) EMU_S4(M, n, k + 12)
    #define EMU_S64(M, n, k) EMU_S16(M, n, k) EMU_S16(M, n, k + 16) EMU_S16(M, n, k + 32) EMU_S16(M, n, k + 48)
    #define EMU_S256(M, n) EMU_S64(M, n, 0) EMU_S64(M, n, 64) EMU_S64(M, n, 128) EMU_S64(M, n, 192)
    static uint64_t emu_pcmpstr(int which, const uint64_t* d, const uint64_t* s, unsigned int imm,
                                unsigned int la, unsigned int lb, uint64_t* m, unsigned int* idx) {
        __m128i a, b;
        register __m128i r0 __asm__("xmm0");
        unsigned int ix = 0;
        memcpy(&a, d, 16); memcpy(&b, s, 16);
        r0 = _mm_setzero_si128();
        switch (which) {
        case 0: switch (imm & 255) { EMU_S256(EMU_SM1, pcmpestrm) } break;
        case 1: switch (imm & 255) { EMU_S256(EMU_SE1, pcmpestri) } break;
        case 2: switch (imm & 255) { EMU_S256(EMU_SM1, pcmpistrm) } break;
        default: switch (imm & 255) { EMU_S256(EMU_SE1, pcmpistri) } break;
        }
        { __m128i rv = r0; memcpy(m, &rv, 16); }
        *idx = ix;
        return emu_ax_flags(la);
    }

    """
    ctypedef unsigned int (*emu_sse_fn)(unsigned int csr, uint64_t* d, const uint64_t* s,
                                        unsigned int imm, uint64_t* aux) noexcept nogil
    ctypedef struct emu_sse_def:
        unsigned char map, pcs, opc, msize
        unsigned int kind
        emu_sse_fn fn
    const emu_sse_def* emu_int_defs
    uint64_t emu_pcmpstr(int which, const uint64_t* d, const uint64_t* s, unsigned int imm,
                         unsigned int la, unsigned int lb, uint64_t* m, unsigned int* idx) noexcept nogil
    int EK_FP, EK_ALIGN, EK_IMM, EK_FLAGS, EK_MEMIMM, EK_XMM0
    unsigned int emu_csr_save() noexcept nogil
    void emu_csr_load(unsigned int v) noexcept nogil
    const unsigned int EMU_CSR_LOADED

cdef inline uint32_t sse_csr_arg(Cpu* c) noexcept nogil:
    """The MXCSR a host SSE operation runs with: the guest's controls with
    every exception masked. With all of the guest's exceptions masked too,
    its flags are kept, so from one operation to the next the host register
    already holds it (EMU_CSR_LOADED: no reload). Otherwise the flags start clear,
    so each operation's own exceptions can be checked against the guest's
    masks (#XM)."""
    cdef uint32_t want
    if (c.mxcsr & 0x1f80) == 0x1f80:
        want = c.mxcsr & 0xffff
    else:
        want = (c.mxcsr & 0xffc0) | 0x1f80
    if c.csr_loaded == want:
        return want | EMU_CSR_LOADED
    return want

cdef inline uint32_t sse_csr_done(Cpu* c, uint32_t csr) noexcept nogil:
    """After a host SSE operation: the host register holds csr."""
    c.csr_loaded = csr & 0xffff
    return csr

# All table-driven instructions, int and FP: u.sub indexes sse_tab (plus 256
# for the second handler).
cdef emu_sse_def sse_tab[512]
cdef int sse_ntab = 0

cdef inline int sse_exec(Cpu* c, const Uop* u, const emu_sse_def* o) noexcept nogil:
    cdef uint64_t s[2]
    cdef uint64_t d[2]
    cdef uint64_t aux[2]
    cdef uint64_t a, v
    cdef uint32_t csr, fl, un, imm
    cdef uint32_t kind = o.kind
    if sse_check(c):
        return R_EXC
    imm = <uint32_t>u.imm & 0xff
    if u.mem:
        a = ea_of(c, u)
        if o.msize == 16:
            if kind & EK_ALIGN and a & 15:
                return raise_gp0(c)
            if rd128(c, a, s):
                return R_EXC
        else:
            if mem_read(c, a, o.msize, &v):
                return R_EXC
            s[0] = v
            s[1] = 0
            if kind & EK_MEMIMM:
                imm &= 0x3f
    else:
        s[0] = c.xmm[u.rm][0]
        s[1] = c.xmm[u.rm][1]
    d[0] = c.xmm[u.reg][0]
    d[1] = c.xmm[u.reg][1]
    aux[0] = c.xmm[0][0]
    aux[1] = c.xmm[0][1]
    if kind & EK_FP:
        # all exceptions masked; then compare with the guest's masks
        csr = sse_csr_done(c, o.fn(sse_csr_arg(c), d, s, imm, aux))
        fl = csr & 0x3f
        if fl:
            un = fl & ~(c.mxcsr >> 7) & 0x3f
            c.mxcsr |= fl
            if un:
                return sse_simd_fault(c)
    else:
        o.fn(0, d, s, imm, aux)
    if kind & EK_FLAGS:
        set_arith_flags(c, aux[0])
    else:
        c.xmm[u.reg][0] = d[0]
        c.xmm[u.reg][1] = d[1]
    return R_NEXT

cdef inline int sse_simd_fault(Cpu* c) noexcept nogil:
    """An unmasked SIMD floating-point exception: #XM, or #UD when
    CR4.OSXMMEXCPT is clear (SDM Vol. 3A, 6.15, interrupt 19)."""
    if c.cr4 & SSE_CR4_OSXMMEXCPT:
        return raise_exc(c, EXC_XM, 0, 0)
    return raise_ud(c)

cdef int op_sse_tab0(Cpu* c, const Uop* u) noexcept nogil:
    return sse_exec(c, u, &sse_tab[u.sub])

cdef int op_sse_tab1(Cpu* c, const Uop* u) noexcept nogil:
    return sse_exec(c, u, &sse_tab[256 + u.sub])

cdef void sse_register(const emu_sse_def* defs):
    """Register every entry of a {0}-terminated table."""
    global sse_ntab
    cdef int i = 0, k
    while defs[i].fn != NULL:
        k = sse_ntab
        sse_tab[k] = defs[i]
        sse_ntab += 1
        op(defs[i].map, defs[i].opc, op_sse_tab0 if k < 256 else op_sse_tab1, D_MODRM,
           I_8 if defs[i].kind & EK_IMM else I_NONE, k & 255, defs[i].pcs)
        i += 1

# ---- shifts by immediate: 66 0F 71/72/73 ----

cdef int op_pshift_imm(Cpu* c, const Uop* u) noexcept nogil:
    """u.opc 71 words, 72 dwords, 73 qwords/whole register; u.sub is /n:
    2 logical right, 4 arithmetic right, 6 left, 3 PSRLDQ, 7 PSLLDQ (bytes)."""
    cdef uint64_t* x = &c.xmm[u.rm][0]
    cdef uint32_t n = <uint32_t>u.imm & 0xff
    cdef uint32_t w, bits, i, j
    cdef uint64_t lo, hi, e, m, r
    cdef int64_t se
    if sse_check(c):
        return R_EXC
    if u.opc == 0x73 and (u.sub == 3 or u.sub == 7):
        lo = x[0]
        hi = x[1]
        if n > 15:
            x[0] = 0
            x[1] = 0
        elif n:
            n *= 8
            if u.sub == 3:        # PSRLDQ
                if n >= 64:
                    x[0] = hi >> (n - 64)
                    x[1] = 0
                else:
                    x[0] = (lo >> n) | (hi << (64 - n))
                    x[1] = hi >> n
            else:                 # PSLLDQ
                if n >= 64:
                    x[1] = lo << (n - 64)
                    x[0] = 0
                else:
                    x[1] = (hi << n) | (lo >> (64 - n))
                    x[0] = lo << n
        return R_NEXT
    w = 2 if u.opc == 0x71 else (4 if u.opc == 0x72 else 8)
    bits = w * 8
    m = SZ_MASK[w]
    for i in range(2):
        r = 0
        for j in range(8 // w):
            e = (x[i] >> (j * bits)) & m
            if u.sub == 2:
                e = 0 if n >= bits else e >> n
            elif u.sub == 6:
                e = 0 if n >= bits else (e << n) & m
            else:
                se = sext(e, w)
                e = <uint64_t>(se >> (bits - 1 if n >= bits else n)) & m
            r |= e << (j * bits)
        x[i] = r
    return R_NEXT

# ---- SSE4.2 string compares and CRC32 ----

cdef inline uint32_t pcmpstr_len(uint64_t v, int wide, uint32_t limit) noexcept nogil:
    """The explicit length of PCMPESTRx: |EAX| or |RAX| saturated to the element count."""
    cdef int64_t x
    if wide:
        x = <int64_t>v
    else:
        x = <int64_t><int32_t>v
    if x < 0:
        if x < -<int64_t>limit:
            return limit
        x = -x
    if x > <int64_t>limit:
        return limit
    return <uint32_t>x

cdef int op_pcmpstr(Cpu* c, const Uop* u) noexcept nogil:
    """66 0F 3A 60-63 (memory operands need no alignment)."""
    cdef uint64_t s[2]
    cdef uint64_t m[2]
    cdef uint32_t which = u.opc & 3, idx, limit = 8 if u.imm & 1 else 16
    cdef uint32_t la = 0, lb = 0
    cdef uint64_t f
    if sse_check(c) or src128(c, u, s, 0):
        return R_EXC
    if which < 2:
        la = pcmpstr_len(c.r[0], u.rex & 8, limit)
        lb = pcmpstr_len(c.r[2], u.rex & 8, limit)
    f = emu_pcmpstr(which, &c.xmm[u.reg][0], s, <uint32_t>u.imm & 0xff, la, lb, m, &idx)
    if which & 1:
        c.r[1] = idx
    else:
        c.xmm[0][0] = m[0]
        c.xmm[0][1] = m[1]
    set_arith_flags(c, f)
    return R_NEXT

cdef void init_sse_int():
    cdef int k
    sse_register(emu_int_defs)
    for k in (2, 4, 6):
        grp(1, 0x71, k, op_pshift_imm, D_REGONLY, I_8, 0, 0x2)
        grp(1, 0x72, k, op_pshift_imm, D_REGONLY, I_8, 0, 0x2)
    for k in (2, 3, 6, 7):
        grp(1, 0x73, k, op_pshift_imm, D_REGONLY, I_8, 0, 0x2)
    for k in range(0x60, 0x64):
        op(3, k, op_pcmpstr, D_MODRM, I_8, 0, 0x2)
