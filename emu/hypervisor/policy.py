"""Trap policies: what happens when the guest executes a sensitive
instruction the core can trap (CPUID, RDTSC/RDTSCP, RDMSR/WRMSR, MOV to/from
CR, CLTS, LMSW, INVLPG, LGDT/LIDT/SGDT/SIDT/LLDT/LTR, XSETBV, HLT, INT n,
RDPMC, SYSCALL) or that always reaches the VMM (IN/OUT, INS/OUTS).

A policy is a declarative table, Python callables, or both:

    Policy({"msr_write": {0x1B: "deny"},              # #GP(0), in the core (no exit)
            "msr_read": {0xCE: 0x1234, 0x1B: "deny"},  # fixed value / #GP(0), in the core
            "cpuid": {(0x40000000, None): (0, 0, 0, 0)},   # merged into the CPUID table
            "cr_write": {4: "deny"}},                  # trapped, answered from the table
           cr_write=lambda ev: log.append(ev.value))   # a callable per event kind

Event kinds: cpuid, rdtsc (RDTSC and RDTSCP), msr_read, msr_write, cr_read
(MOV from CR), cr_write (MOV to CR, CLTS, LMSW), invlpg, desc (LGDT, LIDT,
SGDT, SIDT, LLDT, LTR), xsetbv, hlt, int (INT n), rdpmc, syscall (the
SYSCALL instruction, in system mode and under the Linux personality), io
(IN, OUT and each element of INS/OUTS). A callable gets a TrapEvent and
answers:

- None, True, "allow" or ALLOW: perform the instruction as the core would
  (port I/O goes on to the VMM's devices);
- False, "deny" or DENY: the architectural fault: #UD for SYSCALL (as with
  EFER.SCE clear), #GP(n*8+2) for INT n (as for a gate the caller may not
  use), #GP(0) for the others; "ud": #UD; Deny(vector, error_code) for
  another;
- "ignore": the instruction retires without its effect: a write (WRMSR, MOV
  to CR, LMSW, CLTS, XSETBV, LGDT/LIDT/LLDT/LTR, INVLPG, OUT), HLT, INT n;
  an IN reads all ones (nothing on the port);
- a value: the instruction's result changed: (eax, ebx, ecx, edx) for CPUID,
  the TSC value for RDTSC, the MSR value for RDMSR, the CR value for MOV from
  CR, the counter for RDPMC, what IN/INS reads, the value SYSCALL returns in
  RAX (the system call is not made), or the value written for WRMSR / MOV to
  CR / XSETBV / LMSW / OUT / OUTS.

Table entries map a key (leaf or (leaf, subleaf) for cpuid, MSR index, CR
number, port for io, vector for int, ECX for rdpmc, RAX (the system call
number) for syscall, the instruction name for desc; "*" for any) to such an
answer or to a callable. Entries the core
can apply by itself are installed there and cost no exit: CPUID answers
(the CPUID table), MSR deny / fixed read values / ignored writes (the core's
MSR table, up to 16). Everything else sets the trap bit for its class; the
Hypervisor then dispatches each trap exit in Python. Kinds with no entry and
no callable are not trapped at all, so an empty policy costs nothing. Port
I/O exits to the VMM in any case; the policy is asked before the devices.
"""
from __future__ import annotations

from emu import _core

ALLOW = "allow"
DENY = "deny"
GP, UD = 13, 6

KINDS = ("cpuid", "rdtsc", "msr_read", "msr_write", "cr_read", "cr_write", "invlpg", "desc", "xsetbv",
         "hlt", "int", "rdpmc", "syscall", "io")
# the core's trap bit per kind (None: the instruction exits to the VMM anyway)
_TRAP_OF = {"cpuid": "cpuid", "rdtsc": "rdtsc", "msr_read": "msr", "msr_write": "msr", "cr_read": "cr",
            "cr_write": "cr", "invlpg": "invlpg", "desc": "desc", "xsetbv": "xsetbv", "hlt": "hlt",
            "int": "int", "rdpmc": "rdpmc", "syscall": "syscall_insn", "io": None}
_KIND_OF_OP = {"mov_to_cr": "cr_write", "clts": "cr_write", "lmsw": "cr_write", "mov_from_cr": "cr_read",
               "invlpg": "invlpg", "lgdt": "desc", "lidt": "desc", "sgdt": "desc", "sidt": "desc",
               "lldt": "desc", "ltr": "desc", "xsetbv": "xsetbv", "rdmsr": "msr_read", "wrmsr": "msr_write",
               "rdtsc": "rdtsc", "rdtscp": "rdtsc", "cpuid": "cpuid", "hlt": "hlt", "int": "int",
               "rdpmc": "rdpmc", "syscall": "syscall", "in": "io", "out": "io", "ins": "io", "outs": "io"}
TRAP_EXITS = frozenset(("CPUID", "RDTSC", "MSR", "PRIV", "IO"))
# what "ignore" means: retire without effect (the rest: complete as allowed)
_IGNORABLE = frozenset(("mov_to_cr", "clts", "lmsw", "invlpg", "lgdt", "lidt", "lldt", "ltr", "xsetbv",
                        "wrmsr", "hlt", "int"))


class Deny:
    """Refuse the instruction with exception `vector` (error code for the
    vectors that push one; None: 0 for those, none otherwise)."""

    def __init__(self, vector: int = GP, error_code: int | None = None):
        self.vector = vector
        self.error_code = error_code

    def __repr__(self):
        return "Deny(%d)" % self.vector


class TrapEvent:
    """One trapped instruction. kind: the event kind; op: the instruction
    (cpuid, rdtsc, rdtscp, rdmsr, wrmsr, mov_to_cr, mov_from_cr, clts, lmsw,
    invlpg, lgdt, lidt, sgdt, sidt, lldt, ltr, xsetbv, hlt, int, rdpmc,
    syscall, in, out, ins, outs); rip: its address; key: what a table is
    indexed by (leaf/(leaf, subleaf), MSR, CR number, port, vector, counter,
    system call number, instruction name, or None); value: the value written
    (WRMSR, MOV to CR, LMSW, XSETBV, OUT/OUTS), the address (INVLPG, LGDT,
    LIDT, SGDT, SIDT) or the selector (LLDT, LTR)."""
    __slots__ = ("kind", "op", "rip", "key", "value", "vcpu", "exit", "leaf", "subleaf", "msr", "cr", "gpr",
                 "port", "size", "vector")

    def __init__(self, vcpu, ex):
        self.vcpu = vcpu
        self.exit = ex
        self.op = ex.op
        self.kind = _KIND_OF_OP[ex.op]
        self.rip = ex.rip
        self.leaf = self.subleaf = self.msr = self.cr = self.gpr = None
        self.port = self.size = self.vector = None
        self.value = None
        if self.kind == "io":
            self.port, self.size, self.key = ex.port, ex.size, ex.port
            self.value = ex.value if ex.write else None
        elif self.kind in ("int", "rdpmc", "syscall"):
            self.key = ex.value & 0xFFFFFFFF if self.kind == "rdpmc" else ex.value
            self.vector = ex.value if self.kind == "int" else None
        elif self.kind == "cpuid":
            self.leaf, self.subleaf = vcpu.rax & 0xFFFFFFFF, vcpu.rcx & 0xFFFFFFFF
            self.key = (self.leaf, self.subleaf)
        elif ex.name == "MSR":
            self.msr = ex.msr
            self.key = ex.msr
            self.value = ex.value if ex.write else None
        elif self.kind in ("cr_read", "cr_write"):
            self.cr = ex.cr
            self.gpr = ex.gpr
            self.key = ex.cr
            self.value = ex.value if self.kind == "cr_write" else None
        elif self.kind == "desc":
            self.key = self.op
            self.value = ex.value
        else:
            self.key = None
            self.value = ex.value if self.kind in ("invlpg", "xsetbv") else None

    def fault(self) -> tuple[int, int | None]:
        """The architectural fault (vector, error code) a refusal raises."""
        if self.kind == "syscall":
            return UD, None
        if self.kind == "int":
            return GP, self.vector * 8 + 2          # IDT bit set: the gate was refused
        return GP, 0

    def default(self):
        """What the core would produce (CPUID registers, TSC...)."""
        v = self.vcpu
        if self.kind == "cpuid":
            return v.cpuid(self.leaf, self.subleaf)
        if self.kind == "rdtsc":
            return v.tsc_at_trap()
        if self.kind == "msr_read":
            try:
                return v.get_msr(self.msr)
            except KeyError:
                return None
        if self.kind == "rdpmc":
            return 0                        # the core counts no events
        return self.value

    def __repr__(self):
        return "<TrapEvent %s key=%r value=%r rip=%#x>" % (self.op, self.key, self.value, self.rip)


def _lookup(table: dict, key):
    if key in table:
        return table[key]
    if isinstance(key, tuple) and (key[0], None) in table:
        return table[(key[0], None)]
    if isinstance(key, tuple) and key[0] in table:
        return table[key[0]]
    return table.get("*", _MISSING)


_MISSING = object()


class Policy:
    """A trap policy: a declarative table and/or callables per event kind
    (keyword arguments named like the kinds, or `default` for every kind)."""

    def __init__(self, table: dict | None = None, default=None, **handlers):
        table = dict(table or {})
        for k in list(table) + list(handlers):
            if k not in KINDS:
                raise ValueError("unknown trap event kind %r (one of %s)" % (k, ", ".join(KINDS)))
        self.table = {k: dict(v) if isinstance(v, dict) else {"*": v} for k, v in table.items()}
        self.handlers = handlers
        self.default_handler = default

    # ---- what goes into the core ----
    def core_msr_entries(self) -> list[tuple]:
        """(msr, action bits, value) the core applies without an exit."""
        acts: dict[int, list] = {}
        P = _core.MSR_POLICY
        for kind, bit_deny, bit_val in (("msr_read", P["deny_read"], P["fixed_read"]),
                                        ("msr_write", P["deny_write"], P["ignore_write"])):
            for key, ans in self.table.get(kind, {}).items():
                if not isinstance(key, int):
                    continue
                e = acts.setdefault(key, [0, 0])
                if ans == DENY:
                    e[0] |= bit_deny
                elif kind == "msr_read" and isinstance(ans, int):
                    e[0] |= bit_val
                    e[1] = ans & 0xFFFFFFFFFFFFFFFF
                elif kind == "msr_write" and ans == "ignore":
                    e[0] |= bit_val
        out = [(k, a, v) for k, (a, v) in sorted(acts.items()) if a]
        return out[:16]

    def _core_handled(self, kind, key, ans) -> bool:
        if kind == "cpuid":
            return isinstance(key, (int, tuple)) and isinstance(ans, (tuple, list))
        if kind in ("msr_read", "msr_write"):
            if not isinstance(key, int):
                return False
            return any(e[0] == key for e in self.core_msr_entries()) and not callable(ans) and ans != ALLOW
        return False

    def cpuid_overrides(self) -> dict:
        return {k: tuple(v) for k, v in self.table.get("cpuid", {}).items()
                if self._core_handled("cpuid", k, v)}

    def trap_mask(self) -> int:
        """Trap bits needed for the kinds this policy must see in Python."""
        T = _core.TRAPS
        mask = 0
        for kind in KINDS:
            if _TRAP_OF[kind] is None:
                continue
            need = self.default_handler is not None or kind in self.handlers
            if not need:
                need = any(not self._core_handled(kind, k, a) for k, a in self.table.get(kind, {}).items())
            if need:
                mask |= T[_TRAP_OF[kind]]
        return mask

    # ---- deciding ----
    def decide(self, ev: TrapEvent):
        ans = _MISSING
        t = self.table.get(ev.kind)
        if t:
            ans = _lookup(t, ev.key)
        if ans is _MISSING:
            h = self.handlers.get(ev.kind, self.default_handler)
            ans = h(ev) if h is not None else None
        elif callable(ans):
            ans = ans(ev)
        return ans


class Hypervisor:
    """Applies a Policy to a vCPU: installs what the core can do alone (CPUID
    table, MSR table, trap bits), and dispatches trap exits to the policy.

    `handle(exit)` -> True when the exit was a trap it answered (run again);
    `run(budget)` runs until an exit the policy does not consume."""

    def __init__(self, policy: Policy | None = None, cpuid_table=None):
        self.policy = policy or Policy()
        self.cpuid_table = cpuid_table
        self.events = 0

    def install(self, vcpu) -> None:
        from emu.hypervisor import cpuid_profiles as cp
        base = self.cpuid_table
        over = self.policy.cpuid_overrides()
        if base is not None or over:
            if base is None:
                base = vcpu.get_cpuid_table()
            vcpu.set_cpuid_table(cp.user_table(base, over) if over else base)
        vcpu.set_msr_policy(self.policy.core_msr_entries())
        keep = vcpu.trap_mask & _core.TRAPS["syscall"]
        vcpu.trap_mask = keep | self.policy.trap_mask()

    def wants_io(self) -> bool:
        p = self.policy
        return "io" in p.table or "io" in p.handlers or p.default_handler is not None

    def handle(self, vcpu, ex) -> bool:
        """Answer a trap exit. True: done, run the vCPU again; False: not a
        trap this policy answers, or port I/O it allows (the caller's devices
        perform it; an OUT value the policy changed is in ex.value)."""
        if ex.name not in TRAP_EXITS or not vcpu.trap_open:
            return False
        if ex.name == "IO" and not self.wants_io():
            return False
        ev = TrapEvent(vcpu, ex)
        self.events += 1
        ans = self.policy.decide(ev)
        if ans is None or ans == ALLOW or ans is True:
            if ev.kind == "io":
                return False
            vcpu.complete_trap()
        elif ans == DENY or ans is False:
            vcpu.inject_exception(*ev.fault())
        elif ans == "ud":
            vcpu.inject_exception(UD)
        elif ans == "ignore":
            if ev.kind == "io":
                if ex.write:
                    vcpu.skip_trap()
                else:
                    vcpu.complete_trap((1 << (8 * ex.size)) - 1)
            elif ev.op in _IGNORABLE:
                vcpu.skip_trap()
            else:
                vcpu.complete_trap()
        elif isinstance(ans, Deny):
            vcpu.inject_exception(ans.vector, ans.error_code)
        elif ev.kind == "io" and ex.write:
            ex.value = int(ans) & ((1 << (8 * ex.size)) - 1)
            return False                    # the device sees the changed value
        else:
            vcpu.complete_trap(ans)
        return True

    def run(self, vcpu, budget: int | None = None):
        """vcpu.run() until an exit the policy does not answer (the budget
        counts every instruction retired across the trap exits)."""
        end = None if budget is None else vcpu.icount + budget
        while True:
            ex = vcpu.run() if end is None else vcpu.run(max(0, end - vcpu.icount))
            if not self.handle(vcpu, ex):
                return ex

