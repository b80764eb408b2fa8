"""The legacy vsyscall page (arch/x86/entry/vsyscall/vsyscall_64.c): old
binaries call gettimeofday, time and getcpu at fixed addresses in
0xffffffffff600000. As Linux does in its default (xonly) mode, the page is
not mapped; an instruction fetch there faults, and the fault handler
emulates the call at the three entry points and returns to the caller."""
from __future__ import annotations

import struct

VSYSCALL_PAGE = 0xFFFFFFFFFF600000
ENTRIES = {0x000: 96, 0x400: 201, 0x800: 309}      # gettimeofday, time, getcpu
PFE_I = 0x10                                         # #PF error code: instruction fetch


def emulate(proc, v, ex) -> bool:
    """Handle a #PF exit that is a call into the vsyscall page: the system
    call runs (through the normal dispatcher: strace, replay, hooks), then
    the RET the entry point would execute. False when it is not one."""
    addr = ex.cr2
    if ex.vector != 14 or not ex.error_code & PFE_I or addr & ~0xFFF != VSYSCALL_PAGE or v.rip != addr:
        return False
    nr = ENTRIES.get(addr & 0xFFF)
    if nr is None:
        return False                                 # not an entry point: SIGSEGV as on Linux
    try:
        ret = struct.unpack("<Q", proc.sys.read(v.rsp, 8))[0]
    except Exception:
        return False
    v.rax = nr
    proc.sys.dispatch()
    v.rip = ret
    v.rsp = v.rsp + 8
    return True
