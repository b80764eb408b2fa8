# AVX/AVX2 data movement and the VEX forms that touch general registers or
# memory in their own way: VMOVUPS/APS/DQU/DQA and friends, VMOVSS/SD,
# VMOVLPS/HPS/LPD/HPD/HLPS/LHPS, VMOVDDUP/SLDUP/SHDUP, non-temporal moves,
# VMOVD/VMOVQ, VMOVMSKPS/PD, VPMOVMSKB, VZEROUPPER/VZEROALL,
# VLDMXCSR/VSTMXCSR, VCVTSI2SS/SD and VCVT[T]SS/SD2SI, VPINSR*/VPEXTR*,
# VEXTRACTPS, VINSERTPS is in the table; VEXTRACTF128/I128, the shift-by-
# immediate groups, VMASKMOVDQU, broadcasts, VPCMPxSTRx, VCVTPS2PH
# (SDM Vol. 2, each instruction's page). A VEX write of a register zeroes
# it above the vector length (vset); a store checks every page first
# (vmem_write).

cdef inline uint32_t vlen(const Uop* u) noexcept nogil:
    return 32 if u.vl else 16

cdef inline int vload(Cpu* c, const Uop* u, uint64_t* v, uint32_t n, int align) noexcept nogil:
    """n bytes of the r/m operand into v (zero-padded to 32 bytes); align:
    a memory operand must be n-byte aligned (#GP(0))."""
    cdef uint64_t a
    memset(v, 0, 32)
    if not u.mem:
        memcpy(v, &c.xmm[u.rm][0], n)
        return 0
    a = ea_of(c, u)
    if align and a & (n - 1):
        return raise_gp0(c)
    return R_EXC if mem_read_bytes(c, a, <uint8_t*>v, n) else 0

cdef inline int vstore_mem(Cpu* c, const Uop* u, const void* v, uint32_t n, int align) noexcept nogil:
    cdef uint64_t a = ea_of(c, u)
    if align and a & (n - 1):
        return raise_gp0(c)
    return vmem_write(c, a, v, n)

# ---- whole-vector moves ----

cdef int op_vmov_load(Cpu* c, const Uop* u) noexcept nogil:
    """VMOVUPS/UPD/DQU, VLDDQU (sub 0) and VMOVAPS/APD/DQA, VMOVNTDQA (sub 1:
    aligned) reg, r/m."""
    cdef uint64_t v[4]
    if avx_check(c) or vload(c, u, v, vlen(u), u.sub):
        return R_EXC
    vset(c, u.reg, v, vlen(u) >> 3)
    return R_NEXT

cdef int op_vmov_store(Cpu* c, const Uop* u) noexcept nogil:
    """VMOVUPS/UPD/DQU (sub 0) and VMOVAPS/APD/DQA, VMOVNTPS/PD/DQ (sub 1:
    aligned) r/m, reg."""
    cdef uint64_t v[4]
    cdef uint32_t n = vlen(u)
    if avx_check(c):
        return R_EXC
    memcpy(v, &c.xmm[u.reg][0], 32)
    if not u.mem:
        vset(c, u.rm, v, n >> 3)
        return R_NEXT
    return R_EXC if vstore_mem(c, u, v, n, u.sub) else R_NEXT

# ---- scalar moves ----

cdef int op_vmovss_load(Cpu* c, const Uop* u) noexcept nogil:
    """VEX.F3/F2 0F 10: VMOVSS/VMOVSD xmm1, m32/m64 (zero-extended) or xmm1,
    xmm2, xmm3 (low element from xmm3, the rest from xmm2)."""
    cdef uint64_t v[4]
    cdef uint32_t n = 4 if u.sub == 2 else 8
    if avx_check(c):
        return R_EXC
    if u.mem:
        if u.vvvv:
            return raise_ud(c)
        if vload(c, u, v, n, 0):
            return R_EXC
    else:
        v[0] = c.xmm[u.vvvv][0]
        v[1] = c.xmm[u.vvvv][1]
        memcpy(v, &c.xmm[u.rm][0], n)
    vset(c, u.reg, v, 2)
    return R_NEXT

cdef int op_vmovss_store(Cpu* c, const Uop* u) noexcept nogil:
    """VEX.F3/F2 0F 11: VMOVSS/VMOVSD m32/m64, xmm1, or xmm1 (r/m), xmm2,
    xmm3 (reg: the low element)."""
    cdef uint64_t v[4]
    cdef uint32_t n = 4 if u.sub == 2 else 8
    if avx_check(c):
        return R_EXC
    if u.mem:
        if u.vvvv:
            return raise_ud(c)
        return R_EXC if vstore_mem(c, u, &c.xmm[u.reg][0], n, 0) else R_NEXT
    v[0] = c.xmm[u.vvvv][0]
    v[1] = c.xmm[u.vvvv][1]
    memcpy(v, &c.xmm[u.reg][0], n)
    vset(c, u.rm, v, 2)
    return R_NEXT

cdef int op_vmovlh(Cpu* c, const Uop* u) noexcept nogil:
    """0F 12 / 16, VEX.128: VMOVLPS/LPD (12 m64: low from memory, high from
    vvvv), VMOVHLPS (NP 12 reg: low = r/m high, high = vvvv high), VMOVHPS/HPD
    (16 m64: low from vvvv, high from memory), VMOVLHPS (NP 16 reg)."""
    cdef uint64_t v[4]
    cdef uint64_t m
    if avx_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), 8, &m):
            return R_EXC
    elif u.sub:
        return raise_ud(c)           # VMOVLPD/VMOVHPD take memory only
    if u.opc == 0x12:
        v[0] = m if u.mem else c.xmm[u.rm][1]
        v[1] = c.xmm[u.vvvv][1]
    else:
        v[0] = c.xmm[u.vvvv][0]
        v[1] = m if u.mem else c.xmm[u.rm][0]
    vset(c, u.reg, v, 2)
    return R_NEXT

cdef int op_vmovlh_store(Cpu* c, const Uop* u) noexcept nogil:
    """0F 13 / 17: VMOVLPS/LPD, VMOVHPS/HPD m64, xmm."""
    if avx_check(c):
        return R_EXC
    return R_EXC if vstore_mem(c, u, &c.xmm[u.reg][1 if u.opc == 0x17 else 0], 8, 0) else R_NEXT

cdef int op_vdup(Cpu* c, const Uop* u) noexcept nogil:
    """VMOVSLDUP (F3 12), VMOVSHDUP (F3 16), VMOVDDUP (F2 12: m64 at VEX.128)."""
    cdef uint64_t v[4]
    cdef uint64_t r[4]
    cdef uint32_t i, nq = vlen(u) >> 3, lo, hi
    if avx_check(c):
        return R_EXC
    if vload(c, u, v, 8 if u.sub == 3 and not u.vl else vlen(u), 0):
        return R_EXC
    for i in range(nq):
        if u.sub == 3:
            r[i] = v[i & ~1]
        else:
            lo = <uint32_t>(v[i] >> (32 if u.opc == 0x16 else 0))
            r[i] = lo | (<uint64_t>lo << 32)
    vset(c, u.reg, r, nq)
    return R_NEXT

# ---- general registers ----

cdef int op_vmovd_load(Cpu* c, const Uop* u) noexcept nogil:
    """VEX.66 0F 6E: VMOVD/VMOVQ xmm, r/m32/64."""
    cdef uint64_t v[4]
    cdef uint32_t n = 8 if u.vexw else 4
    memset(v, 0, 32)
    if avx_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), n, &v[0]):
            return R_EXC
    else:
        v[0] = rget(c, u.rm, n)
    vset(c, u.reg, v, 2)
    return R_NEXT

cdef int op_vmovd_store(Cpu* c, const Uop* u) noexcept nogil:
    """VEX.66 0F 7E: VMOVD/VMOVQ r/m32/64, xmm."""
    cdef uint32_t n = 8 if u.vexw else 4
    if avx_check(c):
        return R_EXC
    if u.mem:
        return R_EXC if mem_write(c, ea_of(c, u), n, c.xmm[u.reg][0] & SZ_MASK[n]) else R_NEXT
    rset(c, u.rm, n, c.xmm[u.reg][0] & SZ_MASK[n])
    return R_NEXT

cdef int op_vmovq_load(Cpu* c, const Uop* u) noexcept nogil:
    """VEX.F3 0F 7E: VMOVQ xmm, xmm/m64 (zero-extended)."""
    cdef uint64_t v[4]
    if avx_check(c) or vload(c, u, v, 8, 0):
        return R_EXC
    vset(c, u.reg, v, 2)
    return R_NEXT

cdef int op_vmovq_store(Cpu* c, const Uop* u) noexcept nogil:
    """VEX.66 0F D6: VMOVQ xmm/m64, xmm."""
    cdef uint64_t v[4]
    if avx_check(c):
        return R_EXC
    if u.mem:
        return R_EXC if mem_write(c, ea_of(c, u), 8, c.xmm[u.reg][0]) else R_NEXT
    v[0] = c.xmm[u.reg][0]
    v[1] = 0
    vset(c, u.rm, v, 2)
    return R_NEXT

cdef int op_vmovmsk(Cpu* c, const Uop* u) noexcept nogil:
    """VMOVMSKPS (NP 50), VMOVMSKPD (66 50), VPMOVMSKB (66 D7) r32/64, reg:
    the sign bits, zero-extended."""
    cdef uint32_t n = vlen(u), i, w = 4 if u.opc == 0x50 and not u.sub else (8 if u.opc == 0x50 else 1)
    cdef uint64_t r = 0
    cdef uint8_t* p = <uint8_t*>&c.xmm[u.rm][0]
    if avx_check(c):
        return R_EXC
    for i in range(n // w):
        r |= (<uint64_t>(p[i * w + w - 1] >> 7)) << i
    c.r[u.reg] = r
    return R_NEXT

cdef int op_vcvtsi2f(Cpu* c, const Uop* u) noexcept nogil:
    """VCVTSI2SS/SD xmm1, xmm2, r/m32/64 (F3/F2 0F 2A, VEX.W: 64-bit source)."""
    cdef uint32_t sz = 8 if u.vexw else 4
    cdef uint64_t v
    cdef uint64_t d[4]
    cdef uint32_t csr
    if avx_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), sz, &v):
            return R_EXC
    else:
        v = rget(c, u.rm, sz)
    d[0] = c.xmm[u.vvvv][0]
    d[1] = c.xmm[u.vvvv][1]
    csr = sse_csr_done(c, emu_cvtsi2f(sse_csr_arg(c), d, v, u.sub == 3, sz == 8))
    if sse_fp_flags(c, csr):
        return R_EXC
    vset(c, u.reg, d, 2)
    return R_NEXT

cdef int op_vcvtf2si(Cpu* c, const Uop* u) noexcept nogil:
    """VCVT[T]SS2SI / VCVT[T]SD2SI r32/64, xmm/m32/64 (F3/F2 0F 2C/2D)."""
    cdef uint32_t dsz = 8 if u.vexw else 4
    cdef uint32_t ssz = 8 if u.sub == 3 else 4
    cdef uint64_t s[4]
    cdef uint64_t out
    cdef uint32_t csr
    if avx_check(c) or vload(c, u, s, ssz if u.mem else 16, 0):
        return R_EXC
    csr = sse_csr_done(c, emu_cvtf2si(sse_csr_arg(c), s,
                                      (2 if ssz == 8 else 0) + (1 if u.opc == 0x2d else 0), dsz == 8, &out))
    if sse_fp_flags(c, csr):
        return R_EXC
    rset(c, u.reg, dsz, out)
    return R_NEXT

cdef int op_vpinsr(Cpu* c, const Uop* u) noexcept nogil:
    """VPINSRB (3A 20), VPINSRW (0F C4), VPINSRD/Q (3A 22, VEX.W) xmm1,
    xmm2, r32/64/m, imm8: xmm2 with one element replaced."""
    cdef uint64_t d[4]
    cdef uint32_t n = 1 if u.opc == 0x20 else (2 if u.opc == 0xc4 else (8 if u.vexw else 4))
    cdef uint32_t idx = (<uint32_t>u.imm) & (16 // n - 1)
    cdef uint64_t v
    if avx_check(c):
        return R_EXC
    if u.mem:
        if mem_read(c, ea_of(c, u), n, &v):
            return R_EXC
    else:
        v = c.r[u.rm]
    d[0] = c.xmm[u.vvvv][0]
    d[1] = c.xmm[u.vvvv][1]
    memcpy(<uint8_t*>d + idx * n, &v, n)
    vset(c, u.reg, d, 2)
    return R_NEXT

cdef int op_vpextr(Cpu* c, const Uop* u) noexcept nogil:
    """VPEXTRB/W/D/Q (3A 14/15/16), VEXTRACTPS (3A 17) r/m, xmm, imm8;
    VPEXTRW r32, xmm, imm8 (0F C5: reg is the destination)."""
    cdef uint32_t n, idx
    cdef uint64_t v = 0
    cdef uint8_t* p
    if avx_check(c):
        return R_EXC
    if u.opc == 0xc5:
        p = <uint8_t*>&c.xmm[u.rm][0]
        idx = (<uint32_t>u.imm) & 7
        memcpy(&v, p + 2 * idx, 2)
        c.r[u.reg] = v
        return R_NEXT
    n = 1 if u.opc == 0x14 else (2 if u.opc == 0x15 else (8 if u.opc == 0x16 and u.vexw else 4))
    idx = (<uint32_t>u.imm) & (16 // n - 1)
    p = <uint8_t*>&c.xmm[u.reg][0]
    memcpy(&v, p + idx * n, n)
    if u.mem:
        return R_EXC if mem_write(c, ea_of(c, u), n, v) else R_NEXT
    # a register destination is written whole: 32 bits zero-extended, or 64
    c.r[u.rm] = v
    return R_NEXT

cdef int op_vextract128(Cpu* c, const Uop* u) noexcept nogil:
    """VEXTRACTF128 / VEXTRACTI128 xmm/m128, ymm, imm8 (imm8[0]: which half)."""
    cdef uint64_t v[4]
    cdef uint32_t h = 2 * (<uint32_t>u.imm & 1)
    if avx_check(c):
        return R_EXC
    v[0] = c.xmm[u.reg][h]
    v[1] = c.xmm[u.reg][h + 1]
    if u.mem:
        return R_EXC if vstore_mem(c, u, v, 16, 0) else R_NEXT
    vset(c, u.rm, v, 2)
    return R_NEXT

cdef int op_vzero(Cpu* c, const Uop* u) noexcept nogil:
    """VZEROUPPER (VEX.L 0) / VZEROALL (VEX.L 1): the registers' bits above
    127 / all bits; the AVX state goes back to its initial configuration."""
    cdef uint32_t i
    if avx_check(c):
        return R_EXC
    for i in range(16):
        vzero_upper(c, i, 0 if u.vl else 2)
    c.xinuse_mod &= ~(<uint32_t>4)
    return R_NEXT

cdef int op_vldmxcsr(Cpu* c, const Uop* u) noexcept nogil:
    """VEX 0F AE /2 and /3: VLDMXCSR m32 (reserved bits: #GP(0)), VSTMXCSR m32."""
    cdef uint64_t v
    if avx_check(c):
        return R_EXC
    if u.sub == 3:
        return R_EXC if mem_write(c, ea_of(c, u), 4, c.mxcsr) else R_NEXT
    if mem_read(c, ea_of(c, u), 4, &v):
        return R_EXC
    if v & ~(<uint64_t>SSE_MXCSR_MASK):
        return raise_gp0(c)
    c.mxcsr = <uint32_t>v
    return R_NEXT

cdef int op_vmaskmovdqu(Cpu* c, const Uop* u) noexcept nogil:
    """VMASKMOVDQU xmm1, xmm2: bytes of xmm1 whose mask byte in xmm2 has its
    top bit set go to DS:[rDI]; only those bytes are accessed."""
    cdef uint8_t* s = <uint8_t*>&c.xmm[u.reg][0]
    cdef uint8_t* m = <uint8_t*>&c.xmm[u.rm][0]
    cdef uint64_t a = c.r[7], t
    cdef uint32_t i
    if avx_check(c):
        return R_EXC
    if u.asz32:
        a &= 0xffffffffULL
    a += c.seg_base[u.seg if u.seg != SEG_NONE else SEG_NONE]
    for i in range(16):                   # check first: a fault stores nothing
        if m[i] & 0x80 and mem_read_rmw(c, a + i, 1, &t):
            return R_EXC
    for i in range(16):
        if m[i] & 0x80 and mem_write(c, a + i, 1, s[i]):
            return R_EXC
    return R_NEXT

# ---- shifts by immediate (VEX.vvvv is the destination) ----

cdef void lane_shift_imm(uint64_t* x, uint32_t opc, uint32_t sub, uint32_t n) noexcept nogil:
    """One 128-bit lane of PSRLW/D/Q, PSRAW/D, PSLLW/D/Q, PSRLDQ, PSLLDQ by n."""
    cdef uint64_t lo = x[0], hi = x[1], e, m, r
    cdef uint32_t w, bits, i, j
    cdef int64_t se
    if opc == 0x73 and (sub == 3 or sub == 7):
        if n > 15:
            x[0] = 0
            x[1] = 0
        elif n:
            n *= 8
            if sub == 3:
                if n >= 64:
                    x[0] = hi >> (n - 64)
                    x[1] = 0
                else:
                    x[0] = (lo >> n) | (hi << (64 - n))
                    x[1] = hi >> n
            else:
                if n >= 64:
                    x[1] = lo << (n - 64)
                    x[0] = 0
                else:
                    x[1] = (hi << n) | (lo >> (64 - n))
                    x[0] = lo << n
        return
    w = 2 if opc == 0x71 else (4 if opc == 0x72 else 8)
    bits = w * 8
    m = SZ_MASK[w]
    for i in range(2):
        r = 0
        for j in range(8 // w):
            e = (x[i] >> (j * bits)) & m
            if sub == 2:
                e = 0 if n >= bits else e >> n
            elif sub == 6:
                e = 0 if n >= bits else (e << n) & m
            else:
                se = sext(e, w)
                e = <uint64_t>(se >> (bits - 1 if n >= bits else n)) & m
            r |= e << (j * bits)
        x[i] = r

cdef int op_vpshift_imm(Cpu* c, const Uop* u) noexcept nogil:
    """VEX.66 0F 71/72/73 /n ib: vvvv = r/m shifted by imm8, lane by lane."""
    cdef uint64_t v[4]
    if avx_check(c):
        return R_EXC
    memcpy(v, &c.xmm[u.rm][0], 32)
    lane_shift_imm(v, u.opc, u.sub, <uint32_t>u.imm & 0xff)
    if u.vl:
        lane_shift_imm(v + 2, u.opc, u.sub, <uint32_t>u.imm & 0xff)
    vset(c, u.vvvv, v, 4 if u.vl else 2)
    return R_NEXT

# ---- broadcasts ----

cdef int op_vbroadcast(Cpu* c, const Uop* u) noexcept nogil:
    """VBROADCASTSS (38 18), VBROADCASTSD (19), VBROADCASTF128 (1A),
    VPBROADCASTD/Q (58/59), VBROADCASTI128 (5A), VPBROADCASTB/W (78/79):
    one element of the source (a register's lowest, or memory) everywhere."""
    cdef uint64_t s[4]
    cdef uint8_t r[32]
    cdef uint32_t n, i, total = vlen(u)
    cdef uint32_t o = u.opc
    n = 4 if o == 0x18 or o == 0x58 else (8 if o == 0x19 or o == 0x59 else
                                          (16 if o == 0x1a or o == 0x5a else (1 if o == 0x78 else 2)))
    if avx_check(c) or vload(c, u, s, n, 0):
        return R_EXC
    i = 0
    while i < total:
        memcpy(r + i, s, n)
        i += n
    vset(c, u.reg, <uint64_t*>r, total >> 3)
    return R_NEXT

# ---- masked moves ----

cdef int op_vmaskmov(Cpu* c, const Uop* u) noexcept nogil:
    """VMASKMOVPS/PD (38 2C/2D load, 2E/2F store), VPMASKMOVD/Q (38 8C load,
    8E store; VEX.W: qwords): elements whose mask element (vvvv) has its
    top bit set; masked-off elements are not accessed (no fault from them),
    loads zero them."""
    cdef uint32_t w = 8 if (u.opc == 0x2d or u.opc == 0x2f or ((u.opc == 0x8c or u.opc == 0x8e) and u.vexw)) else 4
    cdef uint32_t n = vlen(u) // w, i
    cdef int store = u.opc == 0x2e or u.opc == 0x2f or u.opc == 0x8e
    cdef uint8_t* m = <uint8_t*>&c.xmm[u.vvvv][0]
    cdef uint64_t a, v, t
    cdef uint64_t r[4]
    if avx_check(c):
        return R_EXC
    a = ea_of(c, u)
    memset(r, 0, 32)
    if store:
        for i in range(n):
            if m[i * w + w - 1] & 0x80 and mem_read_rmw(c, a + i * w, w, &t):
                return R_EXC
        for i in range(n):
            if m[i * w + w - 1] & 0x80:
                v = 0
                memcpy(&v, <uint8_t*>&c.xmm[u.reg][0] + i * w, w)
                if mem_write(c, a + i * w, w, v):
                    return R_EXC
        return R_NEXT
    for i in range(n):
        if m[i * w + w - 1] & 0x80:
            if mem_read(c, a + i * w, w, &v):
                return R_EXC
            memcpy(<uint8_t*>r + i * w, &v, w)
    vset(c, u.reg, r, vlen(u) >> 3)
    return R_NEXT

# ---- string compares, half floats ----

cdef int op_vpcmpstr(Cpu* c, const Uop* u) noexcept nogil:
    """VPCMPESTRM/ESTRI/ISTRM/ISTRI (VEX.128 66 0F 3A 60-63): as the legacy
    forms; the mask result zeroes YMM0's upper bits."""
    cdef uint64_t s[4]
    cdef uint64_t m[4]
    cdef uint32_t which = u.opc & 3, idx, limit = 8 if u.imm & 1 else 16
    cdef uint32_t la = 0, lb = 0
    cdef uint64_t f
    if avx_check(c) or vload(c, u, s, 16, 0):
        return R_EXC
    if which < 2:
        la = pcmpstr_len(c.r[0], u.vexw, limit)
        lb = pcmpstr_len(c.r[2], u.vexw, limit)
    f = emu_pcmpstr(which, &c.xmm[u.reg][0], s, <uint32_t>u.imm & 0xff, la, lb, m, &idx)
    if which & 1:
        c.r[1] = idx
    else:
        vset(c, 0, m, 2)
    set_arith_flags(c, f)
    return R_NEXT

cdef extern from *:
    """
    /* VCVTPS2PH xmm, xmm/ymm, imm8: the rounding control is imm8[2:0] (bit 2:
       use MXCSR.RC); the other bits are ignored */
    #define EMU_PH1(k) case (k): if (l) __asm__ volatile("vcvtps2ph %2, %1, %0" : "=x"(r) : "x"(y), "i"(k)); \\
        else __asm__ volatile("vcvtps2ph %2, %1, %0" : "=x"(r) : "x"(x), "i"(k)); break;
    static EMU_VTGT unsigned int emu_vcvtps2ph(unsigned int csr, uint64_t* d, const uint64_t* s, unsigned int imm, int l) {
        __m256i y; __m128i x, r; unsigned int sv;
        memcpy(&y, s, 32); memcpy(&x, s, 16);
        sv = emu_csr_enter(csr);
        switch (imm & 7) { EMU_PH1(0) EMU_PH1(1) EMU_PH1(2) EMU_PH1(3) EMU_PH1(4) EMU_PH1(5) EMU_PH1(6) EMU_PH1(7) }
        csr = emu_csr_leave(sv);
        memcpy(d, &r, 16);
        return csr;
    }
    """
    unsigned int emu_vcvtps2ph(unsigned int csr, uint64_t* d, const uint64_t* s, unsigned int imm, int l) noexcept nogil

cdef int op_vcvtps2ph(Cpu* c, const Uop* u) noexcept nogil:
    """VCVTPS2PH xmm/m64, xmm, imm8 (VEX.128) / xmm/m128, ymm, imm8 (VEX.256)."""
    cdef uint64_t d[4]
    cdef uint32_t csr
    d[2] = 0
    d[3] = 0
    if avx_check(c):
        return R_EXC
    csr = sse_csr_done(c, emu_vcvtps2ph(sse_csr_arg(c), d, &c.xmm[u.reg][0], <uint32_t>u.imm, u.vl))
    if sse_fp_flags(c, csr):
        return R_EXC
    if u.mem:
        return R_EXC if vstore_mem(c, u, d, 16 if u.vl else 8, 0) else R_NEXT
    if not u.vl:
        d[1] = 0
    vset(c, u.rm, d, 2)
    return R_NEXT

cdef void init_avx_mov():
    cdef uint64_t A = FEAT_AVX, A2 = FEAT_AVX2
    cdef int pp
    if not (core_features() & FEAT_AVX):
        return
    for pp in (0, 1):
        vop(1, pp, 0x10, op_vmov_load, D_MODRM, VX_NOV, A, 0, I_NONE, 0)
        vop(1, pp, 0x11, op_vmov_store, D_MODRM, VX_NOV, A, 0, I_NONE, 0)
        vop(1, pp, 0x28, op_vmov_load, D_MODRM, VX_NOV, A, 0, I_NONE, 1)
        vop(1, pp, 0x29, op_vmov_store, D_MODRM, VX_NOV, A, 0, I_NONE, 1)
        vop(1, pp, 0x2b, op_vmov_store, D_MODRM | D_MEMONLY, VX_NOV, A, 0, I_NONE, 1)
        vop(1, pp, 0x12, op_vmovlh, D_MODRM, VX_L0, A, 0, I_NONE, pp)
        vop(1, pp, 0x16, op_vmovlh, D_MODRM, VX_L0, A, 0, I_NONE, pp)
        vop(1, pp, 0x13, op_vmovlh_store, D_MODRM | D_MEMONLY, VX_L0 | VX_NOV, A, 0, I_NONE, 0)
        vop(1, pp, 0x17, op_vmovlh_store, D_MODRM | D_MEMONLY, VX_L0 | VX_NOV, A, 0, I_NONE, 0)
        vop(1, pp, 0x50, op_vmovmsk, D_MODRM | D_REGONLY, VX_NOV, A, 0, I_NONE, pp)
    for pp in (2, 3):
        vop(1, pp, 0x10, op_vmovss_load, D_MODRM, VX_LIG, A, 0, I_NONE, pp)
        vop(1, pp, 0x11, op_vmovss_store, D_MODRM, VX_LIG, A, 0, I_NONE, pp)
        vop(1, pp, 0x2a, op_vcvtsi2f, D_MODRM, VX_LIG, A, 0, I_NONE, pp)
        vop(1, pp, 0x2c, op_vcvtf2si, D_MODRM, VX_LIG | VX_NOV, A, 0, I_NONE, pp)
        vop(1, pp, 0x2d, op_vcvtf2si, D_MODRM, VX_LIG | VX_NOV, A, 0, I_NONE, pp)
    vop(1, 2, 0x12, op_vdup, D_MODRM, VX_NOV, A, 0, I_NONE, 2)
    vop(1, 2, 0x16, op_vdup, D_MODRM, VX_NOV, A, 0, I_NONE, 2)
    vop(1, 3, 0x12, op_vdup, D_MODRM, VX_NOV, A, 0, I_NONE, 3)
    vop(1, 1, 0x6f, op_vmov_load, D_MODRM, VX_NOV, A, 0, I_NONE, 1)
    vop(1, 2, 0x6f, op_vmov_load, D_MODRM, VX_NOV, A, 0, I_NONE, 0)
    vop(1, 1, 0x7f, op_vmov_store, D_MODRM, VX_NOV, A, 0, I_NONE, 1)
    vop(1, 2, 0x7f, op_vmov_store, D_MODRM, VX_NOV, A, 0, I_NONE, 0)
    vop(1, 1, 0xe7, op_vmov_store, D_MODRM | D_MEMONLY, VX_NOV, A, 0, I_NONE, 1)
    vop(1, 3, 0xf0, op_vmov_load, D_MODRM | D_MEMONLY, VX_NOV, A, 0, I_NONE, 0)
    vop(2, 1, 0x2a, op_vmov_load, D_MODRM | D_MEMONLY, VX_NOV, A, A2, I_NONE, 1)
    vop(1, 1, 0x6e, op_vmovd_load, D_MODRM, VX_L0 | VX_NOV, A, 0, I_NONE, 0)
    vop(1, 1, 0x7e, op_vmovd_store, D_MODRM, VX_L0 | VX_NOV, A, 0, I_NONE, 0)
    vop(1, 2, 0x7e, op_vmovq_load, D_MODRM, VX_L0 | VX_NOV, A, 0, I_NONE, 0)
    vop(1, 1, 0xd6, op_vmovq_store, D_MODRM, VX_L0 | VX_NOV, A, 0, I_NONE, 0)
    vop(1, 1, 0xd7, op_vmovmsk, D_MODRM | D_REGONLY, VX_NOV, A, A2, I_NONE, 0)
    vop(1, 0, 0x77, op_vzero, 0, VX_NOV, A, 0, I_NONE, 0)
    vgrp(1, 0, 0xae, 2, op_vldmxcsr, D_MEMONLY, VX_L0 | VX_NOV, A, I_NONE)
    vgrp(1, 0, 0xae, 3, op_vldmxcsr, D_MEMONLY, VX_L0 | VX_NOV, A, I_NONE)
    vop(1, 1, 0xc4, op_vpinsr, D_MODRM, VX_L0, A, 0, I_8, 0)
    vop(1, 1, 0xc5, op_vpextr, D_MODRM | D_REGONLY, VX_L0 | VX_NOV, A, 0, I_8, 0)
    vop(3, 1, 0x20, op_vpinsr, D_MODRM, VX_L0, A, 0, I_8, 0)
    vop(3, 1, 0x22, op_vpinsr, D_MODRM, VX_L0, A, 0, I_8, 0)
    for pp in (0x14, 0x15, 0x16, 0x17):
        vop(3, 1, pp, op_vpextr, D_MODRM, VX_L0 | VX_NOV, A, 0, I_8, 0)
    vop(3, 1, 0x19, op_vextract128, D_MODRM, VX_L1 | VX_W0 | VX_NOV, A, 0, I_8, 0)
    vop(3, 1, 0x39, op_vextract128, D_MODRM, VX_L1 | VX_W0 | VX_NOV, A2, 0, I_8, 0)
    vop(3, 1, 0x1d, op_vcvtps2ph, D_MODRM, VX_W0 | VX_NOV, FEAT_F16C, 0, I_8, 0)
    vop(1, 1, 0xf7, op_vmaskmovdqu, D_MODRM | D_REGONLY, VX_L0 | VX_NOV, A, 0, I_NONE, 0)
    for pp in (2, 4, 6):
        vgrp(1, 1, 0x71, pp, op_vpshift_imm, D_REGONLY, 0, A, I_8)
        vgrp(1, 1, 0x72, pp, op_vpshift_imm, D_REGONLY, 0, A, I_8)
    for pp in (2, 3, 6, 7):
        vgrp(1, 1, 0x73, pp, op_vpshift_imm, D_REGONLY, 0, A, I_8)
    for pp in (0x71, 0x72, 0x73):
        voptab[1][1][pp].feat_l1 = A2
    vop(2, 1, 0x18, op_vbroadcast, D_MODRM, VX_W0 | VX_NOV, A, 0, I_NONE, 0)
    vop(2, 1, 0x19, op_vbroadcast, D_MODRM, VX_W0 | VX_NOV | VX_L1, A, 0, I_NONE, 0)
    vop(2, 1, 0x1a, op_vbroadcast, D_MODRM | D_MEMONLY, VX_W0 | VX_NOV | VX_L1, A, 0, I_NONE, 0)
    for pp in (0x58, 0x59, 0x78, 0x79):
        vop(2, 1, pp, op_vbroadcast, D_MODRM, VX_W0 | VX_NOV, A2, 0, I_NONE, 0)
    vop(2, 1, 0x5a, op_vbroadcast, D_MODRM | D_MEMONLY, VX_W0 | VX_NOV | VX_L1, A2, 0, I_NONE, 0)
    for pp in (0x2c, 0x2d, 0x2e, 0x2f):
        vop(2, 1, pp, op_vmaskmov, D_MODRM | D_MEMONLY, VX_W0, A, 0, I_NONE, 0)
    vop(2, 1, 0x8c, op_vmaskmov, D_MODRM | D_MEMONLY, 0, A2, 0, I_NONE, 0)
    vop(2, 1, 0x8e, op_vmaskmov, D_MODRM | D_MEMONLY, 0, A2, 0, I_NONE, 0)
    for pp in range(0x60, 0x64):
        vop(3, 1, pp, op_vpcmpstr, D_MODRM, VX_L0 | VX_NOV, A, 0, I_8, 0)
