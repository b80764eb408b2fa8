"""What the guest's platform files say: a /proc/cpuinfo generated from the
installed CPUID table (flags consistent with it; `hypervisor` only when the
table sets CPUID.1:ECX[31]), the DMI strings of /sys/class/dmi/id,
plausible hardware under `stealth`, "emu" under `transparent`, and
/proc/uptime from the guest clock (CLOCK_BOOTTIME and the idle time);
under virtual time also /proc/stat (CPU times, btime) and the RTC's
/sys/class/rtc/rtc0 files, which would otherwise tell the host's time."""
from __future__ import annotations

from emu.hypervisor import cpuid_profiles as cp

DMI = {
    "stealth": {"sys_vendor": "Dell Inc.", "product_name": "OptiPlex 7060", "product_version": "",
                "product_family": "OptiPlex", "board_vendor": "Dell Inc.", "board_name": "0C96W1",
                "board_version": "A00", "bios_vendor": "Dell Inc.", "bios_version": "1.22.0",
                "bios_date": "07/12/2022", "chassis_vendor": "Dell Inc.", "chassis_type": "3",
                "chassis_version": ""},
    "transparent": {"sys_vendor": "emu", "product_name": "emu virtual machine", "product_version": "1.0",
                    "product_family": "emu", "board_vendor": "emu", "board_name": "emu virtual board",
                    "board_version": "1.0", "bios_vendor": "emu", "bios_version": "emu-1.0",
                    "bios_date": "01/01/2024", "chassis_vendor": "emu", "chassis_type": "1",
                    "chassis_version": "1.0"},
}
DMI_DIRS = ("/sys/class/dmi/id/", "/sys/devices/virtual/dmi/id/")

# Linux's order of the capability words (arch/x86/include/asm/cpufeatures.h)
_WORD_ORDER = [(1, None, 3), (0x80000001, None, 3), (1, None, 2), (0x80000001, None, 2), (7, 0, 1), (0xD, 1, 0),
               (7, 0, 2), (7, 0, 3)]


def flags(table) -> list[str]:
    have = set(cp.features(table))
    out = []
    for leaf, sub, reg in _WORD_ORDER:
        for (l, s, r, bit), name in sorted(cp.FEATURES.items(), key=lambda kv: kv[0][3]):
            if (l, s, r) == (leaf, sub, reg) and name in have:
                out.append(name)
                if name == "lm":
                    out += ["constant_tsc", "nopl"]      # synthetic flags Linux derives
    return out


def _signature(eax: int):
    fam = (eax >> 8) & 0xF
    model = (eax >> 4) & 0xF
    if fam == 0xF:
        fam += (eax >> 20) & 0xFF
    if fam in (6, 0xF) or fam > 0xF:
        model |= ((eax >> 16) & 0xF) << 4
    return fam, model, eax & 0xF


def cpuinfo(table, tsc_hz: int = cp.DEFAULT_TSC_HZ, ncpus: int = 1) -> str:
    d = cp.to_dict(table)
    fam, model, stepping = _signature(cp._get(d, 1)[0])
    vendor = cp.vendor_of(table)
    brand = cp.brand_of(table) or "%s x86-64 CPU" % vendor
    mhz = tsc_hz / 1e6
    maxleaf = cp._get(d, 0)[0]
    fl = " ".join(flags(table))
    out = []
    for n in range(ncpus):
        out.append("\n".join([
            "processor\t: %d" % n, "vendor_id\t: %s" % vendor, "cpu family\t: %d" % fam,
            "model\t\t: %d" % model, "model name\t: %s" % brand, "stepping\t: %d" % stepping,
            "microcode\t: 0xf4", "cpu MHz\t\t: %.3f" % mhz, "cache size\t: 12288 KB",
            "physical id\t: 0", "siblings\t: %d" % ncpus, "core id\t\t: %d" % n, "cpu cores\t: %d" % ncpus,
            "apicid\t\t: %d" % n, "initial apicid\t: %d" % n, "fpu\t\t: yes", "fpu_exception\t: yes",
            "cpuid level\t: %d" % maxleaf, "wp\t\t: yes", "flags\t\t: %s" % fl, "bugs\t\t:",
            "bogomips\t: %.2f" % (2 * mhz), "clflush size\t: 64", "cache_alignment\t: 64",
            "address sizes\t: 48 bits physical, 48 bits virtual", "power management:", "", ""]))
    return "".join(out)


def dmi(profile: str) -> dict:
    return DMI["stealth" if profile == "stealth" else "transparent"]


def uptime(clock, vcpu) -> str:
    """/proc/uptime (fs/proc/uptime.c): seconds since boot and idle seconds,
    two decimals, truncated."""
    up, idle = clock.uptime(vcpu)
    cs = lambda ns: "%d.%02d" % (ns // 10**9, ns % 10**9 // 10**7)
    return "%s %s\n" % (cs(up), cs(idle))


def proc_stat(clock, vcpu, ncpus: int = 1) -> str:
    """/proc/stat under virtual time (fs/proc/stat.c): one CPU's times in
    USER_HZ ticks (user: the process's CPU time; system: the boot; idle:
    the rest) and btime, the boot's CLOCK_REALTIME second, so btime +
    uptime is the time of day."""
    up, idle = clock.uptime(vcpu)
    user = clock.cputime_ns(vcpu) // 10**7
    idle_t = idle // 10**7
    system = max(0, up // 10**7 - user - idle_t)
    cpu = "%d 0 %d %d 0 0 0 0 0 0" % (user, system, idle_t)
    # the other CPUs (a template's) were idle all along
    per = "".join("cpu%d 0 0 %d 0 0 0 0 0 0 0\n" % (n, up // 10**7) for n in range(1, ncpus))
    tot = "%d 0 %d %d 0 0 0 0 0 0" % (user, system, idle_t + (ncpus - 1) * (up // 10**7))
    btime = (clock.now_ns(vcpu, 0) - up) // 10**9
    return ("cpu  %s\ncpu0 %s\n%sintr 0\nctxt %d\nbtime %d\nprocesses 1\nprocs_running 1\nprocs_blocked 0\n"
            "softirq 0 0 0 0 0 0 0 0 0 0 0\n" % (tot, cpu, per, up // 10**6, btime))


def rtc(clock, vcpu, name: str):
    """/sys/class/rtc/rtc0 under virtual time: the RTC keeps CLOCK_REALTIME (UTC)."""
    import time as _t
    sec = clock.now_ns(vcpu, 0) // 10**9
    tm = _t.gmtime(sec)
    vals = {"since_epoch": "%d" % sec, "date": _t.strftime("%Y-%m-%d", tm), "time": _t.strftime("%H:%M:%S", tm),
            "name": "rtc_cmos 00:01", "hctosys": "1", "max_user_freq": "64"}
    return vals.get(name)


def virtual_file(guest_path: str, table, profile: str, tsc_hz: int = cp.DEFAULT_TSC_HZ, clock=None, vcpu=None,
                 machine=None):
    """Contents (bytes) for a platform file the hypervisor serves, None when
    the path is not one of them, or False for a DMI file that does not exist
    (the host's must not show through). /proc/uptime needs the guest clock
    and the vCPU reading it. With a machine template (emu/hypervisor/templates.py)
    /proc/cpuinfo, /proc/version, /sys/devices/system/cpu and DMI are the
    template's."""
    if machine is not None:
        from emu.hypervisor import surfaces
        if guest_path == "/proc/cpuinfo":
            return surfaces.cpuinfo(machine).encode()
        if guest_path in ("/proc/version", "/proc/sys/kernel/osrelease", "/proc/sys/kernel/version"):
            return {"/proc/version": machine.proc_version, "/proc/sys/kernel/osrelease": machine.kernel_release,
                    "/proc/sys/kernel/version": machine.kernel_version}[guest_path].encode() + b"\n"
        if surfaces.is_cpu_path(guest_path):
            return surfaces.sys_cpu_file(machine, guest_path)
    if guest_path == "/proc/cpuinfo":
        return cpuinfo(table, tsc_hz).encode()
    if clock is not None:
        if guest_path == "/proc/uptime":
            return uptime(clock, vcpu).encode()
        if clock.virtual:          # host time: the host's files tell the host's (same) time
            if guest_path == "/proc/stat":
                return proc_stat(clock, vcpu, machine.ncpus if machine is not None else 1).encode()
            if guest_path.startswith("/sys/class/rtc/rtc0/"):
                v = rtc(clock, vcpu, guest_path[len("/sys/class/rtc/rtc0/"):])
                return False if v is None else (v + "\n").encode()
    for d in DMI_DIRS:
        if guest_path.startswith(d):
            name = guest_path[len(d):]
            vals = machine.dmi if machine is not None else dmi(profile)
            if name in vals:
                return (vals[name] + "\n").encode()
            return False
    return None
