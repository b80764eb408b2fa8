"""Machine templates: one description of a whole real machine, from which
every surface a guest can read is generated (CPUID, /proc/cpuinfo,
/proc/version and uname, /sys/devices/system/cpu, the CPU count behind
sysconf, sched_getaffinity and get_nprocs, DMI, AT_HWCAP) and which sets
deceptive time up: the nominal TSC frequency, the cost of each instruction
class and the cache hierarchy's latencies.

A template describes a real part whose feature set the core implements
(no AVX: the pre-Sandy-Bridge Intel generations), so that no leaf claims
what the core cannot do and no leaf the real part has is missing. The data
sources of each template are listed in docs/stealth.md.

Leaf encodings follow the Intel SDM Vol. 2A, CPUID: leaf 2 cache and TLB
descriptors (Table 3-12), leaf 4 deterministic cache parameters, leaf 0xB
extended topology, leaf 0x80000006 L2 parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from emu.cpuid import FEATURE_BITS


@dataclass(frozen=True)
class Cache:
    level: int
    kind: str            # "Data", "Instruction", "Unified" (sysfs names)
    size_kb: int
    ways: int
    shared_threads: int  # logical processors sharing it
    inclusive: bool = False
    line: int = 64

    @property
    def sets(self) -> int:
        return self.size_kb * 1024 // (self.ways * self.line)


@dataclass(frozen=True)
class Template:
    name: str
    part: str                     # marketing name
    vendor: str
    signature: int                # CPUID.1:EAX
    brand: str
    tsc_hz: int                   # nominal frequency = TSC frequency (invariant TSC)
    cores: int
    threads_per_core: int
    max_leaf: int
    max_ext_leaf: int
    features: tuple               # Linux flag names with a CPUID bit (emu.cpuid.FEATURE_BITS)
    # the /proc/cpuinfo flags line as Linux 6.1 prints it for this part, in
    # its order (CPUID flags plus the ones Linux synthesizes)
    cpuinfo_flags: str
    bugs: str
    caches: tuple
    leaf2: tuple                  # CPUID.2 (eax, ebx, ecx, edx)
    fixed_leaves: dict            # other leaves verbatim: {(leaf, subleaf or None): (eax, ebx, ecx, edx)}
    phys_bits: int
    virt_bits: int
    microcode: int
    smt_shift: int                # leaf 0xB: x2APIC id bits per level
    core_shift: int
    max_logical: int              # CPUID.1:EBX[23:16]
    max_cores_field: int          # CPUID.4:EAX[31:26] + 1
    kernel_release: str
    kernel_version: str
    proc_version: str
    dmi: dict
    # deceptive time: extra cycles per instruction class (core/timing.pxi)
    # and (sets, ways, extra cycles of a hit) of L1d, L2, LLC, then DRAM
    class_costs: dict = field(default_factory=dict)
    dram_cycles: int = 200
    l2_cycles: int = 10
    llc_cycles: int = 40
    # the real part's ranges of the figures guests/antivm/timing measures, in
    # its units (ratios x10, cycles otherwise; sources in docs/stealth.md)
    ranges: dict = field(default_factory=dict)
    host_run: tuple = ()          # features the core runs on the host's own (need the host to have them)

    @property
    def ncpus(self) -> int:
        return self.cores * self.threads_per_core

    def apic_id(self, cpu: int) -> int:
        core, thread = divmod(cpu, self.threads_per_core)
        return (core << self.smt_shift) | thread

    def core_id(self, cpu: int) -> int:
        return cpu // self.threads_per_core

    def cache_levels(self):
        """The cache model's levels: L1d, L2, LLC (the largest level repeated
        when the part has no L3), then DRAM."""
        data = [c for c in self.caches if c.kind != "Instruction"]
        l1 = next(c for c in data if c.level == 1)
        l2 = next(c for c in data if c.level == 2)
        l3 = next((c for c in data if c.level == 3), l2)
        llc = self.llc_cycles if l3 is not l2 else self.l2_cycles
        return [(l1.sets, l1.ways, 0), (l2.sets, l2.ways, self.l2_cycles), (l3.sets, l3.ways, llc),
                (0, 0, self.dram_cycles)]

    def sibling_cpus(self, cache: Cache, cpu: int) -> list[int]:
        first = cpu - cpu % cache.shared_threads
        return list(range(first, min(self.ncpus, first + cache.shared_threads)))


def _bit_regs(features) -> dict:
    regs: dict = {}
    for name in features:
        leaf, sub, reg, bit = FEATURE_BITS[name]
        regs.setdefault((leaf, sub), [0, 0, 0, 0])[reg] |= 1 << bit
    return regs


def _str_regs(s: str, n: int) -> list[int]:
    b = s.encode()[:4 * n].ljust(4 * n, b"\0")
    return [int.from_bytes(b[i:i + 4], "little") for i in range(0, 4 * n, 4)]


def leaf4(t: Template, c: Cache) -> tuple:
    """CPUID.4 sub-leaf for one cache (SDM Vol. 2A, Table 3-8)."""
    kind = {"Data": 1, "Instruction": 2, "Unified": 3}[c.kind]
    eax = kind | c.level << 5 | 1 << 8 | (c.shared_threads - 1) << 14 | (t.max_cores_field - 1) << 26
    ebx = (c.line - 1) | 0 << 12 | (c.ways - 1) << 22
    return (eax, ebx, c.sets - 1, 2 if c.inclusive else 0)


def cpuid_table(t: Template, cpu: int = 0) -> list[tuple]:
    """The template's CPUID table as logical processor `cpu` reads it."""
    regs = _bit_regs(t.features)
    r1 = regs.get((1, None), [0, 0, 0, 0])
    r7 = regs.get((7, 0), [0, 0, 0, 0])
    re1 = regs.get((0x80000001, None), [0, 0, 0, 0])
    apic = t.apic_id(cpu)
    ebx, edx, ecx = _str_regs(t.vendor, 3)
    table = {
        (0, None): (t.max_leaf, ebx, ecx, edx),
        # EBX: brand index 0, CLFLUSH line in 8-byte units, addressable logical ids, initial APIC id
        (1, None): (t.signature, (64 // 8) << 8 | t.max_logical << 16 | apic << 24, r1[2], r1[3]),
        (2, None): t.leaf2,
    }
    for i, c in enumerate(t.caches):
        table[(4, i)] = leaf4(t, c)
    table[(4, len(t.caches))] = (0, 0, 0, 0)
    if t.max_leaf >= 7:
        table[(7, 0)] = (0, r7[1], r7[2], r7[3])
    if t.max_leaf >= 0xB and "xtopology" in t.cpuinfo_flags.split():
        table[(0xB, 0)] = (t.smt_shift, t.threads_per_core, 0x100, apic)
        table[(0xB, 1)] = (t.core_shift, t.ncpus, 0x201, apic)
        table[(0xB, 2)] = (0, 0, 2, apic)
    if "xsave" in t.features:
        # x87 and SSE state only (these parts predate AVX): the legacy area
        # and the header, 576 bytes (SDM Vol. 1, 13.4)
        table[(0xD, 0)] = (3, 576, 576, 0)
        table[(0xD, 1)] = (regs.get((0xD, 1), [0])[0], 0, 0, 0)
    table.update(t.fixed_leaves)
    table[(0x80000000, None)] = (t.max_ext_leaf, 0, 0, 0)
    table[(0x80000001, None)] = (0, 0, re1[2], re1[3])
    b = _str_regs(t.brand, 12)
    for i in range(3):
        table[(0x80000002 + i, None)] = tuple(b[4 * i:4 * i + 4])
    l2 = next(c for c in t.caches if c.level == 2)
    assoc = {1: 1, 2: 2, 4: 4, 8: 6, 16: 8, 24: 8, 32: 0xA}[l2.ways]
    table[(0x80000006, None)] = (0, 0, l2.size_kb << 16 | assoc << 12 | l2.line, 0)
    table.setdefault((0x80000007, None), (0, 0, 0, 0x100))     # invariant TSC
    table[(0x80000008, None)] = (t.virt_bits << 8 | t.phys_bits, 0, 0, 0)
    # Intel answers a leaf above the maximum with the highest basic leaf's
    # data (SDM CPUID), the hypervisor range included
    top = table.get((t.max_leaf, 0)) or table.get((t.max_leaf, None)) or (0, 0, 0, 0)
    for leaf in (0x40000000, 0x40000001, 0x40000010):
        table[(leaf, None)] = top
    return [(leaf, sub, *[r & 0xFFFFFFFF for r in regs_]) for (leaf, sub), regs_ in
            sorted(table.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1]))]


# ---- the shipped templates ----

_DEBIAN_61 = ("6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
              "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, "
              "GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)")

_SYS_EDX = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr "
            "sse sse2 ss ht tm pbe").split()

WESTMERE_I5_650 = Template(
    name="westmere-i5-650", part="Intel Core i5-650 (Clarkdale, Westmere microarchitecture, 32 nm)",
    vendor="GenuineIntel", signature=0x00020655,
    brand="Intel(R) Core(TM) i5 CPU         650  @ 3.20GHz", tsc_hz=3_200_000_000,
    cores=2, threads_per_core=2, max_leaf=0xB, max_ext_leaf=0x80000008,
    features=tuple(_SYS_EDX + "syscall nx rdtscp lm pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 "
                              "cx16 xtpr pdcm pcid sse4_1 sse4_2 popcnt aes lahf_lm".split()),
    cpuinfo_flags="fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx "
                  "fxsr sse sse2 ss ht tm pbe syscall nx rdtscp lm constant_tsc arch_perfmon pebs bts rep_good nopl "
                  "xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 "
                  "cx16 xtpr pdcm pcid sse4_1 sse4_2 popcnt aes lahf_lm pti ssbd ibrs ibpb stibp tpr_shadow vnmi "
                  "flexpriority ept vpid dtherm ida arat md_clear flush_l1d",
    bugs="cpu_meltdown spectre_v1 spectre_v2 spec_store_bypass l1tf mds swapgs itlb_multihit mmio_unknown",
    caches=(Cache(1, "Data", 32, 8, 2), Cache(1, "Instruction", 32, 4, 2), Cache(2, "Unified", 256, 8, 2),
            Cache(3, "Unified", 4096, 16, 16, inclusive=True)),
    leaf2=(0x55035A01, 0x00F0B2E3, 0, 0x09CA212C),
    fixed_leaves={(5, None): (0x40, 0x40, 3, 0x1120), (6, None): (7, 2, 9, 0),
                  (7, 0): (0, 0, 0, 0x9C000400),     # microcode: MD_CLEAR, IBRS/IBPB, STIBP, L1D_FLUSH, SSBD
                  (0xA, None): (0x07300403, 0, 0, 0x603), (0x80000007, None): (0, 0, 0, 0x100)},
    phys_bits=36, virt_bits=48, microcode=0x7, smt_shift=1, core_shift=5, max_logical=16, max_cores_field=8,
    kernel_release=_DEBIAN_61[0], kernel_version=_DEBIAN_61[1], proc_version=_DEBIAN_61[2],
    dmi={"sys_vendor": "Dell Inc.", "product_name": "OptiPlex 980", "product_version": "",
         "product_family": "", "board_vendor": "Dell Inc.", "board_name": "0D441T", "board_version": "A01",
         "bios_vendor": "Dell Inc.", "bios_version": "A18", "bios_date": "09/27/2013",
         "chassis_vendor": "Dell Inc.", "chassis_type": "6", "chassis_version": ""},
    class_costs={"div8": 21, "div32": 25, "div64": 38, "idiv64": 44, "mul": 2, "cpuid": 140, "rdtsc": 23,
                 "rdtscp": 35, "lock": 19, "rep": 20, "syscall": 450, "fence": 32, "clflush": 8,
                 "lfence": 3},
    l2_cycles=6, llc_cycles=35, dram_cycles=210,
    ranges={"div_add": (280, 900), "cpuid": (100, 250), "rdtsc": (18, 40), "dram_l1": (40, 200)},
    host_run=("aes", "pclmulqdq"),
)

PENRYN_E8400 = Template(
    name="penryn-e8400", part="Intel Core 2 Duo E8400 (Wolfdale, Penryn microarchitecture, 45 nm)",
    vendor="GenuineIntel", signature=0x0001067A,
    brand="Intel(R) Core(TM)2 Duo CPU     E8400  @ 3.00GHz", tsc_hz=3_000_000_000,
    cores=2, threads_per_core=1, max_leaf=0xD, max_ext_leaf=0x80000008,
    features=tuple(_SYS_EDX + "syscall nx lm pni dtes64 monitor ds_cpl vmx smx est tm2 ssse3 cx16 xtpr pdcm "
                              "sse4_1 xsave osxsave lahf_lm".split()),
    cpuinfo_flags="fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx "
                  "fxsr sse sse2 ss ht tm pbe syscall nx lm constant_tsc arch_perfmon pebs bts rep_good nopl cpuid "
                  "aperfmperf pni dtes64 monitor ds_cpl vmx smx est tm2 ssse3 cx16 xtpr pdcm sse4_1 xsave lahf_lm "
                  "pti tpr_shadow vnmi flexpriority vpid dtherm",
    bugs="cpu_meltdown spectre_v1 spectre_v2 spec_store_bypass l1tf mds swapgs itlb_multihit mmio_unknown",
    caches=(Cache(1, "Data", 32, 8, 1), Cache(1, "Instruction", 32, 8, 1), Cache(2, "Unified", 6144, 24, 2)),
    leaf2=(0x05B0B101, 0x005657F0, 0, 0x2CB4304E),
    fixed_leaves={(5, None): (0x40, 0x40, 3, 0x03122220), (6, None): (1, 2, 3, 0),
                  (0xA, None): (0x07280202, 0, 0, 0x503), (0x80000007, None): (0, 0, 0, 0)},
    phys_bits=36, virt_bits=48, microcode=0xA0B, smt_shift=0, core_shift=1, max_logical=2, max_cores_field=2,
    kernel_release=_DEBIAN_61[0], kernel_version=_DEBIAN_61[1], proc_version=_DEBIAN_61[2],
    dmi={"sys_vendor": "Dell Inc.", "product_name": "OptiPlex 760", "product_version": "",
         "product_family": "", "board_vendor": "Dell Inc.", "board_name": "0M858N", "board_version": "A00",
         "bios_vendor": "Dell Inc.", "bios_version": "A16", "bios_date": "08/06/2010",
         "chassis_vendor": "Dell Inc.", "chassis_type": "15", "chassis_version": ""},
    class_costs={"div8": 13, "div32": 22, "div64": 40, "idiv64": 50, "mul": 2, "cpuid": 190, "rdtsc": 30,
                 "rdtscp": 30, "lock": 21, "rep": 20, "syscall": 450, "fence": 30, "clflush": 8,
                 "lfence": 3},
    l2_cycles=14, llc_cycles=14, dram_cycles=230,
    ranges={"div_add": (180, 570), "cpuid": (150, 300), "rdtsc": (20, 70), "dram_l1": (40, 200)},
)

TEMPLATES = {t.name: t for t in (WESTMERE_I5_650, PENRYN_E8400)}
DEFAULT = WESTMERE_I5_650.name


def usable(t: Template) -> bool:
    """The core can run the template's features on this host (AES-NI and
    PCLMULQDQ run on the host's own units)."""
    from emu.cpuid import available_features
    return set(t.host_run) <= available_features()


def get(name: str | None = None) -> Template:
    """A template by name; None: the default one, or the first this host can
    run."""
    if name is not None:
        if name not in TEMPLATES:
            raise ValueError("unknown machine template %r (one of %s)" % (name, ", ".join(TEMPLATES)))
        t = TEMPLATES[name]
        if not usable(t):
            raise ValueError("machine template %s needs %s, which this host's CPU lacks"
                             % (name, ", ".join(t.host_run)))
        return t
    for t in [TEMPLATES[DEFAULT]] + list(TEMPLATES.values()):
        if usable(t):
            return t
    raise ValueError("no machine template can run on this host")
