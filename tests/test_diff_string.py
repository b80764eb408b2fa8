"""String instructions (MOVS STOS LODS SCAS CMPS) with REP/REPE/REPNE,
DF=0/1, all operand sizes and the 67 prefix: differential against the host
CPU, plus emu-only checks of chunked execution, faults in the middle of a
REP (RSI/RDI/RCX consistent, restartable) and self-modifying code."""
from __future__ import annotations

import ctypes
import random

import pytest

import difftest
import emu
import native

CF, PF, AF, ZF, SF, DF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x400, 0x800
ARITH = CF | PF | AF | ZF | SF | OF
M64 = (1 << 64) - 1

OPC = {"movs": 0xA4, "cmps": 0xA6, "stos": 0xAA, "lods": 0xAC, "scas": 0xAE}
USES_SRC = {"movs", "cmps", "lods"}
USES_DST = {"movs", "cmps", "stos", "scas"}
SUFFIX = {1: "b", 2: "w", 4: "d", 8: "q"}
REP_NAME = {None: "", 0xF3: "rep ", 0xF2: "repne "}

BUF = 2 * 4096


def encode(op: str, sz: int, rep: int | None, a32: bool = False, seg: int | None = None) -> bytes:
    pfx = b""
    if seg is not None:
        pfx += bytes([seg])
    if a32:
        pfx += b"\x67"
    if sz == 2:
        pfx += b"\x66"
    if rep is not None:
        pfx += bytes([rep])
    if sz == 8:
        pfx += b"\x48"
    return pfx + bytes([OPC[op] + (sz != 1)])


def form_name(op, sz, rep, df, a32=False):
    r = REP_NAME[rep]
    if rep == 0xF3 and op in ("cmps", "scas"):
        r = "repe "
    return "%s%s%s%s DF=%d" % ("a32 " if a32 else "", r, op, SUFFIX[sz], df)


def low_scratch(size: int):
    """RW memory below 4 GiB (MAP_32BIT) for the 67-prefix forms."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)
    addr = libc.mmap(None, size, 3, 0x22 | 0x40, -1, 0)   # PRIVATE|ANON|32BIT
    if addr in (None, ctypes.c_void_p(-1).value):
        pytest.skip("no MAP_32BIT memory")
    assert addr + size <= 1 << 32
    return addr, (ctypes.c_ubyte * size).from_address(addr)


def make_case(rng: random.Random, op: str, sz: int, rep, df: int, base: int):
    """Registers and buffer contents for one run. The buffer is BUF bytes at
    base; every element the instruction may touch lies inside it."""
    if rep is None:
        n = 1
        rcx = difftest.random_value(rng, 64)
    else:
        k = rng.random()
        n = rng.choice([0, 1, 2, 3]) if k < 0.15 else rng.randint(1, (BUF // 2) // sz)
        if k > 0.9:
            n = rng.randint(1, 40)
        rcx = n
    span = max(n, 1) * sz
    # offsets of the first element; with DF=1 the elements go down from it
    def first_off():
        if df:
            return rng.randint(span - sz, BUF - sz)
        return rng.randint(0, BUF - span)
    src = first_off()
    dst = first_off()
    if rng.random() < 0.2 and op == "movs":
        # overlapping copies, both directions, small distances
        dst = min(max(src + rng.randint(-3 * sz, 3 * sz), span - sz if df else 0),
                  BUF - sz if df else BUF - span)
    # contents: mostly runs of a few values so REPE/REPNE run a while
    alpha = rng.choice([1, 2, 3, 256])
    vals = [rng.getrandbits(8) for _ in range(alpha)]
    if alpha == 256:
        init = bytearray(rng.randbytes(BUF))
    else:
        init = bytearray(rng.choice(vals) for _ in range(BUF // 64)) * 64
        if alpha == 1:
            for _ in range(rng.randint(0, 3)):
                init[rng.randrange(BUF)] = rng.getrandbits(8)
    if op == "cmps" and rng.random() < 0.7:
        # a copy with a few differences
        lo_s, lo_d = (src - span + sz, dst - span + sz) if df else (src, dst)
        init[lo_d:lo_d + span] = init[lo_s:lo_s + span]
        for _ in range(rng.randint(0, 2)):
            init[lo_d + rng.randrange(span)] ^= 1 << rng.randrange(8)
    rax = difftest.random_value(rng, 64)
    if op == "scas" and rng.random() < 0.7:
        # AL/AX/... equal to the element pattern at the start (or not)
        first = dst - (0 if not df else 0)
        elem = int.from_bytes(init[first:first + sz], "little")
        rax = (rax & ~((1 << (8 * sz)) - 1) & M64) | elem
    regs = {name: difftest.random_value(rng, 64) for name in ("rbx", "rdx", "rbp", "r8", "r9", "r15")}
    regs.update(rax=rax, rcx=rcx, rsi=base + src, rdi=base + dst)
    flags = 0x202 | (rng.getrandbits(12) & ARITH) | (DF if df else 0)
    return regs, flags, bytes(init)


def run_forms(rng, forms, base, buf, cases, a32=False):
    for op, sz, rep, df in forms:
        code = encode(op, sz, rep, a32)
        for _ in range(cases):
            regs, flags, init = make_case(rng, op, sz, rep, df, base)
            if a32:
                # garbage above bit 31 must be ignored (and cleared on update)
                for r in ("rsi", "rdi") + (("rcx",) if rep is not None else ()):
                    regs[r] |= rng.getrandbits(32) << 32
            difftest.check(code, regs, flags, flags_mask=ARITH | DF,
                           scratch=[(base, buf, init)], note=form_name(op, sz, rep, df, a32))
        difftest.covered(form_name(op, sz, rep, df, a32), cases)


def all_forms(ops, reps):
    return [(op, sz, rep, df) for op in ops for sz in (1, 2, 4, 8) for rep in reps for df in (0, 1)]


@difftest.needs_native
def test_movs_stos_lods():
    rng = random.Random(0x5171)
    base, buf = native.scratch(BUF)
    run_forms(rng, all_forms(("movs", "stos", "lods"), (None, 0xF3)), base, buf, 200)
    # REPNE on MOVS/STOS/LODS repeats like REP
    run_forms(rng, all_forms(("movs", "stos", "lods"), (0xF2,)), base, buf, 200)


@difftest.needs_native
def test_scas_cmps():
    rng = random.Random(0x5CA5)
    base, buf = native.scratch(BUF)
    run_forms(rng, all_forms(("scas", "cmps"), (None, 0xF3, 0xF2)), base, buf, 200)


@difftest.needs_native
def test_address_size_67():
    """67: ESI/EDI/ECX are used, the upper halves ignored, and written back
    zero-extended (RCX untouched when ECX is already zero)."""
    rng = random.Random(0x67)
    base, buf = low_scratch(BUF)
    forms = [(op, sz, rep, df) for op in OPC for sz in (1, 8) for rep in (None, 0xF3)
             for df in (0, 1)]
    forms += [(op, sz, 0xF2, 0) for op in ("scas", "cmps") for sz in (2, 4)]
    run_forms(rng, forms, base, buf, 200, a32=True)


@difftest.needs_native
def test_rep_zero_count_keeps_everything():
    rng = random.Random(0)
    base, buf = low_scratch(BUF)
    n = 0
    for op in OPC:
        for rep in (0xF3, 0xF2):
            for a32 in (False, True):
                code = encode(op, 4, rep, a32)
                for _ in range(20):
                    regs, flags, init = make_case(rng, op, 4, rep, 0, base)
                    regs["rcx"] = (rng.getrandbits(32) << 32) if a32 else 0
                    difftest.check(code, regs, flags, flags_mask=ARITH | DF,
                                   scratch=[(base, buf, init)])
                    n += 1
    difftest.covered("rep string count 0", n)


# ---- emu only: segments, chunking, faults, self-modifying code ----

def fresh_machine():
    m = emu.Machine(ram_size=16 << 20, cpl=0)   # CPL 0 so HLT ends a run
    return m


CODE = 0x400000
DATA = 0x600000


def run_code(m, code: bytes, regs: dict, rflags=0x202, budget=1 << 40):
    m.write(CODE, code)
    v = m.vcpu
    for k, val in regs.items():
        setattr(v, k, val)
    v.rflags = rflags
    v.rip = CODE
    return v.run(budget)


def test_source_segment_override_fs_gs():
    """FS/GS apply to the source (rSI) only; rDI is always ES (base 0)."""
    m = fresh_machine()
    m.map(CODE, 0x1000)
    m.map(DATA, 0x4000)
    rng = random.Random(7)
    data = rng.randbytes(0x4000)
    n = 0
    for seg, attr in ((0x64, "fs_base"), (0x65, "gs_base")):
        for op in OPC:
            for rep in (None, 0xF3):
                for a32 in (False, True):
                    m.write(DATA, data)
                    v = m.vcpu
                    v.fs_base = 0
                    v.gs_base = 0
                    setattr(v, attr, DATA + 0x1000)
                    off = 0x10
                    rsi = off | ((0xABCD << 32) if a32 else 0)
                    rdi = DATA + 0x3000
                    if op == "cmps":     # equal data: REPE runs the whole count
                        m.write(rdi, data[0x1000 + off:0x1000 + off + 12])
                    if op == "scas":
                        m.write(rdi, (0x11223344).to_bytes(4, "little") * 3)
                    code = encode(op, 4, rep, a32, seg)
                    ex = run_code(m, code + b"\xf4", dict(rsi=rsi, rdi=rdi, rcx=3, rax=0x11223344), budget=1)
                    assert ex.name == "BUDGET", ex
                    cnt = 3 if rep else 1
                    src = DATA + 0x1000 + off
                    if op == "movs":
                        assert m.read(rdi, 4 * cnt) == data[src - DATA:src - DATA + 4 * cnt]
                    if op == "stos":
                        assert m.read(rdi, 4 * cnt) == (0x11223344).to_bytes(4, "little") * cnt
                    if op == "lods":
                        assert v.rax == int.from_bytes(data[src - DATA + 4 * (cnt - 1):src - DATA + 4 * cnt], "little")
                    if op in USES_SRC:
                        assert v.rsi == off + 4 * cnt
                    if op in USES_DST:
                        assert v.rdi == rdi + 4 * cnt
                    if op in ("cmps", "scas"):
                        assert v.rflags & ZF
                    n += 1
    m.vcpu.fs_base = 0
    m.vcpu.gs_base = 0
    difftest.covered("string fs/gs source override (emu)", n)


def test_rep_chunks_are_restartable():
    """A long REP runs in bounded chunks: after one step RIP is still at the
    instruction and RSI/RDI/RCX describe the elements done; the run ends with
    the same result as an uninterrupted copy."""
    m = fresh_machine()
    m.map(CODE, 0x1000)
    size = 0x60000
    m.map(DATA, 2 * size + 0x2000)
    rng = random.Random(3)
    data = rng.randbytes(size)
    m.write(DATA, data)
    for code, sz in ((b"\xf3\xa4", 1), (b"\xf3\x48\xa5", 8)):
        m.write(DATA + size, bytes(size))
        ex = run_code(m, code + b"\xf4", dict(rsi=DATA, rdi=DATA + size, rcx=size // sz), budget=1)
        v = m.vcpu
        assert ex.name == "BUDGET"
        assert v.rip == CODE
        done = size // sz - v.rcx
        assert 0 < done < size // sz
        assert v.rsi == DATA + done * sz and v.rdi == DATA + size + done * sz
        assert m.read(DATA + size, done * sz) == data[:done * sz]
        assert m.read(DATA + size + done * sz, 16) == bytes(16)
        ex = v.run(1 << 30)
        assert ex.name == "HLT"
        assert v.rcx == 0 and v.rsi == DATA + size and v.rdi == DATA + 2 * size
        assert m.read(DATA + size, size) == data
    # a long REPE CMPSB over equal data, and REPNE SCASB finding a byte late
    m.write(DATA + size, data + bytes([data[0] ^ 0xFF]))
    ex = run_code(m, b"\xf3\xa6\xf4", dict(rsi=DATA, rdi=DATA + size, rcx=size + 5))
    assert ex.name == "HLT"
    assert m.vcpu.rcx == 4 and m.vcpu.rflags & ZF == 0
    m.write(DATA, bytes([1 + (x % 255) for x in data]))
    m.write(DATA + size - 1, b"\x00")
    ex = run_code(m, b"\xf2\xae\xf4", dict(rdi=DATA, rcx=size + 5, rax=0))
    assert ex.name == "HLT"
    assert m.vcpu.rdi == DATA + size and m.vcpu.rcx == 5 and m.vcpu.rflags & ZF
    difftest.covered("rep string chunked restart (emu)", 4)


@pytest.mark.parametrize("op", ["movs_dst", "movs_src", "stos", "movs_df1", "cmps", "scas"])
def test_fault_midway_leaves_consistent_state(op):
    """#PF in the middle of a REP: RCX/RSI/RDI count the completed elements,
    RIP is at the instruction, memory up to the fault is written; after the
    page is mapped the instruction resumes and completes."""
    m = fresh_machine()
    m.map(CODE, 0x1000)
    m.map(DATA, 0x2000)          # DATA+0x2000.. is not mapped
    hole = DATA + 0x2000
    rng = random.Random(11)
    data = rng.randbytes(0x2000)
    m.write(DATA, data)
    sz = 4
    count = 0x100
    if op == "movs_dst":
        code, regs, df = b"\xf3\xa5", dict(rsi=DATA, rdi=hole - 0x80, rcx=count), 0
        before = 0x80 // sz
    elif op == "movs_src":
        code, regs, df = b"\xf3\xa5", dict(rsi=hole - 0x40, rdi=DATA, rcx=count), 0
        before = 0x40 // sz
    elif op == "stos":
        code, regs, df = b"\xf3\xab", dict(rdi=hole - 0x24, rcx=count, rax=0xdeadbeef), 0
        before = 0x24 // sz
    elif op == "movs_df1":
        # going down into the hole below DATA
        m2 = DATA - 0x1000
        code, regs, df = b"\xf3\xa5", dict(rsi=DATA + 0x1000, rdi=DATA + 0x3c, rcx=count), 1
        hole = m2 + 0xFFC
        before = 0x40 // sz
    elif op == "cmps":
        m.write(DATA + 0x1000, data[:0x1000])
        m.write(DATA + 0x1fc0, data[0xfc0:0x1000])
        code, regs, df = b"\xf3\xa7", dict(rsi=DATA + 0xfc0, rdi=DATA + 0x1fc0, rcx=count), 0
        before = 0x40 // sz
    else:
        m.write(DATA + 0x1fc0, b"\x00" * 0x40)
        code, regs, df = b"\xf2\xaf", dict(rdi=DATA + 0x1fc0, rcx=count, rax=0x12345678), 0
        before = 0x40 // sz
    start = dict(regs)
    ex = run_code(m, code + b"\xf4", regs, 0x202 | (DF if df else 0))
    v = m.vcpu
    assert ex.name == "EXCEPTION" and ex.vector == 14, ex
    assert ex.cr2 & ~0xFFF == hole & ~0xFFF
    assert v.rip == CODE
    assert v.rcx == count - before
    step = -sz if df else sz
    if "rsi" in start:
        assert v.rsi == start["rsi"] + before * step
    assert v.rdi == start["rdi"] + before * step
    if op == "movs_dst":
        assert m.read(hole - 0x80, 0x80) == data[:0x80]
    if op == "stos":
        assert m.read(hole - 0x24, 0x24) == (0xdeadbeef).to_bytes(4, "little") * 9
    if op == "movs_df1":
        assert m.read(DATA, 0x40) == data[0x1000 - 0x3c:0x1000 + 4]
    # map the missing page and resume: the instruction completes
    m.map(hole & ~0xFFF, 0x1000)
    ex = v.run(1 << 20)
    assert ex.name == "HLT"
    if op in ("cmps", "scas"):
        assert v.rcx < count - before       # went on past the fault
    else:
        assert v.rcx == 0
        assert v.rdi == start["rdi"] + count * step
    difftest.covered("rep string fault midway (emu) " + op, 1)


def test_rep_stos_over_translated_code():
    """REP STOSB writing over code that was already translated: the new
    bytes execute (self-modifying code goes through mem_write)."""
    m = fresh_machine()
    m.map(CODE, 0x2000)
    # rep stosb; inc rbx x 4; hlt
    code = b"\xf3\xaa" + b"\x48\xff\xc3" * 4 + b"\xf4"
    ex = run_code(m, code, dict(rcx=0, rbx=0))
    assert ex.name == "HLT" and m.vcpu.rbx == 4
    # now overwrite the four (translated) INCs with NOPs
    v = m.vcpu
    v.rcx, v.rbx, v.rdi, v.rax, v.rip = 12, 0, CODE + 2, 0x90, CODE
    ex = v.run(100)
    assert ex.name == "HLT" and m.vcpu.rbx == 0
    assert m.read(CODE + 2, 12) == b"\x90" * 12
    # and with REP MOVSQ from a data page (both pages already translated)
    m.write(CODE + 0x1000, b"\x48\xff\xc3" * 8 + b"\xf4")
    m.vcpu.rip = CODE + 0x1000
    m.vcpu.rbx = 0
    assert m.vcpu.run(100).name == "HLT" and m.vcpu.rbx == 8
    m.map(DATA, 0x1000)
    m.write(DATA, b"\x90" * 24)
    ex = run_code(m, b"\xf3\x48\xa5\xe9" + (0x1000 - 8).to_bytes(4, "little"),
                  dict(rcx=3, rsi=DATA, rdi=CODE + 0x1000, rbx=0))
    assert ex.name == "HLT" and m.vcpu.rbx == 0
    difftest.covered("rep string self-modifying code (emu)", 2)


def test_rep_inside_block_budget_accounting():
    """inc; rep movsb; inc; hlt: the budget stops exactly after the first INC,
    then after each chunk of the REP (each counts as one instruction, RIP
    staying on it), and the run ends with both INCs done once."""
    m = fresh_machine()
    m.map(CODE, 0x1000)
    m.map(DATA, 0x40000)
    v = m.vcpu
    n = 100000
    ex = run_code(m, b"\x48\xff\xc3\xf3\xa4\x48\xff\xc3\xf4", dict(rbx=0, rcx=n, rsi=DATA, rdi=DATA + 0x20000), budget=1)
    assert ex.name == "BUDGET" and v.rip == CODE + 3 and v.rbx == 1 and v.rcx == n
    start = v.counters["instructions"]
    chunks = 0
    while v.rip == CODE + 3:
        before = v.rcx
        ex = v.run(1)
        assert ex.name == "BUDGET"
        assert v.rcx < before
        chunks += 1
        assert v.rsi - DATA == n - v.rcx
    assert v.rcx == 0 and v.rip == CODE + 5 and v.rbx == 1 and chunks > 1
    assert v.counters["instructions"] - start == chunks
    ex = v.run(10)
    assert ex.name == "HLT" and v.rbx == 2
    difftest.covered("rep string budget accounting (emu)", 1)
