"""emu: an x86-64 machine emulator for Python."""
import os as _os

# emu does no linear algebra: keep numpy's BLAS from starting spinning worker
# threads that compete with the vCPU for the host's cores
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from emu._core import (GPR_NAMES, Exit, ExitReason, PhysMachine, Vector, available_tiers, get_default_tier,
                       set_default_tier)
from emu.machine import PROT_R, PROT_W, PROT_X, GuestMemoryError, Machine
from emu.vcpu import Vcpu

__all__ = ["GPR_NAMES", "Exit", "ExitReason", "Vector", "PhysMachine", "Machine", "Vcpu", "GuestMemoryError",
           "PROT_R", "PROT_W", "PROT_X", "available_tiers", "get_default_tier", "set_default_tier"]
