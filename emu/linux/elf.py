"""Loading ELF executables into a guest address space (System V gABI, the
x86-64 psABI; static i386 programs too, which run in compatibility mode),
with pyelftools doing the parsing."""
from __future__ import annotations

from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

PF_X, PF_W, PF_R = 1, 2, 4
PIE_BASE = 0x555555554000        # where Linux puts a PIE with ASLR off
INTERP_BASE = 0x7FFFF7FC1000
PIE_BASE32 = 0x56555000          # an i386 PIE with ASLR off


EM_386, EM_X86_64 = 3, 62


class ExecFormatError(Exception):
    """Not an ELF64 x86-64 executable (the shell's exit status 126)."""


@dataclass
class Image:
    entry: int
    base: int            # load bias
    phdr: int            # address of the program headers in guest memory
    phent: int
    phnum: int
    end: int             # highest address of the loaded segments
    interp: str | None   # PT_INTERP path
    bits: int = 64       # 32: an i386 program (runs in compatibility mode)


def check_header(data: bytes, path: str) -> None:
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise ExecFormatError("%s: not an ELF executable" % path)
    if data[4] not in (1, 2):
        raise ExecFormatError("%s: not a 32- or 64-bit ELF file" % path)
    if data[5] != 1:
        raise ExecFormatError("%s: not a little-endian ELF file" % path)
    machine = int.from_bytes(data[18:20], "little")
    if (data[4], machine) not in ((2, EM_X86_64), (1, EM_386)):
        raise ExecFormatError("%s: wrong architecture (ELF machine %d, not x86-64 or i386)" % (path, machine))
    etype = int.from_bytes(data[16:18], "little")
    if etype not in (2, 3):
        raise ExecFormatError("%s: not an executable or shared object (ELF type %d)" % (path, etype))


def load(mm, data: bytes, path: str, base_hint: int | None = None) -> Image:
    """Map the PT_LOAD segments of an ELF image into mm (an AddressSpace)."""
    check_header(data, path)
    import io
    try:
        elf = ELFFile(io.BytesIO(data))
        segments = list(elf.iter_segments())
    except (ELFError, ValueError, KeyError) as e:
        raise ExecFormatError("%s: malformed ELF file (%s)" % (path, e)) from None
    loads = [s for s in segments if s["p_type"] == "PT_LOAD"]
    if not loads:
        raise ExecFormatError("%s: no loadable segments" % path)
    interp = None
    for s in segments:
        if s["p_type"] == "PT_INTERP":
            interp = s.data().rstrip(b"\0").decode("utf-8", "replace")
    bits = elf.elfclass
    if bits == 32 and interp is not None:
        raise ExecFormatError("%s: a dynamically linked i386 program (only static i386 programs run)" % path)
    bias = 0
    if elf["e_type"] == "ET_DYN":
        bias = base_hint if base_hint is not None else (PIE_BASE32 if bits == 32 else PIE_BASE)
        bias -= min(s["p_vaddr"] for s in loads) & ~0xFFF
    end = 0
    phdr = None
    for s in loads:
        va = s["p_vaddr"] + bias
        memsz, filesz, off = s["p_memsz"], s["p_filesz"], s["p_offset"]
        if filesz > memsz or off + filesz > len(data):
            raise ExecFormatError("%s: malformed segment" % path)
        flags = s["p_flags"]
        prot = (1 if flags & PF_R else 0) | (2 if flags & PF_W else 0) | (4 if flags & PF_X else 0)
        start = va & ~0xFFF
        stop = (va + memsz + 0xFFF) & ~0xFFF
        # (a view of the file's bytes, not a copy: pages are copied when first touched)
        mm.map_fixed_image(start, stop - start, prot, memoryview(data)[off - (va - start):off + filesz], name=path)
        end = max(end, va + memsz)
        if off <= elf["e_phoff"] < off + filesz:
            phdr = va + elf["e_phoff"] - off
    for s in segments:
        if s["p_type"] == "PT_PHDR":
            phdr = s["p_vaddr"] + bias
    return Image(entry=elf["e_entry"] + bias, base=bias if elf["e_type"] == "ET_DYN" else 0,
                 phdr=phdr or 0, phent=elf["e_phentsize"], phnum=elf["e_phnum"], end=end, interp=interp,
                 bits=bits)
