# Branch prediction for the run loop (core/run.pxi): a return-address stack.
#
# A block that ends in a CALL pushes its return address and its own index; a
# block that ends in a RET pops the top entry. When the address the RET really
# jumped to equals the pushed one, the block the call's callee returned to
# last time (remembered in the calling block, ret_blk) is the prediction; the
# run loop still checks that block against the real target (address, mode,
# epoch, still alive) before entering it, so a return address overwritten on
# the stack (longjmp, coroutines, exploits) goes where the RET really went.
#
# Indirect jumps and calls: each block's two successor slots (chain_rip /
# chain_blk) are its inline cache; a site with more targets than that (a
# switch table, an interpreter's dispatch, a virtual call) also has the
# indirect-branch target cache, Mach.ibtc, keyed by (site block, target),
# looked up in the run loop before the general lookup. Entries carry the
# epoch of the vCPU that made them (epochs are unique across vCPUs), and
# the block found is checked like any successor.

cdef enum:
    TERM_NONE = 0
    TERM_CALL = 1
    TERM_RET = 2
    TERM_IND = 4                  # (with TERM_CALL for an indirect call)
    RAS_MASK = 31                 # Cpu.ras holds 32 entries
    IBTC_SIZE = 4096


cdef inline uint8_t block_term(const Uop* last) noexcept nogil:
    """How a block whose last instruction is `last` ends, for prediction."""
    if last.fn == op_call:
        return TERM_CALL
    if last.fn == op_call_ind:
        return TERM_CALL | TERM_IND
    if last.fn == op_jmp_ind:
        return TERM_IND
    if last.fn == op_ret:
        return TERM_RET
    return TERM_NONE


cdef inline IbtcEntry* ibtc_slot(Mach* m, Block* site, uint64_t rip) noexcept nogil:
    cdef uint64_t h = <uint64_t>(site - m.blocks) * 0x9e3779b1ULL ^ rip ^ (rip >> 11)
    return &m.ibtc[(h ^ (h >> 17)) & (IBTC_SIZE - 1)]


cdef inline Block* ibtc_find(Cpu* c, Block* site, uint64_t rip) noexcept nogil:
    cdef Mach* m = c.m
    cdef IbtcEntry* e = ibtc_slot(m, site, rip)
    cdef Block* b
    if e.rip == rip and e.epoch == c.jc_epoch and e.site == <int32_t>(site - m.blocks):
        b = &m.blocks[e.blk]
        if b.valid and b.vrip == rip and b.mode == c.mode:
            return b
    return NULL


cdef inline void ibtc_learn(Cpu* c, Block* site, uint64_t rip, Block* b) noexcept nogil:
    cdef IbtcEntry* e = ibtc_slot(c.m, site, rip)
    e.rip = rip
    e.epoch = c.jc_epoch
    e.site = <int32_t>(site - c.m.blocks)
    e.blk = <int32_t>(b - c.m.blocks)


cdef inline Block* ras_update(Cpu* c, Block* b, const Uop* u, int32_t* caller, uint32_t* epoch) noexcept nogil:
    """Block b ended in a CALL or RET (uop u), c.rip is where it went. A CALL
    pushes; a RET pops and returns the predicted block (or NULL; *caller is
    then the call block to teach the real one, or -1)."""
    cdef Mach* m = c.m
    cdef RasEntry* e
    cdef Block* cb
    if b.term & TERM_CALL:
        c.ras_top = (c.ras_top + 1) & RAS_MASK
        e = &c.ras[c.ras_top]
        e.rip = u.rip_next
        e.caller = <int32_t>(b - m.blocks)
        return NULL
    e = &c.ras[c.ras_top]
    c.ras_top = (c.ras_top - 1) & RAS_MASK
    caller[0] = -1
    # (indices are checked: a restored vCPU state may come from another machine)
    if e.rip != c.rip or e.caller < 0 or <uint32_t>e.caller >= m.n_blocks:
        c.n_ras_misses += 1
        return NULL
    cb = &m.blocks[e.caller]
    e.caller = -1
    e.rip = NO_PAGE
    caller[0] = <int32_t>(cb - m.blocks)
    if cb.ret_blk < 0 or <uint32_t>cb.ret_blk >= m.n_blocks or cb.ret_epoch != c.jc_epoch:
        return NULL
    epoch[0] = cb.ret_epoch
    return &m.blocks[cb.ret_blk]


cdef inline void ras_learn(Cpu* c, int32_t caller, Block* b) noexcept nogil:
    """The block a call returned to (a hint, checked when used: the caller
    may have died and its slot been reused meanwhile)."""
    cdef Block* cb = &c.m.blocks[caller]
    cb.ret_blk = <int32_t>(b - c.m.blocks)
    cb.ret_epoch = c.jc_epoch
