# AVX2 gathers (SDM Vol. 2, VPGATHERDD/DQ/QD/QQ, VGATHERDPS/DPD/QPS/QPD):
# VSIB addressing (the SIB index names a vector register of dword or qword
# indexes), a mask register (VEX.vvvv) whose elements with the top bit set
# are loaded. Elements are gathered in order; each completed element's mask
# is cleared, so a fault leaves the destination and mask partially updated
# and the instruction can restart where it stopped (the fault is taken at
# the instruction with the elements before it done). At the end the whole
# mask is zero; VEX.128 forms (and the 128-bit results of the qword-index
# dword forms) zero the rest of both registers.

cdef int fix_gather(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """VSIB: ModRM.rm must be 100 (a SIB follows); the SIB index is a vector
    register (4 included); dest, index and mask must be three different
    registers (#UD)."""
    cdef uint32_t idx
    if d.mod == 3 or d.rmf != 4:
        return raise_ud(c)
    idx = ((d.sib >> 3) & 7) | ((d.rex & 2) << 2)
    if idx == u.reg or idx == u.vvvv or u.reg == u.vvvv:
        return raise_ud(c)
    u.index = idx
    u.is4 = idx
    return 0

cdef int op_vgather(Cpu* c, const Uop* u) noexcept nogil:
    """38 90 VPGATHERDD/DQ, 91 VPGATHERQD/QQ, 92 VGATHERDPS/DPD, 93
    VGATHERQPS/QPD (VEX.W: qword data)."""
    cdef uint32_t ds = 8 if u.vexw else 4          # data element
    cdef uint32_t isz = 8 if u.opc & 1 else 4       # index element
    cdef uint32_t nidx = (32 if u.vl else 16) // isz, ndata = (32 if u.vl else 16) // ds
    cdef uint32_t n = nidx if nidx < ndata else ndata, j, dq
    cdef uint8_t* dst = <uint8_t*>&c.xmm[u.reg][0]
    cdef uint8_t* msk = <uint8_t*>&c.xmm[u.vvvv][0]
    cdef uint8_t* ix = <uint8_t*>&c.xmm[u.is4][0]
    cdef uint64_t base = <uint64_t>u.disp + c.r[u.base], a, v
    cdef int64_t off
    cdef int32_t i32
    if avx_check(c):
        return R_EXC
    # the register's width that holds data and mask: n elements of ds bytes
    dq = (n * ds + 7) >> 3
    for j in range(n):
        if not (msk[j * ds + ds - 1] & 0x80):
            continue
        if isz == 4:
            memcpy(&i32, ix + 4 * j, 4)
            off = i32
        else:
            memcpy(&off, ix + 8 * j, 8)
        a = base + (<uint64_t>off << u.scale)
        if u.asz32:
            a &= 0xffffffffULL
        a += c.seg_base[u.seg]
        if mem_read(c, a, ds, &v):
            # partial completion: what is done stays done
            vzero_upper(c, u.reg, dq)
            vzero_upper(c, u.vvvv, dq)
            return R_EXC
        memcpy(dst + j * ds, &v, ds)
        memset(msk + j * ds, 0, ds)
    vzero_upper(c, u.reg, dq)        # the qword-index dword forms fill half a register
    vzero_upper(c, u.vvvv, 0)
    return R_NEXT

cdef void init_avx2():
    cdef int k
    if not (core_features() & FEAT_AVX2):
        return
    for k in range(0x90, 0x94):
        vop(2, 1, k, op_vgather, D_MODRM | D_MEMONLY, 0, FEAT_AVX2, 0, I_NONE, 0)
        opfix_v(2, 1, k, fix_gather)
