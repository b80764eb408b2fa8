"""Unicorn's `Uc` engine on emu's core (x86: UC_MODE_64 and UC_MODE_32).

The vCPU runs at CPL 0 in long mode (UC_MODE_32: compatibility mode, a
32-bit code segment) over this object's own page tables (memory.py), which
the guest does not see: CR0.PG, CR4.PAE and CR3 read back as the guest set
them (MOV to/from CR traps here). emu_start runs `Vcpu.run_calls`, which
calls CODE, BLOCK and MEM_* callbacks straight from the core; every other
event comes back as an exit that is handled here:

| exit | Unicorn event |
|---|---|
| #PF | MEM_*_UNMAPPED / MEM_*_PROT hooks (True: retry the access), else UC_ERR_* |
| #UD | INSN_INVALID hooks, else UC_ERR_INSN_INVALID |
| other exceptions, INT n | INTR hooks with the vector, else UC_ERR_EXCEPTION |
| SYSCALL (trapped before it acts) | INSN hooks for UC_X86_INS_SYSCALL, then RIP after it |
| CPUID, RDTSC/RDTSCP (trapped when hooked) | INSN hooks: a true result skips the instruction |
| IN / OUT | INSN hooks (IN returns the value read) |
| MMIO | mmio_map callbacks |
| HLT | the end of emu_start, as in Unicorn |
"""
from __future__ import annotations

import threading

from emu import _core
from emu.cpuid import DEFAULT_MODEL, cpuid_table
from emu.machine import Machine
from emu.unicorn import regs as _regs
from emu.unicorn import unicorn_const as U
from emu.unicorn import x86_const as X
from emu.unicorn.errors import UcError
from emu.unicorn.memory import PAGE, FlatMemory

RAM_SIZE = 4 << 30               # guest RAM reserved (committed only as touched)
ACCESS = (U.UC_MEM_READ, U.UC_MEM_WRITE, U.UC_MEM_FETCH)
M64 = (1 << 64) - 1
_EXIT = _core.EXIT
_REGS = _regs.build()

# CPU models Unicorn names, as emu's CPUID models
CPU_MODELS = {X.UC_CPU_X86_QEMU64: "x86-64", X.UC_CPU_X86_HASWELL: "x86-64-v3",
              X.UC_CPU_X86_BROADWELL: "x86-64-v3", X.UC_CPU_X86_SKYLAKE_CLIENT: "x86-64-v3",
              X.UC_CPU_X86_NEHALEM: "x86-64-v2", X.UC_CPU_X86_WESTMERE: "x86-64-v2",
              X.UC_CPU_X86_SANDYBRIDGE: "x86-64-v2", X.UC_CPU_X86_IVYBRIDGE: "x86-64-v2"}

# hook types, grouped by who calls them
H_MEM_VALID = U.UC_HOOK_MEM_READ | U.UC_HOOK_MEM_WRITE | U.UC_HOOK_MEM_FETCH | U.UC_HOOK_MEM_READ_AFTER
H_MEM_BAD = U.UC_HOOK_MEM_UNMAPPED | U.UC_HOOK_MEM_PROT
H_SUPPORTED = (U.UC_HOOK_INTR | U.UC_HOOK_INSN | U.UC_HOOK_CODE | U.UC_HOOK_BLOCK | H_MEM_VALID | H_MEM_BAD
               | U.UC_HOOK_INSN_INVALID)
INSN_NAMES = {X.UC_X86_INS_SYSCALL: "syscall", X.UC_X86_INS_SYSENTER: "syscall", X.UC_X86_INS_CPUID: "cpuid",
              X.UC_X86_INS_RDTSC: "rdtsc", X.UC_X86_INS_RDTSCP: "rdtsc", X.UC_X86_INS_IN: "in",
              X.UC_X86_INS_OUT: "out"}

CR0_PE, CR0_ET, CR0_WP, CR0_PG = 1, 0x10, 1 << 16, 1 << 31
CR4_PAE = 1 << 5


def _shootdown(vcpu):
    def on_change(va, size):
        if size > 64 * PAGE:
            vcpu.flush_tlb()
        else:
            for off in range(0, size, PAGE):
                vcpu.invlpg(va + off)
    return on_change


class _Hook:
    __slots__ = ("handle", "htype", "fn", "ud", "begin", "end", "core_id", "insn")

    def __init__(self, handle, htype, fn, ud, begin, end, core_id=None, insn=None):
        self.handle, self.htype, self.fn, self.ud = handle, htype, fn, ud
        self.begin, self.end, self.core_id, self.insn = begin, end, core_id, insn

    def covers(self, lo, hi):
        return self.begin > self.end or (lo <= self.end and hi >= self.begin)


class UcContext:
    """A saved CPU state (context_save): registers only, as in Unicorn.
    reg_read/reg_write work on the saved copy."""

    def __init__(self, uc, state, shadow):
        self._uc, self._state, self._shadow = uc, state, shadow

    def _view(self):
        view = _CtxView(self._uc, self._state, self._shadow)
        return view

    def reg_read(self, reg_id, aux=None):
        return self._view().reg_read(reg_id, aux)

    def reg_write(self, reg_id, value):
        v = self._view()
        v.reg_write(reg_id, value)
        self._state, self._shadow = v._vcpu.save_state(), dict(v._shadow)

    def __getstate__(self):
        return {"state": self._state, "shadow": self._shadow}

    def __setstate__(self, d):
        self._uc, self._state, self._shadow = None, d["state"], d["shadow"]

    @property
    def size(self):
        return len(self._state)

    @property
    def arch(self):
        return U.UC_ARCH_X86

    @property
    def mode(self):
        return self._uc._mode if self._uc else U.UC_MODE_64


class _Regs:
    """Register access by Unicorn id over self._vcpu (shared by Uc and saved contexts)."""

    def reg_read(self, reg_id, aux=None):
        if reg_id == X.UC_X86_REG_MSR:
            try:
                return self._vcpu.get_msr(aux if aux is not None else 0)
            except KeyError:
                raise UcError(U.UC_ERR_EXCEPTION) from None
        rw = _REGS.get(reg_id)
        if rw is None:
            raise UcError(U.UC_ERR_ARG)
        return rw[0](self)

    def reg_write(self, reg_id, value):
        if reg_id == X.UC_X86_REG_MSR:
            idx, val = value
            try:
                self._vcpu.set_msr(idx, val & M64)
            except (KeyError, ValueError):
                raise UcError(U.UC_ERR_EXCEPTION) from None
            return
        rw = _REGS.get(reg_id)
        if rw is None:
            raise UcError(U.UC_ERR_ARG)
        rw[1](self, value)

    def reg_read_batch(self, reg_data):
        out = []
        for r in reg_data:
            if isinstance(r, tuple):
                out.append(self.reg_read(r[0], r[1]))
            else:
                out.append(self.reg_read(r))
        return tuple(out)

    def reg_write_batch(self, reg_data):
        for r, v in reg_data:
            self.reg_write(r, v)

    def msr_read(self, msr_id):
        return self.reg_read(X.UC_X86_REG_MSR, msr_id)

    def msr_write(self, msr_id, value):
        self.reg_write(X.UC_X86_REG_MSR, (msr_id, value))

    # control registers: the guest's view (Uc keeps paging on underneath)
    def _cr_read(self, n):
        v = self._vcpu
        if n == 0:
            return self._shadow["cr0"]
        if n == 2:
            return v.cr2
        if n == 3:
            return self._shadow["cr3"]
        if n == 4:
            return self._shadow["cr4"]
        if n == 8:
            return v.cr8
        return 0

    def _cr_write(self, n, value):
        v = self._vcpu
        if n == 0:
            self._shadow["cr0"] = value
            v.cr0 = (value | CR0_PE | CR0_PG | CR0_WP) & 0xFFFFFFFF
        elif n == 2:
            v.cr2 = value
        elif n == 3:
            self._shadow["cr3"] = value
        elif n == 4:
            self._shadow["cr4"] = value
            v.cr4 = value | CR4_PAE
        elif n == 8:
            v.cr8 = value

    def _set_segment(self, i, sel):
        """A segment register write loads the selector and, from the GDT when
        one is set up, the descriptor's base (SDM Vol. 3 3.4.3); emu uses
        the FS and GS bases (the others are 0 in long and compatibility mode)."""
        v = self._vcpu
        v.set_seg_sel(i, sel)
        base, limit = v.gdtr
        if i in (4, 5) and sel & ~3 and limit and not sel & 4 and (sel | 7) <= limit:
            try:
                d = int.from_bytes(self._gdt_read(base + (sel & ~7)), "little")
            except UcError:
                return
            v.set_seg_base(i, ((d >> 16) & 0xFFFFFF) | (((d >> 56) & 0xFF) << 24))


class _CtxView(_Regs):
    def __init__(self, uc, state, shadow):
        self._uc = uc
        self._vcpu = _core.Vcpu(uc._m.phys)
        self._vcpu.load_state(state)
        self._shadow = dict(shadow)

    def _gdt_read(self, addr):
        return bytes(self._uc.mem_read(addr, 8))


class Uc(_Regs):
    """Unicorn's engine: Uc(UC_ARCH_X86, UC_MODE_64 or UC_MODE_32)."""

    def __init__(self, arch: int, mode: int, cpu: int | None = None):
        if arch != U.UC_ARCH_X86:
            raise UcError(U.UC_ERR_ARCH)
        if mode not in (U.UC_MODE_64, U.UC_MODE_32):
            raise UcError(U.UC_ERR_MODE)
        self._arch, self._mode = arch, mode
        m = self._m = Machine(RAM_SIZE, paging=True, cpl=0)
        v = self._vcpu = m.vcpu
        # the TLB shootdown after page-table edits, without the Machine's
        # bound method (a reference cycle that would keep each engine's RAM
        # until the garbage collector runs; Unicorn frees an engine at once)
        m.page_tables.on_change = _shootdown(v)
        v.trap_mask = _core.TRAPS["syscall"] | _core.TRAPS["syscall_insn"] | _core.TRAPS["cr"] | _core.TRAPS["int"]
        self._shadow = {"cr0": CR0_PE | CR0_ET, "cr3": 0, "cr4": v.cr4 & ~CR4_PAE}
        if mode == U.UC_MODE_32:
            v.cs32 = True
            self._amask = 0xFFFFFFFF
        else:
            self._amask = M64
        self._memory = FlatMemory(m, 1 << 32 if mode == U.UC_MODE_32 else 1 << 64)
        self._tlb_mode = U.UC_TLB_CPU
        # Unicorn's default CPU for x86 is QEMU's qemu64: the baseline model
        # (so a guest's library picks the code paths it picks on Unicorn)
        self.ctl_set_cpu_model(X.UC_CPU_X86_QEMU64 if cpu is None else cpu)
        self._hooks: dict[int, _Hook] = {}
        self._next_handle = 1
        self._direct: dict = {}
        self._code: list[_Hook] = []          # CODE hooks (core code hooks)
        self._block: list[_Hook] = []
        self._memv: list[_Hook] = []          # MEM_READ/WRITE/FETCH (core memory hooks)
        self._membad: list[_Hook] = []
        self._intr: list[_Hook] = []
        self._insn: dict[str, list[_Hook]] = {}
        self._invalid: list[_Hook] = []
        self._exits: set[int] = set()         # addresses where emu_start stops
        self._exit_tuple: tuple = ()          # the same, checked in the core's call loop (up to 8)
        self._exit_ids: dict[int, int] = {}   # exit address -> core code hook id
        self._use_exits = False
        self._user_exits: list[int] = []
        self._timeout = 0
        self._ptrs: list[tuple[int, int, int]] = []     # mem_map_ptr: (address, size, host pointer)
        self._running = False
        self._err = U.UC_ERR_OK

    # ---- memory ----
    def _check_range(self, address, size):
        if size <= 0 or address & (PAGE - 1) or size & (PAGE - 1) or address + size > (1 << 64):
            raise UcError(U.UC_ERR_ARG)

    def mem_map(self, address: int, size: int, perms: int = U.UC_PROT_ALL) -> None:
        self._check_range(address, size)
        if perms & ~U.UC_PROT_ALL:
            raise UcError(U.UC_ERR_ARG)
        if self._memory.overlaps(address, address + size):
            raise UcError(U.UC_ERR_MAP)
        try:
            self._memory.map(address, size, perms)
        except MemoryError:
            raise UcError(U.UC_ERR_NOMEM) from None

    def mem_map_ptr(self, address: int, size: int, perms: int, ptr: int) -> None:
        """Map host memory at address. emu's guest RAM is one mapping of its
        own, so the bytes are copied in at each emu_start and back after it
        (docs/unicorn.md)."""
        import ctypes
        self.mem_map(address, size, perms)
        self.mem_write(address, ctypes.string_at(ptr, size))
        self._ptrs.append((address, size, ptr))

    def mmio_map(self, address, size, read_cb, user_data_read, write_cb, user_data_write) -> None:
        self._check_range(address, size)
        if self._memory.overlaps(address, address + size):
            raise UcError(U.UC_ERR_MAP)
        self._memory.map(address, size, U.UC_PROT_READ | U.UC_PROT_WRITE,
                         mmio=(read_cb, user_data_read, write_cb, user_data_write))

    def mem_unmap(self, address: int, size: int) -> None:
        self._check_range(address, size)
        if not self._memory.covered(address, address + size):
            raise UcError(U.UC_ERR_NOMEM)
        self._sync_ptrs_out()
        self._memory.unmap(address, size)
        self._ptrs = [p for p in self._ptrs if self._memory.covered(p[0], p[0] + p[1])]

    def mem_protect(self, address: int, size: int, perms: int = U.UC_PROT_ALL) -> None:
        self._check_range(address, size)
        if perms & ~U.UC_PROT_ALL:
            raise UcError(U.UC_ERR_ARG)
        if not self._memory.covered(address, address + size):
            raise UcError(U.UC_ERR_NOMEM)
        self._memory.protect(address, size, perms)

    def mem_regions(self):
        for r in list(self._memory.regions):
            yield (r.begin, r.end - 1, r.perms)

    def mem_read(self, address: int, size: int) -> bytearray:
        out = bytearray()
        mem = self._m.mem
        for r, pa, k in self._memory.chunks(address, size):
            if r is None:
                raise UcError(U.UC_ERR_READ_UNMAPPED)
            if r.mmio is not None:
                raise UcError(U.UC_ERR_READ_UNMAPPED)
            out += mem[pa:pa + k]
        return out

    def mem_write(self, address: int, data: bytes) -> None:
        data = memoryview(bytes(data))
        parts = []
        for r, pa, k in self._memory.chunks(address, len(data)):
            if r is None or r.mmio is not None:
                raise UcError(U.UC_ERR_WRITE_UNMAPPED)
            parts.append((pa, k))
        mem, off = self._m.mem, 0
        for pa, k in parts:
            mem[pa:pa + k] = data[off:off + k]
            self._m.phys.invalidate(pa, k)        # translated code there is stale
            off += k

    def _gdt_read(self, addr):
        return bytes(self.mem_read(addr, 8))

    def _sync_ptrs_in(self):
        if self._ptrs:
            import ctypes
            for a, n, p in self._ptrs:
                self.mem_write(a, ctypes.string_at(p, n))

    def _sync_ptrs_out(self):
        if self._ptrs:
            import ctypes
            for a, n, p in self._ptrs:
                ctypes.memmove(p, bytes(self.mem_read(a, n)), n)

    # ---- hooks ----
    def hook_add(self, htype: int, callback, user_data=None, begin: int = 1, end: int = 0,
                 aux1: int = 0, aux2: int = 0) -> int:
        if not htype or htype & ~H_SUPPORTED:
            raise UcError(U.UC_ERR_HOOK)
        kinds = [b for b in (U.UC_HOOK_INTR, U.UC_HOOK_INSN, U.UC_HOOK_CODE, U.UC_HOOK_BLOCK,
                             U.UC_HOOK_INSN_INVALID) if htype & b]
        if htype & H_MEM_VALID:
            kinds.append(H_MEM_VALID)
        if htype & H_MEM_BAD:
            kinds.append(H_MEM_BAD)
        if len(kinds) != 1:
            raise UcError(U.UC_ERR_ARG)      # one callback shape per hook, as Unicorn's binding checks
        begin &= M64
        end &= M64
        h = _Hook(self._next_handle, htype, callback, user_data, begin, end)
        v = self._vcpu
        if htype & U.UC_HOOK_CODE:
            h.core_id = v.add_code_hook(begin, end)
            self._code.append(h)
        elif htype & U.UC_HOOK_BLOCK:
            self._block.append(h)
            v.set_block_hook(True)
        elif htype & H_MEM_VALID:
            ks = tuple(k for k, b in (("read", U.UC_HOOK_MEM_READ | U.UC_HOOK_MEM_READ_AFTER),
                                      ("write", U.UC_HOOK_MEM_WRITE), ("fetch", U.UC_HOOK_MEM_FETCH)) if htype & b)
            h.core_id = v.add_mem_hook(begin, end, ks)
            self._memv.append(h)
        elif htype & H_MEM_BAD:
            self._membad.append(h)
        elif htype & U.UC_HOOK_INTR:
            self._intr.append(h)
        elif htype & U.UC_HOOK_INSN_INVALID:
            self._invalid.append(h)
        else:
            name = INSN_NAMES.get(aux1)
            if name is None:
                raise UcError(U.UC_ERR_HOOK)
            h.insn = name
            self._insn.setdefault(name, []).append(h)
            if name in ("cpuid", "rdtsc"):
                v.trap(name, True)
        self._hooks[h.handle] = h
        self._next_handle += 1
        self._rebuild()
        return h.handle

    def hook_del(self, handle: int) -> None:
        h = self._hooks.pop(handle, None)
        if h is None:
            return                         # (Unicorn ignores an unknown handle)
        v = self._vcpu
        for lst in (self._code, self._block, self._memv, self._membad, self._intr, self._invalid):
            if h in lst:
                lst.remove(h)
        if h.insn is not None:
            lst = self._insn[h.insn]
            lst.remove(h)
            if not lst:
                del self._insn[h.insn]
                if h.insn in ("cpuid", "rdtsc"):
                    v.trap(h.insn, False)
        if h.core_id is not None:
            v.remove_hook(h.core_id)
        if not self._block:
            v.set_block_hook(False)
        self._rebuild()

    def _rebuild(self) -> None:
        """Hook ids the core may hand straight to one callback: those whose
        range no other hook of the same group (or an exit address) touches."""
        d = {}
        code = self._code
        for h in code:
            if not any(o is not h and (o.begin > o.end or h.begin > h.end or
                                       (o.begin <= h.end and o.end >= h.begin)) for o in code) \
                    and (len(self._exits) <= 8 or not any(h.covers(a, a) for a in self._exits)):
                d[h.core_id] = (h.fn, h.ud)
        mem = self._memv
        for h in mem:
            if h.htype & U.UC_HOOK_MEM_READ_AFTER:
                continue
            if not any(o is not h and (o.begin > o.end or h.begin > h.end or
                                       (o.begin <= h.end + 16 and o.end + 16 >= h.begin)) for o in mem):
                d[h.core_id] = (h.fn, h.ud)
        if len(self._block) == 1 and self._block[0].begin > self._block[0].end:
            d[0] = (self._block[0].fn, self._block[0].ud)
        self._direct = d

    def _slow(self, hook_id, kind, address, size, value):
        """A hook exit no single callback owns."""
        if kind == "code":
            if address in self._exits:
                return False               # an exit address: emu_start ends before it
            for h in list(self._code):
                if h.covers(address, address):
                    h.fn(self, address, size, h.ud)
                    if self._stop_asked():
                        break
        elif kind == "block":
            if address in self._exits:
                return False
            for h in list(self._block):
                if h.covers(address, address):
                    h.fn(self, address, size, h.ud)
                    if self._stop_asked():
                        break
        else:
            code = {"read": U.UC_MEM_READ, "write": U.UC_MEM_WRITE, "fetch": U.UC_MEM_FETCH}[kind]
            bit = {"read": U.UC_HOOK_MEM_READ, "write": U.UC_HOOK_MEM_WRITE, "fetch": U.UC_HOOK_MEM_FETCH}[kind]
            if value >= 1 << 63:
                value -= 1 << 64
            lo, hi = address, address + max(size, 1) - 1
            for h in list(self._memv):
                if not h.covers(lo, hi):
                    continue
                if h.htype & bit:
                    h.fn(self, code, address, size, value, h.ud)
                elif kind == "read" and h.htype & U.UC_HOOK_MEM_READ_AFTER:
                    # called before the read, with the bytes it will read (docs/unicorn.md)
                    try:
                        got = int.from_bytes(self.mem_read(address, size), "little")
                    except UcError:
                        continue
                    h.fn(self, U.UC_MEM_READ_AFTER, address, size, got, h.ud)
                if self._stop_asked():
                    break
        return True

    def _stop_asked(self):
        return self._stopping

    # ---- exits (`until` and ctl_set_exits) ----
    def _set_exits(self, addrs) -> None:
        addrs = {a & M64 for a in addrs}
        v = self._vcpu
        for a in list(self._exit_ids):
            if a not in addrs:
                v.remove_hook(self._exit_ids.pop(a))
        for a in addrs:
            if a not in self._exit_ids:
                self._exit_ids[a] = v.add_code_hook(a, a)
        self._exits = addrs
        self._exit_tuple = tuple(addrs) if len(addrs) <= 8 else ()
        self._rebuild()

    # ---- running ----
    def emu_start(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None:
        v = self._vcpu
        self._set_exits(self._user_exits if self._use_exits else [until & self._amask])
        self._timeout = timeout
        if not self._memory.reachable(begin & self._amask):
            raise UcError(U.UC_ERR_FETCH_UNMAPPED)
        v.rip = begin & self._amask
        v.forget_resume()
        v.clear_stop()
        self._stopping = False
        self._running = True
        self._sync_ptrs_in()
        timer = None
        if timeout:
            timer = threading.Timer(timeout / 1e6, self._timeout_fired)
            timer.daemon = True
            timer.start()
        start = v.icount
        try:
            while True:
                if count:
                    left = count - (v.icount - start)
                    if left <= 0:
                        self._check_next_fetch()
                        break
                else:
                    left = M64
                ex = v.run_calls(self._direct, self._slow, self, ACCESS, self._exit_tuple, left)
                r = ex.reason
                if r == _EXIT["BUDGET"] and count and not self._stopping:
                    self._check_next_fetch()
                    break
                if r in (_EXIT["HOOK"], _EXIT["STOPPED"], _EXIT["BUDGET"], _EXIT["HLT"]) or self._stopping:
                    if r == _EXIT["HLT"]:
                        v.rip = ex.rip + 1 if v.rip == ex.rip else v.rip     # (HLT retired)
                    break
                self._handle(ex)
                if self._stopping:
                    break
        finally:
            if timer is not None:
                timer.cancel()
            self._running = False
            self._sync_ptrs_out()

    def _check_next_fetch(self):
        """Unicorn ends a counted run when it reaches the next instruction,
        which it has fetched: a run whose last instruction jumps to unmapped
        or non-executable memory fails with the fetch error (its regress test
        jmp_ebx_hang holds it to that). The same check here."""
        rip = self._vcpu.rip
        if rip in self._exits:
            return
        r = self._memory.find(rip)
        if r is None or not self._memory.reachable(rip) or not r.perms & U.UC_PROT_EXEC:
            self._bad_access(rip, "fetch", rip)

    def _timeout_fired(self):
        if self._running:
            self._stopping = True
            self._vcpu.stop()

    def emu_stop(self) -> None:
        if self._running:
            self._stopping = True
            self._vcpu.stop()

    def _handle(self, ex) -> None:
        """An exit other than a hook call: the Unicorn event it is, or UcError."""
        v = self._vcpu
        name = ex.name
        if name == "EXCEPTION":
            vec = ex.vector
            if vec == 14:
                return self._page_fault(ex)
            if vec == 6:
                if self._invalid:
                    ok = False
                    for h in list(self._invalid):
                        ok = bool(h.fn(self, h.ud)) or ok
                    if ok:
                        return
                raise UcError(U.UC_ERR_INSN_INVALID)
            return self._interrupt(vec)
        if name == "PRIV":
            op = ex.op
            if op == "syscall":
                rip = v.rip
                v.skip_trap()                      # RIP after SYSCALL; RCX and R11 untouched, as in Unicorn
                after = v.rip
                v.rip = rip
                for h in list(self._insn.get("syscall", ())):
                    h.fn(self, h.ud)
                if v.rip == rip:
                    v.rip = after
                return
            if op == "int":
                vec = ex.vector
                v.skip_trap()                      # INT n retires: RIP after it
                return self._interrupt(vec)
            if op == "mov_to_cr":
                val = v.get_gpr(ex.gpr) if ex.gpr >= 0 else ex.value
                if ex.cr in (0, 3, 4):
                    if self._mode == U.UC_MODE_32:
                        val &= 0xFFFFFFFF
                    self._cr_write(ex.cr, val)
                    v.skip_trap()
                else:
                    v.complete_trap()
                return
            if op == "mov_from_cr":
                if ex.cr in (0, 3, 4):
                    v.complete_trap(self._cr_read(ex.cr))
                else:
                    v.complete_trap()
                return
            v.complete_trap()
            return
        if name == "CPUID" or name == "RDTSC":
            hooks = self._insn.get("cpuid" if name == "CPUID" else "rdtsc", ())
            skip = False
            for h in list(hooks):
                if h.fn(self, h.ud):
                    skip = True
            if skip:
                v.skip_trap()
            else:
                v.complete_trap()
            return
        if name == "IO":
            if ex.write:
                for h in list(self._insn.get("out", ())):
                    h.fn(self, ex.port, ex.size, ex.value, h.ud)
            else:
                val = 0
                for h in list(self._insn.get("in", ())):
                    val = h.fn(self, ex.port, ex.size, h.ud) or 0
                v.complete_io_in(val & ((1 << (8 * ex.size)) - 1))
            return
        if name == "MMIO":
            return self._mmio(ex)
        raise UcError(U.UC_ERR_EXCEPTION)

    def _interrupt(self, vec) -> None:
        if not self._intr:
            raise UcError(U.UC_ERR_EXCEPTION)
        for h in list(self._intr):
            h.fn(self, vec, h.ud)

    def _page_fault(self, ex) -> None:
        """A #PF of the flat memory: a MEM_*_UNMAPPED or MEM_*_PROT event. A
        callback that returns True asks for the access again (it has mapped
        the page or changed the rights); otherwise the run ends with the error."""
        err = ex.error_code
        kind = "fetch" if err & 0x10 else "write" if err & 2 else "read"
        self._bad_access(ex.cr2 & self._amask, kind, ex.rip)

    def _bad_access(self, addr, kind, rip) -> None:
        v = self._vcpu
        r = self._memory.find(addr)
        if r is None:
            access, bit, code = {"read": (U.UC_MEM_READ_UNMAPPED, U.UC_HOOK_MEM_READ_UNMAPPED, U.UC_ERR_READ_UNMAPPED),
                                 "write": (U.UC_MEM_WRITE_UNMAPPED, U.UC_HOOK_MEM_WRITE_UNMAPPED, U.UC_ERR_WRITE_UNMAPPED),
                                 "fetch": (U.UC_MEM_FETCH_UNMAPPED, U.UC_HOOK_MEM_FETCH_UNMAPPED, U.UC_ERR_FETCH_UNMAPPED)}[kind]
        else:
            access, bit, code = {"read": (U.UC_MEM_READ_PROT, U.UC_HOOK_MEM_READ_PROT, U.UC_ERR_READ_PROT),
                                 "write": (U.UC_MEM_WRITE_PROT, U.UC_HOOK_MEM_WRITE_PROT, U.UC_ERR_WRITE_PROT),
                                 "fetch": (U.UC_MEM_FETCH_PROT, U.UC_HOOK_MEM_FETCH_PROT, U.UC_ERR_FETCH_PROT)}[kind]
        handled = False
        size = 1        # (the #PF does not say the access size; docs/unicorn.md)
        for h in list(self._membad):
            if h.htype & bit and h.covers(addr, addr):
                if h.fn(self, access, addr, size, 0, h.ud):
                    handled = True
        if self._stopping:
            return
        if handled:
            now = self._memory.find(addr)
            if now is not None and now.perms & {"read": U.UC_PROT_READ, "write": U.UC_PROT_WRITE,
                                                 "fetch": U.UC_PROT_EXEC}[kind]:
                return                      # the access is made again
            if v.rip != rip:
                return                      # the callback moved on
        raise UcError(code)

    def _mmio(self, ex) -> None:
        v = self._vcpu
        for r in self._memory.regions:
            if r.mmio is not None and r.pa <= ex.address < r.pa + (r.end - r.begin):
                off = ex.address - r.pa
                read_cb, ud_r, write_cb, ud_w = r.mmio
                if ex.write:
                    if write_cb is not None:
                        write_cb(self, off, ex.size, ex.value, ud_w)
                    v.complete_mmio_write()
                else:
                    val = read_cb(self, off, ex.size, ud_r) if read_cb is not None else 0
                    v.complete_mmio_read(val & M64)
                return
        raise UcError(U.UC_ERR_EXCEPTION)

    # ---- context ----
    def context_save(self) -> UcContext:
        return UcContext(self, self._vcpu.save_state(), dict(self._shadow))

    def context_update(self, context: UcContext) -> None:
        context._uc = self
        context._state = self._vcpu.save_state()
        context._shadow = dict(self._shadow)

    def context_restore(self, context: UcContext) -> None:
        self._vcpu.load_state(context._state)
        self._shadow = dict(context._shadow)

    # ---- queries and controls ----
    def query(self, prop: int) -> int:
        if prop == U.UC_QUERY_MODE:
            return self._mode
        if prop == U.UC_QUERY_PAGE_SIZE:
            return PAGE
        if prop == U.UC_QUERY_ARCH:
            return self._arch
        if prop == U.UC_QUERY_TIMEOUT:
            return self._timeout
        raise UcError(U.UC_ERR_ARG)

    @property
    def errno(self) -> int:
        return self._err

    def ctl_get_mode(self):
        return self._mode

    def ctl_get_arch(self):
        return self._arch

    def ctl_get_page_size(self):
        return PAGE

    def ctl_set_page_size(self, val):
        if val != PAGE:
            raise UcError(U.UC_ERR_ARG)         # x86 pages are 4 KiB (Unicorn: only ARM may change it)

    def ctl_get_timeout(self):
        return self._timeout * 1000            # (Unicorn keeps it in nanoseconds)

    def ctl_exits_enabled(self, enable: bool):
        self._use_exits = bool(enable)

    def ctl_get_exits_cnt(self):
        if not self._use_exits:
            raise UcError(U.UC_ERR_ARG)
        return len(self._user_exits)

    def ctl_get_exits(self):
        if not self._use_exits:
            raise UcError(U.UC_ERR_ARG)
        return list(self._user_exits)

    def ctl_set_exits(self, exits):
        if not self._use_exits:
            raise UcError(U.UC_ERR_ARG)
        self._user_exits = [e & M64 for e in exits]

    def ctl_get_cpu_model(self):
        return self._cpu_model

    def ctl_set_cpu_model(self, model):
        name = CPU_MODELS.get(model)
        if name is None:
            if not (0 <= model < X.UC_CPU_X86_ENDING):
                raise UcError(U.UC_ERR_ARG)
            name = DEFAULT_MODEL
        self._cpu_model = model
        self._vcpu.set_cpuid_table(cpuid_table(name))

    def ctl_remove_cache(self, lbound, ubound):
        for r, pa, k in self._memory.chunks(lbound, max(ubound - lbound, 0)):
            if r is None:
                break
            if r.mmio is None:
                self._m.phys.invalidate(pa, k)

    def ctl_request_cache(self, addr):
        raise UcError(U.UC_ERR_ARG)       # emu translates when a block first runs (docs/unicorn.md)

    def ctl_flush_tb(self):
        self._m.phys.flush_code()

    def ctl_flush_tlb(self):
        self._vcpu.flush_tlb()

    def ctl_set_tlb_mode(self, mode):
        # UC_TLB_VIRTUAL without TLB_FILL hooks maps every address to itself,
        # which the flat memory does already (TLB_FILL hooks are not provided)
        if mode not in (U.UC_TLB_CPU, U.UC_TLB_VIRTUAL):
            raise UcError(U.UC_ERR_ARG)
        self._tlb_mode = mode

    ctl_tlb_mode = ctl_set_tlb_mode

    def ctl_get_tcg_buffer_size(self):
        return self._m.phys.code_cache

    def ctl_set_tcg_buffer_size(self, size):
        pass                                  # emu's code cache is sized when the machine is made

    def ctl_context_mode(self, mode):
        if mode & ~U.UC_CTL_CONTEXT_CPU:
            raise UcError(U.UC_ERR_ARG)       # contexts hold the CPU (memory: snapshots of emu.Machine)

    def release_handle(self):
        pass

    # emu extras
    @property
    def vcpu(self):
        """The emu vCPU behind this engine (emu's own API)."""
        return self._vcpu

    @property
    def machine(self):
        return self._m
