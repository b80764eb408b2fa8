"""Deterministic record and replay of a Linux process (`emu run --record LOG`,
`emu run --replay LOG`).

With a fixed seed and virtual time emu itself is deterministic; what is not
is the outside world. Under --record every system call that touches it
(files, pipes, sockets, stdin, stat, getdents, uname, getpid, clocks...) is
logged at the system call boundary: its result, every byte the kernel side
wrote into guest memory during the call (`Syscalls.write`, the one place
system calls write guest memory, reports to `Process.mem_observer`), the
bytes it sent to emu's stdout or stderr, and the change it made to the
personality's signal, timer and virtual-clock state (a SIGPIPE, a timer that
fired while a poll waited, virtual time a wait let pass). Under --replay
those calls are not made: the log supplies all of that. Calls that only
change emu's own state (memory map, signal actions and mask, FS base, futex,
timers, sleeps, exit: `EXECUTE` below) run again on replay, so the address
space and the signal state are rebuilt; a file mmap takes the file's bytes
from the log. Threads (clone with CLONE_THREAD) are created again on replay:
emu schedules them deterministically (round robin by instruction count), so
their system calls come in the recorded order. fork, vfork and clone without
CLONE_THREAD fork on replay too, and each child records into and replays
from its own log (LOG.1, LOG.2... of its parent, nested LOG.1.1); execve
loads the same file again (its SHA-256 is checked). Only execveat is refused.

With host time the clock values emu reads outside logged calls (timers,
sleeps) and every RDTSC (trapped through a trap policy) are logged too, so
the replay sees the same times. Signal deliveries are logged with the
instruction count at which they happen and checked on replay.

Replay checks as it goes: each system call's number, arguments and
instruction count, each output's bytes, each signal delivery and the end
(exit status or fatal signal) must match the log; the first difference stops
the run with a one-line error (`ReplayDivergence`). The log is JSON lines: a
header (emu version, program path and SHA-256, argv, environment and its
hash, options, seed, pid), one event per line, and a trailer with the
SHA-256 of everything before it, so a damaged or edited log is refused.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import zlib

FORMAT = "emu-replay-1"
MASK64 = (1 << 64) - 1

# ---- what replay does with each system call ----
LOG, EXECUTE, FORK, REFUSE = "log", "execute", "fork", "refuse"
# Calls not named here are LOG: the call is made under --record and its
# effects (result, guest memory written, output, signal/timer/clock state)
# are taken from the log under --replay.
CLASSES: dict[int, str] = {
    # memory map: rebuilt on replay (a file mmap's bytes come from the log)
    12: EXECUTE, 9: EXECUTE, 11: EXECUTE, 10: EXECUTE, 25: EXECUTE, 28: EXECUTE, 26: EXECUTE,
    # signal actions, mask, alternate stack, return from a handler, signals to itself
    13: EXECUTE, 14: EXECUTE, 131: EXECUTE, 15: EXECUTE, 62: EXECUTE, 234: EXECUTE, 200: EXECUTE,
    127: EXECUTE,
    # thread state: FS/GS base, clear_child_tid, robust list, rseq, futex (clone of a thread: _class)
    158: EXECUTE, 218: EXECUTE, 273: EXECUTE, 334: EXECUTE, 202: EXECUTE, 24: EXECUTE,
    # timers and sleeps on the guest clock (host time: the clock values come from the log)
    37: EXECUTE, 38: EXECUTE, 36: EXECUTE, 222: EXECUTE, 223: EXECUTE, 224: EXECUTE, 225: EXECUTE,
    226: EXECUTE, 35: EXECUTE, 230: EXECUTE, 34: EXECUTE, 130: EXECUTE, 128: EXECUTE,
    # the end
    60: EXECUTE, 231: EXECUTE,
    # a new process: forked on replay too; the child records into and replays from LOG.<n>
    57: FORK, 58: FORK, 56: FORK,
    # a new image: loaded on replay too (it must be the same file: its SHA-256 is in the log)
    59: EXECUTE,
    # execveat: not recorded
    322: REFUSE,
}
EXECVE = 59
THREADS = True             # clone/clone3 with CLONE_THREAD: EXECUTE (False: refused)
CLONE_CHILD_SETTID, CLONE_PARENT_SETTID = 0x1000000, 0x100000
# output calls: (fd argument, where the bytes written are: a guest buffer, an
# iovec array, or another file read before the call)
OUTPUT = {1: (0, "buf"), 18: (0, "buf"), 20: (0, "iov"), 40: (0, "file"), 326: (2, "file")}
MMAP = 9
BLOB_MAX = 64 << 20        # a file mapped from a file up to this size is logged once, whole ("B" events)
MAP_ANONYMOUS = 0x20
CLONE_THREAD = 0x10000


class ReplayError(Exception):
    """A log that cannot be replayed (or recorded): one line for the user."""


class ReplayDivergence(ReplayError):
    """The replayed run differs from the recorded one."""


def _b64(b: bytes) -> str:
    """Bytes in the log: base64, of the zlib-compressed bytes ("z:" prefix)
    when that is shorter."""
    if len(b) > 128:
        z = zlib.compress(b, 6)
        if len(z) < len(b) * 7 // 8:
            return "z:" + base64.b64encode(z).decode("ascii")
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str) -> bytes:
    if s.startswith("z:"):
        return zlib.decompress(base64.b64decode(s[2:].encode("ascii")))
    return base64.b64decode(s.encode("ascii"))


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def env_sha256(env: dict) -> str:
    return hashlib.sha256(json.dumps(sorted(env.items())).encode("utf-8", "surrogateescape")).hexdigest()


def _name(nr: int) -> str:
    from emu.linux.sysent import name
    return name(nr)


def _call(nr, args) -> str:
    return "%s(%s)" % (_name(nr), ", ".join("%#x" % a if a > 9 else str(a) for a in args))


def new_seed() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 1


# ---- the personality state a logged call may change besides memory ----
def _state(p) -> tuple:
    clk = p.guest.clock
    st = (p.pending_signals, p.signal_mask, p.saved_sigmask, repr(p.sig_info), repr(p.itimers),
          repr(p.posix_timers))
    if clk.virtual:
        st += ([t.vcpu.tsc for t in p.threads], clk.idle_ns, clk.last_ns)   # a wait moves every thread's TSC
    return st


def _set_state(p, st) -> None:
    import ast
    p.pending_signals, p.signal_mask, p.saved_sigmask = st[0], st[1], st[2]
    p.sig_info = ast.literal_eval(st[3])
    p.itimers = ast.literal_eval(st[4])
    p.posix_timers = ast.literal_eval(st[5])
    if len(st) > 6:
        clk = p.guest.clock
        for t, tsc in zip(p.threads, st[6]):
            d = tsc - t.vcpu.tsc
            if d:
                t.vcpu.tsc_advance(d)
        clk.idle_ns, clk.last_ns = st[7], st[8]


CLOCK_METHODS = ("monotonic_ns", "now_ns", "cputime_ns", "uptime", "resolution_ns")


class _Base:
    def __init__(self, proc, path: str):
        self.p = proc
        self.path = path
        self.seq = 0              # system calls seen
        self.capturing = False    # inside a logged call (record)
        self.forks = 0            # processes this one forked: child n's log is path.n
        self.host_pid = os.getpid()

    def _class(self, nr, args) -> str:
        cls = CLASSES.get(nr, LOG)
        if nr == 56 and args[0] & CLONE_THREAD:
            return EXECUTE if THREADS else REFUSE
        if nr == 435:                       # clone3: the flags are in its struct clone_args
            try:
                flags = struct.unpack("<Q", self.p.sys.m.read(args[0], 8))[0]
            except Exception:
                return LOG                  # EFAULT
            return (EXECUTE if THREADS else REFUSE) if flags & CLONE_THREAD else FORK
        return cls

    def _in_child(self, nr, ret) -> bool:
        """After a fork-class call: is this the new process?"""
        return ret == 0 and os.getpid() != self.host_pid

    def _fix_tids(self, nr, args, child: bool, pid: int) -> None:
        """The pid the recorded run saw, where the fork wrote the host's."""
        flags = args[0] if nr == 56 else 0
        if child and flags & CLONE_CHILD_SETTID and args[3]:
            self.p.sys.write(args[3], struct.pack("<i", pid))
        if not child and flags & CLONE_PARENT_SETTID and args[2]:
            self.p.sys.write(args[2], struct.pack("<i", pid))

    @property
    def host_time(self) -> bool:
        return not self.p.guest.clock.virtual

    def icount(self) -> int:
        return self.p.vcpu.icount

    def _exec_image(self, args):
        """The SHA-256 of the file an execve loads (None: it cannot be read)."""
        p = self.p
        try:
            path = p.sys.cstr(args[0])
            if path in ("/proc/self/exe", "/proc/%d/exe" % p.pid):
                return file_sha256(p.exe_path)
            return file_sha256(p.fs.resolve(path))
        except Exception:
            return None

    def _rewrap(self) -> None:
        if self.p.sys is not self.wrapped:        # an execve made a new Syscalls
            self._wrap_signals(self.on_signal_fn)

    def _wrap_signals(self, fn) -> None:
        self.on_signal_fn = fn
        s = self.wrapped = self.p.sys
        orig = s.deliver_signal

        def deliver(sig, fault=None):
            if not self.capturing:
                fn(sig, fault)
            return orig(sig, fault)
        s.deliver_signal = deliver

    def _iov_data(self, iov, cnt, n) -> bytes:
        s = self.p.sys
        out = bytearray()
        for i in range(min(cnt, 1024)):
            if len(out) >= n:
                break
            base, length = struct.unpack("<QQ", s.read(iov + 16 * i, 16))
            if length:
                out += s.read(base, min(length, n - len(out)))
        return bytes(out[:n])

    def _std_file(self, nr, args):
        """The guest fd an output call writes to, if it is emu's stdout or
        stderr (1 or 2), else None."""
        from emu.linux.syscalls import s32
        f = self.p.fds.get(s32(args[OUTPUT[nr][0]]))
        std = self.std.get(id(f)) if f is not None else None
        return std[0] if std is not None and std[1] is f else None

    def _output_data(self, nr, args, n) -> bytes:
        if OUTPUT[nr][1] == "iov":
            return self._iov_data(args[1], args[2], n)
        return self.p.sys.read(args[1], n)


class Recorder(_Base):
    """Writes the replay log of one process (attach() after load())."""

    def __init__(self, proc, path: str, header: dict):
        super().__init__(proc, path)
        self.header = header
        self.f = open(path, "w", encoding="ascii")
        self.h = hashlib.sha256()
        self.writes: list = []
        self.reads: list = []
        self.rh = hashlib.sha256()
        self.blobs: dict = {}      # file identity -> blob number
        self.before_state = None
        self.closed = False
        self.std = {}
        for gfd in (1, 2):
            f = proc.fds.get(gfd)
            if f is not None:
                self.std[id(f)] = (gfd, f)
        self._emit(dict(header, format=FORMAT))

    def _emit(self, obj) -> None:
        line = json.dumps(obj, separators=(",", ":")) + "\n"
        self.h.update(line.encode("ascii"))
        self.f.write(line)

    def attach(self) -> None:
        p = self.p
        p.add_syscall_hook(self.before, self.after)
        p.add_exit_hook(self.on_exit)
        p.mem_observer = self.on_access
        self._wrap_signals(lambda sig, fault: self._emit(["G", sig, self.icount()]))
        if self.host_time:
            clk = p.guest.clock
            for m in CLOCK_METHODS:
                setattr(clk, m, self._clock(getattr(clk, m)))

    def _clock(self, orig):
        def read(*a):
            val = orig(*a)
            if not self.capturing:
                self._emit(["C", list(val) if isinstance(val, tuple) else val])
            return val
        return read

    def rdtsc(self, value: int) -> int:
        self._emit(["T", value])
        return value

    def on_access(self, addr: int, data: bytes, write: bool) -> None:
        if not self.capturing:
            return
        if write:
            self.writes.append([addr, _b64(bytes(data))])
        elif not self.writes and data:
            # what the call read from guest memory (paths, buffers, structs) before
            # writing any: checked on replay
            self.reads.append([addr, len(data)])
            self.rh.update(data)

    def before(self, p, nr, args):
        self.seq += 1
        self._rewrap()
        cls = self._class(nr, args)
        if cls == REFUSE:
            if nr == 322:
                msg = "--record: execveat is not supported (execve is)"
            else:
                msg = "--record: %s of a thread is not supported (record and replay cover one thread per " \
                      "process)" % _name(nr)
            self._emit(["F", nr, list(args), self.icount(), msg])
            raise ReplayError(msg)
        if cls != LOG:
            ev = ["s", nr, list(args), self.icount()]
            if nr == MMAP and not args[3] & MAP_ANONYMOUS:
                ev.append(self._mmap_file(args))
            elif nr == EXECVE:
                ev.append({"sha256": self._exec_image(args)})
            self._emit(ev)
            if cls == FORK:
                self.forks += 1
                self.f.flush()          # the child must not write the parent's buffered lines again
            return None
        self.pre = b""
        if nr in OUTPUT and OUTPUT[nr][1] == "file" and self._std_file(nr, args) is not None:
            self.pre = self._source_bytes(nr, args)
        self.capturing = True
        self.writes = []
        self.reads = []
        self.rh = hashlib.sha256()
        self.before_state = _state(p)
        return None

    def _source_bytes(self, nr, args) -> bytes:
        """What sendfile or copy_file_range will copy to stdout (read ahead
        without moving the file offset; b"" when that cannot be done)."""
        from emu.linux.syscalls import s32
        p = self.p
        fd, offp, count = (args[1], args[2], args[3]) if nr == 40 else (args[0], args[1], args[4])
        f = p.fds.get(s32(fd))
        if f is None:
            return b""
        try:
            if offp:
                off = struct.unpack("<q", p.sys.m.read(offp, 8))[0]
            else:
                off = os.lseek(f.host_fd, 0, os.SEEK_CUR)
            return os.pread(f.host_fd, min(count, 1 << 24), off)
        except Exception:
            return b""

    def _mmap_file(self, args) -> dict:
        """The file bytes a file mmap maps (as sys_mmap reads them)."""
        _addr, length, _prot, _flags, fd, off = args
        from emu.linux.syscalls import s32
        f = self.p.fds.get(s32(fd))
        if f is None or f.is_dir:
            return {"data": None}
        name = f.gpath or f.path
        try:
            st = os.fstat(f.host_fd)
            size = st.st_size
            want = min(length, max(0, size - off))
            if size > BLOB_MAX:
                data = os.pread(f.host_fd, want, off) if want > 0 else b""
                return {"data": _b64(data), "name": name}
            ident = (st.st_dev, st.st_ino, size, st.st_mtime_ns)
            k = self.blobs.get(ident)
            if k is None:
                # the whole file once (ld.so maps a library whole, then its segments)
                k = self.blobs[ident] = len(self.blobs)
                self._emit(["B", k, _b64(os.pread(f.host_fd, size, 0))])
        except OSError:
            return {"data": None}
        return {"data": "", "blob": k, "off": off, "len": want, "name": name}

    def after(self, p, nr, args, ret):
        cls = self._class(nr, args)
        if cls == FORK and self._in_child(nr, ret):
            self._start_child()
            return None
        if cls != LOG:
            self._emit(["r", ret])
            return None
        self.capturing = False
        ev = ["S", nr, list(args), self.icount(), ret, self.writes]
        self.writes = []
        out = None
        if nr in OUTPUT and isinstance(ret, int) and ret > 0:
            std = self._std_file(nr, args)
            if std is not None:
                data = self.pre[:ret] if OUTPUT[nr][1] == "file" else self._output_data(nr, args, ret)
                out = [std, _b64(data)]
        ev.append(out)
        st = _state(p)
        ev.append(list(st) if st != self.before_state else None)
        ev.append([self.reads, self.rh.hexdigest()[:16]] if self.reads else None)
        self._emit(ev)
        return None

    def _start_child(self) -> None:
        """In a process the guest forked: go on in a log of its own."""
        self.f.close()                  # (flushed before the fork: nothing of the parent's is written)
        self.path = "%s.%d" % (self.path, self.forks)
        self.forks = 0
        self.blobs = {}
        self.host_pid = os.getpid()
        self.f = open(self.path, "w", encoding="ascii")
        self.h = hashlib.sha256()
        self._emit(dict(self.header, format=FORMAT, pid=self.p.pid, child=True))

    def on_exit(self, p, status, signo) -> None:
        self.capturing = False
        self._emit(["X", status, signo, self.icount()])
        if p.forked_child:              # a child never returns to the command line: finish here
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.f.write(json.dumps(["END", self.h.hexdigest()]) + "\n")
        self.f.close()


def read_log(path: str) -> tuple[dict, list]:
    """The header and the events of a log; ReplayError if it is not a whole,
    unchanged emu replay log."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ReplayError("--replay %s: %s" % (path, e.strerror)) from None
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        header = json.loads(lines[0])
        ok = isinstance(header, dict) and header.get("format") == FORMAT
    except (ValueError, IndexError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise ReplayError("--replay %s: not an emu replay log" % path)
    try:
        trailer = json.loads(lines[-1])
    except ValueError:
        trailer = None
    if not (isinstance(trailer, list) and len(trailer) == 2 and trailer[0] == "END"):
        raise ReplayError("--replay %s: the log is incomplete (no trailer)" % path)
    h = hashlib.sha256()
    for ln in lines[:-1]:
        h.update(ln + b"\n")
    if h.hexdigest() != trailer[1]:
        raise ReplayError("--replay %s: the log is damaged or was changed (checksum mismatch)" % path)
    try:
        events = [json.loads(ln) for ln in lines[1:-1]]
    except ValueError:
        raise ReplayError("--replay %s: the log is damaged" % path) from None
    try:
        check_log(header, events)
    except _Bad as e:
        raise ReplayError("--replay %s: the log is damaged (%s)" % (path, e)) from None
    return header, events


# ---- the log's fields, checked before anything uses them ----

class _Bad(Exception):
    pass


U64 = 1 << 64


def _int(x, lo=-(1 << 63), hi=U64 - 1, what="a number"):
    if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
        raise _Bad("%s expected, found %r" % (what, x if not isinstance(x, (str, list, dict)) else type(x).__name__))
    return x


def _str(x, what="a string", limit=1 << 16):
    if not isinstance(x, str) or len(x) > limit:
        raise _Bad("%s expected" % what)
    return x


def _b64ok(x, what="base64 bytes"):
    _str(x, what, 1 << 30)
    try:
        body = x[2:] if x.startswith("z:") else x
        raw = base64.b64decode(body.encode("ascii"), validate=True)
        if x.startswith("z:"):
            zlib.decompress(raw)
    except (ValueError, zlib.error, UnicodeEncodeError):
        raise _Bad("%s expected" % what) from None


def _args(x):
    if not isinstance(x, list) or len(x) != 6:
        raise _Bad("six system-call arguments expected")
    for a in x:
        _int(a, 0, U64 - 1, "a system-call argument")


def _plain(x, depth=0):
    """A literal of ints, strings, None, tuples, lists and dicts, bounded."""
    if depth > 6:
        raise _Bad("nesting too deep")
    if x is None or isinstance(x, (bool, str)):
        return
    if isinstance(x, int):
        _int(x, -U64, U64)
        return
    if isinstance(x, (list, tuple)) and len(x) <= 4096:
        for y in x:
            _plain(y, depth + 1)
        return
    if isinstance(x, dict) and len(x) <= 4096:
        for k, y in x.items():
            _plain(k, depth + 1)
            _plain(y, depth + 1)
        return
    raise _Bad("a plain value expected")


def _literal_dict(text, what):
    import ast
    _str(text, what)
    try:
        d = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        raise _Bad("%s: not a literal" % what) from None
    if not isinstance(d, dict):
        raise _Bad("%s: a record expected" % what)
    for k, v in d.items():
        _int(k, -(1 << 31), 1 << 31, what + " key")
        _plain(v)
    return d


def _check_state(st):
    """A process state record (_state): masks, timers, clock (emu/linux/timers.py)."""
    if not isinstance(st, list) or len(st) not in (6, 9):
        raise _Bad("a process state record expected")
    _int(st[0], 0, U64 - 1, "pending signals")
    _int(st[1], 0, U64 - 1, "the signal mask")
    if st[2] is not None:
        _int(st[2], 0, U64 - 1, "the saved signal mask")
    info = _literal_dict(st[3], "signal info")
    for v in info.values():
        if not isinstance(v, tuple) or not v:
            raise _Bad("signal info: a record expected")
    itimers = _literal_dict(st[4], "interval timers")
    for v in itimers.values():      # [deadline, interval, CPU time?, signal or None, timer id or None]
        if not isinstance(v, list) or len(v) != 5 or not isinstance(v[2], bool):
            raise _Bad("interval timers: [deadline, interval, cpu, signal, id] expected")
        _int(v[0], -(1 << 63), U64 - 1, "a timer deadline")
        _int(v[1], 0, U64 - 1, "a timer interval")
        if v[3] is not None:
            _int(v[3], 1, 64, "a timer signal")
        if v[4] is not None:
            _int(v[4], -(1 << 31), 1 << 31, "a timer id")
    timers = _literal_dict(st[5], "POSIX timers")
    for v in timers.values():
        if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
            raise _Bad("POSIX timers: a record expected")
        if set(v) != {"clock", "signo", "value", "overrun", "last_overrun"}:
            raise _Bad("POSIX timers: a timer record expected")
        _int(v["clock"], -(1 << 31), 1 << 31, "a timer clock")
        if v["signo"] is not None:
            _int(v["signo"], 1, 64, "a timer signal")
        _int(v["value"], -(1 << 63), U64 - 1, "a timer value")
        _int(v["overrun"], 0, U64 - 1, "an overrun count")
        _int(v["last_overrun"], 0, U64 - 1, "an overrun count")
    if len(st) == 9:
        if not isinstance(st[6], list) or len(st[6]) > 4096:
            raise _Bad("thread TSCs expected")
        for x in st[6]:
            _int(x, 0, U64 - 1, "a TSC")
        _int(st[7], 0, U64 - 1, "idle time")
        _int(st[8], 0, U64 - 1, "the clock")


_KINDS = {"G", "C", "T", "F", "s", "B", "r", "S", "X"}


def check_event(ev) -> None:
    """One event's fields, by kind (what Recorder writes)."""
    if not isinstance(ev, list) or not ev or not isinstance(ev[0], str) or ev[0] not in _KINDS:
        raise _Bad("an event expected")
    k, n = ev[0], len(ev)
    if k == "G":
        if n != 3:
            raise _Bad("a signal event has 3 fields")
        _int(ev[1], 1, 64, "a signal")
        _int(ev[2], 0, U64 - 1, "an instruction count")
    elif k == "C":
        if n != 2:
            raise _Bad("a clock event has 2 fields")
        vals = ev[1] if isinstance(ev[1], list) else [ev[1]]
        if len(vals) > 8:
            raise _Bad("a clock value expected")
        for v in vals:
            _int(v, -(1 << 63), U64 - 1, "a clock value")
    elif k == "T":
        if n != 2:
            raise _Bad("a TSC event has 2 fields")
        _int(ev[1], 0, U64 - 1, "a TSC value")
    elif k == "B":
        if n != 3:
            raise _Bad("a file event has 3 fields")
        _int(ev[1], 0, 1 << 20, "a file number")
        _b64ok(ev[2])
    elif k == "r":
        if n != 2:
            raise _Bad("a result event has 2 fields")
        if ev[1] is not None:                   # (None: the call restarts after a handler)
            _int(ev[1], -(1 << 63), U64 - 1, "a result")
    elif k == "X":
        if n != 4:
            raise _Bad("an exit event has 4 fields")
        if ev[1] is not None:
            _int(ev[1], 0, 255, "an exit status")
        if ev[2] is not None:
            _int(ev[2], 1, 64, "a signal")
        if (ev[1] is None) == (ev[2] is None):
            raise _Bad("an exit status or a signal expected")
        _int(ev[3], 0, U64 - 1, "an instruction count")
    else:                       # "F", "s", "S": a system call
        if n < 4:
            raise _Bad("a system-call event is too short")
        _int(ev[1], 0, 1023, "a system-call number")
        _args(ev[2])
        _int(ev[3], 0, U64 - 1, "an instruction count")
        if k == "F":
            if n != 5:
                raise _Bad("a refused-call event has 5 fields")
            _str(ev[4], "a message", 4096)
        elif k == "s":
            if n not in (4, 5):
                raise _Bad("an executed-call event has 4 or 5 fields")
            if n == 5:
                extra = ev[4]
                if not isinstance(extra, dict) or set(extra) - {"data", "blob", "off", "len", "name", "sha256"}:
                    raise _Bad("a call record expected")
                if extra.get("data"):
                    _b64ok(extra["data"])
                elif "data" in extra and extra["data"] not in ("", None):
                    raise _Bad("mapped bytes expected")
                for f in ("blob", "off", "len"):
                    if f in extra:
                        _int(extra[f], 0, U64 - 1, "a mapping field")
                for f in ("name", "sha256"):
                    if f in extra:
                        _str(extra[f], "a name", 4096)
        else:                   # "S": a logged call
            if n != 9:
                raise _Bad("a logged-call event has 9 fields")
            if ev[4] is not None:
                _int(ev[4], -(1 << 63), U64 - 1, "a result")
            if not isinstance(ev[5], list) or len(ev[5]) > 1 << 20:
                raise _Bad("memory writes expected")
            for w in ev[5]:
                if not isinstance(w, list) or len(w) != 2:
                    raise _Bad("a memory write expected")
                _int(w[0], 0, U64 - 1, "an address")
                _b64ok(w[1])
            if ev[6] is not None:
                if not isinstance(ev[6], list) or len(ev[6]) != 2:
                    raise _Bad("output expected")
                _int(ev[6][0], 1, 2, "stdout or stderr")
                _b64ok(ev[6][1])
            if ev[7] is not None:
                _check_state(ev[7])
            if ev[8] is not None:
                r = ev[8]
                if not isinstance(r, list) or len(r) != 2 or not isinstance(r[0], list):
                    raise _Bad("memory reads expected")
                for x in r[0]:
                    if not isinstance(x, list) or len(x) != 2:
                        raise _Bad("a memory read expected")
                    _int(x[0], 0, U64 - 1, "an address")
                    _int(x[1], 0, 1 << 30, "a length")
                _str(r[1], "a digest", 64)


_OPTIONS = {"time": ("virtual", "host", None), "profile": ("stealth", "transparent", "host", "baseline", None)}


def check_log(header, events) -> None:
    """The header's and every event's fields: a log edited with its checksum
    recomputed is refused here rather than reaching the replay code."""
    for f in ("emu", "program", "exe", "sha256", "env_sha256"):
        if f in header:
            _str(header[f], "header field %s" % f)
    argv = header.get("argv", [])
    if not isinstance(argv, list) or len(argv) > 65536 or not all(isinstance(a, str) for a in argv):
        raise _Bad("header field argv: a list of strings expected")
    env = header.get("env", {})
    if not isinstance(env, dict) or len(env) > 65536 or not all(
            isinstance(k, str) and isinstance(v, str) and "=" not in k and "\0" not in k + v for k, v in env.items()):
        raise _Bad("header field env: a record of strings expected")
    if "pid" in header:
        _int(header["pid"], 1, (1 << 22), "header field pid")
    cpuid = header.get("cpuid", [])
    if not isinstance(cpuid, list) or len(cpuid) > 4096:
        raise _Bad("header field cpuid: a table expected")
    for e in cpuid:
        if not isinstance(e, list) or len(e) != 6:
            raise _Bad("header field cpuid: entries of 6 values expected")
        for i, x in enumerate(e):
            if i == 1 and x is None:
                continue
            _int(x, 0, 0xFFFFFFFF, "a CPUID value")
    opts = header.get("options", {})
    if not isinstance(opts, dict):
        raise _Bad("header field options: a record expected")
    for f, allowed in _OPTIONS.items():
        if opts.get(f) not in allowed:
            raise _Bad("header option %s: %r" % (f, opts.get(f)))
    if opts.get("seed") is not None:
        _int(opts["seed"], 0, U64 - 1, "header option seed")
    for f in ("root", "sandbox"):
        if opts.get(f) is not None:
            _str(opts[f], "header option %s" % f, 4096)
    for i, ev in enumerate(events):
        try:
            check_event(ev)
        except _Bad as e:
            raise _Bad("event %d: %s" % (i + 1, e)) from None


class Replayer(_Base):
    """Feeds a process the outside world from a log (attach() after load())."""

    def __init__(self, proc, header: dict, events: list, path: str = ""):
        super().__init__(proc, path)
        self.header = header
        self.events = events
        self.i = 0
        self.kind = None          # of the system call in progress
        self.kids = {}            # pid the recorded run saw -> the replayed child's host pid
        self.blobs = {}           # blob number -> the bytes of a mapped file
        self.out = {}
        for gfd in (1, 2):
            f = proc.fds.get(gfd)
            try:
                self.out[gfd] = os.dup(f.host_fd if f is not None else gfd)
            except OSError:
                pass

    def attach(self) -> None:
        p = self.p
        p.add_syscall_hook(self.before, self.after)
        p.add_exit_hook(self.on_exit)
        self._wrap_signals(self.on_signal)
        if self.host_time:
            clk = p.guest.clock
            for m in CLOCK_METHODS:
                setattr(clk, m, self._clock(m))
            clk.sleep = lambda vcpus, ns: None       # the recorded run waited; the replay need not

    # ---- events ----
    def _what(self, ev) -> str:
        if ev is None:
            return "the end of the log"
        k = ev[0]
        if k in ("S", "s"):
            return "%s at instruction %d" % (_call(ev[1], ev[2]), ev[3])
        if k == "r":
            return "result %s" % ev[1]
        if k == "G":
            return "signal %d at instruction %d" % (ev[1], ev[2])
        if k == "X":
            return ("exit status %d" % ev[1] if ev[2] is None else "death by signal %d" % ev[2]) + \
                " at instruction %d" % ev[3]
        if k == "F":
            return "%s at instruction %d (refused by --record)" % (_call(ev[1], ev[2]), ev[3])
        if k == "C":
            return "a clock read"
        if k == "T":
            return "an RDTSC"
        return repr(k)

    def _peek(self):
        while self.i < len(self.events) and self.events[self.i][0] == "B":
            ev = self.events[self.i]
            self.blobs[ev[1]] = _unb64(ev[2])
            self.i += 1
        return self.events[self.i] if self.i < len(self.events) else None

    def _next(self, kinds: str, now: str):
        ev = self._peek()
        if ev is None or ev[0] not in kinds:
            self.diverged(now, ev)
        self.i += 1
        return ev

    def diverged(self, now: str, ev) -> None:
        raise ReplayDivergence("replay diverged at event %d: the program made %s where the log has %s"
                               % (self.i + 1, now, self._what(ev)))

    def _clock(self, name):
        def read(*a):
            ev = self._next("C", "a clock read (%s)" % name)
            return tuple(ev[1]) if isinstance(ev[1], list) else ev[1]
        return read

    def rdtsc(self, value: int) -> int:
        return self._next("T", "an RDTSC at instruction %d" % self.icount())[1]

    def on_signal(self, sig, fault) -> None:
        now = "signal %d at instruction %d" % (sig, self.icount())
        ev = self._peek()
        if ev is None or ev[0] != "G" or ev[1] != sig or ev[2] != self.icount():
            self.diverged(now, ev)
        self.i += 1

    def on_exit(self, p, status, signo) -> None:
        now = ("exit status %d" % status if signo is None else "death by signal %d" % signo) + \
            " at instruction %d" % self.icount()
        ev = self._peek()
        if ev is None or ev[0] != "X" or ev[1] != status or ev[2] != signo or ev[3] != self.icount():
            self.diverged(now, ev)
        self.i += 1
        if p.forked_child:
            self.finish()

    def before(self, p, nr, args):
        from emu.linux.process import GuestExit, GuestKilled
        self.seq += 1
        self._rewrap()
        now = "%s at instruction %d" % (_call(nr, args), self.icount())
        ev = self._peek()
        if ev is not None and ev[0] == "X" and CLASSES.get(nr, LOG) == LOG and ev[3] == self.icount():
            # the recorded process ended inside this call
            self.kind = None
            if ev[2] is not None:
                raise GuestKilled(ev[2])
            raise GuestExit(ev[1])
        ev = self._next("SsF", now)
        if ev[1] != nr or list(args) != ev[2] or ev[3] != self.icount():
            self.i -= 1
            self.diverged(now, ev)
        if ev[0] == "F":
            raise ReplayError("the recorded run stopped here: %s" % ev[4])
        self.kind = ev[0]
        if ev[0] == "s":
            if self._class(nr, args) == FORK:
                self.forks += 1
                import sys
                sys.stdout.flush()
            if nr == MMAP and len(ev) > 4:
                return self._mmap_file(args, ev[4])
            if nr == EXECVE and len(ev) > 4 and ev[4].get("sha256") != self._exec_image(args):
                nxt = self.events[self.i] if self.i < len(self.events) else None
                if not (nxt and nxt[0] == "r"):      # it loaded a program: this must be the same file
                    self.i -= 1
                    self.diverged("%s of a different program file" % now, ev)
            return None
        _k, _nr, _args, _ic, ret, writes, out, state, reads = ev
        if reads is not None:
            h = hashlib.sha256()
            try:
                for addr, n in reads[0]:
                    h.update(p.sys.read(addr, n) if n else b"")
            except Exception:
                h = None
            if h is None or h.hexdigest()[:16] != reads[1]:
                raise ReplayDivergence("replay diverged at event %d: %s reads other data from guest memory (a path, "
                                       "buffer or structure) than in the recorded run" % (self.i, now))
        if nr == 61 and ret in self.kids:       # wait4 reaped a child: let the replayed one finish first
            try:
                os.waitpid(self.kids.pop(ret), 0)
            except OSError:
                pass
        s = p.sys
        from emu.linux.syscalls import Fault
        for addr, data in writes:
            try:
                s.write(addr, _unb64(data))
            except Fault:
                raise ReplayDivergence("replay diverged at event %d: %s wrote guest memory at %#x, which is not "
                                       "writable here" % (self.i, now, addr)) from None
        if out is not None:
            data = _unb64(out[1])
            try:
                mine = self._output_data(nr, args, len(data)) if OUTPUT[nr][1] != "file" else data
            except Exception:
                mine = None
            if mine != data:
                raise ReplayDivergence("replay diverged at event %d: %s writes other bytes than in the recorded "
                                       "run" % (self.i, now))
            self._emit_output(out[0], data)
        if state is not None:
            _set_state(p, state)
        return ret

    def _mmap_file(self, args, extra):
        nxt = self._peek()
        if extra.get("data") is None or nxt is not None and nxt[0] == "r" and isinstance(nxt[1], int) \
                and -4096 < nxt[1] < 0:
            return nxt[1] if nxt is not None and nxt[0] == "r" else -9
        addr, length, prot, flags, _fd, off = args
        if "blob" in extra:
            data = self.blobs[extra["blob"]][extra["off"]:extra["off"] + extra["len"]]
        else:
            data = _unb64(extra["data"])
        return self.p.mm.mmap(addr, length, prot & 7, flags, data, 0, extra.get("name", ""), -1, off)

    def _emit_output(self, stream: int, data: bytes) -> None:
        fd = self.out.get(stream)
        if fd is None:
            return
        while data:
            try:
                n = os.write(fd, data)
            except OSError:
                return
            data = data[n:]

    def after(self, p, nr, args, ret):
        kind, self.kind = self.kind, None
        if kind == "s" and self._class(nr, args) == FORK:
            if self._in_child(nr, ret):
                self._start_child(nr, args)
                return None
            ev = self._next("r", "%s returning a pid" % _call(nr, args))
            if not isinstance(ev[1], int) or ev[1] <= 0:
                self.diverged("%s returning a pid" % _call(nr, args), ev)
            self._fix_tids(nr, args, False, ev[1])
            if isinstance(ret, int) and ret > 0:
                self.kids[ev[1]] = ret
            return ev[1]                # the child's pid as the recorded run saw it
        if kind == "s":
            ev = self._peek()
            if ev is None or ev[0] != "r" or ev[1] != ret:
                self.diverged("%s returning %s" % (_call(nr, args), ret), ev)
            self.i += 1
        return None

    def _start_child(self, nr, args) -> None:
        """In the forked process: replay from the child's own log."""
        self.path = "%s.%d" % (self.path, self.forks)
        self.forks = 0
        self.host_pid = os.getpid()
        header, self.events = read_log(self.path)
        self.i = 0
        self.blobs = {}
        p = self.p
        p.pid = p.current.tid = header.get("pid", p.pid)
        p.next_tid = p.pid + 1
        self._fix_tids(nr, args, True, p.pid)

    def finish(self) -> None:
        """After the process ended: the log must have ended too."""
        if self._peek() is not None:
            self.diverged("nothing more (it ended)", self._peek())

    def close(self) -> None:
        for fd in self.out.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.out = {}


def rdtsc_policy(session, inner=None):
    """Host time: a trap policy that logs (record) or supplies (replay) every
    RDTSC/RDTSCP value; `inner`: another policy whose handlers still see
    the events (--report)."""
    from emu.hypervisor import Policy
    handlers = dict(inner.handlers) if inner is not None else {}
    table = dict(inner.table) if inner is not None else None
    inner_rdtsc = handlers.get("rdtsc")

    def on_rdtsc(ev):
        if inner_rdtsc is not None:
            inner_rdtsc(ev)
        return session[0].rdtsc(ev.default())
    handlers["rdtsc"] = on_rdtsc
    return Policy(table, **handlers)


def make_header(proc, a, seed) -> dict:
    from emu.cli import version
    return {"emu": version(), "program": a.program, "exe": proc.exe_path,
            "sha256": file_sha256(proc.exe_path), "argv": list(proc.argv), "env": dict(proc.env),
            "env_sha256": env_sha256(proc.env), "pid": proc.pid,
            "cpuid": [list(e) for e in proc.guest.table],
            "options": {"time": a.time, "profile": a.profile, "seed": seed, "root": a.root, "cpu": a.cpu,
                        "sandbox": a.sandbox}}


def check_header(proc, header: dict, path: str) -> None:
    """Refuse a log made for another program (or an edited environment)."""
    try:
        mine = file_sha256(proc.exe_path)
    except OSError as e:
        raise ReplayError("--replay %s: %s: %s" % (path, proc.exe_path, e.strerror)) from None
    if mine != header.get("sha256"):
        raise ReplayError("--replay %s: the log was recorded for another program (%s, sha256 %s...; this one "
                          "is %s...)" % (path, header.get("program"), str(header.get("sha256"))[:12], mine[:12]))
    if env_sha256(header.get("env", {})) != header.get("env_sha256"):
        raise ReplayError("--replay %s: the log's environment does not match its hash" % path)


def set_cpuid(guest, table) -> None:
    """Replay: the CPUID table of the recorded run (before the vCPU is set up)."""
    t = [tuple(e) for e in table]
    guest.table = t
    if guest.hypervisor is not None:
        guest.hypervisor.cpuid_table = t
