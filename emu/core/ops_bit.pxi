# Sign extension of rAX (CBW/CWDE/CDQE, CWD/CDQ/CQO), BSWAP, BT/BTS/BTR/BTC,
# BSF/BSR, POPCNT, LZCNT, TZCNT, ADCX/ADOX, MOVBE, CRC32. SDM Vol. 2.

cdef extern from *:
    """
    static inline int emu_ctz64(unsigned long long v) { return __builtin_ctzll(v); }
    static inline int emu_clz64(unsigned long long v) { return __builtin_clzll(v); }
    static inline int emu_popcnt64(unsigned long long v) { return __builtin_popcountll(v); }
    static inline unsigned long long emu_bswap64(unsigned long long v) { return __builtin_bswap64(v); }
    static inline unsigned int emu_bswap32(unsigned int v) { return __builtin_bswap32(v); }
    static inline unsigned short emu_bswap16(unsigned short v) { return __builtin_bswap16(v); }
    """
    int emu_ctz64(uint64_t v) nogil
    int emu_clz64(uint64_t v) nogil
    int emu_popcnt64(uint64_t v) nogil
    uint64_t emu_bswap64(uint64_t v) nogil
    uint32_t emu_bswap32(uint32_t v) nogil
    uint16_t emu_bswap16(uint16_t v) nogil

# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as CRC32 computes it
cdef uint32_t[256] CRC32C_TAB
for _i in range(256):
    _v = _i
    for _j in range(8):
        _v = (_v >> 1) ^ (0x82F63B78 if _v & 1 else 0)
    CRC32C_TAB[_i] = _v

# ---- CBW / CWD families ----

cdef int op_cbw(Cpu* c, const Uop* u) noexcept nogil:
    """98: CBW / CWDE / CDQE."""
    if u.osz == 8:
        c.r[0] = <uint64_t><int64_t><int32_t>c.r[0]
    elif u.osz == 4:
        c.r[0] = (<uint64_t><int64_t><int16_t>c.r[0]) & 0xffffffffULL
    else:
        rset(c, 0, 2, <uint64_t><int64_t><int8_t>c.r[0])
    return R_NEXT

cdef int op_cwd(Cpu* c, const Uop* u) noexcept nogil:
    """99: CWD / CDQ / CQO: rDX = the sign of rAX."""
    cdef uint32_t sz = u.osz
    rset(c, 2, sz, 0 - ((c.r[0] & SZ_SIGN[sz]) != 0))
    return R_NEXT

cdef int op_bswap(Cpu* c, const Uop* u) noexcept nogil:
    """0F C8+r. The 16-bit form is undefined; it clears the register's low
    word (as AMD and Intel hardware do)."""
    if u.osz == 8:
        c.r[u.reg] = emu_bswap64(c.r[u.reg])
    elif u.osz == 4:
        c.r[u.reg] = emu_bswap32(<uint32_t>c.r[u.reg])
    else:
        rset(c, u.reg, 2, 0)
    return R_NEXT

# ---- BT BTS BTR BTC ----

cdef inline int bt_common(Cpu* c, const Uop* u, uint32_t kind, uint64_t off, int regoff) noexcept nogil:
    """kind: 0 BT, 1 BTS, 2 BTR, 3 BTC. With a memory operand and a register
    bit offset, the offset is signed and may select any bit around the
    operand: the access is the operand-sized unit holding that bit."""
    cdef uint32_t sz = u.osz
    cdef uint64_t addr = 0, v, bit, cf
    cdef int64_t so
    if u.mem:
        addr = ea_of(c, u)
        if regoff:
            so = sext(off, sz)
            addr += (<uint64_t>(so >> 3)) & ~(<uint64_t>(sz - 1))
        bit = off & (sz * 8 - 1)
        if kind == 0:
            if mem_read(c, addr, sz, &v):
                return R_EXC
        elif mem_read_rmw(c, addr, sz, &v):
            return R_EXC
    else:
        bit = off & (sz * 8 - 1)
        v = rget(c, u.rm, sz)
    cf = (v >> bit) & 1
    if kind != 0:
        if kind == 1:
            v |= (<uint64_t>1) << bit
        elif kind == 2:
            v &= ~((<uint64_t>1) << bit)
        else:
            v ^= (<uint64_t>1) << bit
        if u.mem:
            if mem_write(c, addr, sz, v):
                return R_EXC
        else:
            rset(c, u.rm, sz, v)
    # CF = the bit; ZF unchanged; OF SF AF PF undefined (kept)
    set_arith_flags(c, (flags_arith(c) & ~(<uint64_t>F_CF)) | cf)
    return R_NEXT

cdef int op_bt_r(Cpu* c, const Uop* u) noexcept nogil:
    return bt_common(c, u, 0, rget(c, u.reg, u.osz), 1)

cdef int op_bts_r(Cpu* c, const Uop* u) noexcept nogil:
    return bt_common(c, u, 1, rget(c, u.reg, u.osz), 1)

cdef int op_btr_r(Cpu* c, const Uop* u) noexcept nogil:
    return bt_common(c, u, 2, rget(c, u.reg, u.osz), 1)

cdef int op_btc_r(Cpu* c, const Uop* u) noexcept nogil:
    return bt_common(c, u, 3, rget(c, u.reg, u.osz), 1)

cdef int op_bt_imm(Cpu* c, const Uop* u) noexcept nogil:
    """0F BA /4../7: u.sub is /n."""
    return bt_common(c, u, u.sub - 4, u.imm, 0)

# ---- bit scans and counts ----

cdef int op_bsf(Cpu* c, const Uop* u) noexcept nogil:
    """0F BC. A zero source sets ZF and leaves the destination unchanged
    (not even zero-extended), as hardware does; CF OF SF AF PF undefined (0)."""
    cdef uint64_t v
    if ar_load(c, u, u.osz, &v):
        return R_EXC
    if v == 0:
        set_arith_flags(c, F_ZF)
        return R_NEXT
    rset(c, u.reg, u.osz, <uint64_t>emu_ctz64(v))
    set_arith_flags(c, 0)
    return R_NEXT

cdef int op_bsr(Cpu* c, const Uop* u) noexcept nogil:
    """0F BD."""
    cdef uint64_t v
    if ar_load(c, u, u.osz, &v):
        return R_EXC
    if v == 0:
        set_arith_flags(c, F_ZF)
        return R_NEXT
    rset(c, u.reg, u.osz, <uint64_t>(63 - emu_clz64(v)))
    set_arith_flags(c, 0)
    return R_NEXT

cdef int op_tzcnt(Cpu* c, const Uop* u) noexcept nogil:
    """F3 0F BC: CF = source is 0, ZF = result is 0."""
    cdef uint64_t v, r
    if ar_load(c, u, u.osz, &v):
        return R_EXC
    if v == 0:
        rset(c, u.reg, u.osz, u.osz * 8)
        set_arith_flags(c, F_CF)
        return R_NEXT
    r = <uint64_t>emu_ctz64(v)
    rset(c, u.reg, u.osz, r)
    set_arith_flags(c, F_ZF if r == 0 else 0)
    return R_NEXT

cdef int op_lzcnt(Cpu* c, const Uop* u) noexcept nogil:
    """F3 0F BD: CF = source is 0, ZF = result is 0."""
    cdef uint64_t v, r
    if ar_load(c, u, u.osz, &v):
        return R_EXC
    if v == 0:
        rset(c, u.reg, u.osz, u.osz * 8)
        set_arith_flags(c, F_CF)
        return R_NEXT
    r = <uint64_t>(emu_clz64(v) - (64 - 8 * <int>u.osz))
    rset(c, u.reg, u.osz, r)
    set_arith_flags(c, F_ZF if r == 0 else 0)
    return R_NEXT

cdef int op_popcnt(Cpu* c, const Uop* u) noexcept nogil:
    """F3 0F B8: all status flags cleared, except ZF = source is 0."""
    cdef uint64_t v
    if ar_load(c, u, u.osz, &v):
        return R_EXC
    rset(c, u.reg, u.osz, <uint64_t>emu_popcnt64(v))
    set_arith_flags(c, F_ZF if v == 0 else 0)
    return R_NEXT

# ---- ADCX / ADOX ----

cdef inline int adx_common(Cpu* c, const Uop* u, uint64_t fbit) noexcept nogil:
    """Unsigned add with carry in and out through one flag (CF for ADCX, OF
    for ADOX); the other flags are unchanged."""
    cdef uint32_t sz = u.osz
    cdef uint64_t a = rget(c, u.reg, sz), b, r, cin, cout, f
    if ar_load(c, u, sz, &b):
        return R_EXC
    f = flags_arith(c)
    cin = (f & fbit) != 0
    if sz == 8:
        r = a + b + cin
        cout = (r < a) or (cin and r == a)
    else:
        r = a + b + cin
        cout = r >> 32
        r &= 0xffffffffULL
    c.r[u.reg] = r
    set_arith_flags(c, (f & ~fbit) | (fbit if cout else 0))
    return R_NEXT

cdef int op_adcx(Cpu* c, const Uop* u) noexcept nogil:
    return adx_common(c, u, F_CF)

cdef int op_adox(Cpu* c, const Uop* u) noexcept nogil:
    return adx_common(c, u, F_OF)

cdef int fix_adx(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """66 is the mandatory prefix of ADCX, not an operand-size override."""
    u.osz = 8 if d.rex & 8 else 4
    return 0

# ---- MOVBE, CRC32 ----

cdef inline uint64_t bswap_sz(uint64_t v, uint32_t sz) noexcept nogil:
    if sz == 8:
        return emu_bswap64(v)
    if sz == 4:
        return emu_bswap32(<uint32_t>v)
    return emu_bswap16(<uint16_t>v)

cdef int op_movbe_load(Cpu* c, const Uop* u) noexcept nogil:
    """0F 38 F0: reg = byte-swapped m."""
    cdef uint64_t v
    if mem_read(c, ea_of(c, u), u.osz, &v):
        return R_EXC
    rset(c, u.reg, u.osz, bswap_sz(v, u.osz))
    return R_NEXT

cdef int op_movbe_store(Cpu* c, const Uop* u) noexcept nogil:
    """0F 38 F1: m = byte-swapped reg."""
    if mem_write(c, ea_of(c, u), u.osz, bswap_sz(rget(c, u.reg, u.osz), u.osz)):
        return R_EXC
    return R_NEXT

cdef int op_crc32(Cpu* c, const Uop* u) noexcept nogil:
    """F2 0F 38 F0 (r/m8) / F1 (r/m16/32/64): accumulate CRC-32C into the
    low 32 bits of reg (a 64-bit destination is zero-extended)."""
    cdef uint32_t n = 1 if u.opc == 0xf0 else u.osz, i
    cdef uint64_t v
    cdef uint32_t crc = <uint32_t>c.r[u.reg]
    if ar_load(c, u, n, &v):
        return R_EXC
    for i in range(n):
        crc = CRC32C_TAB[(crc ^ <uint32_t>v) & 0xff] ^ (crc >> 8)
        v >>= 8
    c.r[u.reg] = crc
    return R_NEXT

cdef void init_bit():
    cdef int k
    op(0, 0x98, op_cbw, 0)
    op(0, 0x99, op_cwd, 0)
    for k in range(8):
        op(1, 0xc8 + k, op_bswap, D_OPREG)
    op(1, 0xa3, op_bt_r, D_MODRM)
    op(1, 0xab, op_bts_r, D_MODRM | D_LOCK)
    op(1, 0xb3, op_btr_r, D_MODRM | D_LOCK)
    op(1, 0xbb, op_btc_r, D_MODRM | D_LOCK)
    grp(1, 0xba, 4, op_bt_imm, 0, I_8, 0)
    grp(1, 0xba, 5, op_bt_imm, D_LOCK, I_8, 1)
    grp(1, 0xba, 6, op_bt_imm, D_LOCK, I_8, 1)
    grp(1, 0xba, 7, op_bt_imm, D_LOCK, I_8, 1)
    # BSF/BSR under no prefix, 66 and F2; F3 makes them TZCNT/LZCNT
    op(1, 0xbc, op_bsf, D_MODRM, I_NONE, 0, 0xb)
    op(1, 0xbd, op_bsr, D_MODRM, I_NONE, 0, 0xb)
    op(1, 0xbc, op_tzcnt, D_MODRM, I_NONE, 0, 0x4)
    op(1, 0xbd, op_lzcnt, D_MODRM, I_NONE, 0, 0x4)
    op(1, 0xb8, op_popcnt, D_MODRM, I_NONE, 0, 0x4)
    op(2, 0xf6, op_adcx, D_MODRM, I_NONE, 0, 0x2)
    op(2, 0xf6, op_adox, D_MODRM, I_NONE, 0, 0x4)
    opfix(2, 0xf6, fix_adx, 0x6)
    op(2, 0xf0, op_movbe_load, D_MODRM | D_MEMONLY, I_NONE, 0, 0x3)
    op(2, 0xf1, op_movbe_store, D_MODRM | D_MEMONLY, I_NONE, 0, 0x3)
    op(2, 0xf0, op_crc32, D_MODRM | D_BYTE_RM, I_NONE, 0, 0x8)
    op(2, 0xf1, op_crc32, D_MODRM, I_NONE, 0, 0x8)
