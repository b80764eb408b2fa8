# String instructions MOVS STOS LODS SCAS CMPS (SDM Vol. 2, and Vol. 1 7.3.9)
# with REP / REPE / REPNE.
#
# Source: seg:rSI (default DS, FS/GS override honoured), destination ES:rDI
# (base 0 in 64-bit mode, never overridden). The 67 prefix makes rSI, rDI
# and rCX 32-bit: they are read as ESI/EDI/ECX and written zero-extended.
#
# A REP form ends its block and runs at most a bounded chunk of iterations per
# execution; if the count is not exhausted it returns with RIP at itself, so
# the run loop's budget, stop requests and faults see a consistent state
# (RSI, RDI and RCX always describe the iterations completed). With DF=0 the
# common cases copy, fill and scan whole page runs through TLB host pointers.

from libc.string cimport memmove, memchr

cdef enum:
    REP_CHUNK_BYTES = 32768   # bytes (elements x size) per execution of a REP form

cdef inline uint64_t str_am(const Uop* u) noexcept nogil:
    return 0xffffffffULL if u.asz32 else 0xffffffffffffffffULL

cdef inline uint32_t sz_shift(uint32_t sz) noexcept nogil:
    # 1 -> 0, 2 -> 1, 4 -> 2, 8 -> 3
    return (sz >> 1) - (sz >> 3)

cdef inline uint64_t str_step(Cpu* c, uint32_t sz) noexcept nogil:
    if c.rflags & F_DF:
        return <uint64_t>(-<int64_t>sz)
    return sz

cdef inline int rep_done(Cpu* c, const Uop* u, uint64_t am) noexcept nogil:
    """End of a chunk: retire when the count ran out, else run it again."""
    if c.r[1] & am:
        c.rip = u.rip
    else:
        c.rip = u.rip_next
    return R_BRANCH

cdef inline uint64_t src_room(const Uop* u, uint64_t s, uint64_t off) noexcept nogil:
    """Bytes from linear source address s to the end of its page, and (with 67
    and a segment base that is not page aligned) to the 4 GiB offset wrap."""
    cdef uint64_t room = 0x1000 - (s & 0xfff)
    if u.asz32 and 0x100000000ULL - off < room:
        room = 0x100000000ULL - off
    return room

cdef inline int rep_zero(Cpu* c, const Uop* u, int si, int di) noexcept nogil:
    """A REP form with a zero count does nothing, except that an Intel CPU
    still writes ECX with a 32-bit address size, clearing RCX[63:32], and so
    do its fast-string forms with the index registers they advance (MOVS:
    RSI and RDI, STOS: RDI; si, di). AMD leaves them alone; the SDM does not
    say."""
    if u.asz32 and c.vendor_intel:
        c.r[1] &= 0xffffffffULL
        if si:
            c.r[6] &= 0xffffffffULL
        if di:
            c.r[7] &= 0xffffffffULL
    c.rip = u.rip_next
    return R_BRANCH

# ---- single iterations ----

cdef int op_movs(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t am = str_am(u), v, step
    cdef uint32_t sz = u.osz
    if mem_read(c, (c.r[6] & am) + c.seg_base[u.seg], sz, &v):
        return R_EXC
    if mem_write(c, c.r[7] & am, sz, v):
        return R_EXC
    step = str_step(c, sz)
    c.r[6] = (c.r[6] + step) & am
    c.r[7] = (c.r[7] + step) & am
    return R_NEXT

cdef int op_stos(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t am = str_am(u)
    cdef uint32_t sz = u.osz
    if mem_write(c, c.r[7] & am, sz, c.r[0]):
        return R_EXC
    c.r[7] = (c.r[7] + str_step(c, sz)) & am
    return R_NEXT

cdef int op_lods(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t am = str_am(u), v
    cdef uint32_t sz = u.osz
    if mem_read(c, (c.r[6] & am) + c.seg_base[u.seg], sz, &v):
        return R_EXC
    rset(c, 0, sz, v)
    c.r[6] = (c.r[6] + str_step(c, sz)) & am
    return R_NEXT

cdef int op_scas(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t am = str_am(u), a, b
    cdef uint32_t sz = u.osz
    if mem_read(c, c.r[7] & am, sz, &b):
        return R_EXC
    a = c.r[0] & SZ_MASK[sz]
    lf_set(c, LF_SUB, sz, a, b, a - b)
    c.r[7] = (c.r[7] + str_step(c, sz)) & am
    return R_NEXT

cdef int op_cmps(Cpu* c, const Uop* u) noexcept nogil:
    """Compares [rSI] with [rDI]: flags of [rSI] - [rDI]."""
    cdef uint64_t am = str_am(u), a, b, step
    cdef uint32_t sz = u.osz
    if mem_read(c, (c.r[6] & am) + c.seg_base[u.seg], sz, &a):
        return R_EXC
    if mem_read(c, c.r[7] & am, sz, &b):
        return R_EXC
    lf_set(c, LF_SUB, sz, a, b, a - b)
    step = str_step(c, sz)
    c.r[6] = (c.r[6] + step) & am
    c.r[7] = (c.r[7] + step) & am
    return R_NEXT

# ---- repeated forms ----

cdef int op_rep_movs(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t am = str_am(u)
    cdef uint64_t cnt = c.r[1] & am
    cdef uint32_t sz = u.osz
    cdef uint32_t sh = sz_shift(sz)
    cdef uint64_t lim, k, nb, s, d, v, room, i, step
    cdef uint64_t sbase = c.seg_base[u.seg]
    cdef uint8_t* ps
    cdef uint8_t* pd
    cdef int fwd = not (c.rflags & F_DF)
    if cnt == 0:
        return rep_zero(c, u, 1, 1)
    lim = REP_CHUNK_BYTES >> sh
    if lim > cnt:
        lim = cnt
    step = str_step(c, sz)
    while lim:
        s = (c.r[6] & am) + sbase
        d = c.r[7] & am
        if fwd:
            ps = tlb_host_r(c, s)
            pd = tlb_host_w(c, d)
            if ps != NULL and pd != NULL:
                room = src_room(u, s, c.r[6] & am)
                if 0x1000 - (d & 0xfff) < room:
                    room = 0x1000 - (d & 0xfff)
                k = room >> sh
                if k > lim:
                    k = lim
                if k:
                    nb = k << sh
                    if pd > ps and pd < ps + nb:
                        # the destination overlaps the source ahead of it: the
                        # element-by-element result differs from memmove
                        for i in range(k):
                            store_le(pd + (i << sh), sz, load_le(ps + (i << sh), sz))
                    else:
                        memmove(pd, ps, nb)
                    c.r[6] = (c.r[6] + nb) & am
                    c.r[7] = (c.r[7] + nb) & am
                    c.r[1] = (c.r[1] - k) & am
                    lim -= k
                    continue
        elif (s & 0xfff) + sz <= 0x1000 and (d & 0xfff) + sz <= 0x1000:
            # DF=1: element by element downwards to the nearer page start
            ps = tlb_host_r(c, s)
            pd = tlb_host_w(c, d)
            if ps != NULL and pd != NULL:
                k = (s & 0xfff) >> sh
                if (d & 0xfff) >> sh < k:
                    k = (d & 0xfff) >> sh
                if u.asz32 and (c.r[6] & am) >> sh < k:
                    k = (c.r[6] & am) >> sh
                k += 1
                if k > lim:
                    k = lim
                for i in range(k):
                    store_le(pd - (i << sh), sz, load_le(ps - (i << sh), sz))
                nb = k << sh
                c.r[6] = (c.r[6] - nb) & am
                c.r[7] = (c.r[7] - nb) & am
                c.r[1] = (c.r[1] - k) & am
                lim -= k
                continue
        # one element the slow way (page crossing, TLB miss, code page)
        if mem_read(c, s, sz, &v):
            return R_EXC
        if mem_write(c, d, sz, v):
            return R_EXC
        c.r[6] = (c.r[6] + step) & am
        c.r[7] = (c.r[7] + step) & am
        c.r[1] = (c.r[1] - 1) & am
        lim -= 1
    return rep_done(c, u, am)

cdef int op_rep_stos(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t am = str_am(u)
    cdef uint64_t cnt = c.r[1] & am
    cdef uint32_t sz = u.osz
    cdef uint32_t sh = sz_shift(sz)
    cdef uint64_t lim, k, nb, d, room, i, step
    cdef uint64_t v = c.r[0] & SZ_MASK[sz]
    cdef uint8_t* pd
    cdef int fwd = not (c.rflags & F_DF)
    if cnt == 0:
        return rep_zero(c, u, 0, 1)
    lim = REP_CHUNK_BYTES >> sh
    if lim > cnt:
        lim = cnt
    step = str_step(c, sz)
    while lim:
        d = c.r[7] & am
        if fwd:
            pd = tlb_host_w(c, d)
            if pd != NULL:
                room = 0x1000 - (d & 0xfff)
                k = room >> sh
                if k > lim:
                    k = lim
                if k:
                    nb = k << sh
                    if sz == 1 or v == 0:
                        memset(pd, <int>v, nb)
                    elif sz == 8:
                        for i in range(k):
                            memcpy(pd + (i << 3), &v, 8)
                    else:
                        for i in range(k):
                            store_le(pd + (i << sh), sz, v)
                    c.r[7] = (c.r[7] + nb) & am
                    c.r[1] = (c.r[1] - k) & am
                    lim -= k
                    continue
        elif (d & 0xfff) + sz <= 0x1000:
            pd = tlb_host_w(c, d)
            if pd != NULL:
                k = ((d & 0xfff) >> sh) + 1
                if k > lim:
                    k = lim
                for i in range(k):
                    store_le(pd - (i << sh), sz, v)
                nb = k << sh
                c.r[7] = (c.r[7] - nb) & am
                c.r[1] = (c.r[1] - k) & am
                lim -= k
                continue
        if mem_write(c, d, sz, v):
            return R_EXC
        c.r[7] = (c.r[7] + step) & am
        c.r[1] = (c.r[1] - 1) & am
        lim -= 1
    return rep_done(c, u, am)

cdef int op_rep_lods(Cpu* c, const Uop* u) noexcept nogil:
    """Rare, but every element is read (and may fault); rAX keeps the last."""
    cdef uint64_t am = str_am(u)
    cdef uint64_t cnt = c.r[1] & am
    cdef uint32_t sz = u.osz
    cdef uint64_t lim, v, step
    cdef uint64_t sbase = c.seg_base[u.seg]
    if cnt == 0:
        return rep_zero(c, u, 0, 0)
    lim = REP_CHUNK_BYTES >> sz_shift(sz)
    if lim > cnt:
        lim = cnt
    step = str_step(c, sz)
    while lim:
        if mem_read(c, (c.r[6] & am) + sbase, sz, &v):
            return R_EXC
        rset(c, 0, sz, v)
        c.r[6] = (c.r[6] + step) & am
        c.r[1] = (c.r[1] - 1) & am
        lim -= 1
    return rep_done(c, u, am)

cdef int op_rep_scas(Cpu* c, const Uop* u) noexcept nogil:
    """REPE (F3) repeats while equal, REPNE (F2) while not equal."""
    cdef uint64_t am = str_am(u)
    cdef uint64_t cnt = c.r[1] & am
    cdef uint32_t sz = u.osz
    cdef uint32_t sh = sz_shift(sz)
    cdef uint64_t lim, k, d, room, i, j, nb, pat, step, b = 0
    cdef uint64_t a = c.r[0] & SZ_MASK[sz]
    cdef int want_eq = u.rep == REP_F3
    cdef int stop = 0
    cdef uint8_t* pd
    cdef const uint8_t* hit
    if cnt == 0:
        return rep_zero(c, u, 0, 0)
    lim = REP_CHUNK_BYTES >> sh
    if lim > cnt:
        lim = cnt
    step = str_step(c, sz)
    while lim:
        d = c.r[7] & am
        if step == sz:
            pd = tlb_host_r(c, d)
            if pd != NULL:
                room = 0x1000 - (d & 0xfff)
                k = room >> sh
                if k > lim:
                    k = lim
                if k:
                    if sz == 1 and not want_eq:
                        hit = <const uint8_t*>memchr(pd, <int>a, k)
                        if hit != NULL:
                            i = <uint64_t>(hit - pd)
                            stop = 1
                        else:
                            i = k - 1
                        b = pd[i]
                    else:
                        i = 0
                        if want_eq:
                            # skip the run equal to rAX a word at a time
                            pat = a
                            if sz == 1:
                                pat = a * 0x0101010101010101ULL
                            elif sz == 2:
                                pat = a * 0x0001000100010001ULL
                            elif sz == 4:
                                pat = a | (a << 32)
                            nb = k << sh
                            j = 0
                            while j + 8 <= nb and load_le(pd + j, 8) == pat:
                                j += 8
                            i = j >> sh
                            if i == k:
                                i = k - 1
                        while True:
                            b = load_le(pd + (i << sh), sz)
                            if (a == b) != want_eq:
                                stop = 1
                                break
                            i += 1
                            if i == k:
                                i -= 1
                                break
                    # i + 1 elements done; the last compared is b
                    lf_set(c, LF_SUB, sz, a, b, a - b)
                    c.r[7] = (c.r[7] + ((i + 1) << sh)) & am
                    c.r[1] = (c.r[1] - (i + 1)) & am
                    if stop:
                        c.rip = u.rip_next
                        return R_BRANCH
                    lim -= i + 1
                    continue
        if mem_read(c, d, sz, &b):
            return R_EXC
        lf_set(c, LF_SUB, sz, a, b, a - b)
        c.r[7] = (c.r[7] + step) & am
        c.r[1] = (c.r[1] - 1) & am
        if (a == b) != want_eq:
            c.rip = u.rip_next
            return R_BRANCH
        lim -= 1
    return rep_done(c, u, am)

cdef int op_rep_cmps(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t am = str_am(u)
    cdef uint64_t cnt = c.r[1] & am
    cdef uint32_t sz = u.osz
    cdef uint32_t sh = sz_shift(sz)
    cdef uint64_t lim, k, s, d, room, i, j, nb, step, a = 0, b = 0
    cdef uint64_t sbase = c.seg_base[u.seg]
    cdef int want_eq = u.rep == REP_F3
    cdef int stop = 0
    cdef uint8_t* ps
    cdef uint8_t* pd
    if cnt == 0:
        return rep_zero(c, u, 0, 0)
    lim = REP_CHUNK_BYTES >> sh
    if lim > cnt:
        lim = cnt
    step = str_step(c, sz)
    while lim:
        s = (c.r[6] & am) + sbase
        d = c.r[7] & am
        if step == sz:
            ps = tlb_host_r(c, s)
            pd = tlb_host_r(c, d)
            if ps != NULL and pd != NULL:
                room = src_room(u, s, c.r[6] & am)
                if 0x1000 - (d & 0xfff) < room:
                    room = 0x1000 - (d & 0xfff)
                k = room >> sh
                if k > lim:
                    k = lim
                if k:
                    i = 0
                    if want_eq:
                        # skip the equal prefix a word at a time
                        nb = k << sh
                        j = 0
                        while j + 8 <= nb and load_le(ps + j, 8) == load_le(pd + j, 8):
                            j += 8
                        i = j >> sh
                        if i == k:
                            i = k - 1     # all equal: the last element is compared below
                    while True:
                        a = load_le(ps + (i << sh), sz)
                        b = load_le(pd + (i << sh), sz)
                        if (a == b) != want_eq:
                            stop = 1
                            break
                        i += 1
                        if i == k:
                            i -= 1
                            break
                    lf_set(c, LF_SUB, sz, a, b, a - b)
                    c.r[6] = (c.r[6] + ((i + 1) << sh)) & am
                    c.r[7] = (c.r[7] + ((i + 1) << sh)) & am
                    c.r[1] = (c.r[1] - (i + 1)) & am
                    if stop:
                        c.rip = u.rip_next
                        return R_BRANCH
                    lim -= i + 1
                    continue
        if mem_read(c, s, sz, &a):
            return R_EXC
        if mem_read(c, d, sz, &b):
            return R_EXC
        lf_set(c, LF_SUB, sz, a, b, a - b)
        c.r[6] = (c.r[6] + step) & am
        c.r[7] = (c.r[7] + step) & am
        c.r[1] = (c.r[1] - 1) & am
        if (a == b) != want_eq:
            c.rip = u.rip_next
            return R_BRANCH
        lim -= 1
    return rep_done(c, u, am)

cdef int fix_str_seg(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """String forms have no ModRM: take the source segment override here."""
    u.seg = d.seg
    return 0

cdef void reg_string(int opc, uop_fn plain, uop_fn rep) noexcept:
    """Even opcode: byte; odd: word/dword/qword. F3 and F2 both repeat
    (REPNE on MOVS/STOS/LODS repeats like REP on the hardware)."""
    cdef int fl
    for fl in range(2):
        op(0, opc + fl, plain, D_BYTE if fl == 0 else 0, I_NONE, 0, 0x3)
        op(0, opc + fl, rep, (D_BYTE if fl == 0 else 0) | D_END, I_NONE, 0, 0xc)
        opfix(0, opc + fl, fix_str_seg)

cdef void init_string():
    reg_string(0xa4, op_movs, op_rep_movs)
    reg_string(0xa6, op_cmps, op_rep_cmps)
    reg_string(0xaa, op_stos, op_rep_stos)
    reg_string(0xac, op_lods, op_rep_lods)
    reg_string(0xae, op_scas, op_rep_scas)
