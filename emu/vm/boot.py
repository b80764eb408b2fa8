"""Direct 64-bit boot (Linux x86-64 boot protocol, Documentation/x86/boot.rst,
"64-bit Boot Protocol"), the way Firecracker starts a guest: the kernel is
entered in long mode with paging on, identity-mapped page tables, a flat GDT,
CPL 0, and RSI pointing at the boot_params "zero page". The kernel is either

- an ELF vmlinux: its PT_LOAD segments at their p_paddr, entered at e_entry;
- a bzImage: the setup header is copied into boot_params, the protected-mode
  kernel (after the setup sectors) is loaded at pref_address (relocatable
  kernels) or code32_start, and entered at its 64-bit entry, 0x200 past the
  load address (boot.rst: "the 64-bit entry point is at offset 0x200").

An initrd goes at the top of RAM below initrd_addr_max, page aligned
(ramdisk_image/ramdisk_size, ext_ramdisk_* above 4 GiB). Extra setup_data
entries (type, payload) are chained from the header's setup_data field.

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
BP_ACPI_RSDP = 0x070
BP_EXT_RAMDISK_IMAGE = 0x0C0
BP_EXT_RAMDISK_SIZE = 0x0C4
BP_EXT_CMD_LINE_PTR = 0x0C8
BP_E820_ENTRIES = 0x1E8
BP_SETUP_SECTS = 0x1F1
BP_BOOT_FLAG = 0x1FE
BP_HEADER = 0x202
BP_VERSION = 0x206
BP_TYPE_OF_LOADER = 0x210
BP_LOADFLAGS = 0x211
BP_CODE32_START = 0x214
BP_RAMDISK_IMAGE = 0x218
BP_RAMDISK_SIZE = 0x21C
BP_HEAP_END_PTR = 0x224
BP_CMD_LINE_PTR = 0x228
BP_INITRD_ADDR_MAX = 0x22C
BP_KERNEL_ALIGNMENT = 0x230
BP_RELOCATABLE = 0x234
BP_XLOADFLAGS = 0x236
BP_CMDLINE_SIZE = 0x238
BP_SETUP_DATA = 0x250
BP_PREF_ADDRESS = 0x258
BP_INIT_SIZE = 0x260
BP_E820_TABLE = 0x2D0
E820_MAX = 128
E820_RAM, E820_RESERVED, E820_ACPI = 1, 2, 3
LOADED_HIGH, KEEP_SEGMENTS, CAN_USE_HEAP = 0x01, 0x40, 0x80
XLF_KERNEL_64 = 0x01
SETUP_DATA_ADDR = 0x30000        # setup_data chain (after the command line)
SETUP_DATA_MAX = 0x10000

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


XEN_ELFNOTE_PHYS32_ENTRY = 18
PVH_START_INFO = 0x6000          # hvm_start_info, then the module list and the memory map
PVH_MODLIST = 0x6100
PVH_MEMMAP = 0x6200
HVM_START_MAGIC = 0x336EC578
PVH_CS, PVH_DS = 0x10, 0x18


def pvh_entry(data: bytes):
    """The 32-bit PVH entry point of an ELF kernel (its Xen ELF note
    XEN_ELFNOTE_PHYS32_ENTRY), or None."""
    from elftools.elf.elffile import ELFFile
    from elftools.common.exceptions import ELFError
    import io
    try:
        elf = ELFFile(io.BytesIO(data))
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_NOTE":
                continue
            for note in seg.iter_notes():
                if note["n_name"] == "Xen" and note["n_type"] == XEN_ELFNOTE_PHYS32_ENTRY:
                    desc = note["n_descdata"]
                    desc = desc if isinstance(desc, bytes) else desc.encode("latin-1")
                    return int.from_bytes(desc[:8].ljust(8, b"\0"), "little") & 0xFFFFFFFF
        # the note may lie in a segment readelf's PT_NOTE does not cover: scan the file
    except (ELFError, ValueError, KeyError):
        return None
    for size in (4, 8):
        pat = struct.pack("<III", 4, size, XEN_ELFNOTE_PHYS32_ENTRY) + b"Xen\0"
        i = data.find(pat)
        if i >= 0:
            return int.from_bytes(data[i + 16:i + 16 + size], "little") & 0xFFFFFFFF
    return None


def setup_pvh(vm, kernel: bytes, cmdline: str, initrd: bytes | None = None,
              e820_extra=(), rsdp: int = 0) -> int:
    """Load an ELF kernel and enter it at its PVH entry, as Xen's and
    Firecracker's PVH boot does (xen/include/public/arch-x86/hvm/start_info.h):
    32-bit protected mode with paging off, flat 32-bit CS and data segments,
    EBX = the hvm_start_info (version 1: command line, the initrd as module 0,
    the memory map, the RSDP). Returns the entry point."""
    if is_bzimage(kernel):
        raise BootError("the PVH entry needs the ELF vmlinux, not a bzImage")
    entry = pvh_entry(kernel)
    if entry is None:
        raise BootError("the kernel has no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY)")
    ram, mem = vm.ram, vm.mem_size
    _entry64, segs = parse_elf(kernel)
    kernel_end = HIMEM_START
    for paddr, blob, memsz in segs:
        if paddr < HIMEM_START or paddr + memsz > mem:
            raise BootError("segment at %#x+%#x outside guest RAM" % (paddr, memsz))
        ram[paddr:paddr + len(blob)] = memoryview(blob)
        ram[paddr + len(blob):paddr + memsz] = 0
        kernel_end = max(kernel_end, paddr + memsz)
    cl = cmdline.encode() + b"\0"
    if len(cl) > CMDLINE_MAX:
        raise BootError("command line too long")
    ram[CMDLINE_ADDR:CMDLINE_ADDR + len(cl)] = memoryview(cl)
    nmod = 0
    if initrd:
        addr = ((mem & ~0xFFF) - len(initrd)) & ~0xFFF
        if addr < kernel_end:
            raise BootError("the initrd does not fit in RAM above the kernel: give more --mem")
        ram[addr:addr + len(initrd)] = memoryview(initrd)
        ram[PVH_MODLIST:PVH_MODLIST + 32] = memoryview(struct.pack("<QQQQ", addr, len(initrd), 0, 0))
        nmod = 1
    e820 = e820_map(mem, e820_extra)
    mm = b"".join(struct.pack("<QQII", a, n, t, 0) for a, n, t in e820)
    ram[PVH_MEMMAP:PVH_MEMMAP + len(mm)] = memoryview(mm)
    info = struct.pack("<IIIIQQQQII", HVM_START_MAGIC, 1, 0, nmod, PVH_MODLIST if nmod else 0, CMDLINE_ADDR,
                       rsdp, PVH_MEMMAP, len(e820), 0)
    ram[PVH_START_INFO:PVH_START_INFO + len(info)] = memoryview(info)
    # flat 32-bit code and data (G=1, D/B=1)
    gdt = [0, 0, gdt_entry(0xC09B), gdt_entry(0xC093)]
    ram[GDT_ADDR:GDT_ADDR + 32] = memoryview(struct.pack("<4Q", *gdt))
    v = vm.vcpu
    v.gdtr = (GDT_ADDR, 32 - 1)
    v.idtr = (0, 0)
    v.efer = 0
    v.cr4 = 0
    v.cr3 = 0
    v.cr0 = CR0_PE | CR0_ET
    v.cpl = 0
    v.set_seg_sel(1, PVH_CS)
    for sr in (0, 2, 3, 4, 5):
        v.set_seg_sel(sr, PVH_DS)
        v.set_seg_base(sr, 0)
    v.cs32 = True
    v.rflags = 2
    v.rip = entry
    v.rbx = PVH_START_INFO
    for r in ("rax", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"):
        setattr(v, r, 0)
    v.flush_tlb()
    return entry


def is_bzimage(data: bytes) -> bool:
    return len(data) > 0x264 and data[0x202:0x206] == b"HdrS"


def parse_bzimage(data: bytes):
    """(setup header bytes, protected-mode kernel, header fields) of a bzImage."""
    version = struct.unpack_from("<H", data, BP_VERSION)[0]
    if version < 0x020C:
        raise BootError("boot protocol %d.%02d: 2.12 or later is needed for the 64-bit entry"
                        % (version >> 8, version & 0xFF))
    xlf = struct.unpack_from("<H", data, BP_XLOADFLAGS)[0]
    if not xlf & XLF_KERNEL_64:
        raise BootError("the bzImage has no 64-bit entry point (XLF_KERNEL_64)")
    setup_sects = data[BP_SETUP_SECTS] or 4
    pm_off = (setup_sects + 1) * 512
    if pm_off >= len(data):
        raise BootError("truncated bzImage")
    hdr_end = 0x202 + data[0x201]                # the header's length is in its jump (boot.rst)
    f = {
        "version": version,
        "loadflags": data[BP_LOADFLAGS],
        "code32_start": struct.unpack_from("<I", data, BP_CODE32_START)[0],
        "initrd_addr_max": struct.unpack_from("<I", data, BP_INITRD_ADDR_MAX)[0],
        "kernel_alignment": struct.unpack_from("<I", data, BP_KERNEL_ALIGNMENT)[0],
        "relocatable": data[BP_RELOCATABLE],
        "cmdline_size": struct.unpack_from("<I", data, BP_CMDLINE_SIZE)[0],
        "pref_address": struct.unpack_from("<Q", data, BP_PREF_ADDRESS)[0],
        "init_size": struct.unpack_from("<I", data, BP_INIT_SIZE)[0],
    }
    return data[0x1F1:hdr_end], data[pm_off:], f


def e820_map(mem: int, reserved=()) -> list:
    """The guest's e820: low RAM, the EBDA/BIOS hole, RAM from 1 MiB, plus
    reserved ranges (ACPI tables, MMIO) the machine description names."""
    e = [(0, EBDA_START, E820_RAM), (EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED),
         (HIMEM_START, mem - HIMEM_START, E820_RAM)]
    e += list(reserved)
    return sorted(e)


def gdt_entry(flags: int, base: int = 0, limit: int = 0xFFFFF) -> int:
    """A segment descriptor from its flags word (type/S/DPL/P low byte, G/DB/L/AVL high nibble)."""
    return ((base & 0xFF000000) << 32) | ((flags & 0xF0FF) << 40) | ((limit & 0xF0000) << 32) \
        | ((base & 0x00FFFFFF) << 16) | (limit & 0xFFFF)


def setup_boot(vm, kernel: bytes, cmdline: str, initrd: bytes | None = None,
               setup_data=(), e820_extra=(), rsdp: int = 0) -> int:
    """Load the kernel (ELF vmlinux or bzImage) and initrd into vm.ram and set
    the vCPU up at the 64-bit entry. Returns the entry point."""
    ram, mem = vm.ram, vm.mem_size
    bp = bytearray(4096)
    kernel_end = HIMEM_START
    initrd_max = mem
    if is_bzimage(kernel):
        hdr, pm, f = parse_bzimage(kernel)
        bp[0x1F1:0x1F1 + len(hdr)] = hdr
        if f["relocatable"] and f["pref_address"] >= HIMEM_START:
            load = f["pref_address"]
        else:
            load = f["code32_start"] or HIMEM_START
        align = f["kernel_alignment"] or 0x200000
        if f["relocatable"] and load % align:
            load = (load + align - 1) & ~(align - 1)
        need = max(len(pm), f["init_size"])
        if load + need > mem:
            raise BootError("the kernel needs %d MiB of RAM from %#x: give more --mem"
                            % ((need + (1 << 20) - 1) >> 20, load))
        ram[load:load + len(pm)] = memoryview(pm)
        struct.pack_into("<I", bp, BP_CODE32_START, load)
        entry = load + 0x200
        kernel_end = load + need
        if f["initrd_addr_max"]:
            initrd_max = min(mem, f["initrd_addr_max"] + 1)
        cmdline_max = f["cmdline_size"] or 255
    else:
        entry, segs = parse_elf(kernel)
        for paddr, blob, memsz in segs:
            if paddr < HIMEM_START or paddr + memsz > mem:
                raise BootError("segment at %#x+%#x outside guest RAM" % (paddr, memsz))
            ram[paddr:paddr + len(blob)] = memoryview(blob)
            ram[paddr + len(blob):paddr + memsz] = 0
            kernel_end = max(kernel_end, paddr + memsz)
        struct.pack_into("<H", bp, BP_BOOT_FLAG, 0xAA55)
        struct.pack_into("<I", bp, BP_HEADER, 0x53726448)      # "HdrS"
        struct.pack_into("<H", bp, BP_VERSION, 0x020F)
        cmdline_max = CMDLINE_MAX - 1

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
    if len(cl) - 1 > min(cmdline_max, CMDLINE_MAX - 1):
        raise BootError("command line too long (%d bytes; the kernel takes %d)" % (len(cl) - 1, cmdline_max))
    ram[CMDLINE_ADDR:CMDLINE_ADDR + len(cl)] = memoryview(cl)

    # boot_params: the loader's fields (boot.rst "Details of header fields")
    bp[BP_TYPE_OF_LOADER] = 0xFF                            # undefined loader
    bp[BP_LOADFLAGS] = (bp[BP_LOADFLAGS] | LOADED_HIGH | CAN_USE_HEAP) & ~KEEP_SEGMENTS
    struct.pack_into("<H", bp, BP_HEAP_END_PTR, 0xFE00)
    struct.pack_into("<I", bp, BP_CMD_LINE_PTR, CMDLINE_ADDR)
    struct.pack_into("<I", bp, BP_CMDLINE_SIZE, len(cl) - 1)
    if rsdp:
        struct.pack_into("<Q", bp, BP_ACPI_RSDP, rsdp)
    e820 = e820_map(mem, e820_extra)
    if len(e820) > E820_MAX:
        raise BootError("too many e820 entries")
    for i, (addr, size, kind) in enumerate(e820):
        struct.pack_into("<QQI", bp, BP_E820_TABLE + 20 * i, addr, size, kind)
    bp[BP_E820_ENTRIES] = len(e820)

    if initrd:
        top = min(initrd_max, mem) & ~0xFFF
        addr = (top - len(initrd)) & ~0xFFF
        if addr < kernel_end:
            raise BootError("the initrd (%d KiB) does not fit in RAM above the kernel: give more --mem"
                            % (len(initrd) >> 10))
        ram[addr:addr + len(initrd)] = memoryview(initrd)
        struct.pack_into("<I", bp, BP_RAMDISK_IMAGE, addr & 0xFFFFFFFF)
        struct.pack_into("<I", bp, BP_RAMDISK_SIZE, len(initrd) & 0xFFFFFFFF)
        struct.pack_into("<I", bp, BP_EXT_RAMDISK_IMAGE, addr >> 32)
        struct.pack_into("<I", bp, BP_EXT_RAMDISK_SIZE, len(initrd) >> 32)

    # setup_data: a linked list of (next u64, type u32, len u32, data)
    nxt, pos, prev = 0, SETUP_DATA_ADDR, None
    for typ, payload in setup_data:
        if pos + 16 + len(payload) > SETUP_DATA_ADDR + SETUP_DATA_MAX:
            raise BootError("setup_data too large")
        ram[pos:pos + 16 + len(payload)] = memoryview(struct.pack("<QII", 0, typ, len(payload)) + payload)
        if prev is None:
            struct.pack_into("<Q", bp, BP_SETUP_DATA, pos)
        else:
            ram[prev:prev + 8] = memoryview(struct.pack("<Q", pos))
        prev = pos
        pos = (pos + 16 + len(payload) + 7) & ~7
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
