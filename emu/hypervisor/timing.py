"""Deceptive time, the hypervisor half: sets a vCPU's virtual TSC up to
charge a machine template's instruction-class costs and cache misses
(core/timing.pxi), so the ratios timing detectors measure (DIV against ADD,
a DRAM miss against an L1 hit, CPUID, back-to-back RDTSC) fall in the
template's real part's published ranges (docs/stealth.md)."""
from __future__ import annotations


def install_timing(vcpu, machine, deception) -> None:
    """Class costs and the cache model on the vCPU's machine (shared by its
    vCPUs, set once), then timing on for this vCPU."""
    phys = vcpu.machine
    costs = dict(machine.class_costs)
    costs.update(deception.costs)
    phys.set_class_costs(costs)
    if deception.cache and phys.timing_cache_stats() is None:     # (a thread's vCPU: already there)
        levels = machine.cache_levels()
        if deception.dram_cycles is not None:
            levels[3] = (0, 0, deception.dram_cycles)
        phys.set_cache_model(levels, deception.cache_sample)
    vcpu.set_timing(True, cache=deception.cache)
