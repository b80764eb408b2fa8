"""CPUID tables the hypervisor installs into the core. `baseline` advertises
exactly what the core implements (SDM Vol. 2A, CPUID)."""
from __future__ import annotations


def _regs_from_str(s: str) -> tuple[int, int, int]:
    b = s.encode().ljust(12, b"\0")
    return tuple(int.from_bytes(b[i:i + 4], "little") for i in (0, 4, 8))


def baseline_table() -> list[tuple]:
    # A real vendor: glibc's dynamic loader only trusts the feature bits of
    # vendors it knows (with any other string it finds the x86-64 baseline ISA
    # missing and refuses to start). emu announces itself in the hypervisor
    # leaves (0x40000000) of the transparent profile instead.
    ebx, edx, ecx = _regs_from_str("GenuineIntel")
    # leaf 1: family 6 model 0x55 stepping 0, as an eax signature
    sig = (6 << 8) | (5 << 4) | (5 << 16)
    edx1 = (1 << 4) | (1 << 8) | (1 << 15)      # TSC, CX8, CMOV
    edx1 |= (1 << 0) | (1 << 19) | (1 << 24) | (1 << 25) | (1 << 26)   # FPU, CLFSH, FXSR, SSE, SSE2
    ecx1 = (1 << 13) | (1 << 22) | (1 << 23) | (1 << 30)  # CX16, MOVBE, POPCNT, RDRAND
    ecx1 |= (1 << 0) | (1 << 9) | (1 << 19) | (1 << 20)   # SSE3, SSSE3, SSE4.1, SSE4.2
    ebx7 = (1 << 18) | (1 << 19)                # RDSEED, ADX
    return [
        (0, None, 7, ebx, ecx, edx),
        (1, None, sig, 0x00010800, ecx1, edx1),
        (7, 0, 0, ebx7, 0, 0),
        (0x80000000, None, 0x80000008, 0, 0, 0),
        (0x80000001, None, 0, 0, (1 << 0) | (1 << 5), (1 << 11) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29)),
        (0x80000008, None, 0x3030, 0, 0, 0),   # 48-bit physical and linear addresses
    ]


def hwcap_bits(vcpu) -> tuple[int, int]:
    """AT_HWCAP is CPUID.1:EDX on x86; AT_HWCAP2 bit 1 is FSGSBASE (not offered)."""
    return vcpu.cpuid(1)[3], 0
