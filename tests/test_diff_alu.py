"""Differential tests (host CPU vs emu) for the base integer instructions:
ADD OR ADC SBB AND SUB XOR CMP (00-3D, 80/81/83), TEST (84 85 A8 A9 F6/F7 /0),
INC DEC NEG NOT, the MOV forms, MOVZX/MOVSX/MOVSXD, LEA (SIB, RIP-relative,
67 and 66 prefixes), XCHG, CMOVcc, SETcc and Jcc, plus two-instruction
sequences (flag producer, then a condition consumer) that exercise the lazy
flag evaluation.

Byte forms use AH..BH (no REX) and SPL..DIL/R8B.. (with REX); memory forms
use a scratch page. AF is masked after AND/OR/XOR/TEST (undefined)."""
import random

import pytest

import difftest
import native
from arith_helpers import (AF, ARITH, BITS, REGS, SIZES, imm_bytes, insn, mem_setup, pick_base,
                           rand_flags, rand_regs, run_form, scratch, size_pfx)

N = 200
ALU = ("ADD", "OR", "ADC", "SBB", "AND", "SUB", "XOR", "CMP")
CC = ("O", "NO", "B", "AE", "E", "NE", "BE", "A", "S", "NS", "P", "NP", "L", "GE", "LE", "G")
MASK64 = (1 << 64) - 1


def alu_mask(k):
    return ARITH & ~AF if k in (1, 4, 6) else ARITH


def operand(rng, bits):
    return difftest.random_value(rng, bits) & ((1 << bits) - 1)


def put_mem(scr, addr, val, sz):
    a0, buf, init = scr[0]
    b = bytearray(init)
    b[addr - a0:addr - a0 + sz] = (val & ((1 << (8 * sz)) - 1)).to_bytes(sz, "little")
    scr[0] = (a0, buf, bytes(b))


def make_modrm_form(rng, opcode, sz, mem, *, ext=None, imm_n=0, mask=ARITH, lockable=False,
                    byte_rm=None, extra_pfx=b""):
    """Generic ModRM instruction: reg operand random (or /ext), r/m register
    or scratch memory, optional immediate of imm_n bytes. Byte operands: with
    or without REX (AH..BH vs SPL..DIL)."""
    pfx, w = size_pfx(sz)
    byte = sz == 1 if byte_rm is None else byte_rm

    def make(i):
        regs = rand_regs(rng)
        rex = byte and rng.random() < 0.5
        hi = 16 if (rex or not byte) else 8
        reg = ext if ext is not None else rng.randrange(hi)
        imm = imm_bytes(operand(rng, 8 * imm_n), imm_n) if imm_n else b""
        kw = {"flags_mask": mask}
        p = extra_pfx + pfx
        if mem:
            base = pick_base(rng, avoid=(reg,) if ext is None else ())
            if hi == 8 and base >= 8:
                rex = True          # a REX byte is needed anyway; keep the encoding honest
            m, scr, addr = mem_setup(rng, regs, base)
            put_mem(scr, addr, operand(rng, 8 * max(sz, 1)), max(sz, 1))
            kw["scratch"] = scr
            if lockable and rng.random() < 0.3:
                p = b"\xf0" + p
            code = insn(opcode, reg, mem=m, w=w, rex=rex, pfx=p, imm=imm)
        else:
            rm = rng.randrange(hi)
            code = insn(opcode, reg, rm, w=w, rex=rex, pfx=p, imm=imm)
        return code, regs, rand_flags(rng), kw
    return make


@difftest.needs_native
@pytest.mark.parametrize("k", range(8), ids=ALU)
def test_alu_modrm_forms(k):
    rng = random.Random(100 + k)
    name = ALU[k]
    lock = k != 7
    for mem in (False, True):
        M = "m" if mem else "r"
        run_form("%s %s8, r8" % (name, M), N,
                 make_modrm_form(rng, bytes([8 * k]), 1, mem, mask=alu_mask(k), lockable=lock))
        run_form("%s r8, %s8" % (name, M), N,
                 make_modrm_form(rng, bytes([8 * k + 2]), 1, mem, mask=alu_mask(k)))
        run_form("%s %s8, imm8 (80)" % (name, M), N,
                 make_modrm_form(rng, b"\x80", 1, mem, ext=k, imm_n=1, mask=alu_mask(k), lockable=lock))
        for sz in (2, 4, 8):
            b = BITS[sz]
            run_form("%s %s%d, r%d" % (name, M, b, b), N,
                     make_modrm_form(rng, bytes([8 * k + 1]), sz, mem, mask=alu_mask(k), lockable=lock))
            run_form("%s r%d, %s%d" % (name, b, M, b), N,
                     make_modrm_form(rng, bytes([8 * k + 3]), sz, mem, mask=alu_mask(k)))
            run_form("%s %s%d, imm (81)" % (name, M, b), N,
                     make_modrm_form(rng, b"\x81", sz, mem, ext=k, imm_n=2 if sz == 2 else 4,
                                     mask=alu_mask(k), lockable=lock))
            run_form("%s %s%d, imm8 (83)" % (name, M, b), N,
                     make_modrm_form(rng, b"\x83", sz, mem, ext=k, imm_n=1, mask=alu_mask(k), lockable=lock))


def make_acc_imm(rng, opcode, sz, mask):
    pfx, w = size_pfx(sz)
    n = 1 if sz == 1 else (2 if sz == 2 else 4)

    def make(i):
        regs = rand_regs(rng)
        imm = imm_bytes(operand(rng, 8 * n), n)
        return insn(opcode, w=w, pfx=pfx, imm=imm, modrm=False), regs, rand_flags(rng), {"flags_mask": mask}
    return make


@difftest.needs_native
def test_alu_accumulator_imm():
    rng = random.Random(7)
    for k in range(8):
        run_form("%s AL, imm8" % ALU[k], N, make_acc_imm(rng, bytes([8 * k + 4]), 1, alu_mask(k)))
        for sz in (2, 4, 8):
            run_form("%s r%dA, imm" % (ALU[k], BITS[sz]), N,
                     make_acc_imm(rng, bytes([8 * k + 5]), sz, alu_mask(k)))
    run_form("TEST AL, imm8", N, make_acc_imm(rng, b"\xa8", 1, ARITH & ~AF))
    for sz in (2, 4, 8):
        run_form("TEST r%dA, imm" % BITS[sz], N, make_acc_imm(rng, b"\xa9", sz, ARITH & ~AF))


@difftest.needs_native
def test_test_forms():
    rng = random.Random(8)
    m = ARITH & ~AF
    for mem in (False, True):
        M = "m" if mem else "r"
        run_form("TEST %s8, r8" % M, N, make_modrm_form(rng, b"\x84", 1, mem, mask=m))
        run_form("TEST %s8, imm8" % M, N, make_modrm_form(rng, b"\xf6", 1, mem, ext=0, imm_n=1, mask=m))
        for sz in (2, 4, 8):
            run_form("TEST %s%d, r%d" % (M, BITS[sz], BITS[sz]), N, make_modrm_form(rng, b"\x85", sz, mem, mask=m))
            run_form("TEST %s%d, imm" % (M, BITS[sz]), N,
                     make_modrm_form(rng, b"\xf7", sz, mem, ext=0, imm_n=2 if sz == 2 else 4, mask=m))


@difftest.needs_native
@pytest.mark.parametrize("name,opc8,opc,ext", [("INC", 0xFE, 0xFF, 0), ("DEC", 0xFE, 0xFF, 1),
                                               ("NOT", 0xF6, 0xF7, 2), ("NEG", 0xF6, 0xF7, 3)],
                         ids=("INC", "DEC", "NOT", "NEG"))
def test_unary(name, opc8, opc, ext):
    rng = random.Random(200 + ext)
    for mem in (False, True):
        for sz in SIZES:
            run_form("%s %s%d" % (name, "m" if mem else "r", BITS[sz]), N,
                     make_modrm_form(rng, bytes([opc8 if sz == 1 else opc]), sz, mem, ext=ext, lockable=True))


# ---- MOV family ----

@difftest.needs_native
def test_mov_modrm_forms():
    rng = random.Random(300)
    for mem in (False, True):
        M = "m" if mem else "r"
        run_form("MOV %s8, r8" % M, N, make_modrm_form(rng, b"\x88", 1, mem))
        run_form("MOV r8, %s8" % M, N, make_modrm_form(rng, b"\x8a", 1, mem))
        run_form("MOV %s8, imm8" % M, N, make_modrm_form(rng, b"\xc6", 1, mem, ext=0, imm_n=1))
        for sz in (2, 4, 8):
            b = BITS[sz]
            run_form("MOV %s%d, r%d" % (M, b, b), N, make_modrm_form(rng, b"\x89", sz, mem))
            run_form("MOV r%d, %s%d" % (b, M, b), N, make_modrm_form(rng, b"\x8b", sz, mem))
            run_form("MOV %s%d, imm" % (M, b), N,
                     make_modrm_form(rng, b"\xc7", sz, mem, ext=0, imm_n=2 if sz == 2 else 4))


@difftest.needs_native
def test_mov_reg_imm():
    rng = random.Random(301)
    for sz in SIZES:
        pfx, w = size_pfx(sz)
        n = sz

        def make(i, sz=sz, pfx=pfx, w=w, n=n):
            regs = rand_regs(rng)
            rex = sz == 1 and rng.random() < 0.5
            r = rng.randrange(16 if (rex or sz > 1) else 8)
            opc = (0xB0 if sz == 1 else 0xB8) + (r & 7)
            code = insn(bytes([opc]), 0, r, w=w, rex=rex, pfx=pfx, modrm=False,
                        imm=imm_bytes(operand(rng, 8 * n), n))
            return code, regs, rand_flags(rng), {}
        run_form("MOV r%d, imm%d" % (BITS[sz], 8 * n), N, make)


@difftest.needs_native
def test_mov_moffs():
    rng = random.Random(302)
    for store in (False, True):
        for sz in SIZES:
            pfx, w = size_pfx(sz)

            def make(i, sz=sz, pfx=pfx, w=w, store=store):
                regs = rand_regs(rng)
                m, scr, addr = mem_setup(rng, regs, 3)
                opc = (0xA2 if store else 0xA0) + (0 if sz == 1 else 1)
                code = insn(bytes([opc]), w=w, pfx=pfx, modrm=False, imm=addr.to_bytes(8, "little"))
                return code, regs, rand_flags(rng), {"scratch": scr}
            run_form("MOV %s" % (("moffs%d, A" if store else "A, moffs%d") % BITS[sz]), N, make)


@difftest.needs_native
def test_movzx_movsx():
    rng = random.Random(303)
    forms = []
    for opc, nm, src in ((b"\x0f\xb6", "MOVZX", 1), (b"\x0f\xb7", "MOVZX", 2),
                         (b"\x0f\xbe", "MOVSX", 1), (b"\x0f\xbf", "MOVSX", 2)):
        for sz in (2, 4, 8):
            if src == 2 and sz == 2:
                continue
            forms.append((opc, "%s r%d, %%s%d" % (nm, BITS[sz], BITS[src]), sz, src))
    forms.append((b"\x63", "MOVSXD r64, %s32", 8, 4))
    forms.append((b"\x63", "MOVSXD r32, %s32", 4, 4))
    for opc, name, sz, src in forms:
        for mem in (False, True):
            run_form(name % ("m" if mem else "r"), N,
                     make_modrm_form(rng, opc, sz, mem, byte_rm=(src == 1)))


# ---- LEA ----

def encode_mem(rng, reg, *, riprel=False):
    """Random addressing form: returns (rex bits X/B/R, modrm+sib+disp bytes)."""
    r = (reg >> 3) & 1
    if riprel:
        return r << 2, bytes([((reg & 7) << 3) | 5]) + imm_bytes(rng.getrandbits(32), 4)
    use_sib = rng.random() < 0.6
    mod = rng.randrange(3)
    base = rng.randrange(16)
    x = b = 0
    out = bytearray()
    if use_sib:
        index = rng.randrange(16)
        scale = rng.randrange(4)
        x = index >> 3
        b = base >> 3
        out.append((mod << 6) | ((reg & 7) << 3) | 4)
        out.append((scale << 6) | ((index & 7) << 3) | (base & 7))
        if mod == 0 and base & 7 == 5:
            out += imm_bytes(rng.getrandbits(32), 4)
    else:
        if base & 7 == 4:
            base += 1
        if mod == 0 and base & 7 == 5:
            mod = 1
        b = base >> 3
        out.append((mod << 6) | ((reg & 7) << 3) | (base & 7))
    if mod == 1:
        out += imm_bytes(rng.getrandbits(8), 1)
    elif mod == 2:
        out += imm_bytes(rng.getrandbits(32), 4)
    return (r << 2) | (x << 1) | b, bytes(out)


@difftest.needs_native
def test_lea():
    rng = random.Random(400)
    for sz in (2, 4, 8):
        for a32 in (False, True):
            for riprel in (False, True):
                def make(i, sz=sz, a32=a32, riprel=riprel):
                    regs = rand_regs(rng)
                    if rng.random() < 0.3:      # small values: visible carries into bit 32
                        for n in REGS:
                            if n != "rsp":
                                regs[n] = rng.choice([rng.getrandbits(33), (1 << 32) - rng.randrange(64)])
                    reg = rng.randrange(16)
                    rexbits, tail = encode_mem(rng, reg, riprel=riprel)
                    rex = rexbits | (8 if sz == 8 else 0)
                    code = (b"\x67" if a32 else b"") + (b"\x66" if sz == 2 else b"") + \
                        (bytes([0x40 | rex]) if rex else b"") + b"\x8d" + tail
                    return code, regs, rand_flags(rng), {}
                run_form("LEA r%d, m%s%s" % (BITS[sz], " (67)" if a32 else "", " RIP-rel" if riprel else ""),
                         N, make)


@difftest.needs_native
def test_mov_sib_addressing():
    """Loads and stores through base + index * scale + disp (SIB, disp8/disp32)."""
    rng = random.Random(401)
    addr0, buf = scratch()
    for store in (False, True):
        def make(i, store=store):
            regs = rand_regs(rng)
            reg = rng.randrange(16)
            base = rng.choice([k for k in range(16) if k != 4 and k != reg])
            index = rng.choice([k for k in range(16) if k not in (4, base, reg)])
            scale = rng.randrange(4)
            disp = rng.choice([rng.randrange(-128, 128), rng.randrange(-1000, 1000)])
            idx_val = rng.randrange(-64, 64)
            target = addr0 + 1024 + rng.randrange(0, 1024)
            regs[REGS[index]] = idx_val & MASK64
            regs[REGS[base]] = target - disp - (idx_val << scale)
            mod = 1 if -128 <= disp < 128 else 2
            rex = 0x48 | ((reg >> 3) << 2) | ((index >> 3) << 1) | (base >> 3)
            code = bytes([rex, 0x89 if store else 0x8B, (mod << 6) | ((reg & 7) << 3) | 4,
                          (scale << 6) | ((index & 7) << 3) | (base & 7)])
            code += imm_bytes(disp, 1 if mod == 1 else 4)
            init = rng.randbytes(4096)
            return code, regs, rand_flags(rng), {"scratch": [(addr0, buf, init)]}
        run_form("MOV %s SIB" % ("store" if store else "load"), N, make)


# ---- XCHG ----

@difftest.needs_native
def test_xchg():
    rng = random.Random(500)
    for mem in (False, True):
        run_form("XCHG %s8, r8" % ("m" if mem else "r"), N, make_modrm_form(rng, b"\x86", 1, mem))
        for sz in (2, 4, 8):
            run_form("XCHG %s%d, r%d" % ("m" if mem else "r", BITS[sz], BITS[sz]), N,
                     make_modrm_form(rng, b"\x87", sz, mem))
    for sz in (2, 4, 8):
        pfx, w = size_pfx(sz)

        def make(i, pfx=pfx, w=w):
            regs = rand_regs(rng)
            r = rng.randrange(16)     # 90 without REX.B is NOP (no zero-extension either)
            code = insn(bytes([0x90 + (r & 7)]), 0, r, w=w, pfx=pfx, modrm=False)
            return code, regs, rand_flags(rng), {}
        run_form("XCHG r%dA, r%d (90+r)" % (BITS[sz], BITS[sz]), N, make)


# ---- conditions ----

@difftest.needs_native
@pytest.mark.parametrize("cc", range(16), ids=CC)
def test_cmov_setcc_jcc(cc):
    rng = random.Random(600 + cc)
    for mem in (False, True):
        for sz in (2, 4, 8):
            run_form("CMOV%s r%d, %s%d" % (CC[cc], BITS[sz], "m" if mem else "r", BITS[sz]), N,
                     make_modrm_form(rng, bytes([0x0F, 0x40 + cc]), sz, mem, byte_rm=False))
        run_form("SET%s %s8" % (CC[cc], "m" if mem else "r"), N,
                 make_modrm_form(rng, bytes([0x0F, 0x90 + cc]), 1, mem, ext=0))
    for rel32 in (False, True):
        def make(i, rel32=rel32):
            regs = rand_regs(rng)
            if rel32:
                disp = rng.choice([0x100, 0x12345, -0x1000])
                code = bytes([0x0F, 0x80 + cc]) + imm_bytes(disp, 4)
            else:
                disp = rng.choice([2, 0x10, 0x7F, -0x40, -0x80])
                code = bytes([0x70 + cc]) + imm_bytes(disp, 1)
            return code, regs, rand_flags(rng), {"taken_disp": disp}
        run_form("J%s rel%d" % (CC[cc], 32 if rel32 else 8), N, make)


def check_seq(code, regs, rflags, n, *, taken_disp=None, flags_mask=ARITH):
    """Like difftest.check for n register-only instructions in a row (emu runs
    them as one block, so lazy flags flow from one to the next)."""
    regs = dict(regs)
    stack_addr, _ = native.default_stack()
    regs.setdefault("rsp", stack_addr + 32768)
    res = native.run(code, regs, rflags, taken_disp=taken_disp)
    side = difftest.emu_side()
    ex = side.run(code, res.code_addr, regs, rflags, [], budget=n, stop_at=res.rip)
    v = side.m.vcpu
    what = "%s regs=%s flags=%#x" % (code.hex(), {k: hex(x) for k, x in regs.items()}, rflags)
    assert ex.name == "BUDGET", (ex, what)
    for i, name in enumerate(REGS):
        assert v.get_gpr(i) == res.regs[name], "%s: emu %#x native %#x for %s" % (
            name, v.get_gpr(i), res.regs[name], what)
    assert v.rip == res.rip, "rip: emu %#x native %#x for %s" % (v.rip, res.rip, what)
    assert v.rflags & flags_mask == res.rflags & flags_mask, "flags: emu %#x native %#x for %s" % (
        v.rflags & flags_mask, res.rflags & flags_mask, what)


# flag producers: (name, encoder(sz, a_reg, b_reg) -> bytes, sizes, flags defined)
def _rr(opc8, opc):
    def enc(sz, a, b):
        pfx, w = size_pfx(sz)
        return insn(bytes([opc8 if sz == 1 else opc]), b, a, w=w, pfx=pfx)
    return enc


def _grp(opc8, opc, ext, imm_n=0):
    def enc(sz, a, b):
        pfx, w = size_pfx(sz)
        return insn(bytes([opc8 if sz == 1 else opc]), ext, a, w=w, pfx=pfx, imm=b"\x01" * imm_n)
    return enc


PRODUCERS = [
    ("CMP", _rr(0x38, 0x39), ARITH), ("SUB", _rr(0x28, 0x29), ARITH), ("ADD", _rr(0x00, 0x01), ARITH),
    ("ADC", _rr(0x10, 0x11), ARITH), ("SBB", _rr(0x18, 0x19), ARITH), ("AND", _rr(0x20, 0x21), ARITH & ~AF),
    ("XOR", _rr(0x30, 0x31), ARITH & ~AF), ("TEST", _rr(0x84, 0x85), ARITH & ~AF),
    ("INC", _grp(0xFE, 0xFF, 0), ARITH), ("DEC", _grp(0xFE, 0xFF, 1), ARITH), ("NEG", _grp(0xF6, 0xF7, 3), ARITH),
    ("SHL1", _grp(0xD0, 0xD1, 4), ARITH & ~AF), ("SHR1", _grp(0xD0, 0xD1, 5), ARITH & ~AF),
    ("SAR1", _grp(0xD0, 0xD1, 7), ARITH & ~AF),
]


@difftest.needs_native
@pytest.mark.parametrize("cc", range(16), ids=CC)
def test_lazy_flags_then_condition(cc):
    """Producer then SETcc / CMOVcc / Jcc: the consumer reads lazily kept flags
    (the CMP/SUB fast path of eval_cond included). Operands are often equal,
    off by one, or sign boundaries so every condition flips."""
    rng = random.Random(700 + cc)
    n = 0
    for pname, enc, mask in PRODUCERS:
        cases = 200 if pname in ("CMP", "SUB") else 40
        for i in range(cases):
            sz = SIZES[i % 4]
            bits = BITS[sz]
            regs = rand_regs(rng)
            a = operand(rng, bits)
            b = rng.choice([a, a + 1, a - 1, operand(rng, bits), 1 << (bits - 1), (1 << (bits - 1)) - 1, 0])
            b &= (1 << bits) - 1
            regs["rax"] = (regs["rax"] & ~((1 << bits) - 1)) | a
            regs["rbx"] = (regs["rbx"] & ~((1 << bits) - 1)) | b
            prod = enc(sz, 0, 3)
            kind = i % 3
            if kind == 0:
                cons = bytes([0x0F, 0x90 + cc, 0xC1])              # setcc cl
                td = None
            elif kind == 1:
                cons = bytes([0x48, 0x0F, 0x40 + cc, 0xD6])        # cmovcc rdx, rsi
                td = None
            else:
                cons = bytes([0x70 + cc, 0x10])                    # jcc +16
                td = 0x10
            check_seq(prod + cons, regs, rand_flags(rng), 2, taken_disp=td, flags_mask=mask)
            n += 1
    difftest.covered("lazy flags -> %s" % CC[cc], n)


# consumers that read the lazily kept flags and change only some of them:
# (name, bytes, flags the consumer defines, flags it leaves alone)
CF_, ZF_, OF_ = 0x1, 0x40, 0x800
CONSUMERS = [
    ("ADC rdx, rsi", bytes.fromhex("4811f2"), ARITH, 0),
    ("SBB edx, esi", bytes.fromhex("19f2"), ARITH, 0),
    ("RCL rdx, 1", bytes.fromhex("48d1d2"), CF_ | OF_, ARITH & ~(CF_ | OF_)),
    ("RCR dl, 1", bytes.fromhex("d0da"), CF_ | OF_, ARITH & ~(CF_ | OF_)),
    ("ROL esi, 1", bytes.fromhex("d1c6"), CF_ | OF_, ARITH & ~(CF_ | OF_)),
    ("RCL dx, CL=5", bytes.fromhex("66d3d2"), CF_, ARITH & ~(CF_ | OF_)),
    ("BT rsi, rdx", bytes.fromhex("480fa3d6"), CF_, ZF_),
    ("BTS esi, 7", bytes.fromhex("0fbaee07"), CF_, ZF_),
    ("ADCX rdx, rsi", bytes.fromhex("66480f38f6d6"), CF_, ARITH & ~CF_),
    ("ADOX edx, esi", bytes.fromhex("f30f38f6d6"), OF_, ARITH & ~OF_),
    ("INC rdx", bytes.fromhex("48ffc2"), ARITH & ~CF_, CF_),
    ("DEC si", bytes.fromhex("66ffce"), ARITH & ~CF_, CF_),
    ("SHL rdx, CL=0", bytes.fromhex("48d3e2"), 0, ARITH),
    ("MUL rsi", bytes.fromhex("48f7e6"), CF_ | OF_, 0),
    ("SETB dl", bytes.fromhex("0f92c2"), 0, ARITH),
    ("CMOVBE rdx, rsi", bytes.fromhex("480f46d6"), 0, ARITH),
]


@difftest.needs_native
@pytest.mark.parametrize("cname,cons,cdef,ckeep", CONSUMERS, ids=[c[0] for c in CONSUMERS])
def test_lazy_flags_then_partial_consumer(cname, cons, cdef, ckeep):
    """Producer (any flag-setting op, any size) then an instruction that
    reads some flags and keeps others."""
    rng = random.Random(hash(cname) & 0xFFFF)
    n = 0
    for i in range(len(PRODUCERS) * 15):
        pname, enc, pmask = PRODUCERS[i % len(PRODUCERS)]
        sz = SIZES[(i // len(PRODUCERS)) % 4]
        bits = BITS[sz]
        regs = rand_regs(rng)
        a = operand(rng, bits)
        b = rng.choice([a, a + 1, a - 1, operand(rng, bits), 1 << (bits - 1), 0]) & ((1 << bits) - 1)
        regs["rax"] = (regs["rax"] & ~((1 << bits) - 1)) | a
        regs["rbx"] = (regs["rbx"] & ~((1 << bits) - 1)) | b
        regs["rcx"] = 0 if "CL=0" in cname else 5
        check_seq(enc(sz, 0, 3) + cons, regs, rand_flags(rng), 2,
                  flags_mask=cdef | (ckeep & pmask))
        n += 1
    difftest.covered("lazy flags -> %s" % cname, n)


LOCK_UD = ["f001c3", "f03903", "f08503", "f08803", "f0f6c3" "01", "f0ffc0", "f08d03", "f08b03"]


@pytest.mark.parametrize("code", LOCK_UD)
def test_lock_on_illegal_forms_is_ud(code):
    ex, v = difftest.emu_only(bytes.fromhex(code), {"rbx": 0x10000000})
    assert ex.name == "EXCEPTION" and ex.vector == 6, (code, ex)


@difftest.needs_native
def test_operand_size_prefix_with_rex_w():
    """66 together with REX.W: REX.W wins."""
    rng = random.Random(900)
    for opc, name in ((b"\x01", "ADD"), (b"\x8b", "MOV"), (b"\x29", "SUB"), (b"\x0f\xaf", "IMUL")):
        def make(i, opc=opc):
            regs = rand_regs(rng)
            code = insn(opc, rng.randrange(16), rng.randrange(16), w=True, pfx=b"\x66")
            return code, regs, rand_flags(rng), {"flags_mask": ARITH if name != "IMUL" else 0x801}
        run_form("66 REX.W %s" % name, N, make)
