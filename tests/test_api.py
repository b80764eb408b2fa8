"""The core's Python API: machines, memory, registers, exits, counters,
budgets, and the GIL released while guest code runs."""
import threading
import time

import numpy as np
import pytest

import emu

CODE = 0x400000
STACK = 0x7FF000


def machine(code: bytes, cpl: int = 0, **kw):
    m = emu.Machine(ram_size=16 << 20, cpl=cpl, **kw)
    m.map(CODE, 0x2000)
    m.map(STACK, 0x1000)
    m.write(CODE, code)
    m.vcpu.rip = CODE
    m.vcpu.rsp = STACK + 0x1000
    return m


def test_hlt_exit_and_registers():
    m = machine(bytes.fromhex("48c7c0 2a000000 48ffc0 f4".replace(" ", "")))
    ex = m.vcpu.run()
    assert ex.name == "HLT" and ex.rip == CODE + 10
    assert m.vcpu.rip == CODE + 11 and m.vcpu.rax == 43
    regs = m.vcpu.regs()
    assert regs["rax"] == 43 and regs["rip"] == CODE + 11 and regs["rflags"] & 2


def test_hlt_at_cpl3_is_gp():
    m = machine(b"\xf4", cpl=3)
    ex = m.vcpu.run()
    assert (ex.name, ex.vector, ex.error_code, ex.rip) == ("EXCEPTION", 13, 0, CODE)


def test_syscall_exit_sets_rcx_r11():
    m = machine(bytes.fromhex("b83c0000000f05"), cpl=3)
    m.vcpu.rflags = 0x203
    ex = m.vcpu.run()
    assert ex.name == "SYSCALL" and m.vcpu.rax == 60
    assert m.vcpu.rcx == CODE + 7 and m.vcpu.r11 & 0x1


def test_page_fault_fields():
    m = machine(bytes.fromhex("488b042500001000"), cpl=3)     # mov rax, [0x100000]
    ex = m.vcpu.run()
    assert (ex.name, ex.vector, ex.cr2, ex.rip) == ("EXCEPTION", 14, 0x100000, CODE)
    assert ex.error_code == 0x4                                 # user, read, not present


def test_undefined_opcode_is_ud_not_a_crash():
    m = machine(b"\x0f\xff" + b"\x90" * 8, cpl=3)
    ex = m.vcpu.run()
    assert (ex.name, ex.vector, ex.rip) == ("EXCEPTION", 6, CODE)


def test_budget_single_steps_exactly():
    m = machine(bytes.fromhex("48ffc0" * 10 + "f4"))
    for i in range(1, 11):
        ex = m.vcpu.run(1)
        assert ex.name == "BUDGET" and m.vcpu.rax == i and m.vcpu.rip == CODE + 3 * i
    assert m.vcpu.icount == 10
    assert m.vcpu.run().name == "HLT"


def test_counters():
    loop = bytes.fromhex("b9e8030000" "48ffc0" "48ffc9" "75f8" "f4")   # 1000 iterations
    m = machine(loop)
    m.vcpu.run()
    c = m.vcpu.counters
    assert c["instructions"] == 1 + 3 * 1000 + 1
    assert c["blocks_translated"] >= 2
    if c["tier"] == "interp":
        assert c["block_cache_hits"] >= 998 and c["chained"] >= 990
    else:
        # the loop's block is compiled (at once, or once hot) and linked to
        # itself: its iterations run chained in the interpreter or in compiled code
        assert c["jit"]["links"] >= 1
        assert c["chained"] + c["jit"]["instructions_native"] // 3 >= 990
    assert c["exits"] == {"HLT": 1}
    for key in ("block_cache_misses", "invalidations", "tlb_hits", "tlb_misses"):
        assert key in c


def test_ram_is_a_zero_copy_view():
    m = machine(b"\xf4")
    pa = m.vcpu.translate(CODE)
    assert isinstance(m.ram, np.ndarray) and m.ram.dtype == np.uint8
    assert m.ram[pa] == 0xF4
    m.write(CODE, b"\x48\xff\xc0\xf4")               # through the API
    assert bytes(m.ram[pa:pa + 4]) == b"\x48\xff\xc0\xf4"
    m.ram[pa + 3] = 0x90                             # through the view, then tell the cache
    m.ram[pa + 4] = 0xF4
    m.phys.invalidate(pa, 8)
    m.vcpu.run()
    assert m.vcpu.rax == 1 and m.vcpu.rip == CODE + 5


def test_dirty_pages():
    m = machine(bytes.fromhex("48890425" + "00f07f00" + "f4"))      # mov [0x7ff000], rax
    m.phys.dirty_pages(clear=True)
    m.vcpu.run()
    assert m.vcpu.translate(STACK) >> 12 in m.phys.dirty_pages()


def test_gil_released_and_stop_from_another_thread():
    forever = bytes.fromhex("48ffc0" "ebfb")          # inc rax; jmp back
    m = machine(forever)
    result = {}

    def run():
        result["exit"] = m.vcpu.run()

    t = threading.Thread(target=run)
    t.start()
    # the main thread keeps running Python while the guest spins
    t0, spins = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.2:
        spins += 1
    m.vcpu.stop()
    t.join(5)
    assert not t.is_alive()
    assert result["exit"].name == "STOPPED"
    assert spins > 10000 and m.vcpu.rax > 1000


def test_bad_arguments_raise_python_errors():
    with pytest.raises(ValueError):
        emu.Machine(ram_size=12345)
    m = machine(b"\xf4")
    with pytest.raises(IndexError):
        m.vcpu.get_gpr(16)
    with pytest.raises(emu.GuestMemoryError):
        m.read(0xDEAD0000, 4)
