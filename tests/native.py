"""Native x86-64 oracle: run instruction bytes on the host CPU.

This is the reference for differential tests of the emulator.  Given some
machine code, a register file and RFLAGS, it executes the code natively and
returns every general-purpose register and RFLAGS afterwards.

Only Python + ctypes + mmap are used.  The trampoline around the guest bytes
is hand-assembled below (see ``_prologue`` / ``_epilogue``).

API
---
``available() -> bool``
    True on Linux/x86-64 when an executable mapping can be created.

``run(code, regs, rflags=0x202, *, taken_disp=None) -> Result``
    ``Result`` is a 3-tuple ``(regs_out, rflags_out, exit)`` with extra
    attributes ``code_addr`` (address of the first guest byte) and ``rip``
    (the guest RIP after the run).  ``exit`` is ``'fall'`` when execution
    reached the end of ``code`` and ``'taken'`` when it arrived at
    ``end_of_code + taken_disp``.

``scratch(size) -> (address, buffer)``
    Page-aligned, zeroed, read/write memory that guest code may use (base
    registers, stack).  ``buffer`` is a ``ctypes.c_ubyte`` array.

Register names: rax rbx rcx rdx rsi rdi rbp rsp r8 .. r15.  Missing
registers are 0, except ``rsp`` which defaults to the middle of a private
64 KiB scratch stack (``default_stack()``).
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import signal
import struct
import sys
import threading
from collections import namedtuple

__all__ = [
    "available", "run", "scratch", "default_stack", "Result",
    "REG_NAMES", "FLAGS_SETTABLE", "CF", "PF", "AF", "ZF", "SF", "TF", "IF",
    "DF", "OF",
]

# Register names in hardware encoding order (index == ModRM/REX number).
REG_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
_REG_INDEX = {n: i for i, n in enumerate(REG_NAMES)}

CF, PF, AF, ZF, SF, TF, IF, DF, OF = (
    0x1, 0x4, 0x10, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800)
FLAGS_SETTABLE = CF | PF | AF | ZF | SF | DF | OF          # 0xcd5
_FLAGS_FIXED = 0x2 | IF                                    # always on
_MASK64 = (1 << 64) - 1

# ---------------------------------------------------------------------------
# Data block layout (one ctypes array of qwords, fixed address)
# ---------------------------------------------------------------------------
_IN = 0             # 16 GPRs, then rflags at index 16
_OUT = 32           # 16 GPRs, rflags at 48, exit id at 49
_SAVED_RSP = 60
_SAVED_MXCSR = 61
_SAVED_FCW = 62
_DATA_QWORDS = 64
# FXSAVE images (512 bytes each, 16-byte aligned, separate buffer): the
# prologue loads the guest's x87/SSE state with FXRSTOR64, the epilogue
# captures it with FXSAVE64 (XMM0-15, MXCSR, x87 registers and words).
_FX_IN = 0
_FX_OUT = 1024
_FX_BYTES = 2048
# with ymm state (run(..., xsave=...)): XRSTOR64/XSAVE64 of x87, SSE and AVX
# (EDX:EAX = 7), standard form, 832 bytes, at the same offsets
XSAVE_BYTES = 832

_EXIT_FALL = 0x11
_EXIT_TAKEN = 0x22

_MAX_DISP = 1 << 24          # sanity bound for taken_disp
_STACK_SIZE = 64 * 1024


def _u64(v: int) -> bytes:
    return struct.pack("<Q", v & _MASK64)


def _mov_load(i: int, disp: int) -> bytes:
    """mov r64(i), [rax + disp8]"""
    assert 0 <= disp < 128
    return bytes((0x48 | (0x04 if i >= 8 else 0), 0x8B,
                  0x40 | ((i & 7) << 3), disp))


def _mov_store(i: int, disp: int) -> bytes:
    """mov [rax + disp8], r64(i)"""
    assert 0 <= disp < 128
    return bytes((0x48 | (0x04 if i >= 8 else 0), 0x89,
                  0x40 | ((i & 7) << 3), disp))


def _movabs_rax(addr: int) -> bytes:
    """movabs rax, imm64"""
    return b"\x48\xB8" + _u64(addr)


_PUSH_CALLEE = bytes.fromhex("53 55 4154 4155 4156 4157")   # rbx rbp r12-r15
_POP_CALLEE = bytes.fromhex("415f 415e 415d 415c 5d 5b")    # reverse order


def _jmp32(at: int, target: int) -> bytes:
    """jmp rel32 located at offset ``at`` going to offset ``target``."""
    return b"\xE9" + struct.pack("<i", target - (at + 5))


_XSTATE_EAX7 = b"\xB8\x07\x00\x00\x00\x31\xD2"           # mov eax, 7; xor edx, edx


def _prologue(data: int, fx: int, xsave: bool = False) -> bytes:
    q = lambda idx: data + 8 * idx  # noqa: E731
    c = bytearray()
    c += _PUSH_CALLEE
    c += _movabs_rax(q(_SAVED_RSP)) + b"\x48\x89\x20"        # mov [rax], rsp
    c += _movabs_rax(q(_SAVED_MXCSR)) + b"\x0F\xAE\x18"      # stmxcsr [rax]
    c += _movabs_rax(q(_SAVED_FCW)) + b"\xD9\x38"            # fnstcw [rax]
    if xsave:
        c += b"\x48\xB9" + _u64(fx + _FX_IN) + _XSTATE_EAX7     # movabs rcx, in; EDX:EAX = 7
        c += b"\x48\x0F\xAE\x29"                              # xrstor64 [rcx]
    else:
        c += _movabs_rax(fx + _FX_IN) + b"\x48\x0F\xAE\x08"  # fxrstor64 [rax]
    c += _movabs_rax(q(_IN + 16))                            # &in.rflags
    c += b"\xFF\x30"                                         # push qword [rax]
    c += b"\x9D"                                             # popfq
    c += _movabs_rax(q(_IN))
    for i in range(1, 16):                                   # incl. rsp, rdi
        c += _mov_load(i, 8 * i)
    c += b"\x48\x8B\x00"                                     # mov rax, [rax]
    return bytes(c)


def _epilogue(data: int, exit_id: int, fx: int, xsave: bool = False) -> bytes:
    q = lambda idx: data + 8 * idx  # noqa: E731
    c = bytearray()
    # Nothing here may touch flags until pushfq.
    c += b"\x48\xA3" + _u64(q(_OUT))                         # mov [abs], rax
    c += _movabs_rax(q(_OUT))
    for i in range(1, 16):
        c += _mov_store(i, 8 * i)
    c += _movabs_rax(q(_SAVED_RSP)) + b"\x48\x8B\x20"        # mov rsp, [rax]
    c += b"\x9C"                                             # pushfq
    c += b"\x59"                                             # pop rcx
    c += _movabs_rax(q(_OUT + 16))
    c += b"\x48\x89\x08"                                     # mov [rax], rcx
    c += b"\x48\xC7\x40\x08" + struct.pack("<i", exit_id)    # mov [rax+8], id
    if xsave:
        c += b"\x48\xB9" + _u64(fx + _FX_OUT) + _XSTATE_EAX7    # movabs rcx, out; EDX:EAX = 7
        c += b"\x48\x0F\xAE\x21"                              # xsave64 [rcx]
        c += b"\xC5\xF8\x77"                                   # vzeroupper (clean for C)
    else:
        c += _movabs_rax(fx + _FX_OUT) + b"\x48\x0F\xAE\x00"  # fxsave64 [rax]
    # Hand clean state back to C: flags = IF|1 (no DF/AC/TF), MXCSR, empty
    # x87 stack with the caller's control word.
    c += b"\x68\x02\x02\x00\x00"                             # push 0x202
    c += b"\x9D"                                             # popfq
    c += b"\xFC"                                             # cld
    c += _movabs_rax(q(_SAVED_MXCSR)) + b"\x0F\xAE\x10"      # ldmxcsr [rax]
    c += b"\xDB\xE3"                                         # fninit
    c += _movabs_rax(q(_SAVED_FCW)) + b"\xD9\x28"            # fldcw [rax]
    c += _POP_CALLEE
    c += b"\xC3"                                             # ret
    return bytes(c)


# ---------------------------------------------------------------------------
# Result type
# ---------------------------------------------------------------------------
class Result(namedtuple("_Result", "regs rflags exit")):
    """(regs, rflags, exit) plus ``code_addr`` and ``rip`` attributes."""

    code_addr: int
    rip: int


# ---------------------------------------------------------------------------
# Runner state
# ---------------------------------------------------------------------------
_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE
_PROT_RX = mmap.PROT_READ | mmap.PROT_EXEC
_PROT_RWX = _PROT_RW | mmap.PROT_EXEC
_ALLOW_RWX = True        # tests flip this to exercise the W^X fallback


def _host_ok() -> bool:
    return (sys.platform.startswith("linux")
            and platform.machine().lower() in ("x86_64", "amd64")
            and sys.maxsize > 2 ** 32)


class _CodeArea:
    """An executable mapping; RWX if allowed, else toggled RW <-> RX."""

    def __init__(self, size: int, libc):
        self.size = size
        self.libc = libc
        try:
            if not _ALLOW_RWX:
                raise PermissionError("RWX disabled")
            self.mm = mmap.mmap(-1, size, prot=_PROT_RWX)
            self.rwx = True
        except OSError:
            self.mm = mmap.mmap(-1, size, prot=_PROT_RW)
            self.rwx = False
        self._anchor = (ctypes.c_ubyte * size).from_buffer(self.mm)
        self.addr = ctypes.addressof(self._anchor)
        if not self.rwx:
            self._protect(_PROT_RX)

    def _protect(self, prot: int) -> None:
        if self.libc.mprotect(ctypes.c_void_p(self.addr),
                              ctypes.c_size_t(self.size), prot) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")

    def write(self, blob: bytes) -> None:
        if not self.rwx:
            self._protect(_PROT_RW)
        self.mm[:len(blob)] = blob
        if not self.rwx:
            self._protect(_PROT_RX)


class _Runner:
    def __init__(self):
        self.lock = threading.Lock()
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t,
                                       ctypes.c_int)
        self.libc.mprotect.restype = ctypes.c_int
        self.data = (ctypes.c_uint64 * _DATA_QWORDS)()
        self.data_addr = ctypes.addressof(self.data)
        self.fx_raw = (ctypes.c_ubyte * (_FX_BYTES + 64))()
        self.fx_addr = (ctypes.addressof(self.fx_raw) + 63) & ~63
        self.fx_off = self.fx_addr - ctypes.addressof(self.fx_raw)
        self.pro = _prologue(self.data_addr, self.fx_addr)
        self.epi_fall = _epilogue(self.data_addr, _EXIT_FALL, self.fx_addr)
        self.epi_taken = _epilogue(self.data_addr, _EXIT_TAKEN, self.fx_addr)
        assert len(self.epi_fall) == len(self.epi_taken)
        # the same with XRSTOR/XSAVE of the AVX state (YMM registers)
        self.xs_parts = (_prologue(self.data_addr, self.fx_addr, True),
                         _epilogue(self.data_addr, _EXIT_FALL, self.fx_addr, True),
                         _epilogue(self.data_addr, _EXIT_TAKEN, self.fx_addr, True))
        self.fx_parts = (self.pro, self.epi_fall, self.epi_taken)
        self.area = _CodeArea(mmap.PAGESIZE * 4, self.libc)
        self.dirty = 0
        self.stack_addr, self.stack_buf = scratch(_STACK_SIZE)
        self.host_stacks = _host_stack_ranges()
        # Preallocated sigset_t buffers (glibc: 1024 bits) for fast
        # pthread_sigmask calls; signal.pthread_sigmask builds enum sets
        # and costs ~50 us per run.
        self.libc.pthread_sigmask.argtypes = (ctypes.c_int, ctypes.c_void_p,
                                              ctypes.c_void_p)
        self.libc.pthread_sigmask.restype = ctypes.c_int
        # Synchronous fault signals stay deliverable: if a guest does fault,
        # faulthandler (on its sigaltstack) can still report it.
        mask = (1 << 1024) - 1
        for sig in (signal.SIGILL, signal.SIGTRAP, signal.SIGBUS,
                    signal.SIGFPE, signal.SIGSEGV):
            mask &= ~(1 << (int(sig) - 1))
        self.sig_all = ctypes.create_string_buffer(
            mask.to_bytes(128, "little"), 128)
        self.sig_old = ctypes.create_string_buffer(128)
        self.proto = ctypes.CFUNCTYPE(None)

    def layout(self, code: bytes, taken_disp, xsave: bool = False):
        """Build the code area image.

        Returns (blob, code_offset).  The area holds, at fixed offsets, the
        prologue (ending in ``jmp rel32`` to the guest code) and the two full
        epilogues; the guest code follows at ``_VAR`` (or later when a taken
        exit has to precede it).  Each exit point right at the branch
        target / code end is only a small flag- and register-neutral jump
        stub into its epilogue:

        * ``jmp rel32`` (5 bytes) when there is room, else
        * ``jmp rel8`` (2 bytes) to an adjacent ``jmp rel32`` relay.
        """
        n = len(code)
        pro, epi_f, epi_t = self.xs_parts if xsave else self.fx_parts
        fall_off = len(pro) + 5
        taken_off = fall_off + len(epi_f)
        var = -(-(taken_off + len(epi_t) + 16) // 64) * 64

        # Items positioned relative to the end of the guest code (E = 0):
        # (pos, kind, arg): kind 'raw' -> bytes, 'j32' -> absolute area
        # offset target, 'j8' -> relative position target.
        items = [(-n, "raw", code)]
        d = taken_disp
        if d is None:
            items.append((0, "j32", fall_off))
        elif d >= 5:
            items += [(0, "j32", fall_off), (d, "j32", taken_off)]
        elif d >= 2:
            items += [(0, "j8", d + 5), (d, "j32", taken_off),
                      (d + 5, "j32", fall_off)]
        elif d <= -(n + 5):
            items += [(0, "j32", fall_off), (d, "j32", taken_off)]
        elif d <= -(n + 2):
            items += [(0, "j32", fall_off), (d, "j8", d - 5),
                      (d - 5, "j32", taken_off)]
        else:
            raise ValueError(
                f"taken_disp={d}: the taken exit would land inside the code "
                f"or on the fall-through exit (need taken_disp >= 2 or "
                f"taken_disp <= -(len(code) + 2) = {-(n + 2)})")
        size = {"raw": None, "j32": 5, "j8": 2}
        lo = min(p for p, _, _ in items)
        hi = max(p + (len(a) if k == "raw" else size[k]) for p, k, a in items)

        blob = bytearray(b"\xCC" * (var + hi - lo))         # int3 filler
        blob[0:len(pro)] = pro
        code_off = var + (-n - lo)
        blob[len(pro):fall_off] = _jmp32(len(pro), code_off)
        blob[fall_off:taken_off] = epi_f
        blob[taken_off:taken_off + len(epi_t)] = epi_t
        for p, k, a in items:
            at = var + p - lo
            if k == "raw":
                blob[at:at + len(a)] = a
            elif k == "j32":
                blob[at:at + 5] = _jmp32(at, a)
            else:
                rel = (var + a - lo) - (at + 2)
                blob[at:at + 2] = b"\xEB" + struct.pack("<b", rel)
        return blob, code_off

    def run(self, code: bytes, regs: dict, rflags: int, taken_disp,
            xmm=None, mxcsr=None, fxstate=None, xsave=None):
        code = bytes(code)
        fx_in = fx_image(xmm, mxcsr, fxstate) if xsave is None else bytes(xsave)
        if xsave is not None and len(fx_in) != XSAVE_BYTES:
            raise ValueError("an XSAVE image here is %d bytes" % XSAVE_BYTES)
        if taken_disp is not None:
            taken_disp = int(taken_disp)
            if not -_MAX_DISP <= taken_disp <= _MAX_DISP:
                raise ValueError("taken_disp out of supported range")
        extra = rflags & ~(FLAGS_SETTABLE | _FLAGS_FIXED)
        if extra:
            raise ValueError(f"rflags bits {extra:#x} cannot be set "
                             f"(settable: {FLAGS_SETTABLE:#x})")
        vals = [0] * 16
        vals[4] = self.stack_addr + _STACK_SIZE // 2
        for name, v in regs.items():
            try:
                vals[_REG_INDEX[name.lower()]] = int(v) & _MASK64
            except KeyError:
                raise ValueError(f"unknown register {name!r}") from None
        rsp = vals[4]
        for lo, hi in self.host_stacks:
            if lo - 0x10000 <= rsp < hi + 0x10000:
                raise ValueError("guest rsp points into the host stack")

        blob, code_off = self.layout(code, taken_disp, xsave is not None)
        with self.lock:
            if len(blob) > self.area.size:
                size = -(-len(blob) // mmap.PAGESIZE) * mmap.PAGESIZE
                self.area = _CodeArea(size, self.libc)
                self.dirty = 0
            area = self.area
            # Overwrite leftovers of a previous, longer layout with int3.
            used = len(blob)
            if self.dirty > used:
                blob += b"\xCC" * (self.dirty - used)
            self.dirty = used
            area.write(bytes(blob))
            d = self.data
            for i in range(16):
                d[_IN + i] = vals[i]
            d[_IN + 16] = (rflags & FLAGS_SETTABLE) | _FLAGS_FIXED
            for i in range(_OUT, _OUT + 18):
                d[i] = 0
            o = self.fx_off
            self.fx_raw[o + _FX_IN:o + _FX_IN + len(fx_in)] = fx_in
            fn = self.proto(area.addr)
            # Block async signals: while the guest runs, RSP is not a
            # valid host stack, so a signal frame must never be pushed.
            sigmask = self.libc.pthread_sigmask
            if sigmask(signal.SIG_BLOCK, self.sig_all, self.sig_old) != 0:
                raise OSError("pthread_sigmask failed")
            try:
                fn()
            finally:
                sigmask(signal.SIG_SETMASK, self.sig_old, None)
            out = {REG_NAMES[i]: d[_OUT + i] for i in range(16)}
            fl = d[_OUT + 16]
            ex = d[_OUT + 17]
            code_addr = area.addr + code_off
            fx_out = bytes(self.fx_raw[o + _FX_OUT:o + _FX_OUT + (512 if xsave is None else XSAVE_BYTES)])
        if ex == _EXIT_FALL:
            exit_ = "fall"
            rip = code_addr + len(code)
        elif ex == _EXIT_TAKEN:
            exit_ = "taken"
            rip = code_addr + len(code) + taken_disp
        else:  # pragma: no cover - would mean the trampoline is broken
            raise RuntimeError(f"trampoline did not record an exit ({ex:#x})")
        res = Result(out, fl, exit_)
        res.code_addr = code_addr
        res.rip = rip & _MASK64
        res.fxsave = fx_out
        res.xmm = [fx_out[160 + 16 * i:176 + 16 * i] for i in range(16)]
        res.mxcsr = struct.unpack_from("<I", fx_out, 24)[0]
        if xsave is not None:
            res.xsave = fx_out
            res.ymm = [fx_out[160 + 16 * i:176 + 16 * i] + fx_out[576 + 16 * i:592 + 16 * i] for i in range(16)]
        return res


def fx_image(xmm=None, mxcsr=None, fxstate=None) -> bytes:
    """The FXRSTOR64 image the guest starts from: ``fxstate`` (512 raw bytes)
    if given, else an empty x87 stack (FCW 0x37F), ``mxcsr`` (default
    0x1F80) and ``xmm`` ({index: 16 bytes} or a list; missing ones zero)."""
    if fxstate is not None:
        img = bytearray(bytes(fxstate))
        if len(img) != 512:
            raise ValueError("fxstate must be 512 bytes")
    else:
        img = bytearray(512)
        struct.pack_into("<H", img, 0, 0x037F)
    if mxcsr is not None or fxstate is None:
        struct.pack_into("<I", img, 24, 0x1F80 if mxcsr is None else mxcsr)
    if xmm is not None:
        items = xmm.items() if isinstance(xmm, dict) else enumerate(xmm)
        for i, v in items:
            v = bytes(v)
            if len(v) != 16:
                raise ValueError("XMM values are 16 bytes")
            img[160 + 16 * i:176 + 16 * i] = v
    return bytes(img)


def _host_stack_ranges():
    ranges = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "[stack" in line:
                    a, b = line.split()[0].split("-")
                    ranges.append((int(a, 16), int(b, 16)))
    except OSError:
        pass
    return ranges


_runner = None
_runner_err = None
_init_lock = threading.Lock()


def _get_runner() -> _Runner:
    global _runner, _runner_err
    if _runner is None:
        with _init_lock:
            if _runner is None and _runner_err is None:
                if not _host_ok():
                    _runner_err = "host is not Linux/x86-64"
                else:
                    try:
                        _runner = _Runner()
                    except Exception as e:  # pragma: no cover
                        _runner_err = f"{type(e).__name__}: {e}"
    if _runner is None:
        raise RuntimeError(f"native runner unavailable: {_runner_err}")
    return _runner


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------
def available() -> bool:
    """True if native execution works on this host."""
    try:
        _get_runner()
        return True
    except RuntimeError:
        return False




def scratch(size: int):
    """Allocate zeroed, page-aligned RW memory for guest use.

    Returns ``(address, buffer)``; ``buffer`` is a ``ctypes.c_ubyte`` array
    of ``size`` bytes (``bytes(buffer)`` reads it, slice-assign writes it).
    The memory stays mapped for as long as ``buffer`` is referenced.
    """
    if size <= 0:
        raise ValueError("size must be positive")
    mapped = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
    mm = mmap.mmap(-1, mapped, prot=_PROT_RW)
    buf = (ctypes.c_ubyte * size).from_buffer(mm)   # keeps mm alive
    return ctypes.addressof(buf), buf


def default_stack():
    """(address, buffer) of the 64 KiB stack used when rsp is not given;
    the default rsp is ``address + 32768``."""
    r = _get_runner()
    return r.stack_addr, r.stack_buf


def xsave_image(ymm=None, mxcsr=None, fxstate=None) -> bytes:
    """The 832-byte XRSTOR64 image (x87, SSE, AVX; XSTATE_BV = 7) the guest
    starts from: fx_image's legacy region (x87 from ``fxstate``) with YMM
    ``ymm`` ({index: 32 bytes} or a list; missing ones zero)."""
    img = bytearray(fx_image(None, mxcsr, fxstate)) + bytearray(XSAVE_BYTES - 512)
    struct.pack_into("<Q", img, 512, 7)
    if ymm is not None:
        items = ymm.items() if isinstance(ymm, dict) else enumerate(ymm)
        for i, v in items:
            v = bytes(v)
            if len(v) != 32:
                raise ValueError("YMM values are 32 bytes")
            img[160 + 16 * i:176 + 16 * i] = v[:16]
            img[576 + 16 * i:592 + 16 * i] = v[16:]
    return bytes(img)


def has_avx() -> bool:
    """The host runs AVX (CPUID AVX and OSXSAVE, and the OS enabled YMM state)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = line.split()
                    return all(k in fl for k in ("avx", "avx2", "fma", "f16c", "xsave"))
    except OSError:
        pass
    return False


def run(code: bytes, regs: dict | None = None, rflags: int = 0x202, *,
        taken_disp: int | None = None, xmm=None, mxcsr: int | None = None,
        fxstate: bytes | None = None, xsave: bytes | None = None) -> Result:
    """Execute ``code`` natively.

    ``regs``: initial GPR values by name (missing -> 0; rsp -> default
    stack).  ``rflags``: only CF PF AF ZF SF DF OF (0xcd5) may be chosen;
    bit 1 and IF (0x202) are accepted and always set; any other bit (TF,
    AC, ...) raises ValueError.

    ``taken_disp``: if given, a second exit is placed at
    ``end_of_code + taken_disp`` (where a relative branch at the end of
    ``code`` with that displacement lands).  The exits are 2- or 5-byte
    jump stubs, so any ``taken_disp >= 2`` or ``<= -(len(code) + 2)`` works
    (the whole rel8 range and large rel32 values up to +-16 MiB); anything
    else (0, 1, landing inside ``code``) raises ValueError.  A branch back
    into ``code`` itself (a loop) needs no ``taken_disp`` at all.

    Returns ``Result(regs_out, rflags_out, exit)``: all 16 GPRs, the raw
    pushfq value (IF and bit 1 set), and ``'fall'`` or ``'taken'``.
    ``result.rip`` is the guest RIP at exit and ``result.code_addr`` the
    address where ``code`` was placed (for RIP-relative operands; it is
    stable between runs unless a larger code area has to be mapped).

    ``xmm`` ({index: 16 bytes} or a list), ``mxcsr`` and ``fxstate`` (a raw
    512-byte FXRSTOR64 image) set the guest's SSE/x87 state (see
    ``fx_image``); the result also carries ``xmm`` (16 x 16 bytes),
    ``mxcsr`` and ``fxsave`` (the FXSAVE64 image at exit).

    ``xsave`` (an 832-byte image from ``xsave_image``) loads x87, SSE and
    AVX state with XRSTOR64 instead; the result then also has ``xsave``
    (the XSAVE64 image at exit) and ``ymm`` (16 x 32 bytes).

    The caller guarantees the code does not fault, does not loop forever,
    and ends at one of the two exits.
    """
    return _get_runner().run(code, regs or {}, rflags, taken_disp, xmm, mxcsr, fxstate, xsave)
