"""In-process snapshot fuzzing of one function of a Linux program
(`emu fuzz`), Unicorn-AFL style with a persistent loop:

1. the program runs normally (its C library starts up) until the target
   function is first called;
2. there emu maps an input buffer and a return trap, points the return
   address at the trap, and takes a snapshot (Machine.snapshot: the vCPU
   and the pages written since);
3. each input is one iteration: restore the snapshot (only the pages the
   last iteration wrote are copied back), write the input, call
   fn(buf, len) with RDI/RSI (System V ABI), run until the function returns
   to the trap, crashes (a CPU exception or a fatal signal), exits, or uses
   up its instruction budget (a hang);
4. the core's AFL edge map (Vcpu.enable_coverage: map[cur ^ prev] += 1 per
   block) says whether the input reached new edges (AFL's hit-count
   buckets); such inputs join the corpus and are mutated further.

The function may make system calls (malloc's brk/mmap...): they run through
the process's Linux personality; page faults go to the personality's
demand paging (the core's own is turned off: its frame pool is not part of
a snapshot) and the address-space bookkeeping is restored with the
snapshot. Files the function opens stay open across iterations.
"""
from __future__ import annotations

import hashlib
import os
import random
import struct
import time
from dataclasses import dataclass, field

from emu.hooks import Hooks

PAGE = 4096


class FuzzError(Exception):
    """The target cannot be set up (no such function, never reached...)."""


class _Reached(Exception):
    pass


def find_symbol(image: bytes, name: str) -> int | None:
    """The address of a function symbol in an ELF64 file's .symtab."""
    if image[:4] != b"\x7fELF" or image[4] != 2:
        return None
    shoff, = struct.unpack_from("<Q", image, 40)
    shentsize, shnum = struct.unpack_from("<HH", image, 58)
    secs = [struct.unpack_from("<IIQQQQIIQQ", image, shoff + i * shentsize) for i in range(shnum)]
    want = name.encode()
    for s in secs:
        if s[1] != 2:                       # SHT_SYMTAB
            continue
        strtab = secs[s[6]]
        str_off = strtab[4]
        for k in range(s[5] // 24):
            st_name, st_info, _, _, st_value, _ = struct.unpack_from("<IBBHQQ", image, s[4] + 24 * k)
            if st_info & 0xF != 2 or not st_value:      # STT_FUNC
                continue
            end = image.index(b"\0", str_off + st_name)
            if image[str_off + st_name:end] == want:
                return st_value
    return None


# AFL's hit-count buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+
def _bucket_table():
    import numpy as np
    t = np.zeros(256, dtype=np.uint8)
    for n in range(1, 256):
        t[n] = (1 if n == 1 else 2 if n == 2 else 4 if n == 3 else 8 if n < 8 else 16 if n < 16 else
                32 if n < 32 else 64 if n < 128 else 128)
    return t


@dataclass
class Result:
    kind: str                 # "ok", "crash", "exit", "hang"
    detail: str = ""
    value: int = 0            # RAX on return, the exit status, or the signal


@dataclass
class Stats:
    execs: int = 0
    corpus: int = 0
    edges: int = 0
    crashes: list = field(default_factory=list)
    seconds: float = 0.0


class FuzzTarget:
    """A function of a Linux program, set up for one call per input."""

    def __init__(self, program: str, function: str, *, args=(), root: str = "/", max_len: int = 4096,
                 max_insns: int = 1 << 22):
        from emu.linux.process import GuestExit, GuestKilled, Process
        self._exit_types = (GuestExit, GuestKilled)
        with open(program, "rb") as f:
            image = f.read()
        try:
            addr = int(function, 0)
        except ValueError:
            addr = find_symbol(image, function)
        if addr is None:
            raise FuzzError("%s: no function %r in its symbol table" % (program, function))
        self.max_len = max_len
        self.max_insns = max_insns
        self.proc = proc = Process([program, *args], root=root, profile="transparent", time="virtual", seed=0)
        proc.load(program)
        proc.hooks = Hooks(proc.vcpu)

        def reached(*_):
            raise _Reached()
        h = proc.hooks.code(addr, addr, reached)
        try:
            proc._loop()
        except _Reached:
            pass
        except self._exit_types:
            raise FuzzError("%s ended before calling %s" % (program, function)) from None
        proc.hooks.remove(h)
        v = self.vcpu = proc.vcpu
        self.machine = proc.machine
        mm = proc.mm
        mm.pages                                            # (takes in what the core populated)
        self.machine.phys.set_demand_ranges(mm.pt.root, [])   # faults come to mm.handle_fault from here on
        size = (max_len + PAGE - 1) & ~(PAGE - 1) or PAGE
        self.buf = mm.mmap(0, size + PAGE, 3, 0x22, name="[fuzz input]")
        self.trap = mm.mmap(0, PAGE, 5, 0x22, name="[fuzz return]")
        if self.buf < 0 or self.trap < 0:
            raise FuzzError("no room for the input buffer")
        for a in range(self.buf, self.buf + size, PAGE):
            mm.handle_fault(a, 6)
        mm.handle_fault(self.trap, 4)
        self.machine.write(v.rsp, struct.pack("<Q", self.trap))     # fn returns to the trap
        proc.hooks.code(self.trap, self.trap, self._returned)
        v.enable_coverage()
        self.cov = v.coverage
        self._mm_state = self._save_mm()
        self.snapshot = self.machine.snapshot()

    def _returned(self, vcpu, address, size):
        raise _Returned()

    _VMA_FIELDS = ("start", "end", "prot", "flags", "data", "data_off", "name", "host_fd", "file_off")

    def _save_mm(self):
        mm = self.proc.mm
        vmas = [tuple(getattr(x, f) for f in self._VMA_FIELDS) for x in mm.vmas]
        return (vmas, dict(mm._pages), mm.brk, mm.brk_start, set(mm.shared_frames))

    def _load_mm(self) -> None:
        from emu.linux.mm import Vma
        mm = self.proc.mm
        vmas, pages, mm.brk, mm.brk_start, shared = self._mm_state
        mm.vmas = [Vma(*t) for t in vmas]
        mm._pages = dict(pages)
        mm.shared_frames = set(shared)
        mm._dz_dirty = False

    def run(self, data: bytes) -> Result:
        """One call of the function on data."""
        data = bytes(data[:self.max_len])
        self.machine.restore(self.snapshot)
        self._load_mm()
        v = self.vcpu
        self.machine.write(self.buf, data)
        v.rdi, v.rsi = self.buf, len(data)
        v.clear_coverage()
        proc = self.proc
        syscall = proc.sys.dispatch
        fault = proc.mm.handle_fault
        start = v.icount
        try:
            while True:
                left = self.max_insns - (v.icount - start)
                if left <= 0:
                    return Result("hang", "%d instructions" % self.max_insns)
                ex = v.run(left)
                name = ex.name
                if name == "HOOK":
                    proc.hooks.dispatch(ex)
                elif name == "SYSCALL":
                    syscall()
                elif name == "EXCEPTION":
                    if ex.vector == 14 and fault(ex.cr2, ex.error_code):
                        continue
                    return Result("crash", "%s at %#x" % (_vector_name(ex.vector), ex.rip), ex.vector)
                elif name == "BUDGET" or name == "STOPPED":
                    continue
                elif proc.guest.hypervisor is not None and proc.guest.hypervisor.handle(v, ex):
                    continue
                else:
                    return Result("crash", "exit %s at %#x" % (name, ex.rip))
        except _Returned:
            return Result("ok", value=v.rax)
        except self._exit_types as e:
            signo = getattr(e, "signo", None)
            if signo is not None:
                return Result("crash", "signal %d" % signo, signo)
            return Result("exit", "status %d" % e.status, e.status)


class _Returned(Exception):
    pass


def _vector_name(vector: int) -> str:
    from emu import Vector
    try:
        return "#" + Vector(vector).name
    except ValueError:
        return "vector %d" % vector


INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x40, 0x10)


def mutate(data: bytes, rng: random.Random, max_len: int) -> bytes:
    """1-4 AFL-style havoc steps: bit flips, interesting and random bytes,
    inserts, deletes, block copies."""
    b = bytearray(data or b"\0")
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        i = rng.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i] = rng.choice(INTERESTING)
        elif op == 2:
            b[i] = rng.randrange(256)
        elif op == 3 and len(b) < max_len:
            b.insert(i, rng.randrange(256))
        elif op == 4 and len(b) > 1:
            del b[i]
        elif op == 5:
            j = rng.randrange(len(b))
            n = rng.randint(1, min(8, len(b) - max(i, j)))
            b[j:j + n] = b[i:i + n]
        else:
            b[i] = (b[i] + rng.choice((1, -1, 16, -16))) & 0xFF
    return bytes(b[:max_len])


def fuzz(target: FuzzTarget, seeds, *, runs: int, seed: int = 0, crash_dir: str | None = None,
         stop_on_crash: bool = True, log=None) -> Stats:
    """The persistent loop: mutate corpus entries, keep inputs that reach new
    edges, record crashing inputs (written to crash_dir as crash-SHA1)."""
    import numpy as np
    rng = random.Random(seed)
    buckets = _bucket_table()
    virgin = np.full(65536, 0xFF, dtype=np.uint8)
    corpus: list[bytes] = []
    st = Stats()
    t0 = time.perf_counter()

    words = target.cov.view(np.uint64)
    rows = target.cov.reshape(-1, 8)
    virgin_rows = virgin.reshape(-1, 8)

    def novel() -> bool:
        idx = np.flatnonzero(words)               # (the map is sparse: the 8-byte words hit only)
        hit = buckets[rows[idx]]
        if not (hit & virgin_rows[idx]).any():
            return False
        virgin_rows[idx] &= ~hit
        return True

    def one(data: bytes) -> bool:
        r = target.run(data)
        st.execs += 1
        if r.kind == "crash":
            st.crashes.append((data, r.detail))
            if crash_dir is not None:
                os.makedirs(crash_dir, exist_ok=True)
                with open(os.path.join(crash_dir, "crash-" + hashlib.sha1(data).hexdigest()), "wb") as f:
                    f.write(data)
            if log:
                log("crash: %s on input %r" % (r.detail, data[:64]))
            return stop_on_crash
        if novel():
            corpus.append(data)
        return False

    for s in list(seeds) or [b"\0"]:
        if one(s):
            break
        if s not in corpus:
            corpus.append(s)
    else:
        while st.execs < runs:
            if one(mutate(rng.choice(corpus), rng, target.max_len)):
                break
    st.corpus = len(corpus)
    st.edges = int((virgin != 0xFF).sum())
    st.seconds = time.perf_counter() - t0
    return st
