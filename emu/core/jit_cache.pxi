# The native-code tier's code cache: host code for hot blocks, the entry and
# exit trampolines, links between compiled blocks, and eviction.
#
# W^X: the cache is one private anonymous mapping that is readable and
# executable, never writable and executable at once. Writing (compiling a
# block, patching a link) flips only the pages written to read+write and
# back (jit_wr_begin / jit_wr_end). A private mapping also makes a forked
# child's cache its own copy (copy-on-write), which a shared two-view
# mapping would not.
#
# Allocation is a ring after the permanent code: blocks are laid out in the
# order they are compiled, and when the ring is full the oldest code is
# evicted (its block goes back to the interpreter and may tier up again),
# never the whole cache at once. Every direct jump patched from one compiled
# block to another is a link, recorded on both blocks, so that the jump is
# pointed back at its exit stub when either block's code dies.

cdef extern from "sys/mman.h" nogil:
    int mprotect(void* addr, size_t length, int prot)
    int PROT_EXEC
    int PROT_NONE

cdef enum:
    JIT_PAGE = 4096
    JIT_CACHE_DEFAULT = 64 << 20     # bytes of host code (reserved, committed as used)
    JIT_FIXED = 2 * JIT_PAGE         # the permanent code
    JIT_MAX_BLOCK_CODE = 96 * 1024   # upper bound on one block's code

cdef inline uint32_t jit_page_lo(uint32_t off) noexcept nogil:
    return off & ~(<uint32_t>(JIT_PAGE - 1))

cdef int jit_wr_begin(Jit* j, uint32_t off, uint32_t n) noexcept nogil:
    """Make [off, off+n) of the cache writable (and not executable)."""
    cdef uint32_t lo = jit_page_lo(off), hi = jit_page_lo(off + n + JIT_PAGE - 1)
    return mprotect(j.base + lo, hi - lo, PROT_READ | PROT_WRITE)

cdef int jit_wr_end(Jit* j, uint32_t off, uint32_t n) noexcept nogil:
    """Back to executable (and not writable)."""
    cdef uint32_t lo = jit_page_lo(off), hi = jit_page_lo(off + n + JIT_PAGE - 1)
    return mprotect(j.base + lo, hi - lo, PROT_READ | PROT_EXEC)

cdef Jit* jit_new(uint32_t size, uint32_t n_blocks) noexcept nogil:
    """A code cache of `size` bytes for a block arena of n_blocks; NULL when
    the host refuses the memory."""
    cdef Jit* j = <Jit*>calloc(1, sizeof(Jit))
    cdef void* p
    if j == NULL:
        return NULL
    size = (size + JIT_PAGE - 1) & ~(<uint32_t>(JIT_PAGE - 1))
    if size < JIT_FIXED + 4 * JIT_MAX_BLOCK_CODE:
        size = JIT_FIXED + 4 * JIT_MAX_BLOCK_CODE
    p = mmap(NULL, size, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if p == MAP_FAILED:
        free(j)
        return NULL
    j.base = <uint8_t*>p
    j.size = size
    j.ring_start = JIT_FIXED
    j.head = JIT_FIXED
    j.fifo_cap = 65536
    j.fifo = <JitAlloc*>calloc(j.fifo_cap, sizeof(JitAlloc))
    j.n_blocks = n_blocks
    j.blocks = <JitBlock*>calloc(n_blocks, sizeof(JitBlock))
    j.links_cap = 4096
    j.links = <JitLink*>calloc(j.links_cap, sizeof(JitLink))
    j.free_link = -1
    if j.fifo == NULL or j.blocks == NULL or j.links == NULL:
        jit_free(j)
        return NULL
    if jit_emit_fixed(j) < 0:
        jit_free(j)
        return NULL
    return j

cdef void jit_free(Jit* j) noexcept nogil:
    if j == NULL:
        return
    if j.base != NULL:
        munmap(j.base, j.size)
    free(j.fifo)
    free(j.blocks)
    free(j.links)
    free(j)

# ---- links ----

cdef inline void jit_point(Jit* j, uint32_t site, uint32_t target) noexcept nogil:
    """Set the rel32 at site (cache offset) to jump to target (cache offset)."""
    cdef int32_t rel = <int32_t>(<int64_t>target - <int64_t>(site + 4))
    memcpy(j.base + site, &rel, 4)

cdef int jit_link(Mach* m, int32_t src, uint32_t site, int32_t dst) noexcept nogil:
    """Patch the direct exit at site (of block src) to jump straight into
    dst's compiled code. 0 on success."""
    cdef Jit* j = m.jit
    cdef int32_t li
    cdef JitLink* l
    cdef JitLink* nl
    cdef int32_t rel
    cdef uint32_t stub
    if j.blocks[src].code == 0 or j.blocks[dst].code == 0 or site < j.ring_start or site + 4 > j.size:
        return -1
    if j.free_link >= 0:
        li = j.free_link
        j.free_link = j.links[li].next_out
    else:
        if j.n_links == j.links_cap:
            nl = <JitLink*>realloc(j.links, 2 * j.links_cap * sizeof(JitLink))
            if nl == NULL:
                return -1
            j.links = nl
            j.links_cap *= 2
        li = j.n_links
        j.n_links += 1
    l = &j.links[li]
    memcpy(&rel, j.base + site, 4)
    stub = <uint32_t>(<int64_t>site + 4 + rel)       # where the jump goes today: its exit stub
    l.site = site
    l.stub = stub
    l.src = src
    l.dst = dst
    l.live = 1
    # list heads hold index + 1 (0: none), so a zeroed table is empty
    l.next_in = j.blocks[dst].in_head - 1
    j.blocks[dst].in_head = li + 1
    l.next_out = j.blocks[src].out_head - 1
    j.blocks[src].out_head = li + 1
    if jit_wr_begin(j, site, 4) != 0:
        l.live = 0
        return -1
    jit_point(j, site, j.blocks[dst].code)
    jit_wr_end(j, site, 4)
    j.n_linked += 1
    return 0

cdef void jit_unlink_block(Jit* j, int32_t bi) noexcept nogil:
    """The code of block bi is going: jumps into it go back to their stubs,
    its own links are dropped."""
    cdef JitBlock* jb = &j.blocks[bi]
    cdef int32_t li = jb.in_head - 1, nxt
    cdef JitLink* l
    while li >= 0:
        l = &j.links[li]
        nxt = l.next_in
        if l.live and l.dst == bi:
            l.live = 0
            if j.blocks[l.src].code != 0 and jit_wr_begin(j, l.site, 4) == 0:
                jit_point(j, l.site, l.stub)
                jit_wr_end(j, l.site, 4)
        li = nxt
    jb.in_head = 0
    li = jb.out_head - 1
    while li >= 0:
        l = &j.links[li]
        nxt = l.next_out
        l.live = 0
        li = nxt
    jb.out_head = 0

cdef void jit_drop_code(Jit* j, int32_t bi) noexcept nogil:
    """Block bi's compiled code is no longer used (its space is reclaimed
    when the ring comes round to it)."""
    cdef JitBlock* jb = &j.blocks[bi]
    if jb.code == 0:
        return
    jit_unlink_block(j, bi)
    j.code_bytes -= jb.size
    jb.code = 0
    jb.dispatch = 0
    j.gen += 1                    # indirect-branch tables may point at it

cdef void jit_block_dead(Mach* m, int32_t bi) noexcept nogil:
    """Called for every block that stops being valid (self-modifying code,
    a flush of the block cache): its compiled code goes with it."""
    cdef Jit* j = m.jit
    if j == NULL or bi < 0 or <uint32_t>bi >= j.n_blocks:
        return
    if j.blocks[bi].code != 0:
        jit_drop_code(j, bi)
        j.n_invalidated += 1
    j.blocks[bi].failed = 0

cdef void jit_flush(Mach* m) noexcept nogil:
    """Every compiled block goes (the block cache was flushed)."""
    cdef Jit* j = m.jit
    cdef uint32_t i
    if j == NULL:
        return
    memset(j.blocks, 0, j.n_blocks * sizeof(JitBlock))
    j.n_links = 0
    j.free_link = -1
    j.head = j.ring_start
    j.fifo_first = 0
    j.fifo_n = 0
    j.code_bytes = 0
    j.n_flushes += 1
    j.gen += 1

# ---- the ring ----

cdef void jit_evict_oldest(Mach* m) noexcept nogil:
    cdef Jit* j = m.jit
    cdef JitAlloc* a = &j.fifo[j.fifo_first]
    cdef JitBlock* jb
    if a.blk >= 0 and <uint32_t>a.blk < j.n_blocks:
        jb = &j.blocks[a.blk]
        if jb.code != 0 and jb.serial == a.serial:
            jit_drop_code(j, a.blk)
            j.n_evicted += 1
            m.blocks[a.blk].exec_count = 0
    j.fifo_first = (j.fifo_first + 1) % j.fifo_cap
    j.fifo_n -= 1

cdef int64_t jit_alloc(Mach* m, uint32_t n) noexcept nogil:
    """Room for n bytes of block code at the ring's head, evicting the oldest
    code in the way. Returns the offset, or -1."""
    cdef Jit* j = m.jit
    cdef JitAlloc* a
    cdef uint32_t start
    if n > j.size - j.ring_start:
        return -1
    if j.fifo_n == j.fifo_cap:
        jit_evict_oldest(m)
    if j.head + n > j.size:
        # wrap: everything still between the head and the end goes first
        while j.fifo_n and j.fifo[j.fifo_first].off >= j.head:
            jit_evict_oldest(m)
        j.head = j.ring_start
    start = j.head
    while j.fifo_n:
        a = &j.fifo[j.fifo_first]
        if a.off >= start + n or a.off + a.size <= start:
            break
        jit_evict_oldest(m)
    return start

cdef void jit_commit(Jit* j, int32_t bi, uint32_t off, uint32_t used) noexcept nogil:
    """The block's code occupies [off, off+used): record it in the FIFO."""
    cdef JitAlloc* a = &j.fifo[(j.fifo_first + j.fifo_n) % j.fifo_cap]
    j.serial += 1
    a.off = off
    a.size = used
    a.serial = j.serial
    a.blk = bi
    j.fifo_n += 1
    j.blocks[bi].serial = j.serial
    j.head = (off + used + 15) & ~(<uint32_t>15)
