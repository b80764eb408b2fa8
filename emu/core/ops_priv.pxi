# Privileged and system instructions (SDM Vol. 2 and Vol. 3A chapters 2, 4, 5):
# MOV to/from CR0/CR2/CR3/CR4/CR8, CLTS, the 0F 01 group (SGDT, SIDT, LGDT,
# LIDT, SMSW, LMSW, INVLPG, SWAPGS, RDTSCP, XGETBV, XSETBV, CLAC, STAC),
# WBINVD/INVD, RDMSR/WRMSR, CLI/STI, IN/OUT and INT n / INT1.
#
# Privilege checks come first (#UD, then #GP(0) at CPL > 0), then the trap
# policy (c.trap_mask: the instruction exits to the VMM instead of acting; the
# exit is taken after the instruction, like a trapped CPUID: the VMM emulates
# it from c.priv_* and resumes), then the instruction's own checks.

# c.priv_op: which trapped instruction (Exit.op)
cdef enum:
    PRIV_NONE = 0
    PRIV_MOV_TO_CR = 1
    PRIV_MOV_FROM_CR = 2
    PRIV_CLTS = 3
    PRIV_LMSW = 4
    PRIV_INVLPG = 5
    PRIV_LGDT = 6
    PRIV_LIDT = 7
    PRIV_SGDT = 8
    PRIV_SIDT = 9
    PRIV_XSETBV = 10
    PRIV_RDMSR = 11
    PRIV_WRMSR = 12

PRIV_NAMES = ("none", "mov_to_cr", "mov_from_cr", "clts", "lmsw", "invlpg", "lgdt", "lidt",
              "sgdt", "sidt", "xsetbv", "rdmsr", "wrmsr", "rdtsc", "rdtscp",   # 13, 14: ops_system.pxi
              "hlt", "int", "rdpmc", "syscall", "lldt", "ltr")                  # 15-20: trap_before

# c.msr_pol[].action: the hypervisor's declarative MSR policy, applied before
# the trap check so a table entry costs no VMM exit
cdef enum:
    MSRP_DENY_R = 1       # RDMSR raises #GP(0)
    MSRP_DENY_W = 2       # WRMSR raises #GP(0)
    MSRP_FIXED_R = 4      # RDMSR reads msr_pol[].value
    MSRP_IGNORE_W = 8     # WRMSR is dropped

cdef enum:
    CR0_MP = 0x2
    CR0_TS = 0x8
    CR4_TSD = 0x4
    CR4_UMIP = 0x800
    CR4_OSXSAVE = 0x40000
    F_IOPL_SHIFT = 12
    XCR0_SUPPORTED = 7    # x87 | SSE | AVX: the components the core implements

cdef extern from *:
    """
    #define CR0_NW 0x20000000ULL
    #define CR0_CD 0x40000000ULL
    /* PE MP EM TS ET NE WP AM NW CD PG */
    #define CR0_DEFINED 0xE005003FULL
    /* TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT UMIP OSXSAVE SMEP SMAP: what the core implements */
    #define CR4_SUPPORTED 0x340FFCULL
    /* bits 63..MAXPHYADDR (48, CPUID 80000008H) of CR3 */
    #define CR3_RESERVED 0xFFFF000000000000ULL
    #define MSR_TSC 0x10u
    #define MSR_PAT 0x277u
    #define MSR_EFER 0xC0000080u
    #define MSR_STAR 0xC0000081u
    #define MSR_LSTAR 0xC0000082u
    #define MSR_CSTAR 0xC0000083u
    #define MSR_SFMASK 0xC0000084u
    #define MSR_FS_BASE 0xC0000100u
    #define MSR_GS_BASE 0xC0000101u
    #define MSR_KERNEL_GS_BASE 0xC0000102u
    #define MSR_TSC_AUX 0xC0000103u
    #define MSR_XSS 0xDA0u
    #define PAT_RESET 0x0007040600070406ULL
    """
    const uint64_t CR0_NW
    const uint64_t CR0_CD
    const uint64_t CR0_DEFINED
    const uint64_t CR4_SUPPORTED
    const uint64_t CR3_RESERVED
    const uint32_t MSR_TSC, MSR_PAT, MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SFMASK
    const uint32_t MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_TSC_AUX, MSR_XSS
    const uint64_t PAT_RESET


cdef inline int priv_exit(Cpu* c, const Uop* u, uint32_t reason, uint32_t pop, uint32_t cr,
                          uint32_t gpr, uint64_t value) noexcept nogil:
    c.priv_op = pop
    c.priv_cr = cr
    c.priv_gpr = gpr
    c.priv_value = value
    c.priv_before = 0
    return exit_after(c, u, reason)

cdef inline int translation_changed(Cpu* c, const Uop* u) noexcept nogil:
    """The instruction changed how addresses translate: retire it and fetch
    the next instruction afresh (the rest of this block was decoded before)."""
    c.rip = u.rip_next
    return R_BRANCH

# ---- control registers ----

cdef int write_cr0(Cpu* c, uint64_t v) noexcept nogil:
    """MOV to CR0 checks (SDM MOV-Move to/from Control Registers). 0 or -1 (#GP)."""
    cdef uint64_t old = c.cr0
    if v >> 32:
        return -1
    if v & CR0_PG and not (v & CR0_PE):
        return -1
    if v & CR0_NW and not (v & CR0_CD):
        return -1
    if c.efer & EFER_LMA and not (v & CR0_PG):
        return -1                    # clearing CR0.PG in 64-bit mode
    if v & CR0_PG and not (old & CR0_PG) and c.efer & EFER_LME:
        if not (c.cr4 & CR4_PAE):
            return -1
        c.efer |= EFER_LMA           # IA-32e mode activates
    c.cr0 = v & CR0_DEFINED
    if (old ^ c.cr0) & (CR0_PG | CR0_WP | CR0_PE):
        tlb_flush(c)
    return 0

cdef int write_cr3(Cpu* c, uint64_t v) noexcept nogil:
    """Loads the PML4 address. Without CR4.PCIDE the TLB keeps only global
    translations (CR4.PGE, SDM 4.10.4.1). With it, bits 11:0 are the PCID
    made current, and bit 63 (not stored) asks to keep that PCID's cached
    translations; other PCIDs' translations are kept either way (mmu.pxi)."""
    cdef uint64_t keep = 0
    if c.cr4 & CR4_PCIDE:
        keep = v >> 63
        v &= ~(<uint64_t>1 << 63)
    if v & CR3_RESERVED:
        return -1
    c.cr3 = v
    if c.cr4 & CR4_PCIDE:
        pcid_load(c, <uint32_t>(v & 0xfff), <int>keep)
    else:
        tlb_flush_nonglobal(c)
    return 0

cdef int write_cr4(Cpu* c, uint64_t v) noexcept nogil:
    cdef uint64_t old = c.cr4
    # FSGSBASE exists when the CPU model has the instructions
    if v & ~(CR4_SUPPORTED | (<uint64_t>CR4_FSGSBASE_BIT if c.feat & FEAT_FSGSBASE else 0)
             | (<uint64_t>CR4_PCIDE if c.feat & FEAT_PCID else 0)):
        return -1
    if c.efer & EFER_LMA and not (v & CR4_PAE):
        return -1                    # leaving IA-32e mode by clearing PAE
    if v & ~old & CR4_PCIDE and (not (c.efer & EFER_LMA) or c.cr3 & 0xfff):
        return -1                    # PCIDE only in IA-32e mode, and set only with PCID 000H (MOV CR, #GP)
    c.cr4 = v
    if (old ^ v) & CR4_PCIDE:
        tlb_flush(c)                 # (clearing it invalidates all TLB entries; setting it need not: allowed)
        pcid_reset(c)                # the mode's MODE_PCID bit, slot 0 current
    elif (old ^ v) & (0x10 | CR4_PAE | CR4_PGE | CR4_SMEP | CR4_SMAP):
        tlb_flush(c)                 # SDM 4.10.4.1: these changes invalidate the TLBs
    return 0

cdef int fix_mov_cr(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """0F 20 / 0F 22: the ModRM byte was fetched as imm8 because its mod field
    is ignored (always a register operand, no SIB or displacement). CR1, CR5-7
    and CR9-15 are #UD."""
    cdef uint32_t m = <uint32_t>u.imm & 0xff
    cdef uint32_t cr = ((m >> 3) & 7) | ((d.rex & 4) << 1)
    if cr != 0 and cr != 2 and cr != 3 and cr != 4 and cr != 8:
        return raise_ud(c)
    u.reg = cr
    u.rm = (m & 7) | ((d.rex & 1) << 3)
    u.mem = 0
    u.osz = 8
    return 0

cdef int op_mov_from_cr(Cpu* c, const Uop* u) noexcept nogil:
    """0F 20: MOV r64, CRn."""
    cdef uint64_t v
    if c.cpl != 0:
        return raise_gp0(c)
    if c.trap_mask & TRAP_CR:
        return priv_exit(c, u, EXIT_PRIV, PRIV_MOV_FROM_CR, u.reg, u.rm, 0)
    if u.reg == 0:
        v = c.cr0
    elif u.reg == 2:
        v = c.cr2
    elif u.reg == 3:
        v = c.cr3
    elif u.reg == 4:
        v = c.cr4
    else:
        v = c.cr8
    c.r[u.rm] = v
    return R_NEXT

cdef int op_mov_to_cr(Cpu* c, const Uop* u) noexcept nogil:
    """0F 22: MOV CRn, r64."""
    cdef uint64_t v = c.r[u.rm]
    cdef int k = 0
    if c.cpl != 0:
        return raise_gp0(c)
    if c.trap_mask & TRAP_CR:
        return priv_exit(c, u, EXIT_PRIV, PRIV_MOV_TO_CR, u.reg, u.rm, v)
    if u.reg == 2:
        c.cr2 = v
        return R_NEXT
    if u.reg == 8:
        if v >> 4:
            return raise_gp0(c)
        c.cr8 = v
        return R_NEXT
    if u.reg == 0:
        k = write_cr0(c, v)
    elif u.reg == 3:
        k = write_cr3(c, v)
    else:
        k = write_cr4(c, v)
    if k < 0:
        return raise_gp0(c)
    return translation_changed(c, u)

cdef int op_clts(Cpu* c, const Uop* u) noexcept nogil:
    """0F 06: clear CR0.TS."""
    if c.cpl != 0:
        return raise_gp0(c)
    if c.trap_mask & TRAP_CR:
        return priv_exit(c, u, EXIT_PRIV, PRIV_CLTS, 0, NOREG, 0)
    c.cr0 &= ~(<uint64_t>CR0_TS)
    return R_NEXT

cdef int op_smsw(Cpu* c, const Uop* u) noexcept nogil:
    """0F 01 /4: CR0 to a register (operand size), or its low 16 bits to memory.
    #GP at CPL > 0 only with CR4.UMIP."""
    if c.cpl != 0 and c.cr4 & CR4_UMIP:
        return raise_gp0(c)
    if u.mem:
        if mem_write(c, ea_of(c, u), 2, c.cr0 & 0xffff):
            return R_EXC
    else:
        rset(c, u.rm, u.osz, c.cr0)
    return R_NEXT

cdef int op_lmsw(Cpu* c, const Uop* u) noexcept nogil:
    """0F 01 /6: load CR0 bits 3..0 (PE MP EM TS); PE can be set but not cleared."""
    cdef uint64_t v
    if c.cpl != 0:
        return raise_gp0(c)
    if u.mem:
        if mem_read(c, ea_of(c, u), 2, &v):
            return R_EXC
    else:
        v = c.r[u.rm] & 0xffff
    if c.trap_mask & TRAP_CR:
        return priv_exit(c, u, EXIT_PRIV, PRIV_LMSW, 0, u.rm if not u.mem else NOREG, v)
    c.cr0 = (c.cr0 & ~(<uint64_t>0xe)) | (v & 0xf)
    return R_NEXT

# ---- TLB ----

cdef void invlpg_va(Cpu* c, uint64_t va) noexcept nogil:
    """INVLPG. The TLB holds large pages as 4 KiB slices without their size,
    so once a large page has been walked (c.tlb_large, cleared by a full
    flush) every entry in va's 1 GiB region goes: that covers the slices of a
    2 MiB / 1 GiB page that held va, however the tables look now (unmapped,
    changed, split into 4 KiB pages). Dropping extra entries is always allowed."""
    cdef uint64_t region, mask = ~(<uint64_t>0x3fffffff)
    cdef int i
    cdef TlbEntry* e
    tlb_flush_page(c, va)
    if not c.tlb_large:
        return
    region = va & mask
    for i in range(TLB_SIZE):
        e = &c.tlb[i]
        if (e.tag_r & mask) == region or (e.tag_w & mask) == region or (e.tag_x & mask) == region:
            e.tag_r = TLB_INVALID
            e.tag_w = TLB_INVALID
            e.tag_x = TLB_INVALID

cdef int op_invlpg(Cpu* c, const Uop* u) noexcept nogil:
    """0F 01 /7 (memory form)."""
    cdef uint64_t va
    if c.cpl != 0:
        return raise_gp0(c)
    va = ea_of(c, u)
    if c.trap_mask & TRAP_INVLPG:
        return priv_exit(c, u, EXIT_PRIV, PRIV_INVLPG, 0, NOREG, va)
    invlpg_va(c, va)
    return translation_changed(c, u)

cdef void tlb_flush_va_slot(Cpu* c, uint64_t va, uint32_t slot) noexcept nogil:
    """Drop the translation of va for a PCID's slot: the entry va indexes
    (whatever its PCID: dropping more is allowed), and after a large page
    was walked every entry of va's 1 GiB region (as invlpg_va)."""
    cdef uint64_t region, mask = ~(<uint64_t>0x3fffffff)
    cdef int i
    cdef TlbEntry* e = &c.tlb[(va >> 12) & (TLB_SIZE - 1)]
    e.tag_r = TLB_INVALID
    e.tag_w = TLB_INVALID
    e.tag_x = TLB_INVALID
    if c.tlb_large:
        region = va & mask
        for i in range(TLB_SIZE):
            e = &c.tlb[i]
            if (e.tag_r & mask) == region or (e.tag_w & mask) == region or (e.tag_x & mask) == region:
                e.tag_r = TLB_INVALID
                e.tag_w = TLB_INVALID
                e.tag_x = TLB_INVALID
    c.slot_epoch[slot] = 0            # that PCID's block lookups are stale
    if slot == c.pcid_slot:
        epoch_bump(c)

cdef int op_invpcid(Cpu* c, const Uop* u) noexcept nogil:
    """66 0F 38 82 /r: INVPCID r64, m128 (SDM Vol. 2A INVPCID, Vol. 3A
    4.10.4.1). The register holds the type, the memory operand the
    descriptor: PCID in bits 11:0, bits 63:12 reserved, the linear address
    in bits 127:64.
      0 individual address: va's translations for PCID, except global ones
      1 single context: all of PCID's translations, except global ones
      2 all contexts, global translations included
      3 all contexts except global translations
    A PCID that has no slot has nothing cached."""
    cdef uint64_t typ, lo, va, ea
    cdef uint32_t pcid, s, i
    cdef TlbEntry* e
    if c.cpl != 0:
        return raise_gp0(c)
    typ = c.r[u.reg] if not c.cs32 else c.r[u.reg] & 0xffffffffULL
    ea = ea_of(c, u)
    if mem_read(c, ea, 8, &lo) or mem_read(c, ea + 8, 8, &va):
        return R_EXC
    if typ > 3 or lo >> 12:
        return raise_gp0(c)
    pcid = <uint32_t>lo
    if typ <= 1 and pcid and not (c.cr4 & CR4_PCIDE):
        return raise_gp0(c)
    if typ == 0:
        if not is_canonical(va):
            return raise_gp0(c)
        s = pcid_find(c, pcid)
        if s != PCID_SLOTS:
            tlb_flush_va_slot(c, va, s)
    elif typ == 1:
        s = pcid_find(c, pcid)
        if s != PCID_SLOTS:
            tlb_flush_slot(c, s)
    elif typ == 2:
        tlb_flush(c)
    else:
        for i in range(TLB_SIZE):     # every slot's non-global entries
            e = &c.tlb[i]
            if not (e.ppage & 1):
                e.tag_r = TLB_INVALID
                e.tag_w = TLB_INVALID
                e.tag_x = TLB_INVALID
        new_epoch(c)
        c.n_tlb_flushes += 1
    return translation_changed(c, u)

# ---- descriptor tables (64-bit mode: 2-byte limit, 8-byte base) ----

cdef int op_lgdt_lidt(Cpu* c, const Uop* u) noexcept nogil:
    """0F 01 /2 LGDT, /3 LIDT."""
    cdef uint64_t a, lim, base
    if c.cpl != 0:
        return raise_gp0(c)
    a = ea_of(c, u)
    if c.trap_mask & TRAP_DESC:
        return priv_exit(c, u, EXIT_PRIV, PRIV_LGDT if u.sub == 2 else PRIV_LIDT, 0, NOREG, a)
    # 64-bit mode: a 10-byte operand (8-byte base); 32-bit code: 6 bytes (a
    # 24-bit base with a 16-bit operand size)
    if mem_read(c, a, 2, &lim) or mem_read(c, a + 2, 4 if c.cs32 else 8, &base):
        return R_EXC
    if c.cs32 and u.osz == 2:
        base &= 0xffffff
    if u.sub == 2:
        c.gdtr_limit = <uint32_t>lim
        c.gdtr_base = base
    else:
        c.idtr_limit = <uint32_t>lim
        c.idtr_base = base
    return R_NEXT

cdef int op_sgdt_sidt(Cpu* c, const Uop* u) noexcept nogil:
    """0F 01 /0 SGDT, /1 SIDT: allowed at any CPL unless CR4.UMIP."""
    cdef uint64_t a, t
    if c.cpl != 0 and c.cr4 & CR4_UMIP:
        return raise_gp0(c)
    a = ea_of(c, u)
    if c.trap_mask & TRAP_DESC:
        return priv_exit(c, u, EXIT_PRIV, PRIV_SGDT if u.sub == 0 else PRIV_SIDT, 0, NOREG, a)
    # check both parts are writable before storing either
    if mem_read_rmw(c, a, 2, &t) or mem_read_rmw(c, a + 2, 8, &t):
        return R_EXC
    if c.cpl != 0 and linux_gdt(c):
        # a Linux process (no tables of the guest's own): the kernel's tables,
        # read-only in the CPU entry area of CPU 0 (a CPU without UMIP)
        if mem_write(c, a, 2, LINUX_GDT_LIMIT if u.sub == 0 else 0xfff) or \
                mem_write(c, a + 2, 8, LINUX_CEA_GDT if u.sub == 0 else LINUX_CEA_IDT):
            return R_EXC
    elif u.sub == 0:
        if mem_write(c, a, 2, c.gdtr_limit) or mem_write(c, a + 2, 8, c.gdtr_base):
            return R_EXC
    else:
        if mem_write(c, a, 2, c.idtr_limit) or mem_write(c, a + 2, 8, c.idtr_base):
            return R_EXC
    return R_NEXT

# ---- 0F 01 register forms ----

cdef int op_swapgs(Cpu* c, const Uop* u) noexcept nogil:
    """0F 01 F8: exchange GS.base with IA32_KERNEL_GS_BASE."""
    cdef uint64_t t
    if c.cpl != 0:
        return raise_gp0(c)
    t = c.seg_base[SEG_GS]
    c.seg_base[SEG_GS] = c.kernel_gs_base
    c.kernel_gs_base = t
    return R_NEXT

cdef uint64_t xcr0_supported(Cpu* c) noexcept nogil:
    """The XCR0 bits the CPU model supports (CPUID.(EAX=0DH,ECX=0):EAX), of
    the components the core has: x87, SSE, AVX."""
    cdef uint32_t out[4]
    cpuid_lookup(c, 0xD, 0, out)
    return out[0] & XCR0_SUPPORTED

cdef int xcr0_valid(Cpu* c, uint64_t v) noexcept nogil:
    """x87 always set, AVX only with SSE, nothing unsupported (SDM Vol. 1, 13.3)."""
    return (v & 1) and not (v & 4 and not (v & 2)) and not (v & ~xcr0_supported(c))

cdef int op_xgetbv(Cpu* c, const Uop* u) noexcept nogil:
    """0F 01 D0: EDX:EAX = XCR[ECX] (ECX 0: XCR0; 1: XINUSE & XCR0, with
    CPUID.(EAX=0DH,ECX=1):EAX[2]); any CPL; #UD without XSAVE or CR4.OSXSAVE."""
    cdef uint32_t out[4]
    cdef uint64_t v
    if not (c.cr4 & CR4_OSXSAVE) or not (c.feat & FEAT_XSAVE):
        return raise_ud(c)
    if <uint32_t>c.r[1] == 1:
        cpuid_lookup(c, 0xD, 1, out)
        if not (out[0] & 4):
            return raise_gp0(c)
        v = xstate_inuse(c) & c.xcr0
    elif <uint32_t>c.r[1] == 0:
        v = c.xcr0
    else:
        return raise_gp0(c)
    c.r[0] = v & 0xffffffffULL
    c.r[2] = v >> 32
    return R_NEXT

cdef int op_xsetbv(Cpu* c, const Uop* u) noexcept nogil:
    """0F 01 D1: XCR[ECX] = EDX:EAX."""
    cdef uint64_t v
    if not (c.cr4 & CR4_OSXSAVE) or not (c.feat & FEAT_XSAVE):
        return raise_ud(c)
    if c.cpl != 0:
        return raise_gp0(c)
    v = (c.r[2] << 32) | (c.r[0] & 0xffffffffULL)
    if c.trap_mask & TRAP_XSETBV:
        return priv_exit(c, u, EXIT_PRIV, PRIV_XSETBV, 0, NOREG, v)
    if <uint32_t>c.r[1] != 0 or not xcr0_valid(c, v):
        return raise_gp0(c)
    c.xcr0 = v
    return R_NEXT

cdef int smap_supported(Cpu* c) noexcept nogil:
    cdef uint32_t out[4]
    cpuid_lookup(c, 7, 0, out)
    return (out[1] >> 20) & 1

cdef int op_clac_stac(Cpu* c, const Uop* u) noexcept nogil:
    """0F 01 CA CLAC, CB STAC: #UD unless CPUID advertises SMAP, and at CPL > 0."""
    if c.cpl != 0 or not smap_supported(c):
        return raise_ud(c)
    if u.sub == 0xca:
        c.rflags &= ~(<uint64_t>F_AC)
        if c.cr4 & CR4_SMAP:
            # supervisor TLB entries for user pages filled while AC was set must go
            tlb_smap_ac_cleared(c)
    else:
        c.rflags |= F_AC
    return R_NEXT

cdef int fix_0f01(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """The register forms of the 0F 01 group are separate instructions named
    by the whole ModRM byte."""
    cdef uint32_t m = d.modrm
    if d.mod != 3:
        return 0
    if (m >> 3) & 7 == 4 or (m >> 3) & 7 == 6:
        return 0                     # SMSW r / LMSW r
    if d.pc >= 2:
        return raise_ud(c)           # F3/F2 select other instructions (CET, TDX...)
    if m == 0xf8:
        u.fn = op_swapgs
    elif m == 0xf9:
        u.fn = op_rdtscp
    elif m == 0xd0:
        u.fn = op_xgetbv
    elif m == 0xd1:
        u.fn = op_xsetbv
    elif m == 0xca or m == 0xcb:
        u.fn = op_clac_stac
        u.sub = m
    else:
        return raise_ud(c)
    return 0

cdef int op_wbinvd(Cpu* c, const Uop* u) noexcept nogil:
    """0F 08 INVD, 0F 09 WBINVD: no caches to write back."""
    if c.cpl != 0:
        return raise_gp0(c)
    return R_NEXT

# ---- MSRs ----

cdef int pat_valid(uint64_t v) noexcept nogil:
    cdef int i
    cdef uint64_t t
    for i in range(8):
        t = (v >> (8 * i)) & 0xff
        if t == 2 or t == 3 or t > 7:
            return 0
    return 1

cdef inline uint64_t tsc_at(Cpu* c, uint64_t retired) noexcept nogil:
    return tsc_at_count(c, retired)

cdef int msr_read(Cpu* c, uint32_t idx, uint64_t* out, uint64_t retired) noexcept nogil:
    """The MSRs the core implements. 0, or -1 for an unknown MSR (#GP).
    retired: instructions retired before this one (c.icount lags inside a block)."""
    if idx == MSR_EFER:
        out[0] = c.efer
    elif idx == MSR_STAR:
        out[0] = c.msr_star
    elif idx == MSR_LSTAR:
        out[0] = c.msr_lstar
    elif idx == MSR_CSTAR:
        out[0] = c.msr_cstar
    elif idx == MSR_SFMASK:
        out[0] = c.msr_sfmask
    elif idx == MSR_FS_BASE:
        out[0] = c.seg_base[SEG_FS]
    elif idx == MSR_GS_BASE:
        out[0] = c.seg_base[SEG_GS]
    elif idx == MSR_KERNEL_GS_BASE:
        out[0] = c.kernel_gs_base
    elif idx == MSR_TSC:
        out[0] = tsc_at(c, retired)
    elif idx == MSR_TSC_AUX:
        out[0] = c.tsc_aux
    elif idx == MSR_PAT:
        out[0] = c.msr_pat
    elif idx == MSR_XSS and c.feat & FEAT_XSAVES:
        out[0] = c.xss
    else:
        return -1
    return 0

cdef int msr_write(Cpu* c, uint32_t idx, uint64_t v, uint64_t retired) noexcept nogil:
    """0, 1 when address translation changed (TLB flushed), -1 for #GP
    (unknown MSR, reserved bits, non-canonical address)."""
    cdef uint64_t n
    if idx == MSR_EFER:
        if v & ~(<uint64_t>(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE)):
            return -1
        n = (v & (EFER_SCE | EFER_LME | EFER_NXE)) | (c.efer & EFER_LMA)   # LMA is read-only
        if (n ^ c.efer) & EFER_LME and c.cr0 & CR0_PG:
            return -1
        if (n ^ c.efer) & EFER_NXE:
            c.efer = n
            tlb_flush(c)
            return 1
        c.efer = n
    elif idx == MSR_STAR:
        c.msr_star = v
    elif idx == MSR_SFMASK:
        if v >> 32:
            return -1
        c.msr_sfmask = v
    elif idx == MSR_TSC:
        c.tsc_offset = v - (tsc_at_count(c, retired) - c.tsc_offset)
    elif idx == MSR_TSC_AUX:
        if v >> 32:
            return -1
        c.tsc_aux = v
    elif idx == MSR_PAT:
        if not pat_valid(v):
            return -1
        c.msr_pat = v
    elif idx == MSR_XSS and c.feat & FEAT_XSAVES:
        # IA32_XSS: no supervisor state component is modelled, so every set
        # bit is unsupported and #GPs (SDM Vol. 3A, 2.2.2.1 / Vol. 4, MSR 0DA0H)
        if v:
            return -1
        c.xss = 0
    elif (idx == MSR_LSTAR or idx == MSR_CSTAR or idx == MSR_FS_BASE or idx == MSR_GS_BASE
            or idx == MSR_KERNEL_GS_BASE):
        if not is_canonical(v):
            return -1
        if idx == MSR_LSTAR:
            c.msr_lstar = v
        elif idx == MSR_CSTAR:
            c.msr_cstar = v
        elif idx == MSR_FS_BASE:
            c.seg_base[SEG_FS] = v
        elif idx == MSR_GS_BASE:
            c.seg_base[SEG_GS] = v
        else:
            c.kernel_gs_base = v
    else:
        return -1
    return 0

cdef int msr_policy(Cpu* c, uint32_t idx, int write, uint64_t* v) noexcept nogil:
    """The hypervisor's MSR table: -1 #GP, 1 handled (value in v for a read,
    write dropped), 0 not in the table (or no action for this direction)."""
    cdef uint32_t i, a
    for i in range(c.n_msr_pol):
        if c.msr_pol[i].index == idx:
            a = c.msr_pol[i].action
            if write:
                if a & MSRP_DENY_W:
                    return -1
                return 1 if a & MSRP_IGNORE_W else 0
            if a & MSRP_DENY_R:
                return -1
            if a & MSRP_FIXED_R:
                v[0] = c.msr_pol[i].value
                return 1
            return 0
    return 0

cdef int op_rdmsr(Cpu* c, const Uop* u) noexcept nogil:
    """0F 32: EDX:EAX = MSR[ECX]."""
    cdef uint64_t v
    cdef uint32_t idx = <uint32_t>c.r[1]
    cdef int k
    if c.cpl != 0:
        return raise_gp0(c)
    if c.n_msr_pol:
        k = msr_policy(c, idx, 0, &v)
        if k < 0:
            return raise_gp0(c)
        if k > 0:
            c.r[0] = v & 0xffffffffULL
            c.r[2] = v >> 32
            return R_NEXT
    if c.trap_mask & TRAP_MSR:
        c.msr_index = idx
        return priv_exit(c, u, EXIT_MSR, PRIV_RDMSR, 0, NOREG, 0)
    if msr_read(c, idx, &v, c.icount + u.ninsn - 1) < 0:
        return raise_gp0(c)
    c.r[0] = v & 0xffffffffULL
    c.r[2] = v >> 32
    return R_NEXT

cdef int op_wrmsr(Cpu* c, const Uop* u) noexcept nogil:
    """0F 30: MSR[ECX] = EDX:EAX."""
    cdef uint32_t idx = <uint32_t>c.r[1]
    cdef uint64_t v = (c.r[2] << 32) | (c.r[0] & 0xffffffffULL)
    cdef int k
    cdef uint64_t t
    if c.cpl != 0:
        return raise_gp0(c)
    if c.n_msr_pol:
        k = msr_policy(c, idx, 1, &t)
        if k < 0:
            return raise_gp0(c)
        if k > 0:
            return R_NEXT
    if c.trap_mask & TRAP_MSR:
        c.msr_index = idx
        return priv_exit(c, u, EXIT_MSR, PRIV_WRMSR, 0, NOREG, v)
    k = msr_write(c, idx, v, c.icount + u.ninsn - 1)
    if k < 0:
        return raise_gp0(c)
    if k > 0:
        return translation_changed(c, u)
    return R_NEXT

# ---- interrupt flag, I/O, software interrupts ----

cdef inline uint32_t iopl(Cpu* c) noexcept nogil:
    return <uint32_t>(c.rflags >> F_IOPL_SHIFT) & 3

cdef int op_cli_sti(Cpu* c, const Uop* u) noexcept nogil:
    """FA CLI, FB STI: CPL <= IOPL, else #GP(0) (no VME/PVI)."""
    if c.cpl > iopl(c):
        return raise_gp0(c)
    if u.sub:
        if not (c.rflags & F_IF):
            # STI shadow: interrupts wait until the next instruction completes
            c.shadow_end = c.icount + u.ninsn + 1
        c.rflags |= F_IF
    else:
        c.rflags &= ~(<uint64_t>F_IF)
    return R_NEXT

cdef int op_io(Cpu* c, const Uop* u) noexcept nogil:
    """E4-E7, EC-EF: IN/OUT exit to the VMM. u.sub bit 0: OUT; bit 1: port in DX.
    At CPL > IOPL the TSS I/O permission bitmap decides (#GP(0) when a bit is
    set or TR holds no TSS). For IN the VMM answers with complete_io_in()
    before resuming."""
    cdef uint32_t sz = u.osz
    cdef uint32_t port = <uint32_t>((c.r[2] & 0xffff) if u.sub & 2 else (u.imm & 0xff))
    if sz == 8:
        sz = 4                       # REX.W does not widen IN/OUT
    if c.cpl > iopl(c) and not io_allowed(c, port, sz):
        return raise_gp0(c)
    c.io_port = port
    c.io_size = sz
    c.io_dir = u.sub & 1
    c.io_value = rget(c, 0, sz) if u.sub & 1 else 0
    c.io_string = 0
    return exit_after(c, u, EXIT_IO)

# c.io_string: an INS/OUTS element exited and is committed on resume
cdef enum:
    IOS_PENDING = 1
    IOS_OUT = 2
    IOS_REP = 4
    IOS_ASZ32 = 8

cdef int op_string_io(Cpu* c, const Uop* u) noexcept nogil:
    """6C-6F INS/OUTS (SDM INS/INSB/INSW/INSD, OUTS/OUTSB/OUTSW/OUTSD), with
    REP: one exit per element, taken before the element is done (RIP at the
    instruction, nothing retired). OUTS reads DS:rSI (segment override
    honoured) and hands the value over; INS checks that ES:rDI is writable
    and the VMM answers with complete_io_in(). The element is committed when
    the vCPU resumes (io_string_commit: the store, rSI/rDI, rCX), so an
    interrupt between elements, or a fault the VMM injects instead, sees the
    registers of the elements completed. u.sub bit 0: OUTS; bit 1: REP."""
    cdef uint64_t am = str_am(u), v
    cdef uint32_t sz = u.osz
    cdef uint32_t port = <uint32_t>(c.r[2] & 0xffff)
    if sz == 8:
        sz = 4                       # REX.W does not widen INS/OUTS
    if u.sub & 2 and (c.r[1] & am) == 0:
        c.rip = u.rip_next           # REP with rCX = 0: nothing
        return R_BRANCH
    if c.cpl > iopl(c) and not io_allowed(c, port, sz):
        return raise_gp0(c)
    if u.sub & 1:
        if mem_read(c, (c.r[6] & am) + c.seg_base[u.seg], sz, &v):
            return R_EXC
    else:
        if mem_read_rmw(c, c.r[7] & am, sz, &v):   # #PF/#GP now, not after the device read
            return R_EXC
        v = SZ_MASK[sz]              # what an IN from nothing reads, until the VMM answers
    c.io_port = port
    c.io_size = sz
    c.io_dir = u.sub & 1
    c.io_value = v
    c.io_string = IOS_PENDING | (IOS_OUT if u.sub & 1 else 0) | (IOS_REP if u.sub & 2 else 0) | \
        (IOS_ASZ32 if u.asz32 else 0)
    c.io_next = u.rip_next
    c.exit_reason = EXIT_IO
    return R_EXIT_BEFORE

cdef int io_string_commit(Cpu* c) noexcept nogil:
    """Resume after an INS/OUTS element exit (c.rip at the instruction):
    store what INS read, step rSI or rDI, count rCX down under REP and
    retire the instruction when it is done. 0, or R_EXC when the INS store
    faults (nothing changed; the element is done again after the fault)."""
    cdef uint32_t f = c.io_string
    cdef uint32_t sz = <uint32_t>c.io_size
    cdef uint64_t am = 0xffffffffULL if f & IOS_ASZ32 else 0xffffffffffffffffULL
    cdef uint64_t step = str_step(c, sz)
    c.io_string = 0
    if f & IOS_OUT:
        c.r[6] = (c.r[6] + step) & am
    else:
        if mem_write(c, c.r[7] & am, sz, c.io_value):
            return R_EXC
        c.r[7] = (c.r[7] + step) & am
    if f & IOS_REP:
        c.r[1] = (c.r[1] - 1) & am
        if c.r[1] != 0:
            return 0                 # the next element: the instruction runs again
    c.rip = c.io_next
    c.icount += 1
    return 0

cdef int op_int_n(Cpu* c, const Uop* u) noexcept nogil:
    """CD ib: a software interrupt, handed to the VMM as an EXCEPTION exit with
    vector n (RIP after the instruction; Exit.software is set). In system
    mode it goes through the IDT (gate DPL checked: #GP(n*8+2)). A trap
    policy on INT n sees it first."""
    if c.trap_mask & TRAP_INT and trap_before(c, u, PRIV_INT, u.imm & 0xff):
        return R_EXIT_BEFORE
    if c.deliver_via_idt:
        return soft_interrupt(c, u, <uint32_t>(u.imm & 0xff), EVK_SOFT)
    c.exc_vector = <uint32_t>(u.imm & 0xff)
    c.exc_error = 0
    c.exc_has_error = 0
    c.exc_soft = 1
    return exit_after(c, u, EXIT_EXCEPTION)

cdef int op_int1(Cpu* c, const Uop* u) noexcept nogil:
    """F1 INT1 (ICEBP): a #DB trap, RIP after the instruction (through the
    IDT in system mode, without the gate DPL check)."""
    if c.deliver_via_idt:
        return soft_interrupt(c, u, EXC_DB, EVK_ICEBP)
    c.exc_vector = EXC_DB
    c.exc_error = 0
    c.exc_has_error = 0
    return exit_after(c, u, EXIT_EXCEPTION)

# ---- two small base instructions no family had taken (found by
# tests/test_decoder_reference.py); they can move to ops_x87 / ops_mov ----

cdef int op_wait(Cpu* c, const Uop* u) noexcept nogil:
    """9B WAIT/FWAIT: #NM when CR0.MP and CR0.TS are both set, #MF when an
    unmasked x87 exception is pending (FSW.ES), else nothing."""
    if (c.cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS):
        return raise_exc(c, EXC_NM, 0, 0)
    if c.fsw & 0x80:
        return raise_exc(c, EXC_MF, 0, 0)
    return R_NEXT

cdef int fix_xlat_seg(Cpu* c, Dec* d, Uop* u) noexcept nogil:
    """XLAT has no ModRM: take the segment override (FS/GS) here."""
    u.seg = d.seg
    return 0

cdef int op_xlat(Cpu* c, const Uop* u) noexcept nogil:
    """D7 XLAT: AL = [rBX + zero-extended AL] (EBX with 67)."""
    cdef uint64_t v, a = c.r[3] + (c.r[0] & 0xff)
    if u.asz32:
        a &= 0xffffffffULL
    if mem_read(c, a + c.seg_base[u.seg], 1, &v):
        return R_EXC
    set8(c, 0, v)
    return R_NEXT

cdef void init_priv():
    cdef int k
    # MOV from/to CRn: the ModRM byte is read as imm8 (mod is ignored)
    op(1, 0x20, op_mov_from_cr, D_F64, I_8)
    op(1, 0x22, op_mov_to_cr, D_F64, I_8)
    opfix(1, 0x20, fix_mov_cr)
    opfix(1, 0x22, fix_mov_cr)
    op(1, 0x06, op_clts, 0)
    op(1, 0x08, op_wbinvd, 0)
    op(1, 0x09, op_wbinvd, 0)
    # the 0F 01 group
    grp(1, 0x01, 0, op_sgdt_sidt, 0)
    grp(1, 0x01, 1, op_sgdt_sidt, 0)
    grp(1, 0x01, 2, op_lgdt_lidt, 0)
    grp(1, 0x01, 3, op_lgdt_lidt, 0)
    grp(1, 0x01, 4, op_smsw, 0)
    grp(1, 0x01, 6, op_lmsw, 0)
    grp(1, 0x01, 7, op_invlpg, 0)
    op(2, 0x82, op_invpcid, D_MODRM | D_MEMONLY, I_NONE, 0, 0x2)
    gate(2, 0x2, 0x82, FEAT_INVPCID, NULL)           # #UD without CPUID.07H:EBX.INVPCID
    opfix(1, 0x01, fix_0f01)
    op(1, 0x32, op_rdmsr, 0)
    op(1, 0x30, op_wrmsr, 0)
    op(0, 0xfa, op_cli_sti, 0, I_NONE, 0)
    op(0, 0xfb, op_cli_sti, 0, I_NONE, 1)
    for k in range(2):
        op(0, 0xe4 + 2 * k, op_io, D_BYTE, I_8, k)        # IN AL, imm8 / OUT imm8, AL
        op(0, 0xe5 + 2 * k, op_io, 0, I_8, k)             # IN eAX, imm8 / OUT imm8, eAX
        op(0, 0xec + 2 * k, op_io, D_BYTE, I_NONE, 2 + k) # IN AL, DX / OUT DX, AL
        op(0, 0xed + 2 * k, op_io, 0, I_NONE, 2 + k)      # IN eAX, DX / OUT DX, eAX
    for k in range(2):
        # INS (sub 0) / OUTS (sub 1), then their REP forms (F3 or F2)
        op(0, 0x6c + 2 * k, op_string_io, D_BYTE | D_END, I_NONE, k, 0x3)
        op(0, 0x6d + 2 * k, op_string_io, D_END, I_NONE, k, 0x3)
        op(0, 0x6c + 2 * k, op_string_io, D_BYTE | D_END, I_NONE, 2 + k, 0xc)
        op(0, 0x6d + 2 * k, op_string_io, D_END, I_NONE, 2 + k, 0xc)
        opfix(0, 0x6c + 2 * k, fix_str_seg)
        opfix(0, 0x6d + 2 * k, fix_str_seg)
    op(0, 0xcd, op_int_n, D_END, I_8)
    op(0, 0xf1, op_int1, D_END)
    op(0, 0x9b, op_wait, 0)
    op(0, 0xd7, op_xlat, 0)
    opfix(0, 0xd7, fix_xlat_seg)
