"""`emu run --trace`: one line per block executed (or, with --trace-insn,
per instruction), disassembled (emu/disasm.py), optionally only inside an
address range. Blocks come from the core's block hook (one exit per block
entry); instructions from a code hook over the range, so code outside it
runs without exits.

    0000000000401745  +18  push rbp; mov rbp, rsp; sub rsp, 0x20; mov dword ptr [rbp-0x14], 0x0
    0000000000401745  55                      push rbp
"""
from __future__ import annotations

from emu.disasm import Disassembler, read_code
from emu.hooks import Hooks


def parse_range(text: str) -> tuple[int, int]:
    """"LO-HI" or "LO:HI" (hex or decimal, HI exclusive) -> (lo, hi)."""
    for sep in ("-", ":"):
        if sep in text:
            a, b = text.split(sep, 1)
            lo, hi = int(a, 0), int(b, 0)
            if lo >= hi:
                raise ValueError("the range %s is empty" % text)
            return lo, hi
    raise ValueError("%r is not a range LO-HI" % text)


class Tracer:
    """Writes trace lines to `out` (a text file) for a Linux process or any
    object with .vcpu, .machine and .hooks."""

    def __init__(self, proc, out, per_insn: bool = False, lo: int = 0, hi: int = 1 << 64):
        self.proc = proc
        self.out = out
        self.per_insn = per_insn
        self.lo, self.hi = lo, hi
        self.dis = Disassembler(64)
        self.lines = 0

    def attach(self) -> None:
        if self.proc.hooks is None:
            self.proc.hooks = Hooks(self.proc.vcpu)
        h = self.proc.hooks
        if self.per_insn:
            if self.lo == 0 and self.hi == 1 << 64:
                h.code(1, 0, self.on_insn)
            else:
                h.code(self.lo, self.hi - 1, self.on_insn)
        else:
            h.block(self.on_block)

    def on_insn(self, vcpu, address, size):
        code = read_code(self.proc.machine, address, size or 15)
        n, text = self.dis.one(code, address)
        self.out.write("%016x  %-22s  %s\n" % (address, code[:n or size].hex(), text))
        self.lines += 1

    def on_block(self, vcpu, address, size):
        if not self.lo <= address < self.hi:
            return
        code = read_code(self.proc.machine, address, size)
        insns = self.dis.block(code, address, size)
        self.out.write("%016x  +%-3d %s\n" % (address, size, "; ".join(t for _, _, t in insns)))
        self.lines += 1
