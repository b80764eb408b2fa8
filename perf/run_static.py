#!/usr/bin/env python3
"""A minimal runner for static, non-PIE ELF64 x86-64 Linux executables on emu.

It is just enough "Linux" for the benchmark guests (guests/): load the
PT_LOAD segments, give the program a stack with an empty argv/envp/auxv,
and answer two system calls, write(2) to fd 1/2 and exit/exit_group. Any
other exit (an unsupported system call, an exception such as #UD for an
instruction emu does not implement yet) ends the run with a one-line
message on stderr and a nonzero status. The full Linux personality lives
elsewhere; this is the perf harness's own loader.

    python perf/run_static.py guests/hello/bin/hello [--stats]

API: run_static(path, stdout) -> (exit_status, vcpu)
"""
from __future__ import annotations

import os
import sys

from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

try:
    import emu
except ImportError:
    # run from a source checkout with an in-place build (setup.py build_ext --inplace)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import emu

PAGE = 4096
STACK_TOP = 0x7FFFFFF00000
STACK_SIZE = 1 << 20

SYS_WRITE = 1
SYS_EXIT = 60
SYS_EXIT_GROUP = 231

# exit status when the run ends on something this runner cannot handle
STATUS_UNHANDLED = 127


class LoadError(Exception):
    """The file is not a static non-PIE x86-64 ELF executable."""


def _prot(p_flags: int) -> int:
    prot = 0
    if p_flags & P_FLAGS.PF_R:
        prot |= emu.PROT_R
    if p_flags & P_FLAGS.PF_W:
        prot |= emu.PROT_W
    if p_flags & P_FLAGS.PF_X:
        prot |= emu.PROT_X
    return prot


def load_static(machine: emu.Machine, path: str) -> int:
    """Map and fill the PT_LOAD segments of the executable at path; returns
    its entry point. The memory past each segment's file bytes (bss) is
    zero because machine.map hands out zeroed frames."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
            raise LoadError("%s: not an ELF64 x86-64 file" % path)
        if elf["e_type"] != "ET_EXEC":
            raise LoadError("%s: not a static non-PIE executable (e_type %s)" % (path, elf["e_type"]))
        segs = []
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                raise LoadError("%s: dynamically linked (has PT_INTERP)" % path)
            if seg["p_type"] == "PT_LOAD" and seg["p_memsz"]:
                segs.append((seg["p_vaddr"], seg["p_memsz"], seg["p_flags"], seg.data()))
        entry = elf["e_entry"]
    # pages may be shared by two segments: the union of their rights wins
    pages: dict[int, int] = {}
    for va, memsz, flags, _ in segs:
        for page in range(va & ~(PAGE - 1), (va + memsz + PAGE - 1) & ~(PAGE - 1), PAGE):
            pages[page] = pages.get(page, 0) | _prot(flags)
    run_start = None
    run_prot = 0
    prev = None
    for page in sorted(pages) + [None]:
        if run_start is not None and (page is None or page != prev + PAGE or pages[page] != run_prot):
            machine.map(run_start, prev + PAGE - run_start, run_prot)
            run_start = None
        if page is None:
            break
        if run_start is None:
            run_start, run_prot = page, pages[page]
        prev = page
    for va, _, _, data in segs:
        if data:
            machine.write(va, data)
    return entry


def setup_stack(machine: emu.Machine) -> int:
    """A stack as the kernel leaves it at _start: argc = 0, argv and envp
    empty, auxv just AT_NULL. Returns the initial RSP."""
    machine.map(STACK_TOP - STACK_SIZE, STACK_SIZE, emu.PROT_R | emu.PROT_W)
    words = [0,        # argc
             0,        # argv terminator
             0,        # envp terminator
             0, 0]     # auxv: AT_NULL
    rsp = (STACK_TOP - 256) & ~15
    machine.write(rsp, b"".join(w.to_bytes(8, "little") for w in words))
    return rsp


def _describe_insn(machine: emu.Machine, rip: int) -> str:
    """The instruction at rip, disassembled when iced-x86 is installed."""
    try:
        code = machine.read(rip, 15)
    except emu.GuestMemoryError:
        return "(unmapped)"
    try:
        import iced_x86
        dec = iced_x86.Decoder(64, code, ip=rip)
        fmt = iced_x86.Formatter(iced_x86.FormatterSyntax.GAS)
        insn = dec.decode()
        return "%s [%s]" % (fmt.format(insn), code[:insn.len].hex(" "))
    except ImportError:
        return "[%s]" % code.hex(" ")


def _emit(stream, data: bytes) -> None:
    try:
        stream.write(data)
    except TypeError:
        stream.write(data.decode("utf-8", "surrogateescape"))


def run_static(path: str, stdout=None, stderr=None, *, ram_size: int = 64 << 20,
               max_insns: int | None = None):
    """Load and run the static executable at path on a fresh emu Machine.

    Guest writes to fd 1 go to stdout (a binary or text stream; default
    sys.stdout), to fd 2 to stderr (default sys.stderr). Returns
    (exit_status, vcpu): the guest's exit status, or STATUS_UNHANDLED after
    a one-line error on sys.stderr when the run ends otherwise.
    """
    if stdout is None:
        stdout = getattr(sys.stdout, "buffer", sys.stdout)
    if stderr is None:
        stderr = getattr(sys.stderr, "buffer", sys.stderr)
    machine = emu.Machine(ram_size=ram_size, cpl=3)
    vcpu = machine.vcpu
    vcpu.rip = load_static(machine, path)
    vcpu.rsp = setup_stack(machine)
    vcpu.rflags = 0x202
    streams = {1: stdout, 2: stderr}
    name = os.path.basename(path)
    while True:
        if max_insns is None:
            ex = vcpu.run()
        else:
            left = max_insns - vcpu.icount
            if left <= 0:
                print("%s: instruction limit %d reached at rip %#x" % (name, max_insns, vcpu.rip),
                      file=sys.stderr)
                return STATUS_UNHANDLED, vcpu
            ex = vcpu.run(left)
        if ex.name == "SYSCALL":
            nr = vcpu.rax
            if nr == SYS_WRITE and vcpu.rdi in streams:
                n = vcpu.rdx
                try:
                    data = machine.read(vcpu.rsi, n) if n else b""
                except emu.GuestMemoryError:
                    vcpu.rax = (-14) & 0xFFFFFFFFFFFFFFFF     # -EFAULT
                    continue
                _emit(streams[vcpu.rdi], data)
                vcpu.rax = n
                continue
            if nr in (SYS_EXIT, SYS_EXIT_GROUP):
                for s in (stdout, stderr):
                    if hasattr(s, "flush"):
                        s.flush()
                return vcpu.rdi & 0xFF, vcpu
            print("%s: unsupported system call %d (rdi=%#x) at rip %#x"
                  % (name, nr, vcpu.rdi, ex.rip), file=sys.stderr)
            return STATUS_UNHANDLED, vcpu
        if ex.name == "EXCEPTION":
            print("%s: exception vector %d (error %#x, cr2 %#x) at rip %#x: %s"
                  % (name, ex.vector, ex.error_code, ex.cr2, ex.rip, _describe_insn(machine, ex.rip)),
                  file=sys.stderr)
            return STATUS_UNHANDLED, vcpu
        if ex.name == "BUDGET" and max_insns is not None:
            continue
        print("%s: unexpected exit %s at rip %#x: %s" % (name, ex.name, ex.rip, _describe_insn(machine, ex.rip)),
              file=sys.stderr)
        return STATUS_UNHANDLED, vcpu


def main(argv=None) -> int:
    import argparse
    import time
    ap = argparse.ArgumentParser(description="Run a static x86-64 Linux executable on emu.")
    ap.add_argument("path")
    ap.add_argument("--stats", action="store_true", help="print instructions, time and counters to stderr")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    status, vcpu = run_static(args.path)
    dt = time.perf_counter() - t0
    if args.stats:
        c = vcpu.counters
        print("instructions %d in %.3f s (%.1f MIPS)" % (vcpu.icount, dt, vcpu.icount / dt / 1e6), file=sys.stderr)
        for k, v in c.items():
            print("  %s: %s" % (k, v), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
