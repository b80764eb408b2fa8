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

    def __init__(self, profile: str = "transparent", time: str = "host", tsc_hz: int | None = None,
                 template: str | None = None, policy: Policy | None = None, cpu: str | None = None,
                 deception=None):
        if profile not in PROFILES:
            raise ValueError("unknown profile %r (one of %s)" % (profile, ", ".join(PROFILES)))
        self.profile = profile
        if deception is None and profile == "stealth":
            from emu.hypervisor.deception import Deception     # (dataclasses: only when needed, start-up time)
            deception = Deception()
        self.deception = deception
        # stealth: one real machine (emu/hypervisor/templates.py) behind every
        # surface; the older feature masks (x86-64-v1, core2...) still apply
        # to the plain stealth table when named
        self.machine = None
        template = template or (deception.template if deception is not None else None)
        if profile == "stealth" or template is not None:
            from emu.hypervisor import templates
        if profile != "stealth" and template is not None and template in templates.TEMPLATES:
            raise ValueError("machine template %s: only with --profile stealth" % template)
        if profile == "stealth" and (template is None or template in templates.TEMPLATES):
            self.machine = templates.get(template)
            template = None
        self.tsc_hz = tsc_hz or (self.machine.tsc_hz if self.machine is not None else DEFAULT_TSC_HZ)
        self.clock = GuestClock(time, self.tsc_hz)
        from emu.cpuid import DEFAULT_MODEL
        self.cpu = cpu or DEFAULT_MODEL
        if self.machine is not None:
            self.table = templates.cpuid_table(self.machine)
        else:
            self.table = cpuid_profiles.profile(profile, self.tsc_hz, template, self.cpu)
        if profile == "transparent":
            d = cpuid_profiles.to_dict(self.table)
            cpuid_profiles.set_brand(d, "Emu Virtual CPU @ %.2fGHz" % (self.tsc_hz / 1e9))
            self.table = cpuid_profiles.to_table(d)
        if deception is not None:
            self.table = deception.cpuid(self.table)
        self.hypervisor = Hypervisor(policy, self.table) if policy is not None else None

    @property
    def ncpus(self) -> int:
        """Logical CPUs the guest is told of (cpuinfo, sysfs, affinity)."""
        return self.machine.ncpus if self.machine is not None else 1

    @property
    def timed(self) -> bool:
        """Deceptive time: the template's class costs and cache model charge
        the virtual TSC (stealth with virtual time, unless the policy says no)."""
        return self.machine is not None and self.clock.virtual and self.deception.timing

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
        if self.timed:
            from emu.hypervisor.timing import install_timing
            install_timing(vcpu, self.machine, self.deception)
        if self.hypervisor is not None:
            self.hypervisor.install(vcpu)

    def uname(self) -> tuple[str, str]:
        """(release, version) for uname(2): a distribution kernel under
        stealth, emu's own name otherwise."""
        if self.deception is not None and self.deception.kernel_release:
            return self.deception.kernel_release, (self.machine.kernel_version if self.machine is not None
                                                   else "#1 SMP")
        if self.machine is not None:
            return self.machine.kernel_release, self.machine.kernel_version
        if self.profile == "stealth":
            return "6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"
        return "6.1.0-emu", "#1 SMP"

    def virtual_file(self, guest_path: str, vcpu=None):
        """Contents of a platform file (see platform.virtual_file); `vcpu` is
        the reader's, for the files that tell the time (/proc/uptime)."""
        from emu.hypervisor.platform import DMI_DIRS, virtual_file
        dec = self.deception
        for d in DMI_DIRS:
            if dec is not None and guest_path.startswith(d) and guest_path[len(d):] in dec.dmi:
                return (dec.dmi[guest_path[len(d):]] + "\n").encode()
        if dec is not None and dec.kernel_release and guest_path in ("/proc/version", "/proc/sys/kernel/osrelease"):
            release, version = self.uname()
            if guest_path == "/proc/sys/kernel/osrelease":
                return (release + "\n").encode()
            return ("Linux version %s (debian-kernel@lists.debian.org) %s\n" % (release, version)).encode()
        return virtual_file(guest_path, self.table, self.profile, self.tsc_hz,
                            clock=self.clock if vcpu is not None else None, vcpu=vcpu, machine=self.machine)

    def virtual_dir(self, guest_path: str):
        """Names in a platform directory the template describes
        (/sys/devices/system/cpu and below), or None."""
        if self.machine is None:
            return None
        from emu.hypervisor import surfaces
        if not surfaces.is_cpu_path(guest_path):
            return None
        return surfaces.sys_cpu_dir(self.machine, guest_path)
