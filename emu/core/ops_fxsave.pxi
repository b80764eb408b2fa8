# x87/SSE state save and restore: FXSAVE/FXRSTOR (0F AE /0 /1, 64-bit
# layout with REX.W), XSAVE/XSAVEOPT/XRSTOR (0F AE /4 /6 /5), XSAVEC
# (0F C7 /4), XSAVES/XRSTORS (0F C7 /5 /3), and the register forms of 0F AE
# /5 /6 /7 (LFENCE, MFENCE, SFENCE). State components: x87 (0), SSE (1) and
# AVX (2, the upper halves of YMM0-15 at offset 576 in both the standard and
# the compacted form, being the only extended one) (SDM Vol. 1, 10.5 and
# chapter 13). xsave_image / xrstor_image give the same image to the API
# (signal frames, snapshots).

cdef enum:
    XSTATE_SUPPORTED = 7        # x87 | SSE | AVX
    XSAVE_AVX_OFF = 576
    XSAVE_MAX = 832             # legacy region, header, AVX

cdef uint32_t xsave_size(uint64_t rfbm, int compacted) noexcept nogil:
    """Bytes of an XSAVE area holding the components in rfbm."""
    if rfbm & 4:
        return XSAVE_MAX
    return 576

cdef inline uint32_t x87_tag_of(const uint8_t* r) noexcept nogil:
    """The full tag of an 80-bit value: 0 valid, 1 zero, 2 special."""
    cdef uint32_t e = (r[8] | (r[9] << 8)) & 0x7fff
    cdef uint64_t m
    memcpy(&m, r, 8)
    if e == 0:
        return 1 if m == 0 else 2
    if e == 0x7fff or not (m >> 63):
        return 2
    return 0

cdef inline uint16_t x87_fsw(Cpu* c) noexcept nogil:
    return <uint16_t>((c.fsw & 0xC7FF) | ((c.ftop & 7) << 11))

cdef void x87_init_state(Cpu* c) noexcept nogil:
    """FNINIT, and the x87 init state for XRSTOR (registers kept by FNINIT but
    zeroed by XRSTOR: the caller zeroes them when needed)."""
    c.fcw = 0x037F
    c.fsw = 0
    c.ftop = 0
    c.ftw = 0xFFFF
    c.fop = 0
    c.fip = 0
    c.fdp = 0

cdef void fx_image(Cpu* c, uint8_t* b, int rexw, int x87, int sse) noexcept nogil:
    """Fill the 512-byte legacy region image (only the parts selected)."""
    cdef int i
    cdef uint32_t v32
    cdef uint8_t abr = 0
    if x87:
        memcpy(b, &c.fcw, 2)
        v32 = x87_fsw(c)
        memcpy(b + 2, &v32, 2)
        for i in range(8):
            if ((c.ftw >> (2 * i)) & 3) != 3:
                abr |= <uint8_t>(1 << i)
        b[4] = abr
        b[5] = 0
        memcpy(b + 6, &c.fop, 2)
        if rexw:
            memcpy(b + 8, &c.fip, 8)
            memcpy(b + 16, &c.fdp, 8)
        else:
            v32 = <uint32_t>c.fip
            memcpy(b + 8, &v32, 4)
            memset(b + 12, 0, 4)
            v32 = <uint32_t>c.fdp
            memcpy(b + 16, &v32, 4)
            memset(b + 20, 0, 4)
        for i in range(8):
            memcpy(b + 32 + 16 * i, &c.fpr[(c.ftop + i) & 7][0], 10)
            memset(b + 42 + 16 * i, 0, 6)
    if sse:
        memcpy(b + 24, &c.mxcsr, 4)
        v32 = SSE_MXCSR_MASK
        memcpy(b + 28, &v32, 4)
        for i in range(16):
            memcpy(b + 160 + 16 * i, &c.xmm[i][0], 16)

cdef void xmm_load16(Cpu* c, const uint8_t* b) noexcept nogil:
    """XMM0-15 (bits 127:0) from 256 bytes, or zeroed when b is NULL; the
    upper bits are kept."""
    cdef int i
    for i in range(16):
        if b == NULL:
            c.xmm[i][0] = 0
            c.xmm[i][1] = 0
        else:
            memcpy(&c.xmm[i][0], b + 16 * i, 16)

cdef void fx_load_x87(Cpu* c, const uint8_t* b, int rexw) noexcept nogil:
    cdef int i, phys
    cdef uint16_t fsw
    cdef uint32_t v32
    cdef uint8_t abr = b[4]
    memcpy(&c.fcw, b, 2)
    memcpy(&fsw, b + 2, 2)
    c.ftop = (fsw >> 11) & 7
    c.fsw = fsw & 0xC7FF
    memcpy(&c.fop, b + 6, 2)
    c.fop &= 0x7ff
    if rexw:
        memcpy(&c.fip, b + 8, 8)
        memcpy(&c.fdp, b + 16, 8)
    else:
        memcpy(&v32, b + 8, 4)
        c.fip = v32
        memcpy(&v32, b + 16, 4)
        c.fdp = v32
    for i in range(8):
        phys = (c.ftop + i) & 7
        memset(&c.fpr[phys][0], 0, 16)
        memcpy(&c.fpr[phys][0], b + 32 + 16 * i, 10)
    c.ftw = 0
    for i in range(8):
        if (abr >> i) & 1:
            c.ftw |= <uint16_t>(x87_tag_of(&c.fpr[i][0]) << (2 * i))
        else:
            c.ftw |= <uint16_t>(3 << (2 * i))

cdef inline int probe_write(Cpu* c, uint64_t a, uint64_t n) noexcept nogil:
    """Check that [a, a+n) is writable (n <= 4096) before storing any of it."""
    cdef uint64_t t
    if mem_read_rmw(c, a, 1, &t) or mem_read_rmw(c, a + n - 1, 1, &t):
        return R_EXC
    return 0

cdef int op_fxsave(Cpu* c, const Uop* u) noexcept nogil:
    """0F AE /0: FXSAVE m512 (REX.W: FXSAVE64). Bytes 416-511 are not written."""
    cdef uint8_t b[512]
    cdef uint64_t a = ea_of(c, u)
    if c.cr0 & (SSE_CR0_EM | SSE_CR0_TS):
        return raise_exc(c, EXC_NM if not (c.cr0 & SSE_CR0_EM) else EXC_UD, 0, 0)
    if a & 15:
        return raise_gp0(c)
    memset(b, 0, 512)
    fx_image(c, b, u.rex & 8, 1, c.cr4 & CR4_OSFXSR)
    if probe_write(c, a, 416):
        return R_EXC
    if c.cr4 & CR4_OSFXSR:
        return R_EXC if mem_write_bytes(c, a, b, 416) else R_NEXT
    # without OSFXSR the XMM registers and MXCSR need not be saved
    if mem_write_bytes(c, a, b, 24) or mem_write_bytes(c, a + 32, b + 32, 128):
        return R_EXC
    return R_NEXT

cdef int op_fxrstor(Cpu* c, const Uop* u) noexcept nogil:
    """0F AE /1: FXRSTOR m512. Reserved MXCSR bits give #GP(0)."""
    cdef uint8_t b[512]
    cdef uint64_t a = ea_of(c, u)
    cdef uint32_t csr
    if c.cr0 & (SSE_CR0_EM | SSE_CR0_TS):
        return raise_exc(c, EXC_NM if not (c.cr0 & SSE_CR0_EM) else EXC_UD, 0, 0)
    if a & 15:
        return raise_gp0(c)
    if mem_read_bytes(c, a, b, 416):
        return R_EXC
    memcpy(&csr, b + 24, 4)
    if c.cr4 & CR4_OSFXSR:
        if csr & ~(<uint32_t>SSE_MXCSR_MASK):
            return raise_gp0(c)
        c.mxcsr = csr
        xmm_load16(c, b + 160)
    fx_load_x87(c, b, u.rex & 8)
    c.xinuse_mod |= 3
    return R_NEXT

cdef inline int xsave_check(Cpu* c, uint64_t a, uint64_t feat) noexcept nogil:
    """#UD unless the CPU model has the instruction (feat) and CR4.OSXSAVE
    is set; #NM with CR0.TS; #GP(0) unless 64-byte aligned."""
    if (feat | FEAT_XSAVE) & ~c.feat or not (c.cr4 & SSE_CR4_OSXSAVE) or c.cr0 & SSE_CR0_EM:
        return raise_ud(c)
    if c.cr0 & SSE_CR0_TS:
        return raise_exc(c, EXC_NM, 0, 0)
    if a & 63:
        return raise_gp0(c)
    return 0

cdef uint64_t xstate_inuse(Cpu* c) noexcept nogil:
    """XINUSE (SDM Vol. 1, 13.6): a component is not in use when it is in its
    initial configuration. x87: FCW 037F, FSW 0 (TOP 0), every tag empty and
    all eight registers zero (the pointer fields are not considered, as on
    the AMD host); SSE: XMM0-15 zero (MXCSR is not part of it); AVX: the
    upper halves of YMM0-15 zero."""
    cdef uint64_t r = 0, acc = 0
    cdef int i
    if c.fcw != 0x037F or x87_fsw(c) != 0 or c.ftw != 0xFFFF:
        r |= 1
    else:
        for i in range(8):
            acc |= (<uint64_t*>&c.fpr[i][0])[0] | c.fpr[i][8] | c.fpr[i][9]
        if acc:
            r |= 1
    acc = 0
    for i in range(16):
        acc |= c.xmm[i][0] | c.xmm[i][1]
    if acc:
        r |= 2
    acc = 0
    for i in range(16):
        acc |= c.xmm[i][2] | c.xmm[i][3]
    if acc:
        r |= 4
    if c.vendor_intel:
        # Intel tracks modification: a component loaded (FXRSTOR, XRSTOR of
        # a non-init image, a 256-bit VEX write) stays in use until XRSTOR
        # (or, for AVX, VZEROUPPER/VZEROALL) initializes it
        r |= c.xinuse_mod & XSTATE_SUPPORTED
    return r

cdef void xsave_build(Cpu* c, uint8_t* b, uint64_t rfbm, int rexw) noexcept nogil:
    """The full image of the requested components (legacy region and AVX);
    the caller decides which parts to store."""
    cdef int i
    memset(b, 0, XSAVE_MAX)
    fx_image(c, b, rexw, rfbm & 1, rfbm & 2)
    if rfbm & 4:
        for i in range(16):
            memcpy(b + XSAVE_AVX_OFF + 16 * i, &c.xmm[i][2], 16)

cdef int xsave_store(Cpu* c, uint64_t a, const uint8_t* b, uint64_t wr, uint64_t rfbm, int kind) noexcept nogil:
    """Store the parts of image b selected by wr (components written) to a."""
    if wr & 1:
        if mem_write_bytes(c, a, b, 24) or mem_write_bytes(c, a + 32, b + 32, 128):
            return R_EXC
    if rfbm & 2:
        # XSAVE and XSAVEOPT write MXCSR whenever SSE state is requested (the
        # XMM registers: XSAVEOPT only when in use); XSAVEC/XSAVES both only
        # when XSTATE_BV[1] is set
        if (kind == 0 or kind == 2 or wr & 2) and mem_write_bytes(c, a + 24, b + 24, 8):
            return R_EXC
        if wr & 2 and mem_write_bytes(c, a + 160, b + 160, 256):
            return R_EXC
    if wr & 4 and mem_write_bytes(c, a + XSAVE_AVX_OFF, b + XSAVE_AVX_OFF, 256):
        return R_EXC
    return 0

cdef int xsave_common(Cpu* c, const Uop* u, int kind) noexcept nogil:
    """XSAVE (kind 0) and XSAVEOPT (2), standard form, and XSAVEC (1) and
    XSAVES (3), compacted form (SDM Vol. 1, 13.7, 13.9-13.11). XSTATE_BV[i]
    = XINUSE[i] for the requested components; XSAVE writes every requested
    component, the others (init optimization) only those in use; XSAVE and
    XSAVEOPT save MXCSR whenever SSE state is requested."""
    cdef uint8_t b[XSAVE_MAX]
    cdef uint64_t a = ea_of(c, u)
    cdef uint64_t rfbm = (c.xcr0 | (c.xss if kind == 3 else 0)) & ((c.r[2] << 32) | (c.r[0] & 0xffffffffULL))
    cdef uint64_t bv, cbv, inuse, wr
    if xsave_check(c, a, FEAT_XSAVEOPT if kind == 2 else (FEAT_XSAVEC if kind == 1 else
                                                          (FEAT_XSAVES if kind == 3 else 0))):
        return R_EXC
    if kind == 3 and c.cpl != 0:
        return raise_gp0(c)
    xsave_build(c, b, rfbm, u.rex & 8)
    if probe_write(c, a, xsave_size(rfbm, kind & 1)):
        return R_EXC
    inuse = xstate_inuse(c) & rfbm & XSTATE_SUPPORTED
    if kind & 1 and rfbm & 2 and c.mxcsr != 0x1F80:
        # the compacted form has no separate MXCSR: SSE counts as in use when
        # MXCSR is not 1F80 either (SDM Vol. 1, 13.10)
        inuse |= 2
    wr = rfbm if kind == 0 else inuse
    if kind & 1:
        bv = inuse
        cbv = (rfbm & XSTATE_SUPPORTED) | 0x8000000000000000ULL
        if mem_write(c, a + 512, 8, bv) or mem_write(c, a + 520, 8, cbv):
            return R_EXC
    else:
        if mem_read(c, a + 512, 8, &bv):
            return R_EXC
        bv = (bv & ~rfbm) | inuse
        if mem_write(c, a + 512, 8, bv):
            return R_EXC
    return R_EXC if xsave_store(c, a, b, wr, rfbm, kind) else R_NEXT

cdef int op_xsave(Cpu* c, const Uop* u) noexcept nogil:
    return xsave_common(c, u, 0)

cdef int op_xsavec(Cpu* c, const Uop* u) noexcept nogil:
    return xsave_common(c, u, 1)

cdef int op_xsaves(Cpu* c, const Uop* u) noexcept nogil:
    return xsave_common(c, u, 3)

cdef int xrstor_apply(Cpu* c, const uint8_t* b, uint64_t rfbm, int rexw, int supervisor) noexcept nogil:
    """Check and load an XSAVE image (standard or compacted, SDM Vol. 1,
    13.8); returns 0, or -1 for #GP(0) with nothing loaded."""
    cdef uint64_t bv, cbv, rest = 0
    cdef uint32_t csr
    cdef int i, compacted, load_csr
    memcpy(&bv, b + 512, 8)
    memcpy(&cbv, b + 520, 8)
    for i in range(528, 576):
        rest |= b[i]
    compacted = (cbv >> 63) != 0
    if rest:
        return -1
    if compacted:
        if (cbv & 0x7fffffffffffffffULL) & ~(c.xcr0 | (c.xss if supervisor else 0)) or bv & ~cbv:
            return -1
    else:
        if supervisor or bv & ~c.xcr0 or cbv:
            return -1
    memcpy(&csr, b + 24, 4)
    if compacted:
        load_csr = (rfbm & 2) and (bv & 2)
    else:
        load_csr = (rfbm & 6) != 0
    if load_csr and csr & ~(<uint32_t>SSE_MXCSR_MASK):
        return -1
    if rfbm & 1:
        if bv & 1:
            fx_load_x87(c, b, rexw)
        else:
            x87_init_state(c)
            memset(&c.fpr[0][0], 0, sizeof(c.fpr))
    if rfbm & 2:
        if bv & 2:
            xmm_load16(c, b + 160)
        else:
            xmm_load16(c, NULL)
    if rfbm & 4:
        for i in range(16):
            if bv & 4:
                memcpy(&c.xmm[i][2], b + XSAVE_AVX_OFF + 16 * i, 16)
            else:
                c.xmm[i][2] = 0
                c.xmm[i][3] = 0
    c.xinuse_mod = (c.xinuse_mod & ~<uint32_t>rfbm) | <uint32_t>(rfbm & bv)
    if load_csr:
        c.mxcsr = csr
    elif compacted and rfbm & 2:
        c.mxcsr = 0x1F80
    return 0

cdef int xrstor_common(Cpu* c, const Uop* u, int supervisor) noexcept nogil:
    """XRSTOR (standard and compacted forms) and XRSTORS (compacted, CPL 0)."""
    cdef uint8_t b[XSAVE_MAX]
    cdef uint64_t a = ea_of(c, u)
    cdef uint64_t rfbm = (c.xcr0 | (c.xss if supervisor else 0)) & ((c.r[2] << 32) | (c.r[0] & 0xffffffffULL))
    cdef uint64_t cbv
    if xsave_check(c, a, FEAT_XSAVES if supervisor else 0):
        return R_EXC
    if supervisor and c.cpl != 0:
        return raise_gp0(c)
    if mem_read_bytes(c, a, b, 576):
        return R_EXC
    memcpy(&cbv, b + 520, 8)
    # the AVX component is read only when the image says it is there
    memset(b + 576, 0, XSAVE_MAX - 576)
    if rfbm & 4 and (cbv & 4 or not (cbv >> 63)):
        if mem_read_bytes(c, a + XSAVE_AVX_OFF, b + XSAVE_AVX_OFF, 256):
            return R_EXC
    if xrstor_apply(c, b, rfbm, u.rex & 8, supervisor):
        return raise_gp0(c)
    return R_NEXT

cdef int op_xrstor(Cpu* c, const Uop* u) noexcept nogil:
    return xrstor_common(c, u, 0)

cdef int op_xrstors(Cpu* c, const Uop* u) noexcept nogil:
    return xrstor_common(c, u, 1)

cdef int op_ae5(Cpu* c, const Uop* u) noexcept nogil:
    """0F AE /5: XRSTOR m, or LFENCE."""
    if u.mem:
        return op_xrstor(c, u)
    return R_NEXT

cdef int op_ae6(Cpu* c, const Uop* u) noexcept nogil:
    """0F AE /6: XSAVEOPT m, or MFENCE."""
    if u.mem:
        return xsave_common(c, u, 2)
    return R_NEXT

cdef int op_ae7(Cpu* c, const Uop* u) noexcept nogil:
    """0F AE /7: CLFLUSH m8, or SFENCE."""
    if u.mem:
        return op_clflush(c, u)
    return R_NEXT

cdef void init_fxsave():
    grp(1, 0xae, 0, op_fxsave, D_MEMONLY, I_NONE, 0, 0x1)
    grp(1, 0xae, 1, op_fxrstor, D_MEMONLY, I_NONE, 0, 0x1)
    grp(1, 0xae, 4, op_xsave, D_MEMONLY, I_NONE, 0, 0x1)
    grp(1, 0xae, 5, op_ae5, 0, I_NONE, 0, 0x1)
    grp(1, 0xae, 6, op_ae6, 0, I_NONE, 0, 0x1)
    grp(1, 0xae, 7, op_ae7, 0, I_NONE, 0, 0x1)
    grp(1, 0xc7, 4, op_xsavec, D_MEMONLY, I_NONE, 0, 0x1)
    grp(1, 0xc7, 3, op_xrstors, D_MEMONLY, I_NONE, 0, 0x1)
    grp(1, 0xc7, 5, op_xsaves, D_MEMONLY, I_NONE, 0, 0x1)
