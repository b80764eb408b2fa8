"""The CPU models: one table of which features each model advertises, and the
CPUID table generated from it (SDM Vol. 2A, CPUID). The default model
advertises what the core implements; `emu run --cpu MODEL` and
`Machine(cpu=...)` pick another, so each ifunc path of a program can be
tested. The stealth templates (emu/hypervisor/cpuid_profiles.py) mask with
the same models."""
from __future__ import annotations

# Every feature flag the core knows: Linux /proc/cpuinfo name ->
# (leaf, subleaf or None, register 0..3 = eax ebx ecx edx, bit)
FEATURE_BITS: dict[str, tuple] = {}


def _bits(leaf, sub, reg, names):
    for bit, name in names.items():
        FEATURE_BITS[name] = (leaf, sub, reg, bit)


_bits(1, None, 3, {0: "fpu", 1: "vme", 2: "de", 3: "pse", 4: "tsc", 5: "msr", 6: "pae", 7: "mce", 8: "cx8",
                   9: "apic", 11: "sep", 12: "mtrr", 13: "pge", 14: "mca", 15: "cmov", 16: "pat", 17: "pse36",
                   19: "clflush", 21: "dts", 22: "acpi", 23: "mmx", 24: "fxsr", 25: "sse", 26: "sse2",
                   27: "ss", 28: "ht", 29: "tm", 31: "pbe"})
_bits(1, None, 2, {0: "pni", 1: "pclmulqdq", 2: "dtes64", 3: "monitor", 4: "ds_cpl", 5: "vmx", 6: "smx", 7: "est",
                   8: "tm2", 9: "ssse3", 12: "fma", 13: "cx16", 14: "xtpr", 15: "pdcm", 17: "pcid", 19: "sse4_1",
                   20: "sse4_2", 21: "x2apic", 22: "movbe", 23: "popcnt", 25: "aes", 26: "xsave",
                   27: "osxsave", 28: "avx", 29: "f16c", 30: "rdrand", 31: "hypervisor"})
_bits(7, 0, 1, {0: "fsgsbase", 3: "bmi1", 5: "avx2", 7: "smep", 8: "bmi2", 9: "erms", 10: "invpcid",
                16: "avx512f", 18: "rdseed", 19: "adx", 20: "smap", 23: "clflushopt", 24: "clwb", 29: "sha_ni"})
_bits(7, 0, 2, {2: "umip", 9: "vaes", 10: "vpclmulqdq", 22: "rdpid"})
_bits(7, 0, 3, {4: "fsrm", 10: "md_clear", 28: "flush_l1d"})
# thermal and power management (leaf 6 EAX): flags the machine templates show
_bits(6, None, 0, {0: "dtherm", 1: "ida", 2: "arat"})
_bits(0xD, 1, 0, {0: "xsaveopt", 1: "xsavec", 2: "xgetbv1", 3: "xsaves"})
_bits(0x80000001, None, 2, {0: "lahf_lm", 5: "abm", 6: "sse4a", 8: "3dnowprefetch"})
_bits(0x80000001, None, 3, {11: "syscall", 20: "nx", 26: "pdpe1gb", 27: "rdtscp", 29: "lm"})

# ---- the models (x86-64 psABI microarchitecture levels, then everything) ----
_X86_64 = ("fpu tsc cx8 cmov clflush mmx fxsr sse sse2 syscall nx lm").split()
_V2 = _X86_64 + "cx16 lahf_lm popcnt pni ssse3 sse4_1 sse4_2".split()
_V3 = _V2 + "avx avx2 bmi1 bmi2 f16c fma abm movbe xsave".split()
MODELS: dict[str, tuple[str, ...]] = {
    "x86-64": tuple(_X86_64),
    "x86-64-v2": tuple(_V2),
    "x86-64-v3": tuple(_V3),
    # everything emu implements: x86-64-v3, the crypto extensions, and the rest
    "max": tuple(_V3 + "aes pclmulqdq sha_ni rdrand rdseed adx fsgsbase xsaveopt xsavec xgetbv1 xsaves "
                       "pdpe1gb rdtscp".split()),
    # older Intel parts (the stealth templates): Core 2 (Penryn) and Nehalem
    "core2": tuple(_X86_64 + "cx16 lahf_lm pni ssse3 sse4_1".split()),
    "nehalem": tuple(_V2 + ["rdtscp"]),
}
DEFAULT_MODEL = "max"
# the models a user picks with --cpu (the others serve the templates)
USER_MODELS = ("x86-64", "x86-64-v2", "x86-64-v3", "max")

# XSAVE state components (SDM Vol. 1, 13.1): bit -> (size, offset in the standard form)
XSAVE_COMPONENTS = {0: (160, 0), 1: (256, 160), 2: (256, 576)}
XSAVE_LEGACY_AND_HEADER = 576


def _regs_from_str(s: str) -> tuple[int, int, int]:
    b = s.encode().ljust(12, b"\0")
    return tuple(int.from_bytes(b[i:i + 4], "little") for i in (0, 4, 8))


def available_features() -> set[str]:
    """The features this core can offer on this host (the host-run extensions,
    AVX and the crypto ones, need the host's own)."""
    from emu import _core
    host_run = {"avx", "avx2", "fma", "f16c", "aes", "pclmulqdq", "sha_ni"}
    have = set(_core.core_feature_names())
    return {n for n in FEATURE_BITS if n not in host_run or n in have}


def model_features(model: str) -> tuple[str, ...]:
    """The features a model advertises on this host."""
    if model not in MODELS:
        raise ValueError("unknown CPU model %r (one of %s)" % (model, ", ".join(USER_MODELS)))
    avail = available_features()
    feats = [f for f in MODELS[model] if f in avail]
    if "avx" not in feats:          # the AVX family stands or falls together
        feats = [f for f in feats if f not in ("avx2", "fma", "f16c")]
    return tuple(feats)


def cpuid_table(model: str = DEFAULT_MODEL) -> list[tuple]:
    """The CPUID table of a model: (leaf, subleaf or None, eax, ebx, ecx, edx)."""
    feats = set(model_features(model))
    regs: dict[tuple, list[int]] = {}
    for name in feats:
        leaf, sub, reg, bit = FEATURE_BITS[name]
        regs.setdefault((leaf, sub), [0, 0, 0, 0])[reg] |= 1 << bit
    r1 = regs.get((1, None), [0, 0, 0, 0])
    r7 = regs.get((7, 0), [0, 0, 0, 0])
    re1 = regs.get((0x80000001, None), [0, 0, 0, 0])
    rd1 = regs.get((0xD, 1), [0, 0, 0, 0])
    # A real vendor: glibc's dynamic loader only trusts the feature bits of
    # vendors it knows (with any other string it finds the x86-64 baseline ISA
    # missing and refuses to start). emu announces itself in the hypervisor
    # leaves (0x40000000) of the transparent profile instead.
    ebx, edx, ecx = _regs_from_str("GenuineIntel")
    sig = (6 << 8) | (5 << 4) | (5 << 16)      # family 6 model 0x55 stepping 0
    table = [
        (0, None, 0xD, ebx, ecx, edx),
        # EBX: CLFLUSH line 8 x 8 bytes, one logical processor
        (1, None, sig, 0x00010800, r1[2], r1[3]),
        (7, 0, 0, r7[1], r7[2], r7[3]),
    ]
    if "xsave" in feats:
        comps = [0, 1] + ([2] if "avx" in feats else [])
        xcr0 = sum(1 << i for i in comps)
        size = max(XSAVE_COMPONENTS[i][1] + XSAVE_COMPONENTS[i][0] for i in comps if i >= 2) if 2 in comps \
            else XSAVE_LEGACY_AND_HEADER
        size = max(size, XSAVE_LEGACY_AND_HEADER)
        # sub-leaf 0: supported XCR0 bits, size for the XCR0 enabled now (the
        # core fills EBX in from XCR0), size for all; sub-leaf 1: XSAVEOPT,
        # XSAVEC, XGETBV ECX=1, XSAVES (EBX: compacted size for XCR0 | XSS,
        # also filled in by the core; ECX: the XSS bits, none)
        table.append((0xD, 0, xcr0, size, size, 0))
        table.append((0xD, 1, rd1[0], size, 0, 0))
        for i in comps:
            if i >= 2:
                table.append((0xD, i, XSAVE_COMPONENTS[i][0], XSAVE_COMPONENTS[i][1], 0, 0))
    table += [
        (0x80000000, None, 0x80000008, 0, 0, 0),
        (0x80000001, None, 0, 0, re1[2], re1[3]),
        (0x80000008, None, 0x3030, 0, 0, 0),   # 48-bit physical and linear addresses
    ]
    return table


def xcr0_of(table) -> int:
    """The XCR0 an operating system enables for this table: every user state
    component it supports (CPUID.(EAX=0DH,ECX=0):EAX; x87 and SSE without XSAVE)."""
    for leaf, sub, a, *_ in table:
        if leaf == 0xD and sub in (0, None):
            return a & 7 or 3
    return 3


def baseline_table() -> list[tuple]:
    """The default model's table: what the core implements."""
    return cpuid_table(DEFAULT_MODEL)


def hwcap_bits(vcpu) -> tuple[int, int]:
    """AT_HWCAP is CPUID.1:EDX on x86; AT_HWCAP2 bit 1 is FSGSBASE (the
    kernel sets it when it enables CR4.FSGSBASE for user mode)."""
    return vcpu.cpuid(1)[3], (2 if vcpu.cpuid(7, 0)[1] & 1 else 0)
