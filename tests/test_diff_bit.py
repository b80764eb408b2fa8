"""Differential tests (host CPU vs emu) for CBW/CWDE/CDQE, CWD/CDQ/CQO,
BSWAP, BT/BTS/BTR/BTC, BSF/BSR, POPCNT, LZCNT, TZCNT, ADCX/ADOX, MOVBE and
CRC32, and decode checks (#UD) for their illegal forms.

Flags are masked only where the SDM leaves them undefined: BT* define CF
(ZF unchanged), BSF/BSR define ZF, LZCNT/TZCNT define CF and ZF."""
import random

import pytest

import difftest
from arith_helpers import (ARITH, BITS, CF, OF, REGS, ZF, imm_bytes, insn, mem_setup, pick_base,
                           rand_flags, rand_regs, run_form, size_pfx)

N = 200


def value(rng, bits, i):
    m = (1 << bits) - 1
    edges = difftest.edge_values(bits) + [1 << (bits - 1), 1 << (bits // 2), 0]
    if i < len(edges):
        return edges[i] & m
    k = rng.random()
    if k < 0.3:                      # sparse: one or two bits
        v = 1 << rng.randrange(bits)
        if rng.random() < 0.5:
            v |= 1 << rng.randrange(bits)
        return v
    if k < 0.4:
        return 0
    return difftest.random_value(rng, bits) & m


def put(regs, idx, sz, val):
    m = (1 << (8 * sz)) - 1
    regs[REGS[idx]] = (regs[REGS[idx]] & ~m) | (val & m)


def put_mem(scratch, addr, val, sz):
    a0, buf, init = scratch[0]
    b = bytearray(init)
    b[addr - a0:addr - a0 + sz] = (val & ((1 << (8 * sz)) - 1)).to_bytes(sz, "little")
    scratch[0] = (a0, buf, bytes(b))


def gen_rm(rng, opcode, sz, mem, mask, *, pfx=b"", w=None, src_size=None, imm=b"", reg_val=None,
           rex=False):
    """A generic reg, r/m case maker: reg gets reg_val(i) (or random), the
    r/m source gets value(i)."""
    spfx, sw = size_pfx(sz)
    w = sw if w is None else w
    ssz = src_size or sz

    def make(i):
        regs = rand_regs(rng)
        reg = rng.choice([k for k in range(16) if k != 4])
        if reg_val is not None:
            put(regs, reg, sz, reg_val(i))
        v = value(rng, BITS[ssz], i)
        kw = {"flags_mask": mask}
        if mem:
            base = pick_base(rng, avoid=(reg,))
            m, scratch, addr = mem_setup(rng, regs, base)
            put_mem(scratch, addr, v, ssz)
            kw["scratch"] = scratch
            code = insn(opcode, reg, mem=m, w=w, pfx=pfx + spfx, imm=imm, rex=rex)
        else:
            rm = rng.choice([k for k in range(16) if k != 4])
            if rm != reg:
                put(regs, rm, ssz, v)
            code = insn(opcode, reg, rm, w=w, pfx=pfx + spfx, imm=imm, rex=rex)
        return code, regs, rand_flags(rng), kw
    return make


@difftest.needs_native
def test_cbw_cwd():
    rng = random.Random(1)
    for opc, names in ((0x98, ("CBW", "CWDE", "CDQE")), (0x99, ("CWD", "CDQ", "CQO"))):
        for sz, name in zip((2, 4, 8), names):
            pfx, w = size_pfx(sz)
            code = insn(bytes([opc]), w=w, pfx=pfx, modrm=False)

            def make(i, code=code):
                regs = rand_regs(rng)
                regs["rax"] = value(rng, 64, i)
                if rng.random() < 0.5:
                    regs["rax"] ^= 1 << rng.choice((7, 15, 31, 63))
                return code, regs, rand_flags(rng), {"flags_mask": ARITH}
            run_form(name, N, make)


@difftest.needs_native
def test_bswap():
    rng = random.Random(2)
    for sz in (4, 8):
        def make(i, sz=sz):
            regs = rand_regs(rng)
            r = rng.choice([k for k in range(16) if k != 4])
            regs[REGS[r]] = value(rng, 64, i)
            code = insn(bytes([0x0F, 0xC8 + (r & 7)]), 0, r, w=(sz == 8), modrm=False)
            return code, regs, rand_flags(rng), {"flags_mask": ARITH}
        run_form("BSWAP r%d" % BITS[sz], N, make)


BT_NAMES = ("BT", "BTS", "BTR", "BTC")
BT_OPC = (0xA3, 0xAB, 0xB3, 0xBB)


@difftest.needs_native
@pytest.mark.parametrize("kind", range(4), ids=BT_NAMES)
def test_bt_register_offset(kind):
    rng = random.Random(30 + kind)
    for sz in (2, 4, 8):
        pfx, w = size_pfx(sz)
        bits = BITS[sz]
        for mem in (False, True):
            for lock in ((False, True) if mem and kind else (False,)):
                def make(i, mem=mem, lock=lock, sz=sz, pfx=pfx, w=w, bits=bits):
                    regs = rand_regs(rng)
                    reg = rng.choice([k for k in range(16) if k != 4])
                    kw = {"flags_mask": CF | ZF}
                    if mem:
                        base = pick_base(rng, avoid=(reg,))
                        m, scratch, addr = mem_setup(rng, regs, base)
                        # signed offsets reaching well outside the operand, both ways
                        off = rng.choice([rng.randrange(-bits, 2 * bits), rng.randrange(-6000, 6000),
                                          rng.randrange(0, bits), -1, -bits, bits])
                        junk = rng.getrandbits(64) << (8 * sz) if sz < 8 else 0
                        regs[REGS[reg]] = ((off & ((1 << (8 * sz)) - 1)) | junk) & ((1 << 64) - 1)
                        kw["scratch"] = scratch
                        code = insn(bytes([0x0F, BT_OPC[kind]]), reg, mem=m, w=w,
                                    pfx=(b"\xf0" if lock else b"") + pfx)
                    else:
                        rm = rng.choice([k for k in range(16) if k != 4])
                        regs[REGS[rm]] = value(rng, 64, i)
                        code = insn(bytes([0x0F, BT_OPC[kind]]), reg, rm, w=w, pfx=pfx)
                    return code, regs, rand_flags(rng), kw
                run_form("%s%s %s%d, r%d" % ("LOCK " if lock else "", BT_NAMES[kind],
                                             "m" if mem else "r", bits, bits), N, make)


@difftest.needs_native
@pytest.mark.parametrize("kind", range(4), ids=BT_NAMES)
def test_bt_immediate(kind):
    rng = random.Random(40 + kind)
    for sz in (2, 4, 8):
        pfx, w = size_pfx(sz)
        bits = BITS[sz]
        for mem in (False, True):
            for lock in ((False, True) if mem and kind else (False,)):
                def make(i, mem=mem, lock=lock, pfx=pfx, w=w, bits=bits):
                    regs = rand_regs(rng)
                    imm = bytes([i & 0xFF if i < 70 else rng.getrandbits(8)])   # masked by the operand size
                    kw = {"flags_mask": CF | ZF}
                    if mem:
                        base = pick_base(rng)
                        m, scratch, addr = mem_setup(rng, regs, base)
                        kw["scratch"] = scratch
                        code = insn(b"\x0f\xba", 4 + kind, mem=m, w=w,
                                    pfx=(b"\xf0" if lock else b"") + pfx, imm=imm)
                    else:
                        rm = rng.choice([k for k in range(16) if k != 4])
                        code = insn(b"\x0f\xba", 4 + kind, rm, w=w, pfx=pfx, imm=imm)
                    return code, regs, rand_flags(rng), kw
                run_form("%s%s %s%d, imm8" % ("LOCK " if lock else "", BT_NAMES[kind],
                                              "m" if mem else "r", bits), N, make)


SCANS = [
    # name, prefix, opcode, flags defined
    ("BSF", b"", b"\x0f\xbc", ZF),
    ("BSR", b"", b"\x0f\xbd", ZF),
    ("TZCNT", b"\xf3", b"\x0f\xbc", CF | ZF),
    ("LZCNT", b"\xf3", b"\x0f\xbd", CF | ZF),
    ("POPCNT", b"\xf3", b"\x0f\xb8", ARITH),
]


@difftest.needs_native
@pytest.mark.parametrize("name,pfx,opc,mask", SCANS, ids=[s[0] for s in SCANS])
def test_bit_scan_count(name, pfx, opc, mask):
    rng = random.Random(hash(name) & 0xFFFF)
    for sz in (2, 4, 8):
        for mem in (False, True):
            # the destination keeps a random value: BSF/BSR leave it unchanged for a zero source
            run_form("%s r%d, %s%d" % (name, BITS[sz], "m" if mem else "r", BITS[sz]), N,
                     gen_rm(rng, opc, sz, mem, mask, pfx=pfx))


@difftest.needs_native
def test_bsf_bsr_other_prefixes():
    """F2 (no meaning) keeps BSF/BSR; 66 F3 is the 16-bit TZCNT/LZCNT."""
    rng = random.Random(5)
    for name, pfx, opc, mask in (("F2 BSF", b"\xf2", b"\x0f\xbc", ZF), ("F2 BSR", b"\xf2", b"\x0f\xbd", ZF),
                                 ("66 F3 TZCNT", b"\x66\xf3", b"\x0f\xbc", CF | ZF),
                                 ("66 F3 LZCNT", b"\x66\xf3", b"\x0f\xbd", CF | ZF),
                                 ("66 F3 POPCNT", b"\x66\xf3", b"\x0f\xb8", ARITH)):
        run_form(name, N, gen_rm(rng, opc, 4, False, mask, pfx=pfx))


@difftest.needs_native
@pytest.mark.parametrize("name,pfx", (("ADCX", b"\x66"), ("ADOX", b"\xf3")))
def test_adx(name, pfx):
    rng = random.Random(7 + len(name) + pfx[0])
    for sz in (4, 8):
        for mem in (False, True):
            def make(i, sz=sz, mem=mem):
                regs = rand_regs(rng)
                reg = rng.choice([k for k in range(16) if k != 4])
                regs[REGS[reg]] = value(rng, 64, i)
                v = value(rng, 64, (i * 3) % 40)
                kw = {"flags_mask": ARITH}
                if mem:
                    base = pick_base(rng, avoid=(reg,))
                    m, scratch, addr = mem_setup(rng, regs, base)
                    put_mem(scratch, addr, v, sz)
                    kw["scratch"] = scratch
                    code = insn(b"\x0f\x38\xf6", reg, mem=m, w=(sz == 8), pfx=pfx)
                else:
                    rm = rng.choice([k for k in range(16) if k != 4])
                    if rm != reg:
                        regs[REGS[rm]] = v
                    code = insn(b"\x0f\x38\xf6", reg, rm, w=(sz == 8), pfx=pfx)
                return code, regs, rand_flags(rng), kw
            run_form("%s r%d, %s%d" % (name, BITS[sz], "m" if mem else "r", BITS[sz]), N, make)


@difftest.needs_native
def test_movbe():
    rng = random.Random(8)
    for sz in (2, 4, 8):
        pfx, w = size_pfx(sz)
        for store in (False, True):
            def make(i, sz=sz, pfx=pfx, w=w, store=store):
                regs = rand_regs(rng)
                reg = rng.choice([k for k in range(16) if k != 4])
                regs[REGS[reg]] = value(rng, 64, i)
                base = pick_base(rng, avoid=(reg,))
                m, scratch, addr = mem_setup(rng, regs, base)
                code = insn(b"\x0f\x38" + (b"\xf1" if store else b"\xf0"), reg, mem=m, w=w, pfx=pfx)
                return code, regs, rand_flags(rng), {"flags_mask": ARITH, "scratch": scratch}
            run_form("MOVBE %s" % (("m%d, r%d" if store else "r%d, m%d") % (BITS[sz], BITS[sz])), N, make)


@difftest.needs_native
def test_crc32():
    rng = random.Random(9)
    forms = [  # name, opcode, operand size (source for F1), REX.W, byte source
        ("CRC32 r32, r/m8", b"\x0f\x38\xf0", 4, False),
        ("CRC32 r64, r/m8", b"\x0f\x38\xf0", 8, True),
        ("CRC32 r32, r/m16", b"\x0f\x38\xf1", 2, False),
        ("CRC32 r32, r/m32", b"\x0f\x38\xf1", 4, False),
        ("CRC32 r64, r/m64", b"\x0f\x38\xf1", 8, True),
    ]
    for name, opc, sz, w in forms:
        byte_src = opc[-1] == 0xF0
        for mem in (False, True):
            def make(i, opc=opc, sz=sz, w=w, mem=mem, byte_src=byte_src):
                regs = rand_regs(rng)
                reg = rng.choice([k for k in range(16) if k != 4])
                pfx = b"\x66\xf2" if sz == 2 else b"\xf2"
                kw = {"flags_mask": ARITH}
                if mem:
                    base = pick_base(rng, avoid=(reg,))
                    m, scratch, addr = mem_setup(rng, regs, base)
                    kw["scratch"] = scratch
                    code = insn(opc, reg, mem=m, w=w, pfx=pfx)
                else:
                    # byte sources: AH..BH without REX, SPL..DIL with it
                    rex = byte_src and rng.random() < 0.5
                    rm = rng.randrange(16) if byte_src and not rex else rng.choice(
                        [k for k in range(16) if k != 4])
                    code = insn(opc, reg, rm, w=w, pfx=pfx, rex=rex)
                return code, regs, rand_flags(rng), kw
            run_form(name.replace("r/m", "m" if mem else "r"), N, make)


# ---- decode checks (emu only) ----

UD_CASES = [
    ("MOVBE register form", "0f38f0c1"),
    ("MOVBE store register form", "0f38f1c1"),
    ("LOCK BT m, r", "f00fa303"),
    ("LOCK BT m, imm8", "f00fba2305"),
    ("LOCK BTS r, r", "f00fabc3"),
    ("LOCK BTC r, imm8", "f00fbafb05"),
    ("LOCK BSF", "f00fbc03"),
    ("ADCX without 66", "0f38f6c1"),
    ("LOCK IMUL", "f00faf03"),
    ("LOCK SHL m", "f0d123"),
    ("0F BA /0", "0fbac305"),
]


@pytest.mark.parametrize("name,code", UD_CASES, ids=[c[0] for c in UD_CASES])
def test_invalid_forms_ud(name, code):
    ex, v = difftest.emu_only(bytes.fromhex(code), {"rbx": 0x10000000})
    assert ex.name == "EXCEPTION" and ex.vector == 6, (name, ex)


def test_lock_bts_memory_is_legal():
    """LOCK BTS/BTR/BTC with a memory destination executes (code page itself as data)."""
    for code in ("f00fab03", "f00fb303", "f00fbb03", "f00fba2b05", "f00fba3305", "f00fba3b05"):
        ex, v = difftest.emu_only(bytes.fromhex(code), {"rbx": 0x10000100, "rax": 3})
        assert ex.name == "BUDGET", (code, ex)
