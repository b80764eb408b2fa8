"""emu's hypervisor layer (policy half): trap policies, CPUID profiles, time
virtualization and the platform identity a guest sees."""
from __future__ import annotations

from emu.hypervisor import cpuid_profiles
from emu.hypervisor.cpuid_profiles import DEFAULT_TSC_HZ
from emu.hypervisor.policy import ALLOW, DENY, Deny, Hypervisor, Policy, TrapEvent
from emu.hypervisor.timekeeping import GuestClock

PROFILES = ("stealth", "transparent", "baseline", "host")
LINUX_CR0_BITS = 0x2 | 0x10 | 0x20 | 0x40000         # CR0.MP, ET, NE, AM

__all__ = ["ALLOW", "DENY", "Deny", "Hypervisor", "Policy", "TrapEvent", "GuestClock", "cpuid_profiles",
           "Guest", "PROFILES"]


class Guest:
    """The virtual platform a Linux process sees: CPUID profile, clock, and
    the platform files (/proc/cpuinfo, DMI) derived from them."""

    def __init__(self, profile: str = "transparent", time: str = "host", tsc_hz: int = DEFAULT_TSC_HZ,
                 template: str | None = None, policy: Policy | None = None, cpu: str | None = None):
        if profile not in PROFILES:
            raise ValueError("unknown profile %r (one of %s)" % (profile, ", ".join(PROFILES)))
        self.profile = profile
        self.tsc_hz = tsc_hz
        self.clock = GuestClock(time, tsc_hz)
        from emu.cpuid import DEFAULT_MODEL
        self.cpu = cpu or DEFAULT_MODEL
        self.table = cpuid_profiles.profile(profile, tsc_hz, template, self.cpu)
        if profile == "transparent":
            d = cpuid_profiles.to_dict(self.table)
            cpuid_profiles.set_brand(d, "Emu Virtual CPU @ %.2fGHz" % (tsc_hz / 1e9))
            self.table = cpuid_profiles.to_table(d)
        self.hypervisor = Hypervisor(policy, self.table) if policy is not None else None

    def install(self, vcpu, like=None) -> None:
        """Set a (new) vCPU up: CPUID table, TSC (going on from `like`'s),
        trap policy."""
        vcpu.set_cpuid_table(self.table)
        from emu.cpuid import xcr0_of
        vcpu.xcr0 = xcr0_of(self.table)      # the user state components Linux enables
        # CR0 as Linux runs its processes (SMSW shows it): MP, ET, NE and AM
        # besides PE, WP and PG (0x80050033)
        vcpu.cr0 = vcpu.cr0 | LINUX_CR0_BITS
        self.clock.install(vcpu, like)
        if self.hypervisor is not None:
            self.hypervisor.install(vcpu)

    def uname(self) -> tuple[str, str]:
        """(release, version) for uname(2): a distribution kernel under
        stealth, emu's own name otherwise."""
        if self.profile == "stealth":
            return "6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"
        return "6.1.0-emu", "#1 SMP"

    def virtual_file(self, guest_path: str, vcpu=None):
        """Contents of a platform file (see platform.virtual_file); `vcpu` is
        the reader's, for the files that tell the time (/proc/uptime)."""
        from emu.hypervisor.platform import virtual_file
        return virtual_file(guest_path, self.table, self.profile, self.tsc_hz,
                            clock=self.clock if vcpu is not None else None, vcpu=vcpu)
