"""Python callbacks over the core's instrumentation (emu/core/hooks.pxi),
for using emu the way one uses Unicorn:

    hooks = Hooks(vcpu)
    hooks.code(0x401000, 0x401000, lambda vcpu, address, size: print(hex(address)))
    hooks.mem_write(0x600000, 0x600fff, on_write)      # fn(vcpu, kind, address, size, value)
    hooks.block(on_block)                              # fn(vcpu, address, size)
    hooks.insn("cpuid", on_cpuid)                      # fn(vcpu, exit)
    ex = hooks.run()          # or emu.hooks.run(vcpu, hooks)

The core exits to Python (EXIT_HOOK) only on hooked addresses; `run` calls
the callbacks and resumes, and returns every other exit to the caller.
Ranges are inclusive (begin..end) as in Unicorn; begin > end covers every
address. Callbacks run before the instruction (code, block, fetch) or the
access (read, write), which completes on resume; they may change registers,
RIP and memory. A callback that returns False stops `run`, which then
returns the HOOK exit (resuming later completes the instruction).

Instruction-class hooks use the trap policy (vcpu.trap): the trapped
instruction exits *instead of* acting (CPUID, RDTSC, RDMSR/WRMSR, MOV CR,
INT n, RDPMC... retire without effect, RIP after them), so the callback
emulates it; or the callback calls vcpu.complete_trap() to have the core
perform it. SYSCALL, IN/OUT/INS/OUTS and HLT (CPL 0) exit to the VMM anyway.
"""
from __future__ import annotations

from typing import Callable

from emu import _core

# instruction classes: (trap name or None when the instruction always exits, exit name)
INSN_EXITS = {
    "cpuid": ("cpuid", "CPUID"),
    "rdtsc": ("rdtsc", "RDTSC"),
    "msr": ("msr", "MSR"),
    "syscall": ("syscall", "SYSCALL"),
    "cr": ("cr", "PRIV"),
    "invlpg": ("invlpg", "PRIV"),
    "desc": ("desc", "PRIV"),
    "xsetbv": ("xsetbv", "PRIV"),
    "rdpmc": ("rdpmc", "PRIV"),
    "int": ("int", "PRIV"),
    "hlt": (None, "HLT"),
    "io": (None, "IO"),
}
_PRIV_OPS = {"cr": ("mov_to_cr", "mov_from_cr", "clts", "lmsw"), "invlpg": ("invlpg",),
             "desc": ("lgdt", "lidt", "sgdt", "sidt", "lldt", "ltr"), "xsetbv": ("xsetbv",),
             "rdpmc": ("rdpmc",), "int": ("int",)}


def _covers(begin: int, end: int, lo: int, hi: int) -> bool:
    return begin > end or (lo <= end and hi >= begin)


class Hook:
    """A registered callback; pass it to Hooks.remove()."""
    __slots__ = ("kind", "begin", "end", "fn", "core_id")

    def __init__(self, kind, begin, end, fn, core_id):
        self.kind, self.begin, self.end, self.fn, self.core_id = kind, begin, end, fn, core_id

    def __repr__(self):
        return "<Hook %s %#x..%#x>" % (self.kind, self.begin, self.end)


class Hooks:
    """Callbacks for one vCPU."""

    def __init__(self, vcpu):
        self.vcpu = vcpu
        self._code: list[Hook] = []         # code and fetch
        self._mem: list[Hook] = []          # read and write
        self._block: list[Hook] = []
        self._insn: dict[str, list[Hook]] = {}
        self._direct: dict = {}

    # ---- registration ----
    def code(self, begin: int, end: int, fn: Callable) -> Hook:
        """fn(vcpu, address, size) before each instruction starting in begin..end."""
        h = Hook("code", begin, end, fn, self.vcpu.add_code_hook(begin, end))
        self._code.append(h)
        self._rebuild()
        return h

    def block(self, fn: Callable) -> Hook:
        """fn(vcpu, address, size) at the start of each block executed."""
        h = Hook("block", 1, 0, fn, None)
        self._block.append(h)
        self.vcpu.set_block_hook(True)
        self._rebuild()
        return h

    def _mem_hook(self, kind: str, begin: int, end: int, fn: Callable) -> Hook:
        h = Hook(kind, begin, end, fn, self.vcpu.add_mem_hook(begin, end, (kind,)))
        (self._code if kind == "fetch" else self._mem).append(h)
        self._rebuild()
        return h

    def mem_read(self, begin: int, end: int, fn: Callable) -> Hook:
        """fn(vcpu, "read", address, size, 0) before each read overlapping begin..end."""
        return self._mem_hook("read", begin, end, fn)

    def mem_write(self, begin: int, end: int, fn: Callable) -> Hook:
        """fn(vcpu, "write", address, size, value) before each write overlapping begin..end."""
        return self._mem_hook("write", begin, end, fn)

    def mem_fetch(self, begin: int, end: int, fn: Callable) -> Hook:
        """fn(vcpu, "fetch", address, size, 0) before each instruction whose
        bytes overlap begin..end (address and size: the instruction)."""
        return self._mem_hook("fetch", begin, end, fn)

    def insn(self, name: str, fn: Callable) -> Hook:
        """fn(vcpu, exit) for an instruction class (INSN_EXITS); turns its trap on."""
        if name not in INSN_EXITS:
            raise KeyError("instruction classes: %s" % ", ".join(INSN_EXITS))
        trap, _ = INSN_EXITS[name]
        if trap is not None:
            self.vcpu.trap(trap, True)
        h = Hook("insn", 1, 0, fn, name)
        self._insn.setdefault(name, []).append(h)
        return h

    def remove(self, h: Hook) -> None:
        if h.kind == "block":
            self._block.remove(h)
            if not self._block:
                self.vcpu.set_block_hook(False)
        elif h.kind == "insn":
            lst = self._insn[h.core_id]
            lst.remove(h)
            if not lst:
                del self._insn[h.core_id]
                trap = INSN_EXITS[h.core_id][0]
                if trap is not None and trap != "syscall":
                    self.vcpu.trap(trap, False)
        else:
            (self._mem if h.kind in ("read", "write") else self._code).remove(h)
            self.vcpu.remove_hook(h.core_id)
        self._rebuild()

    def clear(self) -> None:
        for h in self._code + self._mem + self._block + [x for v in self._insn.values() for x in v]:
            self.remove(h)

    # ---- dispatch ----
    def _rebuild(self) -> None:
        """Hook ids whose exits can go straight to one callback (the core
        reports one hook per exit: the callback alone covers that exit when
        no other hook of its group covers nearby addresses)."""
        d = {}
        for group, margin in ((self._code, 0), (self._mem, 16)):
            for h in group:
                if not any(o is not h and (o.begin > o.end or h.begin > h.end or
                                           (o.begin <= h.end + margin and o.end + margin >= h.begin))
                           for o in group):
                    d[h.core_id] = h.fn
        if len(self._block) == 1:
            d[0] = self._block[0].fn
        self._direct = d

    def dispatch(self, ex) -> bool:
        """Call the callbacks for a HOOK exit; False if one asked to stop."""
        return self._slow(ex.hook_id, ex.kind, ex.address, ex.size, ex.value) is not False

    def _slow(self, hook_id, kind, address, size, value):
        v = self.vcpu
        go = True
        if kind == "block":
            for h in list(self._block):
                if h.fn(v, address, size) is False:
                    go = False
        elif kind in ("code", "fetch"):
            lo, hi = address, address + max(size, 1) - 1
            for h in list(self._code):
                if h.kind == "code" and _covers(h.begin, h.end, lo, lo):
                    r = h.fn(v, address, size)
                elif h.kind == "fetch" and _covers(h.begin, h.end, lo, hi):
                    r = h.fn(v, "fetch", address, size, 0)
                else:
                    continue
                if r is False:
                    go = False
        else:
            lo, hi = address, address + size - 1
            for h in list(self._mem):
                if h.kind == kind and _covers(h.begin, h.end, lo, hi):
                    if h.fn(v, kind, address, size, value) is False:
                        go = False
        return go

    def _insn_for(self, ex):
        if not self._insn:
            return None
        for name, lst in self._insn.items():
            want = INSN_EXITS[name][1]
            if ex.name != want:
                continue
            if want == "PRIV" and ex.op not in _PRIV_OPS[name]:
                continue
            return lst
        return None

    def run(self, budget: int | None = None):
        return run(self.vcpu, self, budget)


def run(vcpu, hooks: Hooks | None = None, budget: int | None = None):
    """Run vcpu, handing HOOK exits (and exits of hooked instruction classes)
    to the callbacks, until another exit, the budget (instructions), or a
    callback returning False. Returns that Exit."""
    start = vcpu.icount
    while True:
        if budget is None:
            left = 0xFFFFFFFFFFFFFFFF
        else:
            left = max(budget - (vcpu.icount - start), 0)
        if hooks is None:
            return vcpu.run(left)
        ex = vcpu.run_hooks(hooks._direct, hooks._slow, left)
        if ex.reason == _EXIT_HOOK:
            return ex                       # a callback returned False
        lst = hooks._insn_for(ex)
        if lst is None:
            return ex
        go = True
        for h in list(lst):
            if h.fn(vcpu, ex) is False:
                go = False
        if not go:
            return ex                   # (a trap stays open for the caller)
        if vcpu.trap_open:
            vcpu.skip_trap()            # the callbacks stood in for the instruction


_EXIT_HOOK = _core.EXIT["HOOK"]
