"""The Linux user-mode personality: emu plays the kernel for an x86-64 Linux
program (ELF loading, address space, system calls, files, signals)."""
from emu.linux.process import Process, run_program

__all__ = ["Process", "run_program"]
