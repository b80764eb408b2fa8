"""Direct 64-bit boot (Linux x86-64 boot protocol, Documentation/x86/boot.rst,
"64-bit Boot Protocol"), the way Firecracker starts a guest: the kernel ELF is
loaded at its physical addresses and entered in long mode with paging on,
identity-mapped page tables, a flat GDT, CPL 0, and RSI pointing at the
boot_params "zero page".

Guest physical layout used here:

    0x0500  boot GDT (null, null, 0x10 code64, 0x18 data)
    0x7000  boot_params (zero page)
    0x8ff0  boot stack top
    0x9000  PML4, 0xA000 PDPT (1 GiB pages: identity map of the low 4 GiB+)
    0x20000 kernel command line
    ELF     the kernel's PT_LOAD segments at their p_paddr (>= 1 MiB)
"""
from __future__ import annotations

import struct

GDT_ADDR = 0x500
ZERO_PAGE = 0x7000
BOOT_STACK = 0x8FF0
PML4_ADDR = 0x9000
PDPT_ADDR = 0xA000
CMDLINE_ADDR = 0x20000
CMDLINE_MAX = 0x10000
HIMEM_START = 0x100000
EBDA_START = 0x9FC00

BOOT_CS, BOOT_DS = 0x10, 0x18

# boot_params offsets (boot.rst "The zero page" / setup header)
BP_E820_ENTRIES = 0x1E8
BP_SETUP_SECTS = 0x1F1
BP_BOOT_FLAG = 0x1FE
BP_HEADER = 0x202
BP_VERSION = 0x206
BP_TYPE_OF_LOADER = 0x210
BP_LOADFLAGS = 0x211
BP_CMD_LINE_PTR = 0x228
BP_CMDLINE_SIZE = 0x238
BP_E820_TABLE = 0x2D0
E820_RAM, E820_RESERVED = 1, 2

CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 1, 2, 0x10, 0x20, 1 << 16, 1 << 31
CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT = 1 << 5, 1 << 9, 1 << 10
EFER_LME, EFER_LMA = 1 << 8, 1 << 10


class BootError(Exception):
    """The kernel image cannot be booted."""


def parse_elf(data: bytes):
    """(entry, [(paddr, bytes, memsz)]) of an ELF64 x86-64 executable."""
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise BootError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise BootError("not a little-endian ELF64 file")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_machine != 62 or e_type not in (2, 3):
        raise BootError("not an x86-64 executable")
    entry, phoff = struct.unpack_from("<QQ", data, 24)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    # the program-header table inside the file before any entry is read
    if phentsize != 56 or phnum == 0 or phoff > len(data) or phoff + phnum * 56 > len(data):
        raise BootError("malformed ELF file (program header table)")
    segs = []
    for i in range(phnum):
        p_type, _flags, off, _vaddr, paddr, filesz, memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type != 1 or memsz == 0:
            continue
        if off + filesz > len(data) or filesz > memsz:
            raise BootError("truncated segment")
        segs.append((paddr, data[off:off + filesz], memsz))
    if not segs:
        raise BootError("no loadable segments")
    return entry, segs


def gdt_entry(flags: int, base: int = 0, limit: int = 0xFFFFF) -> int:
    """A segment descriptor from its flags word (type/S/DPL/P low byte, G/DB/L/AVL high nibble)."""
    return ((base & 0xFF000000) << 32) | ((flags & 0xF0FF) << 40) | ((limit & 0xF0000) << 32) \
        | ((base & 0x00FFFFFF) << 16) | (limit & 0xFFFF)


def setup_boot(vm, kernel: bytes, cmdline: str) -> int:
    """Load the kernel into vm.ram and set the vCPU up at its 64-bit entry.
    Returns the entry point."""
    ram, mem = vm.ram, vm.mem_size
    entry, segs = parse_elf(kernel)
    for paddr, blob, memsz in segs:
        if paddr < HIMEM_START or paddr + memsz > mem:
            raise BootError("segment at %#x+%#x outside guest RAM" % (paddr, memsz))
        ram[paddr:paddr + len(blob)] = memoryview(blob)
        ram[paddr + len(blob):paddr + memsz] = 0

    # flat GDT: 0x10 64-bit code, 0x18 data (the protocol's __BOOT_CS/__BOOT_DS)
    gdt = [0, 0, gdt_entry(0xA09B), gdt_entry(0xC093)]
    ram[GDT_ADDR:GDT_ADDR + 32] = memoryview(struct.pack("<4Q", *gdt))

    # identity map with 1 GiB pages over RAM and the low 4 GiB (APIC, I/O APIC, virtio)
    gib = max(4, (mem + (1 << 30) - 1) >> 30)
    if gib > 512:
        raise BootError("more than 512 GiB of RAM")
    ram[PML4_ADDR:PML4_ADDR + 0x2000] = 0
    ram[PML4_ADDR:PML4_ADDR + 8] = memoryview(struct.pack("<Q", PDPT_ADDR | 3))
    pdpt = struct.pack("<%dQ" % gib, *[(i << 30) | 0x83 for i in range(gib)])
    ram[PDPT_ADDR:PDPT_ADDR + len(pdpt)] = memoryview(pdpt)

    # command line
    cl = cmdline.encode() + b"\0"
    if len(cl) > CMDLINE_MAX:
        raise BootError("command line too long")
    ram[CMDLINE_ADDR:CMDLINE_ADDR + len(cl)] = memoryview(cl)

    # boot_params
    bp = bytearray(4096)
    struct.pack_into("<H", bp, BP_BOOT_FLAG, 0xAA55)
    struct.pack_into("<I", bp, BP_HEADER, 0x53726448)      # "HdrS"
    struct.pack_into("<H", bp, BP_VERSION, 0x020F)
    bp[BP_TYPE_OF_LOADER] = 0xFF
    bp[BP_LOADFLAGS] = 0x01                                 # LOADED_HIGH
    struct.pack_into("<I", bp, BP_CMD_LINE_PTR, CMDLINE_ADDR)
    struct.pack_into("<I", bp, BP_CMDLINE_SIZE, len(cl) - 1)
    e820 = [(0, EBDA_START, E820_RAM), (EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED),
            (HIMEM_START, mem - HIMEM_START, E820_RAM)]
    for i, (addr, size, kind) in enumerate(e820):
        struct.pack_into("<QQI", bp, BP_E820_TABLE + 20 * i, addr, size, kind)
    bp[BP_E820_ENTRIES] = len(e820)
    ram[ZERO_PAGE:ZERO_PAGE + 4096] = memoryview(bytes(bp))

    v = vm.vcpu
    v.gdtr = (GDT_ADDR, 32 - 1)
    v.idtr = (0, 0)
    v.cr3 = PML4_ADDR
    v.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT
    v.efer = EFER_LME | EFER_LMA
    v.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG
    v.cpl = 0
    v.set_seg_sel(1, BOOT_CS)
    for s in (0, 2, 3, 4, 5):
        v.set_seg_sel(s, BOOT_DS)
        if s != 4 and s != 5:
            v.set_seg_base(s, 0)
    v.rflags = 2
    v.rip = entry
    v.rsp = BOOT_STACK
    v.rsi = ZERO_PAGE
    for r in ("rax", "rbx", "rcx", "rdx", "rdi", "rbp"):
        setattr(v, r, 0)
    v.flush_tlb()
    return entry
