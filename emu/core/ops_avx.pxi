# AVX and AVX2 (and FMA3, F16C) vector arithmetic: the table-driven
# "dest, src1 (VEX.vvvv), src2 (r/m) [, imm8 | is4]" forms, run as the very
# same VEX instruction on the host CPU with the guest's MXCSR (as the SSE
# tables of ops_sse_int.pxi do), so results, NaN propagation, DAZ/FTZ,
# rounding and exception flags are the host silicon's bit for bit.
#
# Each entry of VEX_LIST names a shape, whether it is floating point (MXCSR
# in, flags out), its imm8 case count, where it lives (map, pp, opcode), its
# memory operand size at VEX.L = 0 and 1, its VX_* rules, the features it
# needs (FEAT_*; the second with VEX.L = 1) and its mnemonic without the v.
# The 128-bit form of an SSE instruction reuses the legacy helper (its
# destination preloaded with src1: VEX.128 "v<op> x1, x2, x3" is "<op> x1, x3"
# with x1 = x2), so only the 256-bit helpers are new. Shapes:
#   L3 / L2      legacy 128; 256: 3-operand / 2-operand (vvvv unused)
#   L3I / L2I    the same with imm8
#   L3C          legacy 128; 256 with an xmm/m128 shift count
#   LX / LX2     legacy 128 only (scalar 3-operand / 2-operand, or VEX.128 only)
#   LXM          LX where a memory source ignores imm8[7:6] (VINSERTPS)
#   LXF / LFLG   flag-setting compare: legacy 128 only / and a 256 helper
#   LX4          legacy 128 (implicit XMM0 = the is4 register); 256 with is4
#   V3 V2I V3I   VEX-only: both widths generated from the VEX mnemonic
#   XS3I         VEX-only, 128 only (scalar compares with 5-bit predicates)
#   VFLG         VEX-only flag-setting (VTESTPS/PD)
#   W2 / N2      widening (source half the width) / narrowing (result 128 bits)
#   Y3 Y2I Y3I   256 only (VPERMD, VPERMQ, VPERM2F128...)
#   YINS         256 only, xmm/m128 second source (VINSERTF128)
#   VFMA / XFMA  FMA3, the destination is the third source; packed / scalar
#
# Host dependency: the helpers need AVX2, FMA and F16C on the host (checked at
# start-up in host.pxi); without them the CPU models do not offer AVX and VEX
# forms are #UD, as on a CPU without AVX.

cdef extern from *:
    """
    #define EMU_VTGT __attribute__((target("avx,avx2,fma,f16c")))
    typedef unsigned int (*emu_vex_fn)(unsigned int csr, uint64_t* d, const uint64_t* a,
                                       const uint64_t* b, unsigned int imm, uint64_t* aux);
    typedef struct { unsigned char map, pp, opc, m0, m1; unsigned int kind, vx;
                     unsigned long long f0, f1; emu_vex_fn f128, f256; const char* name; } emu_vex_def;

    /* kind bits beyond the EK_* of ops_sse_int.pxi */
    #define VK_NDS 0x100     /* src1 is VEX.vvvv (else the ModRM.reg register, for flag compares) */
    #define VK_RD 0x200      /* the destination is also a source (FMA) */
    #define VK_IS4 0x400     /* a fourth register in imm8[7:4] */
    #define VK_NARROW 0x800  /* the result is 128 bits whatever VEX.L */

    /* one helper: r = dest (in/out), a = src1, b = src2 */
    #define EMU_VF(fname, TD, TA, TB, fp, ASM) static EMU_VTGT unsigned int fname(unsigned int csr, \\
            uint64_t* d, const uint64_t* s1, const uint64_t* s2, unsigned int imm, uint64_t* aux) { \\
        TD r; TA a; TB b; unsigned int sv = 0; (void)aux; (void)imm; \\
        memcpy(&r, d, sizeof(TD)); memcpy(&a, s1, sizeof(TA)); memcpy(&b, s2, sizeof(TB)); \\
        if (fp) sv = emu_csr_enter(csr); \\
        ASM \\
        if (fp) csr = emu_csr_leave(sv); \\
        memcpy(d, &r, sizeof(TD)); return csr; }
    #define EMU_A3(N) __asm__ volatile(N " %2, %1, %0" : "=x"(r) : "x"(a), "x"(b));
    #define EMU_A2(N) __asm__ volatile(N " %1, %0" : "=x"(r) : "x"(b));
    #define EMU_AF(N) __asm__ volatile(N " %2, %1, %0" : "+x"(r) : "x"(a), "x"(b));
    #define EMU_A4(N) { __typeof__(a) m4; memcpy(&m4, aux, sizeof(m4)); \\
        __asm__ volatile(N " %3, %2, %1, %0" : "=x"(r) : "x"(a), "x"(b), "x"(m4)); }
    #define EMU_AFLG(N) { unsigned int ax; \\
        __asm__ volatile(N " %2, %1\\n\\tlahf\\n\\tseto %%al" : "=a"(ax) : "x"(a), "x"(b) : "cc"); \\
        aux[0] = emu_ax_flags(ax); r = a; }
    /* imm8 forms: a switch so the immediate is a constant; n cases (imm & (n-1)) */
    #define EMU_C3(N, k) case (k): __asm__ volatile(N " %3, %2, %1, %0" : "=x"(r) : "x"(a), "x"(b), "i"(k)); break;
    #define EMU_C2(N, k) case (k): __asm__ volatile(N " %2, %1, %0" : "=x"(r) : "x"(b), "i"(k)); break;
    #define EMU_K2(M, N, k) M(N, k) M(N, k + 1)
    #define EMU_K4(M, N, k) EMU_K2(M, N, k) EMU_K2(M, N, k + 2)
    #define EMU_K8(M, N, k) EMU_K4(M, N, k) EMU_K4(M, N, k + 4)
    #define EMU_K16(M, N, k) EMU_K8(M, N, k) EMU_K8(M, N, k + 8)
    #define EMU_K32(M, N, k) EMU_K16(M, N, k) EMU_K16(M, N, k + 16)
    #define EMU_K64(M, N, k) EMU_K32(M, N, k) EMU_K32(M, N, k + 32)
    #define EMU_K128(M, N, k) EMU_K64(M, N, k) EMU_K64(M, N, k + 64)
    #define EMU_K256(M, N, k) EMU_K128(M, N, k) EMU_K128(M, N, k + 128)
    #define EMU_A3I(N, n) switch (imm & ((n) - 1)) { EMU_K##n(EMU_C3, N, 0) }
    #define EMU_A2I(N, n) switch (imm & ((n) - 1)) { EMU_K##n(EMU_C2, N, 0) }

    typedef __m128i emu_x;
    typedef __m256i emu_y;
    /* a legacy SSE helper as a VEX.128 one: dest preloaded with src1 */
    #define EMU_LEG(n) static unsigned int emu_x_##n(unsigned int csr, uint64_t* d, const uint64_t* a, \\
            const uint64_t* b, unsigned int imm, uint64_t* aux) { \\
        d[0] = a[0]; d[1] = a[1]; return emu_##n(csr, d, b, imm, aux); }

    #define EMU_VD_L3(fp, in, n) EMU_LEG(n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_A3("v" #n))
    #define EMU_VD_L2(fp, in, n) EMU_LEG(n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_A2("v" #n))
    #define EMU_VD_L3I(fp, in, n) EMU_LEG(n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_A3I("v" #n, in))
    #define EMU_VD_L2I(fp, in, n) EMU_LEG(n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_A2I("v" #n, in))
    #define EMU_VD_L3C(fp, in, n) EMU_LEG(n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_x, fp, EMU_A3("v" #n))
    #define EMU_VD_LX(fp, in, n) EMU_LEG(n)
    #define EMU_VD_LX2(fp, in, n) EMU_LEG(n)
    #define EMU_VD_LXM(fp, in, n) EMU_LEG(n)
    #define EMU_VD_LXF(fp, in, n) EMU_LEG(n)
    #define EMU_VD_LFLG(fp, in, n) EMU_LEG(n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_AFLG("v" #n))
    #define EMU_VD_LX4(fp, in, n) EMU_LEG(n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_A4("v" #n))
    #define EMU_VD_V3(fp, in, n) EMU_VF(emu_vx_##n, emu_x, emu_x, emu_x, fp, EMU_A3("v" #n)) \\
        EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_A3("v" #n))
    #define EMU_VD_V2I(fp, in, n) EMU_VF(emu_vxi_##n, emu_x, emu_x, emu_x, fp, EMU_A2I("v" #n, in)) \\
        EMU_VF(emu_yi_##n, emu_y, emu_y, emu_y, fp, EMU_A2I("v" #n, in))
    #define EMU_VD_V3I(fp, in, n) EMU_VF(emu_vx_##n, emu_x, emu_x, emu_x, fp, EMU_A3I("v" #n, in)) \\
        EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_A3I("v" #n, in))
    #define EMU_VD_XS3I(fp, in, n) EMU_VF(emu_vx_##n, emu_x, emu_x, emu_x, fp, EMU_A3I("v" #n, in))
    #define EMU_VD_VFLG(fp, in, n) EMU_VF(emu_vx_##n, emu_x, emu_x, emu_x, fp, EMU_AFLG("v" #n)) \\
        EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_AFLG("v" #n))
    #define EMU_VD_W2(fp, in, n) EMU_VF(emu_vx_##n, emu_x, emu_x, emu_x, fp, EMU_A2("v" #n)) \\
        EMU_VF(emu_y_##n, emu_y, emu_y, emu_x, fp, EMU_A2("v" #n))
    #define EMU_VD_N2(fp, in, n) EMU_VF(emu_vx_##n, emu_x, emu_x, emu_x, fp, EMU_A2("v" #n "x")) \\
        EMU_VF(emu_y_##n, emu_x, emu_y, emu_y, fp, EMU_A2("v" #n "y"))
    #define EMU_VD_Y3(fp, in, n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_A3("v" #n))
    #define EMU_VD_Y2I(fp, in, n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_A2I("v" #n, in))
    #define EMU_VD_Y3I(fp, in, n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_A3I("v" #n, in))
    #define EMU_VD_YINS(fp, in, n) EMU_VF(emu_y_##n, emu_y, emu_y, emu_x, fp, EMU_A3I("v" #n, in))
    #define EMU_VD_VFMA(fp, in, n) EMU_VF(emu_vx_##n, emu_x, emu_x, emu_x, fp, EMU_AF("v" #n)) \\
        EMU_VF(emu_y_##n, emu_y, emu_y, emu_y, fp, EMU_AF("v" #n))
    #define EMU_VD_XFMA(fp, in, n) EMU_VF(emu_vx_##n, emu_x, emu_x, emu_x, fp, EMU_AF("v" #n))

    /* table entries: kind bits and the two helpers of each shape */
    #define EMU_VT_L3(n) VK_NDS, emu_x_##n, emu_y_##n
    #define EMU_VT_L2(n) 0, emu_x_##n, emu_y_##n
    #define EMU_VT_L3I(n) VK_NDS, emu_x_##n, emu_y_##n
    #define EMU_VT_L2I(n) 0, emu_x_##n, emu_y_##n
    #define EMU_VT_L3C(n) VK_NDS, emu_x_##n, emu_y_##n
    #define EMU_VT_LX(n) VK_NDS, emu_x_##n, 0
    #define EMU_VT_LX2(n) 0, emu_x_##n, 0
    #define EMU_VT_LXM(n) VK_NDS | EK_MEMIMM, emu_x_##n, 0
    #define EMU_VT_LXF(n) EK_FLAGS, emu_x_##n, 0
    #define EMU_VT_LFLG(n) EK_FLAGS, emu_x_##n, emu_y_##n
    #define EMU_VT_LX4(n) VK_NDS | VK_IS4, emu_x_##n, emu_y_##n
    #define EMU_VT_V3(n) VK_NDS, emu_vx_##n, emu_y_##n
    #define EMU_VT_V2I(n) 0, emu_vxi_##n, emu_yi_##n
    #define EMU_VT_V3I(n) VK_NDS, emu_vx_##n, emu_y_##n
    #define EMU_VT_XS3I(n) VK_NDS, emu_vx_##n, 0
    #define EMU_VT_VFLG(n) EK_FLAGS, emu_vx_##n, emu_y_##n
    #define EMU_VT_W2(n) 0, emu_vx_##n, emu_y_##n
    #define EMU_VT_N2(n) VK_NARROW, emu_vx_##n, emu_y_##n
    #define EMU_VT_Y3(n) VK_NDS, 0, emu_y_##n
    #define EMU_VT_Y2I(n) 0, 0, emu_y_##n
    #define EMU_VT_Y3I(n) VK_NDS, 0, emu_y_##n
    #define EMU_VT_YINS(n) VK_NDS, 0, emu_y_##n
    #define EMU_VT_VFMA(n) VK_NDS | VK_RD, emu_vx_##n, emu_y_##n
    #define EMU_VT_XFMA(n) VK_NDS | VK_RD, emu_vx_##n, 0
    #define EMU_VT_KIND(kind, fp, in) ((kind) | ((fp) ? EK_FP : 0) | ((in) ? EK_IMM : 0))

    #define VEX_LIST(X) \\
        X(L3, 1, 0, 1, 0, 0x58, 16, 32, 0, FEAT_AVX, 0, addps) \\
        X(L3, 1, 0, 1, 0, 0x59, 16, 32, 0, FEAT_AVX, 0, mulps) \\
        X(L3, 1, 0, 1, 0, 0x5c, 16, 32, 0, FEAT_AVX, 0, subps) \\
        X(L3, 1, 0, 1, 0, 0x5d, 16, 32, 0, FEAT_AVX, 0, minps) \\
        X(L3, 1, 0, 1, 0, 0x5e, 16, 32, 0, FEAT_AVX, 0, divps) \\
        X(L3, 1, 0, 1, 0, 0x5f, 16, 32, 0, FEAT_AVX, 0, maxps) \\
        X(L2, 1, 0, 1, 0, 0x51, 16, 32, VX_NOV, FEAT_AVX, 0, sqrtps) \\
        X(L3, 0, 0, 1, 0, 0x54, 16, 32, 0, FEAT_AVX, 0, andps) \\
        X(L3, 0, 0, 1, 0, 0x55, 16, 32, 0, FEAT_AVX, 0, andnps) \\
        X(L3, 0, 0, 1, 0, 0x56, 16, 32, 0, FEAT_AVX, 0, orps) \\
        X(L3, 0, 0, 1, 0, 0x57, 16, 32, 0, FEAT_AVX, 0, xorps) \\
        X(L3, 0, 0, 1, 0, 0x14, 16, 32, 0, FEAT_AVX, 0, unpcklps) \\
        X(L3, 0, 0, 1, 0, 0x15, 16, 32, 0, FEAT_AVX, 0, unpckhps) \\
        X(V3I, 1, 32, 1, 0, 0xc2, 16, 32, 0, FEAT_AVX, 0, cmpps) \\
        X(L3I, 0, 256, 1, 0, 0xc6, 16, 32, 0, FEAT_AVX, 0, shufps) \\
        X(LXF, 1, 0, 1, 0, 0x2e, 4, 0, VX_NOV|VX_LIG, FEAT_AVX, 0, ucomiss) \\
        X(LXF, 1, 0, 1, 0, 0x2f, 4, 0, VX_NOV|VX_LIG, FEAT_AVX, 0, comiss) \\
        X(L3, 1, 0, 1, 1, 0x58, 16, 32, 0, FEAT_AVX, 0, addpd) \\
        X(L3, 1, 0, 1, 1, 0x59, 16, 32, 0, FEAT_AVX, 0, mulpd) \\
        X(L3, 1, 0, 1, 1, 0x5c, 16, 32, 0, FEAT_AVX, 0, subpd) \\
        X(L3, 1, 0, 1, 1, 0x5d, 16, 32, 0, FEAT_AVX, 0, minpd) \\
        X(L3, 1, 0, 1, 1, 0x5e, 16, 32, 0, FEAT_AVX, 0, divpd) \\
        X(L3, 1, 0, 1, 1, 0x5f, 16, 32, 0, FEAT_AVX, 0, maxpd) \\
        X(L2, 1, 0, 1, 1, 0x51, 16, 32, VX_NOV, FEAT_AVX, 0, sqrtpd) \\
        X(L3, 0, 0, 1, 1, 0x54, 16, 32, 0, FEAT_AVX, 0, andpd) \\
        X(L3, 0, 0, 1, 1, 0x55, 16, 32, 0, FEAT_AVX, 0, andnpd) \\
        X(L3, 0, 0, 1, 1, 0x56, 16, 32, 0, FEAT_AVX, 0, orpd) \\
        X(L3, 0, 0, 1, 1, 0x57, 16, 32, 0, FEAT_AVX, 0, xorpd) \\
        X(L3, 0, 0, 1, 1, 0x14, 16, 32, 0, FEAT_AVX, 0, unpcklpd) \\
        X(L3, 0, 0, 1, 1, 0x15, 16, 32, 0, FEAT_AVX, 0, unpckhpd) \\
        X(V3I, 1, 32, 1, 1, 0xc2, 16, 32, 0, FEAT_AVX, 0, cmppd) \\
        X(L3I, 0, 256, 1, 1, 0xc6, 16, 32, 0, FEAT_AVX, 0, shufpd) \\
        X(LXF, 1, 0, 1, 1, 0x2e, 8, 0, VX_NOV|VX_LIG, FEAT_AVX, 0, ucomisd) \\
        X(LXF, 1, 0, 1, 1, 0x2f, 8, 0, VX_NOV|VX_LIG, FEAT_AVX, 0, comisd) \\
        X(L2, 1, 0, 1, 0, 0x52, 16, 32, VX_NOV, FEAT_AVX, 0, rsqrtps) \\
        X(L2, 1, 0, 1, 0, 0x53, 16, 32, VX_NOV, FEAT_AVX, 0, rcpps) \\
        X(W2, 1, 0, 1, 0, 0x5a, 8, 16, VX_NOV, FEAT_AVX, 0, cvtps2pd) \\
        X(N2, 1, 0, 1, 1, 0x5a, 16, 32, VX_NOV, FEAT_AVX, 0, cvtpd2ps) \\
        X(L2, 1, 0, 1, 0, 0x5b, 16, 32, VX_NOV, FEAT_AVX, 0, cvtdq2ps) \\
        X(L2, 1, 0, 1, 1, 0x5b, 16, 32, VX_NOV, FEAT_AVX, 0, cvtps2dq) \\
        X(L2, 1, 0, 1, 2, 0x5b, 16, 32, VX_NOV, FEAT_AVX, 0, cvttps2dq) \\
        X(N2, 1, 0, 1, 1, 0xe6, 16, 32, VX_NOV, FEAT_AVX, 0, cvttpd2dq) \\
        X(W2, 1, 0, 1, 2, 0xe6, 8, 16, VX_NOV, FEAT_AVX, 0, cvtdq2pd) \\
        X(N2, 1, 0, 1, 3, 0xe6, 16, 32, VX_NOV, FEAT_AVX, 0, cvtpd2dq) \\
        X(LX, 1, 0, 1, 2, 0x58, 4, 0, VX_LIG, FEAT_AVX, 0, addss) \\
        X(LX, 1, 0, 1, 2, 0x59, 4, 0, VX_LIG, FEAT_AVX, 0, mulss) \\
        X(LX, 1, 0, 1, 2, 0x5c, 4, 0, VX_LIG, FEAT_AVX, 0, subss) \\
        X(LX, 1, 0, 1, 2, 0x5d, 4, 0, VX_LIG, FEAT_AVX, 0, minss) \\
        X(LX, 1, 0, 1, 2, 0x5e, 4, 0, VX_LIG, FEAT_AVX, 0, divss) \\
        X(LX, 1, 0, 1, 2, 0x5f, 4, 0, VX_LIG, FEAT_AVX, 0, maxss) \\
        X(LX, 1, 0, 1, 2, 0x51, 4, 0, VX_LIG, FEAT_AVX, 0, sqrtss) \\
        X(XS3I, 1, 32, 1, 2, 0xc2, 4, 0, VX_LIG, FEAT_AVX, 0, cmpss) \\
        X(LX, 1, 0, 1, 3, 0x58, 8, 0, VX_LIG, FEAT_AVX, 0, addsd) \\
        X(LX, 1, 0, 1, 3, 0x59, 8, 0, VX_LIG, FEAT_AVX, 0, mulsd) \\
        X(LX, 1, 0, 1, 3, 0x5c, 8, 0, VX_LIG, FEAT_AVX, 0, subsd) \\
        X(LX, 1, 0, 1, 3, 0x5d, 8, 0, VX_LIG, FEAT_AVX, 0, minsd) \\
        X(LX, 1, 0, 1, 3, 0x5e, 8, 0, VX_LIG, FEAT_AVX, 0, divsd) \\
        X(LX, 1, 0, 1, 3, 0x5f, 8, 0, VX_LIG, FEAT_AVX, 0, maxsd) \\
        X(LX, 1, 0, 1, 3, 0x51, 8, 0, VX_LIG, FEAT_AVX, 0, sqrtsd) \\
        X(XS3I, 1, 32, 1, 3, 0xc2, 8, 0, VX_LIG, FEAT_AVX, 0, cmpsd) \\
        X(LX, 1, 0, 1, 2, 0x52, 4, 0, VX_LIG, FEAT_AVX, 0, rsqrtss) \\
        X(LX, 1, 0, 1, 2, 0x53, 4, 0, VX_LIG, FEAT_AVX, 0, rcpss) \\
        X(LX, 1, 0, 1, 2, 0x5a, 4, 0, VX_LIG, FEAT_AVX, 0, cvtss2sd) \\
        X(LX, 1, 0, 1, 3, 0x5a, 8, 0, VX_LIG, FEAT_AVX, 0, cvtsd2ss) \\
        X(L3, 1, 0, 1, 1, 0x7c, 16, 32, 0, FEAT_AVX, 0, haddpd) \\
        X(L3, 1, 0, 1, 3, 0x7c, 16, 32, 0, FEAT_AVX, 0, haddps) \\
        X(L3, 1, 0, 1, 1, 0x7d, 16, 32, 0, FEAT_AVX, 0, hsubpd) \\
        X(L3, 1, 0, 1, 3, 0x7d, 16, 32, 0, FEAT_AVX, 0, hsubps) \\
        X(L3, 1, 0, 1, 1, 0xd0, 16, 32, 0, FEAT_AVX, 0, addsubpd) \\
        X(L3, 1, 0, 1, 3, 0xd0, 16, 32, 0, FEAT_AVX, 0, addsubps) \\
        X(L3, 0, 0, 1, 1, 0x60, 16, 32, 0, FEAT_AVX, FEAT_AVX2, punpcklbw) \\
        X(L3, 0, 0, 1, 1, 0x61, 16, 32, 0, FEAT_AVX, FEAT_AVX2, punpcklwd) \\
        X(L3, 0, 0, 1, 1, 0x62, 16, 32, 0, FEAT_AVX, FEAT_AVX2, punpckldq) \\
        X(L3, 0, 0, 1, 1, 0x63, 16, 32, 0, FEAT_AVX, FEAT_AVX2, packsswb) \\
        X(L3, 0, 0, 1, 1, 0x64, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pcmpgtb) \\
        X(L3, 0, 0, 1, 1, 0x65, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pcmpgtw) \\
        X(L3, 0, 0, 1, 1, 0x66, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pcmpgtd) \\
        X(L3, 0, 0, 1, 1, 0x67, 16, 32, 0, FEAT_AVX, FEAT_AVX2, packuswb) \\
        X(L3, 0, 0, 1, 1, 0x68, 16, 32, 0, FEAT_AVX, FEAT_AVX2, punpckhbw) \\
        X(L3, 0, 0, 1, 1, 0x69, 16, 32, 0, FEAT_AVX, FEAT_AVX2, punpckhwd) \\
        X(L3, 0, 0, 1, 1, 0x6a, 16, 32, 0, FEAT_AVX, FEAT_AVX2, punpckhdq) \\
        X(L3, 0, 0, 1, 1, 0x6b, 16, 32, 0, FEAT_AVX, FEAT_AVX2, packssdw) \\
        X(L3, 0, 0, 1, 1, 0x6c, 16, 32, 0, FEAT_AVX, FEAT_AVX2, punpcklqdq) \\
        X(L3, 0, 0, 1, 1, 0x6d, 16, 32, 0, FEAT_AVX, FEAT_AVX2, punpckhqdq) \\
        X(L3, 0, 0, 1, 1, 0x74, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pcmpeqb) \\
        X(L3, 0, 0, 1, 1, 0x75, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pcmpeqw) \\
        X(L3, 0, 0, 1, 1, 0x76, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pcmpeqd) \\
        X(L3, 0, 0, 1, 1, 0xd4, 16, 32, 0, FEAT_AVX, FEAT_AVX2, paddq) \\
        X(L3, 0, 0, 1, 1, 0xd5, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmullw) \\
        X(L3, 0, 0, 1, 1, 0xd8, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psubusb) \\
        X(L3, 0, 0, 1, 1, 0xd9, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psubusw) \\
        X(L3, 0, 0, 1, 1, 0xda, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pminub) \\
        X(L3, 0, 0, 1, 1, 0xdb, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pand) \\
        X(L3, 0, 0, 1, 1, 0xdc, 16, 32, 0, FEAT_AVX, FEAT_AVX2, paddusb) \\
        X(L3, 0, 0, 1, 1, 0xdd, 16, 32, 0, FEAT_AVX, FEAT_AVX2, paddusw) \\
        X(L3, 0, 0, 1, 1, 0xde, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmaxub) \\
        X(L3, 0, 0, 1, 1, 0xdf, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pandn) \\
        X(L3, 0, 0, 1, 1, 0xe0, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pavgb) \\
        X(L3, 0, 0, 1, 1, 0xe3, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pavgw) \\
        X(L3, 0, 0, 1, 1, 0xe4, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmulhuw) \\
        X(L3, 0, 0, 1, 1, 0xe5, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmulhw) \\
        X(L3, 0, 0, 1, 1, 0xe8, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psubsb) \\
        X(L3, 0, 0, 1, 1, 0xe9, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psubsw) \\
        X(L3, 0, 0, 1, 1, 0xea, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pminsw) \\
        X(L3, 0, 0, 1, 1, 0xeb, 16, 32, 0, FEAT_AVX, FEAT_AVX2, por) \\
        X(L3, 0, 0, 1, 1, 0xec, 16, 32, 0, FEAT_AVX, FEAT_AVX2, paddsb) \\
        X(L3, 0, 0, 1, 1, 0xed, 16, 32, 0, FEAT_AVX, FEAT_AVX2, paddsw) \\
        X(L3, 0, 0, 1, 1, 0xee, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmaxsw) \\
        X(L3, 0, 0, 1, 1, 0xef, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pxor) \\
        X(L3, 0, 0, 1, 1, 0xf4, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmuludq) \\
        X(L3, 0, 0, 1, 1, 0xf5, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmaddwd) \\
        X(L3, 0, 0, 1, 1, 0xf6, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psadbw) \\
        X(L3, 0, 0, 1, 1, 0xf8, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psubb) \\
        X(L3, 0, 0, 1, 1, 0xf9, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psubw) \\
        X(L3, 0, 0, 1, 1, 0xfa, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psubd) \\
        X(L3, 0, 0, 1, 1, 0xfb, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psubq) \\
        X(L3, 0, 0, 1, 1, 0xfc, 16, 32, 0, FEAT_AVX, FEAT_AVX2, paddb) \\
        X(L3, 0, 0, 1, 1, 0xfd, 16, 32, 0, FEAT_AVX, FEAT_AVX2, paddw) \\
        X(L3, 0, 0, 1, 1, 0xfe, 16, 32, 0, FEAT_AVX, FEAT_AVX2, paddd) \\
        X(L3C, 0, 0, 1, 1, 0xd1, 16, 16, 0, FEAT_AVX, FEAT_AVX2, psrlw) \\
        X(L3C, 0, 0, 1, 1, 0xd2, 16, 16, 0, FEAT_AVX, FEAT_AVX2, psrld) \\
        X(L3C, 0, 0, 1, 1, 0xd3, 16, 16, 0, FEAT_AVX, FEAT_AVX2, psrlq) \\
        X(L3C, 0, 0, 1, 1, 0xe1, 16, 16, 0, FEAT_AVX, FEAT_AVX2, psraw) \\
        X(L3C, 0, 0, 1, 1, 0xe2, 16, 16, 0, FEAT_AVX, FEAT_AVX2, psrad) \\
        X(L3C, 0, 0, 1, 1, 0xf1, 16, 16, 0, FEAT_AVX, FEAT_AVX2, psllw) \\
        X(L3C, 0, 0, 1, 1, 0xf2, 16, 16, 0, FEAT_AVX, FEAT_AVX2, pslld) \\
        X(L3C, 0, 0, 1, 1, 0xf3, 16, 16, 0, FEAT_AVX, FEAT_AVX2, psllq) \\
        X(L2I, 0, 256, 1, 1, 0x70, 16, 32, VX_NOV, FEAT_AVX, FEAT_AVX2, pshufd) \\
        X(L2I, 0, 256, 1, 2, 0x70, 16, 32, VX_NOV, FEAT_AVX, FEAT_AVX2, pshufhw) \\
        X(L2I, 0, 256, 1, 3, 0x70, 16, 32, VX_NOV, FEAT_AVX, FEAT_AVX2, pshuflw) \\
        X(L3, 0, 0, 2, 1, 0x00, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pshufb) \\
        X(L3, 0, 0, 2, 1, 0x01, 16, 32, 0, FEAT_AVX, FEAT_AVX2, phaddw) \\
        X(L3, 0, 0, 2, 1, 0x02, 16, 32, 0, FEAT_AVX, FEAT_AVX2, phaddd) \\
        X(L3, 0, 0, 2, 1, 0x03, 16, 32, 0, FEAT_AVX, FEAT_AVX2, phaddsw) \\
        X(L3, 0, 0, 2, 1, 0x04, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmaddubsw) \\
        X(L3, 0, 0, 2, 1, 0x05, 16, 32, 0, FEAT_AVX, FEAT_AVX2, phsubw) \\
        X(L3, 0, 0, 2, 1, 0x06, 16, 32, 0, FEAT_AVX, FEAT_AVX2, phsubd) \\
        X(L3, 0, 0, 2, 1, 0x07, 16, 32, 0, FEAT_AVX, FEAT_AVX2, phsubsw) \\
        X(L3, 0, 0, 2, 1, 0x08, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psignb) \\
        X(L3, 0, 0, 2, 1, 0x09, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psignw) \\
        X(L3, 0, 0, 2, 1, 0x0a, 16, 32, 0, FEAT_AVX, FEAT_AVX2, psignd) \\
        X(L3, 0, 0, 2, 1, 0x0b, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmulhrsw) \\
        X(L3, 0, 0, 2, 1, 0x28, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmuldq) \\
        X(L3, 0, 0, 2, 1, 0x29, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pcmpeqq) \\
        X(L3, 0, 0, 2, 1, 0x2b, 16, 32, 0, FEAT_AVX, FEAT_AVX2, packusdw) \\
        X(L3, 0, 0, 2, 1, 0x37, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pcmpgtq) \\
        X(L3, 0, 0, 2, 1, 0x38, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pminsb) \\
        X(L3, 0, 0, 2, 1, 0x39, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pminsd) \\
        X(L3, 0, 0, 2, 1, 0x3a, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pminuw) \\
        X(L3, 0, 0, 2, 1, 0x3b, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pminud) \\
        X(L3, 0, 0, 2, 1, 0x3c, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmaxsb) \\
        X(L3, 0, 0, 2, 1, 0x3d, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmaxsd) \\
        X(L3, 0, 0, 2, 1, 0x3e, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmaxuw) \\
        X(L3, 0, 0, 2, 1, 0x3f, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmaxud) \\
        X(L3, 0, 0, 2, 1, 0x40, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pmulld) \\
        X(L2, 0, 0, 2, 1, 0x1c, 16, 32, VX_NOV, FEAT_AVX, FEAT_AVX2, pabsb) \\
        X(L2, 0, 0, 2, 1, 0x1d, 16, 32, VX_NOV, FEAT_AVX, FEAT_AVX2, pabsw) \\
        X(L2, 0, 0, 2, 1, 0x1e, 16, 32, VX_NOV, FEAT_AVX, FEAT_AVX2, pabsd) \\
        X(W2, 0, 0, 2, 1, 0x20, 8, 16, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovsxbw) \\
        X(W2, 0, 0, 2, 1, 0x21, 4, 8, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovsxbd) \\
        X(W2, 0, 0, 2, 1, 0x22, 2, 4, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovsxbq) \\
        X(W2, 0, 0, 2, 1, 0x23, 8, 16, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovsxwd) \\
        X(W2, 0, 0, 2, 1, 0x24, 4, 8, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovsxwq) \\
        X(W2, 0, 0, 2, 1, 0x25, 8, 16, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovsxdq) \\
        X(W2, 0, 0, 2, 1, 0x30, 8, 16, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovzxbw) \\
        X(W2, 0, 0, 2, 1, 0x31, 4, 8, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovzxbd) \\
        X(W2, 0, 0, 2, 1, 0x32, 2, 4, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovzxbq) \\
        X(W2, 0, 0, 2, 1, 0x33, 8, 16, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovzxwd) \\
        X(W2, 0, 0, 2, 1, 0x34, 4, 8, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovzxwq) \\
        X(W2, 0, 0, 2, 1, 0x35, 8, 16, VX_NOV, FEAT_AVX, FEAT_AVX2, pmovzxdq) \\
        X(V3, 0, 0, 2, 1, 0x0c, 16, 32, VX_W0, FEAT_AVX, 0, permilps) \\
        X(V3, 0, 0, 2, 1, 0x0d, 16, 32, VX_W0, FEAT_AVX, 0, permilpd) \\
        X(VFLG, 0, 0, 2, 1, 0x0e, 16, 32, VX_W0|VX_NOV, FEAT_AVX, 0, testps) \\
        X(VFLG, 0, 0, 2, 1, 0x0f, 16, 32, VX_W0|VX_NOV, FEAT_AVX, 0, testpd) \\
        X(LFLG, 0, 0, 2, 1, 0x17, 16, 32, VX_NOV, FEAT_AVX, 0, ptest) \\
        X(W2, 1, 0, 2, 1, 0x13, 8, 16, VX_W0|VX_NOV, FEAT_F16C, 0, cvtph2ps) \\
        X(Y3, 0, 0, 2, 1, 0x16, 0, 32, VX_W0|VX_L1, FEAT_AVX2, 0, permps) \\
        X(Y3, 0, 0, 2, 1, 0x36, 0, 32, VX_W0|VX_L1, FEAT_AVX2, 0, permd) \\
        X(LX2, 0, 0, 2, 1, 0x41, 16, 0, VX_NOV|VX_L0, FEAT_AVX, 0, phminposuw) \\
        X(V3, 0, 0, 2, 1, 0x45, 16, 32, VX_WSEL, FEAT_AVX2, 0, psrlvd) \\
        X(V3, 0, 0, 2, 1, 0x45, 16, 32, VX_WSEL, FEAT_AVX2, 0, psrlvq) \\
        X(V3, 0, 0, 2, 1, 0x46, 16, 32, VX_W0, FEAT_AVX2, 0, psravd) \\
        X(V3, 0, 0, 2, 1, 0x47, 16, 32, VX_WSEL, FEAT_AVX2, 0, psllvd) \\
        X(V3, 0, 0, 2, 1, 0x47, 16, 32, VX_WSEL, FEAT_AVX2, 0, psllvq) \\
        X(Y2I, 0, 256, 3, 1, 0x00, 0, 32, VX_W1|VX_L1|VX_NOV, FEAT_AVX2, 0, permq) \\
        X(Y2I, 0, 256, 3, 1, 0x01, 0, 32, VX_W1|VX_L1|VX_NOV, FEAT_AVX2, 0, permpd) \\
        X(V3I, 0, 256, 3, 1, 0x02, 16, 32, VX_W0, FEAT_AVX2, 0, pblendd) \\
        X(V2I, 0, 256, 3, 1, 0x04, 16, 32, VX_W0|VX_NOV, FEAT_AVX, 0, permilps) \\
        X(V2I, 0, 256, 3, 1, 0x05, 16, 32, VX_W0|VX_NOV, FEAT_AVX, 0, permilpd) \\
        X(Y3I, 0, 256, 3, 1, 0x06, 0, 32, VX_W0|VX_L1, FEAT_AVX, 0, perm2f128) \\
        X(Y3I, 0, 256, 3, 1, 0x46, 0, 32, VX_W0|VX_L1, FEAT_AVX2, 0, perm2i128) \\
        X(L2I, 1, 16, 3, 1, 0x08, 16, 32, VX_NOV, FEAT_AVX, 0, roundps) \\
        X(L2I, 1, 16, 3, 1, 0x09, 16, 32, VX_NOV, FEAT_AVX, 0, roundpd) \\
        X(LX, 1, 16, 3, 1, 0x0a, 4, 0, VX_LIG, FEAT_AVX, 0, roundss) \\
        X(LX, 1, 16, 3, 1, 0x0b, 8, 0, VX_LIG, FEAT_AVX, 0, roundsd) \\
        X(L3I, 0, 256, 3, 1, 0x0c, 16, 32, 0, FEAT_AVX, 0, blendps) \\
        X(L3I, 0, 256, 3, 1, 0x0d, 16, 32, 0, FEAT_AVX, 0, blendpd) \\
        X(L3I, 0, 256, 3, 1, 0x0e, 16, 32, 0, FEAT_AVX, FEAT_AVX2, pblendw) \\
        X(L3I, 0, 256, 3, 1, 0x0f, 16, 32, 0, FEAT_AVX, FEAT_AVX2, palignr) \\
        X(YINS, 0, 2, 3, 1, 0x18, 0, 16, VX_W0|VX_L1, FEAT_AVX, 0, insertf128) \\
        X(YINS, 0, 2, 3, 1, 0x38, 0, 16, VX_W0|VX_L1, FEAT_AVX2, 0, inserti128) \\
        X(LXM, 0, 256, 3, 1, 0x21, 4, 0, VX_L0, FEAT_AVX, 0, insertps) \\
        X(L3I, 1, 256, 3, 1, 0x40, 16, 32, 0, FEAT_AVX, 0, dpps) \\
        X(LX, 1, 256, 3, 1, 0x41, 16, 0, VX_L0, FEAT_AVX, 0, dppd) \\
        X(L3I, 0, 64, 3, 1, 0x42, 16, 32, 0, FEAT_AVX, FEAT_AVX2, mpsadbw) \\
        X(LX4, 0, 1, 3, 1, 0x4a, 16, 32, VX_W0, FEAT_AVX, 0, blendvps) \\
        X(LX4, 0, 1, 3, 1, 0x4b, 16, 32, VX_W0, FEAT_AVX, 0, blendvpd) \\
        X(LX4, 0, 1, 3, 1, 0x4c, 16, 32, VX_W0, FEAT_AVX, FEAT_AVX2, pblendvb) \\
        X(VFMA, 1, 0, 2, 1, 0x96, 16, 32, VX_WSEL, FEAT_FMA, 0, fmaddsub132ps) \\
        X(VFMA, 1, 0, 2, 1, 0x96, 16, 32, VX_WSEL, FEAT_FMA, 0, fmaddsub132pd) \\
        X(VFMA, 1, 0, 2, 1, 0x97, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsubadd132ps) \\
        X(VFMA, 1, 0, 2, 1, 0x97, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsubadd132pd) \\
        X(VFMA, 1, 0, 2, 1, 0x98, 16, 32, VX_WSEL, FEAT_FMA, 0, fmadd132ps) \\
        X(VFMA, 1, 0, 2, 1, 0x98, 16, 32, VX_WSEL, FEAT_FMA, 0, fmadd132pd) \\
        X(XFMA, 1, 0, 2, 1, 0x99, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmadd132ss) \\
        X(XFMA, 1, 0, 2, 1, 0x99, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmadd132sd) \\
        X(VFMA, 1, 0, 2, 1, 0x9a, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsub132ps) \\
        X(VFMA, 1, 0, 2, 1, 0x9a, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsub132pd) \\
        X(XFMA, 1, 0, 2, 1, 0x9b, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmsub132ss) \\
        X(XFMA, 1, 0, 2, 1, 0x9b, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmsub132sd) \\
        X(VFMA, 1, 0, 2, 1, 0x9c, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmadd132ps) \\
        X(VFMA, 1, 0, 2, 1, 0x9c, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmadd132pd) \\
        X(XFMA, 1, 0, 2, 1, 0x9d, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmadd132ss) \\
        X(XFMA, 1, 0, 2, 1, 0x9d, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmadd132sd) \\
        X(VFMA, 1, 0, 2, 1, 0x9e, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmsub132ps) \\
        X(VFMA, 1, 0, 2, 1, 0x9e, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmsub132pd) \\
        X(XFMA, 1, 0, 2, 1, 0x9f, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmsub132ss) \\
        X(XFMA, 1, 0, 2, 1, 0x9f, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmsub132sd) \\
        X(VFMA, 1, 0, 2, 1, 0xa6, 16, 32, VX_WSEL, FEAT_FMA, 0, fmaddsub213ps) \\
        X(VFMA, 1, 0, 2, 1, 0xa6, 16, 32, VX_WSEL, FEAT_FMA, 0, fmaddsub213pd) \\
        X(VFMA, 1, 0, 2, 1, 0xa7, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsubadd213ps) \\
        X(VFMA, 1, 0, 2, 1, 0xa7, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsubadd213pd) \\
        X(VFMA, 1, 0, 2, 1, 0xa8, 16, 32, VX_WSEL, FEAT_FMA, 0, fmadd213ps) \\
        X(VFMA, 1, 0, 2, 1, 0xa8, 16, 32, VX_WSEL, FEAT_FMA, 0, fmadd213pd) \\
        X(XFMA, 1, 0, 2, 1, 0xa9, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmadd213ss) \\
        X(XFMA, 1, 0, 2, 1, 0xa9, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmadd213sd) \\
        X(VFMA, 1, 0, 2, 1, 0xaa, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsub213ps) \\
        X(VFMA, 1, 0, 2, 1, 0xaa, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsub213pd) \\
        X(XFMA, 1, 0, 2, 1, 0xab, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmsub213ss) \\
        X(XFMA, 1, 0, 2, 1, 0xab, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmsub213sd) \\
        X(VFMA, 1, 0, 2, 1, 0xac, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmadd213ps) \\
        X(VFMA, 1, 0, 2, 1, 0xac, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmadd213pd) \\
        X(XFMA, 1, 0, 2, 1, 0xad, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmadd213ss) \\
        X(XFMA, 1, 0, 2, 1, 0xad, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmadd213sd) \\
        X(VFMA, 1, 0, 2, 1, 0xae, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmsub213ps) \\
        X(VFMA, 1, 0, 2, 1, 0xae, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmsub213pd) \\
        X(XFMA, 1, 0, 2, 1, 0xaf, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmsub213ss) \\
        X(XFMA, 1, 0, 2, 1, 0xaf, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmsub213sd) \\
        X(VFMA, 1, 0, 2, 1, 0xb6, 16, 32, VX_WSEL, FEAT_FMA, 0, fmaddsub231ps) \\
        X(VFMA, 1, 0, 2, 1, 0xb6, 16, 32, VX_WSEL, FEAT_FMA, 0, fmaddsub231pd) \\
        X(VFMA, 1, 0, 2, 1, 0xb7, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsubadd231ps) \\
        X(VFMA, 1, 0, 2, 1, 0xb7, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsubadd231pd) \\
        X(VFMA, 1, 0, 2, 1, 0xb8, 16, 32, VX_WSEL, FEAT_FMA, 0, fmadd231ps) \\
        X(VFMA, 1, 0, 2, 1, 0xb8, 16, 32, VX_WSEL, FEAT_FMA, 0, fmadd231pd) \\
        X(XFMA, 1, 0, 2, 1, 0xb9, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmadd231ss) \\
        X(XFMA, 1, 0, 2, 1, 0xb9, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmadd231sd) \\
        X(VFMA, 1, 0, 2, 1, 0xba, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsub231ps) \\
        X(VFMA, 1, 0, 2, 1, 0xba, 16, 32, VX_WSEL, FEAT_FMA, 0, fmsub231pd) \\
        X(XFMA, 1, 0, 2, 1, 0xbb, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmsub231ss) \\
        X(XFMA, 1, 0, 2, 1, 0xbb, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fmsub231sd) \\
        X(VFMA, 1, 0, 2, 1, 0xbc, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmadd231ps) \\
        X(VFMA, 1, 0, 2, 1, 0xbc, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmadd231pd) \\
        X(XFMA, 1, 0, 2, 1, 0xbd, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmadd231ss) \\
        X(XFMA, 1, 0, 2, 1, 0xbd, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmadd231sd) \\
        X(VFMA, 1, 0, 2, 1, 0xbe, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmsub231ps) \\
        X(VFMA, 1, 0, 2, 1, 0xbe, 16, 32, VX_WSEL, FEAT_FMA, 0, fnmsub231pd) \\
        X(XFMA, 1, 0, 2, 1, 0xbf, 4, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmsub231ss) \\
        X(XFMA, 1, 0, 2, 1, 0xbf, 8, 0, VX_WSEL|VX_LIG, FEAT_FMA, 0, fnmsub231sd) \\
        X(LX, 0, 0, 2, 1, 0xdc, 16, 0, VX_L0, FEAT_AVX | FEAT_AES, 0, aesenc) \\
        X(LX, 0, 0, 2, 1, 0xdd, 16, 0, VX_L0, FEAT_AVX | FEAT_AES, 0, aesenclast) \\
        X(LX, 0, 0, 2, 1, 0xde, 16, 0, VX_L0, FEAT_AVX | FEAT_AES, 0, aesdec) \\
        X(LX, 0, 0, 2, 1, 0xdf, 16, 0, VX_L0, FEAT_AVX | FEAT_AES, 0, aesdeclast) \\
        X(LX2, 0, 0, 2, 1, 0xdb, 16, 0, VX_L0 | VX_NOV, FEAT_AVX | FEAT_AES, 0, aesimc) \\
        X(LX2, 0, 256, 3, 1, 0xdf, 16, 0, VX_L0 | VX_NOV, FEAT_AVX | FEAT_AES, 0, aeskeygenassist) \\
        X(LX, 0, 256, 3, 1, 0x44, 16, 0, VX_L0, FEAT_AVX | FEAT_PCLMUL, 0, pclmulqdq)

    #define EMU_VDEF(s, fp, in, mp, pp, op, m0, m1, vx, f0, f1, n) EMU_VD_##s(fp, in, n)
    VEX_LIST(EMU_VDEF)

    #define EMU_VTAB2(mp, pp, op, m0, m1, vx, f0, f1, fp, in, nm, kind, x, y) \\
        {mp, pp, op, m0, m1, EMU_VT_KIND(kind, fp, in), vx, f0, f1, x, y, nm},
    #define EMU_VTAB1(mp, pp, op, m0, m1, vx, f0, f1, fp, in, nm, ...) \\
        EMU_VTAB2(mp, pp, op, m0, m1, vx, f0, f1, fp, in, nm, __VA_ARGS__)
    #define EMU_VTAB(s, fp, in, mp, pp, op, m0, m1, vx, f0, f1, n) \\
        EMU_VTAB1(mp, pp, op, m0, m1, vx, f0, f1, fp, in, "v" #n, EMU_VT_##s(n))
    static const emu_vex_def emu_vex_defs[] = {
        VEX_LIST(EMU_VTAB)
        {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
    };
    """
    ctypedef unsigned int (*emu_vex_fn)(unsigned int csr, uint64_t* d, const uint64_t* a, const uint64_t* b,
                                        unsigned int imm, uint64_t* aux) noexcept nogil
    ctypedef struct emu_vex_def:
        unsigned char map, pp, opc, m0, m1
        unsigned int kind, vx
        unsigned long long f0, f1
        emu_vex_fn f128
        emu_vex_fn f256
        const char* name
    const emu_vex_def* emu_vex_defs
    int VK_NDS, VK_RD, VK_IS4, VK_NARROW

cdef emu_vex_def vex_tab[512]
cdef int vex_ntab = 0

cdef inline int vex_exec(Cpu* c, const Uop* u, const emu_vex_def* o) noexcept nogil:
    cdef uint64_t a[4]
    cdef uint64_t b[4]
    cdef uint64_t d[4]
    cdef uint64_t aux[4]
    cdef uint64_t addr
    cdef uint32_t kind = o.kind, l = u.vl, imm = <uint32_t>u.imm & 0xff, src1, m, i, csr, fl, nq
    cdef emu_vex_fn fn
    if avx_check(c):
        return R_EXC
    src1 = u.vvvv if kind & VK_NDS else u.reg
    for i in range(4):
        a[i] = c.xmm[src1][i]
        b[i] = 0
        d[i] = 0
    if u.mem:
        m = o.m1 if l else o.m0
        addr = ea_of(c, u)
        if mem_read_bytes(c, addr, <uint8_t*>b, m):
            return R_EXC
        if kind & EK_MEMIMM:
            imm &= 0x3f
    else:
        for i in range(4):
            b[i] = c.xmm[u.rm][i]
    if kind & VK_RD:
        for i in range(4):
            d[i] = c.xmm[u.reg][i]
    if kind & VK_IS4:
        for i in range(4):
            aux[i] = c.xmm[imm >> 4][i]
    fn = o.f256 if l else o.f128
    if kind & EK_FP:
        csr = sse_csr_done(c, fn(sse_csr_arg(c), d, a, b, imm, aux))
        fl = csr & 0x3f
        if fl:
            c.mxcsr |= fl
            if fl & ~(c.mxcsr >> 7) & 0x3f:
                return sse_simd_fault(c)
    else:
        fn(0, d, a, b, imm, aux)
    if kind & EK_FLAGS:
        set_arith_flags(c, aux[0])
        return R_NEXT
    nq = 4 if l and not (kind & VK_NARROW) else 2
    vset(c, u.reg, d, nq)
    return R_NEXT

cdef int op_vtab0(Cpu* c, const Uop* u) noexcept nogil:
    return vex_exec(c, u, &vex_tab[u.sub])

cdef int op_vtab1(Cpu* c, const Uop* u) noexcept nogil:
    return vex_exec(c, u, &vex_tab[256 + u.sub])

cdef void vex_register(const emu_vex_def* defs):
    """Register every entry of a {0}-terminated table. A VX_WSEL pair (the
    same opcode for W0 and W1, adjacent) registers once: its handler takes
    entry sub + VEX.W, so the pair never straddles the two handlers."""
    global vex_ntab
    cdef int i = 0, k, second
    cdef uint32_t vx
    while defs[i].f128 != NULL or defs[i].f256 != NULL:
        vx = defs[i].vx
        second = vx & VX_WSEL and i > 0 and defs[i - 1].opc == defs[i].opc and defs[i - 1].map == defs[i].map \
            and defs[i - 1].pp == defs[i].pp
        if vx & VX_WSEL and not second and (vex_ntab & 255) == 255:
            vex_ntab += 1
        k = vex_ntab
        vex_tab[k] = defs[i]
        vex_ntab += 1
        if not second:
            vop(defs[i].map, defs[i].pp, defs[i].opc, op_vtab0 if k < 256 else op_vtab1, D_MODRM, vx,
                defs[i].f0, defs[i].f1, I_8 if defs[i].kind & EK_IMM else I_NONE, k & 255)
        i += 1

cdef void init_avx():
    if HOST_FEAT & (FEAT_AVX | FEAT_AVX2 | FEAT_FMA | FEAT_F16C) != (FEAT_AVX | FEAT_AVX2 | FEAT_FMA | FEAT_F16C):
        return
    vex_register(emu_vex_defs)

def vex_forms():
    """The table-driven VEX forms (for the differential tests): dicts with the
    mnemonic, map, pp, opcode, memory sizes at VEX.L = 0 / 1, whether each
    width exists, and the kind (fp, imm, nds, rd, is4, flags, narrow) and
    VX rule bits."""
    cdef emu_vex_def* o
    cdef int i
    out = []
    for i in range(vex_ntab):
        o = &vex_tab[i]
        if o.f128 == NULL and o.f256 == NULL:
            continue
        out.append({"name": o.name.decode(), "map": o.map, "pp": o.pp, "opc": o.opc, "m0": o.m0, "m1": o.m1,
                    "l0": o.f128 != NULL, "l1": o.f256 != NULL, "fp": bool(o.kind & EK_FP),
                    "imm": bool(o.kind & EK_IMM), "nds": bool(o.kind & VK_NDS), "rd": bool(o.kind & VK_RD),
                    "is4": bool(o.kind & VK_IS4), "flags": bool(o.kind & EK_FLAGS), "vx": o.vx,
                    "memimm": bool(o.kind & EK_MEMIMM), "f0": o.f0, "f1": o.f1})
    return out
