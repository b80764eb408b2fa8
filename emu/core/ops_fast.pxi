# Specialized handlers for the hottest instruction forms. After decoding,
# specialize() swaps a generic handler for one without size or operand-kind
# switches when the uop matches (same semantics: the differential tests run
# through these). Profile first: perf/bench.py and `perf record`.

cdef inline void wr32or64(Cpu* c, uint32_t r, uint32_t sz, uint64_t v) noexcept nogil:
    c.r[r] = v if sz == 8 else (v & 0xffffffffULL)

# ---- MOV ----
cdef int op_mov_rr64(Cpu* c, const Uop* u) noexcept nogil:
    c.r[u.reg] = c.r[u.rm]
    return R_NEXT

cdef int op_mov_rr32(Cpu* c, const Uop* u) noexcept nogil:
    c.r[u.reg] = c.r[u.rm] & 0xffffffffULL
    return R_NEXT

cdef int op_load32(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t v
    if mem_read(c, ea_of(c, u), 4, &v):
        return R_EXC
    c.r[u.reg] = v
    return R_NEXT

cdef int op_store64(Cpu* c, const Uop* u) noexcept nogil:
    if mem_write(c, ea_of(c, u), 8, c.r[u.reg]):
        return R_EXC
    return R_NEXT

cdef int op_store32(Cpu* c, const Uop* u) noexcept nogil:
    if mem_write(c, ea_of(c, u), 4, c.r[u.reg] & 0xffffffffULL):
        return R_EXC
    return R_NEXT

cdef int op_lea64(Cpu* c, const Uop* u) noexcept nogil:
    c.r[u.reg] = <uint64_t>u.disp + c.r[u.base] + (c.r[u.index] << u.scale)
    return R_NEXT

cdef int op_lea32(Cpu* c, const Uop* u) noexcept nogil:
    c.r[u.reg] = (<uint64_t>u.disp + c.r[u.base] + (c.r[u.index] << u.scale)) & 0xffffffffULL
    return R_NEXT

# ---- ALU, register destination (u.reg = destination, u.rm = source) ----
cdef int op_add_rr(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t a = c.r[u.reg], b = c.r[u.rm], r = a + b
    lf_set(c, LF_ADD, u.osz, a, b, r)
    wr32or64(c, u.reg, u.osz, r)
    return R_NEXT

cdef int op_sub_rr(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t a = c.r[u.reg], b = c.r[u.rm], r = a - b
    lf_set(c, LF_SUB, u.osz, a, b, r)
    wr32or64(c, u.reg, u.osz, r)
    return R_NEXT

cdef int op_cmp_rr(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t a = c.r[u.reg], b = c.r[u.rm]
    lf_set(c, LF_SUB, u.osz, a, b, a - b)
    return R_NEXT

cdef int op_and_rr(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t r = c.r[u.reg] & c.r[u.rm]
    lf_set(c, LF_LOGIC, u.osz, 0, 0, r)
    wr32or64(c, u.reg, u.osz, r)
    return R_NEXT

cdef int op_or_rr(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t r = c.r[u.reg] | c.r[u.rm]
    lf_set(c, LF_LOGIC, u.osz, 0, 0, r)
    wr32or64(c, u.reg, u.osz, r)
    return R_NEXT

cdef int op_xor_rr(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t r = c.r[u.reg] ^ c.r[u.rm]
    lf_set(c, LF_LOGIC, u.osz, 0, 0, r)
    wr32or64(c, u.reg, u.osz, r)
    return R_NEXT

cdef int op_test_rr(Cpu* c, const Uop* u) noexcept nogil:
    lf_set(c, LF_LOGIC, u.osz, 0, 0, c.r[u.reg] & c.r[u.rm])
    return R_NEXT

# ---- ALU with an immediate, register destination (u.rm) ----
cdef int op_add_ri(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t a = c.r[u.rm], r = a + u.imm
    lf_set(c, LF_ADD, u.osz, a, u.imm, r)
    wr32or64(c, u.rm, u.osz, r)
    return R_NEXT

cdef int op_sub_ri(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t a = c.r[u.rm], r = a - u.imm
    lf_set(c, LF_SUB, u.osz, a, u.imm, r)
    wr32or64(c, u.rm, u.osz, r)
    return R_NEXT

cdef int op_cmp_ri(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t a = c.r[u.rm]
    lf_set(c, LF_SUB, u.osz, a, u.imm, a - u.imm)
    return R_NEXT

cdef int op_and_ri(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t r = c.r[u.rm] & u.imm
    lf_set(c, LF_LOGIC, u.osz, 0, 0, r)
    wr32or64(c, u.rm, u.osz, r)
    return R_NEXT

# ---- memory operand compared or added ----
cdef int op_cmp_rm64(Cpu* c, const Uop* u) noexcept nogil:
    """CMP r64, [m] (3B)."""
    cdef uint64_t b
    if mem_read(c, ea_of(c, u), u.osz, &b):
        return R_EXC
    lf_set(c, LF_SUB, u.osz, c.r[u.reg], b, c.r[u.reg] - b)
    return R_NEXT

cdef int op_cmp_mi(Cpu* c, const Uop* u) noexcept nogil:
    """CMP [m], imm (81/83 /7), 32/64-bit."""
    cdef uint64_t a
    if mem_read(c, ea_of(c, u), u.osz, &a):
        return R_EXC
    lf_set(c, LF_SUB, u.osz, a, u.imm, a - u.imm)
    return R_NEXT

cdef int op_add_rm(Cpu* c, const Uop* u) noexcept nogil:
    """ADD r, [m] (03), 32/64-bit."""
    cdef uint64_t b, a = c.r[u.reg], r
    if mem_read(c, ea_of(c, u), u.osz, &b):
        return R_EXC
    r = a + b
    lf_set(c, LF_ADD, u.osz, a, b, r)
    wr32or64(c, u.reg, u.osz, r)
    return R_NEXT

# ---- INC/DEC register ----
cdef int op_inc_r(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t a = c.r[u.rm]
    c.lf_c = lf_cf(c)
    lf_set(c, LF_INC, u.osz, a, 1, a + 1)
    wr32or64(c, u.rm, u.osz, a + 1)
    return R_NEXT

cdef int op_dec_r(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t a = c.r[u.rm]
    c.lf_c = lf_cf(c)
    lf_set(c, LF_DEC, u.osz, a, 1, a - 1)
    wr32or64(c, u.rm, u.osz, a - 1)
    return R_NEXT

# ---- Jcc by condition, with the compare-and-branch cases inline ----
cdef inline int jcc_taken(Cpu* c, const Uop* u, int t) noexcept nogil:
    if t:
        c.rip = u.imm
        return R_BRANCH
    if u.imm2:
        return R_NEXT             # a side exit not taken: the block goes on
    c.rip = u.rip_next
    return R_BRANCH

cdef int op_jz(Cpu* c, const Uop* u) noexcept nogil:
    if c.lf_op != LF_NONE:
        return jcc_taken(c, u, (c.lf_r & SZ_MASK[c.lf_sz]) == 0)
    return jcc_taken(c, u, (c.rflags & F_ZF) != 0)

cdef int op_jnz(Cpu* c, const Uop* u) noexcept nogil:
    if c.lf_op != LF_NONE:
        return jcc_taken(c, u, (c.lf_r & SZ_MASK[c.lf_sz]) != 0)
    return jcc_taken(c, u, (c.rflags & F_ZF) == 0)

cdef int op_jcc_sub(Cpu* c, const Uop* u) noexcept nogil:
    """B AE BE A L GE LE G after CMP/SUB: compare the operands directly."""
    cdef uint64_t m, a, b
    cdef int t
    cdef uint32_t cc = u.sub
    if c.lf_op != LF_SUB:
        return jcc_taken(c, u, eval_cond(c, cc))
    m = SZ_MASK[c.lf_sz]
    a = c.lf_a & m
    b = c.lf_b & m
    if cc <= 3 or cc - 6 <= 1:   # B AE / BE A
        t = (a < b) if cc <= 3 else (a <= b)
    elif cc <= 13:               # L GE
        t = sext(a, c.lf_sz) < sext(b, c.lf_sz)
    else:                        # LE G
        t = sext(a, c.lf_sz) <= sext(b, c.lf_sz)
    return jcc_taken(c, u, t ^ (cc & 1))

cdef int op_jmp_fast(Cpu* c, const Uop* u) noexcept nogil:
    c.rip = u.imm
    return R_BRANCH

# ---- byte loads and stores, and ALU with a memory source ----
cdef int op_movzx_m8(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t v
    if mem_read(c, ea_of(c, u), 1, &v):
        return R_EXC
    wr32or64(c, u.reg, u.osz, v)
    return R_NEXT

cdef int op_movzx_r8(Cpu* c, const Uop* u) noexcept nogil:
    """MOVZX r32/64, r8 with a low-byte source register (no AH..BH)."""
    wr32or64(c, u.reg, u.osz, c.r[u.rm] & 0xff)
    return R_NEXT

cdef int op_store_imm(Cpu* c, const Uop* u) noexcept nogil:
    """MOV m, imm (C6/C7): the immediate is already masked to the operand size."""
    if mem_write(c, ea_of(c, u), u.osz, u.imm):
        return R_EXC
    return R_NEXT

cdef int op_logic_rm(Cpu* c, const Uop* u) noexcept nogil:
    """AND/OR/XOR/SUB r32/64, [m]."""
    cdef uint64_t b, a = c.r[u.reg], r
    if mem_read(c, ea_of(c, u), u.osz, &b):
        return R_EXC
    if u.sub == 4:
        r = a & b
    elif u.sub == 1:
        r = a | b
    elif u.sub == 6:
        r = a ^ b
    else:
        r = a - b
        lf_set(c, LF_SUB, u.osz, a, b, r)
        wr32or64(c, u.reg, u.osz, r)
        return R_NEXT
    lf_set(c, LF_LOGIC, u.osz, 0, 0, r)
    wr32or64(c, u.reg, u.osz, r)
    return R_NEXT

cdef void specialize(Uop* u) noexcept nogil:
    """Swap in a specialized handler where one exists for this exact form."""
    cdef uop_fn f = u.fn
    cdef uint32_t sz = u.osz
    cdef uint8_t t
    cdef int wide = sz == 4 or sz == 8
    if u.lock or u.asz32 or u.seg != SEG_NONE and f == op_lea:
        return
    if f == op_mov_r_rm:
        if not u.mem:
            if sz == 8:
                u.fn = op_mov_rr64
            elif sz == 4:
                u.fn = op_mov_rr32
        elif sz == 4:
            u.fn = op_load32
    elif f == op_mov_rm_r:
        if not u.mem and wide:
            t = u.reg
            u.reg = u.rm
            u.rm = t
            u.fn = op_mov_rr64 if sz == 8 else op_mov_rr32
        elif u.mem and sz == 8:
            u.fn = op_store64
        elif u.mem and sz == 4:
            u.fn = op_store32
    elif f == op_lea and wide:
        u.fn = op_lea64 if sz == 8 else op_lea32
    elif (f == op_alu_rm_r or f == op_alu_r_rm) and not u.mem and wide:
        if f == op_alu_rm_r:     # destination is r/m: normalize to reg = destination
            t = u.reg
            u.reg = u.rm
            u.rm = t
        if u.sub == 0:
            u.fn = op_add_rr
        elif u.sub == 5:
            u.fn = op_sub_rr
        elif u.sub == 7:
            u.fn = op_cmp_rr
        elif u.sub == 4:
            u.fn = op_and_rr
        elif u.sub == 1:
            u.fn = op_or_rr
        elif u.sub == 6:
            u.fn = op_xor_rr
        elif f == op_alu_rm_r:   # ADC/SBB: put the operands back
            t = u.reg
            u.reg = u.rm
            u.rm = t
    elif f == op_alu_r_rm and u.mem and wide:
        if u.sub == 7:
            u.fn = op_cmp_rm64
        elif u.sub == 0:
            u.fn = op_add_rm
        elif u.sub in (1, 4, 5, 6):
            u.fn = op_logic_rm
    elif f == op_alu_a_imm and wide and u.sub in (0, 4, 5, 7):
        # AL/eAX forms: the same as group 1 with RAX as the r/m register
        u.rm = 0
        if u.osz == 4:
            u.imm &= 0xffffffffULL
        u.fn = (op_add_ri if u.sub == 0 else op_and_ri if u.sub == 4 else
                op_sub_ri if u.sub == 5 else op_cmp_ri)
    elif f == op_movzx and u.sub == 1 and wide:
        if u.mem:
            u.fn = op_movzx_m8
        elif u.rm < 16:
            u.fn = op_movzx_r8
    elif f == op_mov_rm_imm and u.mem:
        u.imm &= SZ_MASK[u.osz]
        u.fn = op_store_imm
    elif f == op_alu_rm_imm and u.mem and u.sub == 7:
        u.fn = op_cmp_mi             # any size: lf_set masks the operands
    elif f == op_alu_rm_imm and wide:
        if u.osz == 4:
            u.imm &= 0xffffffffULL
        if u.mem:
            pass
        elif u.sub == 0:
            u.fn = op_add_ri
        elif u.sub == 5:
            u.fn = op_sub_ri
        elif u.sub == 7:
            u.fn = op_cmp_ri
        elif u.sub == 4:
            u.fn = op_and_ri
    elif f == op_test_rm_r and not u.mem and wide:
        u.fn = op_test_rr
    elif f == op_inc and not u.mem and wide:
        u.fn = op_inc_r
    elif f == op_dec and not u.mem and wide:
        u.fn = op_dec_r
    elif f == op_jcc:
        if u.sub == 4:
            u.fn = op_jz
        elif u.sub == 5:
            u.fn = op_jnz
        elif u.sub in (2, 3, 6, 7, 12, 13, 14, 15):
            u.fn = op_jcc_sub
