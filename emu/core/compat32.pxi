# 32-bit code: compatibility mode (IA-32e with a code segment of L=0, D=1) and
# legacy protected mode (CR0.PE with IA-32e off, as the PVH entry runs it).
# SDM Vol. 1 3.3.3 and 3.6 (operand and address sizes), Vol. 2 2.2.1 and
# Appendix A (the opcodes that differ from 64-bit mode), Vol. 3A 9.8.5.
#
# The decoder (decode.pxi) looks at Cpu.cs32: 40-4F are INC/DEC, not REX; the
# default operand size of stack and near-branch instructions is 32 bits; the
# address size is 32 bits (ModRM rm=101 is an absolute disp32, no
# RIP-relative form); moffs are 4 bytes; branch targets wrap at 4 GiB; the
# one-byte opcodes in optab32 replace their 64-bit meaning. cs32 is part of
# Cpu.mode, so blocks decoded in one mode are never run in the other.
#
# Not modelled: 16-bit code segments and the 67 prefix's 16-bit addressing
# (#UD), segment limits, non-zero DS/ES/SS bases (Linux and the PVH entry use
# flat segments; FS and GS bases are honoured), the BCD instructions (DAA DAS
# AAA AAS AAM AAD), BOUND, ARPL, INTO, LES/LDS, and exceptions in legacy mode
# (there is no 32-bit IDT; the PVH entry runs with interrupts off).

cdef OpDesc optab32[256]          # one-byte opcodes that differ outside 64-bit mode
cdef uint8_t op32_ud[256]         # one-byte opcodes that are #UD here (MOVSXD's 63, ...)

cdef inline void set_code_mode(Cpu* c, uint32_t cs32) noexcept nogil:
    c.cs32 = cs32
    c.mode = c.cpl | (cs32 << 2) | (c.mode & MODE_PCID)

cdef inline int code_kind(Cpu* c, uint64_t d) noexcept nogil:
    """0 for a 64-bit code segment, 1 for a 32-bit one, -1 for what the core
    does not run (16-bit code; L and D both set). Outside IA-32e mode L is
    ignored."""
    cdef uint32_t ld = <uint32_t>(d >> 53) & 3          # bit 0: L, bit 1: D
    if not (c.efer & EFER_LMA):
        return 1 if ld & 2 else -1
    if ld == 1:
        return 0
    if ld == 2:
        return 1
    return -1

cdef inline uint64_t ip_mask(const Uop* u) noexcept nogil:
    return 0xffffULL if u.osz == 2 else 0xffffffffULL

cdef inline int push32(Cpu* c, uint64_t v, uint32_t sz) noexcept nogil:
    cdef uint64_t sp = (c.r[4] - sz) & 0xffffffffULL
    if mem_write(c, sp, sz, v):
        return R_EXC
    c.r[4] = sp
    return R_NEXT

cdef int op_call32(Cpu* c, const Uop* u) noexcept nogil:
    if push32(c, u.rip_next, u.osz):
        return R_EXC
    c.rip = u.imm
    return R_BRANCH

cdef int op_ret32(Cpu* c, const Uop* u) noexcept nogil:
    """C3 / C2 imm16 with a 32-bit (or 16-bit) operand size."""
    cdef uint64_t v
    if mem_read(c, c.r[4] & 0xffffffffULL, u.osz, &v):
        return R_EXC
    c.r[4] = (c.r[4] + u.osz + (u.imm & 0xffff)) & 0xffffffffULL
    c.rip = v & ip_mask(u)
    return R_BRANCH

cdef int op_call_ind32(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t t
    if u.mem:
        if mem_read(c, ea_of(c, u), u.osz, &t):
            return R_EXC
    else:
        t = c.r[u.rm]
    if push32(c, u.rip_next, u.osz):
        return R_EXC
    c.rip = t & ip_mask(u)
    return R_BRANCH

cdef int op_jmp_ind32(Cpu* c, const Uop* u) noexcept nogil:
    cdef uint64_t t
    if u.mem:
        if mem_read(c, ea_of(c, u), u.osz, &t):
            return R_EXC
    else:
        t = c.r[u.rm]
    c.rip = t & ip_mask(u)
    return R_BRANCH

cdef int op_pusha(Cpu* c, const Uop* u) noexcept nogil:
    """60 PUSHA/PUSHAD: EAX ECX EDX EBX, the ESP before, EBP ESI EDI."""
    cdef uint32_t sz = u.osz, i
    cdef uint64_t sp = (c.r[4] - 8 * sz) & 0xffffffffULL
    for i in range(8):
        if mem_write(c, (sp + (7 - i) * sz) & 0xffffffffULL, sz, c.r[i]):
            return R_EXC
    c.r[4] = sp
    return R_NEXT

cdef int op_popa(Cpu* c, const Uop* u) noexcept nogil:
    """61 POPA/POPAD: the saved ESP is skipped."""
    cdef uint32_t sz = u.osz, i
    cdef uint64_t sp = c.r[4] & 0xffffffffULL
    cdef uint64_t v[8]
    for i in range(8):
        if mem_read(c, (sp + (7 - i) * sz) & 0xffffffffULL, sz, &v[i]):
            return R_EXC
    for i in range(8):
        if i != 4:
            rset(c, i, sz, v[i])
    c.r[4] = (sp + 8 * sz) & 0xffffffffULL
    return R_NEXT

cdef int op_pop_sreg32(Cpu* c, const Uop* u) noexcept nogil:
    """07 POP ES, 17 POP SS, 1F POP DS (POP SS blocks interrupts for one instruction)."""
    cdef uint64_t v
    if mem_read(c, c.r[4] & 0xffffffffULL, u.osz, &v):
        return R_EXC
    if load_seg(c, u.sub, <uint32_t>v & 0xffff):
        return R_EXC
    c.r[4] = (c.r[4] + u.osz) & 0xffffffffULL
    if u.sub == SEG_SS:
        c.shadow_end = c.icount + u.ninsn + 1
    return R_NEXT

cdef int op_jmp_far_ptr(Cpu* c, const Uop* u) noexcept nogil:
    """EA JMP ptr16:32 (not in 64-bit mode)."""
    return far_to(c, u, <uint32_t>u.imm2 & 0xffff, u.imm, 0)

cdef int op_call_far_ptr(Cpu* c, const Uop* u) noexcept nogil:
    """9A CALL ptr16:32 (not in 64-bit mode)."""
    return far_to(c, u, <uint32_t>u.imm2 & 0xffff, u.imm, 1)

cdef int fix_opreg_rm(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """40-4F INC/DEC r: the register is the r/m operand of FF /0, /1."""
    u.rm = u.reg
    u.mem = 0
    return 0

cdef void remap32(Uop* u) noexcept nogil:
    """The 32-bit forms of the near branches whose 64-bit handlers move 8 bytes."""
    if u.fn == op_call:
        u.fn = op_call32
    elif u.fn == op_ret:
        u.fn = op_ret32
    elif u.fn == op_call_ind:
        u.fn = op_call_ind32
    elif u.fn == op_jmp_ind:
        u.fn = op_jmp_ind32

cdef void op32(int opc, uop_fn fn, uint32_t flags, int imm=I_NONE, int sub=0) noexcept:
    optab32[opc].fn = fn
    optab32[opc].flags = flags
    optab32[opc].imm = imm
    optab32[opc].sub = sub

cdef void init_compat32():
    cdef int k
    memset(optab32, 0, sizeof(optab32))
    memset(op32_ud, 0, sizeof(op32_ud))
    for k in range(8):
        op32(0x40 + k, op_inc, D_OPREG)
        optab32[0x40 + k].fix = fix_opreg_rm
        op32(0x48 + k, op_dec, D_OPREG)
        optab32[0x48 + k].fix = fix_opreg_rm
    op32(0x06, op_push_sreg, D_DEF64, I_NONE, SEG_ES)
    op32(0x0e, op_push_sreg, D_DEF64, I_NONE, SEG_CS)
    op32(0x16, op_push_sreg, D_DEF64, I_NONE, SEG_SS)
    op32(0x1e, op_push_sreg, D_DEF64, I_NONE, SEG_DS)
    op32(0x07, op_pop_sreg32, D_DEF64, I_NONE, SEG_ES)
    op32(0x17, op_pop_sreg32, D_DEF64, I_NONE, SEG_SS)
    op32(0x1f, op_pop_sreg32, D_DEF64, I_NONE, SEG_DS)
    op32(0x60, op_pusha, D_DEF64)
    op32(0x61, op_popa, D_DEF64)
    op32(0xea, op_jmp_far_ptr, D_END, I_PTR)
    op32(0x9a, op_call_far_ptr, D_END, I_PTR)
    optab32[0x82] = optab[0][0][0x80]                # 82 is 80 outside 64-bit mode
    for k in (0x27, 0x2f, 0x37, 0x3f, 0x62, 0x63, 0xc4, 0xc5, 0xce, 0xd4, 0xd5, 0xd6):
        op32_ud[k] = 1
