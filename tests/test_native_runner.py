"""Self-tests for the native oracle (tests/native.py).

Every check compares against results known independently of the host CPU
(Python arithmetic, values we planted in memory, architectural definitions).
"""

import random
import struct

import pytest

try:
    from tests import native
except ImportError:  # tests/ on sys.path directly
    import native

pytestmark = pytest.mark.skipif(not native.available(),
                                reason="native x86-64 execution unavailable")

M64 = (1 << 64) - 1
CF, PF, AF, ZF, SF, DF, OF = (native.CF, native.PF, native.AF, native.ZF,
                              native.SF, native.DF, native.OF)
ARITH = CF | PF | AF | ZF | SF | OF
REGS = native.REG_NAMES
NON_RSP = [r for r in REGS if r != "rsp"]


def parity(x):
    return PF if bin(x & 0xFF).count("1") % 2 == 0 else 0


def add_flags(a, b, carry=0):
    r = (a + b + carry) & M64
    f = 0
    if a + b + carry > M64:
        f |= CF
    f |= parity(r)
    if ((a ^ b ^ r) & 0x10):
        f |= AF
    if r == 0:
        f |= ZF
    if r >> 63:
        f |= SF
    if (~(a ^ b) & (a ^ r)) >> 63 & 1:
        f |= OF
    return r, f


def sub_flags(a, b, borrow=0):
    r = (a - b - borrow) & M64
    f = 0
    if a < b + borrow:
        f |= CF
    f |= parity(r)
    if ((a ^ b ^ r) & 0x10):
        f |= AF
    if r == 0:
        f |= ZF
    if r >> 63:
        f |= SF
    if ((a ^ b) & (a ^ r)) >> 63 & 1:
        f |= OF
    return r, f


INTERESTING = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFFFFFFFFFFFFFF,
               0x8000000000000000, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFE,
               0x0F, 0x10, 0xFFFFFFFF, 0x100000000]


def values(rng, n):
    out = [(a, b) for a in INTERESTING for b in INTERESTING]
    out += [(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(n)]
    return out


def random_regs(rng, stack_addr):
    regs = {r: rng.getrandbits(64) for r in NON_RSP}
    regs["rsp"] = stack_addr
    return regs


@pytest.fixture
def stack():
    addr, buf = native.scratch(8192)
    return addr, buf, addr + 4096


# ---------------------------------------------------------------------------
# Plumbing: registers and flags in/out
# ---------------------------------------------------------------------------
def test_nop_preserves_all_registers(stack):
    rng = random.Random(1)
    for _ in range(50):
        regs = random_regs(rng, stack[2])
        out, fl, ex = native.run(b"\x90", regs, 0)
        assert out == regs
        assert ex == "fall"


def test_nop_preserves_flags():
    for bits in range(1 << 7):
        fin = 0
        for i, f in enumerate((CF, PF, AF, ZF, SF, DF, OF)):
            if bits >> i & 1:
                fin |= f
        _, fl, _ = native.run(b"\x90", {}, fin)
        assert fl & native.FLAGS_SETTABLE == fin
        assert fl & 0x202 == 0x202          # bit 1 and IF
        assert fl & 0x100 == 0              # TF never set


@pytest.mark.parametrize("idx", range(16))
def test_each_register_input_mapping(idx, stack):
    """mov rax, <reg>: rax must receive exactly the value given for <reg>."""
    rng = random.Random(idx)
    regs = random_regs(rng, stack[2])
    name = REGS[idx]
    rex = 0x48 | (0x04 if idx >= 8 else 0)          # REX.W + REX.R
    code = bytes((rex, 0x89, 0xC0 | (idx & 7) << 3))  # mov rax, r
    out, _, _ = native.run(code, regs, 0)
    assert out["rax"] == regs[name]
    for r in REGS:
        if r != "rax":
            assert out[r] == regs[r]


@pytest.mark.parametrize("idx", range(16))
def test_each_register_output_mapping(idx, stack):
    """movabs <reg>, imm64: only <reg> changes, to the immediate."""
    rng = random.Random(100 + idx)
    regs = random_regs(rng, stack[2])
    imm = rng.getrandbits(64)
    rex = 0x48 | (0x01 if idx >= 8 else 0)          # REX.W + REX.B
    code = bytes((rex, 0xB8 + (idx & 7))) + struct.pack("<Q", imm)
    out, _, _ = native.run(code, regs, 0)
    for r in REGS:
        assert out[r] == (imm if r == REGS[idx] else regs[r]), r


def test_lahf_reads_input_flags():
    rng = random.Random(2)
    for _ in range(64):
        fin = rng.getrandbits(12) & native.FLAGS_SETTABLE
        out, _, _ = native.run(b"\x9f", {"rax": 0}, fin)   # lahf
        # AH = SF ZF 0 AF 0 PF 1 CF
        assert (out["rax"] >> 8) & 0xFF == (fin & 0xD5) | 0x02


def test_sahf_writes_output_flags():
    for ah in range(256):
        out, fl, _ = native.run(b"\x9e", {"rax": ah << 8}, OF | DF)  # sahf
        assert fl & (CF | PF | AF | ZF | SF) == ah & 0xD5
        assert fl & (OF | DF) == OF | DF                 # untouched


def test_pushfq_in_guest_sees_input_flags(stack):
    addr, buf, sp = stack
    for fin in (0, CF | ZF, ARITH | DF, OF | SF):
        out, _, _ = native.run(b"\x9c", {"rsp": sp}, fin)   # pushfq
        assert out["rsp"] == sp - 8
        off = sp - 8 - addr
        pushed = struct.unpack_from("<Q", bytes(buf[off:off + 8]))[0]
        assert pushed & 0xCD5 == fin
        assert pushed & 0x202 == 0x202


# ---------------------------------------------------------------------------
# Arithmetic against Python
# ---------------------------------------------------------------------------
def test_add_rax_rbx():
    rng = random.Random(3)
    for a, b in values(rng, 300):
        fin = rng.getrandbits(12) & native.FLAGS_SETTABLE
        out, fl, ex = native.run(b"\x48\x01\xd8", {"rax": a, "rbx": b}, fin)
        r, f = add_flags(a, b)
        assert out["rax"] == r
        assert out["rbx"] == b
        assert fl & ARITH == f, (hex(a), hex(b))
        assert fl & DF == fin & DF
        assert ex == "fall"


def test_adc_uses_input_carry():
    rng = random.Random(4)
    for a, b in values(rng, 100):
        for c in (0, 1):
            out, fl, _ = native.run(b"\x48\x11\xd8", {"rax": a, "rbx": b},
                                    CF if c else 0)
            r, f = add_flags(a, b, c)
            assert out["rax"] == r
            assert fl & ARITH == f


def test_sbb_uses_input_carry():
    rng = random.Random(5)
    for a, b in values(rng, 100):
        for c in (0, 1):
            out, fl, _ = native.run(b"\x48\x19\xd8", {"rax": a, "rbx": b},
                                    CF if c else 0)
            r, f = sub_flags(a, b, c)
            assert out["rax"] == r
            assert fl & ARITH == f


def test_inc_preserves_cf():
    for cf in (0, CF):
        out, fl, _ = native.run(b"\x48\xff\xc0", {"rax": M64}, cf)  # inc rax
        assert out["rax"] == 0
        assert fl & CF == cf
        assert fl & ZF


# ---------------------------------------------------------------------------
# Memory / stack through scratch
# ---------------------------------------------------------------------------
def test_push_pop_through_scratch(stack):
    addr, buf, sp = stack
    rng = random.Random(6)
    for _ in range(20):
        v = rng.getrandbits(64)
        out, _, _ = native.run(b"\x50", {"rax": v, "rsp": sp}, 0)  # push rax
        assert out["rsp"] == sp - 8
        off = sp - 8 - addr
        assert bytes(buf[off:off + 8]) == struct.pack("<Q", v)

        w = rng.getrandbits(64)
        buf[off:off + 8] = list(struct.pack("<Q", w))
        out, _, _ = native.run(b"\x5b", {"rsp": sp - 8}, 0)        # pop rbx
        assert out["rbx"] == w
        assert out["rsp"] == sp

        out, _, _ = native.run(b"\x50\x41\x5f", {"rax": v, "rsp": sp}, 0)
        assert out["r15"] == v and out["rsp"] == sp              # push;pop


def test_mov_store_and_load(stack):
    addr, buf, _ = stack
    rng = random.Random(7)
    for i in range(20):
        v = rng.getrandbits(64)
        off = 8 * i + (i % 8)                                   # unaligned
        out, _, _ = native.run(b"\x48\x89\x06",                 # mov [rsi], rax
                               {"rax": v, "rsi": addr + off}, 0)
        assert bytes(buf[off:off + 8]) == struct.pack("<Q", v)
        assert out["rsi"] == addr + off

        w = rng.getrandbits(64)
        buf[off + 8:off + 16] = list(struct.pack("<Q", w))
        out, _, _ = native.run(b"\x48\x8b\x4e\x08",             # mov rcx,[rsi+8]
                               {"rsi": addr + off}, 0)
        assert out["rcx"] == w


def test_movsb_honours_df(stack):
    addr, buf, _ = stack
    buf[100] = 0xAB
    for df, step in ((0, 1), (DF, -1)):
        buf[200] = 0
        out, fl, _ = native.run(b"\xa4", {"rsi": addr + 100, "rdi": addr + 200},
                                df)                             # movsb
        assert buf[200] == 0xAB
        assert out["rsi"] == addr + 100 + step
        assert out["rdi"] == addr + 200 + step
        assert fl & DF == df


# ---------------------------------------------------------------------------
# DF handling
# ---------------------------------------------------------------------------
def test_std_sets_df_and_host_is_clean(stack):
    addr, buf, _ = stack
    _, fl, _ = native.run(b"\xfd", {}, 0)                       # std
    assert fl & DF
    _, fl, _ = native.run(b"\xfc", {}, DF)                      # cld
    assert not fl & DF
    # The host must be back to DF=0: a memmove-heavy Python operation and a
    # further run both still behave.
    data = bytes(range(256)) * 64
    assert bytes(bytearray(data)) == data
    buf[0:16] = list(range(16))
    assert bytes(buf[0:16]) == bytes(range(16))
    _, fl, _ = native.run(b"\x90", {}, 0)
    assert not fl & DF


# ---------------------------------------------------------------------------
# Branches
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("disp", [2, 3, 4, 5, 6, 0x40, 0x7F,
                                  -4, -5, -6, -7, -8, -0x40, -128])
def test_jz_rel8(disp, stack):
    code = b"\x74" + struct.pack("<b", disp)                 # jz rel8
    rng = random.Random(disp)
    regs = random_regs(rng, stack[2])
    for zf, expect in ((ZF, "taken"), (0, "fall")):
        res = native.run(code, regs, zf | SF, taken_disp=disp)
        assert res.exit == expect
        assert res.regs == regs
        assert res.rflags & ARITH == zf | SF
        end = res.code_addr + 2
        assert res.rip == (end + disp if expect == "taken" else end)


@pytest.mark.parametrize("disp", [0, 1, -1, -2, -3])
def test_unplaceable_taken_disp_rejected(disp):
    with pytest.raises(ValueError):
        native.run(b"\x74" + struct.pack("<b", disp), {}, ZF,
                   taken_disp=disp)


def test_jmp_and_jnz_always_never():
    # jmp rel8 is always taken; jnz with ZF=1 never.
    for d in (2, 9, -9, 100):
        assert native.run(b"\xeb" + struct.pack("<b", d), {}, 0,
                          taken_disp=d).exit == "taken"
        assert native.run(b"\x75" + struct.pack("<b", d), {}, ZF,
                          taken_disp=d).exit == "fall"


def test_loop_back_into_code_without_taken_disp():
    # mov ecx, 5 ; l: add rax, 3 ; dec rcx ; jnz l   -> rax = 15
    code = (b"\xb9\x05\x00\x00\x00" + b"\x48\x83\xc0\x03"
            + b"\x48\xff\xc9" + b"\x75\xf7")
    out, fl, ex = native.run(code, {"rax": 0}, 0)
    assert ex == "fall" and out["rax"] == 15 and out["rcx"] == 0
    assert fl & ZF


@pytest.mark.parametrize("disp", [0x200, 0x12345, -0x1000, -0x20000])
def test_jz_rel32(disp):
    code = b"\x0f\x84" + struct.pack("<i", disp)
    rng = random.Random(disp)
    regs = {r: rng.getrandbits(64) for r in NON_RSP}
    for zf, expect in ((ZF, "taken"), (0, "fall")):
        out, fl, ex = native.run(code, regs, zf | CF, taken_disp=disp)
        assert ex == expect
        assert fl & (ZF | CF) == zf | CF
        assert all(out[r] == regs[r] for r in NON_RSP)


def test_taken_exit_stores_registers_too(stack):
    # cmp rax, rbx ; jb +disp  (taken iff rax < rbx unsigned)
    rng = random.Random(8)
    disp = 0x40
    code = b"\x48\x39\xd8" + b"\x72" + bytes([disp])
    for a, b in values(rng, 50):
        out, fl, ex = native.run(code, {"rax": a, "rbx": b, "rsp": stack[2]},
                                 0, taken_disp=disp)
        assert ex == ("taken" if a < b else "fall")
        assert fl & ARITH == sub_flags(a, b)[1]
        assert out["rax"] == a and out["rbx"] == b


def test_rip_relative_lea():
    # lea rax, [rip+0x10] -> code_addr + 7 + 0x10
    res = native.run(b"\x48\x8d\x05\x10\x00\x00\x00", {}, 0)
    assert res.regs["rax"] == res.code_addr + 7 + 0x10
    assert res.rip == res.code_addr + 7


# ---------------------------------------------------------------------------
# RSP handling
# ---------------------------------------------------------------------------
def test_xchg_rsp_rax(stack):
    v = 0xDEADBEEFCAFEF00D
    out, _, _ = native.run(b"\x48\x94", {"rax": v, "rsp": stack[2]}, 0)
    assert out["rsp"] == v
    assert out["rax"] == stack[2]


def test_mov_rsp_and_rsp_arith(stack):
    out, _, _ = native.run(b"\x48\x89\xe0", {"rsp": stack[2]}, 0)  # mov rax,rsp
    assert out["rax"] == stack[2]
    out, fl, _ = native.run(b"\x48\x83\xec\x28", {"rsp": stack[2]}, 0)  # sub rsp,40
    assert out["rsp"] == stack[2] - 40
    assert fl & ARITH == sub_flags(stack[2], 40)[1]
    out, _, _ = native.run(b"\x48\x89\xc4", {"rax": 1 << 63, "rsp": stack[2]},
                           0)                                    # mov rsp, rax
    assert out["rsp"] == 1 << 63


def test_default_rsp_is_private_stack():
    addr, buf = native.default_stack()
    out, _, _ = native.run(b"\x50", {"rax": 0x1122334455667788}, 0)  # push rax
    assert addr <= out["rsp"] < addr + len(buf)
    off = out["rsp"] - addr
    assert bytes(buf[off:off + 8]) == struct.pack("<Q", 0x1122334455667788)


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0x100, 0x40000, 0x200000, 0x4000, 1 << 63])
def test_bad_flags_rejected(bad):
    with pytest.raises(ValueError):
        native.run(b"\x90", {}, bad)


def test_unknown_register_rejected():
    with pytest.raises(ValueError):
        native.run(b"\x90", {"rip": 0}, 0)


def test_rflags_fixed_bits_accepted():
    _, fl, _ = native.run(b"\x90", {}, 0x202 | CF)
    assert fl & 0xCD5 == CF


def test_negative_register_values_wrap():
    out, _, _ = native.run(b"\x90", {"rbx": -1, "rcx": -2}, 0)
    assert out["rbx"] == M64 and out["rcx"] == M64 - 1


def test_host_stack_rsp_rejected():
    with open("/proc/self/maps") as f:
        stacks = [l for l in f if "[stack]" in l]
    if not stacks:
        pytest.skip("no [stack] mapping visible")
    lo, hi = (int(x, 16) for x in stacks[0].split()[0].split("-"))
    with pytest.raises(ValueError):
        native.run(b"\x90", {"rsp": hi - 64}, 0)


# ---------------------------------------------------------------------------
# Robustness
# ---------------------------------------------------------------------------
def test_signal_mask_restored():
    import signal
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    native.run(b"\x90", {}, 0)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_wx_fallback_runner(monkeypatch):
    """Without RWX mappings the runner toggles RW/RX with mprotect."""
    monkeypatch.setattr(native, "_ALLOW_RWX", False)
    r = native._Runner()
    assert not r.area.rwx
    rng = random.Random(9)
    for a, b in values(rng, 10)[:40]:
        res = r.run(b"\x48\x01\xd8\x74\x10", {"rax": a, "rbx": b}, 0, 0x10)
        s, f = add_flags(a, b)
        assert res.regs["rax"] == s and res.rflags & ARITH == f
        assert res.exit == ("taken" if s == 0 else "fall")


def test_signals_never_land_on_guest_stack():
    """Deliver a stream of SIGALRMs while guest code runs with a garbage RSP.
    If a signal frame were pushed on the guest stack the child would die."""
    import subprocess
    import sys
    import os
    child = r'''
import signal, sys
sys.path.insert(0, sys.argv[1])
import native
hits = [0]
def h(*a):
    hits[0] += 1
signal.signal(signal.SIGALRM, h)
signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
# mov ecx, 300 ; l: dec ecx ; jnz l      (rsp = 8: unusable as a stack)
code = b"\xb9\x2c\x01\x00\x00\xff\xc9\x75\xfc"
for i in range(3000):
    out, fl, ex = native.run(code, {"rsp": 8, "rax": i}, 0)
    assert out["rax"] == i and out["rcx"] == 0 and out["rsp"] == 8
signal.setitimer(signal.ITIMER_REAL, 0)
print("ok", hits[0])
'''
    here = os.path.dirname(os.path.abspath(native.__file__))
    p = subprocess.run([sys.executable, "-c", child, here],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    status, hits = p.stdout.split()
    assert status == "ok" and int(hits) > 10
