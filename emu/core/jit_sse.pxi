# The native tier's SSE: scalar and packed SSE..SSE4.2 instructions run as
# the very same host instructions (as the interpreter's helpers do, see the
# note in ops_sse_int.pxi). Within a block, guest XMM registers are held in
# host XMM3-15 once loaded (JCtx.xh), and results stay there (JCtx.xdirty)
# until the block is left: every exit writes back what is dirty at its site
# (inline before a branch out, a fallback or an indirect exit; in a stub
# from the state recorded with the stub), so the Cpu's copy is current
# wherever the interpreter or another block takes over. A C call (the TLB
# slow path) clobbers host XMMs: the slow path writes back, calls, and
# reloads the registers held at its site; a fallback empties the cache.
# Host XMM1-2 are scratch (memory operands, conversions).
#
# MXCSR is handled once per block, not per instruction: a block with SSE
# checks at entry that SSE is usable (CR0.EM/TS, CR4.OSFXSR: else the
# interpreter raises the fault) and, for floating point, that the guest
# masks every exception (else the interpreter runs the block and raises
# #XM/#UD exactly); the host MXCSR then holds the guest's, its exception
# flags accumulate there, and they are folded into the guest's MXCSR when
# compiled code hands control back (jit_fp_sync).

cdef int32_t OFF_XMM, XMM_STRIDE, OFF_MXCSR, OFF_CSR_LOADED, OFF_CR0, OFF_CR4, OFF_JIT_FP

cdef void jit_init_sse_layout() noexcept nogil:
    global OFF_XMM, XMM_STRIDE, OFF_MXCSR, OFF_CSR_LOADED, OFF_CR0, OFF_CR4, OFF_JIT_FP
    OFF_XMM = cpu_off(&layout_cpu.xmm[0][0])
    XMM_STRIDE = cpu_off(&layout_cpu.xmm[1][0]) - OFF_XMM     # a vector register's row
    OFF_MXCSR = cpu_off(&layout_cpu.mxcsr)
    OFF_CSR_LOADED = cpu_off(&layout_cpu.csr_loaded)
    OFF_CR0 = cpu_off(&layout_cpu.cr0)
    OFF_CR4 = cpu_off(&layout_cpu.cr4)
    OFF_JIT_FP = cpu_off(&layout_cpu.jit_fp)

jit_init_sse_layout()

cdef inline Mem xmm_mem(int i, int half) noexcept nogil:
    return mem_at(H_R15, OFF_XMM + XMM_STRIDE * i + 8 * half)

cdef inline void a_sse_rm(Asm* a, int pfx, int mapsel, uint32_t opc, int reg, Mem m) noexcept nogil:
    """An SSE instruction with a memory operand: pfx 0/0x66/0xF3/0xF2,
    mapsel 1 = 0F, 2 = 0F 38, 3 = 0F 3A."""
    if pfx:
        a_byte(a, pfx)
    a_prefix(a, 4, reg, -1, m.index, m.base, 0)
    a_byte(a, 0x0f)
    if mapsel == 2:
        a_byte(a, 0x38)
    elif mapsel == 3:
        a_byte(a, 0x3a)
    a_byte(a, opc)
    a_modrm_mem(a, reg, m)

cdef inline void a_sse_rr(Asm* a, int pfx, int mapsel, uint32_t opc, int reg, int rm) noexcept nogil:
    if pfx:
        a_byte(a, pfx)
    a_prefix(a, 4, reg, rm, H_NONE, H_NONE, 0)
    a_byte(a, 0x0f)
    if mapsel == 2:
        a_byte(a, 0x38)
    elif mapsel == 3:
        a_byte(a, 0x3a)
    a_byte(a, opc)
    a_byte(a, 0xc0 | ((reg & 7) << 3) | (rm & 7))

cdef inline void xload(Asm* a, int h, Mem m) noexcept nogil:
    a_sse_rm(a, 0xf3, 1, 0x6f, h, m)          # MOVDQU xmm, m128

cdef inline void xstore(Asm* a, Mem m, int h) noexcept nogil:
    a_sse_rm(a, 0xf3, 1, 0x7f, h, m)          # MOVDQU m128, xmm

# ---- the XMM cache ----

cdef inline void xc_reset(JCtx* x) noexcept nogil:
    memset(x.xh, -1, 16)
    memset(x.hx, -1, 16)
    x.xdirty = 0
    x.xnext = 0

cdef inline void xc_sync(JCtx* x, int g) noexcept nogil:
    """The Cpu's copy of guest XMM g made current."""
    if x.xdirty >> g & 1:
        xstore(&x.a, xmm_mem(g, 0), x.xh[g])
        x.xdirty &= ~(1 << g)

cdef inline void xc_flush(JCtx* x) noexcept nogil:
    """Every dirty register written back (before the block is left)."""
    cdef int g
    for g in range(16):
        xc_sync(x, g)

cdef inline void xc_flush_at(JCtx* x, const Stub* s) noexcept nogil:
    """In a stub: write back what was dirty at its site."""
    cdef int g
    for g in range(16):
        if s.xdirty >> g & 1:
            xstore(&x.a, xmm_mem(g, 0), s.xsnap[g])

cdef inline void xc_set(JCtx* x, int g) noexcept nogil:
    x.xdirty |= <uint16_t>(1 << g)

cdef inline int xc_slot(JCtx* x, int g) noexcept nogil:
    """A host XMM for guest XMM g (round robin over XMM3-15; the register
    it takes over is written back first if dirty)."""
    cdef int h
    if x.xh[g] >= 0:
        return x.xh[g]
    h = 3 + <int>(x.xnext % 13)
    x.xnext += 1
    if x.hx[h] >= 0:
        xc_sync(x, x.hx[h])
        x.xh[x.hx[h]] = -1
    x.hx[h] = g
    x.xh[g] = h
    return h

cdef inline int xc_get(JCtx* x, int g) noexcept nogil:
    """The host XMM holding guest XMM g, loaded if it was not held."""
    cdef int h
    if x.xh[g] >= 0:
        return x.xh[g]
    h = xc_slot(x, g)
    xload(&x.a, h, xmm_mem(g, 0))
    return h

cdef inline void xc_drop(JCtx* x, int g) noexcept nogil:
    """Guest XMM g is about to be written in the Cpu directly (in part)."""
    xc_sync(x, g)
    if x.xh[g] >= 0:
        x.hx[x.xh[g]] = -1
        x.xh[g] = -1

cdef inline void xc_reload(JCtx* x, const int8_t* snap) noexcept nogil:
    """After a C call: the host XMMs that held guest registers at a site."""
    cdef int g
    for g in range(16):
        if snap[g] >= 0:
            xload(&x.a, snap[g], xmm_mem(g, 0))

cdef inline void xc_restore(JCtx* x, const int8_t* snap) noexcept nogil:
    """The compiler's view of the cache back to a site's, clean (for cold
    code emitted later, after the stub wrote the site's dirty registers back)."""
    cdef int g
    memset(x.hx, -1, 16)
    memcpy(x.xh, snap, 16)
    x.xdirty = 0
    for g in range(16):
        if snap[g] >= 0:
            x.hx[snap[g]] = g

cdef inline void xmovdqa(Asm* a, int d, int s) noexcept nogil:
    if d != s:
        a_sse_rr(a, 0x66, 1, 0x6f, d, s)      # MOVDQA xmm, xmm

cdef inline int pcs_prefix(int pcs) noexcept nogil:
    return 0x66 if pcs == 2 else 0xf3 if pcs == 4 else 0xf2 if pcs == 8 else 0

cdef const emu_sse_def* sse_def_of(const Uop* u) noexcept nogil:
    if u.fn == op_sse_tab0:
        return &sse_tab[u.sub]
    if u.fn == op_sse_tab1:
        return &sse_tab[256 + u.sub]
    return NULL

cdef int jit_sse_kind(const Uop* u) noexcept nogil:
    """0: not an SSE instruction the compiler emits; 1: SSE; 2: SSE floating
    point (needs the guest MXCSR in the host)."""
    cdef uop_fn f = u.fn
    cdef const emu_sse_def* o = sse_def_of(u)
    if u.lock or u.asz32:
        return 0
    if o != NULL:
        if o.kind & EK_XMM0:
            return 0              # the host instruction would read host XMM0
        return 2 if o.kind & EK_FP else 1
    if f == op_cvtsi2f or f == op_cvtf2si:
        return 2
    if (f == op_sse_load_u or f == op_sse_load_a or f == op_sse_store_u or f == op_sse_store_a
            or f == op_movsd_load or f == op_movsd_store or f == op_movss_load or f == op_movss_store
            or f == op_movq_x_xm or f == op_movq_xm_x or f == op_movd_x_rm or f == op_movd_rm_x
            or f == op_movlps_load or f == op_movhps_load or f == op_movlps_store or f == op_movhps_store):
        return 1
    return 0

cdef void e_sse_entry(JCtx* x, int fp) noexcept nogil:
    """At the entry of a block with SSE (the flags are saved here): is SSE
    usable, and for floating point, is the guest MXCSR in the host?"""
    cdef uint32_t f
    a_test_mi(&x.a, 4, cpu_mem(OFF_CR0), SSE_CR0_EM | SSE_CR0_TS)
    f = a_jcc32(&x.a, CC_NE)
    stub_add(x, f, ST_BAIL, 0)
    a_test_mi(&x.a, 4, cpu_mem(OFF_CR4), CR4_OSFXSR)
    f = a_jcc32(&x.a, CC_E)
    stub_add(x, f, ST_BAIL, 0)
    if not fp:
        return
    a_load(&x.a, 4, H_RAX, cpu_mem(OFF_MXCSR))
    a_mov_rr(&x.a, 4, H_RCX, H_RAX)
    a_alu_ri(&x.a, 4, 4, H_RCX, 0x1f80)
    a_alu_ri(&x.a, 7, 4, H_RCX, 0x1f80)
    f = a_jcc32(&x.a, CC_NE)                  # an unmasked exception: the interpreter
    stub_add(x, f, ST_BAIL, 0)
    a_movx(&x.a, 0x0fb7, 4, H_RAX, H_RAX, 0)   # the low 16 bits, as csr_loaded holds them
    a_alu_rm(&x.a, 7, 4, H_RAX, cpu_mem(OFF_CSR_LOADED))
    f = a_jcc32(&x.a, CC_E)
    a_rm(&x.a, 0x0fae, 4, 2, cpu_mem(OFF_MXCSR))         # LDMXCSR
    a_store(&x.a, 4, cpu_mem(OFF_CSR_LOADED), H_RAX)
    a_bind(&x.a, f, x.a.pos)
    a_store_imm(&x.a, 4, cpu_mem(OFF_JIT_FP), 1)

cdef inline void jit_fp_sync(Cpu* c) noexcept nogil:
    """Compiled SSE left exception flags in the host MXCSR: into the guest's."""
    cdef uint32_t h
    if c.jit_fp:
        c.jit_fp = 0
        h = emu_csr_save()
        c.mxcsr |= h & 0x3f
        c.csr_loaded = h & 0xffff

cdef int e_xmm_src(JCtx* x, const Uop* u, int h, int msize, int aligned) noexcept nogil:
    """The host XMM with the xmm/m operand: the guest register's, or h
    loaded from memory (msize bytes, the rest 0)."""
    cdef uint32_t f
    if not u.mem:
        return xc_get(x, u.rm)
    e_probe(x, u, ACC_R, msize)
    if aligned and msize == 16:
        a_test_ri(&x.a, 1, H_RAX, 15)
        f = a_jcc32(&x.a, CC_NE)
        stub_add(x, f, ST_BAIL, x.k)           # misaligned: the interpreter raises #GP
    if msize == 16:
        xload(&x.a, h, mem_at(H_RAX, 0))
    elif msize == 8:
        a_sse_rm(&x.a, 0xf3, 1, 0x7e, h, mem_at(H_RAX, 0))    # MOVQ xmm, m64
    else:
        a_sse_rm(&x.a, 0x66, 1, 0x6e, h, mem_at(H_RAX, 0))    # MOVD xmm, m32
    return h

cdef int e_sse_tab(JCtx* x, const Uop* u, const emu_sse_def* o) noexcept nogil:
    """A table-driven SSE instruction: the same instruction on host XMM1
    (destination) and XMM2 (source)."""
    cdef uint32_t imm = <uint32_t>u.imm & 0xff
    if u.mem and o.kind & EK_MEMIMM:
        imm &= 0x3f
    if o.map < 1 or o.map > 3:
        return -1
    cdef int hs = e_xmm_src(x, u, 2, o.msize, o.kind & EK_ALIGN)
    cdef int hd = xc_get(x, u.reg)
    a_sse_rr(&x.a, pcs_prefix(o.pcs), o.map, o.opc, hd, hs)
    if o.kind & EK_IMM:
        a_byte(&x.a, imm)
    if o.kind & EK_FLAGS:
        x.fl = FL_HOST                        # (U)COMIS*, PTEST: the status flags
    else:
        xc_set(x, u.reg)
    return 0

cdef int e_sse_move(JCtx* x, const Uop* u) noexcept nogil:
    cdef uop_fn f = u.fn
    cdef uint32_t fld
    cdef int sz, hs, hd
    if f == op_sse_load_u or f == op_sse_load_a:
        hs = e_xmm_src(x, u, 1, 16, f == op_sse_load_a)
        hd = xc_slot(x, u.reg)                # (a whole new value: not loaded)
        xmovdqa(&x.a, hd, hs)
        xc_set(x, u.reg)
        return 0
    if f == op_sse_store_u or f == op_sse_store_a:
        if u.mem:
            e_probe(x, u, ACC_W, 16)          # (first: its slow path may clobber host XMMs)
            if f == op_sse_store_a:
                a_test_ri(&x.a, 1, H_RAX, 15)
                fld = a_jcc32(&x.a, CC_NE)
                stub_add(x, fld, ST_BAIL, x.k)
            xstore(&x.a, mem_at(H_RAX, 0), xc_get(x, u.reg))
        else:
            hs = xc_get(x, u.reg)
            hd = xc_slot(x, u.rm)
            xmovdqa(&x.a, hd, hs)
            xc_set(x, u.rm)
        return 0
    if f == op_movsd_load or f == op_movq_x_xm or f == op_movss_load:
        if not u.mem:
            xc_sync(x, u.rm)                  # (read in the Cpu below)
        xc_drop(x, u.reg)                     # (written there)
        sz = 4 if f == op_movss_load else 8
        if u.mem:
            e_probe(x, u, ACC_R, sz)
            a_load(&x.a, sz, H_RCX, mem_at(H_RAX, 0))
            a_store(&x.a, 8, xmm_mem(u.reg, 0), H_RCX)
            a_store_imm(&x.a, 8, xmm_mem(u.reg, 1), 0)
        else:
            a_load(&x.a, sz, H_RCX, xmm_mem(u.rm, 0))
            a_store(&x.a, sz, xmm_mem(u.reg, 0), H_RCX)
            if f == op_movq_x_xm:
                a_store_imm(&x.a, 8, xmm_mem(u.reg, 1), 0)
        return 0
    if f == op_movsd_store or f == op_movq_xm_x or f == op_movss_store:
        xc_sync(x, u.reg)
        if not u.mem:
            xc_drop(x, u.rm)
        sz = 4 if f == op_movss_store else 8
        if u.mem:
            e_probe(x, u, ACC_W, sz)
            a_load(&x.a, sz, H_RDX, xmm_mem(u.reg, 0))
            a_store(&x.a, sz, mem_at(H_RAX, 0), H_RDX)
        else:
            a_load(&x.a, sz, H_RDX, xmm_mem(u.reg, 0))
            a_store(&x.a, sz, xmm_mem(u.rm, 0), H_RDX)
            if f == op_movq_xm_x:
                a_store_imm(&x.a, 8, xmm_mem(u.rm, 1), 0)
        return 0
    if f == op_movlps_load or f == op_movhps_load:
        if not u.mem:
            xc_sync(x, u.rm)
        xc_drop(x, u.reg)
        if u.mem:
            e_probe(x, u, ACC_R, 8)
            a_load(&x.a, 8, H_RCX, mem_at(H_RAX, 0))
        else:
            a_load(&x.a, 8, H_RCX, xmm_mem(u.rm, 1 if f == op_movlps_load else 0))
        a_store(&x.a, 8, xmm_mem(u.reg, 0 if f == op_movlps_load else 1), H_RCX)
        return 0
    if f == op_movlps_store or f == op_movhps_store:
        xc_sync(x, u.reg)
        e_probe(x, u, ACC_W, 8)
        a_load(&x.a, 8, H_RCX, xmm_mem(u.reg, 0 if f == op_movlps_store else 1))
        a_store(&x.a, 8, mem_at(H_RAX, 0), H_RCX)
        return 0
    if f == op_movd_x_rm:
        xc_drop(x, u.reg)
        sz = 8 if u.rex & 8 else 4
        if u.mem:
            e_probe(x, u, ACC_R, sz)
            a_load(&x.a, sz, H_RCX, mem_at(H_RAX, 0))
        elif G2H[u.rm] >= 0:
            a_mov_rr(&x.a, sz, H_RCX, G2H[u.rm])
        else:
            a_load(&x.a, sz, H_RCX, greg_mem(u.rm))
        a_store(&x.a, 8, xmm_mem(u.reg, 0), H_RCX)
        a_store_imm(&x.a, 8, xmm_mem(u.reg, 1), 0)
        return 0
    if f == op_movd_rm_x:
        xc_sync(x, u.reg)
        sz = 8 if u.rex & 8 else 4
        if u.mem:
            e_probe(x, u, ACC_W, sz)
            a_load(&x.a, sz, H_RCX, xmm_mem(u.reg, 0))
            a_store(&x.a, sz, mem_at(H_RAX, 0), H_RCX)
        else:
            a_load(&x.a, sz, H_RCX, xmm_mem(u.reg, 0))
            e_mov(x, 8, opd_greg(u.rm), opd_reg(H_RCX))
        return 0
    return -1

cdef int e_sse_cvt(JCtx* x, const Uop* u) noexcept nogil:
    """CVTSI2SS/SD (F3/F2 0F 2A) and CVT[T]SS2SI/SD2SI (F3/F2 0F 2C/2D)."""
    cdef int pfx = 0xf2 if u.rep == REP_F2 else 0xf3
    cdef int q = (u.rex & 8) != 0
    cdef int ssz = 8 if u.rep == REP_F2 else 4
    cdef int hd
    if u.fn == op_cvtsi2f:
        if u.mem:
            e_probe(x, u, ACC_R, 8 if q else 4)
            a_load(&x.a, 8 if q else 4, H_RCX, mem_at(H_RAX, 0))
        elif G2H[u.rm] >= 0:
            a_mov_rr(&x.a, 8 if q else 4, H_RCX, G2H[u.rm])
        else:
            a_load(&x.a, 8 if q else 4, H_RCX, greg_mem(u.rm))
        hd = xc_get(x, u.reg)
        a_byte(&x.a, pfx)
        # REX: W for a 64-bit source, R for XMM8-15; the source is RCX
        a_byte(&x.a, 0x40 | (8 if q else 0) | (4 if hd >= 8 else 0))
        a_byte(&x.a, 0x0f)
        a_byte(&x.a, 0x2a)
        a_byte(&x.a, 0xc0 | ((hd & 7) << 3) | H_RCX)
        xc_set(x, u.reg)
        return 0
    xmovdqa(&x.a, 2, e_xmm_src(x, u, 2, ssz, 0))
    a_byte(&x.a, pfx)
    a_byte(&x.a, 0x48 if q else 0x40)
    a_byte(&x.a, 0x0f)
    a_byte(&x.a, u.opc)
    a_byte(&x.a, 0xc0 | (H_RCX << 3) | 2)
    e_mov(x, 8, opd_greg(u.reg), opd_reg(H_RCX))
    return 0

cdef int e_sse_uop(JCtx* x, const Uop* u) noexcept nogil:
    cdef const emu_sse_def* o = sse_def_of(u)
    if o != NULL:
        return e_sse_tab(x, u, o)
    if u.fn == op_cvtsi2f or u.fn == op_cvtf2si:
        return e_sse_cvt(x, u)
    return e_sse_move(x, u)
