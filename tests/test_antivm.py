"""guests/antivm under the two profiles of `emu run --profile`: stealth looks
like bare metal to every check, transparent is seen as a hypervisor; and the
virtual /proc/cpuinfo and DMI files agree with the CPUID table."""
import os
import subprocess
import sys

import pytest

import emu as _emu_pkg
from emu.hypervisor import Guest, cpuid_profiles as cp
from emu.hypervisor.platform import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANTIVM = os.path.join(ROOT, "guests", "antivm", "antivm")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
CHECKS = ["cpuid_hypervisor_bit", "cpuid_hypervisor_vendor", "cpuid_vendor", "cpuid_brand_string",
          "rdtsc_cpuid_exit", "rdtsc_consecutive", "cpuinfo_hypervisor_flag", "dmi_strings",
          "kernel_release", "descriptor_tables"]


def emu_run(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = EMU_PATH + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(ROOT), env=env)


def results(out: str) -> dict:
    res = {}
    for line in out.splitlines():
        name, _, rest = line.partition(": ")
        if name in CHECKS:
            res[name] = rest.split()[0]
    assert sorted(res) == sorted(CHECKS), out
    return res


@pytest.mark.parametrize("time", ["virtual", "host"])
def test_stealth_detects_nothing(time):
    r = emu_run("--profile", "stealth", "--time", time, ANTIVM)
    res = results(r.stdout)
    assert all(v == "clean" for v in res.values()), r.stdout
    assert r.returncode == 0 and "detections: 0" in r.stdout
    assert "GenuineIntel" in r.stdout and "Intel(R) Core(TM)" in r.stdout


@pytest.mark.parametrize("args", [["--profile", "transparent", "--time", "virtual"], []])
def test_transparent_is_detected(args):
    r = emu_run(*args, ANTIVM)       # [] : transparent is the default profile
    res = results(r.stdout)
    for name in ("cpuid_hypervisor_bit", "cpuid_hypervisor_vendor", "cpuinfo_hypervisor_flag", "dmi_strings",
                 "kernel_release"):
        assert res[name] == "DETECTED", r.stdout
    assert "(EmuEmuEmuEmu)" in r.stdout
    # timing is not what gives emu away: its TSC never shows an exit; nor do the
    # descriptor-table registers (they read as Linux's)
    assert res["rdtsc_cpuid_exit"] == "clean" and res["rdtsc_consecutive"] == "clean"
    assert res["descriptor_tables"] == "clean"
    assert r.returncode == sum(v == "DETECTED" for v in res.values()) >= 4


def test_virtual_platform_files():
    for profile in ("stealth", "transparent"):
        g = Guest(profile, "virtual")
        info = g.virtual_file("/proc/cpuinfo").decode()
        fl = next(l for l in info.splitlines() if l.startswith("flags")).split(":", 1)[1].split()
        if g.machine is None:
            assert set(fl) - {"constant_tsc", "nopl"} == set(cp.features(g.table))
        else:
            # a machine template's: the CPUID-defined flags exactly (Linux hides
            # osxsave), besides the ones Linux synthesizes for that part
            from emu.cpuid import FEATURE_BITS
            assert {f for f in fl if f in FEATURE_BITS} == set(cp.features(g.table)) - {"osxsave"}
            assert {"constant_tsc", "nopl", "rep_good", "cpuid"} <= set(fl)
        assert ("hypervisor" in fl) == (profile == "transparent")
        assert "vendor_id\t: %s" % cp.vendor_of(g.table) in info
        assert "cpu MHz\t\t: 3200.000" in info
        vendor = g.virtual_file("/sys/class/dmi/id/sys_vendor").decode().strip()
        assert (vendor == "emu") == (profile == "transparent")
        assert g.virtual_file("/sys/devices/virtual/dmi/id/bios_vendor") == g.virtual_file(
            "/sys/class/dmi/id/bios_vendor")
        assert g.virtual_file("/sys/class/dmi/id/product_serial") is False     # no host leak
        assert g.virtual_file("/etc/passwd") is None



def test_profiles_never_exceed_baseline():
    base = set(cp.features(cp.baseline()))
    for name in ("host", "stealth", "transparent"):
        t = cp.profile(name)
        assert set(cp.features(t)) - {"hypervisor"} <= base, name
    t = cp.stealth()
    d = cp.to_dict(t)
    assert all(cp._get(d, leaf) == cp._get(d, 0x16) for leaf, _ in d if 0x40000000 <= leaf < 0x50000000)
    d = cp.to_dict(cp.stealth(identity="amd"))
    assert not any(0x40000000 <= leaf < 0x50000000 for leaf, _ in d)
    assert not cp._get(d, 1)[2] >> 31
    t = cp.transparent(tsc_hz=2_000_000_000)
    d = cp.to_dict(t)
    assert cp.regs_str(cp._get(d, 0x40000000)[1:4]) == "EmuEmuEmuEmu"
    assert cp._get(d, 0x40000000)[0] == 0x40000010
    assert cp._get(d, 0x40000010)[0] == 2_000_000          # TSC kHz
    a, b, c, _ = cp._get(d, 0x15)
    assert c * b // a == 2_000_000_000                     # crystal x ratio = TSC Hz
    assert cp._get(d, 0x16)[0] == 2000                     # MHz
    assert cp._get(d, 0)[0] >= 0x16


def test_templates_mask_features():
    t = cp.apply_template(cp.baseline(), "core2")
    f = set(cp.features(t))
    assert "sse4_1" in f and "sse4_2" not in f and "popcnt" not in f and "rdtscp" not in f
    t = cp.apply_template(cp.baseline(), "x86-64-v1")
    assert {"sse", "sse2", "lm"} <= set(cp.features(t)) and "pni" not in cp.features(t)
    g = Guest("stealth", "virtual", template="nehalem")
    assert "movbe" not in cp.features(g.table) and "sse4_2" in cp.features(g.table)
    t = cp.user_table(cp.baseline(), {(0x40000000, None): (0x40000001, 1, 2, 3), 0x1234: (5, 6, 7, 8)})
    d = cp.to_dict(t)
    assert d[(0x1234, None)] == [5, 6, 7, 8] and d[(0x40000000, None)] == [0x40000001, 1, 2, 3]


def test_host_profile_identity():
    t = cp.host()
    h = cp.host_cpuid(0)
    if h is None:
        pytest.skip("no native CPUID")
    vendor = b"".join(x.to_bytes(4, "little") for x in (h[1], h[3], h[2])).decode()
    assert cp.vendor_of(t) == vendor
    assert not cp._get(cp.to_dict(t), 1)[2] >> 31


def test_descriptor_table_registers_read_as_linux():
    """SIDT, SGDT, STR, SLDT and SMSW in a Linux process give what Linux
    gives on a CPU without UMIP (the CPUID tables do not advertise it): the
    tables in CPU 0's entry area, the TSS selector 0x40, no LDT, and the CR0
    Linux runs with."""
    import struct
    import emu
    m = emu.Machine(16 << 20)
    m.map(0x400000, 0x1000)
    m.map(0x600000, 0x1000)
    # sidt [rdi]; sgdt [rdi+16]; str ax; mov ebx, 0x1234; sldt ebx; smsw rcx; ud2
    m.write(0x400000, bytes.fromhex("0f010f0f014710660f00c8bb341200000f00c3480f01e10f0b"))
    v = m.vcpu
    Guest("stealth").install(v)
    v.rip, v.rdi = 0x400000, 0x600000
    ex = v.run()
    assert ex.name == "EXCEPTION" and ex.vector == 6
    idt_lim, idt_base = struct.unpack("<HQ", m.read(0x600000, 10))
    gdt_lim, gdt_base = struct.unpack("<HQ", m.read(0x600010, 10))
    assert (idt_base, idt_lim) == (0xFFFFFE0000000000, 0xFFF)
    assert (gdt_base, gdt_lim) == (0xFFFFFE0000001000, 0x7F)
    assert v.rax & 0xFFFF == 0x40 and v.rbx == 0 and v.rcx == 0x80050033
