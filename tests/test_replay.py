"""Record and replay (`emu run --record LOG` / `--replay LOG`,
emu/linux/replay.py): a replay prints the same bytes, exits with the same
status and retires the same instructions as the recorded run, whatever the
outside world says now (files deleted or changed, other stdin, host clocks);
a damaged log or another program is refused, and a run that departs from the
log stops at the first difference."""
import json
import os
import re
import subprocess
import sys

import pytest

import emu as _emu_pkg
from emu.linux import replay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
BIN = os.path.join(ROOT, "guests", "linux", "bin")
INPUT = os.path.join(BIN, "replay_input.glibc")
TIMECHECK = os.path.join(ROOT, "guests", "antivm", "timecheck")


def emu_run(*args, stdin=b"", cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = EMU_PATH + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], input=stdin, capture_output=True,
                          timeout=120, cwd=cwd or os.path.dirname(ROOT), env=env)


def insns(stderr: bytes) -> int:
    return int(re.search(rb"emu: (\d+) instructions", stderr).group(1))


def guest_err(stderr: bytes) -> bytes:
    """The guest's stderr without emu's --stats lines."""
    return b"".join(ln for ln in stderr.splitlines(True) if not re.match(rb"emu: (\d+ instructions|blocks|TLB|exits|tier)", ln))


def same_run(a, b):
    assert a.returncode == b.returncode
    assert a.stdout == b.stdout
    assert guest_err(a.stderr) == guest_err(b.stderr)
    assert insns(a.stderr) == insns(b.stderr) > 0


@pytest.mark.parametrize("prog,opts", [("fileio.glibc", ["--time", "virtual", "--seed", "3"]),
                                       ("stdio_malloc.musl", []),
                                       ("clocks.glibc", ["--time", "virtual"]),      # forks: a log per process
                                       ("fork_pipe.glibc", []),                       # fork, execve, wait4
                                       ("threads.glibc", []), ("threads.musl", ["--time", "virtual"])])
def test_guests_replay_exactly(prog, opts, tmp_path):
    log = str(tmp_path / "run.log")
    rec = emu_run("--stats", "--record", log, *opts, os.path.join(BIN, prog), cwd=str(tmp_path))
    assert rec.stdout and b"not supported" not in rec.stderr, rec.stderr
    rep = emu_run("--stats", "--replay", log, os.path.join(BIN, prog), cwd=str(tmp_path))
    same_run(rec, rep)
    assert b"diverged" not in rep.stderr


def test_inputs_come_from_the_log(tmp_path):
    data = tmp_path / "data.txt"
    data.write_bytes(b"first version of the file\n" * 300)
    log = str(tmp_path / "in.log")
    rec = emu_run("--stats", "--record", log, INPUT, str(data), stdin=b"stdin bytes " * 1000)
    assert b"stdin 12000 bytes, file 7800 bytes (stat 7800)" in rec.stdout, rec.stderr
    # the file changes, stdin differs: a plain run sees that...
    data.write_bytes(b"second")
    other = emu_run("--stats", INPUT, str(data), stdin=b"other")
    assert other.stdout != rec.stdout
    # ... a replay does not, even with the file gone
    data.unlink()
    rep = emu_run("--stats", "--replay", log, INPUT, str(data), stdin=b"something else entirely")
    same_run(rec, rep)
    assert guest_err(rep.stderr) == b"done\n"
    # the log is JSON lines: header, events, trailer
    lines = open(log).read().splitlines()
    head = json.loads(lines[0])
    assert head["format"] == "emu-replay-1" and head["argv"] == [INPUT, str(data)]
    assert head["options"]["time"] == "host" and isinstance(head["options"]["seed"], int)
    assert json.loads(lines[-1])[0] == "END"
    events = [json.loads(ln) for ln in lines[1:-1]]
    reads = [e for e in events if e[0] == "S" and e[1] == 0 and e[4] > 0]     # read(): result and bytes
    assert sum(e[4] for e in reads) == 12000 + 7800
    assert all(sum(len(replay._unb64(w[1])) for w in e[5]) == e[4] for e in reads)
    # --strace on a replay names the calls the log answers
    r = emu_run("--strace", "--replay", log, INPUT, str(data))
    assert re.search(rb"\nread\(0, .*= 1000\n", r.stderr) and b"syscall_" not in r.stderr


def test_host_time_replays_clock_values(tmp_path):
    """timecheck prints raw TSC, clock_gettime, gettimeofday and time values
    (host time: the host's); the replay prints the same ones at once."""
    log = str(tmp_path / "t.log")
    rec = emu_run("--stats", "--record", log, "--time", "host", TIMECHECK)
    assert rec.returncode == 0 and b"mono_ns" in rec.stdout
    events = [json.loads(ln) for ln in open(log).read().splitlines()[1:-1]]
    assert any(e[0] == "T" for e in events)          # RDTSC values are logged
    rep = emu_run("--stats", "--replay", log, TIMECHECK)
    same_run(rec, rep)
    # a second replay too (nothing of the first one's host time leaks in)
    same_run(rep, emu_run("--stats", "--replay", log, TIMECHECK))


def test_refusals_and_divergence(tmp_path):
    log = str(tmp_path / "a.log")
    rec = emu_run("--record", log, "--time", "virtual", INPUT, "/etc/hostname", stdin=b"x")
    assert rec.returncode in range(8)
    # another program
    r = emu_run("--replay", log, os.path.join(BIN, "fileio.glibc"))
    assert r.returncode == 2 and r.stdout == b""
    assert r.stderr.count(b"\n") == 1 and b"recorded for another program" in r.stderr
    # other options than the log's
    r = emu_run("--replay", log, "--time", "host", INPUT, "/etc/hostname")
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1 and b"--time virtual" in r.stderr
    # a changed byte anywhere
    raw = bytearray(open(log, "rb").read())
    i = raw.index(b'"S"', len(raw) // 2)
    raw[i + 5:i + 6] = b"7" if raw[i + 5:i + 6] != b"7" else b"8"
    bad = tmp_path / "bad.log"
    bad.write_bytes(bytes(raw))
    r = emu_run("--replay", str(bad), INPUT, "/etc/hostname")
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1 and b"checksum" in r.stderr
    # a truncated log, and something that is no log at all
    (tmp_path / "cut.log").write_bytes(open(log, "rb").read()[:-80])
    r = emu_run("--replay", str(tmp_path / "cut.log"), INPUT, "/etc/hostname")
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1
    r = emu_run("--replay", INPUT, INPUT)
    assert r.returncode == 2 and b"not an emu replay log" in r.stderr
    # other arguments: the run departs from the log at its first differing system call
    r = emu_run("--replay", log, INPUT, "/etc/hostnam")
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.count(b"\n") == 1 and b"replay diverged at event" in r.stderr
    assert b"Traceback" not in r.stderr


def test_api_and_a_refused_call(tmp_path, monkeypatch):
    """From Python: a Recorder on a Process; with threads switched off
    (replay.THREADS) the clone of a thread is refused with one line, and
    the replay stops at the same call."""
    from emu.linux.process import Process
    prog = os.path.join(BIN, "threads.glibc")
    monkeypatch.setattr(replay, "THREADS", False)
    log = str(tmp_path / "th.log")
    p = Process([prog], env={"A": "1"}, seed=5, time="virtual")
    p.load(prog)
    hdr = {"program": prog, "exe": p.exe_path, "sha256": replay.file_sha256(p.exe_path), "argv": [prog],
           "env": {"A": "1"}, "env_sha256": replay.env_sha256({"A": "1"}), "pid": p.pid,
           "options": {"time": "virtual", "profile": "transparent", "seed": 5}}
    rec = replay.Recorder(p, log, hdr)
    rec.attach()
    with pytest.raises(replay.ReplayError) as e:
        p.run()
    rec.close()
    assert str(e.value).startswith("--record: clone") and "of a thread is not supported" in str(e.value)
    header, events = replay.read_log(log)
    assert events[-1][0] == "F"
    r = emu_run("--replay", log, prog)
    assert r.returncode == 1 and r.stderr.count(b"\n") == 1
    assert b"the recorded run stopped here: --record: clone" in r.stderr


def test_signals_replay(tmp_path):
    """setjmp_signals takes SIGSEGV/SIGFPE handlers and raises signals: the
    deliveries are logged with their instruction counts and checked."""
    prog = os.path.join(BIN, "setjmp_signals.glibc")
    log = str(tmp_path / "sig.log")
    rec = emu_run("--stats", "--record", log, prog)
    events = [json.loads(ln) for ln in open(log).read().splitlines()[1:-1]]
    sigs = [e for e in events if e[0] == "G"]
    assert sigs and all(e[2] > 0 for e in sigs)
    same_run(rec, emu_run("--stats", "--replay", log, prog))


@pytest.mark.skipif(not os.path.exists("/bin/cat"), reason="no /bin/cat")
def test_dynamic_host_program(tmp_path):
    """A dynamically linked host program: ld.so maps its libraries from
    files (their bytes are logged), cat copies the file to stdout
    (copy_file_range or read/write): the replay prints it with the file gone;
    --profile host's CPUID table is in the log."""
    data = tmp_path / "f.txt"
    data.write_bytes(b"".join(b"line %d\n" % i for i in range(2000)))
    log = str(tmp_path / "cat.log")
    rec = emu_run("--stats", "--profile", "host", "--record", log, "/bin/cat", str(data))
    assert rec.returncode == 0 and rec.stdout == data.read_bytes()
    data.unlink()
    rep = emu_run("--stats", "--replay", log, "/bin/cat", str(data))
    same_run(rec, rep)
    assert json.loads(open(log).readline())["cpuid"]
    _h, events = replay.read_log(log)
    blobs = [e for e in events if e[0] == "B"]          # each mapped library once, whole
    assert blobs and len({e[1] for e in blobs}) == len(blobs)
    assert any(e[0] == "s" and e[1] == 9 and len(e) > 4 and "blob" in e[4] for e in events)
