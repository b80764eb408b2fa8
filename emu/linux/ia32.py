"""`int 0x80` from 64-bit code: the i386 system-call ABI, which Linux keeps
for 64-bit processes (arch/x86/entry/entry_64_compat.S). EAX holds the i386
number (arch/x86/entry/syscalls/syscall_32.tbl), EBX ECX EDX ESI EDI EBP
the arguments, zero-extended to 64 bits as the kernel does; the result
goes to RAX. Calls whose i386 form takes the same arguments as the x86-64
one run the x86-64 handler; the others (old structs, 32-bit layouts)
return ENOSYS."""
from __future__ import annotations

from emu.linux import errno as E

MASK64 = (1 << 64) - 1

# i386 number -> x86-64 number, for calls with the same argument meaning
I386_TO_X64 = {
    1: 60, 2: 57, 3: 0, 4: 1, 5: 2, 6: 3, 10: 87, 12: 80, 15: 90, 20: 39, 24: 102, 33: 21, 36: 162,
    37: 62, 38: 82, 39: 83, 40: 84, 41: 32, 42: 22, 47: 104, 49: 107, 50: 108, 57: 109, 60: 95, 63: 33,
    64: 110, 65: 111, 66: 112, 83: 88, 85: 89, 91: 11, 94: 91, 118: 74, 125: 10, 133: 81, 143: 73,
    147: 124, 148: 75, 158: 24, 183: 79, 199: 102, 200: 104, 201: 107, 202: 108, 224: 186, 238: 200,
    252: 231, 258: 218, 270: 234, 295: 257, 331: 293, 355: 318,
}


def int80(s) -> None:
    from emu.linux.syscalls import SYSCALLS
    v = s.v
    nr = v.rax & 0xFFFFFFFF
    args = tuple(x & 0xFFFFFFFF for x in (v.rbx, v.rcx, v.rdx, v.rsi, v.rdi, v.rbp))
    p = s.p
    x64 = I386_TO_X64.get(nr)
    entry = SYSCALLS.get(x64) if x64 is not None else None
    if entry is None:
        ret = -E.ENOSYS
        name = "i386_%d" % nr
    else:
        name, fn = entry
        from emu.linux.syscalls import Fault
        try:
            ret = fn(s, *args)
        except Fault:
            ret = -E.EFAULT
        except OSError as e:
            ret = -E.from_oserror(e)
    if p.strace:
        s._trace("int80:" + name, args, ret)
    if ret is not None:
        v.rax = ret & MASK64
