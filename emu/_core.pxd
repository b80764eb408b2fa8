# Core data structures: vCPU state, micro-ops, translated blocks, TLB.
# Everything here is plain C data so a snapshot can copy it and the hot loop
# never touches a Python object.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t

cdef extern from *:
    """
    typedef unsigned __int128 emu_u128;
    typedef __int128 emu_i128;
    #define emu_unlikely(x) __builtin_expect(!!(x), 0)
    """
    ctypedef unsigned long long emu_u128
    ctypedef long long emu_i128
    bint emu_unlikely(bint x) nogil     # a branch the compiler lays out of the hot path

ctypedef int (*uop_fn)(Cpu* c, const Uop* u) noexcept nogil

cdef struct Uop:
    uop_fn fn
    uint64_t imm          # immediate, or branch target
    uint64_t imm2         # second immediate (ENTER, far forms) / spare
    int64_t disp          # displacement (absolute address for RIP-relative)
    uint64_t rip          # address of this instruction
    uint64_t rip_next     # address of the next instruction
    uint16_t ninsn        # instructions retired in the block when this uop completes (<= MAX_BLOCK_INSNS)
    # the instruction-class cost model (core/timing.pxi): extra cycles, beyond
    # one per instruction, of the block's instructions up to this uop's end
    # (16 bits each, so the uop stays 72 bytes)
    uint16_t cyc
    uint8_t len           # instruction length in bytes
    uint8_t osz           # operand size in bytes (1, 2, 4, 8)
    uint8_t asz32         # 67 prefix: 32-bit address arithmetic
    uint8_t reg           # ModRM.reg operand (GPR index; 17..20 = AH..BH for byte ops)
    uint8_t rm            # ModRM.rm register operand when mem == 0
    uint8_t mem           # 1 when the r/m operand is memory
    uint8_t base          # GPR index or NOREG (16, reads as zero)
    uint8_t index         # GPR index or NOREG
    uint8_t scale         # shift count 0..3
    uint8_t seg           # segment base slot (SEG_NONE for flat)
    uint8_t rep           # 0, REP_F3 or REP_F2
    uint8_t lock          # LOCK prefix present
    uint8_t sub           # handler-specific selector (condition code, ALU op...)
    uint8_t opc           # opcode byte (last byte of the opcode)
    uint8_t pfx66         # operand-size prefix seen (SSE handlers)
    uint8_t rex           # REX byte (0 if none)
    # VEX/EVEX (core/vex.pxi): the second source register (VEX.vvvv, 0..31),
    # the vector length (0: 128, 1: 256, 2: 512 bits), VEX.W, and the
    # register of an is4 operand (imm8[7:4]) or the opmask (EVEX.aaa)
    uint8_t vvvv
    uint8_t vl
    uint8_t vexw
    uint8_t is4

cdef struct Block:
    uint64_t vrip         # virtual address of the first instruction
    uint64_t paddr        # physical address of the first byte
    uint64_t page2        # physical page of a second page the block touches, or NO_PAGE
    uint64_t chain_rip[2] # small successor cache ("chaining")
    uint32_t chain_epoch[2]
    int32_t chain_blk[2]
    uint32_t uop_start
    uint32_t ninsn
    uint32_t mode
    int32_t hash_next     # (the free-slot list while the slot is unused)
    int32_t page_next[2]  # per-page lists of blocks, doubly linked through nodes 2*bi+k
    int32_t page_prev[2]  # (k = 0: the first page, 1: page2)
    # chain edges into this block (core/codecache.pxi): head of the list of
    # predecessor slots 2*pred+s whose chain_blk[s] is this block, and this
    # block's own two outgoing slots' links in their targets' lists
    int32_t in_head
    int32_t edge_next[2]
    int32_t edge_prev[2]
    uint32_t n_uops       # uops the block occupies in the arena (with its sentinel)
    # return prediction (core/predict.pxi): how the block ends (TERM_*), and
    # for a call, the block its callee returned to last (with the epoch)
    int32_t ret_blk
    uint32_t ret_epoch
    uint8_t term
    uint8_t valid
    uint32_t exec_count   # executions in the interpreter (tier-up, core/jit_cache.pxi)

cdef enum:
    TLB_SIZE = 4096       # entries of the direct-mapped software TLB (Cpu.tlb_arr)
    IBL_SIZE = 2048       # entries of the native tier's indirect-branch table (Cpu.ibl)
    PCID_SLOTS = 16       # PCIDs the TLB holds translations of at once (Cpu.slot_pcid, core/mmu.pxi)
    AC_FILLS = 32         # TLB entries filled under SMAP with RFLAGS.AC set, listed for CLAC (Cpu.ac_fill)

cdef struct CcRec:
    int32_t blk           # block whose uops the region holds, or -1 (the ring's end, skipped)
    uint32_t n            # uops in the region (regions follow each other from uop_tail)

cdef struct DzRange:
    uint64_t start, end   # virtual addresses, page-aligned
    const uint8_t* src    # file bytes mapped at start (private copy on first touch), or NULL
    uint64_t src_len      # bytes of src (or of the file from src_foff); the rest of the range reads as zeros
    uint32_t prot         # PROT_READ 1, PROT_WRITE 2, PROT_EXEC 4
    int src_fd            # with src NULL: the file bytes are read from this descriptor (-1: none)
    uint64_t src_foff     # file offset of the byte mapped at start

cdef struct TlbEntry:
    uint64_t tag_r        # page | mode, or TLB_INVALID
    uint64_t tag_w
    uint64_t tag_x
    uint64_t addend       # host address = guest virtual + addend
    uint64_t ppage        # guest physical page; bit 0: a global translation (kept across CR3 loads)
    # (to 64 bytes: compiled code's inline probe scales the index with one
    # shift and mask, core/jit_emit.pxi e_probe_rax; entries stay in one line)
    uint64_t spare[3]

cdef struct IbtcEntry:
    uint64_t rip          # target
    int32_t site          # block whose indirect branch went there
    int32_t blk           # the target's block
    uint32_t epoch

cdef struct RasEntry:
    uint64_t rip          # the return address a CALL pushed
    int32_t caller        # the block of that CALL

cdef struct JcEntry:
    uint64_t vrip
    int32_t blk
    uint32_t epoch

cdef struct CpuidEntry:
    uint32_t leaf, subleaf, eax, ebx, ecx, edx
    uint32_t flags        # CPUID_SUBLEAF_INDEXED

cdef struct BlockCov:
    # an open-addressing set of block start addresses (core/hooks.pxi)
    uint64_t* keys        # block start + 1 (0: a free slot)
    uint32_t* sizes       # the block's bytes
    uint32_t cap, n       # cap: a power of two, n: blocks held
    uint32_t lost         # blocks not recorded (the table could not grow)

cdef struct Hook:
    uint64_t begin        # covered addresses: begin..end inclusive (begin > end: all)
    uint64_t end
    uint32_t id
    uint32_t kinds        # HK_* bits (core/hooks.pxi)
    uint32_t owner        # Cpu.hook_owner of the vCPU it belongs to

cdef struct MsrPolicy:
    uint32_t index
    uint32_t action       # MSRP_* bits (core/ops_priv.pxi)
    uint64_t value        # what RDMSR reads with MSRP_FIXED

# ---- the native-code tier (core/jit_*.pxi) ----
cdef struct JitBlock:
    uint32_t code         # offset of the block's host code in the cache (0: none)
    uint32_t size
    uint32_t dispatch     # offset of the entry the dispatcher uses (past the budget check)
    uint32_t serial       # allocation serial: the FIFO record that owns the code
    int32_t in_head       # first link jumping into this block, + 1 (0: none)
    int32_t out_head      # first link out of this block, + 1
    uint8_t failed        # not compilable: stay in the interpreter
    # what the code was compiled for (jit_variant): JV_CACHE, the cache
    # model's checks (TIMING_CACHE, core/timing.pxi); JV_COV, the AFL edge
    # map's update at its chain entry (HF_COV). Only vCPUs of the same
    # variant enter it, and only blocks of one variant are linked.
    uint8_t variant

cdef struct IblEntry:
    uint64_t rip          # guest RIP of an indirect branch's target
    uint32_t code         # offset of its compiled block's chain entry in the code cache
    uint32_t stamp        # Cpu.ibl_stamp when learnt: valid while it is the current one

cdef struct JitLink:
    uint32_t site         # offset of the rel32 of a jump in the source block
    uint32_t stub         # offset the rel32 points to when unlinked
    int32_t src, dst
    int32_t next_in, next_out
    uint8_t live

cdef struct JitAlloc:
    uint32_t off, size, serial
    int32_t blk

cdef struct Jit:
    uint8_t* base         # the code cache: a private mapping, never writable and executable at once
    uint32_t size
    uint32_t ring_start   # the permanent code (entry, exit) ends here; blocks fill the ring after it
    uint32_t head         # next free offset in the ring
    uint32_t enter_off, exit_off
    JitAlloc* fifo        # allocations, oldest first (a ring of fifo_cap records)
    uint32_t fifo_cap, fifo_first, fifo_n, serial
    JitBlock* blocks      # per block index
    uint32_t n_blocks
    JitLink* links
    uint32_t links_cap, n_links
    int32_t free_link
    uint64_t n_compiled, n_failed, n_invalidated, n_evicted, n_linked, n_flushes
    uint64_t code_bytes   # bytes of live block code
    uint64_t gen          # bumped whenever compiled code goes (Cpu.ibl entries go stale)

# system calls the personality delegated to the core (core/syscall_fast.pxi)
cdef struct SysFast:
    uint32_t on              # the personality's switch (off: every call exits)
    uint64_t calls[8]        # bit nr: call nr (< 512) is delegated
    uint32_t* fds            # per guest fd: 0, or (host fd + 1) | kind flags << 24
    uint64_t count[512]      # calls answered here since the personality last took them
    uint64_t n_new           # their sum
    uint64_t n_done, n_declined  # totals: answered here; delegated, but sent to Python
    int64_t pid, tid         # getpid and gettid of the thread about to run (tid 0: not known)

cdef struct CacheModel:
    # core/timing.pxi: set-associative L1d/L2/LLC, LRU, per-level hit costs
    uint64_t* tags        # sets x ways line tags (line + 1; 0 = empty), level after level
    uint32_t sets[3]      # (powers of two: the set is line & (sets - 1))
    uint32_t ways[3]
    uint32_t base[3]      # first tag of each level
    uint32_t cost[3]      # extra cycles of a hit in L2, LLC, and of a miss to DRAM
    uint32_t nlevels
    uint32_t sample       # model 1 in `sample` of the accesses past L1's most recent line, charge x sample
    uint64_t n_hit[4]     # hits per level (L1, L2, LLC) and DRAM accesses

cdef struct Mach:
    uint8_t* ram
    uint64_t ram_size
    uint64_t npages
    uint8_t* code_page    # per physical page: 1 when translated code lives there
    uint8_t* dirty        # per physical page: 1 once a write TLB entry was filled
    uint32_t* dirty_list  # the pages whose dirty byte is set, in the order they were set
    uint32_t n_dirty
    int32_t* page_blocks  # per physical page: head of the list of blocks on it
    Block* blocks
    Uop* uops
    uint32_t n_blocks, n_uops
    CacheModel* cache     # the cache model of core/timing.pxi, or NULL
    uint16_t class_cost[16]  # core/timing.pxi: extra cycles per instruction class (COST_*)
    int32_t* block_hash
    uint64_t n_blocks_translated, n_invalidations, n_flushes
    Cpu* running          # vCPU executing now (its current block may be invalidated)
    uint32_t epoch_counter # source of jc epochs, unique across the machine's vCPUs
    # instrumentation (core/hooks.pxi): hooks of every vCPU (code hooks shape translation)
    Hook* hooks
    uint32_t n_hooks, hooks_cap, next_hook_id
    uint32_t hook_kinds   # union of the HK_CODE / HK_FETCH bits of all hooks
    # blocks end at every conditional branch (no side exits): set for good
    # once a vCPU observes blocks (block hooks, coverage), whose unit is the
    # basic block
    uint8_t basic_blocks
    # execution tier (core/tiers.pxi): TIER_INTERP, TIER_JIT or TIER_AUTO, and the
    # executions after which a block is compiled to host code
    uint32_t tier
    uint32_t jit_threshold
    # code cache (core/codecache.pxi): one byte budget; uops live in a ring
    # (uop_cap slots) recycled oldest first, blocks in max_blocks slots that
    # keep their index while they live; cc_recs lists each translation's region
    # of the ring in allocation order (the eviction order)
    uint64_t cc_budget    # bytes: uops + blocks + the native tier's code (Jit.code_bytes)
    uint32_t max_blocks, uop_cap, hash_mask
    uint32_t uop_head, uop_tail, uop_used
    int32_t free_slot     # head of the unused block slots (linked by hash_next)
    uint32_t n_live
    CcRec* cc_recs
    uint32_t rec_cap, rec_head, rec_tail, rec_n
    uint64_t n_evicted, n_evict_rounds, n_retranslated, n_retired
    # keys of evicted or flushed blocks (open addressing; 0 = empty): a later
    # translation of one of them is a retranslation
    uint64_t* gone_keys
    uint64_t gone_cap, gone_n
    IbtcEntry* ibtc       # indirect-branch target cache (core/predict.pxi)
    uint64_t n_ibtc_hits
    # demand paging in the core (core/demand.pxi): the personality's ranges of
    # private memory (sorted by start) for the address space at dz_root, the
    # frames it lends the core, and the log of pages the core populated
    DzRange* dz
    uint32_t n_dz, dz_cap
    uint64_t dz_root      # PML4 physical address the ranges belong to
    uint64_t* fpool       # frame addresses; bit 0: the frame must be zeroed first
    uint32_t n_fpool, fpool_cap
    uint64_t* dz_log      # (virtual page, frame) pairs
    uint32_t n_dz_log, dz_log_cap
    uint64_t n_dz_faults
    Jit* jit              # the native-code tier's state (NULL: interpreter only)
    SysFast* sysfast      # system calls answered in the core (core/syscall_fast.pxi; NULL: none)

cdef struct Cpu:
    uint64_t r[17]        # RAX..R15, then a slot that is always zero (NOREG)
    uint64_t rip
    uint64_t rflags       # non-arithmetic bits always; arithmetic bits when lf_op == LF_NONE
    # lazy flags: the last flag-setting operation
    uint32_t lf_op
    uint32_t lf_sz
    uint64_t lf_a, lf_b, lf_r, lf_c
    # segments: ES CS SS DS FS GS, then a zero slot used for flat addressing
    uint64_t seg_base[7]
    uint16_t seg_sel[6]
    uint64_t kernel_gs_base
    # control state
    uint64_t cr0, cr2, cr3, cr4, cr8, efer
    uint32_t cpl
    uint32_t mode         # cpl | paging bits: part of block and TLB keys
    uint64_t tsc_aux
    uint64_t msr_star, msr_lstar, msr_cstar, msr_sfmask, msr_pat
    # descriptor-table registers and XCR0 (core/ops_priv.pxi)
    uint64_t gdtr_base, idtr_base
    uint32_t gdtr_limit, idtr_limit
    uint64_t xcr0
    # what a trapped privileged instruction wanted (EXIT_PRIV / EXIT_MSR): PRIV_* op,
    # control register, general register operand, value written or memory address
    uint32_t priv_op, priv_cr, priv_gpr
    uint64_t priv_value
    uint32_t exc_soft     # the EXCEPTION exit comes from INT n / INT1 (a software interrupt)
    uint32_t tlb_large    # a 2 MiB / 1 GiB page was walked since the last full TLB flush (INVLPG)
    # time
    uint32_t tsc_mode     # TSC_VIRTUAL or TSC_HOST
    uint64_t tsc_offset
    uint64_t tsc_per_insn # virtual cycles per retired instruction (fixed point, 16 fractional bits)
    # core/timing.pxi: TIMING_* bits (class costs, cache model) and the
    # cycles they charged so far (part of the virtual TSC)
    uint32_t timing
    uint64_t tsc_extra
    uint64_t cache_last   # the line (va >> 6) of this vCPU's last access: an L1 hit, not modelled again
    uint32_t cache_skip   # sampled cache model: accesses still to skip before the next modelled one
    uint32_t cache_force  # the next access is modelled exactly (after CLFLUSH)
    uint64_t rng_state    # RDRAND/RDSEED generator (seeded, deterministic)
    # exit record
    uint32_t exit_reason
    uint32_t exc_vector
    uint64_t exc_error
    uint32_t exc_has_error
    uint64_t exit_rip     # address of the instruction that caused the exit
    uint64_t io_port, io_size, io_dir, io_value
    uint64_t mmio_addr, mmio_size, mmio_write, mmio_value
    uint32_t mmio_pending # a completed MMIO read is waiting in mmio_value
    uint64_t msr_index
    # trap policy bits (EXIT_ON_*), installed by the hypervisor
    uint64_t trap_mask
    # counters
    uint64_t icount
    uint64_t n_jc_hits, n_jc_misses
    uint64_t n_chained, n_tlb_hits, n_tlb_misses, n_tlb_flushes
    uint64_t n_exits[32]
    uint64_t tlbm         # TLB tag mode bit: 1 at CPL 0-2 (supervisor), 0 at CPL 3
    TlbEntry* tlb
    JcEntry* jc           # virtual-RIP -> block cache
    uint32_t jc_epoch     # bumped to empty jc (TLB flush, CR3 load)
    Mach* m               # RAM and block cache shared by the machine's vCPUs
    Block* cur_block      # block being executed (for self-modifying code)
    # CPUID table
    CpuidEntry* cpuid
    uint32_t n_cpuid
    # attention bits tested once per block (EV_STOP: stop request from another
    # thread; EV_IRQ: an external interrupt is pending), core/system.pxi
    volatile uint32_t events
    # ---- SSE / x87 state (ops_sse_*.pxi, ops_x87.pxi, ops_fxsave.pxi) ----
    # the vector register file, laid out for EVEX: 32 registers of 512 bits
    # (8 little-endian qwords). XMMn is xmm[n][0..1], YMMn xmm[n][0..3], ZMMn
    # xmm[n][0..7]; legacy SSE writes keep bits 511:128, VEX writes zero every
    # bit above the vector length (SDM Vol. 1, 14.1.3). Registers 16-31 and
    # bits 511:256 exist for AVX-512 (not yet advertised).
    uint64_t xmm[32][8]
    uint32_t mxcsr        # reset 0x1F80
    uint8_t fpr[8][16]    # x87 physical registers R0-R7, 80-bit values in bytes 0..9
    uint16_t fcw          # x87 control word (reset 0x037F)
    uint16_t fsw          # x87 status word without TOP (bits 11..13 kept in ftop)
    uint16_t ftw          # x87 tag word, 2 bits per physical register (11 = empty)
    uint16_t fop          # last x87 opcode (11 bits)
    uint32_t ftop         # TOP of the x87 stack
    uint64_t fip, fdp     # last x87 instruction and data pointers
    # ---- system mode (core/system.pxi); kept last so the hot fields keep their offsets ----
    uint32_t deliver_via_idt  # faults and interrupts go through the IDT (else EXCEPTION exits)
    uint32_t halted           # HLT exited with nothing deliverable: run() stays halted
    uint64_t irq_bits[4]      # pending external interrupt vectors (set by the VMM)
    uint64_t shadow_end       # interrupts blocked while icount < shadow_end (STI, MOV SS)
    uint64_t tr_base, ldtr_base
    uint32_t tr_limit, ldtr_limit
    uint16_t tr_sel, ldtr_sel
    uint64_t dr[8]            # debug registers (stored; no breakpoints are raised)
    # ---- instrumentation (core/hooks.pxi) ----
    uint32_t hook_owner   # identity of this vCPU in Mach.hooks
    uint32_t hook_flags   # HF_BLOCK | HF_COV: tested once per block entry
    uint32_t hook_mem     # HK_READ | HK_WRITE: kinds of memory hooks this vCPU has
    uint32_t hook_id, hook_kind   # EXIT_HOOK record
    uint64_t hook_addr, hook_size, hook_value
    # resume marker: the instruction at resume_rip with resume_icount retired before it
    # already went through block entry (stage 1), its code hook (2), memory hooks (3)
    uint64_t resume_rip, resume_icount
    uint32_t resume_stage
    uint32_t mh_n         # memory-hook accesses already reported for the resumed instruction
    uint64_t mh_log[128][2]
    uint8_t* cov_map      # AFL edge map (65536 bytes) when coverage is on
    uint32_t cov_prev
    BlockCov* bcov        # the blocks executed (drcov coverage) when block coverage is on
    # ---- hypervisor layer (emu/hypervisor): declarative MSR policy applied in
    # the core without a VMM exit, and the host-clock TSC (TSC_HOST) ----
    uint32_t n_msr_pol
    MsrPolicy msr_pol[16]
    # trap-before exits (core/ops_priv.pxi trap_before: HLT, INT n, RDPMC, SYSCALL,
    # LLDT, LTR): the PRIV exit came before the instruction (priv_before), which
    # ends at priv_next; the VMM let the instruction at trap_pass_rip (with
    # trap_pass_icount retired before it) through once
    uint32_t priv_before
    uint64_t priv_next
    uint64_t trap_pass_rip, trap_pass_icount
    # string I/O (INS/OUTS): the IO exit of one element, committed when the vCPU
    # resumes (io_string_commit): which form (IOS_* bits) and where it ends
    uint32_t io_string
    uint64_t io_next
    # the MXCSR the host register holds during a run (ops_sse_int.pxi: it is
    # reloaded only when an SSE operation wants another one)
    uint32_t csr_loaded
    uint64_t tsc_host_mult  # TSC cycles per host nanosecond, 32 fractional bits
    uint64_t tsc_host_base  # host CLOCK_MONOTONIC ns at which the TSC read tsc_offset
    # ---- ISA extensions (core/vex.pxi, ops_avx*.pxi, ops_bmi.pxi, ops_crypto.pxi) ----
    uint64_t kmask[8]       # AVX-512 opmask registers k0-k7 (not yet advertised)
    uint64_t feat           # FEAT_* bits of the extensions the CPUID table advertises
    uint32_t vendor_intel   # where the SDM says "undefined", follow Intel (1) or AMD (0)
    uint32_t xinuse_mod     # XSAVE components loaded since their last init (Intel's XINUSE
                            # tracks modification; AMD's compares with the initial values)
    uint64_t xss            # IA32_XSS (XSAVES/XRSTORS supervisor components: none)
    # return-address stack (core/predict.pxi)
    RasEntry ras[32]
    uint32_t ras_top
    uint64_t n_ras_hits, n_ras_misses
    # 32-bit code (core/compat32.pxi): CS is a 32-bit code segment (compatibility
    # mode) or IA-32e is off (legacy protected mode); bit 2 of mode
    uint32_t cs32
    # the TLS descriptors (GDT entries 12-14, selectors 0x63 0x6b 0x73) of the
    # built-in Linux GDT, set by the personality's set_thread_area
    uint64_t tls_desc[3]
    # ---- hardening (core/mmu.pxi, core/run.pxi) ----
    # the MMIO accesses an instruction completed before its latest MMIO exit
    # (address, size | write << 8, value), replayed in order when it runs again,
    # so an instruction with any number of MMIO accesses completes (mmio_resume)
    uint64_t mmio_log[192][3]
    uint32_t mmio_n, mmio_cur, mmio_replay
    uint64_t mmio_key_rip, mmio_key_icount
    # a #GP the MMU raised for a non-canonical address (#SS when through SS)
    uint32_t nc_fault
    uint64_t nc_addr
    # exceptions delivered through the IDT with no instruction retired (EXIT_STORM)
    uint64_t storm_icount
    uint32_t storm_n
    # ---- the native-code tier (core/jit_*.pxi) ----
    uint64_t jit_limit    # instruction count native code may not pass (r14 counts down to it)
    uint64_t jit_left     # r14 on entry: jit_limit - icount - the entered block's instructions
    uint32_t jit_blk      # exit record: the block, the uop index within it
    uint32_t jit_k
    uint32_t jit_site     # a direct exit that may be chained (offset of its rel32; 0: none)
    uint32_t jit_fsave    # status flags saved by compiled code (LAHF in bits 8..15, OF in bit 0)
    uint32_t jit_interp   # run the next block in the interpreter (after a bail)
    uint32_t jit_epoch    # jc_epoch when compiled code was entered
    uint64_t jit_tmp      # a scratch word for compiled code
    uint32_t jit_fp       # compiled SSE ran: the host MXCSR holds exception flags to fold in
    uint64_t n_jit_insns  # instructions retired in compiled code
    uint64_t n_jit_enters, n_jit_bails
    # ---- the TLB itself, last: compiled code reaches it at a fixed offset
    # from the Cpu; save_state stops before it (cpu_state_size) ----
    TlbEntry tlb_arr[TLB_SIZE]
    # the native tier's inline lookup of indirect branches (core/jit_runtime.pxi),
    # also at a fixed offset, also not saved: ibl_stamp changes with the
    # address space (jc_epoch), the mode and the code cache (Jit.gen)
    uint32_t ibl_stamp, ibl_epoch, ibl_mode
    uint64_t ibl_gen
    IblEntry ibl[IBL_SIZE]
    # ---- PCIDs (core/mmu.pxi, SDM 4.10.1): a TLB tag carries, in bits 1..4,
    # the slot of the PCID its translation belongs to (tlbm = slot << 1 |
    # supervisor). Derived state, rebuilt from CR3/CR4 (pcid_reset), not saved.
    uint32_t pcid_slot                 # the current PCID's slot (0: PCID 0, always with CR4.PCIDE clear)
    uint32_t slot_pcid[PCID_SLOTS]     # the PCID each slot stands for (PCID_NONE: free)
    uint32_t slot_epoch[PCID_SLOTS]    # the jc_epoch of the slot's address space (0: take a new one)
    uint64_t slot_used[PCID_SLOTS]     # last use (slot_clock), for replacing the least recent
    uint64_t slot_retired[PCID_SLOTS]  # Mach.n_retired when the slot stopped being current
    uint64_t slot_clock
    uint64_t n_pcid_kept               # MOV to CR3 that kept the TLB (bit 63 set, or a PCID's slot reused)
    uint64_t n_pcid_evictions          # a PCID lost its slot to another
    # TLB entries where a supervisor access was let read or write a user
    # page because RFLAGS.AC was set (SMAP, SDM 4.6.1): the ones CLAC (or any
    # clearing of AC) drops; more than AC_FILLS of them: the whole TLB goes
    uint16_t ac_fill[AC_FILLS]
    uint32_t n_ac_fill
