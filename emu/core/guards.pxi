# Guards that keep a guest from wedging the VMM or seeing the wrong fault,
# all off the hot path: MMIO instructions with several device accesses
# complete (mmio_resume, with mmio_access in mmu.pxi), and a #GP for a
# non-canonical address through SS becomes #SS (stack_fault_fixup). The
# exception-storm exit (EXIT_STORM) is counted in run.pxi deliver_exception.

cdef int stack_fault_fixup(Cpu* c, const Uop* u) noexcept nogil:
    """A #GP the MMU raised for a non-canonical address is #SS(0) when the
    access went through SS (SDM Vol. 3A 6.15, interrupt 12): the implicit
    stack accesses, and memory operands based on RSP or RBP."""
    cdef uop_fn f = u.fn
    cdef int ss = 0
    cdef uint64_t a = c.nc_addr
    c.nc_fault = 0
    if c.exc_vector != EXC_GP:
        return 0
    if f == op_push_r or f == op_pop_r or f == op_push_imm or f == op_push_rm or f == op_pop_rm \
            or f == op_call or f == op_call_ind or f == op_ret or f == op_leave or f == op_enter \
            or f == op_pushf or f == op_popf:
        # the stack slot (a non-canonical RSP), or [RBP] for LEAVE/ENTER
        ss = (a - c.r[4]) + 64 <= 128 or ((f == op_leave or f == op_enter) and (a - c.r[5]) + 64 <= 128)
    if not ss and u.mem and (u.base == 4 or u.base == 5) and u.seg == SEG_NONE:
        ss = a - ea_of(c, u) < 64
    if ss:
        c.exc_vector = EXC_SS
        c.exc_error = 0
        c.exc_has_error = 1
    return 0

cdef int mmio_resume(Cpu* c, uint64_t budget) noexcept nogil:
    """After an MMIO exit: the VMM's answer joins the instruction's log and the
    instruction runs again alone, replaying the accesses done (mmu.pxi
    mmio_access). -1 when there is nothing to resume (the VMM moved on)."""
    cdef int r
    if c.rip != c.mmio_key_rip or c.icount != c.mmio_key_icount:
        c.mmio_n = 0                  # stale: the VMM moved the vCPU elsewhere
        c.mmio_pending = 0
        return -1
    if c.mmio_pending:
        c.mmio_pending = 0
        if c.mmio_n < MMIO_LOG:
            c.mmio_log[c.mmio_n][0] = c.mmio_addr
            c.mmio_log[c.mmio_n][1] = c.mmio_size | (c.mmio_write << 8)
            c.mmio_log[c.mmio_n][2] = c.mmio_value
            c.mmio_n += 1
    if c.mmio_n == 0 or budget == 0:
        return -1
    c.mmio_cur = 0
    c.mmio_replay = 1
    r = cpu_run(c, 1)
    c.mmio_replay = 0
    if r == EXIT_MMIO:
        return r                      # the next access of the same instruction
    c.mmio_n = 0
    if r != EXIT_BUDGET or budget == 1:
        return r
    c.n_exits[EXIT_BUDGET] -= 1       # the internal step is not an exit
    return cpu_run(c, budget - 1)
