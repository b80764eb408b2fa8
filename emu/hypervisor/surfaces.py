"""The OS-visible surfaces of a machine template (emu/hypervisor/templates.py)
as Linux 6.1 prints them: /proc/cpuinfo (arch/x86/kernel/cpu/proc.c),
/proc/version, and /sys/devices/system/cpu (drivers/base/cpu.c,
drivers/base/topology.c, drivers/base/cacheinfo.c). Everything here comes
from the template, nothing from the host: a path under
/sys/devices/system/cpu the template does not describe does not exist."""
from __future__ import annotations

import os
import re

from emu.hypervisor.templates import Template

CPU_DIR = "/sys/devices/system/cpu"


def _signature(eax: int):
    fam = (eax >> 8) & 0xF
    model = (eax >> 4) & 0xF
    if fam == 0xF:
        fam += (eax >> 20) & 0xFF
    if fam in (6, 0xF):
        model |= ((eax >> 16) & 0xF) << 4
    return fam, model, eax & 0xF


def llc_kb(t: Template) -> int:
    """cpuinfo's "cache size": the last level (Intel: L3, else L2)."""
    return max(c.size_kb for c in t.caches if c.kind != "Instruction")


def cpuinfo(t: Template) -> str:
    fam, model, stepping = _signature(t.signature)
    mhz = t.tsc_hz / 1e6
    out = []
    for n in range(t.ncpus):
        out.append("\n".join([
            "processor\t: %d" % n, "vendor_id\t: %s" % t.vendor, "cpu family\t: %d" % fam,
            "model\t\t: %d" % model, "model name\t: %s" % t.brand.lstrip(), "stepping\t: %d" % stepping,
            "microcode\t: 0x%x" % t.microcode, "cpu MHz\t\t: %.3f" % mhz, "cache size\t: %d KB" % llc_kb(t),
            "physical id\t: 0", "siblings\t: %d" % t.ncpus, "core id\t\t: %d" % t.core_id(n),
            "cpu cores\t: %d" % t.cores, "apicid\t\t: %d" % t.apic_id(n), "initial apicid\t: %d" % t.apic_id(n),
            "fpu\t\t: yes", "fpu_exception\t: yes", "cpuid level\t: %d" % t.max_leaf, "wp\t\t: yes",
            "flags\t\t: %s" % t.cpuinfo_flags, "bugs\t\t: %s" % t.bugs,
            "bogomips\t: %.2f" % (2 * mhz), "clflush size\t: 64", "cache_alignment\t: 64",
            "address sizes\t: %d bits physical, %d bits virtual" % (t.phys_bits, t.virt_bits),
            "power management:", "", ""]))
    return "".join(out)


def cpu_list(cpus) -> str:
    """A cpulist ("0-3", "0,2"): ranges of consecutive numbers."""
    cpus = sorted(cpus)
    parts, i = [], 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else "%d-%d" % (cpus[i], cpus[j]))
        i = j + 1
    return ",".join(parts)


def cpu_mask(cpus) -> str:
    """A cpumask as sysfs prints it: hex, in 32-bit groups separated by commas."""
    v = sum(1 << c for c in cpus)
    s = "%x" % v
    groups = []
    while len(s) > 8:
        groups.insert(0, s[-8:])
        s = s[:-8]
    return ",".join([s] + groups)


# Linux capability words of the CPUID-defined flags (arch/x86/include/asm/cpufeatures.h)
_WORDS = {(1, None, 3): 0, (0x80000001, None, 3): 1, (1, None, 2): 4, (0x80000001, None, 2): 6, (7, 0, 1): 9,
          (0xD, 1, 0): 10, (6, None, 0): 14, (7, 0, 2): 16, (7, 0, 3): 18}


def modalias(t: Template) -> str:
    """cpu:type:x86,venVVVVfamFFFFmodMMMM:feature:,XXXX,... (arch/x86/kernel/cpu/match.c
    arch_print_cpu_modalias): the capability numbers word x 32 + bit."""
    from emu.cpuid import FEATURE_BITS
    fam, model, _ = _signature(t.signature)
    nums = sorted(_WORDS[(leaf, sub, reg)] * 32 + bit for name, (leaf, sub, reg, bit) in FEATURE_BITS.items()
                  if name in t.features and (leaf, sub, reg) in _WORDS)
    vendor = 0 if t.vendor == "GenuineIntel" else 2
    return "cpu:type:x86,ven%04Xfam%04Xmod%04X:feature:%s\n" % (vendor, fam, model,
                                                             "".join(",%04X" % n for n in nums))


_VULNS = {"meltdown": "Mitigation: PTI", "spectre_v1": "Mitigation: usercopy/swapgs barriers and __user pointer "
          "sanitization", "spectre_v2": "Mitigation: Retpolines, IBPB: conditional, IBRS_FW, STIBP: conditional, "
          "RSB filling, PBRSB-eIBRS: Not affected", "spec_store_bypass": "Mitigation: Speculative Store Bypass "
          "disabled via prctl", "l1tf": "Mitigation: PTE Inversion; VMX: conditional cache flushes, SMT vulnerable",
          "mds": "Mitigation: Clear CPU buffers; SMT vulnerable", "itlb_multihit": "KVM: Mitigation: VMX disabled",
          "srbds": "Not affected", "tsx_async_abort": "Not affected", "retbleed": "Not affected",
          "mmio_stale_data": "Unknown: No mitigations"}


def _cache_files(t: Template, cpu: int, idx: int) -> dict:
    c = t.caches[idx]
    sib = t.sibling_cpus(c, cpu)
    return {"level": str(c.level), "type": c.kind, "size": "%dK" % c.size_kb,
            "ways_of_associativity": str(c.ways), "coherency_line_size": str(c.line),
            "number_of_sets": str(c.sets), "physical_line_partition": "1", "shared_cpu_list": cpu_list(sib),
            "shared_cpu_map": cpu_mask(sib), "id": str(sib[0] // c.shared_threads if c.level < 3 else 0),
            "uevent": ""}


def _topology_files(t: Template, cpu: int) -> dict:
    thr = [c for c in range(t.ncpus) if t.core_id(c) == t.core_id(cpu)]
    pkg = list(range(t.ncpus))
    return {"physical_package_id": "0", "die_id": "0", "core_id": str(t.core_id(cpu)), "cluster_id": "0",
            "core_cpus": cpu_mask(thr), "core_cpus_list": cpu_list(thr), "thread_siblings": cpu_mask(thr),
            "thread_siblings_list": cpu_list(thr), "core_siblings": cpu_mask(pkg), "core_siblings_list": cpu_list(pkg),
            "package_cpus": cpu_mask(pkg), "package_cpus_list": cpu_list(pkg), "die_cpus": cpu_mask(pkg),
            "die_cpus_list": cpu_list(pkg), "cluster_cpus": cpu_mask(thr), "cluster_cpus_list": cpu_list(thr)}


def _top_files(t: Template) -> dict:
    allc = cpu_list(range(t.ncpus))
    return {"online": allc, "possible": allc, "present": allc, "offline": "", "isolated": "",
            "kernel_max": "8191", "modalias": modalias(t).rstrip("\n"), "uevent": "", "nohz_full": " (null)"}


_CPU_PATH = re.compile(r"^cpu(\d+)(?:/(.*))?$")


def tree(t: Template, rel: str):
    """What is at CPU_DIR/rel: a str (a file's contents, without the newline),
    a sorted list of names (a directory), or None (nothing)."""
    rel = rel.strip("/")
    top = _top_files(t)
    if rel == "":
        return sorted(list(top) + ["cpu%d" % i for i in range(t.ncpus)] + ["vulnerabilities", "smt"])
    if rel in top:
        return top[rel]
    if rel == "vulnerabilities":
        return sorted(_VULNS)
    if rel.startswith("vulnerabilities/"):
        return _VULNS.get(rel[len("vulnerabilities/"):])
    if rel == "smt":
        return ["active", "control"]
    if rel == "smt/active":
        return "1" if t.threads_per_core > 1 else "0"
    if rel == "smt/control":
        return "on" if t.threads_per_core > 1 else "notsupported"
    m = _CPU_PATH.match(rel)
    if m is None or int(m.group(1)) >= t.ncpus or m.group(1) != str(int(m.group(1))):
        return None
    cpu, sub = int(m.group(1)), m.group(2) or ""
    files = {"uevent": "DRIVER=processor\nMODALIAS=" + modalias(t).rstrip("\n"), "crash_notes_size": "368"}
    if cpu:
        files["online"] = "1"
    if sub == "":
        return sorted(list(files) + ["topology", "cache"])
    if sub in files:
        return files[sub]
    if sub == "topology":
        return sorted(_topology_files(t, cpu))
    if sub.startswith("topology/"):
        return _topology_files(t, cpu).get(sub[len("topology/"):])
    if sub == "cache":
        return ["index%d" % i for i in range(len(t.caches))] + ["uevent"]
    if sub == "cache/uevent":
        return ""
    m = re.match(r"^cache/index(\d+)(?:/(.*))?$", sub)
    if m is None or int(m.group(1)) >= len(t.caches):
        return None
    files = _cache_files(t, cpu, int(m.group(1)))
    if not m.group(2):
        return sorted(files)
    return files.get(m.group(2))


def sys_cpu_file(t: Template, guest_path: str):
    """A file under /sys/devices/system/cpu: its bytes; False when the
    template has no such file (the host's must not show through); None for a
    directory (opened on the host, listed by sys_cpu_dir)."""
    rel = os.path.normpath(guest_path)[len(CPU_DIR):]
    v = tree(t, rel)
    if v is None:
        return False
    if isinstance(v, list):
        return None
    return (v + "\n").encode()


def sys_cpu_dir(t: Template, guest_path: str):
    """The names in a directory under /sys/devices/system/cpu, or None."""
    v = tree(t, os.path.normpath(guest_path)[len(CPU_DIR):])
    return v if isinstance(v, list) else None


def is_cpu_path(guest_path: str) -> bool:
    p = os.path.normpath(guest_path) if guest_path else ""
    return p == CPU_DIR or p.startswith(CPU_DIR + "/")
