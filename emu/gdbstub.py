"""A gdb remote stub (GDB Remote Serial Protocol, "Debugging with GDB",
appendix E) for `emu run --gdb PORT` and `emu boot --gdb PORT`.

The stub never patches guest memory: breakpoints and single-steps are code
hooks and watchpoints are memory hooks of the core (emu/hooks.py), which
exit *before* the instruction or access under every execution tier (a code
hook puts a hook uop into the translated block and flushes the block cache,
so compiled code never runs past one). gdb is told the stop reason
("swbreak", "hwbreak", "watch") so it does not rewind RIP as it would after
an INT3 (decr_pc_after_break). Data breakpoints on x86 trap after the
access completes (Intel SDM vol. 3, 18.2.4 "Debug Status Register": data
breakpoints are traps): a watch hit therefore steps the instruction to its
end and reports the stop at the next instruction boundary.

The stub runs inside the VMM's own run loop: the loop calls it on the exits
it owns (HOOK through the Hooks object, STOPPED for Ctrl-C, the process's
exit), and while gdb has the guest stopped the stub serves packets; a
resume packet returns to the run loop. Ctrl-C (the 0x03 byte) is watched
for by a thread while the guest runs; it calls vcpu.stop(), the one core
call meant for another thread.

Registers follow the target description this stub sends (qXfer:features):
general registers, RIP, EFLAGS, selectors, x87, SSE, orig_rax, FS/GS base.
Memory goes through the guest's page tables as the vCPU sees them.
"""
from __future__ import annotations

import logging
import select
import socket
import struct
import threading

from emu.hooks import Hooks

log = logging.getLogger("emu.gdb")

MASK64 = (1 << 64) - 1
SIGINT, SIGTRAP = 2, 5

# the register file as gdb sees it: (name, bits, type, group); the index is
# gdb's remote register number (the order of the target description)
_GPRS64 = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
           "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
_SEGS = ("cs", "ss", "ds", "es", "fs", "gs")
_SEG_INDEX = {"es": 0, "cs": 1, "ss": 2, "ds": 3, "fs": 4, "gs": 5}       # the core's order
_X87_CTL = ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")

REGS: list[tuple[str, int, str, str]] = (
    [(n, 64, "data_ptr" if n in ("rbp", "rsp") else "int64", "core") for n in _GPRS64]
    + [("rip", 64, "code_ptr", "core"), ("eflags", 32, "i386_eflags", "core")]
    + [(n, 32, "int32", "core") for n in _SEGS]
    + [("st%d" % i, 80, "i387_ext", "core") for i in range(8)]
    + [(n, 32, "int", "core") for n in _X87_CTL]
    + [("xmm%d" % i, 128, "vec128", "sse") for i in range(16)]
    + [("mxcsr", 32, "i386_mxcsr", "sse")]
    + [("orig_rax", 64, "int", "linux")]
    + [("fs_base", 64, "int", "segments"), ("gs_base", 64, "int", "segments")])


def regs_for(linux: bool) -> list[tuple[str, int, str, str]]:
    """The register list a target shows (orig_rax only for Linux processes);
    a register's index is its remote number."""
    return [r for r in REGS if linux or r[3] != "linux"]

_EFLAGS_BITS = ("CF", None, "PF", None, "AF", None, "ZF", "SF", "TF", "IF", "DF", "OF", None, None, "NT", None,
                "RF", "VM", "AC", "VIF", "VIP", "ID")
_MXCSR_BITS = ("IE", "DE", "ZE", "OE", "UE", "PE", "DAZ", "IM", "DM", "ZM", "OM", "UM", "PM", None, None, "FZ")


def target_xml(linux: bool) -> str:
    """The target description (gdb manual, "Target Descriptions"): feature
    names are the ones gdb's amd64 code looks for."""
    def flags(tid, size, names):
        return '<flags id="%s" size="%d">%s</flags>' % (tid, size, "".join(
            '<field name="%s" start="%d" end="%d"/>' % (n, i, i) for i, n in enumerate(names) if n))

    def regs(group):
        return "".join('<reg name="%s" bitsize="%d" type="%s" regnum="%d"/>' % (n, b, t, i)
                       for i, (n, b, t, g) in enumerate(regs_for(linux)) if g == group)

    vec = ('<vector id="v4f" type="ieee_single" count="4"/><vector id="v2d" type="ieee_double" count="2"/>'
           '<vector id="v16i8" type="int8" count="16"/><vector id="v8i16" type="int16" count="8"/>'
           '<vector id="v4i32" type="int32" count="4"/><vector id="v2i64" type="int64" count="2"/>'
           '<union id="vec128"><field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/>'
           '<field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/>'
           '<field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/>'
           '<field name="uint128" type="uint128"/></union>')
    out = ['<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0">'
           '<architecture>i386:x86-64</architecture>']
    if linux:
        out.append("<osabi>GNU/Linux</osabi>")
    out.append('<feature name="org.gnu.gdb.i386.core">%s%s</feature>'
               % (flags("i386_eflags", 4, _EFLAGS_BITS), regs("core")))
    out.append('<feature name="org.gnu.gdb.i386.sse">%s%s%s</feature>'
               % (vec, flags("i386_mxcsr", 4, _MXCSR_BITS), regs("sse")))
    if linux:
        out.append('<feature name="org.gnu.gdb.i386.linux">%s</feature>' % regs("linux"))
    out.append('<feature name="org.gnu.gdb.i386.segments">%s</feature>' % regs("segments"))
    out.append("</target>")
    return "".join(out)


# ---- packet framing ----

def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def escape_binary(data: bytes) -> bytes:
    """Binary data in a reply: '#', '$', '}' and '*' go as '}' + (byte ^ 0x20)."""
    out = bytearray()
    for b in data:
        if b in (0x23, 0x24, 0x7D, 0x2A):
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape_binary(data: bytes) -> bytes:
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            out.append(next(it, 0x20) ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


class Disconnected(Exception):
    """gdb went away."""


class Kill(Exception):
    """gdb asked to kill the guest."""


class Connection:
    """One gdb connection: packets in and out, acknowledgements until gdb
    turns them off (QStartNoAckMode)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.ack = True
        self.lock = threading.Lock()        # the Ctrl-C watcher reads only while the guest runs

    def _fill(self) -> None:
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            raise Disconnected()
        self.buf += data

    def read_packet(self) -> bytes | None:
        """The next packet's payload; None for an interrupt byte (0x03)."""
        while True:
            while not self.buf:
                self._fill()
            c = self.buf[0]
            if c == 0x03:
                del self.buf[0]
                return None
            if c != 0x24:                   # '+', '-' and noise between packets
                del self.buf[0]
                continue
            end = self.buf.find(b"#")
            while end < 0 or len(self.buf) < end + 3:
                self._fill()
                end = self.buf.find(b"#")
            payload = bytes(self.buf[1:end])
            cs = bytes(self.buf[end + 1:end + 3])
            del self.buf[:end + 3]
            try:
                good = int(cs, 16) == checksum(payload)
            except ValueError:
                good = False
            if self.ack:
                self.sock.sendall(b"+" if good else b"-")
            if good:
                return payload

    def send(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            payload = payload.encode("latin-1")
        # run-length encoding is optional; '#', '$' and '}' never appear
        # unescaped in what this stub sends (binary replies are escaped)
        pkt = b"$" + payload + b"#%02x" % checksum(payload)
        while True:
            self.sock.sendall(pkt)
            if not self.ack:
                return
            while True:
                while not self.buf:
                    self._fill()
                c = self.buf[0]
                if c in (0x2B, 0x2D):
                    del self.buf[0]
                    break
                if c == 0x03:              # an interrupt racing the reply: keep it for later
                    return
                del self.buf[0]
            if c == 0x2B:
                return

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def listen(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on 127.0.0.1 only (a debugger port is full control
    of the guest: it is never offered to the network)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(1)
    return s


# ---- x87 state in gdb's terms ----

def _full_tag(fx: bytes) -> int:
    """The 16-bit x87 tag word from FXSAVE's abridged one (Intel SDM vol. 1,
    10.5.1.1: FXSAVE keeps one valid bit per register; the full tag is
    derived from the register's contents)."""
    fsw = struct.unpack_from("<H", fx, 2)[0]
    top = (fsw >> 11) & 7
    ftw = fx[4]
    tag = 0
    for phys in range(8):
        if not (ftw >> phys) & 1:
            t = 3                                   # empty
        else:
            st = (phys - top) & 7
            mant, exp = struct.unpack_from("<QH", fx, 32 + 16 * st)
            exp &= 0x7FFF
            if exp == 0x7FFF:
                t = 2                               # special: NaN, infinity
            elif exp == 0:
                t = 1 if mant == 0 else 2           # zero, or denormal (special)
            else:
                t = 0 if mant >> 63 else 2          # valid, or unnormal (special)
        tag |= t << (2 * phys)
    return tag


def _abridged_tag(tag: int) -> int:
    return sum(1 << p for p in range(8) if (tag >> (2 * p)) & 3 != 3)


class RegisterFile:
    """gdb's registers over one vCPU."""

    def __init__(self, vcpu, linux: bool):
        self.vcpu = vcpu
        self.linux = linux
        self.regs = regs_for(linux)

    def __len__(self) -> int:
        return len(self.regs)

    def get(self, i: int) -> bytes:
        name, bits, _, _ = self.regs[i]
        v = self.vcpu
        if name in _GPRS64:
            return struct.pack("<Q", getattr(v, name))
        if name == "rip":
            return struct.pack("<Q", v.rip)
        if name == "eflags":
            return struct.pack("<I", v.rflags & 0xFFFFFFFF)
        if name in _SEGS:
            return struct.pack("<I", v.get_seg_sel(_SEG_INDEX[name]))
        if name in ("fs_base", "gs_base"):
            return struct.pack("<Q", v.get_seg_base(_SEG_INDEX[name[:2]]))
        if name == "orig_rax":
            return struct.pack("<q", -1)
        fx = v.fxsave()
        if name.startswith("st"):
            k = int(name[2:])
            return fx[32 + 16 * k:42 + 16 * k]
        if name.startswith("xmm"):
            k = int(name[3:])
            return fx[160 + 16 * k:176 + 16 * k]
        if name == "mxcsr":
            return fx[24:28]
        return struct.pack("<I", self._x87_ctl(fx, name))

    @staticmethod
    def _x87_ctl(fx: bytes, name: str) -> int:
        fcw, fsw, _, fop, fip, fdp = struct.unpack_from("<HHBxHQQ", fx, 0)
        return {"fctrl": fcw, "fstat": fsw, "ftag": _full_tag(fx), "fop": fop & 0x7FF,
                "fioff": fip & 0xFFFFFFFF, "fiseg": (fip >> 32) & 0xFFFF,
                "fooff": fdp & 0xFFFFFFFF, "foseg": (fdp >> 32) & 0xFFFF}[name]

    def set(self, i: int, data: bytes) -> None:
        name, bits, _, _ = self.regs[i]
        v = self.vcpu
        if len(data) != bits // 8:
            raise ValueError("register %s is %d bytes" % (name, bits // 8))
        if name in _GPRS64:
            setattr(v, name, struct.unpack("<Q", data)[0])
        elif name == "rip":
            v.rip = struct.unpack("<Q", data)[0]
        elif name == "eflags":
            v.rflags = (v.rflags & ~0xFFFFFFFF) | struct.unpack("<I", data)[0] | 2
        elif name in _SEGS:
            v.set_seg_sel(_SEG_INDEX[name], struct.unpack("<I", data)[0] & 0xFFFF)
        elif name in ("fs_base", "gs_base"):
            v.set_seg_base(_SEG_INDEX[name[:2]], struct.unpack("<Q", data)[0])
        elif name == "orig_rax":
            pass
        else:
            fx = bytearray(v.fxsave())
            if name.startswith("st"):
                k = int(name[2:])
                fx[32 + 16 * k:42 + 16 * k] = data
            elif name.startswith("xmm"):
                k = int(name[3:])
                fx[160 + 16 * k:176 + 16 * k] = data
            elif name == "mxcsr":
                fx[24:28] = data
            else:
                val = struct.unpack("<I", data)[0]
                if name == "fctrl":
                    struct.pack_into("<H", fx, 0, val & 0xFFFF)
                elif name == "fstat":
                    struct.pack_into("<H", fx, 2, val & 0xFFFF)
                elif name == "ftag":
                    fx[4] = _abridged_tag(val)
                elif name == "fop":
                    struct.pack_into("<H", fx, 6, val & 0x7FF)
                elif name == "fioff":
                    struct.pack_into("<I", fx, 8, val)
                elif name == "fooff":
                    struct.pack_into("<I", fx, 16, val)
            v.fxrstor(bytes(fx))

    def all(self) -> bytes:
        return b"".join(self.get(i) for i in range(len(self.regs)))

    def set_all(self, data: bytes) -> None:
        off = 0
        for i, (_, bits, _, _) in enumerate(self.regs):
            n = bits // 8
            if off + n > len(data):
                break
            self.set(i, data[off:off + n])
            off += n


# ---- the targets: what the stub debugs ----

class UserTarget:
    """A Linux process under `emu run` (emu/linux/process.py)."""
    linux = True

    def __init__(self, proc, program: str):
        self.proc = proc
        self.program = program

    @property
    def vcpu(self):
        return self.proc.vcpu

    def read(self, addr: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            k = min(n, 4096 - (addr & 0xFFF))
            try:
                out += self.proc.machine.read(addr, k)
            except Exception:       # noqa: BLE001 - an unmapped page: a lazily loaded one is brought in
                vma = self.proc.mm.find(addr)
                if vma is None or not self.proc.mm.handle_fault(addr, 4):
                    break
                try:
                    out += self.proc.machine.read(addr, k)
                except Exception:   # noqa: BLE001
                    break
            addr += k
            n -= k
        return bytes(out)

    def write(self, addr: int, data: bytes) -> bool:
        if len(self.read(addr, len(data))) != len(data):
            return False
        self.proc.machine.write(addr, data)
        return True

    def auxv(self) -> bytes:
        return self.proc.auxv

    def exec_file(self) -> bytes:
        import os
        return os.path.abspath(self.program).encode()

    def pid(self) -> int:
        return self.proc.pid


class SystemTarget:
    """A guest kernel under `emu boot` (emu/vm/vmm.py): memory through the
    vCPU's current page tables (or physical when paging is off)."""
    linux = False

    def __init__(self, vm):
        self.vm = vm

    @property
    def vcpu(self):
        return self.vm.vcpu

    def _mem(self):
        return memoryview(self.vm.phys)

    def read(self, addr: int, n: int) -> bytes:
        out = bytearray()
        mem = self._mem()
        paging = bool(self.vcpu.cr0 & (1 << 31))
        while n > 0:
            k = min(n, 4096 - (addr & 0xFFF))
            pa = self.vcpu.translate(addr, 0) if paging else addr
            if pa is None or pa + k > len(mem):
                break
            out += mem[pa:pa + k]
            addr += k
            n -= k
        return bytes(out)

    def write(self, addr: int, data: bytes) -> bool:
        mem = self._mem()
        paging = bool(self.vcpu.cr0 & (1 << 31))
        pas = []
        a, n = addr, len(data)
        while n > 0:
            k = min(n, 4096 - (a & 0xFFF))
            pa = self.vcpu.translate(a, 0) if paging else a
            if pa is None or pa + k > len(mem):
                return False
            pas.append((pa, k))
            a += k
            n -= k
        off = 0
        for pa, k in pas:
            mem[pa:pa + k] = data[off:off + k]
            self.vm.phys.invalidate(pa, k)
            off += k
        return True

    def auxv(self) -> bytes:
        return b""

    def exec_file(self) -> bytes:
        return b""

    def pid(self) -> int:
        return 1


# ---- the stub ----

class GdbStub:
    """Serves one gdb connection for a target. attach_process()/attach_vm()
    wire it into the run loop; wait() blocks until gdb connects and lets the
    guest go (the guest starts stopped, as gdb expects)."""

    def __init__(self, target, listener: socket.socket):
        self.target = target
        self.listener = listener
        self.conn: Connection | None = None
        self.regs = RegisterFile(target.vcpu, target.linux)
        self.hooks: Hooks | None = None
        self.breakpoints: dict[tuple[int, int], object] = {}     # (type, addr) -> Hook
        self.watchpoints: dict[tuple[int, int, int], object] = {}   # (type, addr, len) -> Hook
        self.step_hook = None
        self.step_icount = None       # single-step: stop once icount moves past this
        self.pending_watch = None     # (stop reason, address, icount) of a watch hit being stepped over
        self.last_stop = (None, None)     # (rip, icount) of the last stop reported
        self.last_reply = "S05"
        self.detached = False
        self.interrupted = False
        self._running = threading.Event()
        self._watcher: threading.Thread | None = None

    # ---- connection ----
    def wait(self) -> None:
        """Wait for gdb, then serve it until it resumes the guest."""
        sock, peer = self.listener.accept()
        self.listener.close()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("gdb connected from %s:%d", *peer[:2])
        self.conn = Connection(sock)
        self._install_hooks()
        self.last_stop = (self.target.vcpu.rip, self.target.vcpu.icount)
        self.last_reply = "T05thread:1;"
        self._serve()

    def _install_hooks(self) -> None:
        raise NotImplementedError

    # ---- stops (called from the run loop) ----
    def _stop(self, reply: str) -> None:
        """Report a stop and serve gdb until it resumes the guest."""
        v = self.target.vcpu
        self.last_stop = (v.rip, v.icount)
        self.last_reply = reply
        self._running.clear()
        with self.conn.lock:
            pass                        # (the watcher is out of the socket)
        try:
            self.conn.send(reply)
        except (Disconnected, OSError):
            self._detach()
            return
        self._serve()

    def on_code(self, vcpu, address, size):
        """A breakpoint's code hook: the instruction at `address` is next."""
        if self.detached or (address, vcpu.icount) == self.last_stop:
            return True                 # the stop gdb resumed from
        if self.pending_watch is not None or self.step_icount is not None:
            return True                 # the step hook reports this boundary
        kind = "swbreak"
        for (t, a), h in self.breakpoints.items():
            if a == address and t == 1:
                kind = "hwbreak"
        self._stop("T05thread:1;%s:;" % kind)
        return True

    def on_step(self, vcpu, address, size):
        """The single-step hook: before every instruction while stepping."""
        if self.detached:
            return True
        if self.pending_watch is not None:
            why, waddr, icount = self.pending_watch
            if vcpu.icount == icount:
                return True             # still the instruction that accessed the watched data
            self.pending_watch = None
            self._stop("T05thread:1;%s:%x;" % (why, waddr))
            return True
        if self.step_icount is None or vcpu.icount == self.step_icount:
            return True
        if (address, vcpu.icount) == self.last_stop:
            return True
        self.step_icount = None
        self._stop("T05thread:1;")
        return True

    def _watch_fn(self, why: str, waddr: int):
        def fn(vcpu, kind, address, size, value):
            if self.detached:
                return True
            if self.pending_watch is not None and self.pending_watch[2] == vcpu.icount:
                return True
            # x86 data breakpoints trap after the access: finish the instruction first
            self.pending_watch = (why, waddr, vcpu.icount)
            self._ensure_step_hook()
            return True
        return fn

    def _ensure_step_hook(self) -> None:
        if self.step_hook is None:
            self.step_hook = self.hooks.code(1, 0, self.on_step)

    def _drop_step_hook(self) -> None:
        if self.step_hook is not None and self.step_icount is None and self.pending_watch is None:
            self.hooks.remove(self.step_hook)
            self.step_hook = None

    def on_interrupt(self, vcpu) -> bool:
        """A STOPPED exit: gdb's Ctrl-C if the watcher saw one."""
        if not self.interrupted:
            return False
        self.interrupted = False
        self._stop("T%02xthread:1;" % SIGINT)
        return True

    def on_exit(self, status, signo) -> None:
        if self.detached or self.conn is None:
            return
        self._running.clear()
        try:
            if signo is None:
                self.conn.send("W%02x" % (status & 0xFF))
            else:
                self.conn.send("X%02x" % (signo & 0xFF))
        except (Disconnected, OSError):
            pass
        self._detach()

    def on_fault(self, vector: int) -> None:
        """A CPU exception the guest takes: gdb sees the signal it becomes."""
        if self.detached:
            return
        sig = {0: 8, 16: 8, 19: 8, 6: 4, 13: 11, 14: 11, 12: 11, 17: 7, 1: 5, 3: 5}.get(vector, 11)
        self._stop("T%02xthread:1;" % sig)

    # ---- resuming ----
    def _resume(self, step: bool) -> None:
        v = self.target.vcpu
        if step:
            self.step_icount = v.icount
            self._ensure_step_hook()
        else:
            self.step_icount = None
            self._drop_step_hook()
        self._running.set()
        self._start_watcher()

    def _start_watcher(self) -> None:
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch_interrupts, name="gdb-ctrl-c", daemon=True)
            self._watcher.start()

    def _watch_interrupts(self) -> None:
        """While the guest runs: a 0x03 byte from gdb stops the vCPU."""
        conn = self.conn
        while not self.detached:
            if not self._running.wait(0.2):
                continue
            try:
                r, _, _ = select.select([conn.sock], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not r:
                continue
            with conn.lock:
                if not self._running.is_set():
                    continue
                try:
                    b = conn.sock.recv(1, socket.MSG_PEEK)
                except OSError:
                    return
                if b == b"\x03":
                    conn.sock.recv(1)
                    self.interrupted = True
                    self.target.vcpu.stop()
                elif b in (b"+", b"-"):
                    conn.sock.recv(1)
                elif b == b"":
                    return
                else:
                    self._running.wait(0.05)

    def _detach(self) -> None:
        self.detached = True
        self._running.clear()
        if self.hooks is not None:          # (only the stub's own: --trace may share the Hooks)
            for h in list(self.breakpoints.values()) + [x for hs in self.watchpoints.values() for x in hs]:
                self.hooks.remove(h)
            if self.step_hook is not None:
                self.hooks.remove(self.step_hook)
        self.step_hook = None
        self.step_icount = self.pending_watch = None
        self.breakpoints.clear()
        self.watchpoints.clear()
        if self.conn is not None:
            self.conn.close()

    # ---- the packet loop ----
    def _serve(self) -> None:
        """Answer packets until one resumes the guest."""
        while True:
            try:
                pkt = self.conn.read_packet()
            except (Disconnected, OSError):
                log.info("gdb disconnected: the guest runs on")
                self._detach()
                return
            if pkt is None:                  # Ctrl-C while already stopped
                self.conn.send("T%02xthread:1;" % SIGINT)
                continue
            try:
                reply = self._handle(pkt.decode("latin-1"))
            except Kill:
                self._detach()
                raise
            except Exception as e:       # noqa: BLE001 - a malformed packet gets an error reply
                log.debug("gdb packet %r: %s", pkt[:64], e)
                reply = "E01"
            if reply is _RESUMED:
                return
            if reply is _NOREPLY_OK:
                continue
            if reply is _DETACHED:
                self.conn.send("OK")
                self._detach()
                return
            self.conn.send(reply)

    def _handle(self, p: str):
        c = p[:1]
        if c == "?":
            return self.last_reply
        if c == "g":
            return self.regs.all().hex()
        if c == "G":
            self.regs.set_all(bytes.fromhex(p[1:]))
            return "OK"
        if c == "p":
            n = int(p[1:], 16)
            return self.regs.get(n).hex() if n < len(self.regs) else "E00"
        if c == "P":
            n, val = p[1:].split("=")
            n = int(n, 16)
            if n >= len(self.regs):
                return "E00"
            self.regs.set(n, bytes.fromhex(val))
            return "OK"
        if c == "m":
            addr, n = (int(x, 16) for x in p[1:].split(","))
            data = self.target.read(addr, min(n, 0x4000))
            return data.hex() if data or n == 0 else "E14"
        if c == "M":
            head, data = p[1:].split(":", 1)
            addr = int(head.split(",")[0], 16)
            return "OK" if self.target.write(addr, bytes.fromhex(data)) else "E14"
        if c == "X":
            head, _, data = self.conn_raw_split(p)
            addr = int(head.split(",")[0], 16)
            return "OK" if self.target.write(addr, unescape_binary(data)) else "E14"
        if c in ("c", "s"):
            if len(p) > 1:
                self.target.vcpu.rip = int(p[1:], 16)
            self._resume(c == "s")
            return _RESUMED
        if c in ("C", "S"):
            rest = p[1:].split(";")
            if len(rest) > 1:
                self.target.vcpu.rip = int(rest[1], 16)
            self._resume(c == "S")          # the signal: the guest's kernel decides (emu/linux/signals.py)
            return _RESUMED
        if p.startswith("vCont?"):
            return "vCont;c;C;s;S"
        if p.startswith("vCont;"):
            action = p[6:].split(";")[0].split(":")[0]
            if action[:1] in ("c", "C", "s", "S"):
                self._resume(action[:1] in ("s", "S"))
                return _RESUMED
            return ""
        if c == "Z" or c == "z":
            return self._breakpoint(c == "Z", p[1:])
        if c == "H":
            return "OK"
        if c == "T":
            return "OK"
        if c == "k" or p.startswith("vKill"):
            raise Kill()
        if c == "D":
            return _DETACHED
        if p.startswith("qSupported"):
            return ("PacketSize=4000;qXfer:features:read+;%sswbreak+;hwbreak+;QStartNoAckMode+;vContSupported+"
                    % ("qXfer:auxv:read+;qXfer:exec-file:read+;" if self.target.linux else ""))
        if p == "QStartNoAckMode":
            self.conn.send("OK")
            self.conn.ack = False
            return _NOREPLY_OK
        if p.startswith("qXfer:"):
            return self._xfer(p)
        if p == "qAttached" or p.startswith("qAttached:"):
            return "0"                       # the stub created the process: quitting gdb kills it
        if p == "qC":
            return "QC1"
        if p == "qfThreadInfo":
            return "m1"
        if p == "qsThreadInfo":
            return "l"
        if p == "qOffsets" and not self.target.linux:
            return "Text=0;Data=0;Bss=0"
        if p.startswith("qSymbol"):
            return "OK"
        return ""                            # not supported

    @staticmethod
    def conn_raw_split(p: str):
        head, sep, data = p[1:].partition(":")
        return head, sep, data.encode("latin-1")

    def _xfer(self, p: str) -> str:
        parts = p.split(":")
        obj, op, annex, span = parts[1], parts[2], parts[3], parts[4] if len(parts) > 4 else ""
        if op != "read":
            return ""
        off, n = (int(x, 16) for x in span.split(","))
        if obj == "features" and annex == "target.xml":
            data = target_xml(self.target.linux).encode()
        elif obj == "auxv" and self.target.linux:
            data = self.target.auxv()
        elif obj == "exec-file" and self.target.linux:
            data = self.target.exec_file()
        else:
            return "E00"
        chunk = data[off:off + n]
        return ("m" if off + n < len(data) else "l") + escape_binary(chunk).decode("latin-1")

    def _breakpoint(self, insert: bool, args: str) -> str:
        t, addr, kind = args.split(";")[0].split(",")
        t, addr, kind = int(t), int(addr, 16), int(kind, 16)
        if t in (0, 1):
            key = (t, addr)
            if insert:
                if key not in self.breakpoints:
                    self.breakpoints[key] = self.hooks.code(addr, addr, self.on_code)
            elif key in self.breakpoints:
                self.hooks.remove(self.breakpoints.pop(key))
            return "OK"
        if t in (2, 3, 4):
            key = (t, addr, kind)
            if insert:
                if key not in self.watchpoints:
                    why = {2: "watch", 3: "rwatch", 4: "awatch"}[t]
                    fn = self._watch_fn(why, addr)
                    end = addr + max(kind, 1) - 1
                    if t == 2:
                        hs = [self.hooks.mem_write(addr, end, fn)]
                    elif t == 3:
                        hs = [self.hooks.mem_read(addr, end, fn)]
                    else:
                        hs = [self.hooks.mem_read(addr, end, fn), self.hooks.mem_write(addr, end, fn)]
                    self.watchpoints[key] = hs
            elif key in self.watchpoints:
                for h in self.watchpoints.pop(key):
                    self.hooks.remove(h)
            return "OK"
        return ""


_RESUMED = object()
_DETACHED = object()
_NOREPLY_OK = object()        # the reply went out already (QStartNoAckMode)




class ProcessStub(GdbStub):
    """The stub for `emu run`: hooks on the process's vCPU, its exit and
    faults reported to gdb."""

    def _serve(self) -> None:
        try:
            super()._serve()
        except Kill:
            from emu.linux.process import GuestKilled
            raise GuestKilled(9) from None

    def _install_hooks(self) -> None:
        proc = self.target.proc
        if proc.hooks is None:
            proc.hooks = Hooks(proc.vcpu)
        self.hooks = proc.hooks           # (shared with --trace)
        proc.on_stopped = self.on_interrupt
        proc.add_exit_hook(lambda _p, status, signo: self.on_exit(status, signo))

        def fault(_p, ex):
            # (demand paging is handled before fault hooks run; INT 0x80 is a system call)
            if ex.vector != 0x80:
                self.on_fault(ex.vector)
            return None
        proc.add_fault_hook(fault)



class SystemStub(GdbStub):
    """The stub for `emu boot`: hooks on the VM's vCPU; the VM's end is the
    inferior's exit (status 0 when the guest powered off or halted)."""

    def _install_hooks(self) -> None:
        vm = self.target.vm
        if vm.hooks is None:
            vm.hooks = Hooks(vm.vcpu)
        self.hooks = vm.hooks
        vm.on_stopped = self.on_interrupt
