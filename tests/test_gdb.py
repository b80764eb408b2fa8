"""The gdb stub (emu/gdbstub.py) driven by Debian's gdb in batch mode, with
gdb debugging the same program natively as the oracle: the transcript of
breakpoints, steps, variables, registers and watchpoint hits must match.
A raw protocol client checks Ctrl-C, the register file and killing."""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

import emu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `emu` subprocesses import the package this test imports, from outside the
# source tree (`python -m` there would import ./emu, built or not)
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(emu.__file__)))
ENV = dict(os.environ, PYTHONPATH=EMU_PATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
TARGET = os.path.join(ROOT, "guests", "gdb", "target")
SPIN = os.path.join(ROOT, "guests", "gdb", "spin")
GDB = shutil.which("gdb")

needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed (apt-get install gdb)")

SCRIPT = """set pagination off
set confirm off
break main
{start}
next
next
info registers rip
print total
print counter
print/x $eflags & 0x8d5
step
step
bt
print x
finish
stepi
x/i $pc
watch counter
continue
continue
delete
break 23
continue
print d
print $xmm0.v2_double[0]
next
print scale * 2
print $cs
print $fs_base != 0
continue
"""


def start_emu(program, *extra):
    """`emu run --gdb 0 PROGRAM`: the process and the port it listens on."""
    # -X faulthandler: a hung session is killed with SIGABRT, which prints
    # every thread's Python stack to stderr for the failure message
    p = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "emu", "run", "--gdb", "0", *extra, program],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=os.path.dirname(ROOT), env=ENV)
    line = p.stderr.readline().decode()
    m = re.search(r"waiting for gdb on 127\.0\.0\.1:(\d+)", line)
    assert m, line
    return p, int(m.group(1))


def normalise(text):
    """The part of a gdb transcript both runs share: from the first stop at
    main on, without the process/remote naming and the program's output."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Breakpoint 1, main"))
    out = []
    for ln in lines[start:]:
        if ln.startswith("total=") or ln.startswith("warning:"):
            continue
        ln = re.sub(r"\[Inferior 1 \((process \d+|Remote target)\) ", "[Inferior 1 ", ln)
        out.append(ln)
    return out


@needs_gdb
def test_gdb_session_matches_native(tmp_path):
    for name, start in (("native.gdb", "run"), ("remote.gdb", "continue")):
        (tmp_path / name).write_text(SCRIPT.format(start=start))
    native = subprocess.run([GDB, "-batch", "-nx", "-ex", "set startup-with-shell off",
                             "-x", str(tmp_path / "native.gdb"), TARGET],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    p, port = start_emu(TARGET)
    try:
        try:
            remote = subprocess.run([GDB, "-batch", "-nx", "-ex", "target remote 127.0.0.1:%d" % port,
                                     "-x", str(tmp_path / "remote.gdb"), TARGET],
                                    capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            p.send_signal(signal.SIGABRT)
            _, err = p.communicate(timeout=30)
            said = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
            raise AssertionError("gdb session hung; gdb printed:\n%s\nemu's stacks:\n%s"
                                 % (said[-3000:], err.decode(errors="replace")[-6000:])) from None
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError("emu did not end after gdb: " + remote.stdout[-2000:]) from None
    finally:
        p.kill()
    want, got = normalise(native.stdout), normalise(remote.stdout)
    assert got == want, "\n".join(got) + "\n--- native ---\n" + "\n".join(want) + "\n" + remote.stderr
    # what the script had to see (so a broken oracle cannot pass either)
    text = "\n".join(got)
    for needed in ("Breakpoint 1, main () at", "$1 = 0", "square (x=0) at", "Value returned is $5 = 0",
                   "Hardware watchpoint 2: counter", "Old value = 1", "New value = 2", "Old value = 2",
                   "New value = 3", "$6 = 7.5", "$7 = 7.5", "$8 = 3", "$9 = 51", "$10 = 1",
                   "exited with code 05]"):
        assert needed in text, needed
    assert p.returncode == 5
    assert out == b"total=5 counter=3 d=7.5\n"


class Client:
    """A minimal remote-protocol client (acknowledgements on)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def _read(self):
        d = self.s.recv(65536)
        assert d, "the stub closed the connection"
        self.buf += d

    def packet(self):
        while True:
            while b"#" not in self.buf or len(self.buf) < self.buf.index(b"#") + 3:
                self._read()
            i = self.buf.index(b"$")
            j = self.buf.index(b"#")
            payload = self.buf[i + 1:j]
            assert int(self.buf[j + 1:j + 3], 16) == sum(payload) & 0xFF
            self.buf = self.buf[j + 3:]
            self.s.sendall(b"+")
            return payload.decode("latin-1")

    def send(self, payload):
        data = payload.encode()
        self.s.sendall(b"$" + data + b"#%02x" % (sum(data) & 0xFF))
        while not self.buf:
            self._read()
        assert self.buf[:1] == b"+", self.buf
        self.buf = self.buf[1:]

    def ask(self, payload):
        self.send(payload)
        return self.packet()


def test_protocol_registers_interrupt_kill():
    """Registers at the entry point, a breakpoint by address, Ctrl-C while the
    guest computes, and k ending emu."""
    with open(SPIN, "rb") as f:
        image = f.read()
    entry, phoff = struct.unpack_from("<QQ", image, 24)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    text = None
    for i in range(phnum):       # the PT_LOAD segment holding the entry point
        ptype, flags, off, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", image, phoff + i * phentsize)
        if ptype == 1 and vaddr <= entry < vaddr + filesz:
            text = image[off + entry - vaddr:off + entry - vaddr + 4]
    p, port = start_emu(SPIN)
    try:
        c = Client(port)
        assert "swbreak+" in c.ask("qSupported:swbreak+;hwbreak+")
        xml = ""
        while True:
            part = c.ask("qXfer:features:read:target.xml:%x,400" % len(xml))
            xml += part[1:]
            if part[0] == "l":
                break
        assert xml.endswith("</target>") and "org.gnu.gdb.i386.sse" in xml and "fs_base" in xml
        assert c.ask("?").startswith("T05")
        regs = bytes.fromhex(c.ask("g"))
        assert int.from_bytes(regs[16 * 8:17 * 8], "little") == entry      # rip
        rsp = int.from_bytes(regs[7 * 8:8 * 8], "little")
        argc = bytes.fromhex(c.ask("m%x,8" % rsp))
        assert int.from_bytes(argc, "little") == 1                          # argc on the initial stack
        assert bytes.fromhex(c.ask("m%x,4" % entry)) == text
        # write a register and read it back
        assert c.ask("P0=%s" % (0x1122334455667788).to_bytes(8, "little").hex()) == "OK"
        assert c.ask("p0") == (0x1122334455667788).to_bytes(8, "little").hex()
        # one instruction
        c.send("s")
        assert c.packet().startswith("T05")
        rip = int.from_bytes(bytes.fromhex(c.ask("p10")), "little")
        assert rip != entry
        # run, then interrupt
        c.send("vCont;c")
        time.sleep(0.5)
        c.s.sendall(b"\x03")
        assert c.packet().startswith("T02")
        assert p.poll() is None
        c.s.sendall(b"$k#6b")
        p.wait(timeout=30)
        assert p.returncode == 137
    finally:
        p.kill()
        p.wait()


def test_gdb_port_errors():
    r = subprocess.run([sys.executable, "-m", "emu", "run", "--gdb", "70000", TARGET],
                       capture_output=True, text=True, timeout=60, cwd=os.path.dirname(ROOT), env=ENV)
    assert r.returncode == 2 and "not a TCP port" in r.stderr and "Traceback" not in r.stderr
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    busy = s.getsockname()[1]
    try:
        r = subprocess.run([sys.executable, "-m", "emu", "run", "--gdb", str(busy), TARGET],
                           capture_output=True, text=True, timeout=60, cwd=os.path.dirname(ROOT), env=ENV)
    finally:
        s.close()
    assert r.returncode == 2 and "--gdb %d" % busy in r.stderr and "Traceback" not in r.stderr
