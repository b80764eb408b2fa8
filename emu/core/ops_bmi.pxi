# BMI1 and BMI2 (SDM Vol. 2, each instruction's page): the VEX-encoded
# general-register instructions ANDN, BLSI, BLSMSK, BLSR, BEXTR (BMI1) and
# BZHI, PDEP, PEXT, MULX, RORX, SARX, SHLX, SHRX (BMI2). VEX.L must be 0;
# VEX.W gives 64-bit operands. They do not depend on CR4.OSXSAVE or XCR0,
# only on their CPUID bits. Portable C: no host instruction is needed.
# The undefined flags (AF and PF where the SDM says so) are computed as the
# host vendors produce them: PF from the result, AF clear.

cdef inline uint64_t bmi_src(Cpu* c, const Uop* u, uint32_t sz, uint64_t* v) noexcept nogil:
    """The r/m operand; returns nonzero on a fault."""
    if u.mem:
        return mem_read(c, ea_of(c, u), sz, v)
    v[0] = rget(c, u.rm, sz)
    return 0

cdef int op_andn(Cpu* c, const Uop* u) noexcept nogil:
    """ANDN r, r(vvvv), r/m: ~vvvv & r/m; SF ZF, CF OF clear."""
    cdef uint32_t sz = u.osz
    cdef uint64_t b, r
    if bmi_src(c, u, sz, &b):
        return R_EXC
    r = ~rget(c, u.vvvv, sz) & b & SZ_MASK[sz]
    rset(c, u.reg, sz, r)
    set_arith_flags(c, szp_flags(r, sz))
    return R_NEXT

cdef int op_bls(Cpu* c, const Uop* u) noexcept nogil:
    """VEX 0F38 F3 /1 BLSR, /2 BLSMSK, /3 BLSI vvvv, r/m."""
    cdef uint32_t sz = u.osz
    cdef uint64_t s, r, f
    if bmi_src(c, u, sz, &s):
        return R_EXC
    if u.sub == 1:                              # BLSR: reset the lowest set bit
        r = s & (s - 1)
        f = (F_CF if s == 0 else 0) | szp_flags(r, sz)
    elif u.sub == 2:                            # BLSMSK: mask up to the lowest set bit
        r = s ^ (s - 1)
        f = (F_CF if s == 0 else 0) | (szp_flags(r, sz) & ~(<uint64_t>F_ZF))
    else:                                       # BLSI: isolate the lowest set bit
        r = s & (0 - s)
        f = (F_CF if s != 0 else 0) | szp_flags(r, sz)
    r &= SZ_MASK[sz]
    rset(c, u.vvvv, sz, r)
    set_arith_flags(c, f)
    return R_NEXT

cdef int op_bextr(Cpu* c, const Uop* u) noexcept nogil:
    """BEXTR r, r/m, r(vvvv): bits [start, start+len) of r/m (start =
    vvvv[7:0], len = vvvv[15:8]); ZF, CF OF clear."""
    cdef uint32_t sz = u.osz, bits = sz * 8
    cdef uint64_t s, ctl = rget(c, u.vvvv, sz), r
    cdef uint32_t start = ctl & 0xff, ln = (ctl >> 8) & 0xff
    if bmi_src(c, u, sz, &s):
        return R_EXC
    if start >= bits:
        r = 0
    else:
        r = s >> start
        if ln < 64:
            r &= ((<uint64_t>1) << ln) - 1
    r &= SZ_MASK[sz]
    rset(c, u.reg, sz, r)
    set_arith_flags(c, szp_flags(r, sz) & (F_ZF | F_PF))
    return R_NEXT

cdef int op_bzhi(Cpu* c, const Uop* u) noexcept nogil:
    """BZHI r, r/m, r(vvvv): r/m with the bits from index vvvv[7:0] up
    cleared; CF = index >= operand size; SF ZF; OF clear."""
    cdef uint32_t sz = u.osz, bits = sz * 8
    cdef uint64_t s, r, f = 0
    cdef uint32_t n = rget(c, u.vvvv, sz) & 0xff
    if bmi_src(c, u, sz, &s):
        return R_EXC
    r = s
    if n < bits:
        r = s & (((<uint64_t>1) << n) - 1)
    else:
        f = F_CF
    r &= SZ_MASK[sz]
    rset(c, u.reg, sz, r)
    set_arith_flags(c, f | szp_flags(r, sz))
    return R_NEXT

cdef int op_pdep_pext(Cpu* c, const Uop* u) noexcept nogil:
    """PDEP (F2) / PEXT (F3) r, r(vvvv), r/m (the mask); no flags."""
    cdef uint32_t sz = u.osz, i, k = 0
    cdef uint64_t m, s = rget(c, u.vvvv, sz), r = 0
    if bmi_src(c, u, sz, &m):
        return R_EXC
    for i in range(sz * 8):
        if (m >> i) & 1:
            if u.sub == 3:              # PDEP: low bits of s to the mask's positions
                r |= ((s >> k) & 1) << i
            else:                       # PEXT: the mask's positions of s to low bits
                r |= ((s >> i) & 1) << k
            k += 1
    rset(c, u.reg, sz, r)
    return R_NEXT

cdef int op_mulx(Cpu* c, const Uop* u) noexcept nogil:
    """MULX r(hi), r(vvvv, lo), r/m: unsigned EDX/RDX * r/m; no flags. With
    both destinations the same register it gets the high half."""
    cdef uint32_t sz = u.osz
    cdef uint64_t s, lo, hi
    cdef emu_u128 p
    if bmi_src(c, u, sz, &s):
        return R_EXC
    if sz == 8:
        p = (<emu_u128>c.r[2]) * s
        lo = <uint64_t>p
        hi = <uint64_t>(p >> 64)
    else:
        p = (c.r[2] & 0xffffffffULL) * s
        lo = <uint64_t>p & 0xffffffffULL
        hi = (<uint64_t>p) >> 32
    rset(c, u.vvvv, sz, lo)
    rset(c, u.reg, sz, hi)
    return R_NEXT

cdef int op_rorx(Cpu* c, const Uop* u) noexcept nogil:
    """RORX r, r/m, imm8: rotate right, no flags."""
    cdef uint32_t sz = u.osz, bits = sz * 8
    cdef uint32_t n = <uint32_t>u.imm & (bits - 1)
    cdef uint64_t s, r
    if bmi_src(c, u, sz, &s):
        return R_EXC
    r = s if n == 0 else ((s >> n) | (s << (bits - n)))
    rset(c, u.reg, sz, r & SZ_MASK[sz])
    return R_NEXT

cdef int op_shiftx(Cpu* c, const Uop* u) noexcept nogil:
    """SARX (F3), SHLX (66), SHRX (F2) r, r/m, r(vvvv count, masked); no flags."""
    cdef uint32_t sz = u.osz, bits = sz * 8
    cdef uint32_t n = rget(c, u.vvvv, sz) & (bits - 1)
    cdef uint64_t s, r
    if bmi_src(c, u, sz, &s):
        return R_EXC
    if u.sub == 1:
        r = s << n
    elif u.sub == 3:
        r = s >> n
    else:
        r = <uint64_t>(sext(s, sz) >> n)
    rset(c, u.reg, sz, r & SZ_MASK[sz])
    return R_NEXT

cdef void init_bmi():
    cdef uint64_t B1 = FEAT_BMI1, B2 = FEAT_BMI2
    vop(2, 0, 0xf2, op_andn, D_MODRM, VX_L0, B1, 0, I_NONE, 0)
    vgrp(2, 0, 0xf3, 1, op_bls, 0, VX_L0, B1, I_NONE)
    vgrp(2, 0, 0xf3, 2, op_bls, 0, VX_L0, B1, I_NONE)
    vgrp(2, 0, 0xf3, 3, op_bls, 0, VX_L0, B1, I_NONE)
    vop(2, 0, 0xf7, op_bextr, D_MODRM, VX_L0, B1, 0, I_NONE, 0)
    vop(2, 0, 0xf5, op_bzhi, D_MODRM, VX_L0, B2, 0, I_NONE, 0)
    vop(2, 3, 0xf5, op_pdep_pext, D_MODRM, VX_L0, B2, 0, I_NONE, 3)
    vop(2, 2, 0xf5, op_pdep_pext, D_MODRM, VX_L0, B2, 0, I_NONE, 2)
    vop(2, 3, 0xf6, op_mulx, D_MODRM, VX_L0, B2, 0, I_NONE, 0)
    vop(3, 3, 0xf0, op_rorx, D_MODRM, VX_L0 | VX_NOV, B2, 0, I_8, 0)
    vop(2, 2, 0xf7, op_shiftx, D_MODRM, VX_L0, B2, 0, I_NONE, 2)
    vop(2, 1, 0xf7, op_shiftx, D_MODRM, VX_L0, B2, 0, I_NONE, 1)
    vop(2, 3, 0xf7, op_shiftx, D_MODRM, VX_L0, B2, 0, I_NONE, 3)
    # legacy-encoded forms that need a CPUID bit: without it TZCNT and LZCNT
    # are BSF and BSR (F3 is then an ignored prefix); the others #UD
    gate(1, 0x4, 0xbc, FEAT_BMI1, op_bsf)
    gate(1, 0x4, 0xbd, FEAT_LZCNT, op_bsr)
    gate(1, 0x4, 0xb8, FEAT_POPCNT, NULL)
    gate(2, 0x3, 0xf0, FEAT_MOVBE, NULL)
    gate(2, 0x3, 0xf1, FEAT_MOVBE, NULL)
    gate(2, 0x8, 0xf0, FEAT_SSE42, NULL)
    gate(2, 0x8, 0xf1, FEAT_SSE42, NULL)
    gate(2, 0x6, 0xf6, FEAT_ADX, NULL)
