"""System mode: a microVM that boots a 64-bit guest kernel (emu boot)."""
from emu.vm.vmm import VM

__all__ = ["VM"]
