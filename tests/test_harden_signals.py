"""Host signals and `emu run`: SIGINT, SIGTERM and SIGHUP reach a computing
guest as the same signal at an instruction boundary (its handler runs, or
the default action ends it with 128+n); a second Ctrl-C the guest has not
taken ends emu itself (130); MAP_SHARED pages are written back when the
guest dies of a signal; a forked child killed with SIGKILL is an ordinary
child death for its parent."""
import os
import signal
import subprocess
import sys
import time

import pytest

import emu as _emu_pkg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROG = os.path.join(ROOT, "guests", "linux", "bin", "host_signals.glibc")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))


def start(*args, cwd=None):
    p = subprocess.Popen([sys.executable, "-m", "emu", "run", PROG, *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=cwd, env=dict(os.environ, PYTHONPATH=EMU_PATH))
    return p


def wait_line(p, prefix):
    line = p.stdout.readline().decode()
    assert line.startswith(prefix), line + p.stderr.read().decode()
    time.sleep(0.3)                   # the guest is computing now
    return line


def finish(p, timeout=30):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("emu did not stop: " + err.decode())
    return out.decode(), err.decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_guest_handler_runs(sig):
    p = start("handlers")
    wait_line(p, "ready")
    p.send_signal(sig)
    out, err = finish(p)
    assert out == "handler ran for signal %d\n" % sig, err
    assert p.returncode == 3


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_default_action_ends_the_guest(sig):
    p = start("default")
    wait_line(p, "ready")
    p.send_signal(sig)
    out, err = finish(p)
    assert p.returncode == 128 + sig, err
    assert "internal error" not in err


def test_second_ctrl_c_ends_emu():
    """The guest blocks SIGINT: the first Ctrl-C stays pending for it, the
    second ends emu."""
    p = start("blocked")
    wait_line(p, "ready")
    p.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    out, err = finish(p)
    assert p.returncode == 130 and "interrupted" in err, err


def test_sigkill_of_a_forked_child():
    p = start("child")
    line = wait_line(p, "child ")
    os.kill(int(line.split()[1]), signal.SIGKILL)
    out, err = finish(p)
    assert out == "child killed by signal 9\n", err
    assert p.returncode == 0 and "internal error" not in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_shared_mapping_written_back_when_killed(tmp_path, sig):
    f = tmp_path / "shared.bin"
    f.write_bytes(bytes(256 * 4096))
    p = start("shared", str(f))
    wait_line(p, "ready")
    p.send_signal(sig)
    out, err = finish(p)
    assert p.returncode == 128 + sig, err
    data = f.read_bytes()
    assert all(data[i * 4096:(i + 1) * 4096] == bytes([65 + i % 26]) * 4096 for i in range(256))
