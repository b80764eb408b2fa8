# A small x86-64 assembler for the native-code tier (core/jit_*.pxi): just
# the encodings the block compiler emits, written into a buffer (the
# writable view of the code cache). Encodings follow the Intel SDM Vol. 2,
# chapter 2 (REX, ModR/M, SIB) and the instruction pages.

# host registers
cdef enum:
    H_RAX = 0
    H_RCX = 1
    H_RDX = 2
    H_RBX = 3
    H_RSP = 4
    H_RBP = 5
    H_RSI = 6
    H_RDI = 7
    H_R8 = 8
    H_R9 = 9
    H_R10 = 10
    H_R11 = 11
    H_R12 = 12
    H_R13 = 13
    H_R14 = 14
    H_R15 = 15
    H_NONE = 16           # no base / no index in a memory operand

# condition codes (tttn), as in Jcc / SETcc / CMOVcc
cdef enum:
    CC_O = 0
    CC_NO = 1
    CC_B = 2
    CC_AE = 3
    CC_E = 4
    CC_NE = 5
    CC_BE = 6
    CC_A = 7
    CC_S = 8
    CC_NS = 9
    CC_L = 12
    CC_GE = 13
    CC_LE = 14
    CC_G = 15

cdef struct Asm:
    uint8_t* buf
    uint32_t pos
    uint32_t cap
    int full              # ran out of room: the compile is abandoned

# a memory operand: [base + index*scale + disp]
cdef struct Mem:
    int base
    int index
    int scale             # 0..3 (shift)
    int32_t disp

cdef inline Mem mem_at(int base, int32_t disp) noexcept nogil:
    cdef Mem m
    m.base = base
    m.index = H_NONE
    m.scale = 0
    m.disp = disp
    return m

cdef inline Mem mem_idx(int base, int index, int scale, int32_t disp) noexcept nogil:
    cdef Mem m
    m.base = base
    m.index = index
    m.scale = scale
    m.disp = disp
    return m

cdef inline void a_byte(Asm* a, uint32_t b) noexcept nogil:
    if a.pos < a.cap:
        a.buf[a.pos] = <uint8_t>b
        a.pos += 1
    else:
        a.full = 1

cdef inline void a_u32(Asm* a, uint32_t v) noexcept nogil:
    a_byte(a, v & 0xff)
    a_byte(a, (v >> 8) & 0xff)
    a_byte(a, (v >> 16) & 0xff)
    a_byte(a, v >> 24)

cdef inline void a_u64(Asm* a, uint64_t v) noexcept nogil:
    a_u32(a, <uint32_t>v)
    a_u32(a, <uint32_t>(v >> 32))

cdef inline void a_patch32(Asm* a, uint32_t at, uint32_t v) noexcept nogil:
    if at + 4 <= a.cap:
        a.buf[at] = v & 0xff
        a.buf[at + 1] = (v >> 8) & 0xff
        a.buf[at + 2] = (v >> 16) & 0xff
        a.buf[at + 3] = v >> 24

cdef inline int fits8(int64_t v) noexcept nogil:
    return -128 <= v <= 127

cdef inline int fits32(int64_t v) noexcept nogil:
    return -2147483648 <= v <= 2147483647

cdef inline void a_prefix(Asm* a, int sz, int reg, int rmreg, int index, int base, int byte_regs) noexcept nogil:
    """Operand-size prefix and REX for an instruction of operand size sz.
    reg/rmreg: register numbers in ModRM.reg / ModRM.rm (or -1); index/base:
    those of a memory operand (H_NONE if absent). byte_regs: the registers
    are byte registers (SPL..DIL need a REX)."""
    cdef uint32_t rex = 0
    if sz == 2:
        a_byte(a, 0x66)
    if sz == 8:
        rex |= 8
    if reg >= 8 and reg != H_NONE:
        rex |= 4
    if index >= 8 and index != H_NONE:
        rex |= 2
    if rmreg >= 8 and rmreg != H_NONE:
        rex |= 1
    if base >= 8 and base != H_NONE:
        rex |= 1
    if byte_regs and ((4 <= reg <= 7) or (4 <= rmreg <= 7)):
        rex |= 0x40
    if rex:
        a_byte(a, 0x40 | rex)

cdef inline void a_opcode(Asm* a, uint32_t opc) noexcept nogil:
    """1-3 opcode bytes, most significant first (0x0FAF = 0F AF)."""
    if opc > 0xffff:
        a_byte(a, opc >> 16)
    if opc > 0xff:
        a_byte(a, (opc >> 8) & 0xff)
    a_byte(a, opc & 0xff)

cdef inline void a_modrm_mem(Asm* a, int reg, Mem m) noexcept nogil:
    """ModRM (+SIB, +displacement) for a memory operand; reg is ModRM.reg."""
    cdef int mod
    cdef int r = reg & 7
    if m.base == H_NONE:
        # [index*scale + disp32] or [disp32]: SIB with no base
        a_byte(a, (r << 3) | 4)
        if m.index == H_NONE:
            a_byte(a, (4 << 3) | 5)
        else:
            a_byte(a, (m.scale << 6) | ((m.index & 7) << 3) | 5)
        a_u32(a, <uint32_t>m.disp)
        return
    if m.disp == 0 and (m.base & 7) != 5:
        mod = 0
    elif fits8(m.disp):
        mod = 1
    else:
        mod = 2
    if m.index == H_NONE and (m.base & 7) != 4:
        a_byte(a, (mod << 6) | (r << 3) | (m.base & 7))
    else:
        a_byte(a, (mod << 6) | (r << 3) | 4)
        if m.index == H_NONE:
            a_byte(a, (4 << 3) | (m.base & 7))
        else:
            a_byte(a, (m.scale << 6) | ((m.index & 7) << 3) | (m.base & 7))
    if mod == 1:
        a_byte(a, <uint32_t>m.disp & 0xff)
    elif mod == 2:
        a_u32(a, <uint32_t>m.disp)

# ---- generic forms ----

cdef inline void a_rr(Asm* a, uint32_t opc, int sz, int reg, int rm) noexcept nogil:
    """opc with ModRM.reg = reg, ModRM.rm = register rm (mod 3)."""
    a_prefix(a, sz, reg, rm, H_NONE, H_NONE, sz == 1)
    a_opcode(a, opc)
    a_byte(a, 0xc0 | ((reg & 7) << 3) | (rm & 7))

cdef inline void a_rm(Asm* a, uint32_t opc, int sz, int reg, Mem m) noexcept nogil:
    """opc with ModRM.reg = reg and a memory operand."""
    a_prefix(a, sz, reg, -1, m.index, m.base, sz == 1)
    a_opcode(a, opc)
    a_modrm_mem(a, reg, m)

# ALU operations by their group-1 number: 0 ADD 1 OR 2 ADC 3 SBB 4 AND 5 SUB 6 XOR 7 CMP

cdef inline void a_alu_rr(Asm* a, int op, int sz, int dst, int src) noexcept nogil:
    """dst op= src (the 01/00 form: ModRM.rm = dst)."""
    a_rr(a, (op << 3) | (0 if sz == 1 else 1), sz, src, dst)

cdef inline void a_alu_rm(Asm* a, int op, int sz, int dst, Mem m) noexcept nogil:
    """dst op= [m] (03/02 form)."""
    a_rm(a, (op << 3) | (2 if sz == 1 else 3), sz, dst, m)

cdef inline void a_alu_mr(Asm* a, int op, int sz, Mem m, int src) noexcept nogil:
    """[m] op= src."""
    a_rm(a, (op << 3) | (0 if sz == 1 else 1), sz, src, m)

cdef inline void a_alu_ri(Asm* a, int op, int sz, int dst, int64_t imm) noexcept nogil:
    if sz == 1:
        a_rr(a, 0x80, 1, op, dst)
        a_byte(a, <uint32_t>imm & 0xff)
    elif fits8(imm):
        a_rr(a, 0x83, sz, op, dst)
        a_byte(a, <uint32_t>imm & 0xff)
    else:
        a_rr(a, 0x81, sz, op, dst)
        if sz == 2:
            a_byte(a, <uint32_t>imm & 0xff)
            a_byte(a, (<uint32_t>imm >> 8) & 0xff)
        else:
            a_u32(a, <uint32_t>imm)

cdef inline void a_alu_mi(Asm* a, int op, int sz, Mem m, int64_t imm) noexcept nogil:
    if sz == 1:
        a_rm(a, 0x80, 1, op, m)
        a_byte(a, <uint32_t>imm & 0xff)
    elif fits8(imm):
        a_rm(a, 0x83, sz, op, m)
        a_byte(a, <uint32_t>imm & 0xff)
    else:
        a_rm(a, 0x81, sz, op, m)
        if sz == 2:
            a_byte(a, <uint32_t>imm & 0xff)
            a_byte(a, (<uint32_t>imm >> 8) & 0xff)
        else:
            a_u32(a, <uint32_t>imm)

cdef inline void a_test_rr(Asm* a, int sz, int r1, int r2) noexcept nogil:
    a_rr(a, 0x84 if sz == 1 else 0x85, sz, r2, r1)

cdef inline void a_test_ri(Asm* a, int sz, int r, int64_t imm) noexcept nogil:
    a_rr(a, 0xf6 if sz == 1 else 0xf7, sz, 0, r)
    if sz == 1:
        a_byte(a, <uint32_t>imm & 0xff)
    elif sz == 2:
        a_byte(a, <uint32_t>imm & 0xff)
        a_byte(a, (<uint32_t>imm >> 8) & 0xff)
    else:
        a_u32(a, <uint32_t>imm)

cdef inline void a_test_mi(Asm* a, int sz, Mem m, int64_t imm) noexcept nogil:
    a_rm(a, 0xf6 if sz == 1 else 0xf7, sz, 0, m)
    if sz == 1:
        a_byte(a, <uint32_t>imm & 0xff)
    elif sz == 2:
        a_byte(a, <uint32_t>imm & 0xff)
        a_byte(a, (<uint32_t>imm >> 8) & 0xff)
    else:
        a_u32(a, <uint32_t>imm)

# ---- moves ----

cdef inline void a_mov_rr(Asm* a, int sz, int dst, int src) noexcept nogil:
    a_rr(a, 0x88 if sz == 1 else 0x89, sz, src, dst)

cdef inline void a_load(Asm* a, int sz, int dst, Mem m) noexcept nogil:
    a_rm(a, 0x8a if sz == 1 else 0x8b, sz, dst, m)

cdef inline void a_store(Asm* a, int sz, Mem m, int src) noexcept nogil:
    a_rm(a, 0x88 if sz == 1 else 0x89, sz, src, m)

cdef inline void a_store_imm(Asm* a, int sz, Mem m, int64_t imm) noexcept nogil:
    """MOV [m], imm (sign-extended imm32 for 64-bit)."""
    a_rm(a, 0xc6 if sz == 1 else 0xc7, sz, 0, m)
    if sz == 1:
        a_byte(a, <uint32_t>imm & 0xff)
    elif sz == 2:
        a_byte(a, <uint32_t>imm & 0xff)
        a_byte(a, (<uint32_t>imm >> 8) & 0xff)
    else:
        a_u32(a, <uint32_t>imm)

cdef inline void a_mov_ri(Asm* a, int dst, uint64_t imm) noexcept nogil:
    """dst = imm (64-bit register), the shortest form."""
    if imm <= 0xffffffffULL:
        a_prefix(a, 4, -1, dst, H_NONE, H_NONE, 0)
        a_byte(a, 0xb8 + (dst & 7))
        a_u32(a, <uint32_t>imm)
    elif fits32(<int64_t>imm):
        a_rr(a, 0xc7, 8, 0, dst)
        a_u32(a, <uint32_t>imm)
    else:
        a_prefix(a, 8, -1, dst, H_NONE, H_NONE, 0)
        a_byte(a, 0xb8 + (dst & 7))
        a_u64(a, imm)

cdef inline void a_lea(Asm* a, int sz, int dst, Mem m) noexcept nogil:
    a_rm(a, 0x8d, sz, dst, m)

cdef inline void a_movx(Asm* a, uint32_t opc, int dsz, int dst, int src, int srcbyte) noexcept nogil:
    """MOVZX/MOVSX/MOVSXD register forms: opc 0F B6/B7/BE/BF or 63."""
    cdef uint32_t rex = 0
    if dsz == 2:
        a_byte(a, 0x66)
    if dsz == 8:
        rex |= 8
    if dst >= 8:
        rex |= 4
    if src >= 8:
        rex |= 1
    if srcbyte and 4 <= src <= 7:
        rex |= 0x40
    if rex:
        a_byte(a, 0x40 | rex)
    a_opcode(a, opc)
    a_byte(a, 0xc0 | ((dst & 7) << 3) | (src & 7))

cdef inline void a_movx_m(Asm* a, uint32_t opc, int dsz, int dst, Mem m) noexcept nogil:
    a_prefix(a, dsz, dst, -1, m.index, m.base, 0)
    a_opcode(a, opc)
    a_modrm_mem(a, dst, m)

# ---- shifts, multiply, misc ----

cdef inline void a_shift_ri(Asm* a, int op, int sz, int r, int n) noexcept nogil:
    """Group 2: 0 ROL 1 ROR 2 RCL 3 RCR 4 SHL 5 SHR 7 SAR, by an immediate."""
    if n == 1:
        a_rr(a, 0xd0 if sz == 1 else 0xd1, sz, op, r)
    else:
        a_rr(a, 0xc0 if sz == 1 else 0xc1, sz, op, r)
        a_byte(a, n & 0xff)

cdef inline void a_shift_rcl(Asm* a, int op, int sz, int r) noexcept nogil:
    """Group 2 by CL."""
    a_rr(a, 0xd2 if sz == 1 else 0xd3, sz, op, r)

cdef inline void a_unary(Asm* a, int op, int sz, int r) noexcept nogil:
    """Group 3/4/5 register forms: F7 /2 NOT, /3 NEG; FF /0 INC, /1 DEC
    (op: 2 NOT 3 NEG 0x10 INC 0x11 DEC)."""
    if op >= 0x10:
        a_rr(a, 0xfe if sz == 1 else 0xff, sz, op - 0x10, r)
    else:
        a_rr(a, 0xf6 if sz == 1 else 0xf7, sz, op, r)

cdef inline void a_imul_rr(Asm* a, int sz, int dst, int src) noexcept nogil:
    a_rr(a, 0x0faf, sz, dst, src)

cdef inline void a_imul_rri(Asm* a, int sz, int dst, int src, int32_t imm) noexcept nogil:
    if fits8(imm):
        a_rr(a, 0x6b, sz, dst, src)
        a_byte(a, <uint32_t>imm & 0xff)
    else:
        a_rr(a, 0x69, sz, dst, src)
        if sz == 2:
            a_byte(a, <uint32_t>imm & 0xff)
            a_byte(a, (<uint32_t>imm >> 8) & 0xff)
        else:
            a_u32(a, <uint32_t>imm)

cdef inline void a_setcc(Asm* a, int cc, int r) noexcept nogil:
    a_prefix(a, 1, -1, r, H_NONE, H_NONE, 1)
    a_opcode(a, 0x0f90 + cc)
    a_byte(a, 0xc0 | (r & 7))

cdef inline void a_cmov_rr(Asm* a, int cc, int sz, int dst, int src) noexcept nogil:
    a_rr(a, 0x0f40 + cc, sz, dst, src)

cdef inline void a_push(Asm* a, int r) noexcept nogil:
    if r >= 8:
        a_byte(a, 0x41)
    a_byte(a, 0x50 + (r & 7))

cdef inline void a_pop(Asm* a, int r) noexcept nogil:
    if r >= 8:
        a_byte(a, 0x41)
    a_byte(a, 0x58 + (r & 7))

cdef inline void a_ret(Asm* a) noexcept nogil:
    a_byte(a, 0xc3)

cdef inline void a_call_r(Asm* a, int r) noexcept nogil:
    """CALL r64 (FF /2)."""
    a_prefix(a, 4, -1, r, H_NONE, H_NONE, 0)
    a_byte(a, 0xff)
    a_byte(a, 0xd0 | (r & 7))

cdef inline void a_jmp_r(Asm* a, int r) noexcept nogil:
    a_prefix(a, 4, -1, r, H_NONE, H_NONE, 0)
    a_byte(a, 0xff)
    a_byte(a, 0xe0 | (r & 7))

cdef inline void a_jmp_m(Asm* a, Mem m) noexcept nogil:
    """JMP qword [m] (FF /4)."""
    a_prefix(a, 4, -1, -1, m.index, m.base, 0)
    a_byte(a, 0xff)
    a_modrm_mem(a, 4, m)

# ---- branches within the buffer: rel32 fields patched once the target is known ----

cdef inline uint32_t a_jmp32(Asm* a) noexcept nogil:
    """JMP rel32; returns the offset of the rel32 field."""
    a_byte(a, 0xe9)
    a_u32(a, 0)
    return a.pos - 4

cdef inline uint32_t a_jcc32(Asm* a, int cc) noexcept nogil:
    a_byte(a, 0x0f)
    a_byte(a, 0x80 + cc)
    a_u32(a, 0)
    return a.pos - 4

cdef inline void a_bind(Asm* a, uint32_t field, uint32_t target) noexcept nogil:
    """Point the rel32 at `field` to buffer offset target."""
    a_patch32(a, field, <uint32_t>(<int64_t>target - <int64_t>(field + 4)))

cdef inline void a_lahf_seto(Asm* a) noexcept nogil:
    """AH = SF ZF 0 AF 0 PF 1 CF (LAHF), AL = OF (SETO): the six status
    flags in RAX without touching them."""
    a_byte(a, 0x9f)
    a_byte(a, 0x0f)
    a_byte(a, 0x90)
    a_byte(a, 0xc0)

cdef inline void a_restore_flags_ax(Asm* a) noexcept nogil:
    """The inverse of a_lahf_seto: OF from AL (ADD AL, 7F overflows exactly
    when AL is 1), then SF ZF AF PF CF from AH (SAHF leaves OF alone)."""
    a_byte(a, 0x04)
    a_byte(a, 0x7f)
    a_byte(a, 0x9e)
