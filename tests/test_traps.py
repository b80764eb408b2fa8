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
    assert v1.trap_mask & 0x3FF == sum(_core.TRAPS[k] for k in ("cpuid", "rdtsc", "msr", "cr", "invlpg",
                                                                 "desc", "xsetbv"))
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

def run_antivm(tmp_path, policy):
    import os
    from emu.hypervisor import Guest
    from emu.linux.process import Process
    prog = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "guests", "antivm", "antivm")
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
