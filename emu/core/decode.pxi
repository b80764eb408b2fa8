# The decoder: legacy prefixes, REX, the one-, two- and three-byte opcode
# maps (SDM Vol. 2, chapter 2 and Appendix A), ModRM/SIB/displacement and
# immediates, into one pre-resolved micro-op per instruction.

# descriptor flags
cdef enum:
    D_MODRM = 0x1
    D_BYTE = 0x2          # operand size 1 (both operands)
    D_BYTE_RM = 0x4       # the r/m operand is a byte register (MOVZX/MOVSX)
    D_DEF64 = 0x8         # default operand size 64 in long mode (66 gives 16)
    D_F64 = 0x10          # operand size 64 whatever the prefixes (near branches)
    D_REGONLY = 0x20      # ModRM.mod must be 3
    D_MEMONLY = 0x40      # ModRM.mod must not be 3
    D_END = 0x80          # ends the block (branches, exits)
    D_LOCK = 0x100        # LOCK is legal with a memory destination
    D_OPREG = 0x200       # register number in opcode bits 2..0
    D_GRP = 0x400         # handler chosen by ModRM.reg
    D_IMM_TEST = 0x800    # F6/F7: an immediate only for /0 and /1
    D_BYTE_REG = 0x1000   # the reg operand is a byte register
    D_NO_REP_SUB = 0x2000 # reserved

# immediate kinds
cdef enum:
    I_NONE = 0
    I_8 = 1
    I_16 = 2
    I_Z = 3               # 16 or 32 bits (sign-extended to 64 for 64-bit operands)
    I_V = 4               # 16, 32 or 64 bits (MOV r, imm)
    I_REL8 = 5
    I_RELZ = 6
    I_MOFFS = 7           # address-sized offset (MOV AL/rAX, moffs)
    I_16_8 = 8            # ENTER: imm16, imm8
    I_PTR = 9             # far pointer: offset (operand size) then selector (EA, 9A outside 64-bit mode)

ctypedef int (*fix_fn)(Cpu* c, Dec* d, Uop* u) noexcept nogil

cdef struct OpDesc:
    uop_fn fn
    uop_fn grp[8]
    fix_fn fix
    uint32_t flags
    uint8_t imm
    uint8_t sub
    uint8_t grp_lock      # bit n: /n may take LOCK
    uint32_t grp_flags[8] # flags of /n, added to flags
    uint8_t grp_imm[8]    # immediate kind of /n (I_NONE: use imm)
    # ISA extensions (core/vex.pxi): the FEAT_* bits the form needs (#UD when
    # the CPU model lacks one; with VEX.L = 1 also feat_l1), the VX_* rules
    # of a VEX form, and the uop_fn a missing feature falls back to (a legacy
    # meaning of the same bytes, e.g. TZCNT -> BSF), or NULL for #UD
    uint64_t feat
    uint64_t feat_l1
    uint32_t vx
    uop_fn nofeat

cdef struct Dec:
    uint8_t buf[16]
    uint32_t avail        # bytes we may read
    uint32_t pos
    int limit_is_fault    # avail is short because the next page faulted
    uint64_t fault_err    # that fault's error code
    uint64_t fault_va
    uint8_t p66, p67, rep, lock, seg, rex, pc
    uint8_t modrm, mod, regf, rmf, map, opc
    uint8_t vex           # a VEX prefix was decoded (vvvv, L, W in the uop)
    uint8_t sib           # the SIB byte (VSIB: its index names a vector register)
    uint32_t flags        # the instruction's final descriptor flags
    uint8_t ud            # invalid: #UD once its length is known (#GP past 15 bytes)

# optab[map][prefix class][opcode]; prefix class 0 none, 1 = 66, 2 = F3, 3 = F2
cdef OpDesc optab[4][4][256]
# the VEX maps (VEX.mmmmm 1..3, VEX.pp as the prefix class), core/vex.pxi
cdef OpDesc voptab[4][4][256]

cdef inline uint32_t byte_reg(uint32_t r, uint32_t rex) noexcept nogil:
    """Without REX, byte registers 4..7 are AH CH DH BH (SDM Vol. 1, 3.7.2.1)."""
    if rex == 0 and 4 <= r < 8:
        return 17 + r - 4
    return r

cdef inline int dfetch(Cpu* c, Dec* d, uint32_t* out) noexcept nogil:
    if d.pos >= d.avail:
        if d.pos >= 15:
            return raise_gp0(c)
        if d.limit_is_fault:
            raise_pf(c, d.fault_va, d.fault_err)
            return R_EXC
        return -2          # instruction continues on the next page: end the block first
    out[0] = d.buf[d.pos]
    d.pos += 1
    return 0

cdef inline int dfetch_n(Cpu* c, Dec* d, uint32_t n, uint64_t* out) noexcept nogil:
    cdef uint64_t v = 0
    cdef uint32_t b, i
    cdef int k
    for i in range(n):
        k = dfetch(c, d, &b)
        if k:
            return k
        v |= (<uint64_t>b) << (8 * i)
    out[0] = v
    return 0

cdef int uop_raise(Cpu* c, const Uop* u) noexcept nogil:
    """A decode-time fault, raised when execution reaches the instruction."""
    return raise_exc(c, u.sub, u.imm, u.imm2 != 0)

cdef int undefined_opcode(Cpu* c, Dec* d) noexcept nogil:
    """#UD for an opcode the core does not know, after fetching the bytes the
    CPU's length decoder would take for it (ModRM, SIB, displacement,
    immediate per the SDM opcode maps, Vol. 2 appendix A): an encoding
    longer than 15 bytes is #GP(0) instead (SDM 2.3.11)."""
    cdef uint32_t b = d.opc, modrm, sib, n = 0, i, pre = 0
    cdef int k, has_modrm = 1
    if d.map == 0:
        has_modrm = b == 0x62 or b == 0x82 or b == 0xc4 or b == 0xc5 or 0xd8 <= b <= 0xdf or b == 0x8f \
            or (b & 0xfc) == 0x80 or b == 0xc6 or b == 0xc7 or b == 0xf6 or b == 0xf7 or b == 0xfe or b == 0xff
        if b == 0x82 or b == 0xd4 or b == 0xd5:
            n = 1
        elif b == 0x9a or b == 0xea:
            n = 4 if d.p66 else 6          # ptr16:16 / ptr16:32
    elif d.map == 1:
        has_modrm = not (b in (0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0e, 0x0f, 0x77, 0xa0, 0xa1,
                               0xa2, 0xa8, 0xa9, 0xaa) or 0x24 <= b <= 0x27 or 0x30 <= b <= 0x37
                         or 0x80 <= b <= 0x8f or 0xc8 <= b <= 0xcf)
        if 0x70 <= b <= 0x73 or b == 0xa4 or b == 0xac or b == 0xba or b == 0xc2 or 0xc4 <= b <= 0xc6:
            n = 1
        elif 0x80 <= b <= 0x8f:
            n = 4
        elif b == 0x39 or 0x3b <= b <= 0x3f:
            pre = 1                        # escapes like 0F 38 / 0F 3A: one more opcode byte
    elif d.map == 3:
        n = 1
    for i in range(pre):
        k = dfetch(c, d, &modrm)
        if k:
            return k
    if has_modrm:
        k = dfetch(c, d, &modrm)
        if k:
            return k
        if modrm >> 6 != 3:
            if modrm & 7 == 4:
                k = dfetch(c, d, &sib)
                if k:
                    return k
                if (sib & 7) == 5 and modrm >> 6 == 0:
                    n += 4
            elif (modrm & 7) == 5 and modrm >> 6 == 0:
                n += 4
            n += 1 if modrm >> 6 == 1 else (4 if modrm >> 6 == 2 else 0)
    for i in range(n):
        k = dfetch(c, d, &b)
        if k:
            return k
    return raise_ud(c)

cdef int decode_one(Cpu* c, Dec* d, uint64_t rip, Uop* u) noexcept nogil:
    """Decode the instruction at rip from d.buf into u. Returns 0, R_EXC with
    the fault in c.exc_*, or -2 when the bytes run past what may be fetched."""
    cdef uint32_t b, b2, sib, modrm, rexb, rexx, rexr, base, index, i
    cdef int k
    cdef uint64_t v = 0
    cdef OpDesc* o
    cdef uint32_t flags, pc
    cdef int riprel
    cdef uint32_t imm
    cdef uint32_t m32 = c.cs32          # 32-bit code (compat32.pxi)
    cdef uint32_t modrm_peek
    memset(u, 0, sizeof(Uop))
    d.pos = 0
    d.p66 = 0
    d.p67 = 0
    d.rep = 0
    d.lock = 0
    d.rex = 0
    d.seg = SEG_NONE
    d.ud = 0
    while True:
        k = dfetch(c, d, &b)
        if k:
            return k
        if b == 0x66:
            d.p66 = 1
        elif b == 0x67:
            d.p67 = 1
        elif b == 0xf3:
            d.rep = REP_F3
        elif b == 0xf2:
            d.rep = REP_F2
        elif b == 0xf0:
            d.lock = 1
        elif b == 0x64:
            d.seg = SEG_FS
        elif b == 0x65:
            d.seg = SEG_GS
        elif b == 0x26 or b == 0x2e or b == 0x36 or b == 0x3e:
            pass                      # null segment overrides in 64-bit mode (flat in 32-bit code)
        elif 0x40 <= b <= 0x4f and not m32:
            d.rex = b
            k = dfetch(c, d, &b)
            if k:
                return k
            if b == 0x66 or b == 0x67 or b == 0xf3 or b == 0xf2 or b == 0xf0 or (0x40 <= b <= 0x4f) \
                    or b == 0x64 or b == 0x65 or b == 0x26 or b == 0x2e or b == 0x36 or b == 0x3e:
                # REX not immediately before the opcode is ignored (SDM 2.2.1)
                d.rex = 0
                d.pos -= 1
                continue
            break
        else:
            break
        if d.pos >= 15:
            return raise_gp0(c)
    d.map = 0
    d.vex = 0
    if b == 0xc4 or b == 0xc5:
        # 64-bit mode: always a VEX prefix (LES/LDS do not exist there); in
        # 32-bit code only when the next byte would be a register ModRM
        # (mod = 11), else it is LES/LDS (SDM Vol. 2A, 2.3.5), not modelled
        if m32:
            k = dfetch(c, d, &modrm_peek)
            if k:
                return k
            d.pos -= 1
            if modrm_peek < 0xc0:
                d.opc = b
                return undefined_opcode(c, d)
        k = vex_prefix(c, d, u, b)
        if k:
            return k
        b = d.opc
    elif b == 0x0f:
        k = dfetch(c, d, &b)
        if k:
            return k
        if b == 0x38:
            d.map = 2
        elif b == 0x3a:
            d.map = 3
        else:
            d.map = 1
        if d.map >= 2:
            k = dfetch(c, d, &b)
            if k:
                return k
    d.opc = b
    if d.vex:
        pc = d.pc
        o = &voptab[d.map][pc][b]
    else:
        if d.rep == REP_F3:
            pc = 2
        elif d.rep == REP_F2:
            pc = 3
        elif d.p66:
            pc = 1
        else:
            pc = 0
        d.pc = pc
        o = &optab[d.map][pc][b]
        if m32:
            if d.p67:
                return raise_ud(c)        # 16-bit addressing: not modelled
            if d.map == 0:
                if op32_ud[b]:
                    return raise_ud(c)
                if optab32[b].fn != NULL or optab32[b].flags & D_GRP:
                    o = &optab32[b]
            elif d.map == 1 and (b == 0x05 or b == 0x07):
                return raise_ud(c)        # SYSCALL/SYSRET in compatibility mode: #UD on Intel
    flags = o.flags
    if o.fn == NULL and not (flags & D_GRP):
        return undefined_opcode(c, d)
    if o.feat | o.vx:
        k = feat_gate(c, d, u, o)
        if k:
            return k
    rexb = (d.rex & 1) << 3
    rexx = (d.rex & 2) << 2
    rexr = (d.rex & 4) << 1
    u.asz32 = d.p67 | m32
    u.rep = d.rep
    u.lock = d.lock
    u.opc = b
    u.pfx66 = d.p66
    u.rex = d.rex
    u.sub = o.sub + (u.vexw if o.vx & VX_WSEL else 0)
    if u.fn == NULL:              # feat_gate may have chosen a fallback
        u.fn = o.fn
    u.base = NOREG
    u.index = NOREG
    u.seg = SEG_NONE
    u.reg = NOREG
    u.rm = NOREG
    if flags & D_OPREG:
        u.reg = (b & 7) | rexb
        if flags & D_BYTE:
            u.reg = byte_reg(u.reg, d.rex)
    riprel = 0
    if flags & D_MODRM:
        k = dfetch(c, d, &modrm)
        if k:
            return k
        d.modrm = modrm
        d.mod = modrm >> 6
        d.regf = (modrm >> 3) & 7
        d.rmf = modrm & 7
        u.reg = d.regf | rexr
        if flags & (D_BYTE | D_BYTE_REG):
            u.reg = byte_reg(u.reg, d.rex)
        if d.mod == 3:
            if flags & D_MEMONLY:
                d.ud = 1
            u.rm = d.rmf | rexb
            if flags & (D_BYTE | D_BYTE_RM):
                u.rm = byte_reg(u.rm, d.rex)
        else:
            if flags & D_REGONLY:
                d.ud = 1
            u.mem = 1
            u.seg = d.seg
            if d.rmf == 4:
                k = dfetch(c, d, &sib)
                if k:
                    return k
                d.sib = sib
                u.scale = sib >> 6
                index = ((sib >> 3) & 7) | rexx
                if index != 4:
                    u.index = index
                base = sib & 7
                if base == 5 and d.mod == 0:
                    k = dfetch_n(c, d, 4, &v)
                    if k:
                        return k
                    u.disp = <int32_t>v
                else:
                    u.base = base | rexb
            elif d.rmf == 5 and d.mod == 0:
                k = dfetch_n(c, d, 4, &v)
                if k:
                    return k
                u.disp = <int32_t>v
                riprel = not m32
            else:
                u.base = d.rmf | rexb
            if d.mod == 1:
                k = dfetch_n(c, d, 1, &v)
                if k:
                    return k
                u.disp = <int8_t>v
            elif d.mod == 2:
                k = dfetch_n(c, d, 4, &v)
                if k:
                    return k
                u.disp = <int32_t>v
        if flags & D_GRP:
            u.fn = o.grp[d.regf]
            u.sub = d.regf
            if u.fn == NULL:
                d.ud = 1
            flags |= o.grp_flags[d.regf]
            if flags & D_REGONLY and d.mod != 3:
                d.ud = 1
            if flags & D_MEMONLY and d.mod == 3:
                d.ud = 1
    d.flags = flags
    # operand size (SDM Vol. 1, 3.6.1 and Vol. 2, 2.2.1.2)
    if flags & D_BYTE:
        u.osz = 1
    elif flags & D_F64:
        u.osz = 8 if not m32 else (2 if d.p66 else 4)
    elif d.rex & 8:
        u.osz = 8
    elif d.p66:
        u.osz = 2
    elif flags & D_DEF64 and not m32:
        u.osz = 8
    else:
        u.osz = 4
    imm = o.imm
    if flags & D_GRP and o.grp_imm[d.regf]:
        imm = o.grp_imm[d.regf]
    elif flags & D_GRP and u.fn == NULL:
        for i in range(8):        # an undefined member is as long as its group's others
            if o.grp_imm[i] and d.opc != 0xf6 and d.opc != 0xf7:
                imm = o.grp_imm[i]
                break
    # LOCK is legal only on the read-modify-write forms with a memory destination
    if d.lock:
        if not (flags & D_LOCK) or not u.mem or (flags & D_GRP and not (o.grp_lock >> d.regf) & 1):
            d.ud = 1
    # immediates
    k = 0
    if imm == I_8 or imm == I_REL8:
        k = dfetch_n(c, d, 1, &v)
        u.imm = <uint64_t><int64_t><int8_t>v
    elif imm == I_16:
        k = dfetch_n(c, d, 2, &v)
        u.imm = v
    elif imm == I_Z or imm == I_RELZ:
        if u.osz == 2 and (imm == I_Z or (imm == I_RELZ and m32)):   # rel16 outside 64-bit mode
            k = dfetch_n(c, d, 2, &v)
            u.imm = v
        else:
            k = dfetch_n(c, d, 4, &v)
            u.imm = <uint64_t><int64_t><int32_t>v
    elif imm == I_V:
        k = dfetch_n(c, d, u.osz, &v)
        u.imm = v
    elif imm == I_MOFFS:
        k = dfetch_n(c, d, 4 if (d.p67 or m32) else 8, &v)
        u.disp = <int64_t>v
        u.mem = 1
        u.seg = d.seg
    elif imm == I_16_8:
        k = dfetch_n(c, d, 2, &v)
        u.imm = v
        if not k:
            k = dfetch_n(c, d, 1, &v)
            u.imm2 = v
    elif imm == I_PTR:
        k = dfetch_n(c, d, 2 if u.osz == 2 else 4, &v)
        u.imm = v
        if not k:
            k = dfetch_n(c, d, 2, &v)
            u.imm2 = v
    if flags & D_IMM_TEST and d.regf < 2:
        k = dfetch_n(c, d, 1 if u.osz == 1 else (2 if u.osz == 2 else 4), &v)
        u.imm = <uint64_t><int64_t><int32_t>v if u.osz >= 4 else v
    if k:
        return k
    if d.ud:
        return raise_ud(c)        # (its whole length fetched: #GP instead past 15 bytes)
    u.len = d.pos
    u.rip = rip
    u.rip_next = rip + d.pos
    if riprel:
        u.disp = <int64_t>(u.rip_next + <uint64_t>u.disp)
    if imm == I_REL8 or imm == I_RELZ:
        u.imm = u.rip_next + u.imm
        if m32:
            u.imm &= 0xffffULL if u.osz == 2 else 0xffffffffULL
    if o.fix != NULL:
        k = o.fix(c, d, u)
        if k:
            return k
    specialize(u)
    if m32:
        remap32(u)
    if (imm == I_REL8 or imm == I_RELZ) and not is_canonical(u.imm):
        u.imm2 = <uint64_t><uintptr_t>u.fn
        u.fn = op_branch_nc
    return 0

# ---- building the tables ----

cdef void op(int map, int opc, uop_fn fn, uint32_t flags, int imm=I_NONE, int sub=0, int pcs=0xf) noexcept:
    """Register a handler for opcode opc of map under the prefix classes in the
    mask pcs (bit 0 none, 1 = 66, 2 = F3, 3 = F2)."""
    cdef int pc
    for pc in range(4):
        if (pcs >> pc) & 1:
            optab[map][pc][opc].fn = fn
            optab[map][pc][opc].flags = flags
            optab[map][pc][opc].imm = imm
            optab[map][pc][opc].sub = sub

cdef void grp(int map, int opc, int n, uop_fn fn, uint32_t flags, int imm=I_NONE, int lockable=0, int pcs=0xf) noexcept:
    """Register fn as /n of the group at opcode opc."""
    cdef int pc
    for pc in range(4):
        if (pcs >> pc) & 1:
            optab[map][pc][opc].grp[n] = fn
            optab[map][pc][opc].flags |= (flags & (D_BYTE | D_IMM_TEST | D_BYTE_REG | D_BYTE_RM)) | D_GRP | D_MODRM
            optab[map][pc][opc].grp_flags[n] = flags
            optab[map][pc][opc].grp_imm[n] = imm
            if lockable:
                optab[map][pc][opc].grp_lock |= 1 << n

cdef void opfix(int map, int opc, fix_fn fix, int pcs=0xf) noexcept:
    cdef int pc
    for pc in range(4):
        if (pcs >> pc) & 1:
            optab[map][pc][opc].fix = fix
