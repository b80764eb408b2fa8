# Deceptive time, the core half: an instruction-class cost model and a
# set-associative cache model that make the virtual TSC advance the way a
# real part's does (emu/hypervisor/templates.py holds the part's figures).
#
# Without them every instruction costs tsc_per_insn cycles: a DIV costs what
# an ADD does, CPUID and RDTSC a cycle, an L1 hit what a DRAM miss does, and a
# timing detector sees ratios no real CPU shows. With TIMING_COSTS each
# instruction class is charged its latency (Agner Fog, "Instruction tables",
# and uops.info measurements: docs/stealth.md); the charge is computed once,
# at translation, as a per-uop running sum (Uop.cyc) and added to the TSC
# when the block's instructions retire (c.tsc_extra), so the hot loop pays one
# add per block. With TIMING_CACHE every data access of the interpreter goes
# through an LRU model of L1d/L2/LLC and misses charge the lower level's
# extra latency at once.
#
# The native tier does not charge these costs yet: while c.timing is set
# the run loop keeps to the interpreter (core/run.pxi).


cdef enum:
    TIMING_COSTS = 1
    TIMING_CACHE = 2
    LINE_SHIFT = 6          # 64-byte lines on every x86-64 part (CPUID.1:EBX[15:8] x 8)

# instruction classes (Mach.class_cost[]: the class's latency less the base
# cycle, set from the template through PhysMachine.set_class_costs)
cdef enum:
    COST_DIV8 = 0
    COST_DIV32 = 1
    COST_DIV64 = 2
    COST_IDIV64 = 3
    COST_MUL = 4
    COST_CPUID = 5
    COST_RDTSC = 6
    COST_RDTSCP = 7
    COST_LOCK = 8
    COST_REP = 9
    COST_SYSCALL = 10
    COST_FENCE = 11
    COST_CLFLUSH = 12
    COST_LFENCE = 13
    N_COSTS = 14

def timing_classes():
    """The instruction classes of PhysMachine.set_class_costs, in COST_* order."""
    return ("div8", "div32", "div64", "idiv64", "mul", "cpuid", "rdtsc", "rdtscp", "lock", "rep", "syscall",
            "fence", "clflush", "lfence")


cdef inline uint32_t insn_cost(const uint16_t* k, const Uop* u) noexcept nogil:
    """Extra cycles of the instruction whose first uop is u (by its class)."""
    cdef uop_fn f = u.fn
    if f == op_div or f == op_idiv:
        if u.osz == 8:
            return k[COST_DIV64] if f == op_div else k[COST_IDIV64]
        return k[COST_DIV8] if u.osz == 1 else k[COST_DIV32]
    if f == op_mul1 or f == op_imul1 or f == op_imul_r_rm or f == op_imul_r_rm_imm:
        return k[COST_MUL]
    if f == op_cpuid:
        return k[COST_CPUID]
    if f == op_rdtsc:
        return k[COST_RDTSC]
    if f == op_rdtscp:
        return k[COST_RDTSCP]
    if f == op_syscall:
        return k[COST_SYSCALL]
    if f == op_ae6:                           # MFENCE (the register form; the memory form is XSAVEOPT)
        return k[COST_FENCE] if not u.mem else 0
    if f == op_ae5:                           # LFENCE
        return k[COST_LFENCE] if not u.mem else 0
    if f == op_clflush or (f == op_ae7 and u.mem):   # CLFLUSH
        return k[COST_CLFLUSH]
    if u.rep and (f == op_rep_movs or f == op_rep_stos or f == op_rep_lods or f == op_rep_scas
                  or f == op_rep_cmps):
        return k[COST_REP]
    if u.lock:
        return k[COST_LOCK]
    return 0


cdef void timing_block_costs(Mach* m, Uop* first, uint32_t nu) noexcept nogil:
    """Fill Uop.cyc for a new block's nu uops: the running sum of the class
    costs (an instruction's cost sits on its first uop; hook uops and the
    fall-through cost nothing)."""
    cdef uint32_t i, acc = 0, prev_n = 0
    cdef Uop* u
    for i in range(nu):
        u = first + i
        if u.fn == NULL:
            break
        if u.ninsn != prev_n:
            acc += insn_cost(m.class_cost, u)
            if acc > 0xFFFF:
                acc = 0xFFFF
            prev_n = u.ninsn
        u.cyc = <uint16_t>acc


cdef inline uint64_t block_cycles_before(Cpu* c, const Uop* u) noexcept nogil:
    """Class cycles of the block's instructions before u (RDTSC reads the
    time it starts at; its own cost shows in the next reading)."""
    cdef uint32_t own = insn_cost(c.m.class_cost, u)
    return u.cyc - own if u.cyc >= own else 0


# ---- the cache model ----

cdef inline uint32_t cache_level(uint64_t* s, uint32_t ways, uint64_t tag) noexcept nogil:
    """Look tag up in one set kept in LRU order (most recent first); move it
    (or insert it, dropping the least recent) to the front. 1 on a hit."""
    cdef uint32_t k = 0
    if s[0] == tag:
        return 1
    while k < ways and s[k] != tag:
        k += 1
    cdef uint32_t hit = k < ways
    if not hit:
        k = ways - 1
    while k > 0:
        s[k] = s[k - 1]
        k -= 1
    s[0] = tag
    return hit


cdef void cache_miss_l1(Cpu* c, uint64_t line, uint32_t mult) noexcept nogil:
    """The line is not L1's most recent: the full LRU walk down the levels,
    charging the level that hits (x mult: a sampled access stands for mult)."""
    cdef CacheModel* cm = c.m.cache
    cdef uint32_t lv
    for lv in range(cm.nlevels):
        if cache_level(cm.tags + cm.base[lv] + (line & (cm.sets[lv] - 1)) * cm.ways[lv], cm.ways[lv], line):
            cm.n_hit[lv] += 1
            if lv:
                c.tsc_extra += cm.cost[lv - 1] * mult
                # (inclusive hierarchy: the levels above now hold it too,
                # cache_level put it there on the way down)
            return
    cm.n_hit[3] += 1
    c.tsc_extra += cm.cost[2] * mult


cdef void cache_access(Cpu* c, uint64_t va) noexcept nogil:
    """A data access of the line holding va: an access to the vCPU's last
    line, or to L1's most recent line of its set (one compare), is an L1 hit;
    of the rest the sampled model walks 1 in cm.sample (every one after a
    CLFLUSH)."""
    cdef CacheModel* cm
    cdef uint64_t line
    if (va >> LINE_SHIFT) == c.cache_last:
        return
    cm = c.m.cache
    line = (va >> LINE_SHIFT) + 1
    c.cache_last = va >> LINE_SHIFT
    if cm.tags[(line & (cm.sets[0] - 1)) * cm.ways[0]] == line:
        cm.n_hit[0] += 1
        return
    if c.cache_force:
        c.cache_force = 0
        cache_miss_l1(c, line, 1)
        return
    if c.cache_skip:
        c.cache_skip -= 1
        return
    c.cache_skip = cm.sample - 1
    cache_miss_l1(c, line, cm.sample)


cdef void cache_flush_line(Cpu* c, uint64_t va) noexcept nogil:
    """CLFLUSH: the line leaves every level."""
    cdef CacheModel* cm = c.m.cache
    cdef uint64_t line = (va >> LINE_SHIFT) + 1
    cdef uint32_t lv, k
    cdef uint64_t* s
    if cm == NULL or not (c.timing & TIMING_CACHE):
        return
    c.cache_last = <uint64_t>-1
    c.cache_force = 1
    for lv in range(cm.nlevels):
        s = cm.tags + cm.base[lv] + (line & (cm.sets[lv] - 1)) * cm.ways[lv]
        for k in range(cm.ways[lv]):
            if s[k] == line:
                while k + 1 < cm.ways[lv]:
                    s[k] = s[k + 1]
                    k += 1
                s[cm.ways[lv] - 1] = 0
                break


cdef void cache_free(Mach* m) noexcept nogil:
    if m.cache != NULL:
        free(m.cache.tags)
        free(m.cache)
        m.cache = NULL


cdef int cache_new(Mach* m, levels, uint32_t sample) except -1:
    """levels: [(sets, ways, extra cycles of a hit there)] for L1d, L2, LLC,
    then the extra cycles of a DRAM access as a 4th (sets 0); sample: model
    1 in `sample` of the accesses that miss L1's most recent line."""
    cdef uint32_t i, total = 0
    cache_free(m)
    if len(levels) != 4:
        raise ValueError("cache model: L1d, L2, LLC and DRAM expected")
    m.cache = <CacheModel*>calloc(1, sizeof(CacheModel))
    if m.cache == NULL:
        raise MemoryError()
    m.cache.nlevels = 3
    m.cache.sample = sample if sample > 0 else 1
    for i in range(3):
        sets, ways, cost = levels[i]
        if sets <= 0 or sets & (sets - 1) or ways <= 0 or ways > 64:
            cache_free(m)
            raise ValueError("cache model: bad geometry %r" % (levels[i],))
        m.cache.sets[i] = sets
        m.cache.ways[i] = ways
        m.cache.base[i] = total
        total += sets * ways
        if i:
            m.cache.cost[i - 1] = levels[i][2]
    m.cache.cost[2] = levels[3][2]
    m.cache.tags = <uint64_t*>calloc(total, sizeof(uint64_t))
    if m.cache.tags == NULL:
        cache_free(m)
        raise MemoryError()
    return 0


cdef int class_costs_set(Mach* m, dict costs) except -1:
    """The class costs (extra cycles) every block translated from now on is
    charged with (set them before the guest runs: older blocks keep theirs)."""
    cdef int i
    names = timing_classes()
    for k in costs:
        if k not in names:
            raise ValueError("unknown instruction class %r (one of %s)" % (k, ", ".join(names)))
    for i in range(N_COSTS):
        m.class_cost[i] = <uint16_t>min(0xFFFF, max(0, int(costs.get(names[i], 0))))
    return 0
