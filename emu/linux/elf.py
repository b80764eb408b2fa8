"""Loading ELF executables into a guest address space (System V gABI, the
x86-64 psABI; static i386 programs too, which run in compatibility mode).
Loading needs only the ELF header and the program headers: they are read
here with struct (a full ELF library such as pyelftools costs tens of
milliseconds to import, on every `emu run` and every execve)."""
from __future__ import annotations

import struct

PF_X, PF_W, PF_R = 1, 2, 4
PIE_BASE = 0x555555554000        # where Linux puts a PIE with ASLR off
INTERP_BASE = 0x7FFFF7FC1000
PIE_BASE32 = 0x56555000          # an i386 PIE with ASLR off


EM_386, EM_X86_64 = 3, 62


class ExecFormatError(Exception):
    """Not an ELF64 x86-64 executable (the shell's exit status 126)."""


class Image:
    __slots__ = ("entry", "base", "phdr", "phent", "phnum", "end", "interp", "bits")

    def __init__(self, entry: int, base: int, phdr: int, phent: int, phnum: int, end: int,
                 interp: str | None, bits: int = 64):
        self.entry = entry
        self.base = base          # load bias
        self.phdr = phdr          # address of the program headers in guest memory
        self.phent = phent
        self.phnum = phnum
        self.end = end            # highest address of the loaded segments
        self.interp = interp      # PT_INTERP path
        self.bits = bits          # 32: an i386 program (runs in compatibility mode)

    def __repr__(self) -> str:
        return "Image(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.__slots__)


class ELFError(Exception):
    """A header or table that does not fit the file."""


# the ELF header fields loading uses (gABI "ELF Header", after e_ident) and
# the program headers, for ELFCLASS64 and ELFCLASS32 (whose p_flags moves)
_EHDR64 = struct.Struct("<HHIQQQIHHHHHH")
_EHDR32 = struct.Struct("<HHIIIIIHHHHHH")
_PHDR64 = struct.Struct("<IIQQQQQQ")      # type flags offset vaddr paddr filesz memsz align
_PHDR32 = struct.Struct("<IIIIIIII")      # type offset vaddr paddr filesz memsz flags align
_PT_NAMES = {1: "PT_LOAD", 2: "PT_DYNAMIC", 3: "PT_INTERP", 4: "PT_NOTE", 6: "PT_PHDR", 7: "PT_TLS",
             0x6474E550: "PT_GNU_EH_FRAME", 0x6474E551: "PT_GNU_STACK", 0x6474E552: "PT_GNU_RELRO"}
_ET_NAMES = {1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}


def _parse(data: bytes):
    """(header, program headers, bits) with fields named like the gABI's
    (p_type and e_type as their PT_/ET_ names where known)."""
    bits = 64 if data[4] == 2 else 32
    ehdr, phdr_s = (_EHDR64, _PHDR64) if bits == 64 else (_EHDR32, _PHDR32)
    (e_type, e_machine, _version, e_entry, e_phoff, _shoff, _flags, _ehsize, e_phentsize, e_phnum,
     _shentsize, _shnum, _shstrndx) = ehdr.unpack_from(data, 16)
    if e_phnum and e_phentsize < phdr_s.size:
        raise ELFError("program header entries of %d bytes" % e_phentsize)
    if e_phoff + e_phnum * e_phentsize > len(data):
        raise ELFError("program headers past the end of the file")
    hdr = {"e_type": _ET_NAMES.get(e_type, e_type), "e_machine": e_machine, "e_entry": e_entry,
           "e_phoff": e_phoff, "e_phentsize": e_phentsize, "e_phnum": e_phnum}
    segs = []
    for i in range(e_phnum):
        f = phdr_s.unpack_from(data, e_phoff + i * e_phentsize)
        if bits == 64:
            p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align = f
        else:
            p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align = f
        segs.append({"p_type": _PT_NAMES.get(p_type, p_type), "p_flags": p_flags, "p_offset": p_offset,
                     "p_vaddr": p_vaddr, "p_paddr": p_paddr, "p_filesz": p_filesz, "p_memsz": p_memsz,
                     "p_align": p_align})
    return hdr, segs, bits


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


TASK_SIZE = 0x7FFFFFFFF000        # the top of the user address space (emu/linux/mm.py)
PAGE = 4096
PATH_MAX = 4096


def _check_layout(data: bytes, path: str, size: int | None = None) -> None:
    """The ELF header's table fields against the file, before any parser
    follows them (fs/binfmt_elf.c load_elf_phdrs: a program-header table of
    1..65536 bytes of 56-byte (ELF32: 32-byte) entries, inside the file)."""
    if data[4] == 2:
        phoff, = struct.unpack_from("<Q", data, 32)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        want = 56
    else:                                   # ELF32 (an i386 program)
        phoff, = struct.unpack_from("<I", data, 28)
        phentsize, phnum = struct.unpack_from("<HH", data, 42)
        want = 32
    if phentsize != want or not 0 < phnum * want <= 65536:
        raise ExecFormatError("%s: malformed ELF file (program header table)" % path)
    size = len(data) if size is None else size
    if phoff > size or phoff + phnum * want > size:
        raise ExecFormatError("%s: malformed ELF file (program headers past the end of the file)" % path)


def load(mm, data: bytes, path: str, base_hint: int | None = None) -> Image:
    """Map the PT_LOAD segments of an ELF image into mm (an AddressSpace).
    Every field is checked against the file's size and the address space
    before it is used; what Linux refuses is refused (ExecFormatError).
    data is the file's bytes, or a large file read as needed (an object with
    len(), slicing, prefix(): the bytes holding the ELF and program headers,
    and segment(offset, length): the bytes a segment maps, read by the core
    when first touched, emu/linux/process.ProgramFile)."""
    head = data.prefix() if hasattr(data, "prefix") else data
    check_header(head, path)
    _check_layout(head, path, len(data))
    try:
        elf, segments, bits = _parse(head)
    except (ELFError, struct.error) as e:
        raise ExecFormatError("%s: malformed ELF file (%s)" % (path, e)) from None
    loads = [s for s in segments if s["p_type"] == "PT_LOAD"]
    if not loads:
        raise ExecFormatError("%s: no loadable segments" % path)
    interp = None
    for s in segments:
        if s["p_type"] == "PT_INTERP":
            size, off = s["p_filesz"], s["p_offset"]
            if not 2 <= size <= PATH_MAX or off + size > len(data):
                raise ExecFormatError("%s: malformed ELF file (PT_INTERP)" % path)
            interp = data[off:off + size].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if not interp:
                raise ExecFormatError("%s: malformed ELF file (empty PT_INTERP)" % path)
    for s in loads:
        va, memsz, filesz, off = s["p_vaddr"], s["p_memsz"], s["p_filesz"], s["p_offset"]
        if filesz > memsz or off + filesz > len(data):
            raise ExecFormatError("%s: malformed segment" % path)
        if (va - off) % PAGE:
            # Linux maps the file page that holds p_offset at the page of
            # p_vaddr; when they disagree mod 4096 that mmap fails (EINVAL)
            raise ExecFormatError("%s: Invalid argument (segment offset and address disagree mod 4096)" % path)
    if bits == 32 and interp is not None:
        raise ExecFormatError("%s: a dynamically linked i386 program (only static i386 programs run)" % path)
    bias = 0
    if elf["e_type"] == "ET_DYN":
        bias = base_hint if base_hint is not None else (PIE_BASE32 if bits == 32 else PIE_BASE)
        bias -= min(s["p_vaddr"] for s in loads) & ~0xFFF
    for s in loads:
        va = s["p_vaddr"] + bias
        if va < 0 or va + s["p_memsz"] > TASK_SIZE:
            raise ExecFormatError("%s: Cannot allocate memory (a segment outside the address space)" % path)
    end = 0
    phdr = None
    phoff = elf["e_phoff"]
    for s in loads:
        va = s["p_vaddr"] + bias
        memsz, filesz, off = s["p_memsz"], s["p_filesz"], s["p_offset"]
        flags = s["p_flags"]
        prot = (1 if flags & PF_R else 0) | (2 if flags & PF_W else 0) | (4 if flags & PF_X else 0)
        start = va & ~0xFFF
        stop = (va + memsz + 0xFFF) & ~0xFFF
        try:
            # a view of the file's bytes, not a copy: pages are copied when first touched
            lo = off - (va - start)
            content = data.segment(lo, off + filesz - lo) if hasattr(data, "segment") else memoryview(data)[lo:off + filesz]
            mm.map_fixed_image(start, stop - start, prot, content, name=path)
        except MemoryError:
            raise ExecFormatError("%s: Cannot allocate memory" % path) from None
        end = max(end, va + memsz)
        if off <= phoff < off + filesz:
            phdr = va + phoff - off
    for s in segments:
        if s["p_type"] == "PT_PHDR":
            phdr = s["p_vaddr"] + bias
    return Image(entry=(elf["e_entry"] + bias) & 0xFFFFFFFFFFFFFFFF, base=bias if elf["e_type"] == "ET_DYN" else 0,
                 phdr=(phdr or 0) & 0xFFFFFFFFFFFFFFFF, phent=elf["e_phentsize"], phnum=elf["e_phnum"], end=end,
                 interp=interp, bits=bits)
