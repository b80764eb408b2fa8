# Architectural constants and the core's own enumerations.

DEF NOREG = 16            # register slot that always reads zero
DEF SEG_ES = 0
DEF SEG_CS = 1
DEF SEG_SS = 2
DEF SEG_DS = 3
DEF SEG_FS = 4
DEF SEG_GS = 5
DEF SEG_NONE = 6          # flat: base 0

DEF REP_F3 = 1
DEF REP_F2 = 2

# handler results
DEF R_NEXT = 0            # continue with the next uop; RIP not written
DEF R_BRANCH = 1          # instruction retired, c.rip holds the next RIP
DEF R_EXC = 2             # instruction faulted (c.exc_*), nothing retired
DEF R_EXIT = 3            # instruction retired, c.rip set, exit to the VMM
DEF R_EXIT_BEFORE = 4     # exit to the VMM before the instruction (not retired)
DEF R_RESTART = 5         # not retired; resume at this instruction (code was modified)

# exceptions (Intel SDM Vol. 3A, 6.3.1)
DEF EXC_DE = 0
DEF EXC_DB = 1
DEF EXC_BP = 3
DEF EXC_OF = 4
DEF EXC_BR = 5
DEF EXC_UD = 6
DEF EXC_NM = 7
DEF EXC_DF = 8
DEF EXC_TS = 10
DEF EXC_NP = 11
DEF EXC_SS = 12
DEF EXC_GP = 13
DEF EXC_PF = 14
DEF EXC_MF = 16
DEF EXC_AC = 17
DEF EXC_XM = 19

# exit reasons (mirrored in emu/exits.py)
DEF EXIT_NONE = 0
DEF EXIT_HLT = 1
DEF EXIT_IO = 2
DEF EXIT_MMIO = 3
DEF EXIT_CPUID = 4
DEF EXIT_RDTSC = 5
DEF EXIT_MSR = 6
DEF EXIT_SYSCALL = 7
DEF EXIT_EXCEPTION = 8
DEF EXIT_HOOK = 9
DEF EXIT_BUDGET = 10
DEF EXIT_SHUTDOWN = 11
DEF EXIT_STOPPED = 12
DEF EXIT_PRIV = 13        # trapped sensitive instruction (CR, INVLPG, descriptor tables...)
DEF N_EXIT_REASONS = 14

# trap_mask bits: which sensitive instructions exit to the VMM
DEF TRAP_CPUID = 1
DEF TRAP_RDTSC = 2
DEF TRAP_MSR = 4
DEF TRAP_HLT = 8
DEF TRAP_CR = 16
DEF TRAP_INVLPG = 32
DEF TRAP_DESC = 64
DEF TRAP_INT = 128
DEF TRAP_RDPMC = 256
DEF TRAP_XSETBV = 512
DEF TRAP_SYSCALL = 1024   # SYSCALL exits to the VMM (user-mode personality)
DEF TRAP_SYSCALL_INSN = 2048   # SYSCALL exits to a trap policy before acting (any mode)

# instrumentation (core/hooks.pxi): hook kinds, and c.hook_flags bits
DEF HK_CODE = 1
DEF HK_READ = 2
DEF HK_WRITE = 4
DEF HK_FETCH = 8
DEF HK_BLOCK = 16         # only as the kind of a block-hook exit
DEF HF_BLOCK = 1
DEF HF_COV = 2

# RFLAGS bits
DEF F_CF = 0x1
DEF F_PF = 0x4
DEF F_AF = 0x10
DEF F_ZF = 0x40
DEF F_SF = 0x80
DEF F_TF = 0x100
DEF F_IF = 0x200
DEF F_DF = 0x400
DEF F_OF = 0x800
DEF F_ARITH = 0x8d5
DEF F_AC = 0x40000
DEF F_ID = 0x200000

# lazy flag operations
DEF LF_NONE = 0
DEF LF_ADD = 1
DEF LF_ADC = 2
DEF LF_SUB = 3
DEF LF_SBB = 4
DEF LF_LOGIC = 5
DEF LF_INC = 6
DEF LF_DEC = 7
DEF LF_SHL = 8
DEF LF_SHR = 9
DEF LF_SAR = 10

# control registers and EFER
DEF CR0_PE = 0x1
DEF CR0_WP = 0x10000
DEF CR4_PAE = 0x20
DEF CR4_PGE = 0x80
DEF CR4_OSFXSR = 0x200
DEF CR4_SMEP = 0x100000
DEF CR4_SMAP = 0x200000
DEF EFER_SCE = 0x1
DEF EFER_LME = 0x100
DEF EFER_LMA = 0x400
DEF EFER_NXE = 0x800

# page table entry bits
DEF PTE_P = 0x1
DEF PTE_RW = 0x2
DEF PTE_US = 0x4
DEF PTE_A = 0x20
DEF PTE_D = 0x40
DEF PTE_PS = 0x80
DEF PTE_G = 0x100
DEF PFE_P = 1
DEF PFE_W = 2
DEF PFE_U = 4
DEF PFE_RSVD = 8
DEF PFE_I = 16

# memory access kinds
DEF ACC_R = 0
DEF ACC_W = 1
DEF ACC_X = 2

DEF TLB_SIZE = 1024
DEF JC_SIZE = 4096
DEF HASH_SIZE = 16384
DEF MAX_BLOCKS = 32768
DEF MAX_UOPS = 524288
DEF MAX_BLOCK_INSNS = 64
DEF TSC_VIRTUAL = 0
DEF TSC_HOST = 1

# 64-bit constants (Cython DEF cannot type them as unsigned C values)
cdef extern from *:
    """
    #define CR0_PG 0x80000000ULL
    #define PTE_NX 0x8000000000000000ULL
    #define PTE_ADDR 0x000ffffffffff000ULL
    #define TLB_INVALID 0xffffffffffffffffULL
    #define NO_PAGE 0xffffffffffffffffULL
    """
    const uint64_t CR0_PG
    const uint64_t PTE_NX
    const uint64_t PTE_ADDR
    const uint64_t TLB_INVALID
    const uint64_t NO_PAGE

# what a Linux x86-64 process sees of its kernel's descriptor tables (no GDT
# of the guest's own loaded: core/system.pxi linux_gdt): the tables in the CPU
# entry area of CPU 0 (arch/x86/include/asm/pgtable_64_types.h, cpu_entry_area.h)
DEF LINUX_GDT_LIMIT = 16 * 8 - 1
DEF LINUX_CEA_IDT = 0xfffffe0000000000ULL
DEF LINUX_CEA_GDT = 0xfffffe0000001000ULL
DEF LINUX_TSS_SEL = 0x40
