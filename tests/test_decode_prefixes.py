"""Prefix handling in the decoder: repeated and reordered legacy prefixes,
REX only counting right before the opcode, REX.W over 66, the 15-byte
limit, LOCK legality and FS/GS segment bases.

Forms the host can run are differential; the faults (#GP for 16+ bytes, #UD
for a bad LOCK) and FS/GS (whose native bases we must not change) run in emu
only, against expectations computed here."""
from __future__ import annotations

import ctypes
import random

import pytest

import difftest
import native

CF, PF, AF, ZF, SF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x800
ARITH = CF | PF | AF | ZF | SF | OF
M64 = (1 << 64) - 1
REGS = native.REG_NAMES

NULL_SEGS = [0x2E, 0x3E, 0x26, 0x36]
LEGACY = [0x66, 0x67, 0xF2, 0xF3] + NULL_SEGS

# register-only instructions from implemented families (no RSP operands)
REG_INSNS = [
    bytes.fromhex("01d8"),      # add eax, ebx
    bytes.fromhex("29c8"),      # sub eax, ecx
    bytes.fromhex("31d6"),      # xor esi, edx
    bytes.fromhex("89d8"),      # mov eax, ebx
    bytes.fromhex("8d041e"),    # lea eax, [rsi+rbx]  (67: 32-bit address)
    bytes.fromhex("8d443e10"),  # lea eax, [rsi+rdi+0x10]
    bytes.fromhex("0fb6c6"),    # movzx eax, dh / sil
    bytes.fromhex("0fbfc3"),    # movsx eax, bx
    bytes.fromhex("87d8"),      # xchg eax, ebx
    bytes.fromhex("0f44c3"),    # cmove eax, ebx
    bytes.fromhex("85c8"),      # test eax, ecx
    bytes.fromhex("83c0f0"),    # add eax, imm8
    bytes.fromhex("0fc1d8"),    # xadd eax, ebx
]


def random_regs(rng):
    return {name: difftest.random_value(rng, 64) for name in REGS if name != "rsp"}


def low_scratch(size: int):
    """RW memory below 4 GiB (MAP_32BIT) for 67-prefixed memory operands."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)
    addr = libc.mmap(None, size, 3, 0x22 | 0x40, -1, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        pytest.skip("no MAP_32BIT memory")
    assert addr + size <= 1 << 32
    return addr, (ctypes.c_ubyte * size).from_address(addr)


def soup(rng, k_max=8, extra=()):
    return bytes(rng.choice(LEGACY + list(extra)) for _ in range(rng.randint(0, k_max)))


@difftest.needs_native
def test_repeated_reordered_legacy_prefixes_registers():
    rng = random.Random(0x66)
    n = 0
    for i in range(600):
        insn = REG_INSNS[i % len(REG_INSNS)]
        # FS/GS do nothing to register operands, so they may join here too
        pfx = soup(rng, 10, extra=(0x64, 0x65))
        difftest.check(pfx + insn, random_regs(rng), 0x202 | (rng.getrandbits(12) & ARITH),
                       note="prefixes")
        n += 1
    difftest.covered("repeated/reordered legacy prefixes (register operands)", n)


@difftest.needs_native
def test_repeated_prefixes_memory_and_67():
    """Memory operands under random prefix soups; with 67 the base register's
    upper half is ignored (memory is below 4 GiB), LOCK anywhere in the
    prefixes on the lockable forms."""
    rng = random.Random(0x67)
    addr, buf = low_scratch(4096)
    insns = [
        (bytes.fromhex("8b4310"), False),   # mov eax, [rbx+0x10]
        (bytes.fromhex("014320"), True),    # add [rbx+0x20], eax
        (bytes.fromhex("0fb14b30"), True),  # cmpxchg [rbx+0x30], ecx
        (bytes.fromhex("874340"), True),    # xchg [rbx+0x40], eax
        (bytes.fromhex("0fc14350"), True),  # xadd [rbx+0x50], eax
        (bytes.fromhex("3b0473"), False),   # cmp eax, [rbx+rsi*2]
    ]
    n = 0
    for i in range(600):
        insn, lockable = insns[i % len(insns)]
        pfx = bytearray(soup(rng, 8))
        if lockable and rng.random() < 0.5:
            pfx.insert(rng.randint(0, len(pfx)), 0xF0)
        regs = random_regs(rng)
        off = rng.randrange(0, 2048)
        regs["rsi"] = rng.randrange(0, 512)
        if 0x67 in pfx:
            regs["rbx"] = (rng.getrandbits(32) << 32) | (addr + off)
        else:
            regs["rbx"] = addr + off
        init = rng.randbytes(4096)
        difftest.check(bytes(pfx) + insn, regs, 0x202 | (rng.getrandbits(12) & ARITH),
                       scratch=[(addr, buf, init)], note="mem prefixes")
        n += 1
    difftest.covered("repeated/reordered legacy prefixes (memory, 67, lock)", n)


@difftest.needs_native
def test_rex_position_and_rex_w_over_66():
    """A REX prefix counts only right before the opcode (earlier ones are
    ignored, the last of several wins); REX.W wins over 66."""
    rng = random.Random(0x48)
    n_pos = n_w = 0
    for i in range(800):
        insn = REG_INSNS[i % len(REG_INSNS)]
        if i % 2:
            # REX somewhere in the prefixes, maybe more than one
            pfx = bytearray(soup(rng, 5))
            for _ in range(rng.randint(1, 3)):
                pfx.insert(rng.randint(0, len(pfx)), 0x40 | rng.getrandbits(4))
            n_pos += 1
        else:
            # 66 with REX.W: 64-bit operands
            pfx = bytearray(soup(rng, 3)) + b"\x66" + bytes(soup(rng, 2)) + bytes([0x48 | rng.getrandbits(3)])
            n_w += 1
        difftest.check(bytes(pfx) + insn, random_regs(rng), 0x202 | (rng.getrandbits(12) & ARITH),
                       note="rex")
    difftest.covered("REX not last is ignored", n_pos)
    difftest.covered("REX.W overrides 66", n_w)


def fifteen_byte_forms(rng):
    """Instructions padded with redundant prefixes to exactly 15 bytes."""
    bodies = [
        bytes.fromhex("4805") + rng.getrandbits(32).to_bytes(4, "little"),            # add rax, imm32
        bytes.fromhex("48b8") + rng.getrandbits(64).to_bytes(8, "little"),            # mov rax, imm64
        bytes.fromhex("48818c1e") + rng.getrandbits(32).to_bytes(4, "little")
        + rng.getrandbits(32).to_bytes(4, "little"),                                  # or [rsi+rbx+d32], imm32
        bytes.fromhex("488d841e") + rng.getrandbits(32).to_bytes(4, "little"),        # lea rax, [rsi+rbx+d32]
    ]
    return bodies


@difftest.needs_native
def test_fifteen_bytes_run():
    rng = random.Random(15)
    addr, buf = native.scratch(8192)
    n = 0
    for i in range(240):
        body = fifteen_byte_forms(rng)[i % 4]
        pad = 15 - len(body)
        pfx = bytes(rng.choice([0x2E, 0x3E, 0x26, 0x36, 0xF3, 0xF2, 0x66 if i % 4 != 2 else 0x3E])
                    for _ in range(pad))
        code = pfx + body
        assert len(code) == 15
        regs = random_regs(rng)
        scratch = None
        if i % 4 == 2:
            disp = int.from_bytes(body[4:8], "little", signed=True)
            regs["rsi"] = (addr + rng.randrange(0, 4096) - disp) & M64
            regs["rbx"] = rng.randrange(0, 4000)
            scratch = [(addr, buf, rng.randbytes(8192))]
        difftest.check(code, regs, 0x202 | (rng.getrandbits(12) & ARITH), scratch=scratch, note="15 bytes")
        n += 1
    difftest.covered("15-byte instructions", n)


def test_sixteen_bytes_gp_emu():
    """Longer than 15 bytes: #GP(0) at the instruction, nothing executed."""
    rng = random.Random(16)
    n = 0
    for i in range(60):
        body = fifteen_byte_forms(rng)[i % 4]
        extra = 1 + i % 5
        pfx = bytes(rng.choice(NULL_SEGS + [0xF3, 0xF2]) for _ in range(15 - len(body) + extra))
        code = pfx + body
        assert len(code) >= 16
        ex, v = difftest.emu_only(code, {"rax": 5, "rsi": 0, "rbx": 0})
        assert ex.name == "EXCEPTION" and ex.vector == 13 and ex.error_code == 0, (code.hex(), ex)
        assert v.rip == 0x10000000 and v.rax == 5
        n += 1
    # prefixes alone running past 15 bytes
    for k in (15, 16, 20):
        ex, v = difftest.emu_only(b"\x66" * k + b"\x90")
        assert ex.name == "EXCEPTION" and ex.vector == 13, (k, ex)
        n += 1
    # and exactly 15 runs
    ex, v = difftest.emu_only(b"\x66" * 14 + b"\x90")
    assert ex.name == "BUDGET" and v.rip == 0x10000000 + 15
    difftest.covered("16+ byte instructions #GP (emu)", n + 1)


LOCK_UD = [
    "f001d8",        # add eax, ebx: register destination
    "f0488b03",      # mov: not lockable
    "f08903",        # mov [rbx], eax
    "f090",          # nop
    "f03903",        # cmp [rbx], eax: no write
    "f08503",        # test [rbx], eax
    "f0f60301",      # test byte [rbx], 1
    "f0a4",          # movsb
    "f0f3ab",        # rep stosd
    "f08d03",        # lea
    "f00fb1d8",      # cmpxchg eax, ebx (register)
    "f00fc1c3",      # xadd ebx, eax (register)
    "f087d8",        # xchg eax, ebx (register)
    "f0fec0",        # inc al
    "f0833b01",      # cmp dword [rbx], 1
    "f00fc7c8",      # cmpxchg8b with a register operand
    "66f0f72b",      # imul/... f7 /5 [rbx]: not lockable
]
LOCK_OK = [
    "f00103",        # add [rbx], eax
    "f0830301",      # add dword [rbx], 1
    "f0fe03",        # inc byte [rbx]
    "f0f71b",        # neg dword [rbx]
    "f00fb10b",      # cmpxchg [rbx], ecx
    "f00fc70b",      # cmpxchg8b [rbx]
    "f0480fc70b",    # cmpxchg16b [rbx]
    "f00fc103",      # xadd [rbx], eax
    "f08703",        # xchg [rbx], eax
    "2ef0663e0103",  # LOCK among other prefixes
]


def test_lock_legality_emu():
    side = difftest.emu_side()
    data = 0x21000000
    side.ensure_mapped(data, 0x1000)
    n = 0
    for h in LOCK_UD:
        ex, v = difftest.emu_only(bytes.fromhex(h), {"rbx": data})
        assert ex.name == "EXCEPTION" and ex.vector == 6, (h, ex)
        assert v.rip == 0x10000000
        n += 1
    for h in LOCK_OK:
        ex, v = difftest.emu_only(bytes.fromhex(h), {"rbx": data})
        assert ex.name == "BUDGET", (h, ex)
        n += 1
    difftest.covered("LOCK legality (emu)", n)


def test_fs_gs_bases_emu():
    """FS/GS add fs_base/gs_base to the effective address (after 67
    truncation, RIP-relative too); the null segments ES/CS/SS/DS do not."""
    side = difftest.emu_side()
    m = side.m
    v = m.vcpu
    rng = random.Random(0xF5)
    area = 0x22000000
    side.ensure_mapped(area, 0x10000)
    content = rng.randbytes(0x10000)
    m.write(area, content)
    code_addr = 0x10000000

    def q(addr):
        return int.from_bytes(content[addr - area:addr - area + 8], "little")

    n = 0
    try:
        for _ in range(60):
            fs = area + rng.randrange(0, 0x4000)
            gs = area + rng.randrange(0, 0x4000)
            v.fs_base, v.gs_base = fs, gs
            off = rng.randrange(0, 0x4000)
            hi = rng.getrandbits(32) << 32
            # mov rax, fs:[rbx] / gs:[rbx]
            for seg, base in ((0x64, fs), (0x65, gs)):
                ex, vc = difftest.emu_only(bytes([seg]) + bytes.fromhex("488b03"), {"rbx": off})
                assert ex.name == "BUDGET" and vc.rax == q(base + off)
                # 67: the offset is truncated to 32 bits, then the base added
                ex, vc = difftest.emu_only(bytes([seg, 0x67]) + bytes.fromhex("488b03"), {"rbx": hi | off})
                assert ex.name == "BUDGET" and vc.rax == q(base + off)
                # prefix order does not matter, null segments around are ignored
                pfx = bytes([rng.choice(NULL_SEGS), seg, 0x67])
                ex, vc = difftest.emu_only(pfx + bytes.fromhex("488b4308"), {"rbx": hi | off})
                assert ex.name == "BUDGET" and vc.rax == q(base + off + 8)
                # RIP-relative: fs_base + (next RIP + disp32)
                disp = (off - (code_addr + 8)) & 0xFFFFFFFF
                ex, vc = difftest.emu_only(bytes([seg]) + bytes.fromhex("488b05") + disp.to_bytes(4, "little"))
                assert ex.name == "BUDGET" and vc.rax == q(base + off)
                # store through the segment: the value lands at base + offset
                ex, vc = difftest.emu_only(bytes([seg]) + bytes.fromhex("48891e"), {"rsi": off, "rbx": 0x1122334455667788})
                assert ex.name == "BUDGET"
                assert m.read(base + off, 8) == (0x1122334455667788).to_bytes(8, "little")
                m.write(base + off, content[base + off - area:base + off - area + 8])
                # a null segment override alone: flat
                ex, vc = difftest.emu_only(bytes([rng.choice(NULL_SEGS)]) + bytes.fromhex("488b03"), {"rbx": area + off})
                assert ex.name == "BUDGET" and vc.rax == q(area + off)
                # LEA ignores the segment
                ex, vc = difftest.emu_only(bytes([seg]) + bytes.fromhex("488d4310"), {"rbx": off})
                assert vc.rax == off + 0x10
                n += 7
    finally:
        v.fs_base = 0
        v.gs_base = 0
    difftest.covered("FS/GS segment bases (emu)", n)
