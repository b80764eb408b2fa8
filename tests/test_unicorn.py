"""emu.unicorn: Unicorn's Python API on emu's core (docs/unicorn.md).

Expected values come from the architecture (SDM) and Unicorn's documented
API semantics; each test builds a small Uc and runs real guest code."""
import struct
import sys

import pytest

from emu.unicorn import Uc, UcError, install, uninstall
from emu.unicorn import unicorn_const as U
from emu.unicorn import x86_const as X

BASE = 0x400000
STACK = 0x7ff00000


def make(code=b"", mode=U.UC_MODE_64):
    uc = Uc(U.UC_ARCH_X86, mode)
    uc.mem_map(BASE, 0x2000)
    uc.mem_map(STACK, 0x10000)
    uc.mem_write(BASE, code)
    uc.reg_write(X.UC_X86_REG_RSP if mode == U.UC_MODE_64 else X.UC_X86_REG_ESP, STACK + 0x8000)
    return uc


def test_documented_constant_values():
    # values Unicorn's headers give (unicorn.h, x86.h): programs pass them as integers
    assert (U.UC_ARCH_X86, U.UC_MODE_32, U.UC_MODE_64) == (4, 4, 8)
    assert (U.UC_HOOK_CODE, U.UC_HOOK_BLOCK, U.UC_HOOK_MEM_READ_UNMAPPED, U.UC_HOOK_INSN_INVALID) == (4, 8, 16, 1 << 14)
    assert U.UC_HOOK_MEM_UNMAPPED == 16 | 32 | 64
    assert (U.UC_MEM_READ, U.UC_MEM_WRITE_PROT, U.UC_ERR_READ_UNMAPPED, U.UC_ERR_EXCEPTION) == (16, 22, 6, 21)
    assert (X.UC_X86_REG_RAX, X.UC_X86_REG_RIP, X.UC_X86_REG_MSR, X.UC_X86_INS_SYSCALL) == (35, 41, 248, 699)
    with pytest.raises(UcError) as e:
        Uc(U.UC_ARCH_ARM, U.UC_MODE_ARM)
    assert e.value.errno == U.UC_ERR_ARCH
    assert "UC_ERR_ARCH" in str(e.value)


def test_memory_map_regions_and_errors():
    uc = Uc(U.UC_ARCH_X86, U.UC_MODE_64)
    uc.mem_map(0x10000, 0x4000, U.UC_PROT_READ | U.UC_PROT_WRITE)
    uc.mem_write(0x10ffe, b"abcd")                # across a page boundary
    assert uc.mem_read(0x10ffe, 4) == b"abcd"
    for args, err in (((0x11000, 0x1000), U.UC_ERR_MAP), ((0x20001, 0x1000), U.UC_ERR_ARG),
                      ((0x20000, 0x0), U.UC_ERR_ARG)):
        with pytest.raises(UcError) as e:
            uc.mem_map(*args)
        assert e.value.errno == err
    uc.mem_protect(0x11000, 0x1000, U.UC_PROT_READ)
    uc.mem_unmap(0x12000, 0x1000)
    assert list(uc.mem_regions()) == [(0x10000, 0x10fff, 3), (0x11000, 0x11fff, 1), (0x13000, 0x13fff, 3)]
    with pytest.raises(UcError) as e:
        uc.mem_read(0x12000, 1)
    assert e.value.errno == U.UC_ERR_READ_UNMAPPED
    with pytest.raises(UcError) as e:
        uc.mem_unmap(0x12000, 0x1000)
    assert e.value.errno == U.UC_ERR_NOMEM
    # remapped memory reads as zero again
    uc.mem_unmap(0x10000, 0x1000)
    uc.mem_map(0x10000, 0x1000)
    assert uc.mem_read(0x10ffe, 2) == b"\0\0"


def test_run_until_count_and_flags():
    # xor r14, r14 from EFLAGS 0x200 gives PF ZF IF = 0x246 on hardware
    uc = make(b"\x4d\x31\xf6" + b"\x48\x83\xc0\x05" * 4 + b"\x90")
    uc.reg_write(X.UC_X86_REG_EFLAGS, 0x200)
    uc.emu_start(BASE, 0, count=1)
    assert uc.reg_read(X.UC_X86_REG_RIP) == BASE + 3
    assert uc.reg_read(X.UC_X86_REG_EFLAGS) == 0x246
    uc.emu_start(BASE + 3, BASE + 3 + 4 * 3)          # add rax, 5 three times, stop before the 4th
    assert uc.reg_read(X.UC_X86_REG_RAX) == 15
    assert uc.reg_read(X.UC_X86_REG_RIP) == BASE + 15


def test_code_block_and_memory_hooks():
    code = (b"\x48\xc7\xc7\x00\x00\xf0\x7f"      # mov rdi, STACK
            b"\x48\xc7\xc0\xff\xff\xff\xff"      # mov rax, -1
            b"\x48\x89\x07"                      # mov [rdi], rax
            b"\x8b\x0f"                          # mov ecx, [rdi]
            b"\xeb\x00"                          # jmp +0 (ends the block)
            b"\x90")
    uc = make(code)
    seen, blocks, mem = [], [], []
    uc.hook_add(U.UC_HOOK_CODE, lambda uc, a, s, ud: seen.append((a, s, ud)), "tag")
    uc.hook_add(U.UC_HOOK_BLOCK, lambda uc, a, s, ud: blocks.append(a))
    uc.hook_add(U.UC_HOOK_MEM_READ | U.UC_HOOK_MEM_WRITE,
                lambda uc, acc, a, s, v, ud: mem.append((acc, a, s, v)), None, STACK, STACK + 7)
    uc.emu_start(BASE, BASE + len(code) - 1)
    assert [a for a, _, _ in seen] == [BASE, BASE + 7, BASE + 14, BASE + 17, BASE + 19]
    assert seen[0][1:] == (7, "tag")
    assert blocks == [BASE]
    # the write's value as Unicorn passes it: a signed 64-bit number
    assert mem == [(U.UC_MEM_WRITE, STACK, 8, -1), (U.UC_MEM_READ, STACK, 4, 0)]
    assert uc.reg_read(X.UC_X86_REG_RCX) == 0xFFFFFFFF


def test_hook_del_and_emu_stop_in_hook():
    uc = make(b"\x48\xff\xc0" * 10)                 # inc rax x10
    calls = []

    def stop_third(uc, a, s, ud):
        calls.append(a)
        if len(calls) == 3:
            uc.emu_stop()
    h = uc.hook_add(U.UC_HOOK_CODE, stop_third)
    uc.emu_start(BASE, BASE + 30)
    # stopped before the third instruction ran
    assert uc.reg_read(X.UC_X86_REG_RAX) == 2
    assert uc.reg_read(X.UC_X86_REG_RIP) == BASE + 6
    uc.hook_del(h)
    uc.emu_start(BASE + 6, BASE + 30)
    assert uc.reg_read(X.UC_X86_REG_RAX) == 10
    assert len(calls) == 3


def test_unmapped_access_hook_maps_and_resumes():
    code = b"\x48\xb8" + struct.pack("<Q", 0x900000) + b"\xc7\x00\x44\x33\x22\x11" + b"\x90"   # mov dword [rax], ..
    uc = make(code)
    events = []

    def on_unmapped(uc, access, address, size, value, ud):
        events.append((access, address))
        uc.mem_map(address & ~0xFFF, 0x1000)
        return True
    uc.hook_add(U.UC_HOOK_MEM_UNMAPPED, on_unmapped)
    uc.emu_start(BASE, BASE + len(code) - 1)
    assert events == [(U.UC_MEM_WRITE_UNMAPPED, 0x900000)]
    assert uc.mem_read(0x900000, 4) == b"\x44\x33\x22\x11"


def test_unmapped_and_protection_errors():
    uc = make(b"\x48\x8b\x04\x25\x00\x00\x90\x00")  # mov rax, [0x900000]
    with pytest.raises(UcError) as e:
        uc.emu_start(BASE, BASE + 8)
    assert e.value.errno == U.UC_ERR_READ_UNMAPPED
    assert uc.reg_read(X.UC_X86_REG_RIP) == BASE
    uc.mem_map(0x900000, 0x1000, U.UC_PROT_READ)
    uc.mem_write(BASE, b"\x48\x89\x04\x25\x00\x00\x90\x00")  # mov [0x900000], rax
    with pytest.raises(UcError) as e:
        uc.emu_start(BASE, BASE + 8)
    assert e.value.errno == U.UC_ERR_WRITE_PROT
    # a PROT hook that grants the right: the store is made again and completes
    uc.hook_add(U.UC_HOOK_MEM_WRITE_PROT,
                lambda uc, acc, a, s, v, ud: uc.mem_protect(0x900000, 0x1000, U.UC_PROT_ALL) or True)
    uc.reg_write(X.UC_X86_REG_RAX, 0x1122334455667788)
    uc.emu_start(BASE, BASE + 8)
    assert uc.mem_read(0x900000, 8) == struct.pack("<Q", 0x1122334455667788)
    # fetch from memory without EXEC
    uc.mem_protect(BASE, 0x1000, U.UC_PROT_READ)
    with pytest.raises(UcError) as e:
        uc.emu_start(BASE, BASE + 8)
    assert e.value.errno == U.UC_ERR_FETCH_PROT


def test_interrupts_and_invalid_instruction():
    uc = make(b"\xcd\x80" + b"\xcc" + b"\x0f\x0b" + b"\x90")   # int 0x80; int3; ud2; nop
    intr = []
    uc.hook_add(U.UC_HOOK_INTR, lambda uc, no, ud: intr.append((no, uc.reg_read(X.UC_X86_REG_RIP))))
    with pytest.raises(UcError) as e:
        uc.emu_start(BASE, BASE + 6)
    assert e.value.errno == U.UC_ERR_INSN_INVALID
    # INT n and INT3 report after the instruction (traps, SDM Vol. 3 6.5)
    assert intr == [(0x80, BASE + 2), (3, BASE + 3)]

    def skip_ud2(uc, ud):
        uc.reg_write(X.UC_X86_REG_RIP, uc.reg_read(X.UC_X86_REG_RIP) + 2)
        return True
    uc.hook_add(U.UC_HOOK_INSN_INVALID, skip_ud2)
    uc.emu_start(BASE + 3, BASE + 6)
    assert uc.reg_read(X.UC_X86_REG_RIP) == BASE + 6


def test_syscall_cpuid_rdtsc_in_out_hooks():
    code = (b"\x48\xc7\xc1\x11\x00\x00\x00"          # mov rcx, 0x11
            b"\x0f\x05"                          # syscall
            b"\x31\xc0\x0f\xa2"                  # xor eax, eax; cpuid
            b"\x0f\x31"                          # rdtsc
            b"\xe4\x60"                          # in al, 0x60
            b"\x66\xba\xf8\x03\xee"              # mov dx, 0x3f8; out dx, al
            b"\x90")
    uc = make(code)
    got = []

    def on_syscall(uc, ud):
        got.append(("syscall", uc.reg_read(X.UC_X86_REG_RIP)))
        uc.reg_write(X.UC_X86_REG_RAX, 42)

    def on_cpuid(uc, ud):
        uc.reg_write(X.UC_X86_REG_EBX, 0x756E6547)
        return 1                                  # the hook stands in for CPUID

    def on_rdtsc(uc, ud):
        uc.reg_write(X.UC_X86_REG_RAX, 7)
        uc.reg_write(X.UC_X86_REG_RDX, 0)
        return 1

    uc.hook_add(U.UC_HOOK_INSN, on_syscall, None, 1, 0, X.UC_X86_INS_SYSCALL)
    uc.hook_add(U.UC_HOOK_INSN, on_cpuid, None, 1, 0, X.UC_X86_INS_CPUID)
    uc.hook_add(U.UC_HOOK_INSN, on_rdtsc, None, 1, 0, X.UC_X86_INS_RDTSC)
    uc.hook_add(U.UC_HOOK_INSN, lambda uc, port, size, ud: got.append(("in", port, size)) or 0xAB,
                None, 1, 0, X.UC_X86_INS_IN)
    uc.hook_add(U.UC_HOOK_INSN, lambda uc, port, size, value, ud: got.append(("out", port, size, value)),
                None, 1, 0, X.UC_X86_INS_OUT)
    uc.emu_start(BASE, BASE + len(code) - 1)
    # SYSCALL under Unicorn: only the hook runs; RCX keeps its value
    assert got == [("syscall", BASE + 7), ("in", 0x60, 1), ("out", 0x3F8, 1, 0xAB)]
    assert uc.reg_read(X.UC_X86_REG_RCX) == 0x11
    assert uc.reg_read(X.UC_X86_REG_RAX) == 0xAB and uc.reg_read(X.UC_X86_REG_EBX) == 0x756E6547


def test_cpuid_hook_returning_zero_runs_the_instruction():
    uc = make(b"\x31\xc0\x0f\xa2\x90")
    uc.hook_add(U.UC_HOOK_INSN, lambda uc, ud: 0, None, 1, 0, X.UC_X86_INS_CPUID)
    uc.emu_start(BASE, BASE + 4)
    want = uc.vcpu.cpuid(0)
    assert (uc.reg_read(X.UC_X86_REG_EAX), uc.reg_read(X.UC_X86_REG_EBX)) == want[:2]


def test_registers_partial_msr_segments_tables():
    uc = make()
    uc.reg_write(X.UC_X86_REG_RAX, 0x1122334455667788)
    uc.reg_write(X.UC_X86_REG_AH, 0xAA)
    assert uc.reg_read_batch([X.UC_X86_REG_RAX, X.UC_X86_REG_EAX, X.UC_X86_REG_AX, X.UC_X86_REG_AL]) == \
        (0x112233445566AA88, 0x5566AA88, 0xAA88, 0x88)
    uc.reg_write_batch([(X.UC_X86_REG_R15D, 5), (X.UC_X86_REG_SIL, 0x7F)])
    assert uc.reg_read(X.UC_X86_REG_R15) == 5 and uc.reg_read(X.UC_X86_REG_RSI) == 0x7F
    uc.msr_write(0xC0000100, 0x7000)              # IA32_FS_BASE
    assert uc.reg_read(X.UC_X86_REG_FS_BASE) == 0x7000
    assert uc.reg_read(X.UC_X86_REG_MSR, 0xC0000100) == 0x7000
    uc.reg_write(X.UC_X86_REG_GDTR, (0, 0x1000, 0x7F, 0))
    assert uc.reg_read(X.UC_X86_REG_GDTR)[1:3] == (0x1000, 0x7F)
    uc.reg_write(X.UC_X86_REG_IDTR, (0, 0x2000, 0xFFF, 0))
    # the guest sees the same tables (SGDT/SIDT)
    uc.mem_write(BASE, b"\x0f\x01\x04\x25\x00\x00\xf0\x7f\x0f\x01\x0c\x25\x10\x00\xf0\x7f\x90")
    uc.emu_start(BASE, BASE + 16)
    assert uc.mem_read(STACK, 10) == struct.pack("<HQ", 0x7F, 0x1000)
    assert uc.mem_read(STACK + 0x10, 10) == struct.pack("<HQ", 0xFFF, 0x2000)
    # paging stays the guest's business: CR0.PG reads clear
    assert not uc.reg_read(X.UC_X86_REG_CR0) & (1 << 31)


def test_fs_from_gdt_descriptor_in_32bit_mode():
    uc = make(b"\x64\xa1\x00\x00\x00\x00\x90", U.UC_MODE_32)     # mov eax, fs:[0]
    gdt = 0x600000
    uc.mem_map(gdt, 0x1000)
    base = 0x7ff00100
    desc = (0xFFFF | ((base & 0xFFFFFF) << 16) | (0xF3 << 40) | (0xCF << 48) | ((base >> 24) << 56))
    uc.mem_write(gdt + 8 * 3, struct.pack("<Q", desc))
    uc.mem_write(base, b"\x78\x56\x34\x12")
    uc.reg_write(X.UC_X86_REG_GDTR, (0, gdt, 0xFF, 0))
    uc.reg_write(X.UC_X86_REG_FS, 3 << 3)
    uc.emu_start(BASE, BASE + 6)
    assert uc.reg_read(X.UC_X86_REG_EAX) == 0x12345678


def test_sse_and_x87_registers():
    # movaps xmm1, xmm0; fld1; fldpi
    uc = make(b"\x0f\x28\xc8\xd9\xe8\xd9\xeb\x90")
    uc.reg_write(X.UC_X86_REG_XMM0, 0x0102030405060708090A0B0C0D0E0F10)
    uc.emu_start(BASE, BASE + 7)
    assert uc.reg_read(X.UC_X86_REG_XMM1) == 0x0102030405060708090A0B0C0D0E0F10
    # ST0 = pi, ST1 = 1.0 (80-bit: mantissa, sign+exponent)
    assert uc.reg_read(X.UC_X86_REG_ST0) == 0x4000C90FDAA22168C235
    assert uc.reg_read(X.UC_X86_REG_ST1) == 0x3FFF8000000000000000
    assert (uc.reg_read(X.UC_X86_REG_FPSW) >> 11) & 7 == 6          # TOP after two pushes
    # FPi is the physical register Ri: the first push went to R7, the second to R6
    assert uc.reg_read(X.UC_X86_REG_FP7) == (0x8000000000000000, 0x3FFF)
    assert uc.reg_read(X.UC_X86_REG_FP6) == (0xC90FDAA22168C235, 0x4000)
    assert uc.reg_read(X.UC_X86_REG_FPTAG) == 0x0FFF                 # R6, R7 valid; others empty
    uc.reg_write(X.UC_X86_REG_MXCSR, 0x1F80 | 0x6000)
    assert uc.reg_read(X.UC_X86_REG_MXCSR) == 0x7F80


def test_context_save_restore_update():
    uc = make(b"\x48\xff\xc0\x90")                  # inc rax
    uc.reg_write(X.UC_X86_REG_RAX, 1)
    ctx = uc.context_save()
    uc.emu_start(BASE, BASE + 3)
    assert uc.reg_read(X.UC_X86_REG_RAX) == 2
    assert ctx.reg_read(X.UC_X86_REG_RAX) == 1
    uc.context_restore(ctx)
    assert uc.reg_read(X.UC_X86_REG_RAX) == 1
    uc.reg_write(X.UC_X86_REG_RAX, 9)
    uc.context_update(ctx)
    uc.reg_write(X.UC_X86_REG_RAX, 0)
    uc.context_restore(ctx)
    assert uc.reg_read(X.UC_X86_REG_RAX) == 9


def test_ctl_exits_model_and_flush():
    uc = make(b"\x48\xff\xc0" * 4 + b"\x90")
    assert uc.ctl_get_arch() == U.UC_ARCH_X86 and uc.ctl_get_mode() == U.UC_MODE_64
    assert uc.ctl_get_page_size() == 4096
    uc.ctl_exits_enabled(True)
    uc.ctl_set_exits([BASE + 6])
    uc.emu_start(BASE, BASE + 12)                   # `until` is ignored with exits on
    assert uc.reg_read(X.UC_X86_REG_RIP) == BASE + 6
    assert uc.ctl_get_exits() == [BASE + 6]
    uc.ctl_set_cpu_model(X.UC_CPU_X86_QEMU64)
    assert uc.ctl_get_cpu_model() == X.UC_CPU_X86_QEMU64
    # self-modifying by the host between runs: flushing is not needed, and allowed
    uc.ctl_exits_enabled(False)
    uc.mem_write(BASE, b"\x48\xff\xc8")             # dec rax
    uc.ctl_flush_tb()
    uc.ctl_flush_tlb()
    uc.reg_write(X.UC_X86_REG_RAX, 5)
    uc.emu_start(BASE, BASE + 3)
    assert uc.reg_read(X.UC_X86_REG_RAX) == 4


def test_mmio_map_callbacks():
    uc = make(b"\x8b\x04\x25\x04\x00\x00\x20\x89\x04\x25\x08\x00\x00\x20\x90")  # mov eax,[0x20000004]; mov [..08], eax
    log = []
    uc.mmio_map(0x20000000, 0x1000, lambda uc, off, size, ud: log.append(("r", off, size, ud)) or 0x1234, "rd",
                lambda uc, off, size, value, ud: log.append(("w", off, size, value, ud)), "wr")
    uc.emu_start(BASE, BASE + 14)
    assert log == [("r", 4, 4, "rd"), ("w", 8, 4, 0x1234, "wr")]


def test_timeout_ends_an_endless_loop():
    uc = make(b"\xeb\xfe")                           # jmp $
    uc.emu_start(BASE, BASE + 2, timeout=20000)      # microseconds
    assert uc.reg_read(X.UC_X86_REG_RIP) == BASE
    assert uc.ctl_get_timeout() == 20000 * 1000


def test_mode32_wraps_and_runs():
    uc = make(b"\xb8\xff\xff\xff\xff\x40\x90", U.UC_MODE_32)   # mov eax, -1; inc eax
    uc.emu_start(BASE, BASE + 6)
    assert uc.reg_read(X.UC_X86_REG_EAX) == 0
    assert uc.reg_read(X.UC_X86_REG_EFLAGS) & 0x40      # ZF


def test_install_makes_import_unicorn_emu():
    saved = {k: v for k, v in sys.modules.items() if k == "unicorn" or k.startswith("unicorn.")}
    try:
        install()
        import unicorn
        from unicorn.x86_const import UC_X86_REG_RAX
        assert unicorn.Uc is Uc and UC_X86_REG_RAX == 35
        assert unicorn.__name__ == "emu.unicorn"
    finally:
        uninstall()
        sys.modules.update(saved)


def test_mem_map_ptr_shares_bytes_with_the_host_across_runs():
    import ctypes
    buf = ctypes.create_string_buffer(b"\x11" * 0x1000, 0x1000)
    uc = make(b"\x48\x8b\x04\x25\x00\x00\x50\x00\x48\xff\xc0\x48\x89\x04\x25\x08\x00\x50\x00\x90")
    # mov rax, [0x500000]; inc rax; mov [0x500008], rax
    uc.mem_map_ptr(0x500000, 0x1000, U.UC_PROT_ALL, ctypes.addressof(buf))
    buf[0:8] = struct.pack("<Q", 41)                 # the host writes before the run
    uc.emu_start(BASE, BASE + 19)
    assert struct.unpack("<Q", buf[8:16])[0] == 42    # the guest's store is in the host buffer


def test_emu_stop_from_another_thread_while_hooks_fire():
    # run_calls keeps the GIL between close hook calls: another thread must
    # still get in (between callbacks, and once a stretch without hooks runs)
    import threading
    uc = make(b"\x48\xff\xc0\xeb\xfb")              # inc rax; jmp back
    calls = [0]

    def count(uc, a, s, ud):
        calls[0] += 1
    uc.hook_add(U.UC_HOOK_CODE, count, None, BASE, BASE)
    t = threading.Timer(0.05, uc.emu_stop)
    t.start()
    uc.emu_start(BASE, BASE + 0x100)
    t.join()
    assert calls[0] > 0 and uc.reg_read(X.UC_X86_REG_RAX) >= calls[0] - 1
