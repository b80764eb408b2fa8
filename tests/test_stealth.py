"""Machine templates (emu/hypervisor/templates.py): under --profile stealth
every surface a Linux program reads (CPUID, uname, /proc/cpuinfo,
/proc/version, /sys/devices/system/cpu, DMI, sched_getaffinity, AT_HWCAP)
agrees with the template and with each other as on the real part, and no
host value shows anywhere. guests/antivm/surfaces dumps them from inside."""
import os
import re
import subprocess
import sys

import pytest

import emu as _emu_pkg
from emu.cpuid import FEATURE_BITS
from emu.hypervisor import Guest, templates as T, surfaces as S, cpuid_profiles as cp
from emu.hypervisor.deception import Deception, DeceptionError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SURFACES = os.path.join(ROOT, "guests", "antivm", "surfaces")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
DMI_FILES = ["sys_vendor", "product_name", "board_vendor", "board_name", "bios_vendor", "bios_version",
             "bios_date", "chassis_vendor"]


def emu_run(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = EMU_PATH + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, text=True,
                          errors="replace", timeout=120, cwd=os.path.dirname(ROOT), env=env)


def walk(t, rel=""):
    """Every (path, kind) under the template's /sys/devices/system/cpu."""
    v = S.tree(t, rel)
    path = S.CPU_DIR + ("/" + rel if rel else "")
    if isinstance(v, list):
        yield path, "dir"
        for n in v:
            yield from walk(t, (rel + "/" + n).strip("/"))
    else:
        yield path, "file"


def parse(out: str):
    d = {"cpuid": {}, "files": {}, "dirs": {}}
    lines = out.split("\n")
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("cpuid "):
            f = [int(x, 16) for x in ln.split()[1:]]
            d["cpuid"][(f[0], f[1])] = tuple(f[2:])
        elif ln.startswith("uname "):
            d["uname"] = ln[6:].split("|")[:4]
        elif ln.startswith("affinity "):
            d["affinity"] = int(ln.split()[1], 16)
        elif ln.startswith("auxv "):
            a = ln.split()
            d["auxv"] = (int(a[1], 16), int(a[2], 16), a[3] if len(a) > 3 else "")
        elif ln.startswith("file "):
            _, path, n = ln.split(" ")
            if n == "-1":
                d["files"][path] = None
            else:
                n = int(n, 16)
                rest = "\n".join(lines[i + 1:])
                d["files"][path] = rest[:n]
                i += rest[:n].count("\n") + 1
        elif ln.startswith("dir "):
            path, names = ln[4:], []
            i += 1
            while lines[i] != "end" and lines[i] != "-1":
                names.append(lines[i])
                i += 1
            d["dirs"][path] = None if lines[i] == "-1" else sorted(names)
        i += 1
    return d


def host_strings() -> set:
    """Host values that must not show in a stealth guest."""
    out = set()
    h = cp.host_cpuid(0)
    if h is not None:
        out.add(cp.regs_str([h[1], h[3], h[2]]))
        if cp.host_cpuid(0x80000000)[0] >= 0x80000004:
            regs = []
            for i in range(3):
                regs += cp.host_cpuid(0x80000002 + i)
            out.add(cp.regs_str(regs).strip())
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    out.add(line.split(":", 1)[1].strip())
    except OSError:
        pass
    u = os.uname()
    out |= {u.release, u.version}
    for name in ("modalias",):
        try:
            with open("/sys/devices/system/cpu/" + name) as f:
                out.add(f.read().strip())
        except OSError:
            pass
    for name in DMI_FILES:
        try:
            with open("/sys/class/dmi/id/" + name) as f:
                out.add(f.read().strip())
        except OSError:
            pass
    return {s for s in out if len(s) >= 5}


@pytest.fixture(scope="module", params=[t for t in T.TEMPLATES if T.usable(T.TEMPLATES[t])])
def dump(request):
    t = T.TEMPLATES[request.param]
    paths = ["/proc/cpuinfo", "/proc/version", "/proc/sys/kernel/osrelease"]
    paths += ["/sys/class/dmi/id/" + n for n in DMI_FILES]
    for path, kind in walk(t):
        paths.append(("d:" if kind == "dir" else "") + path)
    # paths the template does not have: must not exist (the host's would show through)
    paths += [S.CPU_DIR + "/cpu%d/online" % t.ncpus, S.CPU_DIR + "/cpu0/cache/index%d/size" % len(t.caches),
              S.CPU_DIR + "/cpu0/cpufreq/scaling_max_freq", "/sys/class/dmi/id/product_serial"]
    r = emu_run("--profile", "stealth", "--template", t.name, SURFACES, *paths)
    assert r.returncode == 0, r.stderr
    return t, parse(r.stdout), r.stdout


def test_every_surface_is_the_template(dump):
    t, d, _ = dump
    table = {(e[0], e[1]): e[2:] for e in T.cpuid_table(t)}
    for (leaf, sub), regs in d["cpuid"].items():
        want = table.get((leaf, sub), table.get((leaf, None), (0, 0, 0, 0)))
        assert regs == tuple(want), (hex(leaf), sub, [hex(r) for r in regs])
    assert d["uname"] == ["Linux", t.kernel_release, t.kernel_version, "x86_64"]
    assert d["affinity"] == (1 << t.ncpus) - 1
    assert d["files"]["/proc/cpuinfo"] == S.cpuinfo(t)
    assert d["files"]["/proc/version"] == t.proc_version + "\n"
    assert d["files"]["/proc/sys/kernel/osrelease"] == t.kernel_release + "\n"
    for n in DMI_FILES:
        assert d["files"]["/sys/class/dmi/id/" + n] == t.dmi[n] + "\n"
    for path, kind in walk(t):
        rel = path[len(S.CPU_DIR):].strip("/")
        if kind == "dir":
            assert d["dirs"][path] == sorted(S.tree(t, rel)), path
        else:
            assert d["files"][path] == S.tree(t, rel) + "\n", path
    for path in (S.CPU_DIR + "/cpu%d/online" % t.ncpus, S.CPU_DIR + "/cpu0/cpufreq/scaling_max_freq",
                 "/sys/class/dmi/id/product_serial"):
        assert d["files"][path] is None, path


def test_surfaces_agree_with_each_other(dump):
    """The checks a coherence detector makes, from the guest's values alone
    (not from the generator): each must hold on the real part."""
    t, d, _ = dump
    c = d["cpuid"]
    vendor = cp.regs_str([c[(0, 0)][1], c[(0, 0)][3], c[(0, 0)][2]])
    brand = cp.regs_str(sum((list(c[(0x80000002 + i, 0)]) for i in range(3)), [])).strip()
    info = d["files"]["/proc/cpuinfo"]
    blocks = [b for b in info.split("\n\n") if b.strip()]
    kv = [dict((k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in b.splitlines())) for b in blocks]
    ncpu = len(kv)
    # the CPU count: cpuinfo, affinity, sysfs online and the cpuN directories, CPUID topology
    assert bin(d["affinity"]).count("1") == ncpu
    assert d["files"][S.CPU_DIR + "/online"] == ("0-%d\n" % (ncpu - 1) if ncpu > 1 else "0\n")
    assert len([n for n in d["dirs"][S.CPU_DIR] if re.match(r"cpu\d+$", n)]) == ncpu
    if (0xB, 1) in c and c[(0xB, 1)][2] >> 8 & 0xFF == 2:
        assert c[(0xB, 1)][1] & 0xFFFF == ncpu
        assert c[(0xB, 0)][1] & 0xFFFF == int(kv[0]["siblings"]) // int(kv[0]["cpu cores"])
    assert int(kv[0]["siblings"]) == ncpu
    eax1 = c[(1, 0)][0]
    fam, model = eax1 >> 8 & 0xF, (eax1 >> 4 & 0xF) | (eax1 >> 16 & 0xF) << 4
    for k in kv:
        assert k["vendor_id"] == vendor and k["model name"] == brand
        assert (int(k["cpu family"]), int(k["model"]), int(k["stepping"])) == (fam, model, eax1 & 0xF)
        assert int(k["cpuid level"]) == c[(0, 0)][0]
        m = re.search(r"@ ([\d.]+)GHz", brand)
        assert float(k["cpu MHz"]) == float(m.group(1)) * 1000
        a = c[(0x80000008, 0)][0]
        assert k["address sizes"] == "%d bits physical, %d bits virtual" % (a & 0xFF, a >> 8 & 0xFF)
    # flags: every CPUID-defined flag is shown exactly when its bit is set
    flags = set(kv[0]["flags"].split())
    for name, (leaf, sub, reg, bit) in FEATURE_BITS.items():
        regs = c.get((leaf, sub or 0))
        if regs is None or (leaf < 0x80000000 and leaf > c[(0, 0)][0]):
            assert name not in flags, name
            continue
        if name == "osxsave":
            continue                   # (Linux does not show it)
        assert (name in flags) == bool(regs[reg] >> bit & 1), name
    assert not c[(1, 0)][2] >> 31 and "hypervisor" not in flags
    # caches: CPUID leaf 4 against sysfs, and cpuinfo's cache size (the last level)
    sizes = []
    for i in range(8):
        a, b, cc, dd = c.get((4, i), (0, 0, 0, 0))
        if a & 0x1F == 0:
            break
        size = ((b >> 22) + 1) * ((b >> 12 & 0x3FF) + 1) * ((b & 0xFFF) + 1) * (cc + 1)
        sizes.append(size)
        base = S.CPU_DIR + "/cpu0/cache/index%d/" % i
        assert d["files"][base + "size"] == "%dK\n" % (size // 1024)
        assert d["files"][base + "level"] == "%d\n" % (a >> 5 & 7)
        assert d["files"][base + "type"] == ["", "Data\n", "Instruction\n", "Unified\n"][a & 0x1F]
        assert d["files"][base + "ways_of_associativity"] == "%d\n" % ((b >> 22) + 1)
        shared = len(d["files"][base + "shared_cpu_list"].strip().replace("-", ",").split(","))
        assert ((a >> 14 & 0xFFF) + 1 >= ncpu) == (d["files"][base + "shared_cpu_list"] == "0-%d\n" % (ncpu - 1))
        assert shared >= 1
    assert sizes, "leaf 4 is empty"
    assert kv[0]["cache size"] == "%d KB" % (max(sizes) // 1024)
    l2 = c[(0x80000006, 0)][2] >> 16
    assert l2 * 1024 in sizes
    # kernel: uname, /proc/version, osrelease; modalias names the CPUID family/model
    assert d["uname"][1] in d["files"]["/proc/version"] and d["uname"][2] in d["files"]["/proc/version"]
    assert d["files"]["/proc/sys/kernel/osrelease"].strip() == d["uname"][1]
    assert "fam%04Xmod%04X" % (fam, model) in d["files"][S.CPU_DIR + "/modalias"]
    # the auxiliary vector: AT_HWCAP is CPUID.1:EDX, AT_HWCAP2 FSGSBASE (none)
    assert d["auxv"] == (c[(1, 0)][3], 2 if c.get((7, 0), (0, 0))[1] & 1 else 0, "x86_64")


def test_no_host_value_shows(dump):
    t, d, out = dump
    for s in host_strings():
        if s in (t.brand.strip(), t.vendor, t.kernel_release, t.kernel_version) or s in t.dmi.values():
            continue                  # (the host happens to be this very machine)
        assert s not in out, s


def test_templates_are_real_parts_the_core_runs():
    """A template never advertises an instruction-set feature the core lacks,
    and its brand, signature and frequency agree."""
    from emu.cpuid import MODELS
    isa = set(MODELS["max"]) | set(T.WESTMERE_I5_650.host_run)
    system = set("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca pat pse36 dts acpi ss ht tm pbe dtes64 "
                 "monitor ds_cpl vmx smx est tm2 xtpr pdcm pcid osxsave dtherm ida arat md_clear "
                 "flush_l1d".split())
    for t in T.TEMPLATES.values():
        assert set(t.features) <= isa | system, t.name
        assert "avx" not in t.features
        assert "%.2fGHz" % (t.tsc_hz / 1e9) in t.brand
        for c in t.caches:
            assert c.sets * c.ways * c.line == c.size_kb * 1024


def test_stealth_guest_uses_template_and_policy():
    g = Guest("stealth", "virtual")
    assert g.machine is not None and g.tsc_hz == g.machine.tsc_hz and g.ncpus == g.machine.ncpus
    assert g.timed
    g = Guest("stealth", "virtual", deception=Deception(timing=False, hypervisor_bit=True,
                                                        dmi={"sys_vendor": "QEMU"}, kernel_release="5.10.0-kvm"))
    assert not g.timed
    assert cp._get(cp.to_dict(g.table), 1)[2] >> 31
    assert g.virtual_file("/sys/class/dmi/id/sys_vendor") == b"QEMU\n"
    assert g.uname()[0] == "5.10.0-kvm"
    assert b"5.10.0-kvm" in g.virtual_file("/proc/version")
    g = Guest("transparent", "virtual")
    assert g.machine is None and g.ncpus == 1 and not g.timed
    for bad in ({"bogus": 1}, {"costs": {"div": 3}}, {"costs": {"cpuid": -1}}, {"cpuid": {"zz": [1, 2, 3, 4]}},
                {"cpuid": {"0x1": [1, 2]}}, {"timing": "yes"}, {"template": "pentium-4"}, []):
        with pytest.raises(DeceptionError):
            Deception.from_dict(bad)
    p = Deception.from_dict({"cpuid": {"0x4/1": [1, 2, 3, 4]}, "costs": {"cpuid": 900}, "time": "host"})
    assert p.leaves == {(4, 1): (1, 2, 3, 4)} and p.costs == {"cpuid": 900} and p.time == "host"


def test_policy_file_on_the_command_line(tmp_path):
    pol = tmp_path / "p.json"
    pol.write_text('{"hypervisor_bit": true, "dmi": {"sys_vendor": "QEMU"}}')
    antivm = os.path.join(ROOT, "guests", "antivm", "antivm")
    r = emu_run("--profile", "stealth", "--policy", str(pol), antivm)
    assert "cpuid_hypervisor_bit: DETECTED" in r.stdout and "dmi_strings: DETECTED" in r.stdout
    assert "cpuinfo_hypervisor_flag: clean" in r.stdout   # (the template's cpuinfo: the policy lies only in CPUID)
    pol.write_text('{"timing": tru')
    r = emu_run("--profile", "stealth", "--policy", str(pol), antivm)
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr
    r = emu_run("--profile", "stealth", "--template", "pentium-4", antivm)
    assert r.returncode == 2 and "unknown machine template" in r.stderr
    r = emu_run("--profile", "transparent", "--template", "penryn-e8400", antivm)
    assert r.returncode == 2 and "only with --profile stealth" in r.stderr and "Traceback" not in r.stderr
    r = emu_run("--template", "penryn-e8400", antivm)           # a template implies stealth
    assert r.returncode == 0 and "E8400" in r.stdout
