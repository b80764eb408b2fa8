"""The vDSO: a small ELF shared object Linux maps into every 64-bit process
and announces in the auxiliary vector (AT_SYSINFO_EHDR); glibc and musl look
up __vdso_clock_gettime, __vdso_gettimeofday, __vdso_time, __vdso_getcpu and
__vdso_clock_getres in it by name and version (LINUX_2.6) and call them
instead of making the system call.

The image is generated here, byte by byte, from the ELF specification
(System V gABI, "Object Files" and "Dynamic Linking"; the symbol versioning
sections as the LSB describes them): an ELF header, a PT_LOAD and a
PT_DYNAMIC program header, a SysV hash table, the dynamic symbol and string
tables, .gnu.version (versym) and .gnu.version_d (verdef: the base version
linux-vdso.so.1 and LINUX_2.6), the dynamic section and the code, linked at
address 0 as Linux links its own (the loader adds the load address).

Each function makes the system call of the same name (mov eax, NR; syscall;
ret): the guest's clocks stay exactly those of the system calls, in host
and virtual time, under --record/--replay and --strace. (Linux's vDSO reads
the time from the vvar page without entering the kernel; here a call costs
the same exit as the system call: correctness first.)"""
from __future__ import annotations

import struct

from emu.linux.mm import PAGE, PROT_EXEC, PROT_READ

SONAME = "linux-vdso.so.1"
VERSION = "LINUX_2.6"
# (symbol, system call number): the names Linux's arch/x86/entry/vdso/vdso.lds.S
# exports, each also without the __vdso_ prefix (as weak aliases)
FUNCTIONS = (("clock_gettime", 228), ("gettimeofday", 96), ("time", 201), ("getcpu", 309),
             ("clock_getres", 229))

# ELF constants (gABI)
ET_DYN, EM_X86_64, EV_CURRENT = 3, 62, 1
PT_LOAD, PT_DYNAMIC = 1, 2
PF_X, PF_W, PF_R = 1, 2, 4
SHT_PROGBITS, SHT_STRTAB, SHT_HASH, SHT_DYNAMIC, SHT_DYNSYM = 1, 3, 5, 6, 11
SHT_GNU_VERDEF, SHT_GNU_VERSYM = 0x6FFFFFFD, 0x6FFFFFFF
SHF_ALLOC, SHF_EXECINSTR = 2, 4
STB_GLOBAL, STB_WEAK, STT_OBJECT, STT_FUNC = 1, 2, 1, 2
SHN_ABS = 0xFFF1
DT_NULL, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT, DT_SONAME = 0, 4, 5, 6, 10, 11, 14
DT_VERSYM, DT_VERDEF, DT_VERDEFNUM = 0x6FFFFFF0, 0x6FFFFFFC, 0x6FFFFFFD
VER_FLG_BASE = 1

AT_SYSINFO_EHDR = 33


def elf_hash(name: bytes) -> int:
    """The SysV ELF hash (gABI, "Hash Table")."""
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


def _align(buf: bytearray, n: int) -> int:
    buf.extend(b"\0" * (-len(buf) % n))
    return len(buf)


class _Strtab:
    def __init__(self):
        self.data = bytearray(b"\0")
        self.offs = {"": 0}

    def add(self, s: str) -> int:
        if s not in self.offs:
            self.offs[s] = len(self.data)
            self.data += s.encode() + b"\0"
        return self.offs[s]


def build() -> bytes:
    """The vDSO image (linked at 0)."""
    dynstr = _Strtab()
    shstr = _Strtab()
    # the code: endbr64 (harmless without CET); mov eax, NR; syscall; ret
    text = bytearray()
    entries = []
    for name, nr in FUNCTIONS:
        _align(text, 16)
        entries.append((name, len(text)))
        text += b"\xf3\x0f\x1e\xfa" + b"\xb8" + struct.pack("<I", nr) + b"\x0f\x05\xc3"
    # symbols: 0 null, 1 the version's own symbol (ABS, as ld makes it), then each function twice
    syms = [("", 0, 0, 0, 0), (VERSION, 0, (STB_GLOBAL << 4) | STT_OBJECT, SHN_ABS, 0)]
    for name, off in entries:
        syms.append(("__vdso_" + name, off, (STB_GLOBAL << 4) | STT_FUNC, "text", 11))
        syms.append((name, off, (STB_WEAK << 4) | STT_FUNC, "text", 11))
    names = [dynstr.add(s[0]) for s in syms]
    soname_off = dynstr.add(SONAME)
    # section indices: 1 .hash 2 .dynsym 3 .dynstr 4 .gnu.version 5 .gnu.version_d 6 .dynamic 7 .text 8 .shstrtab
    TEXT_SHNDX = 7
    ehdr_size, phent, phnum = 64, 56, 2
    out = bytearray(ehdr_size + phent * phnum)
    sections = []                                   # (name, type, flags, offset, size, link, info, align, entsize)

    # .hash: nbucket, nchain, buckets, chains
    _align(out, 8)
    nsym = len(syms)
    nbucket = 3
    buckets = [0] * nbucket
    chains = [0] * nsym
    for i in range(1, nsym):
        b = elf_hash(syms[i][0].encode()) % nbucket
        chains[i] = buckets[b]          # prepend: every symbol of the bucket stays reachable
        buckets[b] = i
    hash_off = len(out)
    out += struct.pack("<%dI" % (2 + nbucket + nsym), nbucket, nsym, *buckets, *chains)
    sections.append((".hash", SHT_HASH, SHF_ALLOC, hash_off, len(out) - hash_off, 2, 0, 8, 4))

    dynsym_off = _align(out, 8)
    for (name, value, info, shndx, size), noff in zip(syms, names):
        shndx = TEXT_SHNDX if shndx == "text" else shndx
        out += struct.pack("<IBBHQQ", noff, info, 0, shndx, value, size)   # values patched below for text
    sections.append((".dynsym", SHT_DYNSYM, SHF_ALLOC, dynsym_off, len(out) - dynsym_off, 3, 2, 8, 24))

    dynstr_off = len(out)
    out += dynstr.data
    sections.append((".dynstr", SHT_STRTAB, SHF_ALLOC, dynstr_off, len(dynstr.data), 0, 0, 1, 0))

    versym_off = _align(out, 2)
    # the null symbol is local (0); every other symbol, the version's own included, is LINUX_2.6 (2)
    out += struct.pack("<%dH" % nsym, 0, *([2] * (nsym - 1)))
    sections.append((".gnu.version", SHT_GNU_VERSYM, SHF_ALLOC, versym_off, 2 * nsym, 2, 0, 2, 2))

    verdef_off = _align(out, 4)
    for i, (name, flags) in enumerate(((SONAME, VER_FLG_BASE), (VERSION, 0))):
        # Elf64_Verdef (20 bytes) then its one Elf64_Verdaux (8 bytes)
        nxt = 28 if i == 0 else 0
        out += struct.pack("<HHHHIII", 1, flags, i + 1, 1, elf_hash(name.encode()), 20, nxt)
        out += struct.pack("<II", dynstr.add(name), 0)
    sections.append((".gnu.version_d", SHT_GNU_VERDEF, SHF_ALLOC, verdef_off, len(out) - verdef_off, 3, 2, 4, 0))

    dynamic = [(DT_HASH, hash_off), (DT_STRTAB, dynstr_off), (DT_SYMTAB, dynsym_off), (DT_STRSZ, len(dynstr.data)),
               (DT_SYMENT, 24), (DT_SONAME, soname_off), (DT_VERSYM, versym_off), (DT_VERDEF, verdef_off),
               (DT_VERDEFNUM, 2), (DT_NULL, 0)]
    dynamic_off = _align(out, 8)
    for tag, val in dynamic:
        out += struct.pack("<qQ", tag, val)
    sections.append((".dynamic", SHT_DYNAMIC, SHF_ALLOC, dynamic_off, len(out) - dynamic_off, 3, 0, 8, 16))

    text_off = _align(out, 16)
    out += text
    sections.append((".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, text_off, len(text), 0, 0, 16, 0))
    for i, (name, value, info, shndx, size) in enumerate(syms):
        if shndx == "text":
            struct.pack_into("<Q", out, dynsym_off + 24 * i + 8, text_off + value)
    load_end = len(out)

    for s in sections:
        shstr.add(s[0])
    shstr.add(".shstrtab")
    shstrtab_off = len(out)
    out += shstr.data
    sections.append((".shstrtab", SHT_STRTAB, 0, shstrtab_off, len(shstr.data), 0, 0, 1, 0))
    shoff = _align(out, 8)
    out += bytes(64)                                   # section 0: SHN_UNDEF
    for name, typ, flags, off, size, link, info, align, entsize in sections:
        addr = off if flags & SHF_ALLOC else 0
        out += struct.pack("<IIQQQQIIQQ", shstr.offs[name], typ, flags, addr, off, size, link, info, align, entsize)
    shnum = 1 + len(sections)

    ident = b"\x7fELF" + bytes((2, 1, EV_CURRENT, 0)) + bytes(8)      # ELFCLASS64, little-endian, System V ABI
    struct.pack_into("<16sHHIQQQIHHHHHH", out, 0, ident, ET_DYN, EM_X86_64, EV_CURRENT, 0, ehdr_size, shoff, 0,
                     ehdr_size, phent, phnum, 64, shnum, shnum - 1)
    # PT_LOAD: the whole image, read and execute; PT_DYNAMIC: the dynamic section
    struct.pack_into("<IIQQQQQQ", out, ehdr_size, PT_LOAD, PF_R | PF_X, 0, 0, 0, len(out), len(out), PAGE)
    struct.pack_into("<IIQQQQQQ", out, ehdr_size + phent, PT_DYNAMIC, PF_R, dynamic_off, dynamic_off,
                     dynamic_off, 16 * len(dynamic), 16 * len(dynamic), 8)
    assert load_end <= len(out) <= PAGE
    return bytes(out)


_IMAGE = None


def image() -> bytes:
    global _IMAGE
    if _IMAGE is None:
        _IMAGE = build()
    return _IMAGE


def map_vdso(mm, below: int) -> int:
    """Map the vDSO (read and execute, one page) just below `below` (the
    dynamic loader's base, as Linux places it next to ld.so when nothing is
    randomised); its address goes into AT_SYSINFO_EHDR."""
    data = image()
    size = (len(data) + PAGE - 1) & ~(PAGE - 1)
    base = below - size
    mm.map_fixed_image(base, size, PROT_READ | PROT_EXEC, data, name="[vdso]")
    return base
