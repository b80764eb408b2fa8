"""A machine: guest RAM, the block cache, one vCPU, and (for long-mode guests
set up by the VMM) an address space built through real page tables."""
from __future__ import annotations

from array import array

from emu import _core
from emu.cpuid import DEFAULT_MODEL, cpuid_table, xcr0_of
from emu.paging import FrameAllocator, PageTables
from emu.vcpu import Vcpu

CR0_PE, CR0_WP, CR0_PG = 1, 1 << 16, 1 << 31
CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT, CR4_OSXSAVE = 1 << 5, 1 << 9, 1 << 10, 1 << 18
CR4_FSGSBASE = 1 << 16
EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE = 1, 1 << 8, 1 << 10, 1 << 11

PROT_R, PROT_W, PROT_X = 1, 2, 4


class GuestMemoryError(Exception):
    """An API access to a guest virtual address that is not mapped."""


class Machine:
    """Guest RAM plus a vCPU in 64-bit mode.

    With paging=True (the default) the vCPU runs with CR0.PG, PAE and
    EFER.LMA/NXE set over page tables this object builds (`map`); with
    paging=False linear addresses are physical. tier: "interp", "jit" or
    "auto" (default: emu.get_default_tier(), from EMU_TIER or "auto");
    jit_threshold: executions before a block is compiled (0: at once);
    cpu: the CPU model whose CPUID the vCPU shows and whose instructions it
    runs (emu.cpuid.USER_MODELS; default: everything emu implements);
    code_cache: the translation cache's budget in bytes (default
    EMU_CODE_CACHE MiB from the environment, else 256 MiB); when full, its
    oldest part is evicted.
    """

    def __init__(self, ram_size: int = 64 << 20, *, paging: bool = True, cpl: int = 3,
                 tier: str | None = None, jit_threshold: int | None = None, cpu: str | None = None,
                 code_cache: int | None = None):
        self.phys = _core.PhysMachine(ram_size, tier, jit_threshold, code_cache)
        # guest RAM as a flat byte view for emu's own accesses; `ram`, the
        # numpy view of the public API, is made on first use (numpy costs
        # start-up time a program run does not need)
        self.mem = memoryview(self.phys)
        self._ram = None
        self.frames = FrameAllocator(self.mem, mark=self.phys.mark_dirty)
        self.vcpu = Vcpu(self.phys)
        self.vcpus = [self.vcpu]
        self.cpu = cpu or DEFAULT_MODEL
        self.vcpu.set_cpuid_table(cpuid_table(self.cpu))
        self.vcpu.trap_mask = _core.TRAPS["syscall"]
        self.page_tables: PageTables | None = None
        if paging:
            self.page_tables = PageTables(self.mem, self.frames, on_change=self._pt_changed)
            v = self.vcpu
            v.cr3 = self.page_tables.root
            v.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE
            v.xcr0 = xcr0_of(v.get_cpuid_table())          # every user component, as Linux enables
            if v.cpuid(7, 0)[1] & 1:
                v.cr4 = v.cr4 | CR4_FSGSBASE                # Linux 5.9+ lets processes use FSGSBASE
            v.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE
            v.cr0 = CR0_PE | CR0_WP | CR0_PG
        self.vcpu.cpl = cpl
        # snapshots: pages ever written (the rest of RAM is still zero; made
        # at the first snapshot, from the core's record of every page written
        # since the start) and the live snapshots, each told which pages
        # change after it
        self._written = None
        self._snapshots = None          # a WeakSet, from the first snapshot on

    @property
    def ram(self):
        """Guest physical RAM as a zero-copy numpy uint8 array."""
        if self._ram is None:
            import numpy as np
            self._ram = np.frombuffer(self.phys, dtype=np.uint8)
        return self._ram

    def add_vcpu(self, like: Vcpu | None = None) -> Vcpu:
        """Another vCPU on the same RAM and block cache; with `like`, a copy of
        that vCPU's registers and control state (a thread's starting point)."""
        v = Vcpu(self.phys)
        self.vcpus.append(v)
        src = like or self.vcpu
        v.copy_state_from(src)
        return v

    def _pt_changed(self, va: int, size: int) -> None:
        # page-table edits need a TLB shootdown on every vCPU, as INVLPG would do
        for v in self.vcpus:
            if size > 64 * 4096:
                v.flush_tlb()
            else:
                for off in range(0, size, 4096):
                    v.invlpg(va + off)

    # ---- address space ----
    def map(self, va: int, size: int, prot: int = PROT_R | PROT_W | PROT_X, *,
            user: bool = True, page_size: int = 4096) -> int:
        """Back [va, va+size) with fresh zeroed RAM; returns its physical address."""
        if self.page_tables is None:
            raise ValueError("map() needs a machine with paging")
        size = (size + page_size - 1) & ~(page_size - 1)
        pa = self.frames.alloc(size // 4096, align=page_size)
        self.page_tables.map(va, pa, size, write=bool(prot & PROT_W), execute=bool(prot & PROT_X),
                             user=user, page_size=page_size)
        return pa

    def _phys_chunks(self, va: int, n: int):
        while n > 0:
            pa = self.vcpu.translate(va, 0) if self.page_tables is not None else va
            if pa is None:
                pa = self._peek_any(va)
            if pa is None or pa >= len(self.mem):
                raise GuestMemoryError("guest address %#x is not mapped" % va)
            k = min(n, 4096 - (va & 0xFFF))
            yield pa, k
            va += k
            n -= k

    def _peek_any(self, va: int):
        hit = self.page_tables.lookup(va) if self.page_tables else None
        if hit is None:
            return None
        _, e, psize = hit
        return (e & 0x000FFFFFFFFFF000 & ~(psize - 1)) | (va & (psize - 1))

    def read(self, va: int, n: int) -> bytes:
        """Read guest virtual memory (whatever its protection)."""
        out = bytearray()
        for pa, k in self._phys_chunks(va, n):
            out += self.mem[pa:pa + k]
        return bytes(out)

    def write(self, va: int, data: bytes) -> None:
        """Write guest virtual memory (whatever its protection); translated code
        there is invalidated."""
        data = memoryview(bytes(data))
        off = 0
        for pa, k in self._phys_chunks(va, len(data)):
            self.mem[pa:pa + k] = data[off:off + k]
            self.phys.invalidate(pa, k)
            off += k

    # ---- snapshots ----
    def _harvest(self):
        """Pages written since the last harvest (by the guest, or by emu's
        Python side through write() and the page tables), told to every live
        snapshot; the vCPUs drop their fast write entries so the next writes
        are recorded again."""
        import numpy as np
        d = np.frombuffer(self.phys.take_dirty(), dtype=np.uint32)
        if self._written is None:
            self._written = np.zeros(self.phys.ram_size >> 12, dtype=bool)
        for v in self.vcpus:
            v.drop_tlb_writes()
        if len(d):
            self._written[d] = True
            pages = d.tolist()
            for s in self._snapshots or ():
                s._changed.update(pages)
        return d

    def snapshot(self) -> "Snapshot":
        """The machine's state now: every vCPU's state and guest RAM (the
        pages ever written), plus the physical frame allocator. restore()
        returns to it, copying back only the pages written since. Hooks,
        coverage and trap policies are instrumentation, not state: they stay.
        Writes made straight through the `ram` numpy view must be announced
        with `phys.mark_dirty(pa, size)` to be undone."""
        import weakref

        import numpy as np
        self._harvest()
        if self._snapshots is None:
            self._snapshots = weakref.WeakSet()
        s = Snapshot()
        s._machine = weakref.ref(self)
        s.pages = np.flatnonzero(self._written).astype(np.uint32)
        s.data = self.ram.reshape(-1, 4096)[s.pages]
        s._row = {p: i for i, p in enumerate(s.pages.tolist())}
        s._changed = set()
        s.vcpus = [v.save_state() for v in self.vcpus]
        s.frames = (self.frames.next, list(self.frames.free_frames))
        self._snapshots.add(s)
        return s

    def restore(self, snap: "Snapshot") -> int:
        """Return to `snap` (which stays valid, to be restored again).
        Returns how many pages were copied back."""
        if snap._machine() is not self:
            raise ValueError("a snapshot of another machine")
        if len(snap.vcpus) != len(self.vcpus):
            raise ValueError("the snapshot has %d vCPUs, the machine %d" % (len(snap.vcpus), len(self.vcpus)))
        self._harvest()
        changed = snap._changed
        if changed:
            row = snap._row.get                    # (-1: not written before the snapshot: zero)
            self.phys.load_pages(array("I", changed).tobytes(), snap.data,
                                 array("i", [row(p, -1) for p in changed]).tobytes())
            for s in self._snapshots or ():
                if s is not snap:
                    s._changed.update(changed)
        n = len(changed)
        snap._changed = set()
        for v, state in zip(self.vcpus, snap.vcpus):
            v.load_state(state)
        self.frames.next, free = snap.frames
        self.frames.free_frames = list(free)
        return n


class Snapshot:
    """A Machine's state at one moment (Machine.snapshot / Machine.restore):
    vCPU states (bytes from Vcpu.save_state), the RAM pages ever written
    (`pages`, and their contents as rows of `data`), the frame allocator."""
    __slots__ = ("_machine", "pages", "data", "_row", "_changed", "vcpus", "frames", "__weakref__")

    @property
    def size(self) -> int:
        """Bytes of RAM the snapshot holds."""
        return self.data.nbytes
