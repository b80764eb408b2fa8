# General-purpose register access by operand size.
# 32-bit writes zero-extend to 64 bits; 8- and 16-bit writes merge
# (SDM Vol. 1, 3.4.1.1).

cdef uint64_t[9] SZ_MASK
SZ_MASK[:] = [0, 0xff, 0xffff, 0, 0xffffffffULL, 0, 0, 0, 0xffffffffffffffffULL]
cdef uint64_t[9] SZ_SIGN
SZ_SIGN[:] = [0, 0x80, 0x8000, 0, 0x80000000ULL, 0, 0, 0, 0x8000000000000000ULL]

cdef inline uint64_t szmask(uint32_t sz) noexcept nogil:
    return SZ_MASK[sz]

cdef inline int64_t sext(uint64_t v, uint32_t sz) noexcept nogil:
    if sz == 1:
        return <int64_t><int8_t>v
    elif sz == 2:
        return <int64_t><int16_t>v
    elif sz == 4:
        return <int64_t><int32_t>v
    return <int64_t>v

cdef inline uint64_t get8(Cpu* c, uint32_t r) noexcept nogil:
    if r < 16:
        return c.r[r] & 0xff
    if r == NOREG:
        return 0
    return (c.r[r - 17] >> 8) & 0xff

cdef inline void set8(Cpu* c, uint32_t r, uint64_t v) noexcept nogil:
    if r < 16:
        c.r[r] = (c.r[r] & ~(<uint64_t>0xff)) | (v & 0xff)
    elif r > NOREG:
        c.r[r - 17] = (c.r[r - 17] & ~(<uint64_t>0xff00)) | ((v & 0xff) << 8)

cdef inline uint64_t rget(Cpu* c, uint32_t r, uint32_t sz) noexcept nogil:
    if sz == 8:
        return c.r[r]
    if sz == 4:
        return c.r[r] & 0xffffffffULL
    if sz == 2:
        return c.r[r] & 0xffff
    return get8(c, r)

cdef inline void rset(Cpu* c, uint32_t r, uint32_t sz, uint64_t v) noexcept nogil:
    if sz == 8:
        c.r[r] = v
    elif sz == 4:
        c.r[r] = v & 0xffffffffULL
    elif sz == 2:
        c.r[r] = (c.r[r] & ~(<uint64_t>0xffff)) | (v & 0xffff)
    else:
        set8(c, r, v)
