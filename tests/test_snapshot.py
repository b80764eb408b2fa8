"""Snapshots (emu.Machine.snapshot / restore, Vcpu.save_state / load_state):
restoring returns registers, memory, page tables, translated code and time
to the snapshot, copying back only the pages written since; a fuzzing loop
over a restored machine behaves exactly like fresh machines."""
import struct

import pytest

import emu

CODE, DATA, INPUT, FAR = 0x400000, 0x600000, 0x700000, 0x603000
# FNV-1a over [rsi], rcx bytes -> [rdi]; inc qword [rdi+8]; mov [rdi+0x3000], al;
# patch: mov ebx, 0x11111111; mov dword [patch+1], 0x22222222 (rewrites its own
# immediate); hlt
TARGET = bytes.fromhex(
    "48b825232284e49cf2cb49b8b3010000000100000fb6164831d0490fafc048ffc648ffc975ee48890748ff4708"
    "888700300000bb11111111c705f2ffffff22222222f4")


def fnv(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def machine():
    m = emu.Machine(16 << 20, cpl=0)
    m.map(CODE, 0x1000)
    m.map(DATA, 0x4000)
    m.map(INPUT, 0x1000)
    m.write(CODE, TARGET)
    v = m.vcpu
    v.rip, v.rsi, v.rdi, v.rcx, v.rsp = CODE, INPUT, DATA, 4, DATA + 0x2000
    return m, v


def state(m):
    v = m.vcpu
    return (v.regs(), v.icount, v.tsc, v.cr3, [v.get_xmm(i) for i in range(16)],
            m.read(CODE, 0x100), m.read(DATA, 0x4000), m.read(INPUT, 0x100))


def test_restore_returns_to_the_snapshot():
    m, v = machine()
    m.write(INPUT, b"abcd")
    before = state(m)
    snap = m.snapshot()
    ex = v.run()
    assert ex.name == "HLT" and v.rbx == 0x11111111
    assert struct.unpack("<QQ", m.read(DATA, 16)) == (fnv(b"abcd"), 1)
    assert m.read(CODE + 0x34, 4) == b"\x22" * 4          # the code rewrote itself
    assert state(m) != before
    v.rip = CODE + 0x33
    assert v.run(1).name == "BUDGET" and v.rbx == 0x22222222  # the patched code is translated
    copied = m.restore(snap)
    assert state(m) == before
    # code page, data page, far page (and the stack page was not touched)
    assert copied == 3
    # the translation of the patched code went with the restore
    v.rip = CODE + 0x33
    assert v.run(1).name == "BUDGET" and v.rbx == 0x11111111
    m.restore(snap)
    # run again: the same run
    ex = v.run()
    assert ex.name == "HLT" and v.rbx == 0x11111111 and struct.unpack("<QQ", m.read(DATA, 16))[1] == 1


def test_fuzz_loop_matches_fresh_machines():
    m, v = machine()
    snap = m.snapshot()
    inputs = [b"", b"\x00", b"emu!", bytes(range(200)), b"abcd" * 50]
    for data in inputs:
        m.restore(snap)
        m.write(INPUT, data.ljust(256, b"\x00"))
        v.rcx = max(1, len(data))
        ex = v.run()
        f, fv = machine()
        f.write(INPUT, data.ljust(256, b"\x00"))
        fv.rcx = max(1, len(data))
        assert f.vcpu.run().name == ex.name == "HLT"
        assert state(m) == state(f)
        assert struct.unpack("<QQ", m.read(DATA, 16)) == (fnv(data.ljust(256, b"\x00")[:max(1, len(data))]), 1)


def test_several_snapshots_and_python_side_changes():
    m, v = machine()
    a_state = state(m)
    a = m.snapshot()
    v.run()
    m.map(0x800000, 0x2000)                           # new page tables and frames after the snapshot
    m.write(0x800000, b"new mapping")
    v.set_xmm(3, b"\x55" * 16)
    b_state = state(m)
    b = m.snapshot()
    m.write(DATA + 0x100, b"scribble")
    v.rip, v.rcx = CODE, 2
    v.run()
    m.restore(a)
    assert state(m) == a_state
    with pytest.raises(emu.machine.GuestMemoryError):
        m.read(0x800000, 4)                           # the mapping is gone with its page tables
    frame = m.map(0x900000, 0x1000)                   # the frame allocator went back too
    m.restore(b)
    assert state(m) == b_state and m.read(0x800000, 11) == b"new mapping"
    m.restore(a)
    assert state(m) == a_state
    assert m.map(0x900000, 0x1000) == frame


def test_vcpu_state_round_trip_and_bad_input():
    m, v = machine()
    m.write(INPUT, b"abcd")
    v.run(5)
    saved = v.save_state()
    regs, icount, tsc = v.regs(), v.icount, v.tsc
    v.run()
    v.load_state(saved)
    assert (v.regs(), v.icount, v.tsc) == (regs, icount, tsc)
    with pytest.raises(ValueError):
        v.load_state(b"garbage")
    with pytest.raises(ValueError):
        v.load_state(saved[:-1])
    other, _ = machine()
    with pytest.raises(ValueError):
        other.restore(m.snapshot())


def test_hooks_and_coverage_survive_restore():
    from emu.hooks import Hooks
    m, v = machine()
    snap = m.snapshot()
    h = Hooks(v)
    hits = []
    h.code(CODE + 0x33, CODE + 0x33, lambda vc, a, s: hits.append(a))
    v.enable_coverage()
    for _ in range(3):
        m.restore(snap)
        v.clear_coverage()
        assert h.run().name == "HLT"
        edges = int((v.coverage != 0).sum())
    assert hits == [CODE + 0x33] * 3 and edges > 0
