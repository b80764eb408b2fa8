# The translated-block cache: straight runs of instructions decoded once into
# micro-op arrays, found by physical address and mode, with a virtual-RIP
# cache in front and invalidation when guest code is written.

cdef int uop_fallthrough(Cpu* c, const Uop* u) noexcept nogil:
    """Appended to blocks that end without a branch: continue at the next RIP."""
    c.rip = u.imm
    return R_BRANCH

cdef int uop_restart(Cpu* c, const Uop* u) noexcept nogil:
    """Replaces the uops of a block invalidated while it runs: stop before them."""
    return R_RESTART

cdef void smc_invalidate_page(Cpu* c, uint64_t ppage) noexcept nogil:
    """Guest code was written: every block on the page goes (SDM Vol. 3A, 11.6:
    a write to code takes effect before the next instruction)."""
    cdef Mach* m = c.m
    cdef uint64_t pn = ppage >> 12
    while m.page_blocks[pn] != 0:          # (stored complemented: codecache.pxi)
        m.n_invalidations += 1
        blk_retire(m, (~m.page_blocks[pn]) >> 1)
    m.code_page[pn] = 0

cdef void mark_code_page(Cpu* c, uint64_t ppage) noexcept nogil:
    if not c.m.code_page[ppage >> 12]:
        c.m.code_page[ppage >> 12] = 1
        tlb_drop_writes_to(c, ppage)

cdef int32_t translate(Cpu* c, uint64_t rip, uint64_t pa) noexcept nogil:
    """Decode a block starting at rip (physical pa). Returns the block index,
    or -1 with the fault in c.exc_* when the very first instruction cannot be
    fetched."""
    cdef Mach* m = c.m
    cdef Dec d
    cdef Block* b
    cdef Uop* u
    cdef int32_t bi
    cdef uint32_t n = 0, nu = 0, ustart, room, k2
    cdef uint64_t cur = rip, cpa = pa, pa2, page2 = NO_PAGE
    cdef int k, ended = 0, side_exits = 0
    cdef uint8_t term
    cdef TlbEntry* e2
    # room for the longest block: every instruction with a hook uop, a
    # fallthrough and the sentinel
    cc_make_room(m, 2 * MAX_BLOCK_INSNS + 2)
    ustart = m.uop_head
    while True:
        u = &m.uops[ustart + nu]
        room = 0x1000 - (cur & 0xfff)
        d.limit_is_fault = 0
        if room >= 15:
            d.avail = 15
            memcpy(d.buf, m.ram + cpa, 15)
        elif n == 0:
            # the first instruction may run onto the next page
            memcpy(d.buf, m.ram + cpa, room)
            d.avail = room
            k = tlb_fill(c, cur + room, ACC_X, &e2, &pa2)
            if k == 0:
                memcpy(d.buf + room, m.ram + pa2, 15 - room)
                d.avail = 15
                page2 = pa2 & ~(<uint64_t>0xfff)
            else:
                d.limit_is_fault = 1
                if k < 0:
                    d.fault_va = c.cr2
                    d.fault_err = c.exc_error
                else:
                    d.fault_va = cur + room
                    d.fault_err = PFE_I
        else:
            memcpy(d.buf, m.ram + cpa, room)
            d.avail = room
        k = decode_one(c, &d, cur, u)
        if k == -2:
            break                   # continues on the next page: new block there
        if k == R_EXC:
            if n == 0 and d.limit_is_fault and c.exc_vector == EXC_PF:
                return -1           # cannot even fetch the first instruction
            # decode fault: the instruction raises it when reached
            memset(u, 0, sizeof(Uop))
            u.fn = uop_raise
            u.sub = c.exc_vector
            u.imm = c.exc_error
            u.imm2 = c.exc_has_error
            u.rip = cur
            u.rip_next = cur
            u.len = 1
            if m.hook_kinds and hook_code_wanted(m, cur, 1):
                u = hook_insert(u, n)
                nu += 1
            n += 1
            nu += 1
            u.ninsn = n
            ended = 1
            break
        if m.hook_kinds and hook_code_wanted(m, cur, u.len):
            u = hook_insert(u, n)
            nu += 1
        n += 1
        nu += 1
        u.ninsn = n
        if optab_flags_end(&d):
            # a forward conditional branch whose fall-through is on this page
            # is a side exit of a longer block (a superblock): the not-taken
            # path runs on without a block transition (and, in compiled code,
            # with the flags left in the host's EFLAGS). A backward one is
            # most often a loop's, taken: it ends the block.
            if (m.basic_blocks or side_exits >= MAX_SIDE_EXITS or not is_jcc_fn(u.fn) or u.imm <= u.rip
                    or page2 != NO_PAGE or n >= MAX_BLOCK_INSNS or (u.rip_next & 0xfff) == 0):
                ended = 1
                break
            u.imm2 = 1
            side_exits += 1
        if page2 != NO_PAGE:
            break
        cur = u.rip_next
        cpa += u.len
        if n >= MAX_BLOCK_INSNS or (cur & 0xfff) == 0:
            break
    # a block that does not end in a branch or a fault falls through
    term = block_term(&m.uops[ustart + nu - 1]) if ended else TERM_NONE
    if not ended:
        u = &m.uops[ustart + nu]
        memset(u, 0, sizeof(Uop))
        u.fn = uop_fallthrough
        u.imm = m.uops[ustart + nu - 1].rip_next
        u.rip = u.imm
        u.ninsn = n
        nu += 1
    m.uops[ustart + nu].fn = NULL     # sentinel for blk_stop
    timing_block_costs(m, &m.uops[ustart], nu)   # the class costs (core/timing.pxi)
    nu += 1
    bi = cc_new_block(m, nu)
    b = &m.blocks[bi]
    b.vrip = rip
    b.paddr = pa
    b.page2 = page2
    b.uop_start = ustart
    b.n_uops = nu
    b.ninsn = n
    b.mode = c.mode
    b.valid = 1
    b.exec_count = 0
    b.chain_rip[0] = NO_PAGE
    b.chain_rip[1] = NO_PAGE
    b.chain_blk[0] = -1
    b.chain_blk[1] = -1
    b.in_head = -1
    b.term = term
    b.ret_blk = -1
    # index by physical address and register on the pages it covers
    k2 = hash_pa(m, pa, c.mode)
    b.hash_next = ~m.block_hash[k2]         # (heads stored complemented: codecache.pxi)
    m.block_hash[k2] = ~bi
    page_link(m, bi, 0, pa >> 12)
    mark_code_page(c, pa & ~(<uint64_t>0xfff))
    if page2 != NO_PAGE:
        page_link(m, bi, 1, page2 >> 12)
        mark_code_page(c, page2)
    m.n_blocks_translated += 1
    if m.gone_n and gone_take(m, blk_key(pa, rip, c.mode)):
        m.n_retranslated += 1
    return bi

cdef inline Uop* hook_insert(Uop* u, uint32_t n) noexcept nogil:
    """Move the instruction just decoded at u one slot up and put a code-hook
    uop in front of it (core/hooks.pxi). Returns the instruction's new slot."""
    memcpy(u + 1, u, sizeof(Uop))
    hook_make_uop(u, u[1].rip, n, u[1].len)
    return u + 1

cdef inline int is_jcc_fn(uop_fn f) noexcept nogil:
    return f == op_jcc or f == op_jz or f == op_jnz or f == op_jcc_sub

cdef void basic_blocks_only(Mach* m) noexcept nogil:
    """From now on blocks are basic blocks (a vCPU observes them: block
    hooks, coverage): the superblocks translated so far go."""
    if not m.basic_blocks:
        m.basic_blocks = 1
        cache_flush(m)

cdef inline int optab_flags_end(Dec* d) noexcept nogil:
    return (d.flags & D_END) != 0

cdef int straddle_stale(Cpu* c, Block* b) noexcept nogil:
    """A block whose one instruction runs onto the next page (b.page2) is
    only right while that page still translates, executable, to the same
    frame: an mprotect or remap of it must make the fetch fault (or see the
    new bytes) at that instruction, as it does on hardware. Checked at every
    entry of such a block (they are rare)."""
    cdef TlbEntry* e2
    cdef uint64_t pa2, err = c.exc_error, cr2 = c.cr2
    cdef int k = tlb_fill(c, (b.vrip | 0xfff) + 1, ACC_X, &e2, &pa2)
    if k != 0:
        c.exc_error = err             # the fault is raised again when retranslating
        c.cr2 = cr2
        return 1
    return (pa2 & ~(<uint64_t>0xfff)) != b.page2

cdef Block* find_block(Cpu* c, uint64_t rip) noexcept nogil:
    """The block for rip in the current mode, translating it if needed.
    NULL when the instruction fetch faults (c.exc_* set)."""
    cdef Mach* m = c.m
    cdef JcEntry* j = &c.jc[(rip ^ (rip >> 12)) & (JC_SIZE - 1)]
    cdef Block* b
    cdef TlbEntry* e
    cdef uint64_t pa
    cdef int32_t bi
    cdef int k
    if j.vrip == rip and j.epoch == c.jc_epoch:
        b = &m.blocks[j.blk]
        if b.valid and b.mode == c.mode and b.vrip == rip and (b.page2 == NO_PAGE or not straddle_stale(c, b)):
            c.n_jc_hits += 1
            return b
    c.n_jc_misses += 1
    # translate rip for execution
    e = &c.tlb[(rip >> 12) & (TLB_SIZE - 1)]
    if e.tag_x == ((rip & ~(<uint64_t>0xfff)) | c.tlbm):
        pa = (e.ppage & ~(<uint64_t>1)) | (rip & 0xfff)
    else:
        k = tlb_fill(c, rip, ACC_X, &e, &pa)
        if k < 0:
            return NULL
        if k == 1:
            raise_gp0(c)      # executing from MMIO is not supported
            return NULL
    bi = ~m.block_hash[hash_pa(m, pa, c.mode)]
    while bi != -1:
        b = &m.blocks[bi]
        if b.paddr == pa and b.mode == c.mode and b.vrip == rip and b.valid:
            if b.page2 == NO_PAGE or not straddle_stale(c, b):
                break
            b.valid = 0
        bi = b.hash_next
    if bi == -1:
        bi = translate(c, rip, pa)
        if bi < 0:
            return NULL
    j.vrip = rip
    j.epoch = c.jc_epoch
    j.blk = bi
    return &m.blocks[bi]
