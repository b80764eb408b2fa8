# Shifts and rotates: group 2 (C0 C1 D0-D3: ROL ROR RCL RCR SHL/SAL SHR SAR)
# and the double shifts SHLD/SHRD (0F A4 A5 AC AD). SDM Vol. 2, "RCL/RCR/ROL/ROR",
# "SAL/SAR/SHL/SHR", "SHLD", "SHRD".
#
# SHL/SHR/SAR leave their flags lazily (LF_SHL LF_SHR LF_SAR with the masked
# count in lf_b); rotates touch only CF and OF, so they set flags eagerly.
# A masked count of 0 changes no flags (a 32-bit register destination is
# still zero-extended, as on hardware).
#
# The ar_* helpers here are shared with ops_muldiv.pxi and ops_bit.pxi
# (included after this file).

cdef inline int ar_load_rmw(Cpu* c, const Uop* u, uint32_t sz, uint64_t* addr, uint64_t* v) noexcept nogil:
    """Read the r/m destination of a read-modify-write (write access checked)."""
    if u.mem:
        addr[0] = ea_of(c, u)
        return mem_read_rmw(c, addr[0], sz, v)
    v[0] = rget(c, u.rm, sz)
    return 0

cdef inline int ar_load(Cpu* c, const Uop* u, uint32_t sz, uint64_t* v) noexcept nogil:
    """Read the r/m source operand."""
    if u.mem:
        return mem_read(c, ea_of(c, u), sz, v)
    v[0] = rget(c, u.rm, sz)
    return 0

cdef inline int ar_store(Cpu* c, const Uop* u, uint32_t sz, uint64_t addr, uint64_t v) noexcept nogil:
    if u.mem:
        return mem_write(c, addr, sz, v)
    rset(c, u.rm, sz, v)
    return 0

cdef inline void ar_set_cf_of(Cpu* c, uint64_t cf, uint64_t of) noexcept nogil:
    """Replace CF and OF, keep the other status flags."""
    set_arith_flags(c, (flags_arith(c) & ~(<uint64_t>(F_CF | F_OF))) | cf | (of << 11))

cdef inline uint32_t sh_count(Cpu* c, const Uop* u) noexcept nogil:
    """Masked count: CL for D2/D3, else the immediate (1 for D0/D1, set at decode)."""
    cdef uint64_t n = c.r[1] if (u.opc & 2) else u.imm
    return <uint32_t>(n & (0x3f if u.osz == 8 else 0x1f))

cdef inline int sh_nop(Cpu* c, const Uop* u) noexcept nogil:
    """Masked count 0: nothing changes, but a 32-bit register is zero-extended."""
    if not u.mem and u.osz == 4:
        c.r[u.rm] &= 0xffffffffULL
    return R_NEXT

cdef int op_shl(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint32_t sz = u.osz
    cdef uint32_t n = sh_count(c, u)
    cdef uint64_t a, r, addr = 0
    if ar_load_rmw(c, u, sz, &addr, &a):
        return R_EXC
    if n == 0:
        return sh_nop(c, u)
    r = (a << n) & SZ_MASK[sz]
    if ar_store(c, u, sz, addr, r):
        return R_EXC
    lf_set(c, LF_SHL, sz, a, n, r)
    return R_NEXT

cdef int op_shr(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint32_t sz = u.osz
    cdef uint32_t n = sh_count(c, u)
    cdef uint64_t a, r, addr = 0
    if ar_load_rmw(c, u, sz, &addr, &a):
        return R_EXC
    if n == 0:
        return sh_nop(c, u)
    r = a >> n
    if ar_store(c, u, sz, addr, r):
        return R_EXC
    lf_set(c, LF_SHR, sz, a, n, r)
    return R_NEXT

cdef int op_sar(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint32_t sz = u.osz
    cdef uint32_t n = sh_count(c, u)
    cdef uint64_t a, r, addr = 0
    if ar_load_rmw(c, u, sz, &addr, &a):
        return R_EXC
    if n == 0:
        return sh_nop(c, u)
    r = (<uint64_t>(sext(a, sz) >> n)) & SZ_MASK[sz]
    if ar_store(c, u, sz, addr, r):
        return R_EXC
    lf_set(c, LF_SAR, sz, a, n, r)
    return R_NEXT

cdef int op_rol(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint32_t sz = u.osz, s = sz * 8
    cdef uint32_t n = sh_count(c, u), k
    cdef uint64_t a, r, addr = 0, cf
    if ar_load_rmw(c, u, sz, &addr, &a):
        return R_EXC
    if n == 0:
        return sh_nop(c, u)
    k = n & (s - 1)
    if k == 0:
        r = a
    else:
        r = ((a << k) | (a >> (s - k))) & SZ_MASK[sz]
    if ar_store(c, u, sz, addr, r):
        return R_EXC
    cf = r & 1
    # OF is defined for a count of 1 only; the same formula otherwise
    ar_set_cf_of(c, cf, ((r >> (s - 1)) & 1) ^ cf)
    return R_NEXT

cdef int op_ror(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint32_t sz = u.osz, s = sz * 8
    cdef uint32_t n = sh_count(c, u), k
    cdef uint64_t a, r, addr = 0, cf
    if ar_load_rmw(c, u, sz, &addr, &a):
        return R_EXC
    if n == 0:
        return sh_nop(c, u)
    k = n & (s - 1)
    if k == 0:
        r = a
    else:
        r = ((a >> k) | (a << (s - k))) & SZ_MASK[sz]
    if ar_store(c, u, sz, addr, r):
        return R_EXC
    cf = (r >> (s - 1)) & 1
    ar_set_cf_of(c, cf, cf ^ ((r >> (s - 2)) & 1))
    return R_NEXT

cdef int op_rcl(Cpu* c, const Uop* u) noexcept nogil:
    """Rotate the size+1-bit value CF:dest; the count is taken modulo 9 or 17
    for byte and word operands."""
    cdef uint32_t sz = u.osz, s = sz * 8
    cdef uint32_t n = sh_count(c, u), k
    cdef uint64_t a, r, addr = 0, cf
    if ar_load_rmw(c, u, sz, &addr, &a):
        return R_EXC
    if n == 0:
        return sh_nop(c, u)
    if sz == 1:
        k = n % 9
    elif sz == 2:
        k = n % 17
    else:
        k = n
    cf = lf_cf(c)
    if k == 0:
        r = a
    else:
        r = (a << k) | (cf << (k - 1))
        if k > 1:
            r |= a >> (s + 1 - k)
        r &= SZ_MASK[sz]
        cf = (a >> (s - k)) & 1
    if ar_store(c, u, sz, addr, r):
        return R_EXC
    ar_set_cf_of(c, cf, ((r >> (s - 1)) & 1) ^ cf)
    return R_NEXT

cdef int op_rcr(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint32_t sz = u.osz, s = sz * 8
    cdef uint32_t n = sh_count(c, u), k
    cdef uint64_t a, r, addr = 0, cf, of
    if ar_load_rmw(c, u, sz, &addr, &a):
        return R_EXC
    if n == 0:
        return sh_nop(c, u)
    if sz == 1:
        k = n % 9
    elif sz == 2:
        k = n % 17
    else:
        k = n
    cf = lf_cf(c)
    of = ((a >> (s - 1)) & 1) ^ cf     # from the operand before the rotation (count 1)
    if k == 0:
        r = a
    else:
        r = (a >> k) | (cf << (s - k))
        if k > 1:
            r |= a << (s + 1 - k)
        r &= SZ_MASK[sz]
        cf = (a >> (k - 1)) & 1
    if ar_store(c, u, sz, addr, r):
        return R_EXC
    ar_set_cf_of(c, cf, of)
    return R_NEXT

cdef int op_shld(Cpu* c, const Uop* u) noexcept nogil:
    """0F A4 (imm8) / 0F A5 (CL): shift dest left, filling from the reg operand."""
    cdef uint32_t sz = u.osz, s = sz * 8
    cdef uint32_t n = <uint32_t>((u.imm if u.opc == 0xa4 else c.r[1]) & (0x3f if sz == 8 else 0x1f))
    cdef uint64_t a, b = rget(c, u.reg, sz), r, addr = 0, x, cf, of
    if ar_load_rmw(c, u, sz, &addr, &a):
        return R_EXC
    if n == 0:
        return sh_nop(c, u)
    if n <= s:
        r = (a << n) | (b >> (s - n))
    else:
        # 16-bit operand, count 17..31: undefined (SDM). Intel shifts the
        # 48-bit dest:src:dest left; AMD rotates src in. CF is the last bit
        # shifted out of the destination either way.
        if c.vendor_intel:
            x = (a << 32) | (b << 16) | a
            r = x >> (32 - n)
            cf = (x >> (48 - n)) & 1
        else:
            r = (b << (n - 16)) | (b >> (32 - n))
            cf = (b >> (32 - n)) & 1
        r &= 0xffff
        if ar_store(c, u, sz, addr, r):
            return R_EXC
        of = ((r ^ a) >> 15) & 1
        set_arith_flags(c, cf | szp_flags(r, sz) | (of << 11))
        return R_NEXT
    r &= SZ_MASK[sz]
    if ar_store(c, u, sz, addr, r):
        return R_EXC
    # CF is bit s-n of dest, OF (count 1) = sign change = MSB(r) ^ CF: LF_SHL
    lf_set(c, LF_SHL, sz, a, n, r)
    return R_NEXT

cdef int op_shrd(Cpu* c, const Uop* u) noexcept nogil:
    """0F AC (imm8) / 0F AD (CL): shift dest right, filling from the reg operand."""
    cdef uint32_t sz = u.osz, s = sz * 8
    cdef uint32_t n = <uint32_t>((u.imm if u.opc == 0xac else c.r[1]) & (0x3f if sz == 8 else 0x1f))
    cdef uint64_t a, b = rget(c, u.reg, sz), r, addr = 0, cf, of, x
    if ar_load_rmw(c, u, sz, &addr, &a):
        return R_EXC
    if n == 0:
        return sh_nop(c, u)
    if n <= s:
        r = (a >> n) | (b << (s - n))
        cf = (a >> (n - 1)) & 1
    elif c.vendor_intel:
        # 16-bit operand, count 17..31: undefined (SDM). Intel shifts the
        # 48-bit dest:src:dest right (src:dest in the low 32 bits, dest again above)
        x = (a << 32) | (b << 16) | a
        r = x >> n
        cf = (x >> (n - 1)) & 1
    else:
        # AMD rotates the source in; CF is the last bit shifted out
        r = (b >> (n - 16)) | (b << (32 - n))
        cf = (b >> (n - 17)) & 1
    r &= SZ_MASK[sz]
    if ar_store(c, u, sz, addr, r):
        return R_EXC
    of = ((r ^ a) >> (s - 1)) & 1
    set_arith_flags(c, cf | szp_flags(r, sz) | (of << 11))
    return R_NEXT

cdef int fix_shift1(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """D0/D1: the count is 1."""
    u.imm = 1
    return 0

cdef void init_shift():
    cdef int opc
    cdef uint32_t fb
    cdef int ik
    for opc in (0xc0, 0xc1, 0xd0, 0xd1, 0xd2, 0xd3):
        fb = D_BYTE if (opc & 1) == 0 else 0
        ik = I_8 if opc < 0xd0 else I_NONE
        grp(0, opc, 0, op_rol, fb, ik)
        grp(0, opc, 1, op_ror, fb, ik)
        grp(0, opc, 2, op_rcl, fb, ik)
        grp(0, opc, 3, op_rcr, fb, ik)
        grp(0, opc, 4, op_shl, fb, ik)
        grp(0, opc, 5, op_shr, fb, ik)
        grp(0, opc, 6, op_shl, fb, ik)      # SAL alias
        grp(0, opc, 7, op_sar, fb, ik)
    opfix(0, 0xd0, fix_shift1)
    opfix(0, 0xd1, fix_shift1)
    op(1, 0xa4, op_shld, D_MODRM, I_8)
    op(1, 0xa5, op_shld, D_MODRM)
    op(1, 0xac, op_shrd, D_MODRM, I_8)
    op(1, 0xad, op_shrd, D_MODRM)
