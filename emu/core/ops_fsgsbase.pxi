# FSGSBASE (SDM Vol. 2, RDFSBASE/RDGSBASE/WRFSBASE/WRGSBASE, F3 0F AE /0-/3
# with a register operand): read or write the FS/GS segment base from any
# privilege level, when CPUID advertises it and CR4.FSGSBASE is set (Linux
# sets it for its processes since 5.9; the user-mode Machine does too).

cdef enum:
    CR4_FSGSBASE_BIT = 0x10000

cdef int op_fsgsbase(Cpu* c, const Uop* u) noexcept nogil:
    """/0 RDFSBASE, /1 RDGSBASE, /2 WRFSBASE, /3 WRGSBASE r32/r64 (REX.W)."""
    cdef uint32_t sz = 8 if u.rex & 8 else 4
    cdef uint32_t seg = SEG_FS if u.sub & 1 == 0 else SEG_GS
    cdef uint64_t v
    if not (c.feat & FEAT_FSGSBASE) or not (c.cr4 & CR4_FSGSBASE_BIT):
        return raise_ud(c)
    if u.sub < 2:
        rset(c, u.rm, sz, c.seg_base[seg])
        return R_NEXT
    v = rget(c, u.rm, sz)
    if not is_canonical(v):
        return raise_gp0(c)
    c.seg_base[seg] = v
    return R_NEXT

cdef void init_fsgsbase():
    cdef int k
    for k in range(4):
        grp(1, 0xae, k, op_fsgsbase, D_REGONLY, I_NONE, 0, 0x4)
