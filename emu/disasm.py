"""Disassembly for people reading what the guest did: `emu run --trace`,
fault reports, and hook callbacks (`describe(machine, address)`). The
decoder is iced-x86 (the `disasm` extra: pip install 'emu[disasm]'),
imported on first use only: emu's own decoder (core/decode.pxi) makes
micro-ops, not text, and runs without it.
"""
from __future__ import annotations

_iced = None


class DisassemblerMissing(RuntimeError):
    """iced-x86 is not installed."""


def _decoder_module():
    global _iced
    if _iced is None:
        try:
            import iced_x86
        except ImportError:
            raise DisassemblerMissing("disassembly needs iced-x86: pip install 'emu[disasm]' "
                                      "(or pip install iced-x86)") from None
        _iced = iced_x86
    return _iced


def available() -> bool:
    try:
        _decoder_module()
    except DisassemblerMissing:
        return False
    return True


class Disassembler:
    """Instructions as Intel-syntax text, cached by address (a trace sees the
    same code again and again; a write to code makes the caller clear())."""

    def __init__(self, bitness: int = 64):
        iced = _decoder_module()
        self._iced = iced
        self.bitness = bitness
        self._fmt = iced.Formatter(iced.FormatterSyntax.INTEL)
        self._fmt.hex_prefix = "0x"
        self._fmt.hex_suffix = ""
        self._fmt.uppercase_hex = False
        self._fmt.space_after_operand_separator = True
        self._fmt.branch_leading_zeros = False
        self._fmt.show_branch_size = False
        self._cache: dict[int, tuple[int, str]] = {}

    def clear(self) -> None:
        self._cache.clear()

    def one(self, code: bytes, address: int) -> tuple[int, str]:
        """(length, text) of the instruction at the start of code; (0,
        "(bad)") when the bytes are no instruction."""
        hit = self._cache.get(address)
        if hit is not None:
            return hit
        d = self._iced.Decoder(self.bitness, code, ip=address)
        insn = d.decode()
        if insn.is_invalid or insn.len == 0:
            out = (0, "(bad)")
        else:
            out = (insn.len, self._fmt.format(insn))
            self._cache[address] = out
        return out

    def block(self, code: bytes, address: int, size: int) -> list[tuple[int, int, str]]:
        """[(address, length, text)] of the instructions in [address, address+size)."""
        out = []
        off = 0
        while off < size and off < len(code):
            n, text = self.one(code[off:off + 15], address + off)
            if n == 0:
                out.append((address + off, 1, text))
                break
            out.append((address + off, n, text))
            off += n
        return out


def read_code(machine, address: int, n: int = 15) -> bytes:
    """Up to n bytes at guest virtual address (fewer at the end of what is
    mapped; b"" when nothing is)."""
    out = b""
    while n > 0:
        k = min(n, 4096 - (address & 0xFFF))
        try:
            out += machine.read(address, k)
        except Exception:       # noqa: BLE001 - unmapped: the bytes end here
            break
        address += k
        n -= k
    return out


def describe(machine, address: int, bitness: int = 64) -> str:
    """"0x401000: 48 89 e5  mov rbp, rsp" for the instruction at address, for
    fault and hook reports; raw bytes when iced-x86 is missing."""
    code = read_code(machine, address)
    if not code:
        return "%#x: (not mapped)" % address
    try:
        n, text = Disassembler(bitness).one(code, address)
    except DisassemblerMissing:
        return "%#x: %s" % (address, code[:8].hex(" "))
    if n == 0:
        return "%#x: %s  (bad)" % (address, code[:8].hex(" "))
    return "%#x: %s  %s" % (address, code[:n].hex(" "), text)
