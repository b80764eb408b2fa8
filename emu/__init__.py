"""emu: an x86-64 machine emulator for Python."""
from emu._core import GPR_NAMES, Exit, PhysMachine
from emu.machine import PROT_R, PROT_W, PROT_X, GuestMemoryError, Machine
from emu.vcpu import Vcpu

__all__ = ["GPR_NAMES", "Exit", "PhysMachine", "Machine", "Vcpu", "GuestMemoryError",
           "PROT_R", "PROT_W", "PROT_X"]
