# The MMU: 4-level paging walked in software over guest physical RAM
# (SDM Vol. 3A, chapter 4), and a direct-mapped software TLB that holds
# host addresses for the fast path, with read, write and execute kept apart.


cdef inline void page_dirty(Mach* m, uint64_t page) noexcept nogil:
    """Page `page` of RAM was (or may be about to be) written: recorded once
    in the dirty bytes and the list take_dirty() reads (snapshots)."""
    if not m.dirty[page]:
        m.dirty[page] = 1
        m.dirty_list[m.n_dirty] = <uint32_t>page
        m.n_dirty += 1

cdef inline int is_canonical(uint64_t va) noexcept nogil:
    return <uint64_t>((<int64_t>(va << 16)) >> 16) == va

cdef inline int raise_exc(Cpu* c, uint32_t vec, uint64_t err, int has_err) noexcept nogil:
    c.exc_vector = vec
    c.exc_error = err
    c.exc_has_error = has_err
    return R_EXC

cdef inline int raise_gp0(Cpu* c) noexcept nogil:
    return raise_exc(c, EXC_GP, 0, 1)

cdef inline int raise_ud(Cpu* c) noexcept nogil:
    return raise_exc(c, EXC_UD, 0, 0)

cdef inline int raise_pf(Cpu* c, uint64_t va, uint64_t err) noexcept nogil:
    c.cr2 = va
    return raise_exc(c, EXC_PF, err, 1)

cdef inline uint64_t* pte_ptr(Mach* m, uint64_t pa) noexcept nogil:
    if pa + 8 > m.ram_size:
        return NULL
    return <uint64_t*>(m.ram + pa)

cdef int mmu_walk(Cpu* c, uint64_t va, int acc, uint64_t* pa_out, uint32_t* perm_out) noexcept nogil:
    """Translate va for an access of kind acc. On success *pa_out is the physical
    address and *perm_out holds ACC bits allowed: 1 read, 2 write, 4 exec, 8 dirty.
    On failure raises #PF (or #GP for a non-canonical address) and returns -1."""
    cdef uint64_t e, addr, err, psize
    cdef uint64_t* p
    cdef uint64_t* walked[4]
    cdef int level, n = 0
    cdef int user_ok = 1, write_ok = 1, exec_ok = 1
    cdef int user = c.cpl == 3
    cdef uint64_t rsvd_nx
    if not (c.cr0 & CR0_PG):
        pa_out[0] = va & 0xffffffffULL if not (c.efer & EFER_LMA) else va
        perm_out[0] = 1 | 2 | 4 | 8
        return 0
    if not is_canonical(va):
        c.nc_fault = 1            # #SS instead when the access was through SS (run.pxi)
        c.nc_addr = va
        raise_gp0(c)
        return -1
    rsvd_nx = 0 if (c.efer & EFER_NXE) else PTE_NX
    err = (PFE_W if acc == ACC_W else 0) | (PFE_U if user else 0)
    if acc == ACC_X and (c.efer & EFER_NXE or c.cr4 & CR4_SMEP):
        err |= PFE_I
    addr = c.cr3 & PTE_ADDR
    level = 4
    while True:
        p = pte_ptr(c.m, addr + ((va >> (9 * level)) & 0xff8))
        if p == NULL:
            raise_pf(c, va, err)
            return -1
        e = p[0]
        if not (e & PTE_P):
            raise_pf(c, va, err)
            return -1
        # reserved: XD without EFER.NXE, PS in a PML4E, address bits 51..48 (MAXPHYADDR 48)
        if e & rsvd_nx or (level == 4 and e & PTE_PS) or e & 0x000f000000000000ULL:
            raise_pf(c, va, err | PFE_P | PFE_RSVD)
            return -1
        walked[n] = p
        n += 1
        if not (e & PTE_RW):
            write_ok = 0
        if not (e & PTE_US):
            user_ok = 0
        if e & PTE_NX and not rsvd_nx:
            exec_ok = 0
        if level == 1 or (e & PTE_PS and level <= 3):
            break
        addr = e & PTE_ADDR
        level -= 1
    psize = <uint64_t>1 << (3 + 9 * level)
    if level > 1:
        # large page: bits 12..(page shift - 1) of the frame (except PAT bit 12) must be zero
        if e & (psize - 1) & PTE_ADDR & ~(<uint64_t>0x1000):
            raise_pf(c, va, err | PFE_P | PFE_RSVD)
            return -1
        c.tlb_large = 1           # the TLB may now hold 4 KiB slices of a large page
    # permission checks (SDM 4.6)
    if user:
        if not user_ok or (acc == ACC_W and not write_ok) or (acc == ACC_X and not exec_ok):
            raise_pf(c, va, err | PFE_P)
            return -1
    else:
        if acc == ACC_W and not write_ok and (c.cr0 & CR0_WP):
            raise_pf(c, va, err | PFE_P)
            return -1
        if acc == ACC_X and (not exec_ok or (user_ok and c.cr4 & CR4_SMEP)):
            raise_pf(c, va, err | PFE_P)
            return -1
        if acc != ACC_X and user_ok and c.cr4 & CR4_SMAP and not (c.rflags & F_AC):
            raise_pf(c, va, err | PFE_P)
            return -1
    # accessed and dirty bits (SDM 4.8)
    for level in range(n):
        walked[level][0] |= PTE_A
    if acc == ACC_W:
        walked[n - 1][0] |= PTE_D
    pa_out[0] = (e & PTE_ADDR & ~(psize - 1)) | (va & (psize - 1))
    perm_out[0] = 1 | (2 if write_ok else 0) | (4 if exec_ok else 0) | (8 if walked[n - 1][0] & PTE_D else 0)
    if e & PTE_G and c.cr4 & CR4_PGE:
        perm_out[0] |= 16         # a global translation: kept across CR3 loads (SDM 4.10.2.4)
    if not user and not (c.cr0 & CR0_WP):
        perm_out[0] |= 2
    if not user and user_ok and c.cr4 & CR4_SMAP:
        if c.rflags & F_AC:
            perm_out[0] |= 32     # allowed only while AC stays set (tlb_smap_ac_cleared)
        else:
            perm_out[0] &= ~(<uint32_t>3)
    if not user and user_ok and c.cr4 & CR4_SMEP:
        perm_out[0] &= ~(<uint32_t>4)
    return 0

cdef inline void epoch_bump(Cpu* c) noexcept nogil:
    """A new address-space epoch for the current PCID only. Epochs are
    unique across the machine's vCPUs, because blocks (and their chain
    links) are shared."""
    c.m.epoch_counter += 1
    c.jc_epoch = c.m.epoch_counter
    c.slot_epoch[c.pcid_slot] = c.jc_epoch

cdef inline void new_epoch(Cpu* c) noexcept nogil:
    """Address translation changed, for every PCID: virtual-RIP cache
    entries and chain links made before now are stale, those made under
    other PCIDs too (their slots take a new epoch when next current)."""
    memset(c.slot_epoch, 0, sizeof(c.slot_epoch))
    epoch_bump(c)

cdef void tlb_flush(Cpu* c) noexcept nogil:
    cdef int i
    for i in range(TLB_SIZE):
        c.tlb[i].tag_r = TLB_INVALID
        c.tlb[i].tag_w = TLB_INVALID
        c.tlb[i].tag_x = TLB_INVALID
    c.tlb_large = 0
    c.n_ac_fill = 0
    new_epoch(c)
    c.n_tlb_flushes += 1

cdef void tlb_smap_ac_cleared(Cpu* c) noexcept nogil:
    """RFLAGS.AC went from 1 to 0 with CR4.SMAP set: the supervisor read and
    write entries for user pages that AC allowed (SDM 4.6.1) must go. They
    are the entries tlb_fill listed in ac_fill; their data tags go, the
    fetch tags stay (AC does not govern instruction fetches, SMEP does), so
    block lookups and chain links stay valid. Linux brackets every user copy
    with STAC/CLAC: a whole-TLB flush there cost more than the copy."""
    cdef uint32_t i
    cdef TlbEntry* e
    if c.n_ac_fill > AC_FILLS:
        tlb_flush(c)
        return
    for i in range(c.n_ac_fill):
        e = &c.tlb[c.ac_fill[i]]
        e.tag_r = TLB_INVALID
        e.tag_w = TLB_INVALID
    c.n_ac_fill = 0

cdef void tlb_flush_nonglobal(Cpu* c) noexcept nogil:
    """A CR3 load: every translation goes except the global ones (SDM
    4.10.4.1; an entry's ppage bit 0 marks it global)."""
    cdef int i
    for i in range(TLB_SIZE):
        if not (c.tlb[i].ppage & 1):
            c.tlb[i].tag_r = TLB_INVALID
            c.tlb[i].tag_w = TLB_INVALID
            c.tlb[i].tag_x = TLB_INVALID
    new_epoch(c)
    c.n_tlb_flushes += 1

# ---- PCIDs (SDM 4.10.1, 4.10.4) ----
# With CR4.PCIDE set, CR3[11:0] is the current PCID and the TLB keeps the
# translations of other PCIDs across MOV to CR3. Each of the PCID_SLOTS most
# recently used PCIDs has a slot, and an entry's tags carry its slot in bits
# 1..4 (Cpu.tlbm = slot << 1 | supervisor), so one compare in the fast path
# (and in compiled code, which ORs Cpu.tlbm in when the block's mode has
# MODE_PCID) matches page, privilege and PCID together. A PCID with no slot
# takes the least recently used one, whose entries go first. Each slot also
# keeps the jc_epoch of its address space, so the block lookups and chain
# links made under a PCID are used again when it comes back, provided no
# block was retired meanwhile: those caches name blocks by index and check
# only the block's RIP, mode and validity, which a recycled index reused for
# another process's code at the same RIP would pass. Global
# translations are looked up by slot like the others (a miss under another
# PCID walks again and finds the same global page); all invalidations that
# the SDM requires to reach them do.

cdef inline uint32_t tlb_entry_slot(TlbEntry* e) noexcept nogil:
    """The slot of an entry's translation, or PCID_SLOTS when it holds none
    (all the valid tags of an entry are equal: tlb_fill)."""
    cdef uint64_t t = e.tag_r
    if t == TLB_INVALID:
        t = e.tag_x
        if t == TLB_INVALID:
            t = e.tag_w
            if t == TLB_INVALID:
                return PCID_SLOTS
    return <uint32_t>(t >> 1) & (PCID_SLOTS - 1)

cdef void tlb_flush_slot(Cpu* c, uint32_t slot) noexcept nogil:
    """Invalidate the non-global translations of one slot's PCID (MOV to
    CR3 without bit 63, INVPCID single-context, a slot handed to another
    PCID); the PCID's block lookups go with them."""
    cdef int i
    cdef TlbEntry* e
    for i in range(TLB_SIZE):
        e = &c.tlb[i]
        if not (e.ppage & 1) and tlb_entry_slot(e) == slot:
            e.tag_r = TLB_INVALID
            e.tag_w = TLB_INVALID
            e.tag_x = TLB_INVALID
    c.slot_epoch[slot] = 0
    if slot == c.pcid_slot:
        epoch_bump(c)
    c.n_tlb_flushes += 1

cdef inline void tlb_set_mode(Cpu* c) noexcept nogil:
    c.tlbm = (<uint64_t>c.pcid_slot << 1) | (0 if c.cpl == 3 else 1)

cdef uint32_t pcid_find(Cpu* c, uint32_t pcid) noexcept nogil:
    """The slot holding pcid's translations, or PCID_SLOTS."""
    cdef uint32_t s
    for s in range(PCID_SLOTS):
        if c.slot_pcid[s] == pcid:
            return s
    return PCID_SLOTS

cdef void pcid_load(Cpu* c, uint32_t pcid, int keep) noexcept nogil:
    """MOV to CR3 with CR4.PCIDE set: pcid becomes current; its cached
    translations stay when keep (CR3 bit 63, SDM 4.10.4.1), else its
    non-global ones are invalidated. Other PCIDs' translations stay."""
    cdef uint32_t s = pcid_find(c, pcid), i
    c.slot_retired[c.pcid_slot] = c.m.n_retired      # (the slot being left)
    if s == PCID_SLOTS:
        keep = 1                               # (the new slot starts empty: nothing more to drop)
        s = 0
        for i in range(1, PCID_SLOTS):        # a free slot, else the least recently used
            if c.slot_pcid[i] == PCID_NONE:
                s = i
                break
            if s == 0 or c.slot_used[i] < c.slot_used[s]:
                s = i
        if c.slot_pcid[s] != PCID_NONE:
            c.n_pcid_evictions += 1
        tlb_flush_slot(c, s)                   # (its global entries may stay: valid under any PCID)
        c.slot_pcid[s] = pcid
    elif keep:
        c.n_pcid_kept += 1
    c.slot_clock += 1
    c.slot_used[s] = c.slot_clock
    c.pcid_slot = s
    tlb_set_mode(c)
    if not keep:
        tlb_flush_slot(c, s)
    if c.slot_epoch[s] == 0 or c.slot_retired[s] != c.m.n_retired:
        epoch_bump(c)                          # (blocks retired since: their indices may name other code)
    else:
        c.jc_epoch = c.slot_epoch[s]

cdef void pcid_reset(Cpu* c) noexcept nogil:
    """Rebuild the PCID state from CR3 and CR4 with an empty TLB (reset, a
    restored state, the API setting CR3 or CR4): slot 0 is PCID 0, the only
    PCID while CR4.PCIDE is clear."""
    cdef uint32_t s, pcid = <uint32_t>(c.cr3 & 0xfff) if c.cr4 & CR4_PCIDE else 0
    for s in range(PCID_SLOTS):
        c.slot_pcid[s] = PCID_NONE
        c.slot_used[s] = 0
    c.slot_pcid[0] = 0
    c.pcid_slot = 0
    if pcid:
        c.slot_pcid[1] = pcid
        c.pcid_slot = 1
    c.mode = (c.mode & ~(<uint32_t>MODE_PCID)) | (MODE_PCID if c.cr4 & CR4_PCIDE else 0)
    tlb_set_mode(c)
    new_epoch(c)

cdef void tlb_flush_page(Cpu* c, uint64_t va) noexcept nogil:
    cdef TlbEntry* e = &c.tlb[(va >> 12) & (TLB_SIZE - 1)]
    e.tag_r = TLB_INVALID
    e.tag_w = TLB_INVALID
    e.tag_x = TLB_INVALID
    new_epoch(c)

cdef void tlb_drop_writes_to(Cpu* c, uint64_t ppage) noexcept nogil:
    cdef int i
    for i in range(TLB_SIZE):
        if (c.tlb[i].ppage & ~(<uint64_t>1)) == ppage:
            c.tlb[i].tag_w = TLB_INVALID

cdef void tlb_drop_all_writes(Cpu* c) noexcept nogil:
    cdef int i
    for i in range(TLB_SIZE):
        c.tlb[i].tag_w = TLB_INVALID

cdef int tlb_fill(Cpu* c, uint64_t va, int acc, TlbEntry** out, uint64_t* pa_out) noexcept nogil:
    """Walk and fill the TLB entry for va. Returns 0 with *out set when the page
    is RAM, 1 when it is not RAM (*pa_out holds the physical address, *out is
    NULL), -1 on a fault."""
    cdef uint64_t pa, ppage, page
    cdef uint32_t perm
    cdef TlbEntry* e
    c.n_tlb_misses += 1
    if mmu_walk(c, va, acc, &pa, &perm) < 0:
        return -1
    pa_out[0] = pa
    ppage = pa & ~(<uint64_t>0xfff)
    if ppage >= c.m.ram_size:
        out[0] = NULL
        return 1
    page = (va & ~(<uint64_t>0xfff)) | c.tlbm
    e = &c.tlb[(va >> 12) & (TLB_SIZE - 1)]
    if (e.ppage & ~(<uint64_t>1)) != ppage or (e.tag_r != page and e.tag_w != page and e.tag_x != page) \
            or (e.ppage & 1) != ((perm >> 4) & 1):
        e.tag_r = TLB_INVALID
        e.tag_w = TLB_INVALID
        e.tag_x = TLB_INVALID
    e.ppage = ppage | ((perm >> 4) & 1)   # bit 0: global
    e.addend = <uint64_t>(c.m.ram + ppage) - (va & ~(<uint64_t>0xfff))
    if perm & 1:
        e.tag_r = page
    if perm & 4:
        e.tag_x = page
    # A write entry needs the D bit already set (so the first write walks and
    # sets it) and no translated code on the page (so writes there go through
    # the slow path that invalidates blocks).
    if (perm & 2) and (perm & 8 or not (c.cr0 & CR0_PG)) and not c.m.code_page[ppage >> 12]:
        e.tag_w = page
        page_dirty(c.m, ppage >> 12)
    if perm & 32 and perm & 3:
        # a user page opened to the supervisor by RFLAGS.AC: listed for CLAC
        if c.n_ac_fill < AC_FILLS:
            c.ac_fill[c.n_ac_fill] = <uint16_t>((va >> 12) & (TLB_SIZE - 1))
        c.n_ac_fill += 1 if c.n_ac_fill <= AC_FILLS else 0
    if c.hook_mem:
        hook_tlb_strip(c, e, va & ~(<uint64_t>0xfff))    # memory hooks: slow path (hooks.pxi)
    out[0] = e
    return 0

# ---- physical access outside the TLB (slow path, MMIO) ----

cdef int mmio_access(Cpu* c, uint64_t pa, uint32_t sz, int write, uint64_t* val) noexcept nogil:
    """An access to a physical address that is not RAM: exit to the VMM before
    the instruction. The VMM's answers are kept in order (mmio_log); when the
    instruction runs again (mmio_resume in run.pxi) its accesses consume them
    one by one and only the next new access exits, so an instruction with any
    number of MMIO accesses (XCHG, CMPXCHG16B, MOVDQU, FXSAVE...) completes and
    no device sees an access twice."""
    cdef uint64_t* e
    cdef uint64_t tag = sz | (<uint64_t>write << 8)
    if c.mmio_replay:
        if c.mmio_cur < c.mmio_n:
            e = &c.mmio_log[c.mmio_cur][0]
            if e[0] == pa and e[1] == tag:
                c.mmio_cur += 1
                if not write:
                    val[0] = e[2]
                return 0
            c.mmio_n = c.mmio_cur     # another access than last time: the rest is stale
        if c.mmio_n >= MMIO_LOG:
            raise_gp0(c)              # more device accesses than any instruction makes
            return -1
    else:
        c.mmio_n = 0
    c.mmio_addr = pa
    c.mmio_size = sz
    c.mmio_write = write
    c.mmio_value = val[0] if write else 0
    c.mmio_pending = 0
    c.exit_reason = EXIT_MMIO
    return -1

cdef inline uint64_t load_le(const uint8_t* p, uint32_t sz) noexcept nogil:
    cdef uint8_t v8
    cdef uint16_t v16
    cdef uint32_t v32
    cdef uint64_t v64
    if sz == 8:
        memcpy(&v64, p, 8)
        return v64
    if sz == 4:
        memcpy(&v32, p, 4)
        return v32
    if sz == 2:
        memcpy(&v16, p, 2)
        return v16
    return p[0]

cdef inline void store_le(uint8_t* p, uint32_t sz, uint64_t v) noexcept nogil:
    cdef uint16_t v16
    cdef uint32_t v32
    if sz == 8:
        memcpy(p, &v, 8)
    elif sz == 4:
        v32 = <uint32_t>v
        memcpy(p, &v32, 4)
    elif sz == 2:
        v16 = <uint16_t>v
        memcpy(p, &v16, 2)
    else:
        p[0] = <uint8_t>v

cdef int mem_read_slow(Cpu* c, uint64_t va, uint32_t sz, uint64_t* out, int acc) noexcept nogil:
    cdef TlbEntry* e
    cdef TlbEntry* e2
    cdef uint64_t pa, pa2, v = 0, lo, hi
    cdef uint32_t n1
    cdef int k, k2
    cdef uint8_t tmp[16]
    k = tlb_fill(c, va, acc, &e, &pa)
    if k < 0:
        return -1
    n1 = 0x1000 - (va & 0xfff)
    if n1 >= sz:
        if c.hook_mem and hook_mem_access(c, va, sz, HK_READ, 0):
            return -1
        if k == 1:
            return mmio_access(c, pa, sz, 0, out)
        out[0] = load_le(<uint8_t*>(va + e.addend), sz)
        return 0
    # crosses a page: translate both halves before touching either
    k2 = tlb_fill(c, va + n1, acc, &e2, &pa2)
    if k2 < 0:
        return -1
    if c.hook_mem and hook_mem_access(c, va, sz, HK_READ, 0):
        return -1
    if k == 1 or k2 == 1:
        return mmio_access(c, pa, sz, 0, out)
    memcpy(tmp, c.m.ram + pa, n1)
    memcpy(tmp + n1, c.m.ram + pa2, sz - n1)
    out[0] = load_le(tmp, sz)
    return 0

cdef int mem_write_slow(Cpu* c, uint64_t va, uint32_t sz, uint64_t v) noexcept nogil:
    cdef TlbEntry* e
    cdef TlbEntry* e2
    cdef uint64_t pa, pa2
    cdef uint32_t n1
    cdef int k, k2
    cdef uint8_t tmp[16]
    k = tlb_fill(c, va, ACC_W, &e, &pa)
    if k < 0:
        return -1
    n1 = 0x1000 - (va & 0xfff)
    if n1 >= sz:
        if c.hook_mem and hook_mem_access(c, va, sz, HK_WRITE, v):
            return -1
        if k == 1:
            return mmio_access(c, pa, sz, 1, &v)
        if c.m.code_page[pa >> 12]:
            smc_invalidate_page(c, pa & ~(<uint64_t>0xfff))
        store_le(c.m.ram + pa, sz, v)
        page_dirty(c.m, pa >> 12)
        return 0
    k2 = tlb_fill(c, va + n1, ACC_W, &e2, &pa2)
    if k2 < 0:
        return -1
    if c.hook_mem and hook_mem_access(c, va, sz, HK_WRITE, v):
        return -1
    if k == 1 or k2 == 1:
        return mmio_access(c, pa, sz, 1, &v)
    if c.m.code_page[pa >> 12]:
        smc_invalidate_page(c, pa & ~(<uint64_t>0xfff))
    if c.m.code_page[pa2 >> 12]:
        smc_invalidate_page(c, pa2 & ~(<uint64_t>0xfff))
    store_le(tmp, sz, v)
    memcpy(c.m.ram + pa, tmp, n1)
    memcpy(c.m.ram + pa2, tmp + n1, sz - n1)
    page_dirty(c.m, pa >> 12)
    page_dirty(c.m, pa2 >> 12)
    return 0

# ---- the fast path ----

cdef inline int mem_read(Cpu* c, uint64_t va, uint32_t sz, uint64_t* out) noexcept nogil:
    if emu_unlikely(c.timing & TIMING_CACHE):     # the cache model (core/timing.pxi)
        cache_access(c, va)    # (out of line: untimed runs pay one test)
    cdef TlbEntry* e = &c.tlb[(va >> 12) & (TLB_SIZE - 1)]
    if e.tag_r == ((va & ~(<uint64_t>0xfff)) | c.tlbm) and (va & 0xfff) <= 0x1000 - sz:
        c.n_tlb_hits += 1
        out[0] = load_le(<uint8_t*>(va + e.addend), sz)
        return 0
    return mem_read_slow(c, va, sz, out, ACC_R)

cdef inline int mem_read_rmw(Cpu* c, uint64_t va, uint32_t sz, uint64_t* out) noexcept nogil:
    """Read half of a read-modify-write: needs write permission up front."""
    if emu_unlikely(c.timing & TIMING_CACHE):
        cache_access(c, va)    # (out of line: untimed runs pay one test)
    cdef TlbEntry* e = &c.tlb[(va >> 12) & (TLB_SIZE - 1)]
    if e.tag_w == ((va & ~(<uint64_t>0xfff)) | c.tlbm) and (va & 0xfff) <= 0x1000 - sz:
        c.n_tlb_hits += 1
        out[0] = load_le(<uint8_t*>(va + e.addend), sz)
        return 0
    return mem_read_slow(c, va, sz, out, ACC_W)

cdef inline int mem_write(Cpu* c, uint64_t va, uint32_t sz, uint64_t v) noexcept nogil:
    if emu_unlikely(c.timing & TIMING_CACHE):
        cache_access(c, va)    # (out of line: untimed runs pay one test)
    cdef TlbEntry* e = &c.tlb[(va >> 12) & (TLB_SIZE - 1)]
    if e.tag_w == ((va & ~(<uint64_t>0xfff)) | c.tlbm) and (va & 0xfff) <= 0x1000 - sz:
        c.n_tlb_hits += 1
        store_le(<uint8_t*>(va + e.addend), sz, v)
        return 0
    return mem_write_slow(c, va, sz, v)

cdef inline uint8_t* tlb_host_r(Cpu* c, uint64_t va) noexcept nogil:
    """Host pointer to va when its page is in the TLB for reads at this CPL,
    else NULL (the caller then takes mem_read, which fills the entry). Valid
    up to the end of va's page."""
    cdef TlbEntry* e = &c.tlb[(va >> 12) & (TLB_SIZE - 1)]
    if e.tag_r == ((va & ~(<uint64_t>0xfff)) | c.tlbm):
        return <uint8_t*>(va + e.addend)
    return NULL

cdef inline uint8_t* tlb_host_w(Cpu* c, uint64_t va) noexcept nogil:
    """Host pointer for writing va when its page is in the TLB for writes, else
    NULL. A write entry exists only for pages with the D bit set and no
    translated code, so bulk writes through it cannot miss self-modifying code;
    the code_page test is a second guard."""
    cdef TlbEntry* e = &c.tlb[(va >> 12) & (TLB_SIZE - 1)]
    if e.tag_w == ((va & ~(<uint64_t>0xfff)) | c.tlbm) and not c.m.code_page[e.ppage >> 12]:
        return <uint8_t*>(va + e.addend)
    return NULL

cdef int mem_read_bytes(Cpu* c, uint64_t va, uint8_t* dst, uint64_t n) noexcept nogil:
    """Copy n bytes of guest virtual memory (for SSE/state instructions and the API)."""
    cdef uint64_t v, k
    cdef uint32_t chunk
    while n:
        chunk = 8 if n >= 8 else 1
        if mem_read(c, va, chunk, &v) < 0:
            return -1
        store_le(dst, chunk, v)
        dst += chunk
        va += chunk
        n -= chunk
    return 0

cdef int mem_write_bytes(Cpu* c, uint64_t va, const uint8_t* src, uint64_t n) noexcept nogil:
    cdef uint32_t chunk
    while n:
        chunk = 8 if n >= 8 else 1
        if mem_write(c, va, chunk, load_le(src, chunk)) < 0:
            return -1
        src += chunk
        va += chunk
        n -= chunk
    return 0

cdef inline uint64_t ea_of(Cpu* c, const Uop* u) noexcept nogil:
    """Effective linear address of the memory operand."""
    cdef uint64_t a = <uint64_t>u.disp + c.r[u.base] + (c.r[u.index] << u.scale)
    if u.asz32:
        a &= 0xffffffffULL
        if c.cs32:                            # 32-bit code: the linear address wraps at 4 GiB too
            return (a + c.seg_base[u.seg]) & 0xffffffffULL
    return a + c.seg_base[u.seg]

cdef int mmu_walk_peek(Cpu* c, uint64_t va, int acc, uint64_t* pa_out, uint32_t* perm_out) noexcept nogil:
    """mmu_walk without side effects on guest memory (for the debugger-style API):
    runs on a copy of the page-table entries' A/D state by restoring them."""
    cdef uint64_t saved[4]
    cdef uint64_t* ptrs[4]
    cdef uint64_t addr = c.cr3 & PTE_ADDR, e
    cdef int level = 4, n = 0, k
    cdef uint64_t* p
    if c.cr0 & CR0_PG and is_canonical(va):
        while n < 4:
            p = pte_ptr(c.m, addr + ((va >> (9 * level)) & 0xff8))
            if p == NULL:
                break
            ptrs[n] = p
            saved[n] = p[0]
            n += 1
            e = p[0]
            if not (e & PTE_P) or level == 1 or e & PTE_PS:
                break
            addr = e & PTE_ADDR
            level -= 1
    k = mmu_walk(c, va, acc, pa_out, perm_out)
    for level in range(n):
        ptrs[level][0] = saved[level]
    return k
