# The code cache: one budget in bytes for everything translation keeps
# (blocks, their uops, and the native tier's code), recycled oldest first.
#
# Uops live in a ring: each translation takes a contiguous region at the head;
# when the budget or the ring is full, the oldest regions are evicted from the
# tail (a round frees at least 1/32 of the budget), their blocks retired. A
# big program (a compiler) thus keeps its working set instead of emptying the
# whole cache and retranslating it, as a global flush would make it do.
#
# Every block that dies (evicted, invalidated by a write to its code, dropped
# by a flush) goes through blk_retire(), which unlinks it from the hash, the
# per-page lists and every chain into it or out of it, then frees its slot.
# A block keeps its index (and its uops their place) while it lives, so
# per-block side data can live in arrays indexed by it.

cdef enum:
    CC_MIN_BYTES = 64 << 10
    CC_ROUND_DIV = 32             # an eviction round frees at least budget / 32

DEFAULT_CODE_CACHE = 256 << 20    # bytes: holds gcc's cc1 working set (perf/RESULTS.md)
MIN_CODE_CACHE = CC_MIN_BYTES


# Large zeroed arrays (the block cache's and PhysMachine's per-page ones)
# come straight from mmap, never from malloc's heap: the kernel's zero pages
# are committed only when touched, so a machine made at every guest execve
# costs the pages it uses. (calloc gives that only while glibc serves the
# size by mmap: once a process has freed such a block, glibc raises its
# mmap threshold up to 32 MiB and calloc then clears heap memory, touching
# every page.) The mapping's length sits in a header page.
cdef extern from *:
    """
    #include <sys/mman.h>
    #include <stddef.h>
    static void* emu_zalloc(size_t n, size_t size) {
        size_t bytes, hdr = 4096;
        if (size && n > ((size_t)-1 - hdr) / size)
            return NULL;
        bytes = n * size + hdr;
        void* p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        *(size_t*)p = bytes;
        return (char*)p + hdr;
    }
    static void emu_zfree(void* q) {
        if (q) {
            char* p = (char*)q - 4096;
            munmap(p, *(size_t*)p);
        }
    }
    """
    void* emu_zalloc(size_t n, size_t size) noexcept nogil
    void emu_zfree(void* p) noexcept nogil


cdef inline uint64_t blk_key(uint64_t pa, uint64_t vrip, uint32_t mode) noexcept nogil:
    """A block's identity for the retranslation count (never 0 or 1)."""
    cdef uint64_t k = pa * 0x9e3779b97f4a7c15ULL ^ (vrip + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL ^ mode
    k ^= k >> 31
    return k | 2


cdef int cc_init(Mach* m, uint64_t budget) noexcept nogil:
    """Allocate the code cache for a budget of `budget` bytes (0 on success).
    The arrays are calloc'ed: the host commits only what gets used."""
    cdef uint64_t nb, nh = 1024
    if budget < CC_MIN_BYTES:
        budget = CC_MIN_BYTES
    m.cc_budget = budget
    m.uop_cap = <uint32_t>min(budget // sizeof(Uop), <uint64_t>0x7ffffff0)
    # (blocks average 500-600 bytes with their uops: cc1 has 125,000 in 65 MB;
    # when slots run out first, the oldest blocks are evicted all the same)
    nb = budget // 512 + 2
    m.max_blocks = <uint32_t>min(nb, <uint64_t>0x3ffffff0)
    while nh < m.max_blocks // 2 and nh < (<uint64_t>1 << 26):
        nh <<= 1
    m.hash_mask = <uint32_t>(nh - 1)
    m.rec_cap = m.uop_cap // 2 + 4
    m.blocks = <Block*>emu_zalloc(m.max_blocks, sizeof(Block))
    m.uops = <Uop*>emu_zalloc(m.uop_cap + 1, sizeof(Uop))
    # the hash heads (and PhysMachine's per-page block lists) are stored
    # complemented, so "no block" (-1) is 0 and calloc's untouched pages
    # serve as empty: a new machine (every guest execve) commits only the
    # pages it uses instead of page-faulting megabytes of 0xff in
    m.block_hash = <int32_t*>emu_zalloc(nh, sizeof(int32_t))
    m.cc_recs = <CcRec*>malloc(m.rec_cap * sizeof(CcRec))
    m.gone_cap = 1024
    m.gone_keys = <uint64_t*>calloc(m.gone_cap, sizeof(uint64_t))
    m.ibtc = <IbtcEntry*>calloc(IBTC_SIZE, sizeof(IbtcEntry))
    if m.ibtc == NULL or m.blocks == NULL or m.uops == NULL or m.block_hash == NULL or m.cc_recs == NULL or m.gone_keys == NULL:
        return -1
    m.free_slot = -1
    return 0


cdef void cc_free(Mach* m) noexcept nogil:
    emu_zfree(m.blocks)
    emu_zfree(m.uops)
    emu_zfree(m.block_hash)
    free(m.cc_recs)
    free(m.gone_keys)
    free(m.ibtc)
    m.ibtc = NULL
    m.blocks = NULL
    m.uops = NULL
    m.block_hash = NULL
    m.cc_recs = NULL
    m.gone_keys = NULL


cdef inline uint64_t cc_bytes(Mach* m) noexcept nogil:
    """Bytes of the budget in use: the ring's occupied uops (dead blocks'
    regions included until the tail passes them), live blocks, and the native
    tier's compiled code."""
    return (<uint64_t>m.uop_used * sizeof(Uop) + <uint64_t>m.n_live * sizeof(Block)
            + (m.jit.code_bytes if m.jit != NULL else 0))


cdef uint32_t jit_cache_bytes(uint64_t budget) noexcept nogil:
    """The native tier's share of the budget: a quarter (its own ring evicts
    the oldest code within it; the uop ring makes room for what it holds)."""
    cdef uint64_t n = budget // 4
    if n > 0x40000000:
        n = 0x40000000
    return <uint32_t>n


# ---- keys of evicted blocks (open addressing; 0 empty, 1 deleted) ----

cdef void gone_rehash(Mach* m, uint64_t cap) noexcept nogil:
    cdef uint64_t* old = m.gone_keys
    cdef uint64_t oldcap = m.gone_cap, i, k, j
    cdef uint64_t* nk = <uint64_t*>calloc(cap, sizeof(uint64_t))
    if nk == NULL:
        return                    # (statistics only: keep the old table)
    m.gone_keys = nk
    m.gone_cap = cap
    m.gone_n = 0
    for i in range(oldcap):
        k = old[i]
        if k > 1:
            j = (k >> 7) & (cap - 1)
            while nk[j] != 0:
                j = (j + 1) & (cap - 1)
            nk[j] = k
            m.gone_n += 1
    free(old)


cdef void gone_add(Mach* m, uint64_t key) noexcept nogil:
    cdef uint64_t j, cap
    if (m.gone_n + 1) * 2 > m.gone_cap:
        gone_rehash(m, m.gone_cap * 2)
        if (m.gone_n + 1) * 2 > m.gone_cap:
            return
    cap = m.gone_cap
    j = (key >> 7) & (cap - 1)
    while m.gone_keys[j] > 1:
        if m.gone_keys[j] == key:
            return
        j = (j + 1) & (cap - 1)
    if m.gone_keys[j] == 0:
        m.gone_n += 1             # (a reused deleted slot is already counted)
    m.gone_keys[j] = key


cdef int gone_take(Mach* m, uint64_t key) noexcept nogil:
    """1 when key was evicted (and forget it): its translation is a retranslation."""
    cdef uint64_t cap = m.gone_cap, j = (key >> 7) & (cap - 1)
    while m.gone_keys[j] != 0:
        if m.gone_keys[j] == key:
            m.gone_keys[j] = 1
            return 1
        j = (j + 1) & (cap - 1)
    return 0


# ---- per-page block lists and chain edges ----

cdef inline void page_link(Mach* m, int32_t bi, int k, uint64_t pn) noexcept nogil:
    cdef Block* b = &m.blocks[bi]
    cdef int32_t head = ~m.page_blocks[pn]
    b.page_next[k] = head
    b.page_prev[k] = -1
    if head != -1:
        m.blocks[head >> 1].page_prev[head & 1] = 2 * bi + k
    m.page_blocks[pn] = ~(2 * bi + k)


cdef inline void page_unlink(Mach* m, int32_t bi, int k, uint64_t pn) noexcept nogil:
    cdef Block* b = &m.blocks[bi]
    cdef int32_t nxt = b.page_next[k], prv = b.page_prev[k]
    if prv == -1:
        m.page_blocks[pn] = ~nxt
    else:
        m.blocks[prv >> 1].page_next[prv & 1] = nxt
    if nxt != -1:
        m.blocks[nxt >> 1].page_prev[nxt & 1] = prv
    if m.page_blocks[pn] == 0:
        m.code_page[pn] = 0       # no code left: writes may take the fast path again


cdef inline void edge_remove(Mach* m, int32_t a, int s) noexcept nogil:
    """Take slot s of block a out of its target's list of incoming edges."""
    cdef Block* b = &m.blocks[a]
    cdef int32_t nxt = b.edge_next[s], prv = b.edge_prev[s]
    if prv == -1:
        m.blocks[b.chain_blk[s]].in_head = nxt
    else:
        m.blocks[prv >> 1].edge_next[prv & 1] = nxt
    if nxt != -1:
        m.blocks[nxt >> 1].edge_prev[nxt & 1] = prv


cdef void chain_link(Mach* m, int32_t a, int s, int32_t t, uint64_t rip, uint32_t epoch) noexcept nogil:
    """Chain slot s of block a to block t (entered at rip under epoch). The
    edge is recorded in t's incoming list, so retiring t unlinks it."""
    cdef Block* b = &m.blocks[a]
    cdef Block* tb = &m.blocks[t]
    if b.chain_blk[s] >= 0:
        edge_remove(m, a, s)
    b.chain_rip[s] = rip
    b.chain_epoch[s] = epoch
    b.chain_blk[s] = t
    b.edge_prev[s] = -1
    b.edge_next[s] = tb.in_head
    if tb.in_head != -1:
        m.blocks[tb.in_head >> 1].edge_prev[tb.in_head & 1] = 2 * a + s
    tb.in_head = 2 * a + s


cdef inline void chain_clear(Block* b, int s) noexcept nogil:
    b.chain_rip[s] = NO_PAGE
    b.chain_blk[s] = -1


cdef inline uint32_t hash_pa(Mach* m, uint64_t pa, uint32_t mode) noexcept nogil:
    return <uint32_t>(((pa >> 2) ^ (pa >> 14) ^ (mode * 0x9e37)) & m.hash_mask)


cdef void blk_unlink_hash(Mach* m, int32_t bi) noexcept nogil:
    cdef Block* b = &m.blocks[bi]
    cdef int32_t* head = &m.block_hash[hash_pa(m, b.paddr, b.mode)]
    cdef int32_t cur = ~head[0]             # (heads are stored complemented)
    if cur == bi:
        head[0] = ~b.hash_next
        return
    while cur != -1:
        if m.blocks[cur].hash_next == bi:
            m.blocks[cur].hash_next = b.hash_next
            return
        cur = m.blocks[cur].hash_next


cdef void blk_stop(Block* b, Mach* m) noexcept nogil:
    """The running block dies: its remaining uops become uop_restart, so the
    next instruction is fetched afresh."""
    cdef Uop* u = &m.uops[b.uop_start]
    while u.fn != NULL:           # (hook uops make blocks longer than ninsn + 1)
        u.fn = uop_restart
        u += 1


cdef void blk_retire(Mach* m, int32_t bi) noexcept nogil:
    """Block bi dies (evicted, invalidated or flushed): the one place every
    block goes through at the end. Its index may be reused afterwards; its
    uops stay in place until the ring's tail passes them (the running block
    keeps executing its uop_restart tail)."""
    cdef Block* b = &m.blocks[bi]
    cdef int32_t e, nxt, p
    cdef int s
    if not b.valid:
        return
    b.valid = 0
    m.n_retired += 1
    m.n_live -= 1
    jit_block_dead(m, bi)         # its compiled code, and every link into it, go too
    blk_unlink_hash(m, bi)
    page_unlink(m, bi, 0, b.paddr >> 12)
    if b.page2 != NO_PAGE:
        page_unlink(m, bi, 1, b.page2 >> 12)
    # predecessors chained into this block forget it
    e = b.in_head
    while e != -1:
        p = e >> 1
        s = e & 1
        nxt = m.blocks[p].edge_next[s]
        chain_clear(&m.blocks[p], s)
        e = nxt
    b.in_head = -1
    for s in range(2):
        if b.chain_blk[s] >= 0:
            edge_remove(m, bi, s)
            chain_clear(b, s)
    if m.running != NULL and m.running.cur_block == b:
        blk_stop(b, m)
    b.hash_next = m.free_slot
    m.free_slot = bi


# ---- the ring ----

cdef inline uint32_t cc_room(Mach* m) noexcept nogil:
    """Contiguous free uops at the head."""
    if m.uop_used == 0:
        return m.uop_cap - m.uop_head
    if m.uop_head > m.uop_tail:
        return m.uop_cap - m.uop_head
    return m.uop_tail - m.uop_head       # (head == tail: full)


cdef void cc_evict_one(Mach* m) noexcept nogil:
    """Recycle the oldest region of the ring (its block, if it still lives there)."""
    cdef CcRec* r = &m.cc_recs[m.rec_tail]
    cdef Block* b
    if r.blk >= 0:
        b = &m.blocks[r.blk]
        if b.valid and b.uop_start == m.uop_tail:
            gone_add(m, blk_key(b.paddr, b.vrip, b.mode))
            blk_retire(m, r.blk)
            m.n_evicted += 1
    m.uop_tail += r.n
    if m.uop_tail >= m.uop_cap:
        m.uop_tail = 0
    m.uop_used -= r.n
    m.rec_tail += 1
    if m.rec_tail == m.rec_cap:
        m.rec_tail = 0
    m.rec_n -= 1
    if m.uop_used == 0:
        m.uop_head = 0
        m.uop_tail = 0


cdef void cc_make_room(Mach* m, uint32_t need) noexcept nogil:
    """Make `need` contiguous uops free at the head, within the byte budget,
    with a free block slot: evict the oldest regions, a round at a time."""
    cdef uint64_t target, freed
    cdef uint32_t n
    while True:
        if m.uop_head > m.uop_tail and m.uop_cap - m.uop_head < need and m.uop_used:
            # not enough room before the ring's end: skip it (a region of no block)
            n = m.uop_cap - m.uop_head
            m.cc_recs[m.rec_head].blk = -1
            m.cc_recs[m.rec_head].n = n
            m.rec_head += 1
            if m.rec_head == m.rec_cap:
                m.rec_head = 0
            m.rec_n += 1
            m.uop_used += n
            m.uop_head = 0
            continue
        if (cc_room(m) >= need
                and cc_bytes(m) + <uint64_t>need * sizeof(Uop) + sizeof(Block) <= m.cc_budget
                and (m.free_slot != -1 or m.n_blocks < m.max_blocks)
                and m.rec_n + 2 < m.rec_cap):
            return
        if m.rec_n == 0:
            return                # (cannot happen with the minimum budget)
        # an eviction round: the oldest part of the cache goes
        m.n_evict_rounds += 1
        target = m.cc_budget // CC_ROUND_DIV
        freed = 0
        while m.rec_n and freed < target:
            freed += <uint64_t>m.cc_recs[m.rec_tail].n * sizeof(Uop)
            cc_evict_one(m)


cdef int32_t cc_new_block(Mach* m, uint32_t nuops) noexcept nogil:
    """Take a block slot for the translation just written at the head
    (nuops uops, after cc_make_room) and record its region."""
    cdef int32_t bi
    if m.free_slot != -1:
        bi = m.free_slot
        m.free_slot = m.blocks[bi].hash_next
    else:
        bi = <int32_t>m.n_blocks
        m.n_blocks += 1
    m.cc_recs[m.rec_head].blk = bi
    m.cc_recs[m.rec_head].n = nuops
    m.rec_head += 1
    if m.rec_head == m.rec_cap:
        m.rec_head = 0
    m.rec_n += 1
    m.uop_head += nuops
    if m.uop_head >= m.uop_cap:
        m.uop_head = 0
    m.uop_used += nuops
    m.n_live += 1
    return bi


cdef void cache_flush(Mach* m) noexcept nogil:
    """Drop every block (the VMM asked, or code hooks changed): each is
    retired, and the ring starts empty."""
    cdef uint32_t i
    cdef Block* b
    for i in range(m.n_blocks):
        b = &m.blocks[i]
        if b.valid:
            gone_add(m, blk_key(b.paddr, b.vrip, b.mode))
            blk_retire(m, <int32_t>i)
    # the slots are all free again: hand them out from 0 (the running block's
    # uops, if any, stay readable until the next translation)
    m.n_blocks = 0
    m.free_slot = -1
    m.uop_head = 0
    m.uop_tail = 0
    m.uop_used = 0
    m.rec_head = 0
    m.rec_tail = 0
    m.rec_n = 0
    m.n_flushes += 1
    jit_flush(m)
