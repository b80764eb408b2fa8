"""Exits and exceptions as IntEnums (emu.ExitReason, emu.Vector): they
print by name and compare equal to the core's numbers."""
import enum

import emu
from emu import ExitReason, Machine, Vector, _core


def test_exit_reason_and_vector_are_intenums():
    m = Machine()
    m.map(0x1000, 0x1000)
    m.write(0x1000, b"\x0f\x0b")          # UD2
    m.vcpu.rip = 0x1000
    ex = m.vcpu.run()
    assert isinstance(ex.reason, enum.IntEnum) and ex.reason is ExitReason.EXCEPTION
    assert ex.reason == _core.EXIT["EXCEPTION"] and ex.name == "EXCEPTION"
    assert ex.exception is Vector.UD and ex.vector == 6 and repr(ex.exception) == "<Vector.UD: 6>"
    m.write(0x1000, b"\x90\x90")
    ex = m.vcpu.run(1)
    assert ex.reason is ExitReason.BUDGET and ex.exception is None


def test_every_exit_name_is_a_member():
    assert {r.name: int(r) for r in ExitReason} == dict(_core.EXIT)
    assert Vector.PF == 14 and Vector.GP == 13 and Vector(14) is Vector.PF
    assert emu.ExitReason is _core.ExitReason
