"""The vCPU as the hypervisor layer sees it: the core's Vcpu plus register
access by x86 name."""
from __future__ import annotations

from emu import _core

SEGMENTS = ("es", "cs", "ss", "ds", "fs", "gs")


class Vcpu(_core.Vcpu):
    """A virtual CPU. `run(budget)` executes guest code and returns an Exit."""

    def regs(self) -> dict:
        """All general-purpose registers, RIP and RFLAGS as a dict."""
        out = {name: self.get_gpr(i) for i, name in enumerate(_core.GPR_NAMES)}
        out["rip"] = self.rip
        out["rflags"] = self.rflags
        return out

    def set_regs(self, **values: int) -> None:
        for name, v in values.items():
            setattr(self, name, v)

    @property
    def fs_base(self) -> int:
        return self.get_seg_base(4)

    @fs_base.setter
    def fs_base(self, v: int) -> None:
        self.set_seg_base(4, v)

    @property
    def gs_base(self) -> int:
        return self.get_seg_base(5)

    @gs_base.setter
    def gs_base(self, v: int) -> None:
        self.set_seg_base(5, v)


def _gpr_property(i: int) -> property:
    def get(self):
        return self.get_gpr(i)

    def set(self, v):
        self.set_gpr(i, v & 0xFFFFFFFFFFFFFFFF)

    return property(get, set, doc=_core.GPR_NAMES[i])


for _i, _name in enumerate(_core.GPR_NAMES):
    setattr(Vcpu, _name, _gpr_property(_i))
