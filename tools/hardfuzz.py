#!/usr/bin/env python3
"""emu's robustness fuzzer: inputs an attacker controls, fed to emu, with
every outcome counted by class.

Targets (structure-aware where the input has structure):

  insn-user    random instruction streams at CPL 3 (user mode: exceptions exit)
  insn-kernel  the same at CPL 0 with paging (privileged instructions act)
  insn-system  system mode: faults delivered through an IDT, CPL 3 and CPL 0
  elf          ELF files: header and program-header fields set to edge values,
               truncations, byte flips; loaded and run (under --sandbox rules)
  boot-elf     the same for `emu boot`'s kernel loader
  snapshot     microVM snapshot files: metadata fields, vCPU state bytes,
               page lists, mutated and restored
  migration    live-migration streams: record headers, counts, state bytes
  replay       replay logs (checksum recomputed, so parsing gets past it):
               header and event fields mutated, then replayed
  accel        accelerator command descriptors: addresses at and past the end
               of RAM, 64-bit wraparound, huge sizes and strides

Outcome classes: "refused" (a clean refusal: the input's own error),
"ran" (accepted and run), "internal" (a Python exception escaped: a bug),
"crash" (the worker process died), "hang" (a case took longer than the
time limit). Cases run in a forked worker; the parent watches it, so a
crash or hang is attributed to the case in flight and the run goes on.

    python tools/hardfuzz.py --target insn-user --cases 100000 --seed 1
    python tools/hardfuzz.py --all --cases 2000 --counts perf/fuzz_counts.json

The exit status is 1 when any case was internal, crash or hang (each is
printed with its seed and case number, so `--case N` reproduces it)."""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import struct
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("refused", "ran", "internal", "crash", "hang")
BAD = ("internal", "crash", "hang")


def _interesting(rng: random.Random, bits: int = 64, near=()) -> int:
    """An edge value: 0, 1, all ones, sign bits, page and canonical
    boundaries, values near `near`, or random."""
    k = rng.randrange(12)
    m = (1 << bits) - 1
    if k == 0:
        return 0
    if k == 1:
        return 1
    if k == 2:
        return m
    if k == 3:
        return 1 << (bits - 1)
    if k == 4:
        return (1 << (bits - 1)) - 1
    if k == 5 and bits == 64:
        return rng.choice((0x00007FFFFFFFF000, 0x0000800000000000, 0xFFFF800000000000, 0xFFFFFFFFFFFFF000))
    if k == 6 and near:
        return (rng.choice(near) + rng.randrange(-64, 65)) & m
    if k == 7:
        return rng.randrange(1 << min(bits, 16))
    if k == 8:
        return (1 << rng.randrange(bits)) & m
    return rng.getrandbits(bits)


# ---------------------------------------------------------------- instruction streams

CODE, DATA, STACK = 0x400000, 0x600000, 0x7F0000
PREFIXES = bytes.fromhex("66 67 f2 f3 f0 2e 36 3e 26 64 65 40 48 4c 41")


def _insn_bytes(rng: random.Random) -> bytes:
    """Random bytes biased toward real encodings: prefix runs, 0F escapes,
    ModRM/SIB forms, immediates; sometimes plain noise."""
    out = bytearray()
    while len(out) < 48:
        k = rng.randrange(10)
        if k < 2:
            out += bytes(rng.choice(PREFIXES) for _ in range(rng.randrange(1, 5)))
        if k == 9:
            out += bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 16)))
            continue
        esc = rng.randrange(6)
        if esc == 0:
            out += b"\x0f"
        elif esc == 1:
            out += rng.choice((b"\x0f\x38", b"\x0f\x3a"))
        out.append(rng.getrandbits(8))
        out.append(rng.getrandbits(8))               # ModRM (or the next opcode)
        out += bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 0, 1, 2, 4, 4, 8))))
    return bytes(out[:64])


class InsnTarget:
    def __init__(self, mode: str):
        self.mode = mode

    def setup(self):
        import emu
        from emu.cpuid import baseline_table
        cpl = 3 if self.mode == "user" else 0
        m = emu.Machine(16 << 20, cpl=cpl)
        m.map(CODE, 0x2000)
        m.map(DATA, 0x10000)
        m.map(STACK, 0x10000)
        v = m.vcpu
        if self.mode == "system":
            from emu import _core
            KC, IDT, GDT, TSS, KST = 0x100000, 0x101000, 0x102000, 0x103000, 0x110000
            m.map(KC, 0x1000, user=False)
            m.map(IDT, 0x1000, user=False)
            m.map(GDT, 0x1000, user=False)
            m.map(TSS, 0x1000, user=False)
            m.map(KST, 0x4000, user=False)
            m.write(KC, b"\xf4" * 16)                   # every handler: HLT (the case ends)
            gate = struct.pack("<HHBBHIxxxx", KC & 0xFFFF, 0x08, 1, 0x8E, (KC >> 16) & 0xFFFF, 0)
            m.write(IDT, gate * 256)
            gdt = [0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0x00CFFB000000FFFF, 0x00CFF3000000FFFF,
                   0x00AFFB000000FFFF]
            lim = 0x67
            gdt += [(lim & 0xFFFF) | ((TSS & 0xFFFFFF) << 16) | (9 << 40) | (1 << 47) | ((TSS >> 24 & 0xFF) << 56),
                    TSS >> 32]
            m.write(GDT, b"".join(struct.pack("<Q", e) for e in gdt))
            tss = bytearray(0x68)
            struct.pack_into("<Q", tss, 4, KST + 0x2000)         # RSP0
            struct.pack_into("<Q", tss, 36, KST + 0x4000)        # IST1
            struct.pack_into("<H", tss, 102, 0x68)
            m.write(TSS, bytes(tss))
            v.set_cpuid_table(baseline_table())
            v.system_mode = True
            v.gdtr = (GDT, len(gdt) * 8 - 1)
            v.idtr = (IDT, 0xFFF)
            v.tr = (0x30, TSS, lim)
            v.trap_mask = 0
        self.m, self.v = m, v
        self.initial = v.save_state()
        return self

    def case(self, rng: random.Random) -> str:
        m, v = self.m, self.v
        v.load_state(self.initial)
        m.write(CODE, _insn_bytes(rng) + bytes(0x2000 - 64))
        near = (CODE, DATA, DATA + 0x8000, STACK + 0x8000, 0x0000800000000000)
        for i in range(16):
            v.set_gpr(i, _interesting(rng, 64, near) if rng.random() < 0.7 else DATA + rng.randrange(0x10000))
        v.rsp = STACK + 0x8000 if rng.random() < 0.8 else _interesting(rng, 64, near)
        v.rflags = 0x202 | (rng.getrandbits(12) & 0xCD5) | (0x100 if rng.random() < 0.05 else 0)
        v.mxcsr = 0x1F80 | (rng.getrandbits(6) if rng.random() < 0.2 else 0)
        v.rip = CODE
        if self.mode == "system" and rng.random() < 0.5:
            v.cpl = 3
            v.set_seg_sel(1, 0x2B)
            v.set_seg_sel(2, 0x23)
        for _ in range(16):
            ex = v.run(rng.choice((1, 16, 200)))
            name = ex.name
            if name in ("HLT", "SHUTDOWN", "STORM"):
                break
            if name == "EXCEPTION":
                if not CODE <= ex.rip < CODE + 0x1000:
                    break
                v.rip = ex.rip + 1                      # step over a byte and go on
            elif name == "MMIO":
                if ex.write:
                    v.complete_mmio_write()
                else:
                    v.complete_mmio_read(rng.getrandbits(64))
            elif name == "IO":
                if not ex.write:
                    v.complete_io_in(rng.getrandbits(32))
            elif name == "PRIV" or name == "MSR":
                v.skip_trap() if hasattr(v, "skip_trap") else None
            if not CODE <= v.rip < CODE + 0x1000:
                break
        v.save_state()
        return "ran"


# ---------------------------------------------------------------- ELF files

ELF_BASES = ["guests/linux/bin/stdio_malloc.glibc", "guests/linux/bin/stdio_malloc.musl",
             "guests/linux/bin/stdio_malloc.static-pie", "guests/hello/hello"]


class ElfTarget:
    def setup(self):
        self.bases = []
        for p in ELF_BASES:
            with open(os.path.join(ROOT, p), "rb") as f:
                self.bases.append(f.read())
        for p in ("/bin/true",):
            if os.path.exists(p):
                with open(p, "rb") as f:
                    self.bases.append(f.read())
        self.dir = tempfile.mkdtemp(prefix="hardfuzz-elf-")
        self.devnull = os.open(os.devnull, os.O_RDWR)
        return self

    def mutate(self, rng, data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            k = rng.randrange(10)
            if k == 0 and len(b) > 64:
                del b[rng.randrange(64, len(b)):]                       # truncated
                continue
            if k == 1:
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
                continue
            if len(b) < 64:
                continue
            phoff, = struct.unpack_from("<Q", b, 32)
            phnum, = struct.unpack_from("<H", b, 56)
            fsize = len(b)
            if k in (2, 3):                                              # an ELF header field
                off, size = rng.choice(((16, 2), (24, 8), (32, 8), (40, 8), (52, 2), (54, 2), (56, 2), (4, 1),
                                        (5, 1), (18, 2)))
            elif phnum and phoff + 56 * phnum <= fsize:                  # a program header field
                ph = phoff + 56 * rng.randrange(phnum)
                off, size = rng.choice(((0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 8), (48, 8)))
                off += ph
            else:
                continue
            v = _interesting(rng, size * 8, (fsize, fsize - 1, 0x400000, 0x1000, phoff))
            b[off:off + size] = v.to_bytes(size, "little")
        return bytes(b)

    def case(self, rng: random.Random) -> str:
        from emu.linux.process import GuestExit, GuestKilled, Process, ProgramNotExecutable, ProgramNotFound
        data = self.mutate(rng, rng.choice(self.bases))
        path = os.path.join(self.dir, "prog")
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o755)
        p = Process([path], env={"PATH": "/bin"}, sandbox=self.dir, stdio=(self.devnull,) * 3, seed=1,
                    time="virtual")

        def deny(proc, nr, args):             # no fork, exec or signals out of a fuzz case
            return -1 if nr in (56, 57, 58, 59, 62, 200, 234, 322, 435, 101, 61, 247) else None
        p.add_syscall_hook(before=deny)
        try:
            p.load(path)
        except (ProgramNotExecutable, ProgramNotFound):
            p.fds.close_all()
            p.fs.close()
            return "refused"
        v = p.vcpu
        try:
            for _ in range(200):
                ex = p.vcpu.run(5000)
                if ex.name == "SYSCALL":
                    p.sys.dispatch()
                elif ex.name == "EXCEPTION":
                    if ex.vector == 14 and p.mm.handle_fault(ex.cr2, ex.error_code):
                        continue
                    p.fault_signal(ex)
                elif ex.name != "BUDGET":
                    break
        except (GuestExit, GuestKilled):
            pass
        finally:
            p.fds.close_all()           # the host descriptors this process holds
            p.fs.close()
        del v
        return "ran"


class BootElfTarget(ElfTarget):
    """`emu boot`'s own ELF parser and loader, with mutated kernels."""

    def setup(self):
        with open(os.path.join(ROOT, "guests", "kernel", "kernel.elf"), "rb") as f:
            self.bases = [f.read()]
        self.dir = tempfile.mkdtemp(prefix="hardfuzz-boot-")
        return self

    def case(self, rng: random.Random) -> str:
        from emu.vm import VM
        from emu.vm.boot import BootError
        from emu.vm.vmm import VMError
        path = os.path.join(self.dir, "kernel")
        with open(path, "wb") as f:
            f.write(self.mutate(rng, self.bases[0]))
        try:
            vm = VM(path, mem="8M", output=lambda b: None)
        except (BootError, VMError):
            return "refused"
        vm.run(max_insns=100_000, timeout=5)
        vm.close()
        return "ran"


# ---------------------------------------------------------------- microVM state

KERNEL = os.path.join(ROOT, "guests", "kernel", "kernel.elf")


def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, (list, tuple)) and obj and len(obj) < 64:
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))
    else:
        yield path, obj


def _set_path(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    if isinstance(obj, tuple):
        raise TypeError
    obj[path[-1]] = value


def _odd_value(rng, old):
    k = rng.randrange(8)
    if k == 0:
        return rng.choice(("x", b"\x00" * 3, None, [], {}, (1, 2), 1.5, True, -1))
    if isinstance(old, bool):
        return not old
    if isinstance(old, int):
        return rng.choice((0, -1, 1 << 64, 1 << 63, -(1 << 63), (1 << 32) - 1, old + 1, old - 1, old * 4096 + 7,
                           _interesting(rng)))
    if isinstance(old, (bytes, bytearray)):
        b = bytearray(old)
        if b and rng.random() < 0.7:
            b[rng.randrange(len(b))] = rng.getrandbits(8)
        else:
            b = b[:rng.randrange(len(b) + 1)] if b else b"\xff" * 8
        return bytes(b)
    if isinstance(old, str):
        return rng.choice(("", old * 50, "\udcff", "/etc/passwd", old[::-1]))
    if isinstance(old, float):
        return rng.choice((float("nan"), float("inf"), -1.0, 1e300, 0.0))
    return _interesting(rng)


class SnapshotTarget:
    def setup(self):
        from emu.services import vmstate
        from emu.vm import VM
        vm = VM(KERNEL, mem="8M", output=lambda b: None)
        vm.run(max_insns=400_000)
        vm.exit_reason = None
        buf = io.BytesIO()
        vmstate.save(vm, buf)
        vm.close()
        import numpy as np
        buf.seek(0)
        with np.load(buf, allow_pickle=False) as z:
            self.parts = {k: z[k] for k in z.files}
        import ast
        self.meta = ast.literal_eval(str(self.parts["meta"]))
        self.dir = tempfile.mkdtemp(prefix="hardfuzz-snap-")
        return self

    def craft(self, rng):
        import copy
        import numpy as np
        parts = dict(self.parts)
        meta = copy.deepcopy(self.meta)
        k = rng.randrange(6)
        if k <= 2:
            leaves = list(_leaves(meta))
            path, old = rng.choice(leaves)
            try:
                _set_path(meta, path, _odd_value(rng, old))
            except (TypeError, KeyError, IndexError):
                pass
        elif k == 3:
            st = bytearray(parts["vcpu"].tobytes())
            for _ in range(rng.randrange(1, 4)):
                off = rng.randrange(len(st) - 8) & ~3
                st[off:off + 4] = _interesting(rng, 32).to_bytes(4, "little")
            parts["vcpu"] = np.frombuffer(bytes(st), np.uint8)
        elif k == 4:
            pages = parts["pages"].astype(np.int64).copy()
            if len(pages):
                pages[rng.randrange(len(pages))] = rng.choice((-1, 1 << 31, 1 << 40, 2047, 2048, 4096))
            parts["pages"] = pages
        else:
            parts["data"] = parts["data"][:, :rng.choice((0, 1, 4095))] if rng.random() < 0.5 else \
                parts["data"][:max(0, len(parts["data"]) - 1)]
        parts["meta"] = np.array(repr(meta))
        return parts

    def run_vm(self, vm) -> str:
        vm.exit_reason = None
        vm.run(max_insns=vm.vcpu.icount + 200_000, timeout=5)
        vm.close()
        return "ran"

    def case(self, rng: random.Random) -> str:
        import numpy as np
        from emu.services import vmstate
        parts = self.craft(rng)
        path = os.path.join(self.dir, "vm.snap")
        with open(path, "wb") as f:
            np.savez(f, **parts)
        try:
            vm = vmstate.restore(path, output=lambda b: None)
        except vmstate.SnapshotError:
            return "refused"
        return self.run_vm(vm)


class MigrationTarget(SnapshotTarget):
    def setup(self):
        from emu.services import vmstate
        from emu.vm import VM
        vm = VM(KERNEL, mem="8M", output=lambda b: None)
        vm.run(max_insns=300_000)
        vm.exit_reason = None
        buf = io.BytesIO()
        vmstate.send(vm, buf, rounds=2, slice_insns=100_000)
        vm.close()
        self.stream = buf.getvalue()
        # record boundaries, for structure-aware mutation
        self.fields = []
        i = 0
        s = self.stream
        while i < len(s):
            if s[i:i + 1] == b"P":
                (n,) = struct.unpack_from("<I", s, i + 1)
                self.fields.append(("count", i + 1, 4))
                self.fields.append(("pages", i + 5, 4 * n))
                i += 5 + 4 * n + 4096 * n
            else:
                lm, ls = struct.unpack_from("<II", s, i + 1)
                self.fields += [("lm", i + 1, 4), ("ls", i + 5, 4), ("meta", i + 9, lm), ("state", i + 9 + lm, ls)]
                break
        return self

    def case(self, rng: random.Random) -> str:
        from emu.services import vmstate
        from emu.vm import VM
        s = bytearray(self.stream)
        what, off, n = rng.choice(self.fields)
        if what in ("count", "lm", "ls"):
            s[off:off + 4] = _interesting(rng, 32, (n, 2048, 4096)).to_bytes(4, "little")
        elif what == "meta" and rng.random() < 0.5:
            text = s[off:off + n].decode()
            i = rng.randrange(len(text))
            new = (text[:i] + rng.choice(("9999999999999", "-1", "'x'", "None", "[]", "{}", "(", "")) +
                   text[i + rng.randrange(0, 6):]).encode()
            s[off:off + n] = new
            struct.pack_into("<I", s, off - 8, len(new))
        else:
            for _ in range(rng.randrange(1, 4)):
                j = off + rng.randrange(max(1, n))
                s[j] = rng.getrandbits(8)
        if rng.random() < 0.1:
            del s[rng.randrange(len(s)):]
        vm = VM(None, mem="8M", output=lambda b: None)
        try:
            vmstate.receive(io.BytesIO(bytes(s)), vm)
        except vmstate.SnapshotError:
            vm.close()
            return "refused"
        return self.run_vm(vm)


# ---------------------------------------------------------------- replay logs

class ReplayTarget:
    def setup(self):
        import subprocess
        self.dir = tempfile.mkdtemp(prefix="hardfuzz-replay-")
        self.prog = os.path.join(ROOT, "guests", "linux", "bin", "stdio_malloc.glibc")
        self.log = os.path.join(self.dir, "base.log")
        import emu
        here = os.path.dirname(os.path.dirname(os.path.abspath(emu.__file__)))
        r = subprocess.run([sys.executable, "-m", "emu", "run", "--record", self.log, "--seed", "3", "--time",
                            "virtual", "--sandbox", self.dir, self.prog, "arg1"], cwd=self.dir,
                           capture_output=True, env=dict(os.environ, PYTHONPATH=here))
        if r.returncode != 3:
            raise RuntimeError("recording the base log failed: %s" % r.stderr.decode(errors="replace")[-300:])
        with open(self.log, "rb") as f:
            self.lines = f.read().split(b"\n")[:-1]
        self.devnull = os.open(os.devnull, os.O_RDWR)
        return self

    def craft(self, rng) -> bytes:
        import hashlib
        lines = [json.loads(ln) for ln in self.lines[:-1]]
        i = rng.randrange(len(lines))
        obj = lines[i]
        leaves = list(_leaves(obj))
        if leaves and rng.random() < 0.9:
            path, old = rng.choice(leaves)
            try:
                if path:
                    new = _odd_value(rng, old)
                    _set_path(obj, path, new.decode("latin-1") if isinstance(new, bytes) else new)
            except (TypeError, KeyError, IndexError):
                pass
        elif rng.random() < 0.5:
            del lines[i]
        else:
            lines.insert(i, rng.choice((["S", 1, [], 0, 0, []], ["X"], [], {"a": 1}, 5, None)))
        out = b"".join(json.dumps(x, separators=(",", ":")).encode() + b"\n" for x in lines)
        return out + json.dumps(["END", hashlib.sha256(out).hexdigest()]).encode() + b"\n"

    def case(self, rng: random.Random) -> str:
        from emu.cli import main as emu_main
        path = os.path.join(self.dir, "case.log")
        with open(path, "wb") as f:
            f.write(self.craft(rng))
        # the whole `emu run --replay` path, in this worker (stdout to /dev/null)
        saved = os.dup(1), os.dup(2)
        errf = os.open(os.path.join(self.dir, "stderr"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(self.devnull, 1)
        os.dup2(errf, 2)
        try:
            os.environ["EMU_DEBUG"] = "1"
            status = emu_main(["run", "--replay", path, self.prog, "arg1"])
        except SystemExit as e:
            status = e.code
        finally:
            os.environ.pop("EMU_DEBUG", None)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            os.close(errf)
        return "ran" if status in (0, 3) else "refused"


# ---------------------------------------------------------------- accelerator

class AccelTarget:
    def setup(self):
        import numpy as np
        from emu import _core
        from emu.vm.accel import AccelDevice
        from emu.vm.devices import PhysMem
        self.ram_size = 4 << 20
        self.phys = _core.PhysMachine(self.ram_size)
        self.ram = np.frombuffer(self.phys, dtype=np.uint8)
        self.dev = AccelDevice(PhysMem(self.phys, self.ram), lambda level: None, max_work=1 << 24)
        return self

    def case(self, rng: random.Random) -> str:
        from emu.vm import accel as A
        size = self.ram_size
        near = (size, size - 4, size - 64, 0, 1 << 32, 1 << 63)
        desc = rng.choice((0x1000, size - 64, size - 32, _interesting(rng, 64, near)))
        op = rng.choice((1, 2, 3, 4, 5, 0, 6, _interesting(rng, 32)))

        def dim():
            return rng.choice((1, 2, 3, 16, 64, 0, A.MAX_DIM, A.MAX_DIM + 1, _interesting(rng, 32)))

        def addr():
            return rng.choice((0x10000, 0x80000, size - 4, size - 64, size, _interesting(rng, 64, near)))
        fields = [op, 0, dim(), dim(), dim(), rng.choice((0, dim())), rng.choice((0, dim())), rng.choice((0, dim())),
                  addr(), addr(), addr(), 0]
        raw = A._DESC.pack(*[f & ((1 << (64 if i >= 8 else 32)) - 1) for i, f in enumerate(fields)])
        if desc + 64 <= size:
            self.ram[desc:desc + 64] = list(raw)
        if rng.random() < 0.5:
            self.dev.write(A.R_DESC_HI, 4, desc >> 32)
            self.dev.write(A.R_DOORBELL, 4, desc & 0xFFFFFFFF)
            st = self.dev.status
        else:
            st = self.dev.submit(desc)
        return "ran" if st == A.ST_OK else "refused"


TARGETS = {
    "insn-user": lambda: InsnTarget("user"),
    "insn-kernel": lambda: InsnTarget("kernel"),
    "insn-system": lambda: InsnTarget("system"),
    "elf": ElfTarget,
    "boot-elf": BootElfTarget,
    "snapshot": SnapshotTarget,
    "migration": MigrationTarget,
    "replay": ReplayTarget,
    "accel": AccelTarget,
}


# ---------------------------------------------------------------- the runner

def _worker(name, seed, start, stop, conn):
    os.environ["EMU_STRICT"] = "1"          # internal errors are raised, not turned into errnos
    try:
        os.nice(5)
    except OSError:
        pass
    try:
        t = TARGETS[name]().setup()
    except Exception as e:              # noqa: BLE001 - the harness itself cannot start
        conn.send(("setup-failed", "%s: %s" % (type(e).__name__, e)))
        return
    for i in range(start, stop):
        conn.send(("start", i))
        rng = random.Random("%s:%d:%d" % (name, seed, i))
        try:
            cls, detail = t.case(rng), ""
        except Exception as e:          # noqa: BLE001 - any escape is an internal error
            tb = traceback.extract_tb(e.__traceback__)[-1]
            cls, detail = "internal", "%s: %s (%s:%d)" % (type(e).__name__, str(e)[:160],
                                                        os.path.basename(tb.filename), tb.lineno)
        conn.send(("done", i, cls, detail))
    conn.send(("end",))


def run_target(name: str, cases: int, seed: int = 0, start: int = 0, timeout: float = 20.0, log=None) -> dict:
    """Run cases [start, start+cases) of one target; {class: count} plus
    "findings": [(case, class, detail)]."""
    ctx = multiprocessing.get_context("fork")
    counts = {c: 0 for c in CLASSES}
    findings = []
    i = start
    stop = start + cases
    while i < stop:
        parent, child = ctx.Pipe(duplex=False)
        w = ctx.Process(target=_worker, args=(name, seed, i, stop, child), daemon=True)
        w.start()
        child.close()
        current, t0 = None, time.monotonic()
        setup_deadline = time.monotonic() + 300
        while True:
            limit = (t0 + timeout) if current is not None else setup_deadline
            if parent.poll(max(0.0, min(1.0, limit - time.monotonic()))):
                try:
                    msg = parent.recv()
                except EOFError:
                    msg = None
                if msg is None:
                    w.join(5)
                    cls = "crash"
                elif msg[0] == "setup-failed":
                    w.join(10)
                    raise RuntimeError("%s: the target could not be set up: %s" % (name, msg[1]))
                elif msg[0] == "start":
                    current, t0 = msg[1], time.monotonic()
                    continue
                elif msg[0] == "done":
                    counts[msg[2]] += 1
                    if msg[2] in BAD:
                        findings.append((msg[1], msg[2], msg[3]))
                        if log:
                            log("%s case %d: %s %s" % (name, msg[1], msg[2], msg[3]))
                    current = None
                    i = msg[1] + 1
                    continue
                else:                       # "end"
                    w.join(10)
                    break
            elif not w.is_alive():
                cls = "crash"
            elif time.monotonic() > limit:
                cls = "hang" if current is not None else "crash"
                w.kill()
                w.join(5)
            else:
                continue
            # the worker is gone: the case in flight crashed or hung
            at = current if current is not None else i
            detail = "worker exit code %s" % w.exitcode if cls == "crash" else "over %.0f s" % timeout
            counts[cls] += 1
            findings.append((at, cls, detail))
            if log:
                log("%s case %d: %s %s" % (name, at, cls, detail))
            i = at + 1
            break
        parent.close()
    counts["findings"] = findings
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", action="append", choices=sorted(TARGETS), help="a target (repeatable)")
    ap.add_argument("--all", action="store_true", help="every target")
    ap.add_argument("--cases", type=int, default=1000, help="cases per target")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first case number")
    ap.add_argument("--case", type=int, help="run only this case (reproduce a finding)")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds before a case counts as a hang")
    ap.add_argument("--counts", help="JSON file the counts are added to (a long campaign, run in parts)")
    a = ap.parse_args(argv)
    names = sorted(TARGETS) if a.all else (a.target or [])
    if not names:
        ap.error("give --target NAME or --all")
    start, cases = (a.case, 1) if a.case is not None else (a.start, a.cases)
    bad = 0
    total = {}
    for name in names:
        t0 = time.time()
        r = run_target(name, cases, a.seed, start, a.timeout, log=lambda s: print("  " + s, flush=True))
        dt = time.time() - t0
        print("%-12s %8d cases in %7.1f s: %s" % (name, cases, dt, ", ".join(
            "%s %d" % (c, r[c]) for c in CLASSES)), flush=True)
        bad += sum(r[c] for c in BAD)
        total[name] = {c: r[c] for c in CLASSES}
        total[name]["seconds"] = dt
    if a.counts:
        old = {}
        if os.path.exists(a.counts):
            with open(a.counts) as f:
                old = json.load(f)
        for name, r in total.items():
            o = old.setdefault(name, {c: 0 for c in CLASSES} | {"seconds": 0.0, "runs": []})
            for c in CLASSES:
                o[c] += r[c]
            o["seconds"] += r["seconds"]
            o["runs"].append({"seed": a.seed, "start": start, "cases": cases})
        with open(a.counts, "w") as f:
            json.dump(old, f, indent=1, sort_keys=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    sys.exit(main())
