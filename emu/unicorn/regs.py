"""Unicorn's x86 register ids (x86_const.UC_X86_REG_*) on emu's vCPU.

Each id maps to a (read, write) pair over the public Vcpu API. Widths follow
the architecture: writing EAX zero-extends into RAX only through an
instruction; a register write through the API, like Unicorn's, changes just
the named part (SDM Vol. 1 3.4.1.1 is about instructions, not debuggers).
"""
from __future__ import annotations

import struct

from emu.unicorn import x86_const as X

M64 = (1 << 64) - 1
GPR64 = ("RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI",
         "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15")
GPR32 = ("EAX", "ECX", "EDX", "EBX", "ESP", "EBP", "ESI", "EDI") + tuple("R%dD" % i for i in range(8, 16))
GPR16 = ("AX", "CX", "DX", "BX", "SP", "BP", "SI", "DI") + tuple("R%dW" % i for i in range(8, 16))
GPR8 = ("AL", "CL", "DL", "BL", "SPL", "BPL", "SIL", "DIL") + tuple("R%dB" % i for i in range(8, 16))
GPR8H = ("AH", "CH", "DH", "BH")
SEGS = ("ES", "CS", "SS", "DS", "FS", "GS")        # emu's segment order (SDM encoding)

# FXSAVE image offsets (SDM Vol. 1 table 10-2)
FX_FCW, FX_FSW, FX_FTW, FX_FOP, FX_FIP, FX_FCS, FX_FDP, FX_FDS = 0, 2, 4, 6, 8, 12, 16, 20
FX_ST0 = 32


def _part(i, shift, mask):
    def rd(uc):
        return (uc._vcpu.get_gpr(i) >> shift) & mask

    def wr(uc, v):
        old = uc._vcpu.get_gpr(i)
        uc._vcpu.set_gpr(i, (old & ~(mask << shift)) | ((v & mask) << shift))
    return rd, wr


def _fx_field(off, fmt):
    size = struct.calcsize(fmt)

    def rd(uc):
        return struct.unpack_from(fmt, uc._vcpu.fxsave(), off)[0]

    def wr(uc, v):
        img = bytearray(uc._vcpu.fxsave())
        struct.pack_into(fmt, img, off, v & ((1 << (8 * size)) - 1))
        uc._vcpu.fxrstor(bytes(img))
    return rd, wr


def _fsw_top(uc):
    return (struct.unpack_from("<H", uc._vcpu.fxsave(), FX_FSW)[0] >> 11) & 7


def _st(i, physical):
    """FPi (physical=True): the register Ri, as Unicorn numbers them (the
    physical file, not the stack order), read as (mantissa, exponent).
    STi: ST(i) in stack order, read as one 80-bit integer (Unicorn's binding
    reads these with its default integer type; tools print them as numbers).
    Both take either form when written."""
    def slot(uc):
        return ((i - _fsw_top(uc)) & 7) if physical else i

    def rd(uc):
        img = uc._vcpu.fxsave()
        mant, exp = struct.unpack_from("<QH", img, FX_ST0 + 16 * slot(uc))
        return (mant, exp) if physical else mant | (exp << 64)

    def wr(uc, v):
        mant, exp = v if isinstance(v, tuple) else (v & M64, (v >> 64) & 0xFFFF)
        img = bytearray(uc._vcpu.fxsave())
        k = slot(uc)
        struct.pack_into("<QH", img, FX_ST0 + 16 * k, mant & M64, exp & 0xFFFF)
        img[FX_FTW] |= 1 << ((k + _fsw_top(uc)) & 7)          # (abridged tag: physical register valid)
        uc._vcpu.fxrstor(bytes(img))
    return rd, wr


def _tag_of(mant, exp):
    """The full tag of a non-empty register (SDM Vol. 1 8.1.7): 0 valid, 1 zero, 2 special."""
    e = exp & 0x7FFF
    if e == 0x7FFF or (e == 0 and mant) or (e and not mant >> 63):
        return 2
    if e == 0 and mant == 0:
        return 1
    return 0


def _ftag_read(uc):
    img = uc._vcpu.fxsave()
    top = (struct.unpack_from("<H", img, FX_FSW)[0] >> 11) & 7
    tw = 0
    for phys in range(8):
        if not img[FX_FTW] >> phys & 1:
            t = 3
        else:
            mant, exp = struct.unpack_from("<QH", img, FX_ST0 + 16 * ((phys - top) & 7))
            t = _tag_of(mant, exp)
        tw |= t << (2 * phys)
    return tw


def _ftag_write(uc, v):
    img = bytearray(uc._vcpu.fxsave())
    img[FX_FTW] = sum(1 << p for p in range(8) if (v >> (2 * p)) & 3 != 3)
    uc._vcpu.fxrstor(bytes(img))


def _xmm(i):
    def rd(uc):
        return int.from_bytes(uc._vcpu.get_xmm(i), "little")

    def wr(uc, v):
        uc._vcpu.set_xmm(i, (v & ((1 << 128) - 1)).to_bytes(16, "little"))
    return rd, wr


def _ymm(i):
    def rd(uc):
        return int.from_bytes(uc._vcpu.get_ymm(i), "little")

    def wr(uc, v):
        uc._vcpu.set_ymm(i, (v & ((1 << 256) - 1)).to_bytes(32, "little"))
    return rd, wr


def _absent(width, low=None):
    """A register of AVX-512 (XMM16-31, YMM16-31, ZMM, K), which the CPU
    models emu implements do not have: it reads as zero (ZMM0-15: its YMM
    part), and only a value whose extra bits are zero can be written, so a
    tool that saves and restores every register works."""
    def rd(uc):
        return low[0](uc) if low else 0

    def wr(uc, v):
        if low:
            if v >> 256:
                raise _arg_error()
            low[1](uc, v)
        elif v:
            raise _arg_error()
    return rd, wr


def _arg_error():
    from emu.unicorn.errors import UcError
    from emu.unicorn.unicorn_const import UC_ERR_ARG
    return UcError(UC_ERR_ARG)


def _mm(i):
    # MMi aliases the mantissa of physical x87 register Ri (SDM Vol. 1 9.2.2)
    rd_st, wr_st = _st(i, True)

    def rd(uc):
        return rd_st(uc)[0]

    def wr(uc, v):
        wr_st(uc, (v, 0xFFFF))           # writing an MMX register sets the exponent to all ones
    return rd, wr


def _attr(name, mask=M64):
    def rd(uc):
        return getattr(uc._vcpu, name)

    def wr(uc, v):
        setattr(uc._vcpu, name, v & mask)
    return rd, wr


def _seg(i):
    def rd(uc):
        return uc._vcpu.get_seg_sel(i)

    def wr(uc, v):
        uc._set_segment(i, v & 0xFFFF)
    return rd, wr


def _seg_base(i):
    def rd(uc):
        return uc._vcpu.get_seg_base(i)

    def wr(uc, v):
        uc._vcpu.set_seg_base(i, v & M64)
    return rd, wr


def _dtr(name):
    # Unicorn's shape: (selector, base, limit, flags); GDTR/IDTR have no selector or flags
    def rd(uc):
        base, limit = getattr(uc._vcpu, name)
        return (0, base, limit, 0)

    def wr(uc, v):
        setattr(uc._vcpu, name, (v[1] & M64, v[2] & 0xFFFF))
    return rd, wr


def _sysseg(name):
    def rd(uc):
        sel, base, limit = getattr(uc._vcpu, name)
        return (sel, base, limit, 0)

    def wr(uc, v):
        setattr(uc._vcpu, name, (v[0] & 0xFFFF, v[1] & M64, v[2] & 0xFFFFFFFF))
    return rd, wr


def _cr(n):
    def rd(uc):
        return uc._cr_read(n)

    def wr(uc, v):
        uc._cr_write(n, v & M64)
    return rd, wr


def _dr(n):
    def rd(uc):
        return uc._vcpu.get_dr(n)

    def wr(uc, v):
        uc._vcpu.set_dr(n, v & M64)
    return rd, wr


def _rip(mask):
    def rd(uc):
        return uc._vcpu.rip & mask

    def wr(uc, v):
        # a write of RIP (also to the same value) is a jump: the instruction
        # there starts afresh, its hooks fire again
        uc._vcpu.rip = (uc._vcpu.rip & ~mask) | (v & mask)
        uc._vcpu.forget_resume()
    return rd, wr


def _flags(mask):
    def rd(uc):
        return uc._vcpu.rflags & mask

    def wr(uc, v):
        uc._vcpu.rflags = (uc._vcpu.rflags & ~mask) | (v & mask)
    return rd, wr


def _mxcsr():
    def rd(uc):
        return uc._vcpu.mxcsr

    def wr(uc, v):
        uc._vcpu.mxcsr = v & 0xFFFF
    return rd, wr


def build() -> dict:
    """reg id -> (read(uc), write(uc, value))."""
    t = {}
    for i, n in enumerate(GPR64):
        t[getattr(X, "UC_X86_REG_" + n)] = _part(i, 0, M64)
    for i, n in enumerate(GPR32):
        t[getattr(X, "UC_X86_REG_" + n)] = _part(i, 0, 0xFFFFFFFF)
    for i, n in enumerate(GPR16):
        t[getattr(X, "UC_X86_REG_" + n)] = _part(i, 0, 0xFFFF)
    for i, n in enumerate(GPR8):
        t[getattr(X, "UC_X86_REG_" + n)] = _part(i, 0, 0xFF)
    for i, n in enumerate(GPR8H):
        t[getattr(X, "UC_X86_REG_" + n)] = _part(i, 8, 0xFF)
    t[X.UC_X86_REG_RIP] = _rip(M64)
    t[X.UC_X86_REG_EIP] = _rip(0xFFFFFFFF)
    t[X.UC_X86_REG_IP] = _rip(0xFFFF)
    t[X.UC_X86_REG_RFLAGS] = _flags(M64)
    t[X.UC_X86_REG_EFLAGS] = _flags(0xFFFFFFFF)
    t[X.UC_X86_REG_FLAGS] = _flags(0xFFFF)
    for i, n in enumerate(SEGS):
        t[getattr(X, "UC_X86_REG_" + n)] = _seg(i)
    t[X.UC_X86_REG_FS_BASE] = _seg_base(4)
    t[X.UC_X86_REG_GS_BASE] = _seg_base(5)
    for n in (0, 1, 2, 3, 4, 8):
        t[getattr(X, "UC_X86_REG_CR%d" % n)] = _cr(n)
    for n in range(8):
        t[getattr(X, "UC_X86_REG_DR%d" % n)] = _dr(n)
    t[X.UC_X86_REG_GDTR] = _dtr("gdtr")
    t[X.UC_X86_REG_IDTR] = _dtr("idtr")
    t[X.UC_X86_REG_LDTR] = _sysseg("ldtr")
    t[X.UC_X86_REG_TR] = _sysseg("tr")
    for i in range(8):
        t[getattr(X, "UC_X86_REG_FP%d" % i)] = _st(i, True)
        t[getattr(X, "UC_X86_REG_ST%d" % i)] = _st(i, False)
        t[getattr(X, "UC_X86_REG_MM%d" % i)] = _mm(i)
    t[X.UC_X86_REG_FPCW] = _fx_field(FX_FCW, "<H")
    t[X.UC_X86_REG_FPSW] = _fx_field(FX_FSW, "<H")
    t[X.UC_X86_REG_FPTAG] = (_ftag_read, _ftag_write)
    t[X.UC_X86_REG_FOP] = _fx_field(FX_FOP, "<H")
    t[X.UC_X86_REG_FIP] = _fx_field(FX_FIP, "<I")
    t[X.UC_X86_REG_FCS] = _fx_field(FX_FCS, "<H")
    t[X.UC_X86_REG_FDP] = _fx_field(FX_FDP, "<I")
    t[X.UC_X86_REG_FDS] = _fx_field(FX_FDS, "<H")
    t[X.UC_X86_REG_MXCSR] = _mxcsr()
    for i in range(16):
        t[getattr(X, "UC_X86_REG_XMM%d" % i)] = _xmm(i)
        t[getattr(X, "UC_X86_REG_YMM%d" % i)] = _ymm(i)
        t[getattr(X, "UC_X86_REG_ZMM%d" % i)] = _absent(512, _ymm(i))
    for i in range(16, 32):
        for kind, w in (("XMM", 128), ("YMM", 256), ("ZMM", 512)):
            t[getattr(X, "UC_X86_REG_%s%d" % (kind, i))] = _absent(w)
    for i in range(8):
        t[getattr(X, "UC_X86_REG_K%d" % i)] = _absent(64)
    return t
