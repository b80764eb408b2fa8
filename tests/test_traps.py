"""Trap policies (emu/hypervisor/policy.py) on a CPL-0 guest: deny, change
the result, observe, allow; allowing everything must be invisible."""
import struct

import pytest

import emu
from emu import _core
from emu.hypervisor import DENY, Deny, Hypervisor, Policy

CODE = 0x400000
DATA = 0x600000
GP, UD = 13, 6
LSTAR, TSC_AUX, APIC_BASE = 0xC0000082, 0xC0000103, 0x1B

# every trappable instruction class, then RDMSR of an unknown MSR (#GP); assembled from
# (Intel syntax): cpuid x3 (leaf 0, 1, 0x40000000) storing to [rsi]; rdtsc; wrmsr TSC_AUX;
# rdtscp; wrmsr/rdmsr LSTAR; rdmsr TSC; mov from/to cr0/cr3/cr4 (OSXSAVE); xsetbv;
# CR0.TS set, clts, lmsw; invlpg; lgdt/sgdt/lidt/sidt; cr8 write/read; rdmsr 0x12345
ALL_PRIV = bytes.fromhex(
    "be0000600031c00fa28906895e04894e0889560cb8010000000fa2894e10b8000000400fa2895e140f3189461889561c"
    "b9030100c0b80500000031d20f300f01f9894620894e24b9820000c0b800000081baffffffff0f300f3289462889562c"
    "b9100000000f328946300f20c0488946380f20db0f22db0f20e00d000004000f22e031c9b80300000031d20f01d10f20c0"
    "83c8080f22c00f060f20c0488946400f01f00f20c0488946480f013e66c74660270048c74662003012000f0156600f0146"
    "700f015e600f018e80000000b905000000440f22c1440f20c248899690000000b9452301000f32")
# mov rbx, cr3; 6 x (mov cr3, rbx^8; mov cr3, rbx); hlt
CR3_LOOP = bytes.fromhex("0f20dbb9060000004889d84809c84883e0f84883f0080f22d80f22dbffc975e8f4")


def machine(code: bytes):
    m = emu.Machine(16 << 20, cpl=0)
    m.map(CODE, 0x2000)
    m.map(DATA, 0x2000)
    m.write(CODE, code)
    v = m.vcpu
    v.rip = CODE
    v.rsp = DATA + 0x1F00
    return m, v


def wrmsr(msr: int, value: int) -> bytes:
    # mov ecx, msr; mov eax, lo; mov edx, hi; wrmsr
    return (b"\xb9" + struct.pack("<I", msr) + b"\xb8" + struct.pack("<I", value & 0xFFFFFFFF)
            + b"\xba" + struct.pack("<I", value >> 32) + b"\x0f\x30")


def rdmsr(msr: int) -> bytes:
    return b"\xb9" + struct.pack("<I", msr) + b"\x0f\x32"


HLT = b"\xf4"


def state(m, v):
    return (v.regs(), v.icount, v.cr0, v.cr3, v.cr4, v.cr8, v.xcr0, v.gdtr, v.idtr, v.tsc_aux,
            v.get_msr(LSTAR), v.tsc, m.read(DATA, 0x200))


# ---- deny ----

@pytest.mark.parametrize("how", ["table", "callable"])
def test_deny_wrmsr_raises_gp(how):
    code = wrmsr(LSTAR, 0xFFFFFFFF81000000) + wrmsr(APIC_BASE, 0xFEE00900) + HLT
    m, v = machine(code)
    if how == "table":
        hv = Hypervisor(Policy({"msr_write": {APIC_BASE: DENY}}))
    else:
        hv = Hypervisor(Policy(msr_write=lambda ev: DENY if ev.msr == APIC_BASE else None))
    hv.install(v)
    ex = hv.run(v)
    second = CODE + 17 + 15          # the second WRMSR instruction
    assert ex.name == "EXCEPTION" and ex.vector == GP and ex.has_error_code and ex.error_code == 0
    assert ex.rip == second and v.rip == second
    assert v.get_msr(LSTAR) == 0xFFFFFFFF81000000       # the allowed write happened
    assert v.icount == 7                                 # the denied WRMSR did not retire
    exits = v.counters["exits"]
    if how == "table":
        # applied in the core: no MSR exit at all
        assert v.trap_mask & _core.TRAPS["msr"] == 0 and "MSR" not in exits
    else:
        assert exits["MSR"] == 2


def test_deny_other_vectors_and_cr():
    m, v = machine(b"\x0f\x20\xe0" + b"\x0d\x00\x00\x04\x00" + b"\x0f\x22\xe0" + HLT)   # cr4 |= OSXSAVE
    hv = Hypervisor(Policy({"cr_write": {4: Deny(UD)}}))
    hv.install(v)
    cr4 = v.cr4
    ex = hv.run(v)
    assert ex.name == "EXCEPTION" and ex.vector == UD and not ex.has_error_code and ex.rip == CODE + 8
    assert v.cr4 == cr4 and v.icount == 2
    # an answer from the table for one CR, the others allowed
    m, v = machine(b"\x0f\x20\xe0\x0f\x22\xe0\x0f\x20\xd8\x0f\x22\xd8" + HLT)
    hv = Hypervisor(Policy({"cr_write": {4: "deny"}}))
    hv.install(v)
    ex = hv.run(v)
    assert ex.name == "EXCEPTION" and ex.vector == GP and ex.rip == CODE + 3


def test_deny_rdtsc_cpuid_and_descriptor_tables():
    m, v = machine(b"\x0f\x31" + HLT)
    Hypervisor(Policy(rdtsc=lambda ev: DENY)).install(v)
    hv = Hypervisor(Policy(rdtsc=lambda ev: DENY))
    hv.install(v)
    ex = hv.run(v)
    assert ex.name == "EXCEPTION" and ex.vector == GP and ex.rip == CODE and v.icount == 0
    m, v = machine(b"\x0f\x01\x16" + HLT)            # lgdt [rsi]
    hv = Hypervisor(Policy(desc=lambda ev: DENY if ev.op == "lgdt" else None))
    hv.install(v)
    v.rsi = DATA
    ex = hv.run(v)
    assert ex.name == "EXCEPTION" and ex.vector == GP and v.gdtr == (0, 0)


# ---- change the result ----

def test_cpuid_rewrite_is_seen_by_the_guest():
    # cpuid leaf 0 and leaf 0x40000000, both stored; then hlt
    code = bytes.fromhex("be00006000" "31c00fa2" "8906895e04894e0889560c"
                         "b800000040" "0fa2" "894610895e14894e1889561c") + HLT
    m, v = machine(code)
    seen = []

    def leaf_hook(ev):
        seen.append(ev.leaf)
        if ev.leaf == 0x40000000:
            return (0x40000001, 0x11111111, 0x22222222, 0x33333333)
        return None

    hv = Hypervisor(Policy(cpuid=leaf_hook))
    hv.install(v)
    assert hv.run(v).name == "HLT"
    words = struct.unpack("<8I", m.read(DATA, 32))
    assert words[:4] == v.cpuid(0)
    assert words[4:] == (0x40000001, 0x11111111, 0x22222222, 0x33333333)
    assert seen == [0, 0x40000000]
    # the same as a table entry: merged into the core's CPUID table, no exit
    m, v = machine(code)
    hv = Hypervisor(Policy({"cpuid": {(0x40000000, None): (7, 8, 9, 10), 0: (1, 2, 3, 4)}}))
    hv.install(v)
    assert v.trap_mask & _core.TRAPS["cpuid"] == 0
    assert hv.run(v).name == "HLT"
    assert struct.unpack("<8I", m.read(DATA, 32)) == (1, 2, 3, 4, 7, 8, 9, 10)
    assert "CPUID" not in v.counters["exits"]


def test_rdmsr_and_rdtsc_values():
    code = rdmsr(0xCE) + b"\x48\x89\xc7" + rdmsr(APIC_BASE) + b"\x0f\x31" + HLT   # mov rdi, rax
    m, v = machine(code)
    hv = Hypervisor(Policy({"msr_read": {0xCE: 0x1234_5678_9ABC, APIC_BASE: 0xFEE00900}},
                           rdtsc=lambda ev: 0x0123_4567_89AB_CDEF))
    hv.install(v)
    assert v.trap_mask & _core.TRAPS["msr"] == 0          # both MSR answers live in the core
    assert hv.run(v).name == "HLT"
    assert v.rdi == 0x5678_9ABC
    assert (v.rdx << 32 | v.rax) == 0x0123_4567_89AB_CDEF
    # WRMSR value rewritten by a callable
    m, v = machine(wrmsr(LSTAR, 0xFFFFFFFF81000000) + HLT)
    hv = Hypervisor(Policy(msr_write=lambda ev: ev.value + 0x1000))
    hv.install(v)
    assert hv.run(v).name == "HLT" and v.get_msr(LSTAR) == 0xFFFFFFFF81001000


# ---- observe ----

def test_log_every_cr3_load():
    m, v = machine(CR3_LOOP)
    root = v.cr3
    log = []
    hv = Hypervisor(Policy(cr_write=lambda ev: log.append((ev.op, ev.cr, ev.value))))
    hv.install(v)
    ex = hv.run(v)
    assert ex.name == "HLT"
    assert log == [("mov_to_cr", 3, root ^ 8), ("mov_to_cr", 3, root)] * 6
    assert v.cr3 == root and hv.events == 13            # and the MOV RBX, CR3 read
    # the same run without the policy retires the same instructions
    m2, v2 = machine(CR3_LOOP)
    assert v2.run().name == "HLT" and v2.icount == v.icount


# ---- allow everything: invisible ----

def test_allow_all_is_invisible():
    m0, v0 = machine(ALL_PRIV)
    ex0 = v0.run()
    m1, v1 = machine(ALL_PRIV)
    kinds = []
    hv = Hypervisor(Policy(default=lambda ev: kinds.append(ev.kind)))
    hv.install(v1)
    assert v1.trap_mask == sum(_core.TRAPS.values())      # every class (and the personality's SYSCALL)
    ex1 = hv.run(v1)
    assert ex0.name == ex1.name == "EXCEPTION" and ex0.vector == ex1.vector == GP
    assert ex0.rip == ex1.rip
    assert state(m0, v0) == state(m1, v1)
    assert set(kinds) == {"cpuid", "rdtsc", "msr_read", "msr_write", "cr_read", "cr_write", "invlpg",
                          "desc", "xsetbv"}
    assert len(kinds) == 29
    # and the results are what the instructions should give
    words = struct.unpack("<20I", m1.read(DATA, 80))
    assert words[:4] == v1.cpuid(0) and words[9] == 5                  # RDTSCP's TSC_AUX in ECX
    assert struct.unpack("<Q", m1.read(DATA + 40, 8))[0] == 0xFFFFFFFF81000000
    assert v1.gdtr == v1.idtr == (0x123000, 0x27) and v1.cr8 == 5 and v1.xcr0 == 3


def test_allow_all_single_step_matches():
    # budget-limited runs through the hypervisor count instructions exactly
    m0, v0 = machine(ALL_PRIV)
    m1, v1 = machine(ALL_PRIV)
    hv = Hypervisor(Policy(default=lambda ev: None))
    hv.install(v1)
    for _ in range(200):
        e0, e1 = v0.run(1), hv.run(v1, 1)
        assert e0.name == e1.name and v0.regs() == v1.regs() and v0.icount == v1.icount
        if e0.name == "EXCEPTION":
            break
    assert e0.name == "EXCEPTION"


def test_no_policy_no_traps():
    m, v = machine(HLT)
    Hypervisor(Policy()).install(v)
    assert v.trap_mask & ~_core.TRAPS["syscall"] == 0
    Hypervisor(Policy({"msr_write": {APIC_BASE: DENY}})).install(v)
    assert v.trap_mask & ~_core.TRAPS["syscall"] == 0


def test_inject_exception_directly():
    m, v = machine(b"\x90\x90" + HLT)
    v.inject_exception(14, 0x6, cr2=0xDEAD000)
    ex = v.run()
    assert ex.name == "EXCEPTION" and ex.vector == 14 and ex.error_code == 6 and ex.cr2 == 0xDEAD000
    assert ex.rip == CODE and v.icount == 0
    assert v.run().name == "HLT" and v.icount == 3


def test_ignore_drops_writes():
    code = wrmsr(LSTAR, 0xFFFFFFFF81000000) + wrmsr(TSC_AUX, 9) + HLT
    for table in ({"msr_write": {"*": "ignore"}}, {"msr_write": {LSTAR: "ignore", TSC_AUX: "ignore"}}):
        m, v = machine(code)
        hv = Hypervisor(Policy(table))
        hv.install(v)
        assert hv.run(v).name == "HLT"
        assert v.get_msr(LSTAR) == 0 and v.tsc_aux == 0 and v.icount == 9
    # the second form lives in the core's MSR table: no exits
    assert "MSR" not in v.counters["exits"]


# ---- through the Linux personality ----

def run_guest(tmp_path, policy, *path):
    """A guests/ program under the Linux personality with a trap policy:
    (exit status, its output, the Hypervisor)."""
    import os
    from emu.hypervisor import Guest
    from emu.linux.process import Process
    prog = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "guests", *path)
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        guest = Guest("transparent", "virtual", policy=policy)
        p = Process([prog], env={}, stdio=(0, fd, 2), guest=guest)
        p.load(prog)
        status = p.run()
    finally:
        os.close(fd)
    return status, out.read_text(), guest.hypervisor


def run_antivm(tmp_path, policy):
    return run_guest(tmp_path, policy, "antivm", "antivm")


def test_policy_in_a_linux_process(tmp_path):
    def hide(ev):
        if ev.leaf == 0x40000000:
            return (0, 0, 0, 0)
        if ev.leaf == 1:
            a, b, c, d = ev.default()
            return (a, b, c & ~(1 << 31), d)
        return None
    status, out, hv = run_antivm(tmp_path, Policy(cpuid=hide))
    assert "cpuid_hypervisor_bit: clean" in out and "cpuid_hypervisor_vendor: clean" in out
    assert "dmi_strings: DETECTED" in out                  # the policy only rewrote CPUID
    assert hv.events > 1100                                # every CPUID went through Python
    # with virtual time the exits cost the guest no visible time
    assert "rdtsc_cpuid_exit: clean" in out
    # a user-mode guest whose RDTSC is denied gets SIGSEGV (like CR4.TSD / CPUID faulting)
    status, out, hv = run_antivm(tmp_path, Policy(rdtsc=lambda ev: DENY))
    assert status == 128 + 11 and "rdtsc_cpuid_exit" not in out


# ---- port I/O (IN/OUT, REP INS/OUTS), HLT, INT n, RDPMC, SYSCALL, LLDT/LTR ----

# (Intel syntax, at CODE, RSI = DATA): mov edx, 0x3f8; mov al, 'A'; out dx, al; in al, dx;
# mov [rsi], al; mov ax, 0x1234; out 0x80, ax; in eax, 0x71; mov [rsi+4], eax;
# lea rbx, [msg]; xchg rbx, rsi; mov ecx, 3; rep outsb; xchg rbx, rsi; lea rdi, [rsi+0x10];
# mov ecx, 2; rep insw; insd; xor eax, eax; lldt ax; wrmsr LSTAR = entry; mov eax, 39;
# syscall; back: mov [rsi+0x20], rax; int 0x80; mov [rsi+0x28], rax; xor ecx, ecx; rdpmc (#GP:
# no counters); entry: mov rax, 0x77; jmp rcx; msg: "xyz"
IO_PRIV = bytes.fromhex(
    "baf8030000b041eeec880666b8341266e780e571894604488d1d520000004887f3b903000000f36e4887f3488d7e10"
    "b90200000066f36d6d31c00f00d0b9820000c0488d051e0000004889c248c1ea200f30b8270000000f0548894620cd80"
    "4889462831c90f3348c7c077000000ffe178797a")
AT_OUTSB, AT_LLDT, AT_SYSCALL, AT_INT, AT_RDPMC = CODE + 0x26, CODE + 0x3A, CODE + 0x57, CODE + 0x5D, CODE + 0x65
IO_LOG = [("out", 0x3F8, 1, 0x41), ("in", 0x3F8, 1, None), ("out", 0x80, 2, 0x1234), ("in", 0x71, 4, None),
          ("outs", 0x3F8, 1, 0x78), ("outs", 0x3F8, 1, 0x79), ("outs", 0x3F8, 1, 0x7A),
          ("ins", 0x3F8, 2, None), ("ins", 0x3F8, 2, None), ("ins", 0x3F8, 4, None), ("int", 0x80)]


def io_machine():
    m, v = machine(IO_PRIV)
    v.trap_mask = 0                  # SYSCALL goes to LSTAR (no user-mode personality)
    v.rsi = DATA
    return m, v


def drive(v, hv=None, budget=None):
    """Run to the end of IO_PRIV as a VMM would: a device that logs port writes
    and answers reads with 0xC0DE00nn (nn: its position in the log); INT n
    exits resume after the instruction."""
    log = []
    while True:
        ex = hv.run(v, budget) if hv is not None else v.run() if budget is None else v.run(budget)
        if ex.name == "IO":
            log.append((ex.op, ex.port, ex.size, ex.value if ex.write else None))
            if not ex.write:
                v.complete_io_in((0xC0DE0000 | len(log)) & ((1 << 8 * ex.size) - 1))
        elif ex.name == "EXCEPTION" and ex.software:
            log.append(("int", ex.vector))
        elif ex.name != "BUDGET":
            return ex, log


def test_string_io_and_io_exits():
    m, v = io_machine()
    ex, log = drive(v)
    assert log == IO_LOG
    assert ex.name == "EXCEPTION" and ex.vector == GP and ex.rip == AT_RDPMC
    d = m.read(DATA, 0x30)
    assert d[0] == 2 and struct.unpack_from("<I", d, 4)[0] == 0xC0DE0004
    # REP INSW stored two words, INSD a dword, each the value its exit answered
    assert struct.unpack_from("<HHI", d, 0x10) == (0x0008, 0x0009, 0xC0DE000A)
    assert struct.unpack_from("<Q", d, 0x20)[0] == 0x77          # SYSCALL went to LSTAR and back
    assert v.rdi == DATA + 0x18 and v.rbx == CODE + 0x70 + 3
    # each element is one exit, the instruction retires once
    assert v.counters["exits"]["IO"] == 10
    assert v.icount == 33


def test_string_io_interrupted_between_elements():
    # a fault injected at the second OUTS element: the first is committed, the
    # guest sees RSI/RCX of one element done and the fault at the instruction
    m, v = io_machine()
    n = []

    def io(ev):
        if ev.op == "outs":
            n.append(ev.value)
            if len(n) == 2:
                return DENY
        return None
    hv = Hypervisor(Policy(io=io))
    hv.install(v)
    ex, log = drive(v, hv)
    assert ex.name == "EXCEPTION" and ex.vector == GP and ex.error_code == 0 and ex.rip == AT_OUTSB
    assert n == [0x78, 0x79] and log[-1] == ("outs", 0x3F8, 1, 0x78)
    assert v.rsi == CODE + 0x71 and v.rcx == 2 and v.icount == 12


def test_allow_all_io_and_early_traps_is_invisible():
    m0, v0 = io_machine()
    ex0, log0 = drive(v0)
    m1, v1 = io_machine()
    ops = []
    hv = Hypervisor(Policy(default=lambda ev: ops.append(ev.op)))
    hv.install(v1)
    for k in ("hlt", "int", "rdpmc", "syscall_insn", "desc"):
        assert v1.trap_mask & _core.TRAPS[k]
    ex1, log1 = drive(v1, hv)
    assert (ex0.name, ex0.vector, ex0.rip) == (ex1.name, ex1.vector, ex1.rip)
    assert log0 == log1 and state(m0, v0) == state(m1, v1)
    assert ops == ["out", "in", "out", "in", "outs", "outs", "outs", "ins", "ins", "ins", "lldt", "wrmsr",
                   "syscall", "int", "rdpmc"]
    # single-stepped, with the trap exits in between, the instruction counts agree
    m2, v2 = io_machine()
    hv2 = Hypervisor(Policy(default=lambda ev: None))
    hv2.install(v2)
    ex2, log2 = drive(v2, hv2, budget=1)
    assert log2 == log0 and state(m2, v2) == state(m0, v0)


@pytest.mark.parametrize("kind,key,at,vector,error", [
    ("syscall", 39, AT_SYSCALL, UD, None),           # as with EFER.SCE clear
    ("int", 0x80, AT_INT, GP, 0x80 * 8 + 2),         # as for a gate the caller may not use
    ("desc", "lldt", AT_LLDT, GP, 0),
    ("io", 0x80, CODE + 15, GP, 0),
])
def test_deny_raises_the_architectural_fault(kind, key, at, vector, error):
    m, v = io_machine()
    hv = Hypervisor(Policy({kind: {key: DENY}}))
    hv.install(v)
    ex, log = drive(v, hv)
    assert ex.name == "EXCEPTION" and ex.rip == at and v.rip == at and ex.vector == vector
    assert ex.has_error_code == (error is not None) and (error is None or ex.error_code == error)
    if kind == "syscall":
        assert v.rcx == LSTAR and v.r11 == 0          # SYSCALL did not act: RCX/R11 untouched
    if kind == "io":
        assert log == IO_LOG[:2] and v.icount == 6    # the refused OUT did not retire


def test_values_change_results():
    m, v = io_machine()
    seen = []
    hv = Hypervisor(Policy({"io": {0x71: 0x5A5A5A5A, 0x80: 0xBEEF},
                            "syscall": {39: 4242},
                            "rdpmc": {0: 0x1122334455},
                            "int": {0x80: "ignore"}},
                           desc=lambda ev: seen.append((ev.op, ev.value)) or "ignore"))
    hv.install(v)
    v.ldtr = (0x28, 0x1000, 0x67)
    ex, log = drive(v, hv)
    assert ex.name == "HLT" or ex.name == "EXCEPTION"
    d = m.read(DATA, 0x30)
    assert struct.unpack_from("<I", d, 4)[0] == 0x5A5A5A5A                  # IN read the policy's value
    assert ("out", 0x80, 2, 0xBEEF) in log and ("out", 0x80, 2, 0x1234) not in log   # OUT's value changed
    assert ("in", 0x71, 4, None) not in log                                 # the device never saw it
    assert struct.unpack_from("<Q", d, 0x20)[0] == 4242                     # SYSCALL returned the value...
    assert v.rcx != LSTAR                                                  # ...with RCX/R11 as SYSCALL sets
    assert ("int", 0x80) not in log                                        # INT 0x80 ignored
    assert seen == [("lldt", 0)] and v.ldtr == (0x28, 0x1000, 0x67)        # LLDT ignored
    # RDPMC read the policy's counter and went on into `entry` (RCX = 0: jmp 0 faults)
    assert (v.rax, v.rdx) == (0x77, 0x11)
    assert ex.name == "EXCEPTION" and ex.vector == 14 and ex.rip == 0


def test_hlt_trap():
    for ans, name, icount in ((None, "HLT", 1), ("ignore", "EXCEPTION", 1), (DENY, "EXCEPTION", 0)):
        m, v = machine(HLT + b"\x0f\x0b")
        hv = Hypervisor(Policy(hlt=lambda ev: ans))
        hv.install(v)
        ex = hv.run(v)
        assert ex.name == name and v.icount == icount and hv.events == 1
        if ans == DENY:
            assert ex.vector == GP and ex.rip == CODE
        elif ans == "ignore":
            assert ex.vector == UD and ex.rip == CODE + 1      # went on to the UD2


def test_syscall_policy_in_a_linux_process(tmp_path):
    def run(policy):
        return run_guest(tmp_path, policy, "hello", "hello")[:2]

    nrs = []
    assert run(Policy(syscall=lambda ev: nrs.append(ev.key))) == (0, "Hello from emu!\n")
    assert nrs == [1, 231]
    assert run(Policy({"syscall": {1: 16}})) == (0, "")                 # write answered, never made
    assert run(Policy({"syscall": {231: DENY}}))[0] == 128 + 4          # #UD: SIGILL
