"""Signal delivery to guest handlers: the x86-64 rt_sigframe
(arch/x86/include/asm/sigframe.h, uapi/asm/sigcontext.h) and rt_sigreturn."""
from __future__ import annotations

import struct

from emu.linux.syscalls import syscall

SA_SIGINFO, SA_ONSTACK, SA_RESTORER, SA_NODEFER, SA_RESETHAND = 4, 0x08000000, 0x04000000, 0x40000000, 0x80000000
SS_ONSTACK, SS_DISABLE = 1, 2

# sigcontext order of the general registers
SC_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
           "rdx", "rax", "rcx", "rsp", "rip")
UC_OFF = 8                  # after pretcode
MC_OFF = UC_OFF + 40        # uc_flags, uc_link, uc_stack
MASK_OFF = MC_OFF + 256
INFO_OFF = UC_OFF + 304
FRAME_SIZE = INFO_OFF + 128
USER_FLAGS = 0x3F7FD5 & ~0x3000 & ~0x200   # what sigreturn may change (no IOPL, IF)


def _siginfo(sig: int, fault, pid: int) -> bytes:
    code, addr = 0, 0
    if fault is not None:
        if fault.vector == 14:
            code = 2 if fault.error_code & 1 else 1      # SEGV_ACCERR / SEGV_MAPERR
            addr = fault.cr2
        elif fault.vector == 0:
            code, addr = 1, fault.rip                    # FPE_INTDIV
        elif fault.vector == 6:
            code, addr = 2, fault.rip                    # ILL_ILLOPN
        else:
            code = 0x80                                  # SI_KERNEL (#GP and friends)
        return struct.pack("<iiiiQ", sig, 0, code, 0, addr).ljust(128, b"\0")
    return struct.pack("<iiiiII", sig, 0, 0, 0, pid, 0).ljust(128, b"\0")


def setup_frame(s, sig: int, act: tuple, fault=None) -> None:
    handler, flags, restorer, mask = act
    p, v = s.p, s.v
    sp = v.rsp
    alt = getattr(p, "altstack", (0, SS_DISABLE, 0))
    on_alt = alt[0] <= sp < alt[0] + alt[2]
    if flags & SA_ONSTACK and not alt[1] & SS_DISABLE and not on_alt:
        sp = alt[0] + alt[2]
    else:
        sp -= 128           # the red zone
    sp = ((sp - FRAME_SIZE) & ~15) - 8
    regs = v.regs()
    mc = struct.pack("<17Q", *[regs[r] for r in SC_REGS])
    mc += struct.pack("<QHHHHQQQQQ", v.rflags, 0x33, 0, 0, 0x2B,
                      fault.error_code if fault is not None else 0,
                      fault.vector if fault is not None else 0, p.signal_mask,
                      fault.cr2 if fault is not None else 0, 0)
    mc = mc.ljust(256, b"\0")
    uc = struct.pack("<QQQiiQ", 0, 0, alt[0], 1 if on_alt else alt[1], 0, alt[2])
    frame = struct.pack("<Q", restorer if flags & SA_RESTORER else 0) + uc + mc + struct.pack("<Q", p.signal_mask)
    frame = frame.ljust(INFO_OFF, b"\0") + _siginfo(sig, fault, p.pid)
    s.write(sp, frame)
    # keep the SIMD state the handler may clobber (restored by rt_sigreturn)
    saved = getattr(p, "sigframe_fp", [])
    saved.append(_save_fp(v))
    p.sigframe_fp = saved
    p.signal_mask |= mask
    if not flags & SA_NODEFER:
        p.signal_mask |= 1 << (sig - 1)
    if flags & SA_RESETHAND:
        p.signal_actions[sig] = (0, 0, 0, 0)
    v.rsp = sp
    v.rip = handler
    v.rdi = sig
    v.rsi = sp + INFO_OFF
    v.rdx = sp + UC_OFF
    v.rax = 0
    v.rflags = v.rflags & ~0x400      # DF clear on handler entry (psABI)


def _save_fp(v):
    # the x87/SSE/AVX state as the core's XSAVE image (size and components
    # from the CPU model's XCR0): what the kernel puts in the frame's fpstate
    return v.xsave_image()


def _restore_fp(v, saved) -> None:
    if saved is not None:
        v.xrstor_image(saved)


@syscall(15, "rt_sigreturn")
def sys_rt_sigreturn(s, *_):
    v, p = s.v, s.p
    frame = v.rsp - 8
    raw = s.read(frame, FRAME_SIZE)
    vals = struct.unpack_from("<17Q", raw, MC_OFF)
    for name, val in zip(SC_REGS, vals):
        setattr(v, name, val)
    (rflags,) = struct.unpack_from("<Q", raw, MC_OFF + 17 * 8)
    v.rflags = (v.rflags & ~USER_FLAGS) | (rflags & USER_FLAGS)
    (p.signal_mask,) = struct.unpack_from("<Q", raw, MASK_OFF)
    saved = getattr(p, "sigframe_fp", [])
    if saved:
        _restore_fp(v, saved.pop())
    return None     # RAX came from the frame
