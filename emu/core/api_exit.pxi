# The core's Python API: exit records (what vcpu.run() returns) and the names
# the hypervisor layer uses for exits, traps and GPRs.

EXIT_NAMES = {EXIT_NONE: "NONE", EXIT_HLT: "HLT", EXIT_IO: "IO", EXIT_MMIO: "MMIO",
              EXIT_CPUID: "CPUID", EXIT_RDTSC: "RDTSC", EXIT_MSR: "MSR",
              EXIT_SYSCALL: "SYSCALL", EXIT_EXCEPTION: "EXCEPTION", EXIT_HOOK: "HOOK",
              EXIT_BUDGET: "BUDGET", EXIT_SHUTDOWN: "SHUTDOWN", EXIT_STOPPED: "STOPPED",
              EXIT_PRIV: "PRIV", EXIT_STORM: "STORM"}

import enum as _enum

# exits and exceptions as IntEnums: they compare equal to the EXIT numbers
# and vector numbers, and print by name
ExitReason = _enum.IntEnum("ExitReason", [(EXIT_NAMES[i], i) for i in sorted(EXIT_NAMES)], module="emu")
ExitReason.__doc__ = "Why vcpu.run() returned (Exit.reason)."
# the architecture's exception vectors (Intel SDM vol. 3, table 6-1)
Vector = _enum.IntEnum("Vector", [("DE", 0), ("DB", 1), ("NMI", 2), ("BP", 3), ("OF", 4), ("BR", 5),
                                  ("UD", 6), ("NM", 7), ("DF", 8), ("TS", 10), ("NP", 11), ("SS", 12),
                                  ("GP", 13), ("PF", 14), ("MF", 16), ("AC", 17), ("MC", 18), ("XM", 19),
                                  ("VE", 20), ("CP", 21)], module="emu")
Vector.__doc__ = "x86 exception vectors (Exit.exception)."
cdef tuple EXIT_REASONS = tuple(ExitReason(i) if i in EXIT_NAMES else i for i in range(N_EXIT_REASONS))
cdef dict VECTORS = {int(v): v for v in Vector}

GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


cdef class Exit:
    """What vcpu.run() hands back: why the vCPU stopped, and the details."""
    cdef public object reason         # an ExitReason (IntEnum)
    cdef public object name
    cdef public uint64_t rip          # RIP of the instruction that caused the exit
    cdef public int vector            # EXCEPTION
    cdef public uint64_t error_code
    cdef public bint has_error_code
    cdef public uint64_t cr2
    cdef public uint64_t port, size, value   # IO, MMIO
    cdef public bint write
    cdef public uint64_t address             # MMIO
    cdef public uint64_t msr
    cdef public object op                    # PRIV / MSR: the trapped instruction (PRIV_NAMES)
    cdef public int cr, gpr                  # PRIV: control register, general register operand
    cdef public bint software                # EXCEPTION from INT n
    cdef public bint string                  # IO: one element of INS/OUTS
    cdef public int hook_id                  # HOOK: the hook (0 for the block hook)
    cdef public object kind                  # HOOK: "code", "block", "read", "write", "fetch"

    @property
    def exception(self):
        """For an EXCEPTION exit the vector as a Vector (an IntEnum; a
        vector of 32 and up, from INT n, as a plain int); None otherwise."""
        if self.reason != EXIT_EXCEPTION:
            return None
        return VECTORS.get(self.vector, self.vector)

    def __repr__(self):
        if self.reason == EXIT_EXCEPTION:
            return "<Exit EXCEPTION vector=%d error=%#x rip=%#x>" % (self.vector, self.error_code, self.rip)
        if self.reason == EXIT_MMIO:
            return "<Exit MMIO %s %#x size=%d value=%#x>" % ("write" if self.write else "read", self.address, self.size, self.value)
        if self.reason == EXIT_HOOK:
            return "<Exit HOOK %s id=%d address=%#x size=%d rip=%#x>" % (self.kind, self.hook_id, self.address, self.size, self.rip)
        return "<Exit %s rip=%#x>" % (self.name, self.rip)


cdef Exit exit_record(const Cpu* c, int reason):
    """The Exit object for an exit of the given reason, from the exit record in c."""
    cdef Exit e = Exit.__new__(Exit)
    e.reason = EXIT_REASONS[reason] if 0 <= reason < N_EXIT_REASONS else reason
    e.name = EXIT_NAMES.get(reason, str(reason))
    e.rip = c.exit_rip if reason != EXIT_BUDGET and reason != EXIT_STOPPED else c.rip
    if reason == EXIT_EXCEPTION:
        e.rip = c.rip
        e.vector = c.exc_vector
        e.error_code = c.exc_error
        e.has_error_code = c.exc_has_error
        e.cr2 = c.cr2
    elif reason == EXIT_STORM:
        e.vector = c.exc_vector         # the exception that keeps recurring
    elif reason == EXIT_MMIO:
        e.address = c.mmio_addr
        e.size = c.mmio_size
        e.write = c.mmio_write
        e.value = c.mmio_value
    elif reason == EXIT_IO:
        e.port = c.io_port
        e.size = c.io_size
        e.write = c.io_dir
        e.value = c.io_value
        e.string = c.io_string != 0
        e.op = ("outs" if e.write else "ins") if e.string else ("out" if e.write else "in")
    elif reason == EXIT_MSR:
        e.msr = c.msr_index
        e.op = PRIV_NAMES[c.priv_op]
        e.write = c.priv_op == PRIV_WRMSR
        e.value = c.priv_value
    elif reason == EXIT_RDTSC:
        e.op = PRIV_NAMES[c.priv_op]
    elif reason == EXIT_CPUID:
        e.op = "cpuid"
    elif reason == EXIT_PRIV:
        e.op = PRIV_NAMES[c.priv_op]
        if c.priv_op == PRIV_INT:
            e.vector = <int>c.priv_value
        e.cr = c.priv_cr
        e.gpr = c.priv_gpr if c.priv_gpr < 16 else -1
        e.value = c.priv_value
        e.address = c.priv_value
    elif reason == EXIT_HOOK:
        e.hook_id = c.hook_id
        e.kind = HOOK_KIND_NAMES.get(c.hook_kind)
        e.address = c.hook_addr
        e.size = c.hook_size
        e.value = c.hook_value
        e.write = c.hook_kind == HK_WRITE
    if reason == EXIT_EXCEPTION:
        e.software = c.exc_soft != 0
    return e


STATE_MAGIC = b"emu-vcpu-state-1"

# trap_mask bits, for the hypervisor layer
TRAPS = {"cpuid": TRAP_CPUID, "rdtsc": TRAP_RDTSC, "msr": TRAP_MSR, "hlt": TRAP_HLT,
         "cr": TRAP_CR, "invlpg": TRAP_INVLPG, "desc": TRAP_DESC, "int": TRAP_INT,
         "rdpmc": TRAP_RDPMC, "xsetbv": TRAP_XSETBV, "syscall": TRAP_SYSCALL,
         "syscall_insn": TRAP_SYSCALL_INSN}
EXIT = {v: k for k, v in EXIT_NAMES.items()}
# Vcpu.set_msr_policy action bits
MSR_POLICY = {"deny_read": MSRP_DENY_R, "deny_write": MSRP_DENY_W, "fixed_read": MSRP_FIXED_R,
              "ignore_write": MSRP_IGNORE_W}
