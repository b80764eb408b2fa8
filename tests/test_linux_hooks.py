"""Hooks of the Linux personality for users who import emu: system calls
before and after (changing arguments and results), fault hooks, per-syscall
counters."""
import io
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "perf"))
from emu.linux.process import GuestExit, GuestKilled, Process  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELLO = os.path.join(ROOT, "guests", "hello", "hello")
WILD = os.path.join(ROOT, "guests", "faults", "wild_write")


def run(proc):
    try:
        proc._loop()
    except GuestExit as e:
        return e.status
    except GuestKilled as e:
        return 128 + e.signo


def process(path, tmp_path):
    out = open(tmp_path / "out", "wb+")
    p = Process([path], stdio=(0, out.fileno(), out.fileno()))
    p.load(path)
    return p, out


def output(out):
    out.seek(0)
    return out.read()


def test_counts_and_observation(tmp_path):
    p, out = process(HELLO, tmp_path)
    seen = []
    p.add_syscall_hook(before=lambda proc, nr, args: seen.append(("before", nr)),
                       after=lambda proc, nr, args, ret: seen.append(("after", nr, ret)))
    assert run(p) == 0
    assert output(out) == b"Hello from emu!\n"
    assert p.syscall_counts == {1: 1, 231: 1}
    assert seen == [("before", 1), ("after", 1, 16), ("before", 231)]


def test_change_arguments_and_results(tmp_path):
    p, out = process(HELLO, tmp_path)

    def shorten(proc, nr, args):
        if nr == 1:
            return (args[0], args[1], 5)          # write only "Hello"
    p.add_syscall_hook(before=shorten, after=lambda proc, nr, args, ret: 99 if nr == 1 else None)
    assert run(p) == 0
    assert output(out) == b"Hello"


def test_skip_a_call_with_a_result(tmp_path):
    p, out = process(HELLO, tmp_path)
    p.add_syscall_hook(before=lambda proc, nr, args: 16 if nr == 1 else None)
    assert run(p) == 0
    assert output(out) == b""                    # the write never happened


def test_fault_hook_sees_and_can_handle(tmp_path):
    p, out = process(WILD, tmp_path)
    faults = []

    def fix(proc, ex):
        faults.append((ex.vector, ex.cr2))
        proc.vcpu.rip += 12                      # skip the faulting `movq $1, 0x10` (48 c7 04 25 disp32 imm32)
        return True
    p.add_fault_hook(fix)
    status = run(p)
    assert faults == [(14, 0x10)]
    assert output(out) == b"before\nafter\n" and status == 0


def test_unhandled_fault_still_kills(tmp_path):
    p, out = process(WILD, tmp_path)
    seen = []
    p.add_fault_hook(lambda proc, ex: seen.append(ex.vector))
    assert run(p) == 128 + 11 and seen == [14]


def test_core_hooks_through_the_personality(tmp_path):
    """emu.hooks on a process's vCPU: the personality's run loop hands HOOK
    exits to the callbacks (here a code hook on the entry point and a block
    hook) and the program runs on unchanged."""
    from emu.hooks import Hooks
    p, out = process(HELLO, tmp_path)
    entry = p.vcpu.rip
    hits, blocks = [], []
    h = Hooks(p.vcpu)
    h.code(entry, entry, lambda vcpu, address, size: hits.append(address))
    h.block(lambda vcpu, address, size: blocks.append(address))
    p.hooks = h
    assert run(p) == 0
    assert output(out) == b"Hello from emu!\n"
    assert hits == [entry]
    assert blocks and blocks[0] == entry
