# Instrumentation: code, fetch, block and memory hooks that exit to the VMM
# (EXIT_HOOK), and an AFL-style edge-coverage map kept inside the core.
#
# Nothing here costs anything until a hook is installed:
# - code/fetch hooks are compiled into the translated blocks: the translator
#   puts a uop_hook_code in front of each hooked instruction, so only those
#   instructions pay (installing or removing one flushes the block cache);
# - block hooks and coverage are one flag test (c.hook_flags) per block entry;
# - memory hooks keep the TLB from holding fast-path tags for the hooked
#   access kinds on pages that overlap a hooked range, so only accesses to
#   those pages reach the slow path, where hook_mem_access decides.
#
# Hook exits happen before the instruction (or access) and the instruction
# completes when the VMM resumes: the resume marker (c.resume_rip,
# c.resume_icount, c.resume_stage) says which steps the instruction at
# resume_rip already went through, and is only valid while no further
# instruction has retired. Memory accesses already reported for the
# instruction are logged (c.mh_log) so re-executing it does not report them
# again; the instruction is then stepped alone and the log cleared.

from libc.stdlib cimport realloc
from libc.string cimport memmove

# (HK_* and HF_* are in constants.pxi: mmu.pxi and run.pxi use them)
cdef enum:
    MH_LOG = 128
    COV_SIZE = 65536

HOOK_KIND_NAMES = {HK_CODE: "code", HK_READ: "read", HK_WRITE: "write", HK_FETCH: "fetch",
                   HK_BLOCK: "block"}

cdef uint32_t hook_owner_next = 0

cdef inline int hook_covers(const Hook* h, uint64_t a, uint64_t b) noexcept nogil:
    """Does the hook's range overlap [a, b] (inclusive)?"""
    if h.begin > h.end:
        return 1
    return a <= h.end and b >= h.begin

cdef inline void mark_resume(Cpu* c, uint64_t rip, uint64_t icount, uint32_t stage) noexcept nogil:
    """The instruction at rip (icount instructions retired before it) stopped
    after `stage`; a resume there must not repeat that stage."""
    if c.resume_rip == rip and c.resume_icount == icount:
        if stage > c.resume_stage:
            c.resume_stage = stage
    else:
        c.resume_rip = rip
        c.resume_icount = icount
        c.resume_stage = stage

cdef inline int resumed_past(Cpu* c, uint64_t rip, uint64_t icount, uint32_t stage) noexcept nogil:
    return c.resume_stage >= stage and c.resume_rip == rip and c.resume_icount == icount

# ---- code and fetch hooks (compiled into blocks) ----

cdef int hook_code_wanted(Mach* m, uint64_t rip, uint32_t length) noexcept nogil:
    """Translation time: does any vCPU hook the instruction at rip?"""
    cdef uint32_t i
    cdef Hook* h
    for i in range(m.n_hooks):
        h = &m.hooks[i]
        if h.kinds & HK_CODE and hook_covers(h, rip, rip):
            return 1
        if h.kinds & HK_FETCH and hook_covers(h, rip, rip + (length - 1 if length else 0)):
            return 1
    return 0

cdef int uop_hook_code(Cpu* c, const Uop* u) noexcept nogil:
    """In front of a hooked instruction: exit before it (RIP = the instruction,
    not retired). u.ninsn counts the instructions before it in the block,
    u.imm2 is the instruction's length."""
    cdef uint32_t i
    cdef Hook* h
    cdef Hook* hit = NULL
    cdef uint32_t kind = 0
    cdef uint64_t icount = c.icount + u.ninsn
    cdef Mach* m = c.m
    if resumed_past(c, u.rip, icount, 2):
        return R_NEXT
    for i in range(m.n_hooks):
        h = &m.hooks[i]
        if h.owner != c.hook_owner:
            continue
        if h.kinds & HK_CODE and hook_covers(h, u.rip, u.rip):
            hit = h
            kind = HK_CODE
            break
        if hit == NULL and h.kinds & HK_FETCH and hook_covers(h, u.rip, u.rip + (u.imm2 - 1 if u.imm2 else 0)):
            hit = h
            kind = HK_FETCH
    if hit == NULL:
        return R_NEXT             # another vCPU's hook
    c.hook_id = hit.id
    c.hook_kind = kind
    c.hook_addr = u.rip
    c.hook_size = u.imm2
    c.hook_value = 0
    c.exit_reason = EXIT_HOOK
    c.exit_rip = u.rip
    c.rip = u.rip
    mark_resume(c, u.rip, icount, 2)
    return R_EXIT                 # run.pxi accounts u.ninsn: the instructions before this one

cdef inline void hook_make_uop(Uop* u, uint64_t rip, uint32_t n, uint32_t length) noexcept nogil:
    memset(u, 0, sizeof(Uop))
    u.fn = uop_hook_code
    u.rip = rip
    u.rip_next = rip
    u.ninsn = n                   # retired in the block when it completes: those before
    u.imm2 = length
    u.len = 0                     # uop_restart in its place accounts u.ninsn as retired

# ---- block hooks and coverage (run.pxi calls this when c.hook_flags) ----

cdef int hook_block_entry(Cpu* c, Block* b) noexcept nogil:
    """At the start of each block execution. Returns 1 to exit (block hook)."""
    cdef uint64_t rip = b.vrip, cur, end
    cdef const Uop* u
    if resumed_past(c, rip, c.icount, 1):
        return 0                  # resuming in (or at) a block already entered
    if c.hook_flags & HF_COV:
        cur = ((rip >> 4) ^ (rip << 8)) & 0xffff
        c.cov_map[cur ^ c.cov_prev] += 1
        c.cov_prev = <uint32_t>(cur >> 1)
    if c.hook_flags & HF_BCOV:
        bcov_add(c.bcov, rip, b, c.m)
    if c.hook_flags & HF_BLOCK:
        end = rip + block_bytes(b, c.m)
        c.hook_id = 0
        c.hook_kind = HK_BLOCK
        c.hook_addr = rip
        c.hook_size = end - rip
        c.hook_value = b.ninsn
        c.exit_reason = EXIT_HOOK
        c.exit_rip = rip
        mark_resume(c, rip, c.icount, 1)
        return 1
    return 0

# ---- block coverage: the set of blocks executed (emu/drcov.py writes it) ----
# A block is recorded once, at its first entry, with its size in bytes (to
# the end of its last instruction), as DynamoRIO's drcov records basic blocks.

cdef inline uint64_t bcov_hash(uint64_t key) noexcept nogil:
    key ^= key >> 33
    key *= 0xff51afd7ed558ccdULL
    key ^= key >> 33
    return key

cdef uint32_t block_bytes(Block* b, Mach* m) noexcept nogil:
    cdef uint64_t end = b.vrip
    cdef const Uop* u = &m.uops[b.uop_start]
    while u.fn != NULL:
        if u.len and u.rip_next > end:
            end = u.rip_next
        u += 1
    return <uint32_t>(end - b.vrip)

cdef int bcov_grow(BlockCov* t) noexcept nogil:
    cdef uint32_t cap = 1024 if t.cap == 0 else 2 * t.cap, i
    cdef uint64_t* keys = <uint64_t*>calloc(cap, sizeof(uint64_t))
    cdef uint32_t* sizes = <uint32_t*>calloc(cap, sizeof(uint32_t))
    cdef uint64_t j
    if keys == NULL or sizes == NULL:
        free(keys)
        free(sizes)
        return 0
    for i in range(t.cap):
        if t.keys[i]:
            j = bcov_hash(t.keys[i]) & (cap - 1)
            while keys[j]:
                j = (j + 1) & (cap - 1)
            keys[j] = t.keys[i]
            sizes[j] = t.sizes[i]
    free(t.keys)
    free(t.sizes)
    t.keys = keys
    t.sizes = sizes
    t.cap = cap
    return 1

cdef void bcov_add(BlockCov* t, uint64_t rip, Block* b, Mach* m) noexcept nogil:
    cdef uint64_t key = rip + 1, j
    cdef uint32_t size
    if t.cap:
        j = bcov_hash(key) & (t.cap - 1)
        while t.keys[j]:
            if t.keys[j] == key:
                return
            j = (j + 1) & (t.cap - 1)
    if 2 * (t.n + 1) > t.cap and not bcov_grow(t):
        t.lost += 1
        return
    size = block_bytes(b, m)
    j = bcov_hash(key) & (t.cap - 1)
    while t.keys[j]:
        j = (j + 1) & (t.cap - 1)
    t.keys[j] = key
    t.sizes[j] = size
    t.n += 1

cdef void bcov_free(BlockCov* t) noexcept nogil:
    if t != NULL:
        free(t.keys)
        free(t.sizes)
        free(t)

# ---- memory hooks (the TLB keeps hooked pages off the fast path) ----

cdef void hook_tlb_strip(Cpu* c, TlbEntry* e, uint64_t page) noexcept nogil:
    """tlb_fill: no fast read/write tag for a page a hook of that kind overlaps."""
    cdef uint32_t i
    cdef Hook* h
    cdef Mach* m = c.m
    for i in range(m.n_hooks):
        h = &m.hooks[i]
        if h.owner == c.hook_owner and h.kinds & (HK_READ | HK_WRITE) and hook_covers(h, page, page + 0xfff):
            if h.kinds & HK_READ:
                e.tag_r = TLB_INVALID
            if h.kinds & HK_WRITE:
                e.tag_w = TLB_INVALID

cdef int hook_mem_access(Cpu* c, uint64_t va, uint32_t sz, uint32_t kind, uint64_t value) noexcept nogil:
    """Slow path, after translation, before the access: 1 = exit to the VMM
    (EXIT_HOOK; the instruction is re-executed on resume), 0 = go on."""
    cdef uint32_t i
    cdef Hook* h
    cdef Hook* hit = NULL
    cdef Mach* m = c.m
    cdef uint64_t tag
    if not (c.hook_mem & kind):
        return 0
    for i in range(m.n_hooks):
        h = &m.hooks[i]
        if h.owner == c.hook_owner and h.kinds & kind and hook_covers(h, va, va + sz - 1):
            hit = h
            break
    if hit == NULL:
        return 0
    tag = sz | (kind << 8)
    for i in range(c.mh_n if c.mh_n < MH_LOG else MH_LOG):
        if c.mh_log[i][0] == va and c.mh_log[i][1] == tag:
            return 0              # reported before this instruction was re-executed
    # a ring: a REP string instruction commits each element, so only its
    # latest accesses are re-executed
    c.mh_log[c.mh_n % MH_LOG][0] = va
    c.mh_log[c.mh_n % MH_LOG][1] = tag
    c.mh_n += 1
    c.hook_id = hit.id
    c.hook_kind = kind
    c.hook_addr = va
    c.hook_size = sz
    c.hook_value = value
    c.exit_reason = EXIT_HOOK
    return 1

# ---- Python-facing helpers (called by Vcpu in api.pxi) ----

cdef uint32_t hook_new_owner():
    global hook_owner_next
    hook_owner_next += 1
    return hook_owner_next

cdef void hook_recompute(Cpu* c) noexcept nogil:
    cdef uint32_t i
    cdef Mach* m = c.m
    m.hook_kinds = 0
    c.hook_mem = 0
    for i in range(m.n_hooks):
        m.hook_kinds |= m.hooks[i].kinds & (HK_CODE | HK_FETCH)
        if m.hooks[i].owner == c.hook_owner:
            c.hook_mem |= m.hooks[i].kinds & (HK_READ | HK_WRITE)

cdef uint32_t hook_kinds_of(kinds) except 0:
    cdef uint32_t k = 0
    if isinstance(kinds, str):
        kinds = kinds.replace(",", " ").split()
    for name in kinds:
        if name in ("read", "r"):
            k |= HK_READ
        elif name in ("write", "w"):
            k |= HK_WRITE
        elif name in ("fetch", "x", "exec"):
            k |= HK_FETCH
        else:
            raise ValueError("memory hook kinds are read, write, fetch (got %r)" % (name,))
    if k == 0:
        raise ValueError("no memory hook kind given")
    return k

cdef uint32_t hook_add(Cpu* c, uint64_t begin, uint64_t end, uint32_t kinds) except 0:
    cdef Mach* m = c.m
    cdef Hook* h
    cdef uint32_t cap
    if m.n_hooks == m.hooks_cap:
        cap = 8 if m.hooks_cap == 0 else 2 * m.hooks_cap
        h = <Hook*>realloc(m.hooks, cap * sizeof(Hook))
        if h == NULL:
            raise MemoryError()
        m.hooks = h
        m.hooks_cap = cap
    m.next_hook_id += 1
    h = &m.hooks[m.n_hooks]
    h.begin = begin
    h.end = end
    h.id = m.next_hook_id
    h.kinds = kinds
    h.owner = c.hook_owner
    m.n_hooks += 1
    hook_changed(c, kinds)
    return h.id

cdef void hook_changed(Cpu* c, uint32_t kinds) noexcept nogil:
    hook_recompute(c)
    if kinds & (HK_CODE | HK_FETCH):
        cache_flush(c.m)          # blocks get (or lose) their hook uops
    if kinds & (HK_READ | HK_WRITE):
        tlb_flush(c)              # pages get (or regain) their fast-path tags

cdef int hook_remove(Cpu* c, uint32_t hid) noexcept nogil:
    cdef Mach* m = c.m
    cdef uint32_t i, kinds
    for i in range(m.n_hooks):
        if m.hooks[i].id == hid and m.hooks[i].owner == c.hook_owner:
            kinds = m.hooks[i].kinds
            m.n_hooks -= 1
            if i < m.n_hooks:
                memmove(&m.hooks[i], &m.hooks[i + 1], (m.n_hooks - i) * sizeof(Hook))
            hook_changed(c, kinds)
            return 1
    return 0

cdef void hook_drop_owner(Mach* m, uint32_t owner) noexcept nogil:
    """A vCPU goes away: its hooks too (blocks keep harmless hook uops)."""
    cdef uint32_t i = 0
    while i < m.n_hooks:
        if m.hooks[i].owner == owner:
            m.n_hooks -= 1
            if i < m.n_hooks:
                memmove(&m.hooks[i], &m.hooks[i + 1], (m.n_hooks - i) * sizeof(Hook))
        else:
            i += 1
    m.hook_kinds = 0
    for i in range(m.n_hooks):
        m.hook_kinds |= m.hooks[i].kinds & (HK_CODE | HK_FETCH)

cdef list hook_list(Cpu* c):
    cdef Mach* m = c.m
    cdef uint32_t i
    out = []
    for i in range(m.n_hooks):
        if m.hooks[i].owner == c.hook_owner:
            out.append((m.hooks[i].id, m.hooks[i].begin, m.hooks[i].end,
                        tuple(HOOK_KIND_NAMES[1 << j] for j in range(4) if m.hooks[i].kinds & (1 << j))))
    return out

cdef int cov_enable(Cpu* c, bint on) except -1:
    if on:
        if c.cov_map == NULL:
            c.cov_map = <uint8_t*>calloc(COV_SIZE, 1)
            if c.cov_map == NULL:
                raise MemoryError()
        if not c.hook_flags & HF_COV:
            basic_blocks_only(c.m)
            if c.m.jit != NULL:
                jit_flush(c.m)        # (compiled code updates the map only if compiled so)
        c.hook_flags |= HF_COV
    elif c.hook_flags & HF_COV:
        c.hook_flags &= ~(<uint32_t>HF_COV)
        if c.m.jit != NULL:
            jit_flush(c.m)            # (its blocks update the map: recompiled without)
    return 0


cdef class CoverageMap:
    """The vCPU's 64 KiB edge-coverage map as a writable buffer
    (numpy.frombuffer(CoverageMap, uint8) is a zero-copy view). Keeps the
    vCPU alive while exported."""
    cdef uint8_t* p
    cdef object owner
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer* buf, int flags):
        self.shape[0] = COV_SIZE
        self.strides[0] = 1
        buf.buf = self.p
        buf.obj = self
        buf.len = COV_SIZE
        buf.readonly = 0
        buf.itemsize = 1
        buf.format = "B"
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer* buf):
        pass


cdef object cov_view(Cpu* c, object owner):
    import numpy
    cdef CoverageMap cm
    if c.cov_map == NULL:
        c.cov_map = <uint8_t*>calloc(COV_SIZE, 1)
        if c.cov_map == NULL:
            raise MemoryError()
    cm = CoverageMap.__new__(CoverageMap)
    cm.p = c.cov_map
    cm.owner = owner
    return numpy.frombuffer(cm, dtype=numpy.uint8)
