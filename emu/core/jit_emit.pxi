# The block compiler of the native-code tier: a translated block's uops in,
# host x86-64 code out (into the code cache, core/jit_cache.pxi).
#
# Conventions of compiled code (docs/architecture.md, "Native-code tier"):
# - r15 holds the Cpu*; r14 counts down the instructions the vCPU may still
#   retire: jit_limit - (instructions retired once the current block ends);
#   rax, rcx, rdx are scratch; rsp is the host stack, 16-byte aligned.
# - Ten guest registers live in fixed host registers (G2H) for as long as
#   compiled code runs, chained blocks included; the other six stay in
#   Cpu.r. The entry trampoline loads them and every exit stores them.
# - The guest's six status flags are in the host's EFLAGS right after an
#   instruction that computes them (FL_HOST) and in Cpu.jit_fsave
#   (LAHF/SETO format, FL_SAVED) everywhere else: before anything that
#   clobbers host flags (a TLB probe, a call) and at every block boundary.
#   Exits mark them with lf_op = LF_JIT; the dispatcher converts.
# - A block starts with its chain entry (the budget check) followed by the
#   dispatcher's entry. Direct exits to the same virtual page are patched
#   to jump straight to the successor's chain entry.
# - Memory goes through an inline probe of the vCPU's TLB, which is at a
#   fixed offset from the Cpu (Cpu.tlb_arr). A miss calls jit_mem_fill; if
#   that cannot make the access a plain RAM access (a fault, MMIO, a page
#   crossing, a hooked page, a code page) the block bails out before the
#   instruction and the interpreter runs it: faults are raised by the one
#   implementation, and are exact.
# - An instruction the compiler does not cover is a call to its interpreter
#   handler (jit_fallback) with the guest state written back around it.

cdef extern from *:
    """
    typedef int (*emu_jit_entry_fn)(void* cpu, void* code);
    """
    ctypedef int (*emu_jit_entry_fn)(void* cpu, void* code) noexcept nogil

cdef enum:
    FL_HOST = 1
    FL_SAVED = 2
    FL_RECIPE = 3         # in neither: JCtx.rec recomputes them (see e_probe)
    ST_BAIL_ENTRY = 1     # stub kinds (cold code after the block)
    ST_SLOW = 2
    ST_EXIT_K = 3
    ST_DIRECT = 4
    ST_BAIL = 5           # the instruction runs in the interpreter
    ST_SIDE = 6           # a superblock's conditional side exit, taken
    ST_CACHE = 7          # a data access to another cache line: the cache model in C
    JV_CACHE = 1          # JitBlock.variant bits (jit_runtime.pxi jit_variant)
    JV_COV = 2
    JIT_MAX_STUBS = 512
    ACC_NONE = 9          # no memory access

# guest GPR -> host register (-1: the guest register stays in Cpu.r)
cdef int G2H[16]
G2H[:] = [H_R8, H_R9, H_R10, H_RBX, H_RBP, H_R11, H_RSI, H_RDI, H_R12, H_R13, -1, -1, -1, -1, -1, -1]
# host registers holding guest state that a C call may clobber (SysV caller-saved)
cdef int CALLER_SAVED_GUESTS[6]
CALLER_SAVED_GUESTS[:] = [0, 1, 2, 5, 6, 7]

# field offsets from the Cpu, set by jit_init_layout()
cdef int32_t OFF_R, OFF_RIP, OFF_LF_OP, OFF_EVENTS, OFF_ICOUNT, OFF_JIT_LIMIT, OFF_JIT_LEFT
cdef int32_t OFF_JIT_BLK, OFF_JIT_K, OFF_JIT_SITE, OFF_FSAVE, OFF_SEG_BASE, OFF_TLB, OFF_JIT_TMP
cdef int32_t TLB_ESZ, TLB_OFF_TAG_R, TLB_OFF_TAG_W, TLB_OFF_ADDEND
cdef int32_t OFF_IBL, OFF_IBL_STAMP, OFF_TSC_EXTRA, OFF_CACHE_LAST, OFF_TLBM, OFF_COV_MAP, OFF_COV_PREV

cdef inline int32_t cpu_off(void* field) noexcept nogil:
    return <int32_t>(<char*>field - <char*>&layout_cpu)

cdef void jit_init_layout() noexcept nogil:
    global OFF_R, OFF_RIP, OFF_LF_OP, OFF_EVENTS, OFF_ICOUNT, OFF_JIT_LIMIT, OFF_JIT_LEFT
    global OFF_JIT_BLK, OFF_JIT_K, OFF_JIT_SITE, OFF_FSAVE, OFF_SEG_BASE, OFF_TLB, OFF_JIT_TMP
    global TLB_ESZ, TLB_OFF_TAG_R, TLB_OFF_TAG_W, TLB_OFF_ADDEND
    global OFF_IBL, OFF_IBL_STAMP, OFF_TSC_EXTRA, OFF_CACHE_LAST, OFF_TLBM, OFF_COV_MAP, OFF_COV_PREV
    cdef TlbEntry* e = &layout_cpu.tlb_arr[0]
    OFF_R = cpu_off(&layout_cpu.r[0])
    OFF_RIP = cpu_off(&layout_cpu.rip)
    OFF_LF_OP = cpu_off(&layout_cpu.lf_op)
    OFF_EVENTS = cpu_off(<void*>&layout_cpu.events)
    OFF_ICOUNT = cpu_off(&layout_cpu.icount)
    OFF_JIT_LIMIT = cpu_off(&layout_cpu.jit_limit)
    OFF_JIT_LEFT = cpu_off(&layout_cpu.jit_left)
    OFF_JIT_BLK = cpu_off(&layout_cpu.jit_blk)
    OFF_JIT_K = cpu_off(&layout_cpu.jit_k)
    OFF_JIT_SITE = cpu_off(&layout_cpu.jit_site)
    OFF_FSAVE = cpu_off(&layout_cpu.jit_fsave)
    OFF_JIT_TMP = cpu_off(&layout_cpu.jit_tmp)
    OFF_SEG_BASE = cpu_off(&layout_cpu.seg_base[0])
    OFF_TLB = cpu_off(e)
    TLB_ESZ = sizeof(TlbEntry)
    TLB_OFF_TAG_R = <int32_t>(<char*>&e.tag_r - <char*>e)
    TLB_OFF_TAG_W = <int32_t>(<char*>&e.tag_w - <char*>e)
    TLB_OFF_ADDEND = <int32_t>(<char*>&e.addend - <char*>e)
    OFF_IBL = cpu_off(&layout_cpu.ibl[0])
    OFF_IBL_STAMP = cpu_off(&layout_cpu.ibl_stamp)
    OFF_TSC_EXTRA = cpu_off(&layout_cpu.tsc_extra)
    OFF_CACHE_LAST = cpu_off(&layout_cpu.cache_last)
    OFF_TLBM = cpu_off(&layout_cpu.tlbm)
    OFF_COV_MAP = cpu_off(&layout_cpu.cov_map)
    OFF_COV_PREV = cpu_off(&layout_cpu.cov_prev)

jit_init_layout()

cdef struct Stub:
    uint32_t field        # rel32 in the body that jumps to the stub
    uint32_t kind
    uint32_t k            # uop index
    uint32_t retry        # ST_SLOW: where the access starts again
    uint32_t szacc        # ST_SLOW: size | access << 8
    uint64_t target       # ST_DIRECT, ST_SIDE: guest RIP
    int32_t refund        # instructions of the block not retired when leaving here (side exits)
    int8_t xsnap[16]      # the guest XMMs held in host XMMs at the stub's site (jit_sse.pxi)
    uint16_t xdirty       # ... and those not yet written back to the Cpu
    # the flags' recipe at the stub's site (FL_RECIPE there): the producing
    # ALU operation, to redo before the flags are saved on the way out
    int8_t rec_op         # -1: none
    uint8_t rec_sz
    int8_t rec_d          # host register of the destination
    int8_t rec_s          # host register of the source, -1: rec_imm
    int32_t rec_imm
    uint32_t split_g      # ST_SLOW of a stack run: its pushes (pops), run one by one when the run cannot be one access
    uint32_t after        # ... and where the run's code ends

cdef struct JCtx:
    Asm a
    Cpu* c
    Mach* m
    Jit* j
    Block* b
    int32_t bi
    const Uop* u0
    uint32_t off          # the block's offset in the cache
    uint32_t k            # uop being compiled
    int fl                # FL_HOST / FL_SAVED
    int tlbm              # CPL 0-2 (the TLB tag's mode bit)
    int cached            # run the cache model at data accesses (core/timing.pxi)
    int cov               # update the AFL edge map when chained into (core/hooks.pxi)
    int tlbm_pcid         # the block's mode has MODE_PCID: tags carry Cpu.tlbm's PCID slot too
    uint32_t n_stubs
    Stub stubs[JIT_MAX_STUBS]
    uint32_t exit_fields[JIT_MAX_STUBS]   # rel32s that jump to the block exit
    uint32_t n_exit_fields
    # while a side exit is emitted: the block's instructions it does not
    # retire, given back to the budget (R14) before chaining to another
    # block and taken again on the way to the block exit, whose count
    # assumes the whole block
    int32_t refund
    # the last instruction's flags, when it was a register ALU operation
    # they can be recomputed from (e_alu_uop): op, size, operands, its uop
    int rec_op
    int rec_sz
    int rec_d
    int rec_s
    int32_t rec_imm
    uint32_t rec_k
    # the guest XMM registers held in host XMM3-15, core/jit_sse.pxi
    int8_t xh[16]         # guest -> host, -1: not held
    int8_t hx[16]         # host -> guest
    uint16_t xdirty       # guest XMMs whose Cpu copy is older than the host's
    uint32_t xnext

# ---- small building blocks ----

cdef inline Mem greg_mem(int g) noexcept nogil:
    return mem_at(H_R15, OFF_R + 8 * g)

cdef inline Mem cpu_mem(int32_t off) noexcept nogil:
    return mem_at(H_R15, off)

cdef inline void e_store_guests(JCtx* x, const int* gs, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        a_store(&x.a, 8, greg_mem(gs[i]), G2H[gs[i]])

cdef inline void e_load_guests(JCtx* x, const int* gs, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        a_load(&x.a, 8, G2H[gs[i]], greg_mem(gs[i]))

cdef int MAPPED_GUESTS[10]
MAPPED_GUESTS[:] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]

cdef inline void e_call(JCtx* x, void* fn) noexcept nogil:
    a_mov_ri(&x.a, H_RAX, <uint64_t>fn)
    a_call_r(&x.a, H_RAX)

cdef void e_redo_flags(JCtx* x, int op, int sz, int d, int s, int32_t imm) noexcept nogil:
    """Host EFLAGS as the ALU operation `d op= s` (already done: d holds
    its result, s is unchanged) left them: CMP again; AND/OR/XOR by the
    result (TEST); ADD/SUB by undoing and redoing it on a copy (the same
    operands, so the same flags)."""
    if op == 7:
        if s >= 0:
            a_alu_rr(&x.a, 7, sz, d, s)
        else:
            a_alu_ri(&x.a, 7, sz, d, imm)
    elif op == 4 or op == 1 or op == 6:
        a_test_rr(&x.a, sz, d, d)
    else:
        a_mov_rr(&x.a, sz, H_RCX, d)
        if s >= 0:
            a_alu_rr(&x.a, 5 if op == 0 else 0, sz, H_RCX, s)
            a_alu_rr(&x.a, op, sz, H_RCX, s)
        else:
            a_alu_ri(&x.a, 5 if op == 0 else 0, sz, H_RCX, imm)
            a_alu_ri(&x.a, op, sz, H_RCX, imm)

cdef inline void fl_save(JCtx* x) noexcept nogil:
    """Host flags -> Cpu.jit_fsave (before they are clobbered or the block
    is left). LAHF/SETO/MOV leave EFLAGS as they are."""
    if x.fl == FL_RECIPE:
        e_redo_flags(x, x.rec_op, x.rec_sz, x.rec_d, x.rec_s, x.rec_imm)
        x.fl = FL_HOST
    if x.fl == FL_HOST:
        a_lahf_seto(&x.a)
        a_store(&x.a, 4, cpu_mem(OFF_FSAVE), H_RAX)
        x.fl = FL_SAVED

cdef inline void fl_to_host(JCtx* x) noexcept nogil:
    """Cpu.jit_fsave -> host flags (for an instruction that reads them or
    keeps some of them)."""
    if x.fl == FL_RECIPE:
        fl_save(x)
    if x.fl == FL_SAVED:
        a_load(&x.a, 4, H_RAX, cpu_mem(OFF_FSAVE))
        a_restore_flags_ax(&x.a)
        x.fl = FL_HOST

cdef inline uint32_t stub_add(JCtx* x, uint32_t field, uint32_t kind, uint32_t k) noexcept nogil:
    cdef Stub* s
    if x.n_stubs >= JIT_MAX_STUBS:
        x.a.full = 1
        return 0
    s = &x.stubs[x.n_stubs]
    x.n_stubs += 1
    s.field = field
    s.kind = kind
    s.k = k
    s.retry = 0
    s.szacc = 0
    s.target = 0
    s.refund = x.refund
    s.split_g = 0
    s.after = 0
    memcpy(s.xsnap, x.xh, 16)
    s.xdirty = x.xdirty
    s.rec_op = -1
    if x.fl == FL_RECIPE:
        s.rec_op = <int8_t>x.rec_op
        s.rec_sz = <uint8_t>x.rec_sz
        s.rec_d = <int8_t>x.rec_d
        s.rec_s = <int8_t>x.rec_s
        s.rec_imm = x.rec_imm
    return x.n_stubs - 1

cdef inline void e_charge(JCtx* x, int sign) noexcept nogil:
    """The class cycles of the block up to the exit uop x.k, charged before
    compiled code goes straight on into another block (sign 1), and taken
    back on the way out to the run loop, which charges them itself (-1).
    Blocks of an untimed machine have no cycles: nothing is emitted."""
    cdef uint32_t cyc = x.u0[x.k].cyc
    if cyc:
        a_alu_mi(&x.a, 0 if sign > 0 else 5, 8, cpu_mem(OFF_TSC_EXTRA), cyc)

cdef void e_cov_edge(JCtx* x) noexcept nogil:
    """Chained into (compiled code goes on from another block): the AFL
    edge map's update hook_block_entry makes for a block the dispatcher
    enters, core/hooks.pxi: map[cur ^ prev] += 1, prev = cur >> 1, with
    cur known now. The dispatcher's entry is past this."""
    cdef uint64_t rip = x.b.vrip
    cdef uint32_t cur = <uint32_t>(((rip >> 4) ^ (rip << 8)) & 0xffff)
    a_load(&x.a, 4, H_RAX, cpu_mem(OFF_COV_PREV))
    a_alu_ri(&x.a, 6, 4, H_RAX, cur)                       # XOR
    a_load(&x.a, 8, H_RDX, cpu_mem(OFF_COV_MAP))
    a_alu_mi(&x.a, 0, 1, mem_idx(H_RDX, H_RAX, 0, 0), 1)   # ADD byte [rdx + rax], 1
    a_store_imm(&x.a, 4, cpu_mem(OFF_COV_PREV), cur >> 1)

cdef inline void jump_to_exit(JCtx* x) noexcept nogil:
    """JMP to the block's exit sequence (patched at the end)."""
    if x.n_exit_fields >= JIT_MAX_STUBS:
        x.a.full = 1
        return
    x.exit_fields[x.n_exit_fields] = a_jmp32(&x.a)
    x.n_exit_fields += 1

# ---- operands ----

cdef enum:
    OK_REG = 1
    OK_MEM = 2
    OK_IMM = 3

cdef struct Opd:
    int kind
    int reg
    Mem m
    int64_t imm
    int gmem              # a guest register kept in Cpu.r (32-bit writes must zero its upper half)

cdef inline Opd opd_reg(int h) noexcept nogil:
    cdef Opd o
    o.kind = OK_REG
    o.reg = h
    o.gmem = 0
    o.imm = 0
    return o

cdef inline Opd opd_greg(int g) noexcept nogil:
    cdef Opd o
    if G2H[g] >= 0:
        return opd_reg(G2H[g])
    o.kind = OK_MEM
    o.reg = -1
    o.m = greg_mem(g)
    o.gmem = 1
    o.imm = 0
    return o

cdef inline Opd opd_host_mem_at(int h, int32_t disp) noexcept nogil:
    """Guest memory at disp from the host address in register h."""
    cdef Opd o
    o.kind = OK_MEM
    o.reg = -1
    o.m = mem_at(h, disp)
    o.gmem = 0
    o.imm = 0
    return o

cdef inline Opd opd_host_mem(int h) noexcept nogil:
    """Guest memory at the host address in register h (after a probe)."""
    return opd_host_mem_at(h, 0)

cdef inline Opd opd_imm(int64_t v) noexcept nogil:
    cdef Opd o
    o.kind = OK_IMM
    o.reg = -1
    o.imm = v
    o.gmem = 0
    return o

cdef inline int64_t imm_sized(uint64_t v, int sz) noexcept nogil:
    """An immediate as the host instruction of size sz encodes it."""
    if sz == 1:
        return <int8_t>v
    if sz == 2:
        return <int16_t>v
    if sz == 4:
        return <int32_t>v
    return <int64_t>v

cdef inline void zero_upper(JCtx* x, Opd d, int sz) noexcept nogil:
    """A 32-bit write to a guest register in Cpu.r zero-extends it."""
    cdef Mem hi
    if sz == 4 and d.kind == OK_MEM and d.gmem:
        hi = d.m
        hi.disp += 4
        a_store_imm(&x.a, 4, hi, 0)

cdef void e_mov(JCtx* x, int sz, Opd d, Opd s) noexcept nogil:
    """d = s (sz bytes), with the zero-extension of 32-bit register writes."""
    if d.kind == OK_REG:
        if s.kind == OK_REG:
            if s.reg != d.reg or sz == 4:
                a_mov_rr(&x.a, sz, d.reg, s.reg)
        elif s.kind == OK_MEM:
            a_load(&x.a, sz, d.reg, s.m)
        elif sz == 8:
            a_mov_ri(&x.a, d.reg, <uint64_t>s.imm)
        elif sz == 4:
            a_mov_ri(&x.a, d.reg, <uint32_t>s.imm)
        else:
            a_rr(&x.a, 0xc6 if sz == 1 else 0xc7, sz, 0, d.reg)
            a_byte(&x.a, <uint32_t>s.imm & 0xff)
            if sz == 2:
                a_byte(&x.a, (<uint32_t>s.imm >> 8) & 0xff)
        return
    # memory destination
    if s.kind == OK_REG:
        a_store(&x.a, sz, d.m, s.reg)
    elif s.kind == OK_IMM and (sz < 8 or fits32(s.imm)):
        a_store_imm(&x.a, sz, d.m, imm_sized(<uint64_t>s.imm, sz))
    elif s.kind == OK_IMM:
        a_mov_ri(&x.a, H_RCX, <uint64_t>s.imm)
        a_store(&x.a, 8, d.m, H_RCX)
    else:
        a_load(&x.a, sz, H_RCX, s.m)
        a_store(&x.a, sz, d.m, H_RCX)
    zero_upper(x, d, sz)

cdef void e_alu(JCtx* x, int op, int sz, Opd d, Opd s) noexcept nogil:
    """d op= s (group-1 op; CMP leaves d)."""
    if d.kind == OK_REG:
        if s.kind == OK_REG:
            a_alu_rr(&x.a, op, sz, d.reg, s.reg)
        elif s.kind == OK_MEM:
            a_alu_rm(&x.a, op, sz, d.reg, s.m)
        else:
            a_alu_ri(&x.a, op, sz, d.reg, s.imm)
        return
    if s.kind == OK_REG:
        a_alu_mr(&x.a, op, sz, d.m, s.reg)
    elif s.kind == OK_IMM:
        a_alu_mi(&x.a, op, sz, d.m, s.imm)
    else:
        a_load(&x.a, sz, H_RCX, s.m)
        a_alu_mr(&x.a, op, sz, d.m, H_RCX)
    if op != 7:
        zero_upper(x, d, sz)

cdef void e_test(JCtx* x, int sz, Opd d, Opd s) noexcept nogil:
    if s.kind == OK_IMM:
        if d.kind == OK_REG:
            a_test_ri(&x.a, sz, d.reg, s.imm)
        else:
            a_test_mi(&x.a, sz, d.m, s.imm)
        return
    if s.kind == OK_MEM and d.kind == OK_MEM:
        a_load(&x.a, sz, H_RCX, s.m)
        s = opd_reg(H_RCX)
    cdef Opd t
    if s.kind == OK_MEM:
        t = s
        s = d
        d = t
    if d.kind == OK_REG:
        a_test_rr(&x.a, sz, d.reg, s.reg)
    else:
        a_rm(&x.a, 0x84 if sz == 1 else 0x85, sz, s.reg, d.m)

# ---- guest memory ----

cdef void e_addr(JCtx* x, const Uop* u, int with_seg) noexcept nogil:
    """RAX = the linear address of u's memory operand (may use RCX, RDX);
    with_seg 0: the offset only (LEA)."""
    cdef int hb = H_NONE, hi = H_NONE
    cdef int64_t disp = u.disp
    if u.base != NOREG:
        hb = G2H[u.base]
        if hb < 0:
            a_load(&x.a, 8, H_RCX, greg_mem(u.base))
            hb = H_RCX
    if u.index != NOREG:
        hi = G2H[u.index]
        if hi < 0:
            a_load(&x.a, 8, H_RDX, greg_mem(u.index))
            hi = H_RDX
    if fits32(disp):
        if hb == H_NONE and hi == H_NONE:
            a_mov_ri(&x.a, H_RAX, <uint64_t>disp)
        else:
            a_lea(&x.a, 4 if u.asz32 else 8, H_RAX, mem_idx(hb, hi, u.scale, <int32_t>disp))
    else:
        a_mov_ri(&x.a, H_RAX, <uint64_t>disp)
        if hb != H_NONE or hi != H_NONE:
            if hb == H_NONE:
                a_lea(&x.a, 8, H_RAX, mem_idx(H_RAX, hi, u.scale, 0))
            else:
                a_lea(&x.a, 8, H_RAX, mem_idx(H_RAX, hb, 0, 0))
                if hi != H_NONE:
                    a_lea(&x.a, 8, H_RAX, mem_idx(H_RAX, hi, u.scale, 0))
        if u.asz32:
            a_mov_rr(&x.a, 4, H_RAX, H_RAX)
    if with_seg and u.seg != SEG_NONE:
        a_alu_rm(&x.a, 0, 8, H_RAX, cpu_mem(OFF_SEG_BASE + 8 * u.seg))

cdef void e_probe_rax(JCtx* x, int acc, int sz, uint32_t retry) noexcept nogil:
    """The linear address is in RAX: look it up in the TLB for an access of
    kind acc and size sz; on a hit RAX becomes the host address. retry:
    where the slow path goes back to once it filled the entry."""
    cdef uint32_t f, si
    cdef int32_t tagoff = TLB_OFF_TAG_R if acc == ACC_R else TLB_OFF_TAG_W
    if x.cached:
        # the cache model (core/timing.pxi cache_access): a line other than
        # this vCPU's last one goes to C (the flags were saved for the probe)
        a_mov_rr(&x.a, 8, H_RDX, H_RAX)
        a_shift_ri(&x.a, 5, 8, H_RDX, 6)
        a_alu_rm(&x.a, 7, 8, H_RDX, cpu_mem(OFF_CACHE_LAST))
        f = a_jcc32(&x.a, CC_NE)
        si = stub_add(x, f, ST_CACHE, x.k)
        x.stubs[si].retry = x.a.pos
    # index = (va >> 12) & (TLB_SIZE - 1), scaled to the entry size: with
    # 64-byte entries both at once, (va >> 6) & ((TLB_SIZE - 1) << 6)
    a_mov_rr(&x.a, 8, H_RCX, H_RAX)
    if TLB_ESZ == 64:
        a_shift_ri(&x.a, 5, 8, H_RCX, 6)
        a_alu_ri(&x.a, 4, 4, H_RCX, (TLB_SIZE - 1) << 6)
    else:
        a_shift_ri(&x.a, 5, 8, H_RCX, 12)
        a_alu_ri(&x.a, 4, 4, H_RCX, TLB_SIZE - 1)
        a_imul_rri(&x.a, 4, H_RCX, H_RCX, TLB_ESZ)
    # tag = page of the access's last byte | supervisor bit: a page-crossing access misses
    if sz == 1:
        a_mov_rr(&x.a, 8, H_RDX, H_RAX)
    else:
        a_lea(&x.a, 8, H_RDX, mem_at(H_RAX, sz - 1))
    a_alu_ri(&x.a, 4, 8, H_RDX, -4096)
    if x.tlbm_pcid:
        a_alu_rm(&x.a, 1, 8, H_RDX, mem_at(H_R15, OFF_TLBM))   # the PCID's slot is known at run time only
    elif x.tlbm:
        a_alu_ri(&x.a, 1, 8, H_RDX, 1)
    a_alu_rm(&x.a, 7, 8, H_RDX, mem_idx(H_R15, H_RCX, 0, OFF_TLB + tagoff))
    f = a_jcc32(&x.a, CC_NE)
    si = stub_add(x, f, ST_SLOW, x.k)
    x.stubs[si].retry = retry
    x.stubs[si].szacc = <uint32_t>sz | (<uint32_t>acc << 8)
    a_alu_rm(&x.a, 0, 8, H_RAX, mem_idx(H_R15, H_RCX, 0, OFF_TLB + TLB_OFF_ADDEND))

cdef inline int alu_op_of(const Uop* u) noexcept nogil:
    """The group-1 operation of an ALU uop e_alu_uop emits, else -1."""
    cdef uop_fn f = u.fn
    if f == op_add_rr or f == op_add_ri or f == op_add_rm:
        return 0
    if f == op_sub_rr or f == op_sub_ri:
        return 5
    if f == op_cmp_rr or f == op_cmp_ri or f == op_cmp_mi or f == op_cmp_rm64:
        return 7
    if f == op_and_rr or f == op_and_ri:
        return 4
    if f == op_or_rr:
        return 1
    if f == op_xor_rr:
        return 6
    if f == op_alu_rm_r or f == op_alu_rm_imm or f == op_alu_r_rm or f == op_logic_rm or f == op_alu_a_imm:
        return u.sub
    return -1

cdef inline int flags_only_for_faults(JCtx* x) noexcept nogil:
    """At the memory access of uop x.k, are the flags in host EFLAGS seen by
    nothing but a fault or bail of this access? They are when the previous
    uop computed them with a register ALU operation (JCtx.rec: redone in
    the slow path) and they are overwritten before anything reads them:
    by this instruction (an ALU operation on memory), or by the next one
    (a register ALU operation) right after a plain load."""
    cdef const Uop* u = &x.u0[x.k]
    cdef const Uop* n
    cdef uop_fn f = u.fn
    cdef int op
    if x.fl != FL_HOST or x.k == 0 or x.rec_k != x.k - 1 or u.lock or u.rep or u.asz32:
        return 0
    op = alu_op_of(u)
    if op >= 0:
        return op != 2 and op != 3
    if not (u.mem and (f == op_mov_r_rm or f == op_load32 or f == op_mov_r64_rm64
                       or f == op_movzx or f == op_movsx or f == op_movzx_m8)):
        return 0
    if x.u0[x.k + 1].fn == NULL:
        return 0
    n = &x.u0[x.k + 1]
    op = alu_op_of(n)
    if op < 0 or op == 2 or op == 3 or n.mem or n.fn == op_cmp_mi or n.osz < 4 or n.lock or n.asz32:
        return 0
    # (and e_alu_uop takes it: a 64-bit immediate must fit 32 bits)
    if (n.fn == op_add_ri or n.fn == op_sub_ri or n.fn == op_cmp_ri or n.fn == op_and_ri
            or n.fn == op_alu_rm_imm or n.fn == op_alu_a_imm):
        return n.osz != 8 or fits32(imm_sized(n.imm, 8))
    return 1

cdef inline void e_probe(JCtx* x, const Uop* u, int acc, int sz) noexcept nogil:
    """RAX = host address of u's memory operand (a sz-byte access of kind acc)."""
    cdef uint32_t retry
    if flags_only_for_faults(x):
        x.fl = FL_RECIPE          # (no save: a stub that leaves redoes them; the probe clobbers EFLAGS)
    else:
        fl_save(x)
    retry = x.a.pos
    e_addr(x, u, 1)
    e_probe_rax(x, acc, sz, retry)

cdef inline void e_probe_stack(JCtx* x, int32_t delta, int acc, int sz) noexcept nogil:
    """RAX = host address of guest RSP + delta."""
    cdef uint32_t retry
    fl_save(x)
    retry = x.a.pos
    a_lea(&x.a, 8, H_RAX, mem_at(G2H[4], delta))
    e_probe_rax(x, acc, sz, retry)

# ---- block exits ----

cdef void e_exit_rcx(JCtx* x) noexcept nogil:
    """Leave for the guest RIP in RCX (an indirect branch): straight to the
    target's compiled code when the vCPU's indirect-branch table
    (Cpu.ibl, core/jit_runtime.pxi) has it under the current stamp and no
    event is pending, else through the dispatcher, which learns it."""
    cdef uint32_t f1, f2, f3
    fl_save(x)
    xc_flush(x)
    e_charge(x, 1)
    a_mov_rr(&x.a, 8, H_RDX, H_RCX)
    a_shift_ri(&x.a, 5, 8, H_RDX, 9)                    # SHR 9
    a_alu_rr(&x.a, 6, 8, H_RDX, H_RCX)                  # XOR: the hash
    a_alu_ri(&x.a, 4, 4, H_RDX, IBL_SIZE - 1)           # AND
    a_shift_ri(&x.a, 4, 4, H_RDX, 4)                    # SHL 4: 16-byte entries
    a_alu_rm(&x.a, 7, 8, H_RCX, mem_idx(H_R15, H_RDX, 0, OFF_IBL))
    f1 = a_jcc32(&x.a, CC_NE)
    a_load(&x.a, 4, H_RAX, mem_idx(H_R15, H_RDX, 0, OFF_IBL + 12))
    a_alu_rm(&x.a, 7, 4, H_RAX, cpu_mem(OFF_IBL_STAMP))
    f2 = a_jcc32(&x.a, CC_NE)
    a_alu_mi(&x.a, 7, 4, cpu_mem(OFF_EVENTS), 0)
    f3 = a_jcc32(&x.a, CC_NE)
    a_load(&x.a, 4, H_RAX, mem_idx(H_R15, H_RDX, 0, OFF_IBL + 8))
    a_mov_ri(&x.a, H_RDX, <uint64_t>x.j.base)
    a_alu_rr(&x.a, 0, 8, H_RAX, H_RDX)                  # ADD
    a_jmp_r(&x.a, H_RAX)
    a_bind(&x.a, f1, x.a.pos)
    a_bind(&x.a, f2, x.a.pos)
    a_bind(&x.a, f3, x.a.pos)
    e_charge(x, -1)
    if x.refund:
        a_lea(&x.a, 8, H_R14, mem_at(H_R14, -x.refund))
    a_store(&x.a, 8, cpu_mem(OFF_RIP), H_RCX)
    a_store_imm(&x.a, 4, cpu_mem(OFF_JIT_K), x.k)
    a_mov_ri(&x.a, H_RAX, R_BRANCH)
    jump_to_exit(x)

cdef void e_exit_direct(JCtx* x, uint64_t target) noexcept nogil:
    """Leave for a known guest RIP: a jump that is patched to chain to the
    target's compiled code, and until then goes to an exit stub. A target
    on another virtual page is not linked (its page may map elsewhere in
    another address space): it is looked up like an indirect branch."""
    cdef uint32_t f, si
    fl_save(x)
    xc_flush(x)
    if (target ^ x.b.vrip) >> 12:
        a_mov_ri(&x.a, H_RCX, target)
        e_exit_rcx(x)
        return
    e_charge(x, 1)
    if target <= x.b.vrip:
        # a backward edge: a stop request is seen at least once per loop
        a_alu_mi(&x.a, 7, 4, cpu_mem(OFF_EVENTS), 0)
        f = a_jcc32(&x.a, CC_NE)
        si = stub_add(x, f, ST_DIRECT, x.k)
        x.stubs[si].target = target
        x.stubs[si].retry = 0          # not a chain site
    f = a_jmp32(&x.a)
    si = stub_add(x, f, ST_DIRECT, x.k)
    x.stubs[si].target = target
    x.stubs[si].retry = 1              # a chain site

cdef void e_canonical_rcx(JCtx* x) noexcept nogil:
    """A branch target in RCX that is not canonical: the uop bails to the
    interpreter, whose handler raises #GP at the branch with nothing done
    (SDM JMP/CALL/RET in 64-bit mode). Clobbers RDX and the host flags."""
    cdef uint32_t f
    fl_save(x)
    a_mov_rr(&x.a, 8, H_RDX, H_RCX)
    a_shift_ri(&x.a, 4, 8, H_RDX, 16)         # SHL 16
    a_shift_ri(&x.a, 7, 8, H_RDX, 16)         # SAR 16: the sign-extended 48-bit address
    a_alu_rr(&x.a, 7, 8, H_RDX, H_RCX)        # CMP
    f = a_jcc32(&x.a, CC_NE)
    stub_add(x, f, ST_BAIL, x.k)

# ---- instructions ----

cdef int is_alu_fn(uop_fn f) noexcept nogil:
    return (f == op_alu_rm_r or f == op_alu_r_rm or f == op_alu_a_imm or f == op_alu_rm_imm
            or f == op_add_rr or f == op_sub_rr or f == op_cmp_rr or f == op_and_rr or f == op_or_rr
            or f == op_xor_rr or f == op_add_ri or f == op_sub_ri or f == op_cmp_ri or f == op_and_ri
            or f == op_cmp_rm64 or f == op_cmp_mi or f == op_add_rm or f == op_logic_rm)

cdef inline int bad_byte_reg(const Uop* u, int sz) noexcept nogil:
    """AH..BH (17..20) are not compiled: a byte operand in ModRM.reg or the
    register form of ModRM.rm."""
    return sz == 1 and (u.reg > 15 or (not u.mem and u.rm > 15))

cdef inline int bad_byte_rm(const Uop* u, int sz) noexcept nogil:
    """The same for instructions whose ModRM.reg is an opcode extension."""
    return sz == 1 and not u.mem and u.rm > 15

cdef int e_alu_uop(JCtx* x, const Uop* u) noexcept nogil:
    cdef uop_fn f = u.fn
    cdef int sz = u.osz, op = u.sub
    cdef Opd d, s
    cdef int mem_dst = 0, mem_src = 0
    if f != op_alu_a_imm and (bad_byte_reg(u, sz) if (f == op_alu_rm_r or f == op_alu_r_rm)
                              else bad_byte_rm(u, sz)):
        return -1                 # (op AL, imm8 has no ModRM)
    if f == op_add_rr or f == op_sub_rr or f == op_cmp_rr or f == op_and_rr or f == op_or_rr or f == op_xor_rr:
        op = (0 if f == op_add_rr else 5 if f == op_sub_rr else 7 if f == op_cmp_rr else
              4 if f == op_and_rr else 1 if f == op_or_rr else 6)
        d = opd_greg(u.reg)
        s = opd_greg(u.rm)
    elif f == op_add_ri or f == op_sub_ri or f == op_cmp_ri or f == op_and_ri:
        op = 0 if f == op_add_ri else 5 if f == op_sub_ri else 7 if f == op_cmp_ri else 4
        d = opd_greg(u.rm)
        s = opd_imm(imm_sized(u.imm, sz))
    elif f == op_alu_a_imm:
        d = opd_greg(0)
        s = opd_imm(imm_sized(u.imm, sz))
    elif f == op_alu_rm_r:
        s = opd_greg(u.reg)
        if u.mem:
            mem_dst = 1
        else:
            d = opd_greg(u.rm)
    elif f == op_alu_rm_imm:
        s = opd_imm(imm_sized(u.imm, sz))
        if u.mem:
            mem_dst = 1
        else:
            d = opd_greg(u.rm)
    elif f == op_cmp_mi:
        op = 7
        s = opd_imm(imm_sized(u.imm, sz))
        mem_dst = 1
    elif f == op_alu_r_rm or f == op_cmp_rm64 or f == op_add_rm or f == op_logic_rm:
        if f == op_cmp_rm64:
            op = 7
        elif f == op_add_rm:
            op = 0
        d = opd_greg(u.reg)
        if u.mem:
            mem_src = 1
        else:
            s = opd_greg(u.rm)
    else:
        return -1
    if s.kind == OK_IMM and sz == 8 and not fits32(s.imm):
        return -1
    if op == 2 or op == 3:
        fl_to_host(x)             # ADC/SBB read CF
        if mem_dst or mem_src:
            return -1             # (the probe would clobber it again)
    if mem_dst:
        e_probe(x, u, ACC_R if op == 7 else ACC_W, sz)
        d = opd_host_mem(H_RAX)
    elif mem_src:
        e_probe(x, u, ACC_R, sz)
        s = opd_host_mem(H_RAX)
    e_alu(x, op, sz, d, s)
    x.fl = FL_HOST
    if (sz >= 4 and d.kind == OK_REG and (s.kind == OK_REG or s.kind == OK_IMM)
            and op != 2 and op != 3):
        x.rec_op = op
        x.rec_sz = sz
        x.rec_d = d.reg
        x.rec_s = s.reg if s.kind == OK_REG else -1
        x.rec_imm = <int32_t>s.imm if s.kind == OK_IMM else 0
        x.rec_k = x.k
    return 0

cdef int e_test_uop(JCtx* x, const Uop* u) noexcept nogil:
    cdef uop_fn f = u.fn
    cdef int sz = u.osz
    cdef Opd d, s
    if f != op_test_a_imm and (bad_byte_reg(u, sz) if (f == op_test_rm_r or f == op_test_rr)
                               else bad_byte_rm(u, sz)):
        return -1                 # (TEST AL, imm8 has no ModRM: its rm field means nothing)
    if f == op_test_rr:
        d = opd_greg(u.reg)
        s = opd_greg(u.rm)
    elif f == op_test_a_imm:
        d = opd_greg(0)
        s = opd_imm(imm_sized(u.imm, sz))
    elif f == op_test_rm_r or f == op_test_rm_imm:
        s = opd_greg(u.reg) if f == op_test_rm_r else opd_imm(imm_sized(u.imm, sz))
        if u.mem:
            e_probe(x, u, ACC_R, sz)
            d = opd_host_mem(H_RAX)
        else:
            d = opd_greg(u.rm)
    else:
        return -1
    if s.kind == OK_IMM and sz == 8 and not fits32(s.imm):
        return -1
    e_test(x, sz, d, s)
    x.fl = FL_HOST
    return 0

cdef int e_unary_uop(JCtx* x, const Uop* u) noexcept nogil:
    """INC DEC NOT NEG."""
    cdef uop_fn f = u.fn
    cdef int sz = u.osz, op
    cdef Opd d
    if bad_byte_rm(u, sz):
        return -1
    op = (0x10 if (f == op_inc or f == op_inc_r) else 0x11 if (f == op_dec or f == op_dec_r)
          else 2 if f == op_not else 3)
    if op >= 0x10:
        fl_to_host(x)             # INC/DEC keep CF
        if u.mem:
            return -1
    if u.mem:
        e_probe(x, u, ACC_W, sz)
        d = opd_host_mem(H_RAX)
    else:
        d = opd_greg(u.rm)
    if d.kind == OK_REG:
        a_unary(&x.a, op, sz, d.reg)
    elif op >= 0x10:
        a_rm(&x.a, 0xfe if sz == 1 else 0xff, sz, op - 0x10, d.m)
    else:
        a_rm(&x.a, 0xf6 if sz == 1 else 0xf7, sz, op, d.m)
    zero_upper(x, d, sz)
    if op != 2:
        x.fl = FL_HOST
    return 0

cdef int e_mov_high_byte_src(JCtx* x, const Uop* u) noexcept nogil:
    """MOV r/m8, AH/CH/DH/BH (88 /r without REX): bits 15:8 of the guest
    register through host DH (MOVZX EDX, DH), flags untouched."""
    cdef int g = u.reg - 17                  # AH, CH, DH, BH: RAX, RCX, RDX, RBX
    if u.mem:
        e_probe(x, u, ACC_W, 1)
    e_mov(x, 4, opd_reg(H_RDX), opd_greg(g))
    a_byte(&x.a, 0x0f)
    a_byte(&x.a, 0xb6)
    a_byte(&x.a, 0xd6)                       # MOVZX EDX, DH
    e_mov(x, 1, opd_host_mem(H_RAX) if u.mem else opd_greg(u.rm), opd_reg(H_RDX))
    return 0

cdef int e_mov_uop(JCtx* x, const Uop* u) noexcept nogil:
    cdef uop_fn f = u.fn
    cdef int sz = u.osz
    cdef Opd d, s
    if f == op_mov_rm_r and sz == 1 and 17 <= u.reg <= 20 and (u.mem or u.rm <= 15):
        return e_mov_high_byte_src(x, u)    # (gzip's put_short stores AH)
    if bad_byte_reg(u, sz) if not (f == op_mov_rm_imm or f == op_store_imm or f == op_mov_a_moffs
                                   or f == op_mov_moffs_a) else bad_byte_rm(u, sz):
        return -1
    if f == op_mov_rr64 or f == op_mov_rr32:
        e_mov(x, sz, opd_greg(u.reg), opd_greg(u.rm))
        return 0
    if f == op_mov_r_imm:
        if sz == 1 and u.reg > 15:
            return -1
        e_mov(x, sz, opd_greg(u.reg), opd_imm(<int64_t>u.imm))
        return 0
    if f == op_mov_r_rm or f == op_load32 or f == op_mov_r64_rm64 or f == op_mov_a_moffs:
        d = opd_greg(0 if f == op_mov_a_moffs else u.reg)
        if u.mem or f == op_mov_a_moffs:
            e_probe(x, u, ACC_R, sz)
            s = opd_host_mem(H_RAX)
        else:
            s = opd_greg(u.rm)
        e_mov(x, sz, d, s)
        return 0
    if f == op_mov_rm_r or f == op_store64 or f == op_store32 or f == op_mov_moffs_a:
        s = opd_greg(0 if f == op_mov_moffs_a else u.reg)
        if u.mem or f == op_mov_moffs_a:
            e_probe(x, u, ACC_W, sz)
            d = opd_host_mem(H_RAX)
        else:
            d = opd_greg(u.rm)
        e_mov(x, sz, d, s)
        return 0
    if f == op_mov_rm_imm or f == op_store_imm:
        s = opd_imm(<int64_t>(u.imm & SZ_MASK[sz]) if sz < 8 else <int64_t>u.imm)
        if sz == 8 and not fits32(s.imm):
            return -1
        if u.mem:
            e_probe(x, u, ACC_W, sz)
            d = opd_host_mem(H_RAX)
        else:
            d = opd_greg(u.rm)
        e_mov(x, sz, d, s)
        return 0
    return -1

cdef int e_lea_uop(JCtx* x, const Uop* u) noexcept nogil:
    """LEA: the offset, no segment base, truncated to the operand size."""
    cdef int sz = u.osz
    cdef int h = G2H[u.reg]
    cdef int hb = G2H[u.base] if u.base != NOREG else H_NONE
    cdef int hi = G2H[u.index] if u.index != NOREG else H_NONE
    if h >= 0 and sz >= 4 and fits32(u.disp) and hb != -1 and hi != -1 and (hb != H_NONE or hi != H_NONE):
        a_lea(&x.a, sz, h, mem_idx(hb, hi, u.scale, <int32_t>u.disp))
        return 0
    e_addr(x, u, 0)
    if sz == 4:
        a_mov_rr(&x.a, 4, H_RAX, H_RAX)
    e_mov(x, 8 if sz == 4 else sz, opd_greg(u.reg), opd_reg(H_RAX))
    return 0

cdef int e_movx_uop(JCtx* x, const Uop* u) noexcept nogil:
    """MOVZX / MOVSX / MOVSXD."""
    cdef uop_fn f = u.fn
    cdef int dsz = u.osz, ssz, signed
    cdef uint32_t opc
    cdef int hd = G2H[u.reg]
    cdef int t
    if f == op_movzx_m8 or f == op_movzx_r8:
        ssz = 1
        signed = 0
    else:
        ssz = u.sub
        signed = f == op_movsx
    if ssz >= dsz:
        return -1                 # (MOVSXD without REX.W: a plain move; rare)
    if not u.mem and ssz == 1 and u.rm > 15:
        return -1
    if ssz == 4:
        opc = 0x63
        if not signed:
            return -1
    elif ssz == 1:
        opc = 0x0fbe if signed else 0x0fb6
    else:
        opc = 0x0fbf if signed else 0x0fb7
    t = hd if hd >= 0 else H_RCX
    if u.mem:
        e_probe(x, u, ACC_R, ssz)
        a_movx_m(&x.a, opc, dsz, t, mem_at(H_RAX, 0))
    elif G2H[u.rm] >= 0:
        a_movx(&x.a, opc, dsz, t, G2H[u.rm], ssz == 1)
    else:
        a_movx_m(&x.a, opc, dsz, t, greg_mem(u.rm))
    if hd < 0:
        e_mov(x, 8 if dsz == 4 else dsz, opd_greg(u.reg), opd_reg(H_RCX))
    return 0

cdef int e_shift_uop(JCtx* x, const Uop* u) noexcept nogil:
    cdef uop_fn f = u.fn
    cdef int sz = u.osz, op, n
    cdef Opd d
    cdef int by_cl = (u.opc & 2) != 0
    op = (4 if f == op_shl else 5 if f == op_shr else 7 if f == op_sar else 0 if f == op_rol else 1)
    if bad_byte_rm(u, sz):
        return -1
    if by_cl:
        if u.mem or (sz == 4 and G2H[u.rm] < 0):
            return -1             # (the zero-extension would depend on the count)
        d = opd_greg(u.rm)
        # a masked count of 0 leaves the flags: they must be in the host first
        fl_to_host(x)
        if G2H[1] >= 0:
            a_mov_rr(&x.a, 4, H_RCX, G2H[1])
        else:
            a_load(&x.a, 4, H_RCX, greg_mem(1))
        if d.kind == OK_REG:
            a_shift_rcl(&x.a, op, sz, d.reg)
        else:
            a_rm(&x.a, 0xd2 if sz == 1 else 0xd3, sz, op, d.m)
        x.fl = FL_HOST
        return 0
    n = <int>(u.imm & (0x3f if sz == 8 else 0x1f))
    if n == 0:
        if u.mem:
            return -1
        d = opd_greg(u.rm)
        if sz == 4:
            if d.kind == OK_REG:
                a_mov_rr(&x.a, 4, d.reg, d.reg)
            else:
                zero_upper(x, d, 4)
        return 0
    if op <= 1:
        fl_to_host(x)             # rotates keep SF ZF AF PF
    if u.mem:
        if op <= 1:
            return -1
        e_probe(x, u, ACC_W, sz)
        d = opd_host_mem(H_RAX)
    else:
        d = opd_greg(u.rm)
    if d.kind == OK_REG:
        a_shift_ri(&x.a, op, sz, d.reg, n)
    else:
        if n == 1:
            a_rm(&x.a, 0xd0 if sz == 1 else 0xd1, sz, op, d.m)
        else:
            a_rm(&x.a, 0xc0 if sz == 1 else 0xc1, sz, op, d.m)
            a_byte(&x.a, n)
        zero_upper(x, d, sz)
    x.fl = FL_HOST
    return 0

cdef int e_imul_uop(JCtx* x, const Uop* u) noexcept nogil:
    cdef int sz = u.osz
    cdef int hd = G2H[u.reg], t
    cdef Opd s
    if sz == 1:
        return -1
    if u.fn == op_imul_r_rm_imm and not fits32(<int64_t>u.imm):
        return -1
    if u.mem:
        e_probe(x, u, ACC_R, sz)
        s = opd_host_mem(H_RAX)
    else:
        s = opd_greg(u.rm)
    t = hd if hd >= 0 else H_RCX
    if u.fn == op_imul_r_rm:
        if hd < 0:
            a_load(&x.a, 8, H_RCX, greg_mem(u.reg))
        if s.kind == OK_REG:
            a_imul_rr(&x.a, sz, t, s.reg)
        else:
            a_rm(&x.a, 0x0faf, sz, t, s.m)
    else:
        if s.kind == OK_REG:
            a_imul_rri(&x.a, sz, t, s.reg, <int32_t>imm_sized(u.imm, sz))
        else:
            if fits8(imm_sized(u.imm, sz)):
                a_rm(&x.a, 0x6b, sz, t, s.m)
                a_byte(&x.a, <uint32_t>u.imm & 0xff)
            else:
                a_rm(&x.a, 0x69, sz, t, s.m)
                if sz == 2:
                    a_byte(&x.a, <uint32_t>u.imm & 0xff)
                    a_byte(&x.a, (<uint32_t>u.imm >> 8) & 0xff)
                else:
                    a_u32(&x.a, <uint32_t>u.imm)
    if hd < 0:
        e_mov(x, 8 if sz == 4 else sz, opd_greg(u.reg), opd_reg(H_RCX))
    x.fl = FL_HOST
    return 0

cdef int e_setcc_uop(JCtx* x, const Uop* u) noexcept nogil:
    cdef int cc = u.opc & 15
    if u.mem or u.rm > 15:
        return -1
    fl_to_host(x)
    if G2H[u.rm] >= 0:
        a_setcc(&x.a, cc, G2H[u.rm])
    else:
        a_setcc(&x.a, cc, H_RCX)
        a_store(&x.a, 1, greg_mem(u.rm), H_RCX)
    return 0

cdef int e_cmov_uop(JCtx* x, const Uop* u) noexcept nogil:
    """CMOVcc: the source is read (and may fault) whatever the condition; a
    32-bit destination is zero-extended even when nothing moves."""
    cdef int cc = u.opc & 15, sz = u.osz
    cdef int hd = G2H[u.reg], t
    if sz == 1:
        return -1
    if u.mem:
        e_probe(x, u, ACC_R, sz)
        a_load(&x.a, sz, H_RDX, mem_at(H_RAX, 0))
    elif G2H[u.rm] >= 0:
        a_mov_rr(&x.a, 8, H_RDX, G2H[u.rm])
    else:
        a_load(&x.a, 8, H_RDX, greg_mem(u.rm))
    t = hd
    if hd < 0:
        a_load(&x.a, 8, H_RCX, greg_mem(u.reg))
        t = H_RCX
    fl_to_host(x)
    a_cmov_rr(&x.a, cc, sz, t, H_RDX)
    if hd < 0:
        a_store(&x.a, 8 if sz >= 4 else 2, greg_mem(u.reg), H_RCX)
    return 0

cdef int e_push_uop(JCtx* x, const Uop* u) noexcept nogil:
    """PUSH r64 / imm: the store first (a fault leaves RSP), then RSP.
    PUSH RSP stores the old RSP."""
    if u.osz != 8 or G2H[4] < 0:
        return -1
    if u.fn == op_push_imm and not fits32(<int64_t>u.imm):
        return -1
    e_probe_stack(x, -8, ACC_W, 8)
    if u.fn == op_push_imm:
        a_store_imm(&x.a, 8, mem_at(H_RAX, 0), <int64_t>u.imm)
    else:
        e_mov(x, 8, opd_host_mem(H_RAX), opd_greg(u.reg))
    a_lea(&x.a, 8, G2H[4], mem_at(G2H[4], -8))
    return 0

cdef int e_pop_uop(JCtx* x, const Uop* u) noexcept nogil:
    if u.osz != 8 or G2H[4] < 0:
        return -1
    e_probe_stack(x, 0, ACC_R, 8)
    a_load(&x.a, 8, H_RCX, mem_at(H_RAX, 0))
    a_lea(&x.a, 8, G2H[4], mem_at(G2H[4], 8))
    e_mov(x, 8, opd_greg(u.reg), opd_reg(H_RCX))
    return 0

cdef inline int stack_kind(const Uop* u) noexcept nogil:
    """1: PUSH r64 (not RSP) or PUSH imm32; 2: POP r64 (not RSP); else 0."""
    if u.osz != 8 or u.lock or u.asz32 or u.rep or G2H[4] < 0:
        return 0
    if (u.fn == op_push_r and u.reg != 4) or (u.fn == op_push_imm and fits32(<int64_t>u.imm)):
        return 1
    if u.fn == op_pop_r and u.reg != 4:
        return 2
    return 0

cdef uint32_t stack_run(const Uop* u0, uint32_t k, uint32_t n) noexcept nogil:
    """The length of a run of two or more pushes (or pops) starting at uop k
    (not the block's last uop), else 0: such a run is one stack access."""
    cdef int kind = stack_kind(&u0[k])
    cdef uint32_t g = 1
    if kind == 0:
        return 0
    while k + g < n - 1 and g < 16 and stack_kind(&u0[k + g]) == kind:
        g += 1
    return g if g >= 2 else 0

cdef void e_stack_run(JCtx* x, const Uop* u, uint32_t g) noexcept nogil:
    """g consecutive pushes (or pops), as in a prologue or an epilogue: one
    TLB probe for the 8*g bytes they touch. Should those bytes not be one
    plain RAM page (they cross a page, or one of them faults), cold code
    runs the g instructions one by one, each with its own probe (exact
    faults, as for any access)."""
    cdef uint32_t i, si = x.n_stubs
    cdef int pushes = stack_kind(u) == 1
    if pushes:
        e_probe_stack(x, -8 * <int32_t>g, ACC_W, 8 * g)
        for i in range(g):
            # the i-th push stores just below the (i-1)-th
            if u[i].fn == op_push_imm:
                a_store_imm(&x.a, 8, mem_at(H_RAX, 8 * (g - 1 - i)), <int64_t>u[i].imm)
            else:
                e_mov(x, 8, opd_host_mem_at(H_RAX, 8 * (g - 1 - i)), opd_greg(u[i].reg))
        a_lea(&x.a, 8, G2H[4], mem_at(G2H[4], -8 * <int32_t>g))
    else:
        e_probe_stack(x, 0, ACC_R, 8 * g)
        for i in range(g):
            if G2H[u[i].reg] >= 0:
                a_load(&x.a, 8, G2H[u[i].reg], mem_at(H_RAX, 8 * i))
            else:
                a_load(&x.a, 8, H_RCX, mem_at(H_RAX, 8 * i))
                e_mov(x, 8, opd_greg(u[i].reg), opd_reg(H_RCX))
        a_lea(&x.a, 8, G2H[4], mem_at(G2H[4], 8 * <int32_t>g))
    if si < x.n_stubs and x.stubs[si].kind == ST_SLOW:
        x.stubs[si].split_g = g
        x.stubs[si].after = x.a.pos

cdef void e_stack_split(JCtx* x, uint32_t k, uint32_t g, uint32_t after) noexcept nogil:
    """A stack run's cold path: its g pushes (pops) from uop k one at a
    time, then back to the code after the run. The flags were saved before
    the run's probe, and no push or pop changes them."""
    cdef uint32_t i
    for i in range(g):
        x.k = k + i
        x.fl = FL_SAVED
        if stack_kind(&x.u0[k + i]) == 1:
            e_push_uop(x, &x.u0[k + i])
        else:
            e_pop_uop(x, &x.u0[k + i])
    a_bind(&x.a, a_jmp32(&x.a), after)

cdef int e_leave_uop(JCtx* x, const Uop* u) noexcept nogil:
    """LEAVE: RSP = RBP + 8, RBP = [RBP]."""
    cdef uint32_t retry
    if u.osz != 8 or G2H[4] < 0 or G2H[5] < 0:
        return -1
    fl_save(x)
    retry = x.a.pos
    a_mov_rr(&x.a, 8, H_RAX, G2H[5])
    e_probe_rax(x, ACC_R, 8, retry)
    a_load(&x.a, 8, H_RCX, mem_at(H_RAX, 0))
    a_lea(&x.a, 8, G2H[4], mem_at(G2H[5], 8))
    a_mov_rr(&x.a, 8, G2H[5], H_RCX)
    return 0

cdef int e_cbw_uop(JCtx* x, const Uop* u) noexcept nogil:
    cdef int ha = G2H[0], hd = G2H[2]
    if ha < 0 or hd < 0:
        return -1
    if u.fn == op_cbw:
        if u.osz == 8:
            a_movx(&x.a, 0x63, 8, ha, ha, 0)
        elif u.osz == 4:
            a_movx(&x.a, 0x0fbf, 4, ha, ha, 0)
        else:
            a_movx(&x.a, 0x0fbe, 2, ha, ha, 1)
        return 0
    if u.osz == 2:
        return -1
    fl_save(x)                    # SAR clobbers the host flags
    a_mov_rr(&x.a, u.osz, hd, ha)
    a_shift_ri(&x.a, 7, u.osz, hd, 63 if u.osz == 8 else 31)
    return 0

cdef int e_xchg_uop(JCtx* x, const Uop* u) noexcept nogil:
    cdef int sz = u.osz, g1, g2
    if u.mem or bad_byte_reg(u, sz):
        return -1
    if u.fn == op_xchg_a_r:
        g1 = 0
        g2 = u.reg
    else:
        g1 = u.reg
        g2 = u.rm
    e_mov(x, 8, opd_reg(H_RDX), opd_greg(g1))
    e_mov(x, sz, opd_greg(g1), opd_greg(g2))
    e_mov(x, sz, opd_greg(g2), opd_reg(H_RDX))
    return 0

# ---- branches (the block's last uop) ----

cdef int e_branch_uop(JCtx* x, const Uop* u) noexcept nogil:
    cdef uop_fn f = u.fn
    cdef uint32_t ft
    cdef int cc
    if f == op_jmp or f == op_jmp_fast or f == uop_fallthrough:
        e_exit_direct(x, u.imm)
        return 0
    if (f == op_jcc or f == op_jz or f == op_jnz or f == op_jcc_sub) and u.imm2:
        # a side exit: taken, it leaves through a stub; not taken, the block
        # goes on with the flags still in the host's EFLAGS
        fl_to_host(x)
        ft = a_jcc32(&x.a, u.sub)
        x.stubs[stub_add(x, ft, ST_SIDE, x.k)].target = u.imm
        return 0
    if f == op_jcc or f == op_jz or f == op_jnz or f == op_jcc_sub:
        cc = u.sub
        xc_flush(x)               # (for both paths: MOVDQU keeps EFLAGS)
        if x.fl == FL_HOST:
            fl_save(x)            # (LAHF/SETO/MOV keep EFLAGS for the Jcc)
            x.fl = FL_HOST
        fl_to_host(x)
        ft = a_jcc32(&x.a, cc)
        x.fl = FL_SAVED           # both paths: the flags are saved
        e_exit_direct(x, u.rip_next)
        a_bind(&x.a, ft, x.a.pos)
        e_exit_direct(x, u.imm)
        return 0
    if f == op_call:
        if G2H[4] < 0:
            return -1
        e_probe_stack(x, -8, ACC_W, 8)
        a_mov_ri(&x.a, H_RCX, u.rip_next)
        a_store(&x.a, 8, mem_at(H_RAX, 0), H_RCX)
        a_lea(&x.a, 8, G2H[4], mem_at(G2H[4], -8))
        e_exit_direct(x, u.imm)
        return 0
    if f == op_ret:
        if G2H[4] < 0:
            return -1
        e_probe_stack(x, 0, ACC_R, 8)
        a_load(&x.a, 8, H_RCX, mem_at(H_RAX, 0))
        e_canonical_rcx(x)
        a_lea(&x.a, 8, G2H[4], mem_at(G2H[4], 8 + <int32_t>(u.imm & 0xffff)))
        e_exit_rcx(x)
        return 0
    if f == op_jmp_ind or f == op_call_ind:
        if G2H[4] < 0:
            return -1
        if u.mem:
            e_probe(x, u, ACC_R, 8)
            a_load(&x.a, 8, H_RCX, mem_at(H_RAX, 0))
        elif G2H[u.rm] >= 0:
            a_mov_rr(&x.a, 8, H_RCX, G2H[u.rm])
        else:
            a_load(&x.a, 8, H_RCX, greg_mem(u.rm))
        e_canonical_rcx(x)
        if f == op_call_ind:
            # the target is read before the push (a fault in the push leaves RSP)
            a_store(&x.a, 8, cpu_mem(OFF_JIT_TMP), H_RCX)
            e_probe_stack(x, -8, ACC_W, 8)
            a_mov_ri(&x.a, H_RCX, u.rip_next)
            a_store(&x.a, 8, mem_at(H_RAX, 0), H_RCX)
            a_lea(&x.a, 8, G2H[4], mem_at(G2H[4], -8))
            a_load(&x.a, 8, H_RCX, cpu_mem(OFF_JIT_TMP))
        e_exit_rcx(x)
        return 0
    return -1

cdef int jit_covers(const Uop* u) noexcept nogil:
    """Does the compiler emit u as host code (rather than a call to its
    handler)? Only a first estimate: an emitter may still decline."""
    cdef uop_fn f = u.fn
    if jit_sse_kind(u):
        return 1
    if u.lock or u.asz32 or u.rep:
        return 0
    return (is_alu_fn(f) or f == op_test_rr or f == op_test_a_imm or f == op_test_rm_r
            or f == op_test_rm_imm or f == op_inc or f == op_dec or f == op_inc_r or f == op_dec_r
            or f == op_not or f == op_neg or f == op_mov_rr64 or f == op_mov_rr32 or f == op_mov_r_imm
            or f == op_mov_r_rm or f == op_load32 or f == op_mov_r64_rm64 or f == op_mov_a_moffs
            or f == op_mov_rm_r or f == op_store64 or f == op_store32 or f == op_mov_moffs_a
            or f == op_mov_rm_imm or f == op_store_imm or f == op_lea or f == op_lea64 or f == op_lea32
            or f == op_movzx or f == op_movsx or f == op_movzx_m8 or f == op_movzx_r8
            or f == op_shl or f == op_shr or f == op_sar or f == op_rol or f == op_ror
            or f == op_imul_r_rm or f == op_imul_r_rm_imm or f == op_setcc or f == op_cmovcc
            or f == op_push_r or f == op_push_imm or f == op_pop_r or f == op_leave
            or f == op_cbw or f == op_cwd or f == op_xchg_rm_r or f == op_xchg_a_r or f == op_nop
            or f == op_jmp or f == op_jmp_fast or f == uop_fallthrough or f == op_jcc or f == op_jz
            or f == op_jnz or f == op_jcc_sub or f == op_call or f == op_ret or f == op_jmp_ind
            or f == op_call_ind)

cdef int e_native(JCtx* x, const Uop* u) noexcept nogil:
    """Emit u as host code; -1 when it is left to the interpreter."""
    cdef uop_fn f = u.fn
    if jit_sse_kind(u):
        return e_sse_uop(x, u)
    if u.lock or u.asz32 or u.rep:
        return -1
    if f == op_nop:
        return 0
    if is_alu_fn(f):
        return e_alu_uop(x, u)
    if f == op_test_rr or f == op_test_a_imm or f == op_test_rm_r or f == op_test_rm_imm:
        return e_test_uop(x, u)
    if f == op_inc or f == op_dec or f == op_inc_r or f == op_dec_r or f == op_not or f == op_neg:
        return e_unary_uop(x, u)
    if f == op_lea or f == op_lea64 or f == op_lea32:
        return e_lea_uop(x, u)
    if f == op_movzx or f == op_movsx or f == op_movzx_m8 or f == op_movzx_r8:
        return e_movx_uop(x, u)
    if f == op_shl or f == op_shr or f == op_sar or f == op_rol or f == op_ror:
        return e_shift_uop(x, u)
    if f == op_imul_r_rm or f == op_imul_r_rm_imm:
        return e_imul_uop(x, u)
    if f == op_setcc:
        return e_setcc_uop(x, u)
    if f == op_cmovcc:
        return e_cmov_uop(x, u)
    if f == op_push_r or f == op_push_imm:
        return e_push_uop(x, u)
    if f == op_pop_r:
        return e_pop_uop(x, u)
    if f == op_leave:
        return e_leave_uop(x, u)
    if f == op_cbw or f == op_cwd:
        return e_cbw_uop(x, u)
    if f == op_xchg_rm_r or f == op_xchg_a_r:
        return e_xchg_uop(x, u)
    if jit_covers(u):
        r = e_mov_uop(x, u)
        if r == 0:
            return 0
        return e_branch_uop(x, u)
    return -1

cdef void e_fallback(JCtx* x, const Uop* u, uop_fn fn) noexcept nogil:
    """Run the uop's interpreter handler with the guest state in the Cpu."""
    cdef uint32_t f
    fl_save(x)
    xc_flush(x)
    e_store_guests(x, MAPPED_GUESTS, 10)
    a_store(&x.a, 8, cpu_mem(OFF_JIT_LEFT), H_R14)
    a_mov_rr(&x.a, 8, H_RDI, H_R15)
    a_mov_ri(&x.a, H_RSI, <uint64_t>u)
    a_mov_ri(&x.a, H_RDX, <uint64_t>fn)
    a_mov_ri(&x.a, H_RCX, <uint64_t>x.bi)
    e_call(x, <void*>jit_fallback)
    e_load_guests(x, MAPPED_GUESTS, 10)
    a_load(&x.a, 8, H_R14, cpu_mem(OFF_JIT_LEFT))
    a_test_rr(&x.a, 4, H_RAX, H_RAX)
    f = a_jcc32(&x.a, CC_NE)
    stub_add(x, f, ST_EXIT_K, x.k)
    x.fl = FL_SAVED
    xc_reset(x)

# ---- cold code ----

cdef void e_stub_call(JCtx* x, const Stub* s, void* fn, int with_szacc) noexcept nogil:
    """From a stub: fn(cpu, RAX[, s.szacc]) with what a C call clobbers
    kept: dirty XMMs written back, caller-saved guests around it, the
    site's XMMs reloaded. RAX is fn's result."""
    xc_flush_at(x, s)
    e_store_guests(x, CALLER_SAVED_GUESTS, 6)
    a_mov_rr(&x.a, 8, H_RSI, H_RAX)
    a_mov_rr(&x.a, 8, H_RDI, H_R15)
    if with_szacc:
        a_mov_ri(&x.a, H_RDX, s.szacc)
    e_call(x, fn)
    e_load_guests(x, CALLER_SAVED_GUESTS, 6)
    xc_reload(x, s.xsnap)

cdef void e_stub_flags(JCtx* x, const Stub* s) noexcept nogil:
    """A stub that leaves from a site where the flags were FL_RECIPE: redo
    and save them (the guest registers hold what the recipe needs)."""
    if s.rec_op >= 0:
        e_redo_flags(x, s.rec_op, s.rec_sz, s.rec_d, s.rec_s, s.rec_imm)
        a_lahf_seto(&x.a)
        a_store(&x.a, 4, cpu_mem(OFF_FSAVE), H_RAX)

cdef void e_stubs(JCtx* x) noexcept nogil:
    cdef uint32_t i = 0
    cdef Stub* s
    while i < x.n_stubs:            # (a side exit's code adds stubs)
        s = &x.stubs[i]
        i += 1
        a_bind(&x.a, s.field, x.a.pos)
        if s.kind == ST_BAIL_ENTRY:
            a_mov_ri(&x.a, H_RAX, x.b.vrip)
            a_store(&x.a, 8, cpu_mem(OFF_RIP), H_RAX)
            a_store_imm(&x.a, 4, cpu_mem(OFF_JIT_K), 0)
            a_mov_ri(&x.a, H_RAX, JIT_BAIL_ENTRY)
            jump_to_exit(x)
        elif s.kind == ST_SLOW:
            # fill the TLB entry in C, then try again; anything else: bail
            e_stub_call(x, s, <void*>jit_mem_fill, 1)
            a_test_rr(&x.a, 4, H_RAX, H_RAX)
            a_bind(&x.a, a_jcc32(&x.a, CC_E), s.retry)
            if s.split_g:
                xc_restore(x, s.xsnap)        # (the cache as the run's code after it expects; written back above)
                e_stack_split(x, s.k, s.split_g, s.after)
            else:
                e_stub_flags(x, s)
                a_store_imm(&x.a, 4, cpu_mem(OFF_JIT_K), s.k)
                a_mov_ri(&x.a, H_RAX, JIT_BAIL)
                jump_to_exit(x)
        elif s.kind == ST_CACHE:
            # cache_access(c, va) with the access's linear address (RAX), then back
            a_store(&x.a, 8, cpu_mem(OFF_JIT_TMP), H_RAX)
            e_stub_call(x, s, <void*>cache_access, 0)
            a_load(&x.a, 8, H_RAX, cpu_mem(OFF_JIT_TMP))
            a_bind(&x.a, a_jmp32(&x.a), s.retry)
        elif s.kind == ST_BAIL:
            e_stub_flags(x, s)
            xc_flush_at(x, s)
            a_store_imm(&x.a, 4, cpu_mem(OFF_JIT_K), s.k)
            a_mov_ri(&x.a, H_RAX, JIT_BAIL)
            jump_to_exit(x)
        elif s.kind == ST_EXIT_K:
            a_store_imm(&x.a, 4, cpu_mem(OFF_JIT_K), s.k)
            jump_to_exit(x)
        elif s.kind == ST_SIDE:
            # the Jcc left EFLAGS as they were: save them, give back the
            # instructions after the branch, and leave like a block's end
            x.k = s.k
            x.fl = FL_HOST
            fl_save(x)
            xc_flush_at(x, s)
            xc_restore(x, s.xsnap)
            x.refund = <int32_t>(x.b.ninsn - x.u0[s.k].ninsn)
            if x.refund:
                a_lea(&x.a, 8, H_R14, mem_at(H_R14, x.refund))
            e_exit_direct(x, s.target)
            x.refund = 0
        elif s.kind == ST_DIRECT:
            x.k = s.k
            e_charge(x, -1)
            if s.refund:
                a_lea(&x.a, 8, H_R14, mem_at(H_R14, -s.refund))
            a_mov_ri(&x.a, H_RAX, s.target)
            a_store(&x.a, 8, cpu_mem(OFF_RIP), H_RAX)
            a_store_imm(&x.a, 4, cpu_mem(OFF_JIT_K), s.k)
            if s.retry:
                a_store_imm(&x.a, 4, cpu_mem(OFF_JIT_SITE), x.off + s.field)
            a_mov_ri(&x.a, H_RAX, R_BRANCH)
            jump_to_exit(x)

cdef void e_block_exit(JCtx* x) noexcept nogil:
    """Every exit ends here: EAX is the result, jit_k the uop; record the
    block, mark the flags, write back the guest registers and account the
    instructions retired before this block."""
    cdef uint32_t i, f, at = x.a.pos
    for i in range(x.n_exit_fields):
        a_bind(&x.a, x.exit_fields[i], at)
    a_store_imm(&x.a, 4, cpu_mem(OFF_JIT_BLK), <uint32_t>x.bi)
    a_store_imm(&x.a, 4, cpu_mem(OFF_LF_OP), LF_JIT)
    e_store_guests(x, MAPPED_GUESTS, 10)
    a_load(&x.a, 8, H_RCX, cpu_mem(OFF_JIT_LIMIT))
    a_alu_rr(&x.a, 5, 8, H_RCX, H_R14)
    a_alu_ri(&x.a, 5, 8, H_RCX, x.b.ninsn)
    a_store(&x.a, 8, cpu_mem(OFF_ICOUNT), H_RCX)
    f = a_jmp32(&x.a)
    a_patch32(&x.a, f, <uint32_t>(<int64_t>x.j.exit_off - (<int64_t>x.off + f + 4)))

# ---- the compiler ----

cdef int jit_compile(Cpu* c, int32_t bi) noexcept nogil:
    """Compile block bi. 0: its code is in the cache; -1: it stays in the
    interpreter (and is not tried again while it lives)."""
    cdef Mach* m = c.m
    cdef Jit* j = m.jit
    cdef JitBlock* jb = &j.blocks[bi]
    cdef Block* b = &m.blocks[bi]
    cdef const Uop* u0 = &m.uops[b.uop_start]
    cdef const Uop* u
    cdef uint32_t n = 0, native = 0, k, est, f, g
    cdef int64_t off
    cdef JCtx* x
    cdef int r, sse = 0
    while u0[n].fn != NULL:
        if jit_covers(&u0[n]):
            native += 1
        if jit_sse_kind(&u0[n]) > sse:
            sse = jit_sse_kind(&u0[n])
        n += 1
    if b.mode & 4:
        native = 0            # 32-bit code (core/compat32.pxi: 4 GiB address wrap): interpreter only for now
    if native == 0 or n > JIT_MAX_STUBS // 3:
        jb.failed = 1
        j.n_failed += 1
        return -1
    est = 1024 + n * 512
    if est > JIT_MAX_BLOCK_CODE:
        est = JIT_MAX_BLOCK_CODE
    x = <JCtx*>malloc(sizeof(JCtx))
    if x == NULL:
        return -1
    off = jit_alloc(m, est)
    if off < 0 or jit_wr_begin(j, <uint32_t>off, est) != 0:
        free(x)
        jb.failed = 1
        j.n_failed += 1
        return -1
    x.a.buf = j.base + off
    x.a.pos = 0
    x.a.cap = est
    x.a.full = 0
    x.c = c
    x.m = m
    x.j = j
    x.b = b
    x.bi = bi
    x.u0 = u0
    x.off = <uint32_t>off
    x.fl = FL_SAVED
    x.tlbm = (c.tlbm & 1) != 0
    x.tlbm_pcid = (b.mode & MODE_PCID) != 0
    x.cached = (jit_variant(c) & JV_CACHE) != 0
    x.cov = (jit_variant(c) & JV_COV) != 0
    x.n_stubs = 0
    x.n_exit_fields = 0
    x.refund = 0
    x.rec_k = 0xffffffff
    xc_reset(x)
    # chain entry: the budget for the whole block
    x.k = 0
    a_alu_ri(&x.a, 5, 8, H_R14, b.ninsn)
    f = a_jcc32(&x.a, CC_B)
    stub_add(x, f, ST_BAIL_ENTRY, 0)
    if x.cov:
        e_cov_edge(x)
    jb.dispatch = x.a.pos
    if sse:
        e_sse_entry(x, sse == 2)
    k = 0
    while k < n:
        u = &u0[k]
        x.k = k
        g = stack_run(u0, k, n)
        if g:
            e_stack_run(x, u, g)
            k += g
            continue
        r = e_native(x, u) if jit_covers(u) else -1
        if r != 0:
            e_fallback(x, u, u.fn)
            if k == n - 1:
                # (a block's last uop does not return R_NEXT; should it, go on at the next RIP)
                a_mov_ri(&x.a, H_RAX, u.rip_next)
                a_store(&x.a, 8, cpu_mem(OFF_RIP), H_RAX)
                a_store_imm(&x.a, 4, cpu_mem(OFF_JIT_K), k)
                a_mov_ri(&x.a, H_RAX, R_BRANCH)
                jump_to_exit(x)
        k += 1
    e_stubs(x)
    e_block_exit(x)
    r = 0 if not x.a.full else -1
    jit_wr_end(j, <uint32_t>off, est)
    if r == 0:
        jb.code = <uint32_t>off
        jb.dispatch += <uint32_t>off
        jb.size = x.a.pos
        jb.in_head = 0
        jb.out_head = 0
        jb.variant = jit_variant(c)
        j.code_bytes += x.a.pos
        j.n_compiled += 1
        jit_commit(j, bi, <uint32_t>off, x.a.pos)
    else:
        jb.failed = 1
        j.n_failed += 1
    free(x)
    return r

# ---- the permanent code ----

cdef int jit_emit_fixed(Jit* j) noexcept nogil:
    """The entry trampoline (int enter(Cpu*, code)) at offset 0 and the
    common exit."""
    cdef Asm a
    cdef int i
    if mprotect(j.base, JIT_FIXED, PROT_READ | PROT_WRITE) != 0:
        return -1
    a.buf = j.base
    a.pos = 0
    a.cap = JIT_FIXED
    a.full = 0
    j.enter_off = 0
    a_push(&a, H_RBX)
    a_push(&a, H_RBP)
    a_push(&a, H_R12)
    a_push(&a, H_R13)
    a_push(&a, H_R14)
    a_push(&a, H_R15)
    a_alu_ri(&a, 5, 8, H_RSP, 8)              # 6 pushes + the return address: realign
    a_mov_rr(&a, 8, H_R15, H_RDI)
    a_mov_rr(&a, 8, H_RAX, H_RSI)            # (RSI is about to hold a guest register)
    a_load(&a, 8, H_R14, mem_at(H_R15, OFF_JIT_LEFT))
    for i in range(16):
        if G2H[i] >= 0:
            a_load(&a, 8, G2H[i], mem_at(H_R15, OFF_R + 8 * i))
    a_jmp_r(&a, H_RAX)
    a.pos = (a.pos + 15) & ~15
    j.exit_off = a.pos
    a_alu_ri(&a, 0, 8, H_RSP, 8)
    a_pop(&a, H_R15)
    a_pop(&a, H_R14)
    a_pop(&a, H_R13)
    a_pop(&a, H_R12)
    a_pop(&a, H_RBP)
    a_pop(&a, H_RBX)
    a_ret(&a)
    if mprotect(j.base, JIT_FIXED, PROT_READ | PROT_EXEC) != 0 or a.full:
        return -1
    return 0
