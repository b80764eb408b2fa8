# x87 FPU (SDM Vol. 1, chapter 8; Vol. 2, A.4 for the opcode map): the
# register stack with tags, loads and stores (m32/m64/m80, integers
# m16/m32/m64, BCD), the arithmetic forms of D8/DC/DE and the memory forms,
# FXCH, FCHS, FABS, the constants, FSQRT, FPREM/FPREM1, FRNDINT, FSCALE,
# FXTRACT, the transcendentals, FTST, FXAM, compares (FCOM/FUCOM,
# FCOMI/FUCOMI and popping forms), FCMOVcc, control and status words,
# FNSTENV/FLDENV, FNSAVE/FRSTOR, FNINIT/FNCLEX, FFREE(P), FINCSTP/FDECSTP,
# and the register-form aliases hardware accepts (FSTPNCE D9 D8+i, FSTP
# DF D0+i/D8+i, FXCH DD C8+i/DF C8+i, FCOM/FCOMP DC D0+i/D8+i, DE D0+i).
# Reserved register-form slots of A.4.2 and memory forms D9 /1, DB /4 /6,
# DD /5 are #UD at decode time (x87_fix).
#
# Values are kept as raw 80-bit images; host dependency as ops_sse_int.pxi
# (replace the C helpers with a soft-float implementation to port):
# - the common arithmetic runs on the host x87 on copies of its operands
#   (emu_x87) under the guest's precision and rounding with exceptions
#   masked; the host status word supplies the exception flags and C1;
# - the transcendentals, FPREM1, FXTRACT, the FLDxx constants and FBLD/FBSTP,
#   and every non-control instruction while the guest unmasks any exception,
#   run whole on the host FPU loaded with the entire guest FPU state
#   (emu_x87_any via x87_any), so stack faults, C0-C3 and the unmasked
#   responses are the hardware's.
# Unmasked exceptions set ES/B in the status word; the next waiting x87
# instruction (all but FNINIT FNCLEX FNSTSW FNSTCW FNSTENV FNSAVE and
# FLDCW FLDENV FRSTOR), FWAIT or MMX instruction then takes #MF.

cdef extern from *:
    """
    enum { XO_ADD, XO_MUL, XO_COM, XO_COMP_, XO_SUB, XO_SUBR, XO_DIV, XO_DIVR,
           XO_UCOM, XO_SQRT, XO_PREM, XO_RNDINT, XO_TST,
           XO_LD32, XO_LD64, XO_ST32, XO_ST64, XO_ILD16, XO_ILD32, XO_ILD64,
           XO_IST16, XO_IST32, XO_IST64, XO_ISTT16, XO_ISTT32, XO_ISTT64, XO_SCALE };
    /* r = a op b (a is ST(0)-side, b the other operand), with the guest control
       word (exceptions masked). m: memory-format operand in/out. Returns the
       host status word (exception flags, C0-C3). */
    static unsigned int emu_x87(unsigned int cw, int op, const unsigned char* a, const unsigned char* b,
                                unsigned char* r, uint64_t* m) {
        unsigned short sv, sw = 0;
        unsigned int env[7];
        long double la, lb, lr = 0;
        memcpy(&la, a, 10); memcpy(&lb, b, 10);
        /* the guest's control word (exceptions masked) and condition codes,
           so bits an instruction leaves alone come back unchanged */
        __asm__ volatile("fnstcw %0\\n\\tfnstenv %1" : "=m"(sv), "=m"(env));
        env[0] = (env[0] & 0xffff0000u) | (cw & 0xffff) | 0x3f;
        env[1] = (env[1] & 0xffff3800u) | ((cw >> 16) & 0x4700);
        __asm__ volatile("fldenv %0" : : "m"(env));
        switch (op) {
    #define X87_BIN(insn) __asm__ volatile("fldt %3\\n\\tfldt %2\\n\\t" insn "\\n\\tfnstsw %1\\n\\tfstpt %0\\n\\tfstp %%st(0)" \
            : "=m"(lr), "=m"(sw) : "m"(la), "m"(lb) : "st", "st(1)"); break;
    #define X87_CMP(insn) __asm__ volatile("fldt %2\\n\\tfldt %1\\n\\t" insn "\\n\\tfnstsw %0" \
            : "=m"(sw) : "m"(la), "m"(lb) : "st", "st(1)"); break;
    #define X87_UN(insn) __asm__ volatile("fldt %2\\n\\t" insn "\\n\\tfnstsw %1\\n\\tfstpt %0" \
            : "=m"(lr), "=m"(sw) : "m"(la) : "st"); break;
    #define X87_LD(insn, T) __asm__ volatile(insn " %2\\n\\tfnstsw %1\\n\\tfstpt %0" \
            : "=m"(lr), "=m"(sw) : "m"(*(T*)m) : "st"); break;
    #define X87_ST(insn, T) __asm__ volatile("fldt %2\\n\\t" insn " %0\\n\\tfnstsw %1" \
            : "=m"(*(T*)m), "=m"(sw) : "m"(la) : "st"); break;
    #define X87_MEM(insn, T) __asm__ volatile("fldt %2\\n\\t" insn " %3\\n\\tfnstsw %1\\n\\tfstpt %0" \
            : "=m"(lr), "=m"(sw) : "m"(la), "m"(*(T*)m) : "st"); break;
    #define X87_MCMP(insn, T) __asm__ volatile("fldt %1\\n\\t" insn " %2\\n\\tfnstsw %0\\n\\tfstp %%st(0)" \
            : "=m"(sw) : "m"(la), "m"(*(T*)m) : "st"); break;
        case 32: X87_MEM("fadds", float)
        case 33: X87_MEM("fmuls", float)
        case 34: X87_MCMP("fcoms", float)
        case 35: X87_MCMP("fcoms", float)
        case 36: X87_MEM("fsubs", float)
        case 37: X87_MEM("fsubrs", float)
        case 38: X87_MEM("fdivs", float)
        case 39: X87_MEM("fdivrs", float)
        case 40: X87_MEM("faddl", double)
        case 41: X87_MEM("fmull", double)
        case 42: X87_MCMP("fcoml", double)
        case 43: X87_MCMP("fcoml", double)
        case 44: X87_MEM("fsubl", double)
        case 45: X87_MEM("fsubrl", double)
        case 46: X87_MEM("fdivl", double)
        case 47: X87_MEM("fdivrl", double)
        case 48: X87_MEM("fiaddl", int)
        case 49: X87_MEM("fimull", int)
        case 50: X87_MCMP("ficoml", int)
        case 51: X87_MCMP("ficoml", int)
        case 52: X87_MEM("fisubl", int)
        case 53: X87_MEM("fisubrl", int)
        case 54: X87_MEM("fidivl", int)
        case 55: X87_MEM("fidivrl", int)
        case 56: X87_MEM("fiadds", short)
        case 57: X87_MEM("fimuls", short)
        case 58: X87_MCMP("ficoms", short)
        case 59: X87_MCMP("ficoms", short)
        case 60: X87_MEM("fisubs", short)
        case 61: X87_MEM("fisubrs", short)
        case 62: X87_MEM("fidivs", short)
        case 63: X87_MEM("fidivrs", short)
        case XO_ADD: X87_BIN("fadd %%st(1), %%st")
        case XO_MUL: X87_BIN("fmul %%st(1), %%st")
        case XO_SUB: X87_BIN("fsub %%st(1), %%st")
        case XO_SUBR: X87_BIN("fsubr %%st(1), %%st")
        case XO_DIV: X87_BIN("fdiv %%st(1), %%st")
        case XO_DIVR: X87_BIN("fdivr %%st(1), %%st")
        case XO_PREM: X87_BIN("fprem")
        case XO_SCALE: X87_BIN("fscale")
        case XO_COM: X87_CMP("fcompp")
        case XO_UCOM: X87_CMP("fucompp")
        case XO_TST: X87_UN("ftst")
        case XO_SQRT: X87_UN("fsqrt")
        case XO_RNDINT: X87_UN("frndint")
        case XO_LD32: X87_LD("flds", float)
        case XO_LD64: X87_LD("fldl", double)
        case XO_ILD16: X87_LD("filds", short)
        case XO_ILD32: X87_LD("fildl", int)
        case XO_ILD64: X87_LD("fildll", long long)
        case XO_ST32: X87_ST("fstps", float)
        case XO_ST64: X87_ST("fstpl", double)
        case XO_IST16: X87_ST("fistps", short)
        case XO_IST32: X87_ST("fistpl", int)
        case XO_IST64: X87_ST("fistpll", long long)
        case XO_ISTT16: X87_ST("fisttps", short)
        case XO_ISTT32: X87_ST("fisttpl", int)
        default: X87_ST("fisttpll", long long)
        }
        __asm__ volatile("fnclex\\n\\tfldcw %0" : : "m"(sv));
        memcpy(r, &lr, 10);
        return sw;
    }

    /* Any x87 instruction run on the host FPU loaded with the whole guest
       FPU (a 108-byte FNSAVE image, 32-bit layout, in/out): enc is the
       opcode byte and ModRM (memory forms with ModRM (n << 3) | 6, i.e.
       [rsi], pointing at m). Stack faults, C0-C3, results under unmasked
       exceptions are the host's. The image's status word must carry no
       exception flags, ES or B (nothing may be pending when the instruction
       starts); an exception it raises unmasked stays pending only until the
       non-waiting FNSAVE. *ah: RFLAGS bits 0-7 in (FCMOVcc, via SAHF) and
       out (FCOMI and friends, via LAHF). */
    #define EMU_XA1(op, mm) case (((op) << 8) | (mm)): __asm__ volatile("sahf\\n\\t.byte %c2, %c3\\n\\tlahf" \
        : "+a"(ax) : "S"(m), "i"(op), "i"(mm) : "cc", "memory"); break;
    #define EMU_XA8(op, mm) EMU_XA1(op, mm) EMU_XA1(op, mm + 1) EMU_XA1(op, mm + 2) EMU_XA1(op, mm + 3) \
        EMU_XA1(op, mm + 4) EMU_XA1(op, mm + 5) EMU_XA1(op, mm + 6) EMU_XA1(op, mm + 7)
    #define EMU_XAREG(op) EMU_XA8(op, 0xc0) EMU_XA8(op, 0xc8) EMU_XA8(op, 0xd0) EMU_XA8(op, 0xd8) \
        EMU_XA8(op, 0xe0) EMU_XA8(op, 0xe8) EMU_XA8(op, 0xf0) EMU_XA8(op, 0xf8)
    #define EMU_XAMEM(op) EMU_XA1(op, 0x06) EMU_XA1(op, 0x0e) EMU_XA1(op, 0x16) EMU_XA1(op, 0x1e) \
        EMU_XA1(op, 0x26) EMU_XA1(op, 0x2e) EMU_XA1(op, 0x36) EMU_XA1(op, 0x3e)
    #define EMU_XAOP(op) EMU_XAREG(op) EMU_XAMEM(op)
    static void emu_x87_any(unsigned char* img, unsigned int enc, unsigned char* m, unsigned int* ah) {
        unsigned char host[108];
        unsigned long ax = (unsigned long)(*ah & 0xff) << 8;
        __asm__ volatile("fnsave %0\\n\\tfrstor %1" : "=m"(host) : "m"(*(unsigned char(*)[108])img) : "memory");
        switch (enc) {
        EMU_XAOP(0xd8) EMU_XAOP(0xd9) EMU_XAOP(0xda) EMU_XAOP(0xdb)
        EMU_XAOP(0xdc) EMU_XAOP(0xdd) EMU_XAOP(0xde) EMU_XAOP(0xdf)
        default: break;
        }
        __asm__ volatile("fnsave %0\\n\\tfrstor %1" : "=m"(*(unsigned char(*)[108])img) : "m"(host) : "memory");
        *ah = (ax >> 8) & 0xff;
    }
    """
    unsigned int emu_x87(unsigned int cw, int op, const unsigned char* a, const unsigned char* b,
                         unsigned char* r, uint64_t* m) noexcept nogil
    void emu_x87_any(unsigned char* img, unsigned int enc, unsigned char* m, unsigned int* ah) noexcept nogil

# encodings for x87_full (opcode << 8 | ModRM; memory forms address [rsi])
cdef enum:
    XF_FSIN = 0xd9fe
    XF_FCOS = 0xd9ff
    XF_FSINCOS = 0xd9fb
    XF_FPTAN = 0xd9f2
    XF_FPATAN = 0xd9f3
    XF_F2XM1 = 0xd9f0
    XF_FYL2X = 0xd9f1
    XF_FYL2XP1 = 0xd9f9
    XF_FPREM1 = 0xd9f5
    XF_FXTRACT = 0xd9f4
    XF_FLDL2T = 0xd9e9
    XF_FBLD = 0xdf26
    XF_FBSTP = 0xdf36

cdef extern from *:
    enum:
        XO_ADD, XO_MUL, XO_COM, XO_COMP_, XO_SUB, XO_SUBR, XO_DIV, XO_DIVR, XO_UCOM, XO_SQRT, XO_PREM
        XO_RNDINT, XO_TST, XO_LD32, XO_LD64, XO_ST32, XO_ST64, XO_ILD16, XO_ILD32, XO_ILD64
        XO_IST16, XO_IST32, XO_IST64, XO_ISTT16, XO_ISTT32, XO_ISTT64, XO_SCALE

cdef enum:
    FSW_IE = 0x1
    FSW_SF = 0x40
    FSW_ES = 0x80
    FSW_C0 = 0x100
    FSW_C1 = 0x200
    FSW_C2 = 0x400
    FSW_C3 = 0x4000
    FSW_B = 0x8000

cdef uint8_t X87_INDEFINITE[10]
X87_INDEFINITE[:] = [0, 0, 0, 0, 0, 0, 0, 0xC0, 0xFF, 0xFF]
cdef uint8_t X87_ZERO[10]
X87_ZERO[:] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
cdef uint8_t X87_ONE[10]
X87_ONE[:] = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xFF, 0x3F]

cdef inline uint32_t x87_cw(Cpu* c) noexcept nogil:
    """emu_x87's first argument: the control word, and the condition codes above it."""
    return c.fcw | (<uint32_t>(c.fsw & (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)) << 16)

cdef inline uint8_t* st_ptr(Cpu* c, uint32_t i) noexcept nogil:
    return &c.fpr[(c.ftop + i) & 7][0]

cdef inline int st_empty(Cpu* c, uint32_t i) noexcept nogil:
    return ((c.ftw >> (2 * ((c.ftop + i) & 7))) & 3) == 3

cdef inline void st_set_tag(Cpu* c, uint32_t phys) noexcept nogil:
    c.ftw = <uint16_t>((c.ftw & ~(3 << (2 * phys))) | (x87_tag_of(&c.fpr[phys][0]) << (2 * phys)))

cdef inline void st_write(Cpu* c, uint32_t i, const uint8_t* v) noexcept nogil:
    cdef uint32_t p = (c.ftop + i) & 7
    memcpy(&c.fpr[p][0], v, 10)
    st_set_tag(c, p)

cdef inline void x87_pop(Cpu* c) noexcept nogil:
    c.ftw |= <uint16_t>(3 << (2 * (c.ftop & 7)))
    c.ftop = (c.ftop + 1) & 7

cdef inline void x87_exc(Cpu* c, uint32_t flags) noexcept nogil:
    """Record exception flags; unmasked ones set ES and B."""
    c.fsw |= flags & 0x7f
    if flags & 0x3f & ~c.fcw:
        c.fsw |= FSW_ES | FSW_B

cdef inline int x87_check_nw(Cpu* c) noexcept nogil:
    """The no-wait instructions (FNINIT FNCLEX FNSTSW FNSTCW FNSTENV FNSAVE)
    and FLDCW/FLDENV/FRSTOR, which list no #MF (a pending exception they
    unmask is taken by the next waiting instruction): CR0.EM or CR0.TS
    give #NM."""
    if c.cr0 & (SSE_CR0_EM | SSE_CR0_TS):
        return raise_exc(c, EXC_NM, 0, 0)
    return 0

cdef inline int x87_check(Cpu* c) noexcept nogil:
    """The other x87 instructions also take a pending unmasked exception
    (ES set) first: #MF (SDM Vol. 1, 8.6)."""
    if c.cr0 & (SSE_CR0_EM | SSE_CR0_TS):
        return raise_exc(c, EXC_NM, 0, 0)
    if c.fsw & FSW_ES:
        return raise_exc(c, EXC_MF, 0, 0)
    return 0

cdef inline void x87_result_flags(Cpu* c, uint32_t sw) noexcept nogil:
    """Exception flags and C1 (rounded up) of an arithmetic result."""
    c.fsw = (c.fsw & ~(<uint16_t>FSW_C1)) | (sw & FSW_C1)
    x87_exc(c, sw & 0x3f)

cdef inline int x87_push_full(Cpu* c) noexcept nogil:
    return ((c.ftw >> (2 * ((c.ftop - 1) & 7))) & 3) != 3

cdef inline int x87_push(Cpu* c, const uint8_t* v) noexcept nogil:
    """Push v; on stack overflow the masked response pushes the indefinite."""
    cdef uint32_t p = (c.ftop - 1) & 7
    c.fsw &= ~(<uint16_t>FSW_C1)
    if ((c.ftw >> (2 * p)) & 3) != 3:
        c.fsw |= FSW_C1
        x87_exc(c, FSW_IE | FSW_SF)
        if not (c.fcw & 1):
            return 1
        v = X87_INDEFINITE
    c.ftop = p
    memcpy(&c.fpr[p][0], v, 10)
    st_set_tag(c, p)
    return 0

cdef inline int x87_underflow(Cpu* c) noexcept nogil:
    """Stack underflow: IE|SF with C1 = 0; returns 1 when unmasked (no result)."""
    c.fsw &= ~(<uint16_t>FSW_C1)
    x87_exc(c, FSW_IE | FSW_SF)
    return 0 if c.fcw & 1 else 1

cdef inline void x87_note(Cpu* c, const Uop* u) noexcept nogil:
    c.fip = u.rip
    if u.mem:
        c.fdp = ea_of(c, u)

cdef int x87_arith(Cpu* c, const Uop* u, uint32_t n, uint32_t dst, const uint8_t* other, int pop) noexcept nogil:
    """ST(dst) = ST(dst) op other for /n (0 add, 1 mul, 2 com, 3 comp, 4 sub,
    5 subr, 6 div, 7 divr); dst 0 with other = memory/ST(i), or dst i with
    other = ST(0) (DC/DE register forms, where sub/div are reversed by the
    encoding and passed in n already)."""
    cdef uint8_t r[10]
    cdef uint32_t sw
    cdef uint64_t m = 0
    if n == 2 or n == 3:
        sw = emu_x87(x87_cw(c), XO_COM, st_ptr(c, 0), other, r, &m)
        c.fsw = (c.fsw & ~(<uint16_t>(FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3))) | (sw & (FSW_C0 | FSW_C2 | FSW_C3))
        x87_exc(c, sw & 0x3f)
        if n == 3 or pop:
            x87_pop(c)
        return R_NEXT
    sw = emu_x87(x87_cw(c), XO_ADD + (0 if n == 0 else (1 if n == 1 else n)), st_ptr(c, dst), other, r, &m)
    x87_result_flags(c, sw)
    if not (sw & 0x3f & ~c.fcw):
        st_write(c, dst, r)
    if pop:
        x87_pop(c)
    return R_NEXT

cdef int op_x87_d8(Cpu* c, const Uop* u) noexcept nogil:
    """D8 (m32 / ST(0),ST(i)) and DC (m64 / ST(i),ST(0)) and DE (ST(i),ST(0) and pop)."""
    cdef uint32_t n = u.reg & 7, i = u.rm & 7, op, fmt
    cdef uint64_t m
    cdef uint8_t v[10]
    cdef uint32_t sw
    if x87_check(c):
        return R_EXC
    if x87_unmasked(c):
        return x87_slow(c, u)
    x87_note(c, u)
    if u.mem:
        # the host instruction with the memory operand in its own format, so
        # operand-class precedence (invalid over denormal) is the host's
        if mem_read(c, ea_of(c, u), 8 if u.opc == 0xdc else (2 if u.opc == 0xde else 4), &m):
            return R_EXC
        fmt = 0 if u.opc == 0xd8 else (1 if u.opc == 0xdc else (2 if u.opc == 0xda else 3))
        if st_empty(c, 0):
            if x87_underflow(c):
                return R_NEXT
            if n == 2 or n == 3:
                c.fsw |= FSW_C0 | FSW_C2 | FSW_C3
                if n == 3:
                    x87_pop(c)
                return R_NEXT
            st_write(c, 0, X87_INDEFINITE)
            return R_NEXT
        sw = emu_x87(x87_cw(c), 32 + 8 * fmt + n, st_ptr(c, 0), X87_ZERO, v, &m)
        if n == 2 or n == 3:
            c.fsw = (c.fsw & ~(<uint16_t>(FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3))) | (sw & (FSW_C0 | FSW_C2 | FSW_C3))
            x87_exc(c, sw & 0x3f)
            if n == 3 and not (sw & 0x3f & ~c.fcw):
                x87_pop(c)
            return R_NEXT
        x87_result_flags(c, sw)
        if not (sw & 0x3f & ~c.fcw):
            st_write(c, 0, v)
        return R_NEXT
    if st_empty(c, 0) or st_empty(c, i):
        if x87_underflow(c):
            return R_NEXT
        if n == 2 or n == 3:
            c.fsw |= FSW_C0 | FSW_C2 | FSW_C3
            if n == 3:
                x87_pop(c)
            if u.opc == 0xde:
                x87_pop(c)
            return R_NEXT
        st_write(c, 0 if u.opc == 0xd8 else i, X87_INDEFINITE)
        if u.opc == 0xde:
            x87_pop(c)
        return R_NEXT
    if u.opc == 0xd8:
        return x87_arith(c, u, n, 0, st_ptr(c, i), 0)
    if u.opc == 0xde and n == 3:
        if i != 1:
            return raise_ud(c)
        memcpy(v, st_ptr(c, 1), 10)
        x87_arith(c, u, 3, 0, v, 0)      # FCOMPP: compare and pop twice
        x87_pop(c)
        return R_NEXT
    if n == 2 or n == 3:       # DC D0+i / DE D0+i alias FCOM/FCOMP
        return x87_arith(c, u, n, 0, st_ptr(c, i), u.opc == 0xde)
    # DC/DE register forms: ST(i) = ST(i) op ST(0); E0/E8 are FSUBR/FSUB, F0/F8 FDIVR/FDIV
    op = n
    if n >= 4:
        op = n ^ 1
    memcpy(v, st_ptr(c, 0), 10)
    return x87_arith(c, u, op, i, v, u.opc == 0xde)

cdef inline void x87_compare_eflags(Cpu* c, uint32_t sw) noexcept nogil:
    """FCOMI/FUCOMI: C3 C2 C0 -> ZF PF CF; OF SF AF cleared."""
    cdef uint64_t f = 0
    if sw & FSW_C3:
        f |= F_ZF
    if sw & FSW_C2:
        f |= F_PF
    if sw & FSW_C0:
        f |= F_CF
    set_arith_flags(c, f)

cdef int op_x87_d9(Cpu* c, const Uop* u) noexcept nogil:
    """D9: FLD m32, FST/FSTP m32, FLDCW, FNSTCW, FNSTENV/FLDENV (not yet);
    register forms FLD ST(i), FXCH, FNOP, FCHS, FABS, FTST, FXAM, FLD1, FLDZ,
    FDECSTP, FINCSTP, FPREM, FSQRT, FRNDINT, FSCALE."""
    cdef uint32_t n = u.reg & 7, i = u.rm & 7, sw, cls
    cdef uint64_t m = 0, a
    cdef uint8_t v[10]
    cdef uint8_t w[10]
    if u.mem:
        a = ea_of(c, u)
        if n == 5:              # FLDCW
            if x87_check_nw(c) or mem_read(c, a, 2, &m):
                return R_EXC
            c.fcw = <uint16_t>((m & 0x1F3F) | 0x40)
            if c.fsw & 0x3f & ~c.fcw:
                c.fsw |= FSW_ES | FSW_B
            else:
                c.fsw &= ~(<uint16_t>(FSW_ES | FSW_B))
            return R_NEXT
        if n == 7:              # FNSTCW
            if x87_check_nw(c):
                return R_EXC
            return R_EXC if mem_write(c, a, 2, c.fcw) else R_NEXT
        if n == 4:              # FLDENV
            return x87_ldenv(c, u, a, 0)
        if n == 6:              # FNSTENV
            return x87_stenv(c, u, a, 0)
        if x87_check(c):
            return R_EXC
        if x87_unmasked(c):
            return x87_slow(c, u)
        x87_note(c, u)
        if n == 0:              # FLD m32
            if mem_read(c, a, 4, &m):
                return R_EXC
            if x87_push_full(c):
                x87_push(c, X87_INDEFINITE)     # stack overflow, before the conversion
                return R_NEXT
            sw = emu_x87(x87_cw(c), XO_LD32, X87_ZERO, X87_ZERO, v, &m)
            x87_exc(c, sw & 0x3f)
            if sw & 0x3f & ~c.fcw:
                return R_NEXT
            x87_push(c, v)
            return R_NEXT
        if n == 2 or n == 3:    # FST/FSTP m32
            return x87_store_fp(c, a, 4, n == 3)
        if n == 4:              # FLDENV
            return x87_ldenv(c, u, a, 0)
        if n == 6:              # FNSTENV
            return x87_stenv(c, u, a, 0)
        return raise_ud(c)
    if x87_check(c):
        return R_EXC
    if x87_unmasked(c):
        return x87_slow(c, u)
    x87_note(c, u)
    if n == 0:                  # FLD ST(i)
        if st_empty(c, i):
            if x87_underflow(c):
                return R_NEXT
            x87_push(c, X87_INDEFINITE)
            return R_NEXT
        memcpy(v, st_ptr(c, i), 10)
        x87_push(c, v)
        return R_NEXT
    if n == 1:                  # FXCH ST(i)
        return x87_fxch(c, i)
    if n == 3:                  # FSTPNCE ST(i) (D9 D8+i): FSTP ST(i)
        if st_empty(c, 0):
            # an empty ST(0) is popped without a stack fault and ST(i) is
            # left alone (as the AMD host does)
            c.fsw &= ~(<uint16_t>FSW_C1)
            x87_pop(c)
            return R_NEXT
        return x87_fst_reg(c, i, 1)
    if n == 2:                  # FNOP (D9 D0)
        return R_NEXT
    return op_x87_d9_rest(c, u, n, i)

cdef int x87_fxch(Cpu* c, uint32_t i) noexcept nogil:
    """FXCH ST(i) (D9 C8+i, and the DD C8+i / DF C8+i aliases)."""
    cdef uint8_t v[10]
    cdef uint8_t w[10]
    if True:
        if st_empty(c, 0) or st_empty(c, i):
            if x87_underflow(c):
                return R_NEXT
            if st_empty(c, 0):
                st_write(c, 0, X87_INDEFINITE)
            if st_empty(c, i):
                st_write(c, i, X87_INDEFINITE)
        memcpy(v, st_ptr(c, 0), 10)
        memcpy(w, st_ptr(c, i), 10)
        st_write(c, 0, w)
        st_write(c, i, v)
        c.fsw &= ~(<uint16_t>FSW_C1)
        return R_NEXT

cdef int x87_fst_reg(Cpu* c, uint32_t i, int pop) noexcept nogil:
    """FST/FSTP ST(i) (DD D0+i / D8+i, and the D9 D8+i, DF D0+i, DF D8+i aliases)."""
    cdef uint8_t v[10]
    if st_empty(c, 0):
        if x87_underflow(c):
            return R_NEXT
        st_write(c, i, X87_INDEFINITE)
    else:
        memcpy(v, st_ptr(c, 0), 10)
        st_write(c, i, v)
    c.fsw &= ~(<uint16_t>FSW_C1)
    if pop:
        x87_pop(c)
    return R_NEXT

cdef int op_x87_d9_rest(Cpu* c, const Uop* u, uint32_t n, uint32_t i) noexcept nogil:
    """D9 E0-FF."""
    cdef uint32_t sw, cls
    cdef uint64_t m = 0, a
    cdef uint8_t v[10]
    if n == 4:
        if i == 0 or i == 1:    # FCHS, FABS
            if st_empty(c, 0):
                if x87_underflow(c):
                    return R_NEXT
                st_write(c, 0, X87_INDEFINITE)
                return R_NEXT
            memcpy(v, st_ptr(c, 0), 10)
            if i == 0:
                v[9] ^= 0x80
            else:
                v[9] &= 0x7f
            st_write(c, 0, v)
            c.fsw &= ~(<uint16_t>FSW_C1)
            return R_NEXT
        if i == 4:              # FTST
            if st_empty(c, 0):
                if x87_underflow(c):
                    return R_NEXT
                c.fsw |= FSW_C0 | FSW_C2 | FSW_C3
                return R_NEXT
            sw = emu_x87(x87_cw(c), XO_TST, st_ptr(c, 0), X87_ZERO, v, &m)
            c.fsw = (c.fsw & ~(<uint16_t>(FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3))) | (sw & (FSW_C0 | FSW_C2 | FSW_C3))
            x87_exc(c, sw & 0x3f)
            return R_NEXT
        if i == 5:              # FXAM
            c.fsw &= ~(<uint16_t>(FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3))
            memcpy(v, st_ptr(c, 0), 10)
            if v[9] & 0x80:
                c.fsw |= FSW_C1
            if st_empty(c, 0):
                c.fsw |= FSW_C3 | FSW_C0
                return R_NEXT
            cls = x87_tag_of(v)
            a = (v[8] | (v[9] << 8)) & 0x7fff
            memcpy(&m, v, 8)
            if cls == 1:
                c.fsw |= FSW_C3                         # zero
            elif cls == 0:
                c.fsw |= FSW_C2                         # normal
            elif a == 0:
                c.fsw |= FSW_C3 | FSW_C2                # denormal
            elif a == 0x7fff and (m >> 63):
                if m << 1:
                    c.fsw |= FSW_C0                     # NaN
                else:
                    c.fsw |= FSW_C2 | FSW_C0            # infinity
            # unsupported formats: C3 C2 C0 all clear
            return R_NEXT
        return raise_ud(c)
    if n == 5:
        if i == 0:              # FLD1
            x87_push(c, X87_ONE)
            return R_NEXT
        if i == 6:              # FLDZ
            x87_push(c, X87_ZERO)
            return R_NEXT
        if i < 6:               # FLDL2T FLDL2E FLDPI FLDLG2 FLDLN2 (rounded under RC)
            return x87_full(c, XF_FLDL2T + i - 1, NULL)
        return raise_ud(c)
    if n == 6:
        if i == 6:              # FDECSTP
            c.ftop = (c.ftop - 1) & 7
            c.fsw &= ~(<uint16_t>FSW_C1)
            return R_NEXT
        if i == 7:              # FINCSTP
            c.ftop = (c.ftop + 1) & 7
            c.fsw &= ~(<uint16_t>FSW_C1)
            return R_NEXT
        # F2XM1 FYL2X FPTAN FPATAN FXTRACT FPREM1
        if i == 0:
            return x87_full(c, XF_F2XM1, NULL)
        if i == 1:
            return x87_full(c, XF_FYL2X, NULL)
        if i == 2:
            return x87_full(c, XF_FPTAN, NULL)
        if i == 3:
            return x87_full(c, XF_FPATAN, NULL)
        if i == 4:
            return x87_full(c, XF_FXTRACT, NULL)
        return x87_full(c, XF_FPREM1, NULL)
    if n == 7:
        if i == 1:
            return x87_full(c, XF_FYL2XP1, NULL)
        if i == 3:
            return x87_full(c, XF_FSINCOS, NULL)
        if i == 6:
            return x87_full(c, XF_FSIN, NULL)
        if i == 7:
            return x87_full(c, XF_FCOS, NULL)
        if i == 0 or i == 5:    # FPREM (F8) / FSCALE (FD): ST(0) with ST(1)
            if st_empty(c, 0) or st_empty(c, 1):
                if i == 0:
                    c.fsw &= ~(<uint16_t>FSW_C2)
                if x87_underflow(c):
                    return R_NEXT
                st_write(c, 0, X87_INDEFINITE)
                return R_NEXT
            sw = emu_x87(x87_cw(c), XO_PREM if i == 0 else XO_SCALE, st_ptr(c, 0), st_ptr(c, 1), v, &m)
            if i == 0:
                c.fsw = (c.fsw & ~(<uint16_t>(FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3))) | \
                    (sw & (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3))
                x87_exc(c, sw & 0x3f)
            else:
                x87_result_flags(c, sw)
            if not (sw & 0x3f & ~c.fcw):
                st_write(c, 0, v)
            return R_NEXT
        if i == 2 or i == 4:    # FSQRT (FA) / FRNDINT (FC)
            if st_empty(c, 0):
                if x87_underflow(c):
                    return R_NEXT
                st_write(c, 0, X87_INDEFINITE)
                return R_NEXT
            sw = emu_x87(x87_cw(c), XO_SQRT if i == 2 else XO_RNDINT, st_ptr(c, 0), X87_ZERO, v, &m)
            x87_result_flags(c, sw)
            if not (sw & 0x3f & ~c.fcw):
                st_write(c, 0, v)
            return R_NEXT
    return raise_ud(c)

cdef int x87_store_fp(Cpu* c, uint64_t a, uint32_t size, int pop) noexcept nogil:
    """FST/FSTP m32/m64 (and FIST/FISTP/FISTTP via x87_store_int)."""
    cdef uint64_t m = 0
    cdef uint32_t sw
    cdef uint8_t r[10]
    if st_empty(c, 0):
        if x87_underflow(c):
            return R_NEXT
        sw = emu_x87(x87_cw(c), XO_ST64 if size == 8 else XO_ST32, X87_INDEFINITE, X87_ZERO, r, &m)
    else:
        sw = emu_x87(x87_cw(c), XO_ST64 if size == 8 else XO_ST32, st_ptr(c, 0), X87_ZERO, r, &m)
        x87_result_flags(c, sw)
        if sw & 0x3f & ~c.fcw:
            return R_NEXT
    if mem_write(c, a, size, m):
        return R_EXC
    if pop:
        x87_pop(c)
    return R_NEXT

cdef int x87_store_int(Cpu* c, uint64_t a, uint32_t size, int pop, int trunc) noexcept nogil:
    cdef uint64_t m = 0
    cdef uint32_t sw, op
    cdef uint8_t r[10]
    op = (XO_ISTT16 if trunc else XO_IST16) + (0 if size == 2 else (1 if size == 4 else 2))
    if st_empty(c, 0):
        if x87_underflow(c):
            return R_NEXT
        sw = emu_x87(x87_cw(c), op, X87_INDEFINITE, X87_ZERO, r, &m)
    else:
        sw = emu_x87(x87_cw(c), op, st_ptr(c, 0), X87_ZERO, r, &m)
        x87_result_flags(c, sw)
        if sw & 0x3f & ~c.fcw:
            return R_NEXT
    if mem_write(c, a, size, m & SZ_MASK[size]):
        return R_EXC
    if pop:
        x87_pop(c)
    return R_NEXT

cdef int x87_load_int(Cpu* c, uint64_t a, uint32_t size) noexcept nogil:
    cdef uint64_t m
    cdef uint8_t v[10]
    if mem_read(c, a, size, &m):
        return R_EXC
    emu_x87(x87_cw(c), XO_ILD16 + (0 if size == 2 else (1 if size == 4 else 2)), X87_ZERO, X87_ZERO, v, &m)
    x87_push(c, v)
    return R_NEXT

cdef int op_x87_mem_misc(Cpu* c, const Uop* u) noexcept nogil:
    """DB, DD, DF memory and register forms."""
    cdef uint32_t n = u.reg & 7, i = u.rm & 7, sw
    cdef uint64_t a, m = 0
    cdef uint8_t v[10]
    cdef uint16_t w
    cdef uint32_t cc
    if u.mem and u.opc == 0xda:
        return op_x87_d8(c, u)
    if not u.mem and ((u.opc == 0xdb and n == 4) or (u.opc == 0xdf and n == 4 and i == 0)) or \
            (u.mem and u.opc == 0xdd and (n == 6 or n == 7)):
        if x87_check_nw(c):
            return R_EXC
    if not u.mem and u.opc == 0xdb and n == 4:
        if i == 3:              # FNINIT
            x87_init_state(c)
            return R_NEXT
        if i == 2:              # FNCLEX
            c.fsw &= ~(<uint16_t>0x80ff)
            return R_NEXT
        return R_NEXT           # FENI/FDISI/FSETPM: no-ops
    if not u.mem and u.opc == 0xdf and n == 4 and i == 0:      # FNSTSW AX
        rset(c, 0, 2, x87_fsw(c))
        return R_NEXT
    if not (u.mem and u.opc == 0xdd and (n == 4 or n == 6 or n == 7)) and x87_check(c):
        return R_EXC
    if x87_unmasked(c) and not (u.mem and u.opc == 0xdd and n >= 4):
        return x87_slow(c, u)
    if u.mem:
        a = ea_of(c, u)
        if u.opc == 0xdd and n == 7:        # FNSTSW m16
            return R_EXC if mem_write(c, a, 2, x87_fsw(c)) else R_NEXT
        x87_note(c, u)
        if u.opc == 0xdb:
            if n == 0:
                return x87_load_int(c, a, 4)
            if n == 1:
                return x87_store_int(c, a, 4, 1, 1)
            if n == 2 or n == 3:
                return x87_store_int(c, a, 4, n == 3, 0)
            if n == 5:                      # FLD m80
                if mem_read_bytes(c, a, v, 10):
                    return R_EXC
                x87_push(c, v)
                return R_NEXT
            if n == 7:                      # FSTP m80
                if st_empty(c, 0):
                    if x87_underflow(c):
                        return R_NEXT
                    memcpy(v, X87_INDEFINITE, 10)
                else:
                    memcpy(v, st_ptr(c, 0), 10)
                if mem_write_bytes(c, a, v, 10):
                    return R_EXC
                c.fsw &= ~(<uint16_t>FSW_C1)
                x87_pop(c)
                return R_NEXT
        elif u.opc == 0xdd:
            if n == 0:                      # FLD m64
                if mem_read(c, a, 8, &m):
                    return R_EXC
                if x87_push_full(c):
                    x87_push(c, X87_INDEFINITE)
                    return R_NEXT
                sw = emu_x87(x87_cw(c), XO_LD64, X87_ZERO, X87_ZERO, v, &m)
                x87_exc(c, sw & 0x3f)
                if sw & 0x3f & ~c.fcw:
                    return R_NEXT
                x87_push(c, v)
                return R_NEXT
            if n == 1:
                return x87_store_int(c, a, 8, 1, 1)
            if n == 2 or n == 3:
                return x87_store_fp(c, a, 8, n == 3)
            if n == 4:                      # FRSTOR
                return x87_ldenv(c, u, a, 1)
            if n == 6:                      # FNSAVE
                return x87_stenv(c, u, a, 1)
        elif u.opc == 0xdf:
            if n == 0:
                return x87_load_int(c, a, 2)
            if n == 1:
                return x87_store_int(c, a, 2, 1, 1)
            if n == 2 or n == 3:
                return x87_store_int(c, a, 2, n == 3, 0)
            if n == 5:
                return x87_load_int(c, a, 8)
            if n == 7:
                return x87_store_int(c, a, 8, 1, 0)
            if n == 4:                      # FBLD m80bcd
                if mem_read_bytes(c, a, v, 10):
                    return R_EXC
                return x87_full(c, XF_FBLD, v)
            if n == 6:                      # FBSTP m80bcd
                if probe_write(c, a, 10) or mem_read_bytes(c, a, v, 10):
                    return R_EXC
                x87_full(c, XF_FBSTP, v)
                return R_EXC if mem_write_bytes(c, a, v, 10) else R_NEXT
        return raise_ud(c)
    x87_note(c, u)
    if u.opc == 0xdd:
        if n == 0:                          # FFREE ST(i) (C0-C3 undefined: C1 cleared like the host)
            c.ftw |= <uint16_t>(3 << (2 * ((c.ftop + i) & 7)))
            c.fsw &= ~(<uint16_t>FSW_C1)
            return R_NEXT
        if n == 2 or n == 3:                # FST/FSTP ST(i)
            return x87_fst_reg(c, i, n == 3)
        if n == 1:                          # FXCH alias (DD C8+i)
            return x87_fxch(c, i)
        if n == 4 or n == 5:                # FUCOM/FUCOMP ST(i)
            return x87_ucom(c, i, 0, n == 5, 0)
        return raise_ud(c)
    if (u.opc == 0xda or u.opc == 0xdb) and n < 4:     # FCMOVcc
        cc = (10 if n == 3 else 2 + 2 * n) + (1 if u.opc == 0xdb else 0)
        if st_empty(c, 0) or st_empty(c, i):
            if x87_underflow(c):
                return R_NEXT
            st_write(c, 0, X87_INDEFINITE)
            return R_NEXT
        if eval_cond(c, cc):
            memcpy(v, st_ptr(c, i), 10)
            st_write(c, 0, v)
        return R_NEXT
    if u.opc == 0xda and n == 5 and i == 1:     # FUCOMPP
        return x87_ucom(c, 1, 0, 2, 0)
    if (u.opc == 0xdb or u.opc == 0xdf) and (n == 5 or n == 6):   # F[U]COMI[P]
        return x87_ucom(c, i, n == 6, u.opc == 0xdf, 1)
    if u.opc == 0xdf and n == 1:            # FXCH alias (DF C8+i)
        return x87_fxch(c, i)
    if u.opc == 0xdf and (n == 2 or n == 3):    # FSTP aliases (DF D0+i, DF D8+i)
        return x87_fst_reg(c, i, 1)
    if u.opc == 0xdf and n == 0:            # FFREEP (C1 cleared like the host)
        c.ftw |= <uint16_t>(3 << (2 * ((c.ftop + i) & 7)))
        c.fsw &= ~(<uint16_t>FSW_C1)
        x87_pop(c)
        return R_NEXT
    return raise_ud(c)

cdef int x87_ucom(Cpu* c, uint32_t i, int ordered, int pops, int eflags) noexcept nogil:
    """FUCOM*/FCOMI*/FUCOMI*: compare ST(0) with ST(i)."""
    cdef uint32_t sw, k
    cdef uint64_t m = 0
    cdef uint8_t r[10]
    if st_empty(c, 0) or st_empty(c, i):
        if x87_underflow(c):
            return R_NEXT
        sw = FSW_C0 | FSW_C2 | FSW_C3
    else:
        sw = emu_x87(x87_cw(c), XO_COM if ordered else XO_UCOM, st_ptr(c, 0), st_ptr(c, i), r, &m)
        x87_exc(c, sw & 0x3f)
        if sw & 0x3f & ~c.fcw:
            return R_NEXT
    if eflags:
        # C1 is left alone (as the AMD host does; Intel documents it cleared)
        x87_compare_eflags(c, sw)
    else:
        c.fsw = (c.fsw & ~(<uint16_t>(FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3))) | (sw & (FSW_C0 | FSW_C2 | FSW_C3))
    for k in range(pops):
        x87_pop(c)
    return R_NEXT


# ---- whole-FPU instructions on the host, environment and state images ----

cdef inline uint16_t x87_full_tags(Cpu* c) noexcept nogil:
    """The full tag word of FNSTENV/FNSAVE: empty, or computed from the contents."""
    cdef uint32_t i
    cdef uint16_t t = 0
    for i in range(8):
        if ((c.ftw >> (2 * i)) & 3) == 3:
            t |= <uint16_t>(3 << (2 * i))
        else:
            t |= <uint16_t>(x87_tag_of(&c.fpr[i][0]) << (2 * i))
    return t

cdef void x87_env32(Cpu* c, uint8_t* b, uint16_t fsw) noexcept nogil:
    """The 28-byte protected-mode environment (32-bit layout; the reserved
    upper halves read as ones, like the hardware writes them)."""
    cdef uint16_t w
    cdef uint32_t v
    memset(b, 0xff, 28)
    memcpy(b, &c.fcw, 2)
    memcpy(b + 4, &fsw, 2)
    w = x87_full_tags(c)
    memcpy(b + 8, &w, 2)
    v = <uint32_t>c.fip
    memcpy(b + 12, &v, 4)
    memcpy(b + 16, &c.seg_sel[SEG_CS], 2)
    w = c.fop & 0x7ff
    memcpy(b + 18, &w, 2)
    v = <uint32_t>c.fdp
    memcpy(b + 20, &v, 4)
    memcpy(b + 24, &c.seg_sel[SEG_DS], 2)

cdef int x87_full(Cpu* c, uint32_t enc, uint8_t* m) noexcept nogil:
    """FSIN FCOS FSINCOS FPTAN FPATAN F2XM1 FYL2X FYL2XP1 FPREM1 FXTRACT, the
    FLDxx constants and FBLD/FBSTP: always on the host FPU (x87_any)."""
    x87_any(c, enc, m, 0)
    return R_NEXT

cdef uint32_t x87_any(Cpu* c, uint32_t enc, uint8_t* m, uint32_t ah) noexcept nogil:
    """Run one instruction (opcode << 8 | ModRM, memory operand at m) on the
    host FPU loaded with the whole guest FPU (emu_x87_any). The guest's
    exception flags, ES and B are kept out of the host (nothing may be
    pending there) and merged back afterwards. ah: RFLAGS bits 0-7 in and
    out."""
    cdef uint8_t b[108]
    cdef uint16_t nsw, old = c.fsw
    cdef uint32_t i, flags
    x87_env32(c, b, <uint16_t>(x87_fsw(c) & ~0x80ff))
    for i in range(8):
        memcpy(b + 28 + 10 * i, st_ptr(c, i), 10)
    emu_x87_any(b, enc, m, &ah)
    memcpy(&nsw, b + 4, 2)
    memcpy(&c.ftw, b + 8, 2)
    c.ftop = (nsw >> 11) & 7
    flags = nsw & 0x7f
    c.fsw = <uint16_t>((nsw & (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)) | (old & 0x80ff) | flags)
    if flags & 0x3f & ~c.fcw:
        c.fsw |= FSW_ES | FSW_B
    for i in range(8):
        memcpy(st_ptr(c, i), b + 28 + 10 * i, 10)
    return ah

cdef inline int x87_unmasked(Cpu* c) noexcept nogil:
    return (c.fcw & 0x3f) != 0x3f

cdef int x87_slow(Cpu* c, const Uop* u) noexcept nogil:
    """A non-control x87 instruction run whole on the host FPU (x87_any): the
    path taken while the guest unmasks any exception, so results, stack and
    status under unmasked exceptions (no store; biased exponents for
    overflow/underflow; rounded result with precision) are the hardware's."""
    cdef uint32_t n = u.reg & 7, k = u.opc - 0xd8, size = 0, store = 0, enc, ah
    cdef uint8_t buf[16]
    cdef uint64_t a = 0
    x87_note(c, u)
    memset(buf, 0, 16)
    if u.mem:
        enc = (<uint32_t>u.opc << 8) | (n << 3) | 6
        if k == 0 or k == 2:
            size = 4
        elif k == 4:
            size = 8
        elif k == 6:
            size = 2
        else:
            size = 4 if k == 1 or k == 3 else (8 if k == 5 else 2)
            if 1 <= n <= 3:
                store = 1
            elif k == 3 and (n == 5 or n == 7):
                size = 10
                store = n == 7
            elif k == 7 and n >= 4:
                size = 10 if (n == 4 or n == 6) else 8
                store = n >= 6
        a = ea_of(c, u)
        if store and probe_write(c, a, size):
            return R_EXC
        if mem_read_bytes(c, a, buf, size):
            return R_EXC
    else:
        enc = (<uint32_t>u.opc << 8) | 0xc0 | (n << 3) | (u.rm & 7)
    ah = x87_any(c, enc, buf, <uint32_t>get_rflags(c) & 0xff)
    if store and mem_write_bytes(c, a, buf, size):
        return R_EXC
    if not u.mem and (k == 3 or k == 7) and (n == 5 or n == 6):
        set_arith_flags(c, ah & 0xD5)       # FCOMI family: ZF PF CF, OF SF AF clear
    return R_NEXT

cdef int x87_stenv(Cpu* c, const Uop* u, uint64_t a, int save) noexcept nogil:
    """FNSTENV m28/m14 (D9 /6) and FNSAVE m108/m94 (DD /6): the environment
    (16-bit layout with 66), then for FNSAVE ST0-7; FNSTENV then masks all
    exceptions, FNSAVE reinitialises the FPU."""
    cdef uint8_t b[108]
    cdef uint8_t e[28]
    cdef uint32_t n, i
    cdef uint16_t w
    if x87_check_nw(c):
        return R_EXC
    x87_env32(c, e, x87_fsw(c))
    if u.pfx66:
        memcpy(b, e, 2)                 # FCW
        memcpy(b + 2, e + 4, 2)         # FSW
        memcpy(b + 4, e + 8, 2)         # FTW
        memcpy(b + 6, e + 12, 2)        # FIP[15:0]
        memcpy(b + 8, e + 16, 2)        # FCS
        memcpy(b + 10, e + 20, 2)       # FDP[15:0]
        memcpy(b + 12, e + 24, 2)       # FDS
        n = 14
    else:
        memcpy(b, e, 28)
        n = 28
    if save:
        for i in range(8):
            memcpy(b + n + 10 * i, st_ptr(c, i), 10)
        n += 80
    if mem_write_bytes(c, a, b, n):
        return R_EXC
    if save:
        x87_init_state(c)
    else:
        c.fcw |= 0x3f
        c.fsw &= ~(<uint16_t>(FSW_ES | FSW_B))
    return R_NEXT

cdef int x87_ldenv(Cpu* c, const Uop* u, uint64_t a, int restore) noexcept nogil:
    """FLDENV m28/m14 (D9 /4) and FRSTOR m108/m94 (DD /4)."""
    cdef uint8_t b[108]
    cdef uint32_t n, i, v32 = 0
    cdef uint16_t cw, sw, tw, w
    if x87_check_nw(c):
        return R_EXC
    n = 14 if u.pfx66 else 28
    if mem_read_bytes(c, a, b, n + (80 if restore else 0)):
        return R_EXC
    if u.pfx66:
        memcpy(&cw, b, 2)
        memcpy(&sw, b + 2, 2)
        memcpy(&tw, b + 4, 2)
        memcpy(&w, b + 6, 2)
        c.fip = w
        memcpy(&w, b + 10, 2)
        c.fdp = w
    else:
        memcpy(&cw, b, 2)
        memcpy(&sw, b + 4, 2)
        memcpy(&tw, b + 8, 2)
        memcpy(&v32, b + 12, 4)
        c.fip = v32
        memcpy(&w, b + 18, 2)
        c.fop = w & 0x7ff
        memcpy(&v32, b + 20, 4)
        c.fdp = v32
    c.fcw = <uint16_t>((cw & 0x1F3F) | 0x40)
    c.ftop = (sw >> 11) & 7
    c.fsw = sw & 0xC7FF
    if restore:
        for i in range(8):
            memcpy(st_ptr(c, i), b + n + 10 * i, 10)
    c.ftw = 0
    for i in range(8):
        if ((tw >> (2 * i)) & 3) == 3:
            c.ftw |= <uint16_t>(3 << (2 * i))
        else:
            c.ftw |= <uint16_t>(x87_tag_of(&c.fpr[i][0]) << (2 * i))
    if c.fsw & 0x3f & ~c.fcw:
        c.fsw |= FSW_ES | FSW_B
    else:
        c.fsw &= ~(<uint16_t>(FSW_ES | FSW_B))
    return R_NEXT

# register forms (ModRM C0-FF) of D8-DF that exist (SDM Vol. 2, A.4.2),
# bit k = ModRM 0xC0 + k; the rest are #UD
cdef uint64_t X87_REG_VALID[8]
X87_REG_VALID[0] = 0xffffffffffffffffULL                        # D8
X87_REG_VALID[1] = 0xffff7f33ff01ffffULL                        # D9: D1-D7 E2 E3 E6 E7 EF reserved
X87_REG_VALID[2] = 0x00000200ffffffffULL                        # DA: C0-DF, E9
X87_REG_VALID[3] = 0x00ffff1fffffffffULL                        # DB: C0-DF, E0-E4, E8-F7
X87_REG_VALID[4] = 0xffffffffffffffffULL                        # DC
X87_REG_VALID[5] = 0x0000ffffffffffffULL                        # DD: C0-EF
X87_REG_VALID[6] = 0xffffffff02ffffffULL                        # DE: C0-D7, D9, E0-FF
X87_REG_VALID[7] = 0x00ffff01ffffffffULL                        # DF: C0-DF, E0, E8-F7

cdef int x87_fix(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """Reserved x87 encodings: register forms outside the A.4.2 tables and
    the unused memory forms D9 /1, DB /4, DB /6, DD /5."""
    cdef uint32_t k = u.opc - 0xd8
    if d.mod == 3:
        if not ((X87_REG_VALID[k] >> (d.modrm - 0xc0)) & 1):
            return raise_ud(c)
    elif (k == 1 and d.regf == 1) or (k == 3 and (d.regf == 4 or d.regf == 6)) or (k == 5 and d.regf == 5):
        return raise_ud(c)
    return 0

cdef int op_fwait(Cpu* c, const Uop* u) noexcept nogil:
    """9B: WAIT/FWAIT: a pending unmasked x87 exception is #MF."""
    if (c.cr0 & (SSE_CR0_MP | SSE_CR0_TS)) == (SSE_CR0_MP | SSE_CR0_TS):
        return raise_exc(c, EXC_NM, 0, 0)
    if c.fsw & FSW_ES:
        return raise_exc(c, EXC_MF, 0, 0)
    return R_NEXT

cdef void init_x87():
    cdef int k
    op(0, 0xd8, op_x87_d8, D_MODRM)
    op(0, 0xdc, op_x87_d8, D_MODRM)
    op(0, 0xde, op_x87_d8, D_MODRM)
    op(0, 0xda, op_x87_mem_misc, D_MODRM)
    op(0, 0xd9, op_x87_d9, D_MODRM)
    op(0, 0xdb, op_x87_mem_misc, D_MODRM)
    op(0, 0xdd, op_x87_mem_misc, D_MODRM)
    op(0, 0xdf, op_x87_mem_misc, D_MODRM)
    op(0, 0x9b, op_fwait, 0)
    for k in range(0xd8, 0xe0):
        opfix(0, k, x87_fix)
