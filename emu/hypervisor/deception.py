"""Deception as a policy: what the stealth machine lies about, per sample,
set through the API (Guest(deception=Deception(...))) or a JSON file given
to `emu run --policy FILE`. Each knob can make the machine lie further or
tell the truth:

    {
      "template": "westmere-i5-650",     machine template (emu/hypervisor/templates.py)
      "timing": true,                    class costs charged to the virtual TSC
      "cache": true,                     the cache model charges misses
      "cache_sample": 4,                 model 1 in N accesses past L1's last line (1: every one)
      "costs": {"cpuid": 140},           class costs (extra cycles) replaced
      "dram_cycles": 210,                extra cycles of a DRAM access
      "hypervisor_bit": false,           CPUID.1:ECX[31] forced on (true) or off (false)
      "cpuid": {"0x40000000": [0, 0, 0, 0], "0x4/1": [...]},   leaves replaced
      "dmi": {"sys_vendor": "..."},      DMI strings replaced
      "kernel_release": "...",           uname -r and /proc/version's release
      "time": "virtual"                  the time mode (unless --time is given)
    }

Unknown keys and malformed values are refused with one clear line
(DeceptionError)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field


class DeceptionError(ValueError):
    pass


@dataclass
class Deception:
    template: str | None = None
    timing: bool = True
    cache: bool = True
    cache_sample: int = 4                            # model 1 in N L1 misses (x N charge); 1: every access
    costs: dict = field(default_factory=dict)
    dram_cycles: int | None = None
    hypervisor_bit: bool | None = None
    leaves: dict = field(default_factory=dict)       # {(leaf, subleaf or None): (eax, ebx, ecx, edx)}
    dmi: dict = field(default_factory=dict)
    kernel_release: str | None = None
    time: str | None = None                          # "virtual" or "host" (emu run: unless --time is given)

    def cpuid(self, table) -> list[tuple]:
        """The CPUID table with the policy's leaves and hypervisor bit."""
        from emu.hypervisor import cpuid_profiles as cp
        if self.leaves:
            table = cp.user_table(table, self.leaves)
        if self.hypervisor_bit is not None:
            d = cp.to_dict(table)
            r = cp._get(d, 1)
            r[2] = (r[2] | cp.HYPERVISOR_BIT) if self.hypervisor_bit else (r[2] & ~cp.HYPERVISOR_BIT)
            table = cp.to_table(d)
        return table

    @classmethod
    def from_dict(cls, d: dict) -> "Deception":
        if not isinstance(d, dict):
            raise DeceptionError("a policy is a JSON object")
        known = {"template", "timing", "cache", "cache_sample", "costs", "dram_cycles", "hypervisor_bit", "cpuid", "dmi",
                 "kernel_release", "time"}
        bad = sorted(set(d) - known)
        if bad:
            raise DeceptionError("unknown policy key %r (known: %s)" % (bad[0], ", ".join(sorted(known))))
        out = cls()
        if "template" in d:
            from emu.hypervisor.templates import TEMPLATES
            if d["template"] not in TEMPLATES:
                raise DeceptionError("unknown template %r (one of %s)" % (d["template"], ", ".join(TEMPLATES)))
            out.template = d["template"]
        for key in ("timing", "cache"):
            if key in d:
                if not isinstance(d[key], bool):
                    raise DeceptionError("%s: true or false expected" % key)
                setattr(out, key, d[key])
        if "hypervisor_bit" in d:
            if d["hypervisor_bit"] is not None and not isinstance(d["hypervisor_bit"], bool):
                raise DeceptionError("hypervisor_bit: true, false or null expected")
            out.hypervisor_bit = d["hypervisor_bit"]
        if "costs" in d:
            from emu._core import timing_classes
            if not isinstance(d["costs"], dict):
                raise DeceptionError("costs: an object {class: cycles} expected")
            for k, v in d["costs"].items():
                if k not in timing_classes():
                    raise DeceptionError("costs: unknown class %r (one of %s)" % (k, ", ".join(timing_classes())))
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0xFFFF:
                    raise DeceptionError("costs.%s: cycles 0..65535 expected" % k)
            out.costs = dict(d["costs"])
        if "cache_sample" in d:
            v = d["cache_sample"]
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 64:
                raise DeceptionError("cache_sample: 1..64 expected")
            out.cache_sample = v
        if "dram_cycles" in d:
            v = d["dram_cycles"]
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 100000:
                raise DeceptionError("dram_cycles: cycles 0..100000 expected")
            out.dram_cycles = v
        if "cpuid" in d:
            if not isinstance(d["cpuid"], dict):
                raise DeceptionError("cpuid: an object {\"leaf[/subleaf]\": [eax, ebx, ecx, edx]} expected")
            for k, regs in d["cpuid"].items():
                try:
                    leaf_s, _, sub_s = str(k).partition("/")
                    key = (int(leaf_s, 0), int(sub_s, 0) if sub_s else None)
                except ValueError:
                    raise DeceptionError("cpuid: bad leaf %r (\"0x40000000\" or \"0x4/1\")" % k) from None
                if not (isinstance(regs, list) and len(regs) == 4 and
                        all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < 1 << 32 for r in regs)):
                    raise DeceptionError("cpuid.%s: four 32-bit register values expected" % k)
                out.leaves[key] = tuple(regs)
        if "dmi" in d:
            if not isinstance(d["dmi"], dict) or not all(isinstance(v, str) for v in d["dmi"].values()):
                raise DeceptionError("dmi: an object of strings expected")
            out.dmi = dict(d["dmi"])
        if "time" in d:
            if d["time"] not in ("virtual", "host"):
                raise DeceptionError("time: \"virtual\" or \"host\" expected")
            out.time = d["time"]
        if "kernel_release" in d:
            if not isinstance(d["kernel_release"], str) or not d["kernel_release"] or len(d["kernel_release"]) > 64:
                raise DeceptionError("kernel_release: a string of 1..64 characters expected")
            out.kernel_release = d["kernel_release"]
        return out

    @classmethod
    def from_file(cls, path: str) -> "Deception":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except OSError as e:
            raise DeceptionError("%s: %s" % (path, e.strerror)) from None
        except (ValueError, UnicodeDecodeError) as e:
            raise DeceptionError("%s: not valid JSON (%s)" % (path, e)) from None
        try:
            return cls.from_dict(d)
        except DeceptionError as e:
            raise DeceptionError("%s: %s" % (path, e)) from None
