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


# FPE codes of the x87 / SIMD exception flags (arch/x86/kernel/fpu/core.c fpu__exception_code)
FPE_INTDIV, FPE_FLTDIV, FPE_FLTOVF, FPE_FLTUND, FPE_FLTRES, FPE_FLTINV = 1, 3, 4, 5, 6, 7
SI_KERNEL, ILL_ILLOPN, SEGV_MAPERR, SEGV_ACCERR, BUS_ADRALN = 0x80, 2, 1, 2, 1
TRAP_BRKPT, TRAP_TRACE = 1, 2


def _fpe_code(err: int) -> int:
    if err & 0x01:
        return FPE_FLTINV
    if err & 0x04:
        return FPE_FLTDIV
    if err & 0x08:
        return FPE_FLTOVF
    if err & 0x12:
        return FPE_FLTUND
    if err & 0x20:
        return FPE_FLTRES
    return 0


def fault_info(p, ex):
    """A CPU exception as Linux reports it (arch/x86/kernel/traps.c,
    mm/fault.c): (signal, si_code, si_addr, trapno, err, resume RIP)."""
    vec, rip, err = ex.vector, ex.rip, ex.error_code if ex.has_error_code else 0
    if getattr(ex, "software", False) and vec not in (3, 4) or vec >= 32:
        if vec == 3:
            return 5, SI_KERNEL, 0, 3, 0, rip
        # INT n through a DPL-0 gate: #GP(n*8+2) at the INT instruction
        return 11, SI_KERNEL, 0, 13, (vec << 3) | 2, rip - 2
    if vec == 14:
        addr = ex.cr2
        vma = p.mm.find(addr) if addr < (1 << 47) else None
        if addr >= (1 << 47):
            err |= 1                  # a user access to a kernel address is a protection fault
        return 11, SEGV_MAPERR if vma is None else SEGV_ACCERR, addr, 14, err | 4, rip
    if vec == 0:
        return 8, FPE_INTDIV, rip, 0, 0, rip
    if vec == 1:
        v = p.vcpu
        dr6 = v.get_dr(6)
        v.set_dr(6, dr6 & ~0x4000)
        return 5, TRAP_TRACE if dr6 & 0x4000 else TRAP_BRKPT, rip, 1, 0, rip
    if vec == 3:
        return 5, SI_KERNEL, 0, 3, 0, rip
    if vec == 6:
        return 4, ILL_ILLOPN, rip, 6, 0, rip
    if vec == 16:
        st = p.vcpu.fpu_state
        return 8, _fpe_code(st["fsw"] & ~st["fcw"] & 0x3F), rip, 16, 0, rip
    if vec == 19:
        csr = p.vcpu.mxcsr
        return 8, _fpe_code(csr & ~(csr >> 7) & 0x3F), rip, 19, 0, rip
    if vec == 17:
        return 7, BUS_ADRALN, 0, 17, err, rip
    if vec == 12:
        return 7, SI_KERNEL, 0, 12, err, rip
    return 11, SI_KERNEL, 0, vec, err, rip        # #GP and the rest: SIGSEGV from the kernel


def _siginfo(sig: int, fault, pid: int, p=None) -> bytes:
    if fault is not None:
        _sig, code, addr, trapno, _err, _rip = fault
        return struct.pack("<iiiiQ", sig, 0, code, 0, addr).ljust(128, b"\0")
    return struct.pack("<iiiiII", sig, 0, 0, 0, pid, 0).ljust(128, b"\0")


def xstate_layout(v):
    """(size of the signal frame's XSAVE image, the features it holds): the
    one place the frame's FPU layout comes from. XCR0's x87 and SSE are the
    512-byte legacy area plus the 64-byte XSAVE header; an extension the
    core enables in XCR0 (AVX: 256 bytes at 576) adds its component here."""
    xcr0 = v.xcr0 or 3
    size = 576
    if xcr0 & 4:
        size = 576 + 256
    return size, xcr0


FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 1, 2, 4
# the FPU state a handler starts with (Linux resets it: fpu__clear_user_states)
_INIT_FX = struct.pack("<HHBBHQQII", 0x37F, 0, 0, 0, 0, 0, 0, 0x1F80, 0xFFFF).ljust(512, b"\0")


def _fpstate(v) -> bytes:
    size, feats = xstate_layout(v)
    # the core's XSAVE image (x87, SSE and, with AVX in XCR0, the YMM upper
    # halves at 576; XSTATE_BV = the components in use), as XSAVE stores it
    img = bytearray(v.xsave_image().ljust(size, b"\0")[:size])
    struct.pack_into("<IIQI", img, 464, FP_XSTATE_MAGIC1, size + 4, feats, size)   # _fpx_sw_bytes
    return bytes(img) + struct.pack("<I", FP_XSTATE_MAGIC2)


def setup_frame(s, sig: int, act: tuple, fault=None) -> None:
    """The x86-64 rt_sigframe as Linux builds it (arch/x86/kernel/signal.c
    get_sigframe): below the red zone (or at the top of the alternate
    stack) the XSAVE image, 64-byte aligned, then the frame (return
    address, ucontext, siginfo) 16-byte aligned minus 8. fault: fault_info's
    tuple for a CPU exception."""
    handler, flags, restorer, mask = act
    p, v = s.p, s.v
    if getattr(p.current, "rseq", None) is not None:   # a signal in a restartable sequence aborts it first
        from emu.linux.rseq import fixup
        fixup(s, p.current)
    sp = v.rsp
    alt = getattr(p, "altstack", (0, SS_DISABLE, 0))
    on_alt = alt[0] <= sp < alt[0] + alt[2]
    if flags & SA_ONSTACK and not alt[1] & SS_DISABLE and not on_alt:
        sp = alt[0] + alt[2]
    else:
        sp -= 128           # the red zone
    fp = _fpstate(v)
    fp_addr = (sp - len(fp)) & ~63
    sp = ((fp_addr - FRAME_SIZE) & ~15) - 8
    regs = v.regs()
    if fault is not None:
        regs["rip"] = fault[5]
    mc = struct.pack("<17Q", *[regs[r] for r in SC_REGS])
    mc += struct.pack("<QHHHHQQQQQ", v.rflags, 0x33, 0, 0, 0x2B,
                      fault[4] if fault is not None else 0,
                      fault[3] if fault is not None else 0, p.signal_mask,
                      fault[2] if fault is not None and fault[3] == 14 else 0, fp_addr)
    mc = mc.ljust(256, b"\0")
    uc = struct.pack("<QQQiiQ", UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0, alt[0],
                     1 if on_alt else alt[1], 0, alt[2])
    frame = struct.pack("<Q", restorer if flags & SA_RESTORER else 0) + uc + mc + struct.pack("<Q", p.signal_mask)
    frame = frame.ljust(INFO_OFF, b"\0") + _siginfo(sig, fault, p.pid)
    s.write(fp_addr, fp)
    s.write(sp, frame)
    p.signal_mask |= mask
    if not flags & SA_NODEFER:
        p.signal_mask |= 1 << (sig - 1)
    if flags & SA_RESETHAND:
        p.signal_actions[sig] = (0, 0, 0, 0)
    v.xrstor_image(_INIT_FX + bytes(64))   # the handler starts with a clean FPU (AVX state init too)
    v.rsp = sp
    v.rip = handler
    v.rdi = sig
    v.rsi = sp + INFO_OFF
    v.rdx = sp + UC_OFF
    v.rax = 0
    v.rflags = v.rflags & ~0x500      # DF clear on handler entry (psABI), TF clear (Linux)


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
    p.signal_mask &= ~((1 << 8) | (1 << 18))
    (fp_addr,) = struct.unpack_from("<Q", raw, MC_OFF + 23 * 8)
    if fp_addr:
        try:
            v.xrstor_image(s.read(fp_addr, xstate_layout(v)[0]))
        except ValueError:                 # reserved MXCSR bits: Linux kills with SIGSEGV
            from emu.linux.process import GuestKilled
            raise GuestKilled(11)
    else:
        v.xrstor_image(_INIT_FX + bytes(64))
    return None     # RAX came from the frame
