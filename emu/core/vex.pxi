# The VEX prefix (SDM Vol. 2A, 2.3): two- and three-byte forms, the
# VEX-specific #UD rules, the CPU-model gate of every form (Cpu.feat), the
# registration helper of the VEX maps, and the AVX state checks.
#
# A VEX prefix becomes a synthesized REX (R, X, B, W) so the common ModRM /
# SIB path of decode_one numbers registers as usual; VEX.vvvv, VEX.L and
# VEX.W go to the uop (vvvv, vl, vexw). The EVEX prefix (62) will decode into
# the same fields (vvvv 0..31, vl 2 = 512 bits, is4 = the opmask).

# VX_* rules of a VEX form (OpDesc.vx); C enums for the tables in C
cdef extern from *:
    """
    enum {
        VX_L0 = 0x1,   /* VEX.L must be 0 (VEX.128 / VEX.LZ) */
        VX_L1 = 0x2,   /* VEX.L must be 1 (VEX.256 only) */
        VX_LIG = 0x4,   /* VEX.L ignored: the uop gets vl = 0 */
        VX_W0 = 0x8,   /* VEX.W must be 0 */
        VX_W1 = 0x10,   /* VEX.W must be 1 */
        VX_NOV = 0x20,   /* VEX.vvvv unused: must be 1111b */
        VX_WSEL = 0x40,   /* VEX.W selects the table entry (sub + W) */
        VX_VEX = 0x80,   /* a VEX form (set by vop) */
    };
    """
    cdef enum:
        VX_L0
        VX_L1
        VX_LIG
        VX_W0
        VX_W1
        VX_NOV
        VX_WSEL
        VX_VEX

cdef inline int avx_check(Cpu* c) noexcept nogil:
    """A VEX-encoded vector instruction (SDM Vol. 2A, 2.8, exception class
    tables): #UD unless CR4.OSXSAVE is set and XCR0 enables SSE and AVX
    state; then #NM with CR0.TS. Returns 0 or R_EXC."""
    if not (c.cr4 & SSE_CR4_OSXSAVE) or (c.xcr0 & 6) != 6:
        return raise_ud(c)
    if c.cr0 & SSE_CR0_TS:
        return raise_exc(c, EXC_NM, 0, 0)
    return 0

cdef int vex_prefix(Cpu* c, Dec* d, Uop* u, uint32_t b) noexcept nogil:
    """Decode C4 xx xx / C5 xx and the opcode byte after it into d (map,
    pc = VEX.pp, opc, a synthesized REX) and u (vvvv, vl, vexw)."""
    cdef uint32_t b1, b2, w = 0, x = 0, bb = 0, r, mmmmm = 1
    cdef int k
    # a 66, F2, F3 or LOCK prefix, or a REX, before VEX is #UD (SDM 2.3.2, 2.3.3)
    if d.p66 or d.rep or d.lock or d.rex:
        return raise_ud(c)
    k = dfetch(c, d, &b1)
    if k:
        return k
    r = ((~b1) >> 7) & 1
    if b == 0xc5:
        b2 = b1
    else:
        x = ((~b1) >> 6) & 1
        bb = ((~b1) >> 5) & 1
        mmmmm = b1 & 0x1f
        k = dfetch(c, d, &b2)
        if k:
            return k
        w = b2 >> 7
    k = dfetch(c, d, &b1)          # the opcode
    if k:
        return k
    if mmmmm < 1 or mmmmm > 3:
        return raise_ud(c)
    d.vex = 1
    d.map = mmmmm
    d.pc = b2 & 3
    d.opc = b1
    d.rex = 0x40 | (w << 3) | (r << 2) | (x << 1) | bb
    u.vvvv = ((~b2) >> 3) & 15
    u.vl = (b2 >> 2) & 1
    u.vexw = w
    return 0

cdef int feat_gate(Cpu* c, Dec* d, Uop* u, OpDesc* o) noexcept nogil:
    """The CPU model's feature bits and, for VEX forms, the L/W/vvvv rules."""
    cdef uint64_t need = o.feat
    cdef uint32_t vx = o.vx
    if d.vex:
        if not (vx & VX_VEX):
            return raise_ud(c)
        if u.vl:
            need |= o.feat_l1
    elif vx & VX_VEX:
        return raise_ud(c)
    if need & ~c.feat:
        if o.nofeat != NULL and not d.vex:
            u.fn = o.nofeat
            return 0
        return raise_ud(c)
    if d.vex:
        if (vx & VX_L0 and u.vl) or (vx & VX_L1 and not u.vl):
            return raise_ud(c)
        if (vx & VX_W0 and u.vexw) or (vx & VX_W1 and not u.vexw):
            return raise_ud(c)
        if vx & VX_NOV and u.vvvv:
            return raise_ud(c)
        if vx & VX_LIG:
            u.vl = 0
    return 0

cdef void vop(int map, int pp, int opc, uop_fn fn, uint32_t flags, uint32_t vx, uint64_t feat,
              uint64_t feat_l1, int imm, int sub) noexcept:
    """Register a VEX form: map 1..3 (0F, 0F 38, 0F 3A), pp 0..3 (none, 66,
    F3, F2), D_* flags, VX_* rules, the features it needs (feat_l1: in
    addition with VEX.L = 1)."""
    cdef OpDesc* o = &voptab[map][pp][opc]
    o.fn = fn
    o.flags = flags
    o.vx = vx | VX_VEX
    o.feat = feat
    o.feat_l1 = feat_l1
    o.imm = imm
    o.sub = sub

cdef void vgrp(int map, int pp, int opc, int n, uop_fn fn, uint32_t flags, uint32_t vx, uint64_t feat,
               int imm) noexcept:
    """Register fn as /n of a VEX group (the rules are the group's)."""
    cdef OpDesc* o = &voptab[map][pp][opc]
    o.grp[n] = fn
    o.flags |= D_GRP | D_MODRM
    o.grp_flags[n] = flags
    o.grp_imm[n] = imm
    o.vx = vx | VX_VEX
    o.feat = feat
    if imm:
        o.imm = imm

cdef void opfix_v(int map, int pp, int opc, fix_fn fix) noexcept:
    voptab[map][pp][opc].fix = fix

cdef void gate(int map, int pcs, int opc, uint64_t feat, uop_fn nofeat) noexcept:
    """A legacy-encoded form needs feat (for the prefix classes in pcs); without
    it the bytes mean nofeat (NULL: #UD)."""
    cdef int pc
    for pc in range(4):
        if (pcs >> pc) & 1:
            optab[map][pc][opc].feat = feat
            optab[map][pc][opc].nofeat = nofeat

# ---- the vector register file ----

cdef inline void vzero_upper(Cpu* c, uint32_t r, uint32_t from_q) noexcept nogil:
    """Zero qwords from_q..7 of register r (a VEX write of a shorter vector)."""
    cdef uint32_t i
    for i in range(from_q, 8):
        c.xmm[r][i] = 0

cdef inline void vset(Cpu* c, uint32_t r, const uint64_t* v, uint32_t nq) noexcept nogil:
    """A VEX register write of nq qwords: the rest up to bit 511 is zeroed."""
    cdef uint32_t i
    for i in range(nq):
        c.xmm[r][i] = v[i]
    for i in range(nq, 8):
        c.xmm[r][i] = 0
    if nq > 2:
        c.xinuse_mod |= 4     # Intel's XINUSE[2] tracks 256-bit writes

cdef inline int vmem_write(Cpu* c, uint64_t a, const void* v, uint32_t n) noexcept nogil:
    """A vector store of n bytes: every page it touches is checked for write
    access first, so a fault leaves memory unchanged."""
    cdef uint64_t t
    if ((a & 0xfff) + n > 0x1000) and (mem_read_rmw(c, a, 1, &t) or mem_read_rmw(c, a + n - 1, 1, &t)):
        return R_EXC
    if mem_write_bytes(c, a, <const uint8_t*>v, n):
        return R_EXC
    return 0
