"""The code cache (emu/core/codecache.pxi): a byte budget with partial
eviction. A guest whose code is far bigger than the cache runs through it
several times; results, code hooks, block hooks and self-modifying code must
stay right while blocks are evicted and retranslated, and the cache must
never be flushed whole."""
import struct

import pytest

import emu
from emu.hooks import Hooks

CODE = 0x400000
DATA = 0x600000
STACK = 0x7FF000
NBLK = 1200          # blocks per pass, each: add rax, imm32; xor rax, imm32; rol rax, 5; jmp next
PASSES = 4
SMC_BLK = 700        # block 300 patches the add immediate of this block each pass, and its own
SMALL = 64 << 10     # bytes: far less than the program's translated code


def _program():
    code = bytearray()
    offs = []
    imms = []
    # rcx counts passes; block 300 increments the immediate of block SMC_BLK
    code += b"\x48\xc7\xc1" + struct.pack("<i", PASSES)          # mov rcx, PASSES
    top = len(code)
    for i in range(NBLK):
        offs.append(len(code))
        a = (i * 2654435761) & 0x7FFFFFFF
        x = (i * 40503 + 17) & 0x7FFFFFFF
        imms.append((a, x))
        code += b"\x48\x05" + struct.pack("<I", a)                # add rax, imm32
        code += b"\x48\x35" + struct.pack("<I", x)                # xor rax, imm32
        code += b"\x48\xc1\xc0\x05"                               # rol rax, 5
        if i == 300:
            code += b"\xff\x04\x25" + b"SMC!"                      # inc dword [abs imm of SMC_BLK]
            code += b"\xff\x04\x25" + b"OWN!"                      # inc dword [its own add imm]
        code += b"\xe9" + b"\0\0\0\0"                             # jmp next (patched below)
    end = len(code)
    code += b"\x48\xff\xc9" + b"\x0f\x85" + b"\0\0\0\0"           # dec rcx; jnz top
    code += b"\xf4"                                               # hlt
    # jumps to the next block (the last one to the loop tail)
    for i in range(NBLK):
        jpos = (offs[i + 1] if i + 1 < NBLK else end) - 5
        nxt = offs[i + 1] if i + 1 < NBLK else end
        code[jpos + 1:jpos + 5] = struct.pack("<i", nxt - (jpos + 5))
    jnz = end + 3
    code[jnz + 2:jnz + 6] = struct.pack("<i", top - (jnz + 6))
    smc_addr = CODE + offs[SMC_BLK] + 2
    p = code.index(b"SMC!")
    code[p:p + 4] = struct.pack("<I", smc_addr)
    p = code.index(b"OWN!")
    code[p:p + 4] = struct.pack("<I", CODE + offs[300] + 2)
    return bytes(code), offs, imms


def _expected():
    _, offs, imms = _program()
    imms = [list(t) for t in imms]
    rax = 0
    mask = (1 << 64) - 1
    for _ in range(PASSES):
        for i in range(NBLK):
            a, x = imms[i]
            rax = (rax + a) & mask
            rax ^= x
            rax = ((rax << 5) | (rax >> 59)) & mask
            if i == 300:
                imms[SMC_BLK][0] = (imms[SMC_BLK][0] + 1) & 0xFFFFFFFF
                imms[300][0] = (imms[300][0] + 1) & 0xFFFFFFFF
    return rax


def _machine(code_cache):
    code, offs, _ = _program()
    m = emu.Machine(ram_size=16 << 20, cpl=0, code_cache=code_cache)
    m.map(CODE, (len(code) + 0xFFF) & ~0xFFF)
    m.map(STACK, 0x1000)
    m.write(CODE, code)
    m.vcpu.rip = CODE
    m.vcpu.rsp = STACK + 0x1000
    return m, offs


def test_code_cache_budget_is_configurable():
    assert emu.Machine(ram_size=1 << 20, code_cache=SMALL).phys.code_cache == SMALL
    assert emu.Machine(ram_size=1 << 20).phys.code_cache == 256 << 20
    with pytest.raises(ValueError):
        emu.Machine(ram_size=1 << 20, code_cache=4096)
    with pytest.raises(TypeError):
        emu.Machine(ram_size=1 << 20, code_cache="big")


def test_evictions_keep_results_and_smc_right():
    want = _expected()
    big, _ = _machine(64 << 20)
    assert big.vcpu.run().name == "HLT"
    small, _ = _machine(SMALL)
    assert small.vcpu.run().name == "HLT"
    assert big.vcpu.rax == want and small.vcpu.rax == want
    assert small.vcpu.icount == big.vcpu.icount
    c = small.vcpu.counters
    assert c["evictions"] > NBLK and c["retranslations"] > NBLK
    assert c["cache_flushes"] == 0                    # partial eviction, never a flush
    assert c["code_cache_bytes"] <= SMALL
    assert c["invalidations"] >= PASSES               # the running block patched itself
    assert big.vcpu.counters["invalidations"] >= 2 * PASSES
    # with room for everything, each block is translated once, but for those
    # sharing a page with patched code (invalidated page by page)
    cb = big.vcpu.counters
    assert cb["evictions"] == 0 and cb["retranslations"] == 0
    assert cb["blocks_translated"] == cb["distinct_blocks"]
    assert cb["blocks_translated"] < 3 * NBLK < c["blocks_translated"]


def _hooked_run(code_cache):
    m, offs = _machine(code_cache)
    seen = []
    blocks = []
    h = Hooks(m.vcpu)
    h.code(CODE + offs[500], CODE + offs[500], lambda v, a, s: seen.append((a, v.icount)))
    h.block(lambda v, a, s: blocks.append((a, s)))
    ex = h.run()
    assert ex.name == "HLT" and m.vcpu.rax == _expected()
    return m, offs, seen, blocks


def test_hooks_fire_right_across_evictions():
    m, offs, seen, blocks = _hooked_run(SMALL)
    # the hooked instruction ran once per pass, after the same count each time
    assert [a for a, _ in seen] == [CODE + offs[500]] * PASSES
    per_pass = seen[1][1] - seen[0][1]
    assert all(seen[k + 1][1] - seen[k][1] == per_pass for k in range(PASSES - 1))
    assert m.vcpu.counters["evictions"] > 0
    # every block entry was reported, with the same extent, as with no eviction
    big, _, seen_big, blocks_big = _hooked_run(64 << 20)
    assert big.vcpu.counters["evictions"] == 0
    assert seen == seen_big and blocks == blocks_big
    assert [a for a, _ in blocks].count(CODE + offs[SMC_BLK]) == PASSES


def test_budget_single_step_across_evictions():
    """Stopping every few instructions (resume inside blocks) with evictions
    in between gives the same state as a straight run."""
    m, _ = _machine(SMALL)
    steps = 0
    while True:
        ex = m.vcpu.run(7)
        steps += 1
        if ex.name != "BUDGET":
            break
    assert ex.name == "HLT" and m.vcpu.rax == _expected()
    assert m.vcpu.counters["evictions"] > 0


def test_flush_then_run_counts_retranslations():
    m, _ = _machine(64 << 20)
    m.vcpu.run(5000)
    n = m.vcpu.counters["blocks_translated"]
    m.phys.flush_code()
    m.vcpu.run()
    c = m.vcpu.counters
    assert m.vcpu.rax == _expected()
    assert c["cache_flushes"] == 1 and c["retranslations"] > 0
    assert c["distinct_blocks"] == c["blocks_translated"] - c["retranslations"]
    assert c["blocks_translated"] > n
