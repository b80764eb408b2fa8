"""CPUID virtualization: the tables the hypervisor installs into the core
(vcpu.set_cpuid_table), so a guest's CPUID never costs a Python call.

A table is a list of (leaf, subleaf or None, eax, ebx, ecx, edx) entries as
emu.cpuid.baseline_table() returns them. Profiles:

- `baseline`: exactly what the CPU model advertises (emu.cpuid.cpuid_table(cpu);
  the default model is what the core implements).
- `host`: the host CPU's identity (vendor, signature, brand string) with its
  feature bits masked to the baseline: never a feature the core lacks.
- `stealth`: looks like bare metal: a real vendor and brand string, no
  hypervisor bit (CPUID.1:ECX[31]) and no hypervisor leaves (with the Intel
  identity, probes of 0x40000000 get the highest basic leaf, as on Intel).
- `transparent`: says it is a hypervisor: the hypervisor bit, leaf
  0x40000000 ("EmuEmuEmuEmu", max leaf) and the 0x40000010 timing leaf.
- `user_table(base, {(leaf, subleaf): regs})`: entries replaced or added.
- `TEMPLATES` / `apply_template`: mask features to look like an older CPU.

Every profile carries leaves 0x15 (TSC / crystal ratio) and 0x16 (processor
frequency) consistent with the configured TSC frequency.
"""
from __future__ import annotations

from emu.cpuid import DEFAULT_MODEL, FEATURE_BITS, MODELS, cpuid_table

HYPERVISOR_BIT = 1 << 31          # CPUID.1:ECX[31]
HV_LEAF = 0x40000000
HV_TIMING_LEAF = 0x40000010
HV_VENDOR = "EmuEmuEmuEmu"
DEFAULT_TSC_HZ = 3_200_000_000
CRYSTAL_HZ = 25_000_000           # the ART/crystal clock leaf 0x15 is expressed in

# (leaf, subleaf, register index 0..3 = eax ebx ecx edx, bit) -> Linux /proc/cpuinfo flag:
# the one feature table of emu/cpuid.py
FEATURES: dict[tuple, str] = {bits: name for name, bits in FEATURE_BITS.items()}
FLAG_BITS = dict(FEATURE_BITS)

# templates mask a table to look like an older CPU: the CPU models of
# emu/cpuid.py (x86-64-v1 is the psABI's name for the x86-64 baseline)
TEMPLATES = {"x86-64-v1": "x86-64", "x86-64-v2": "x86-64-v2", "x86-64-v3": "x86-64-v3",
             "core2": "core2", "nehalem": "nehalem"}

# identities for stealth: (vendor, leaf-1 signature, brand string)
IDENTITIES = {
    "intel": ("GenuineIntel", 0x000906EA, "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"),
    "amd": ("AuthenticAMD", 0x00A20F10, "AMD Ryzen 7 5800X 8-Core Processor"),
}


# ---- table helpers ----

def _key(leaf, sub):
    return (leaf, sub)


def to_dict(table) -> dict:
    """{(leaf, subleaf or None): [eax, ebx, ecx, edx]}"""
    return {(e[0], e[1]): list(e[2:6]) for e in table}


def to_table(d: dict) -> list[tuple]:
    return [(leaf, sub, *regs) for (leaf, sub), regs in sorted(d.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))]


def _get(d, leaf, sub=None):
    return d.get((leaf, sub)) or d.get((leaf, None)) or d.get((leaf, 0))


def _set_leaf(d, leaf, sub, regs):
    d.pop((leaf, None if sub is not None else 0), None)
    d[(leaf, sub)] = [r & 0xFFFFFFFF for r in regs]


def str_regs(s: str, n: int) -> list[int]:
    """A string as n little-endian 32-bit registers (NUL padded)."""
    b = s.encode()[:4 * n].ljust(4 * n, b"\0")
    return [int.from_bytes(b[i:i + 4], "little") for i in range(0, 4 * n, 4)]


def regs_str(regs) -> str:
    return b"".join(r.to_bytes(4, "little") for r in regs).split(b"\0")[0].decode("latin-1")


def _fix_max_leaves(d):
    basic = max(k[0] for k in d if k[0] < 0x40000000)
    ext = max([k[0] for k in d if k[0] >= 0x80000000] or [0x80000000])
    r = _get(d, 0)
    r[0] = max(r[0], basic)
    r = _get(d, 0x80000000)
    if r is not None:
        r[0] = max(r[0], ext)


def set_vendor(d: dict, vendor: str) -> None:
    b, dd, c = str_regs(vendor, 3)
    r = _get(d, 0)
    r[1], r[2], r[3] = b, c, dd


def vendor_of(table) -> str:
    r = _get(to_dict(table), 0)
    return regs_str([r[1], r[3], r[2]])


def set_brand(d: dict, brand: str) -> None:
    regs = str_regs(brand, 12)
    for i in range(3):
        _set_leaf(d, 0x80000002 + i, None, regs[4 * i:4 * i + 4])
    _fix_max_leaves(d)


def brand_of(table) -> str:
    d = to_dict(table)
    regs = []
    for i in range(3):
        r = _get(d, 0x80000002 + i)
        if r is None:
            return ""
        regs += r
    return regs_str(regs).strip()


def set_tsc_leaves(d: dict, tsc_hz: int) -> None:
    """Leaf 0x15: TSC = crystal x EBX / EAX, ECX = crystal Hz; leaf 0x16:
    base / max frequency in MHz, bus (reference) 100 MHz."""
    from math import gcd
    g = gcd(tsc_hz, CRYSTAL_HZ)
    _set_leaf(d, 0x15, None, [CRYSTAL_HZ // g, tsc_hz // g, CRYSTAL_HZ, 0])
    mhz = tsc_hz // 1_000_000
    _set_leaf(d, 0x16, None, [mhz, mhz, 100, 0])
    _fix_max_leaves(d)


def features(table) -> list[str]:
    """Linux flag names of the feature bits the table advertises."""
    d = to_dict(table)
    out = []
    for (leaf, sub, reg, bit), name in FEATURES.items():
        r = _get(d, leaf, sub)
        if r is not None and r[reg] >> bit & 1:
            out.append(name)
    return out


def mask_features(table, names) -> list[tuple]:
    """The table with the named features cleared (Linux flag names)."""
    d = to_dict(table)
    for name in names:
        if name not in FLAG_BITS:
            raise KeyError("unknown CPU feature %r" % name)
        leaf, sub, reg, bit = FLAG_BITS[name]
        r = _get(d, leaf, sub)
        if r is not None:
            r[reg] &= ~(1 << bit)
    return to_table(d)


def apply_template(table, name: str) -> list[tuple]:
    """The table with every feature the template's CPU model lacks cleared."""
    keep = set(MODELS[TEMPLATES[name]])
    return mask_features(table, [n for n in features(table) if n not in keep and n not in _IDENTITY_FLAGS])


# bits that describe the platform rather than the CPU generation (kept by templates)
_IDENTITY_FLAGS = {"hypervisor", "osxsave"}


# ---- the host's CPUID ----

# push rbx; mov r8,rdx; mov eax,edi; mov ecx,esi; cpuid; mov [r8],eax;
# mov [r8+4],ebx; mov [r8+8],ecx; mov [r8+12],edx; pop rbx; ret
_CPUID_STUB = bytes.fromhex("53 4989d0 89f8 89f1 0fa2 418900 41895804 41894808 4189500c 5b c3")
_host_fn = None


def host_cpuid(leaf: int, sub: int = 0):
    """CPUID on the host CPU (a 30-byte native stub through ctypes), or None
    when no executable mapping can be made."""
    global _host_fn
    import ctypes                   # (here: ctypes costs start-up time most runs do not need)
    import mmap
    if _host_fn is None:
        try:
            buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            buf.write(_CPUID_STUB)
            addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
            fn = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p)(addr)
            _host_fn = (buf, fn)
        except (OSError, ValueError, TypeError, AttributeError):
            _host_fn = False
    if not _host_fn:
        return None
    out = (ctypes.c_uint32 * 4)()
    _host_fn[1](leaf, sub, ctypes.addressof(out))
    return tuple(out)


# ---- profiles ----

def baseline(tsc_hz: int = DEFAULT_TSC_HZ, cpu: str = DEFAULT_MODEL) -> list[tuple]:
    """The CPU model's table (emu.cpuid) with the TSC leaves."""
    d = to_dict(cpuid_table(cpu))
    set_tsc_leaves(d, tsc_hz)
    return to_table(d)


def host(tsc_hz: int = DEFAULT_TSC_HZ, cpu: str = DEFAULT_MODEL) -> list[tuple]:
    """The host's vendor, signature and brand string; its feature bits ANDed
    with the baseline's, so the guest is never offered a feature the core
    does not implement. No hypervisor bit, no 0x40000000 leaves."""
    d = to_dict(baseline(tsc_hz, cpu))
    h0 = host_cpuid(0)
    if h0 is None:
        return _host_from_proc(d)
    r = _get(d, 0)
    r[1], r[2], r[3] = h0[1], h0[2], h0[3]
    h1 = host_cpuid(1)
    r1 = _get(d, 1)
    r1[0] = h1[0]
    r1[2] &= h1[2] & ~HYPERVISOR_BIT
    r1[3] &= h1[3]
    if h0[0] >= 7:
        h7 = host_cpuid(7, 0)
        r7 = _get(d, 7, 0)
        for i in (1, 2, 3):
            r7[i] &= h7[i]
    he = host_cpuid(0x80000000)
    if he[0] >= 0x80000001:
        h = host_cpuid(0x80000001)
        r = _get(d, 0x80000001)
        r[2] &= h[2]
        r[3] &= h[3]
    if he[0] >= 0x80000004:
        for i in range(3):
            _set_leaf(d, 0x80000002 + i, None, host_cpuid(0x80000002 + i))
    _fix_max_leaves(d)
    return to_table(d)


def _host_from_proc(d: dict) -> list[tuple]:
    """Fallback for host(): vendor, brand and flags from /proc/cpuinfo."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                k, _, val = line.partition(":")
                info[k.strip()] = val.strip()
    except OSError:
        return to_table(d)
    if "vendor_id" in info:
        set_vendor(d, info["vendor_id"])
    if "model name" in info:
        set_brand(d, info["model name"])
    have = set(info.get("flags", "").split())
    t = to_table(d)
    return mask_features(t, [n for n in features(t) if n not in have])


def stealth(base=None, identity: str = "intel", tsc_hz: int = DEFAULT_TSC_HZ,
            cpu: str = DEFAULT_MODEL) -> list[tuple]:
    """Bare-metal look: a real vendor and brand, hypervisor bit clear, no
    hypervisor leaves."""
    vendor, sig, brand = IDENTITIES[identity]
    d = to_dict(base if base is not None else baseline(tsc_hz, cpu))
    for k in [k for k in d if 0x40000000 <= k[0] < 0x50000000]:
        del d[k]
    set_vendor(d, vendor)
    _get(d, 1)[0] = sig
    _get(d, 1)[2] &= ~HYPERVISOR_BIT
    set_brand(d, brand)
    set_tsc_leaves(d, tsc_hz)
    if vendor == "GenuineIntel":
        # Intel answers a leaf above the maximum with the highest basic leaf's
        # data (SDM CPUID: "If a value entered ... is higher than the maximum
        # input value"), so a probe of the hypervisor range sees that, not zeros
        top = max(k[0] for k in d if k[0] < 0x40000000)
        for leaf in (HV_LEAF, HV_LEAF + 1, HV_TIMING_LEAF):
            _set_leaf(d, leaf, None, list(_get(d, top)))
    return to_table(d)


def transparent(base=None, tsc_hz: int = DEFAULT_TSC_HZ, apic_hz: int = 1_000_000_000,
                cpu: str = DEFAULT_MODEL) -> list[tuple]:
    """Says it is a hypervisor: hypervisor bit, leaf 0x40000000 = (max
    hypervisor leaf, "EmuEmuEmuEmu"), leaf 0x40000010 = (TSC kHz, APIC bus kHz)
    as VMware and KVM define it."""
    d = to_dict(base if base is not None else baseline(tsc_hz, cpu))
    _get(d, 1)[2] |= HYPERVISOR_BIT
    b, c, dd = str_regs(HV_VENDOR, 3)
    _set_leaf(d, HV_LEAF, None, [HV_TIMING_LEAF, b, c, dd])
    _set_leaf(d, HV_TIMING_LEAF, None, [tsc_hz // 1000, apic_hz // 1000, 0, 0])
    set_tsc_leaves(d, tsc_hz)
    return to_table(d)


def user_table(base, entries: dict) -> list[tuple]:
    """base with entries {(leaf, subleaf or None) or leaf: (eax, ebx, ecx, edx)}
    replaced or added."""
    d = to_dict(base)
    given = {}
    for k, regs in entries.items():
        leaf, sub = k if isinstance(k, tuple) else (k, None)
        _set_leaf(d, leaf, sub, regs)
        given[(leaf, sub)] = regs
    _fix_max_leaves(d)
    for (leaf, sub), regs in given.items():      # explicit max-leaf answers stand
        if leaf in (0, 0x80000000):
            _set_leaf(d, leaf, sub, regs)
    return to_table(d)


PROFILES = {"baseline": baseline, "host": host, "stealth": stealth, "transparent": transparent}


def profile(name: str, tsc_hz: int = DEFAULT_TSC_HZ, template: str | None = None,
            cpu: str = DEFAULT_MODEL) -> list[tuple]:
    """A named profile's table, optionally masked by a template."""
    if name not in PROFILES:
        raise ValueError("unknown CPUID profile %r (one of %s)" % (name, ", ".join(PROFILES)))
    t = PROFILES[name](tsc_hz=tsc_hz, cpu=cpu)
    return apply_template(t, template) if template else t


def install(vcpu, table) -> None:
    vcpu.set_cpuid_table(table)
