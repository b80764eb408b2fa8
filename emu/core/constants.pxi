# Architectural constants and the core's own enumerations.

cdef enum:
    NOREG = 16            # register slot that always reads zero
    SEG_ES = 0
    SEG_CS = 1
    SEG_SS = 2
    SEG_DS = 3
    SEG_FS = 4
    SEG_GS = 5
    SEG_NONE = 6          # flat: base 0

cdef enum:
    REP_F3 = 1
    REP_F2 = 2

# handler results
cdef enum:
    R_NEXT = 0            # continue with the next uop; RIP not written
    R_BRANCH = 1          # instruction retired, c.rip holds the next RIP
    R_EXC = 2             # instruction faulted (c.exc_*), nothing retired
    R_EXIT = 3            # instruction retired, c.rip set, exit to the VMM
    R_EXIT_BEFORE = 4     # exit to the VMM before the instruction (not retired)
    R_RESTART = 5         # not retired; resume at this instruction (code was modified)
    JIT_BAIL = 6          # compiled code stopped before this instruction: run it in the interpreter
    JIT_BAIL_ENTRY = 7    # compiled code stopped before entering this block (budget, events)

# exceptions (Intel SDM Vol. 3A, 6.3.1)
cdef enum:
    EXC_DE = 0
    EXC_DB = 1
    EXC_BP = 3
    EXC_OF = 4
    EXC_BR = 5
    EXC_UD = 6
    EXC_NM = 7
    EXC_DF = 8
    EXC_TS = 10
    EXC_NP = 11
    EXC_SS = 12
    EXC_GP = 13
    EXC_PF = 14
    EXC_MF = 16
    EXC_AC = 17
    EXC_XM = 19

# exit reasons (mirrored in emu/exits.py)
cdef enum:
    EXIT_NONE = 0
    EXIT_HLT = 1
    EXIT_IO = 2
    EXIT_MMIO = 3
    EXIT_CPUID = 4
    EXIT_RDTSC = 5
    EXIT_MSR = 6
    EXIT_SYSCALL = 7
    EXIT_EXCEPTION = 8
    EXIT_HOOK = 9
    EXIT_BUDGET = 10
    EXIT_SHUTDOWN = 11
    EXIT_STOPPED = 12
    EXIT_PRIV = 13        # trapped sensitive instruction (CR, INVLPG, descriptor tables...)
    EXIT_STORM = 14       # STORM_LIMIT exceptions delivered with no instruction retired
    N_EXIT_REASONS = 15

# hardening limits (core/run.pxi, core/mmu.pxi)
cdef enum:
    MMIO_LOG = 192        # MMIO accesses one instruction may make (Cpu.mmio_log)
    STORM_LIMIT = 65536   # IDT deliveries without a retired instruction before EXIT_STORM

# trap_mask bits: which sensitive instructions exit to the VMM
cdef enum:
    TRAP_CPUID = 1
    TRAP_RDTSC = 2
    TRAP_MSR = 4
    TRAP_HLT = 8
    TRAP_CR = 16
    TRAP_INVLPG = 32
    TRAP_DESC = 64
    TRAP_INT = 128
    TRAP_RDPMC = 256
    TRAP_XSETBV = 512
    TRAP_SYSCALL = 1024   # SYSCALL exits to the VMM (user-mode personality)
    TRAP_SYSCALL_INSN = 2048   # SYSCALL exits to a trap policy before acting (any mode)

# instrumentation (core/hooks.pxi): hook kinds, and c.hook_flags bits
cdef enum:
    HK_CODE = 1
    HK_READ = 2
    HK_WRITE = 4
    HK_FETCH = 8
    HK_BLOCK = 16         # only as the kind of a block-hook exit
    HF_BLOCK = 1
    HF_COV = 2
    HF_BCOV = 4        # block coverage (the set of blocks executed, for drcov)

# RFLAGS bits
cdef enum:
    F_CF = 0x1
    F_PF = 0x4
    F_AF = 0x10
    F_ZF = 0x40
    F_SF = 0x80
    F_TF = 0x100
    F_IF = 0x200
    F_DF = 0x400
    F_OF = 0x800
    F_ARITH = 0x8d5
    F_AC = 0x40000
    F_ID = 0x200000

# lazy flag operations
cdef enum:
    LF_NONE = 0
    LF_ADD = 1
    LF_ADC = 2
    LF_SUB = 3
    LF_SBB = 4
    LF_LOGIC = 5
    LF_INC = 6
    LF_DEC = 7
    LF_SHL = 8
    LF_SHR = 9
    LF_SAR = 10
    LF_JIT = 11           # compiled code left the status flags in Cpu.jit_fsave (core/jit_runtime.pxi)

# control registers and EFER
cdef enum:
    CR0_PE = 0x1
    CR0_WP = 0x10000
    CR4_PAE = 0x20
    CR4_PGE = 0x80
    CR4_OSFXSR = 0x200
    CR4_SMEP = 0x100000
    CR4_SMAP = 0x200000
    CR4_PCIDE = 0x20000   # process-context identifiers (SDM 4.10.1)
    MODE_PCID = 8         # Cpu.mode bit: CR4.PCIDE, so TLB tags carry a PCID slot (core/mmu.pxi)
    PCID_NONE = 0xffffffff
    EFER_SCE = 0x1
    EFER_LME = 0x100
    EFER_LMA = 0x400
    EFER_NXE = 0x800

# page table entry bits
cdef enum:
    PTE_P = 0x1
    PTE_RW = 0x2
    PTE_US = 0x4
    PTE_A = 0x20
    PTE_D = 0x40
    PTE_PS = 0x80
    PTE_G = 0x100
    PFE_P = 1
    PFE_W = 2
    PFE_U = 4
    PFE_RSVD = 8
    PFE_I = 16

# memory access kinds
cdef enum:
    ACC_R = 0
    ACC_W = 1
    ACC_X = 2

cdef enum:
    JC_SIZE = 4096
    MAX_BLOCK_INSNS = 64
    MAX_SIDE_EXITS = 3     # conditional branches a block runs on past (core/blocks.pxi)
    TSC_VIRTUAL = 0
    TSC_HOST = 1

# a Cpu that is never run: the layout of the struct (field offsets for
# compiled code, core/jit_emit.pxi; the state size, core/api_state.pxi)
cdef Cpu layout_cpu

# 64-bit constants (a C enum holds int-sized values only)
cdef extern from *:
    """
    #define CR0_PG 0x80000000ULL
    #define PTE_NX 0x8000000000000000ULL
    #define PTE_ADDR 0x000ffffffffff000ULL
    #define TLB_INVALID 0xffffffffffffffffULL
    #define NO_PAGE 0xffffffffffffffffULL
    #define NO_PASS 0xffffffffffffffffULL
    #define LINUX_CEA_IDT 0xfffffe0000000000ULL
    #define LINUX_CEA_GDT 0xfffffe0000001000ULL
    """
    const uint64_t CR0_PG
    const uint64_t PTE_NX
    const uint64_t PTE_ADDR
    const uint64_t TLB_INVALID
    const uint64_t NO_PAGE
    const uint64_t NO_PASS        # core/ops_system.pxi: no trap pass pending
    const uint64_t LINUX_CEA_IDT
    const uint64_t LINUX_CEA_GDT

# what a Linux x86-64 process sees of its kernel's descriptor tables (no GDT
# of the guest's own loaded: core/system.pxi linux_gdt): the tables in the CPU
# entry area of CPU 0 (arch/x86/include/asm/pgtable_64_types.h, cpu_entry_area.h)
cdef enum:
    LINUX_GDT_LIMIT = 16 * 8 - 1
    LINUX_TSS_SEL = 0x40
