"""The host's own dynamically linked tools under emu (x86-64 Linux hosts):
the dynamic loader, libc and the program come from the host's /, and the
output must be byte-identical to the native run."""
import gzip
import os
import platform
import shutil
import subprocess
import sys
import time

import pytest

import emu as _emu_pkg

EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64",
                                reason="runs the host's x86-64 programs")


def emu_cmd(*argv):
    return [sys.executable, "-m", "emu", "run", *argv]


def env():
    return dict(os.environ, PYTHONPATH=EMU_PATH, LC_ALL="C")


def both(argv, cwd, stdin=None):
    e = subprocess.run(emu_cmd(*argv), capture_output=True, cwd=cwd, env=env(), input=stdin, timeout=600)
    n = subprocess.run(argv, capture_output=True, cwd=cwd, env=env(), input=stdin, timeout=60)
    return e, n


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "sub").mkdir()
    for i in range(5):
        (tmp_path / ("file%d.txt" % i)).write_text("line %d\n" % i * (i * 100 + 1))
    os.symlink("file1.txt", tmp_path / "link")
    os.utime(tmp_path / "sub", (1_600_000_000, 1_600_000_000))
    return tmp_path


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip("%s is not installed" % name)
    return path


def test_ls_la(tree):
    e, n = both([tool("ls"), "-la", "--time-style=+%Y", "."], cwd=tree)
    assert e.returncode == n.returncode == 0, e.stderr
    assert e.stdout == n.stdout


def test_sha256sum(tree):
    e, n = both([tool("sha256sum"), "file3.txt", "file4.txt"], cwd=tree)
    assert e.returncode == 0 and e.stdout == n.stdout, e.stderr


def test_gzip_pipe_gunzip(tree):
    data = (tree / "file4.txt").read_bytes() * 20
    z = subprocess.run(emu_cmd(tool("gzip"), "-c"), input=data, capture_output=True, env=env(), cwd=tree, timeout=600)
    assert z.returncode == 0, z.stderr
    assert gzip.decompress(z.stdout) == data
    u = subprocess.run(emu_cmd(tool("gunzip"), "-c"), input=z.stdout, capture_output=True, env=env(), cwd=tree,
                       timeout=600)
    assert u.returncode == 0 and u.stdout == data, u.stderr


def test_sort(tree):
    text = "".join("%d %s\n" % ((i * 7919) % 1000, "xyz"[i % 3]) for i in range(2000)).encode()
    e, n = both([tool("sort"), "-n", "-k1,1", "-k2"], cwd=tree, stdin=text)
    assert e.returncode == 0 and e.stdout == n.stdout, e.stderr


def test_python3_does_real_work(tree):
    code = ("import json, hashlib, re\n"
            "d = {str(i): [i * i, hashlib.sha1(str(i).encode()).hexdigest()[:8]] for i in range(300)}\n"
            "s = json.dumps(d, sort_keys=True)\n"
            "print(len(s), hashlib.sha256(s.encode()).hexdigest(), len(re.findall(r'[0-9a-f]{8}', s)))\n"
            "print(sorted(set(open('file2.txt').read().split()))[:3])\n")
    e, n = both([tool("python3"), "-S", "-c", code], cwd=tree)
    assert e.returncode == 0 and e.stdout == n.stdout, e.stderr[-3000:]


def test_find_lists_in_the_hosts_directory_order(tmp_path):
    # find prints entries in getdents order: emu gives the host's, as natively
    for i in range(40):
        (tmp_path / ("f%03d" % ((i * 37) % 40))).write_text("x")
    e, n = both([tool("find"), str(tmp_path)], tmp_path)
    assert e.returncode == n.returncode == 0 and e.stdout == n.stdout


def test_python_asyncio_sets_sockets_nonblocking(tmp_path):
    # asyncio's self-pipe: socket.setblocking(False) is ioctl(FIONBIO)
    py = tool("python3")
    code = "import asyncio; asyncio.run(asyncio.sleep(0.01)); print('async ok')"
    e, n = both([py, "-S", "-c", code], tmp_path)
    assert (e.returncode, e.stdout) == (n.returncode, n.stdout) == (0, b"async ok\n"), e.stderr[-500:]


def test_nice(tmp_path):
    nice = tool("nice")
    e, n = both([nice, "-n", "5", nice], tmp_path)
    assert (e.returncode, e.stdout, e.stderr) == (n.returncode, n.stdout, n.stderr)
    assert e.returncode == 0 and e.stderr == b"" and int(e.stdout) >= 5


def test_python_asyncio_to_thread(tmp_path):
    # the event loop waits in epoll_wait while a worker thread runs: the wait
    # must park its thread, not the process
    py = tool("python3")
    code = "import asyncio; print(asyncio.run(asyncio.to_thread(lambda: 41)) + 1)"
    e, n = both([py, "-S", "-c", code], tmp_path)
    assert (e.returncode, e.stdout) == (n.returncode, n.stdout) == (0, b"42\n"), e.stderr[-500:]


def _run_group(argv, cwd, timeout, stdin=None):
    """Run in a session of its own; on a timeout the whole group (a Pool's
    workers too) is killed, so a hang fails the test and leaves nothing behind."""
    import signal
    pr = subprocess.Popen(argv, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True)
    try:
        out, err = pr.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(pr.pid, signal.SIGKILL)
        out, err = pr.communicate()
        raise AssertionError("timed out: %r" % err[-2000:])
    return pr.returncode, out, err


def test_python_multiprocessing_pool(tmp_path):
    # the pool's worker-handler thread polls the result pipe in a loop of
    # system calls while the result-handler thread must get to read it: the
    # time slice runs across system calls (a polling thread is preempted)
    py = tool("python3")
    code = ("import multiprocessing as m\n"
            "with m.Pool(2) as p:\n"
            "    print(p.map(abs, [-1, -2, -3]), sorted(p.imap_unordered(abs, range(-12, 0))))\n")
    e = _run_group(emu_cmd(py, "-S", "-c", code), tmp_path, 120)
    n = _run_group([py, "-S", "-c", code], tmp_path, 60)
    assert e[:2] == n[:2] and n[0] == 0, e[2][-2000:]


def test_sigterm_ends_a_wait_on_a_shared_futex(tmp_path):
    # the only thread sleeps on a futex in MAP_SHARED memory (a POSIX
    # semaphore): SIGTERM's default action still ends the process (128+15)
    import signal
    py = tool("python3")
    code = ("import multiprocessing as m\n"
            "l = m.Lock(); l.acquire(); print('waiting', flush=True); l.acquire()\n")
    statuses = []
    for argv in (emu_cmd(py, "-S", "-c", code), [py, "-S", "-c", code]):
        pr = subprocess.Popen(argv, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, start_new_session=True)
        try:
            assert pr.stdout.readline() == b"waiting\n"
            time.sleep(0.3)
            pr.send_signal(signal.SIGTERM)
            statuses.append(pr.wait(timeout=30))
        finally:
            if pr.poll() is None:
                os.killpg(pr.pid, signal.SIGKILL)
                pr.wait()
            pr.stdout.close()
    # (emu run reports a guest's death by a signal as status 128+signal)
    assert statuses == [128 + signal.SIGTERM, -signal.SIGTERM]


def test_python_record_locks_between_processes(tmp_path):
    # fcntl locks are the host's (each guest process is a host process): a
    # child sees its parent's lock, F_GETLK names the parent by its guest pid;
    # F_GETPIPE_SZ/F_SETPIPE_SZ and F_NOTIFY reach the host too (test_fcntl)
    py = tool("python3")
    code = ("import fcntl, os, struct\n"
            "fd = os.open('f', os.O_RDWR | os.O_CREAT, 0o600); os.write(fd, b'x' * 100)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    try:\n"
            "        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0); print('child got it')\n"
            "    except OSError as e:\n"
            "        print('child refused', e.errno in (11, 13))\n"
            "    q = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack('hhqqi4x', fcntl.F_WRLCK, 0, 0, 0, 0))\n"
            "    t, w, start, ln, holder = struct.unpack('hhqqi4x', q)\n"
            "    print('holder', t == fcntl.F_WRLCK, start, ln, holder == os.getppid())\n"
            "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50); print('child locked 50-59')\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n"
            "r, w = os.pipe(); size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)\n"
            "fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, size // 2); print('pipe', fcntl.fcntl(w, fcntl.F_GETPIPE_SZ) == size // 2)\n"
            "d = os.open('.', os.O_RDONLY); fcntl.fcntl(d, fcntl.F_NOTIFY, fcntl.DN_MULTISHOT); print('notify ok')\n")
    e, n = both([py, "-S", "-c", code], tmp_path)
    assert (e.returncode, e.stdout) == (n.returncode, n.stdout), e.stderr[-2000:]
    assert e.stdout == b"child refused True\nholder True 0 10 True\nchild locked 50-59\npipe True\nnotify ok\n"


def test_python_posix_corners(tmp_path):
    # what CPython's test_posix checks: pidfd_open (a child's pidfd becomes
    # readable when it exits), fexecve (execveat with AT_EMPTY_PATH), chown to
    # ids past 2**31, sched_getaffinity(-1) ESRCH, the parent's scheduling
    # policy, utime(path, None)
    py = tool("python3")
    code = ("import os, select, errno, sys\n"
            "try:\n    os.pidfd_open(-1)\nexcept OSError as e:\n    print('pidfd -1', errno.errorcode[e.errno])\n"
            "pid = os.fork()\n"
            "if pid == 0:\n    os._exit(3)\n"
            "pfd = os.pidfd_open(pid); print('pidfd ready', select.select([pfd], [], [], 10)[0] == [pfd])\n"
            "print('status', os.waitpid(pid, 0)[1] >> 8)\n"
            "try:\n    os.sched_getaffinity(-1)\nexcept OSError as e:\n    print('affinity -1', errno.errorcode[e.errno])\n"
            "print('parent policy', os.sched_getscheduler(os.getppid()) == os.sched_getscheduler(0))\n"
            "open('f', 'w').close(); os.utime('f', None); os.utime('f', (5, 7)); print('mtime', os.stat('f').st_mtime)\n"
            "if os.getuid() == 0:\n    os.chown('f', 2**31, 2**31 + 1); st = os.stat('f'); print('ids', st.st_uid, st.st_gid)\n"
            "else:\n    print('ids', 2**31, 2**31 + 1)\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    fd = os.open(sys.executable, os.O_RDONLY)\n"
            "    os.execve(fd, [sys.executable, '-S', '-c', 'print(\"fexecve ran\")'], {})\n"
            "os.waitpid(pid, 0)\n")
    e, n = both([py, "-S", "-c", code], tmp_path)
    assert (e.returncode, e.stdout) == (n.returncode, n.stdout), e.stderr[-2000:]
    assert e.stdout == (b"pidfd -1 EINVAL\npidfd ready True\nstatus 3\naffinity -1 ESRCH\nparent policy True\n"
                        b"mtime 7.0\nids 2147483648 2147483649\nfexecve ran\n")


def test_python_pseudo_terminal(tmp_path):
    # openpty (posix_openpt, TIOCGPTN, TIOCSPTLCK), termios modes and window
    # sizes through the host's pty, as CPython's test_pty uses them
    py = tool("python3")
    if not os.path.exists("/dev/ptmx"):
        pytest.skip("no /dev/ptmx on this host")
    code = ("import os, tty, termios, fcntl, struct\n"
            "m, sl = os.openpty(); print(os.ttyname(sl).startswith('/dev/pts/'), os.isatty(sl))\n"
            "a = termios.tcgetattr(sl); tty.setraw(sl); b = termios.tcgetattr(sl)\n"
            "print('raw', a != b, b[3] & termios.ECHO)\n"
            "os.write(m, b'hello'); print(os.read(sl, 5))\n"
            "termios.tcsetattr(sl, termios.TCSANOW, a); print('restored', termios.tcgetattr(sl) == a)\n"
            "fcntl.ioctl(sl, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 100, 0, 0))\n"
            "print(struct.unpack('HHHH', fcntl.ioctl(m, termios.TIOCGWINSZ, bytes(8))))\n"
            "os.write(sl, b'out\\n'); print(os.read(m, 100))\n")
    e, n = both([py, "-S", "-c", code], tmp_path)
    assert (e.returncode, e.stdout) == (n.returncode, n.stdout), e.stderr[-2000:]
    assert e.stdout == b"True True\nraw True 0\nb'hello'\nrestored True\n(30, 100, 0, 0)\nb'out\\r\\n'\n"


def test_session_leader_opening_a_pty_keeps_no_controlling_terminal(tmp_path):
    # openpty opens the slave with O_NOCTTY: a session leader (a session of
    # its own, as under setsid) must not make it its controlling terminal, or
    # closing the master sends it SIGHUP (CPython's test_os died so)
    py = tool("python3")
    if not os.path.exists("/dev/ptmx"):
        pytest.skip("no /dev/ptmx on this host")
    code = "import os\nm, s = os.openpty(); os.close(m); os.close(s)\nprint('alive')\n"
    e = _run_group(emu_cmd(py, "-S", "-c", code), tmp_path, 120)
    n = _run_group([py, "-S", "-c", code], tmp_path, 60)
    assert e[:2] == n[:2] == (0, b"alive\n"), e[2][-2000:]


def test_exec_disables_the_alternate_signal_stack(tmp_path):
    # faulthandler gives the parent an alternate signal stack; the exec'd
    # child must start without it (its handler ran on a stack that is not
    # mapped in the new image: emu died with an internal error)
    py = tool("python3")
    child = ("import signal, sys, threading\n"
             "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(3))\n"
             "signal.pthread_kill(threading.get_ident(), signal.SIGUSR1); sys.exit(2)\n")
    code = ("import faulthandler, subprocess, sys\nfaulthandler.enable()\n"
            "print(subprocess.run([sys.executable, '-S', '-c', %r]).returncode)\n" % child)
    e, n = both([py, "-S", "-c", code], tmp_path)
    assert (e.returncode, e.stdout) == (n.returncode, n.stdout) == (0, b"3\n"), e.stderr[-2000:]


def test_python_threads_sleep_while_others_run(tmp_path):
    # time.sleep in one thread parks it: the others go on and their timed
    # waits time out (a Barrier with a timeout breaks, as natively)
    py = tool("python3")
    code = ("import threading, time\n"
            "b = threading.Barrier(3, timeout=0.3); res = []\n"
            "def f(i):\n"
            "    b.wait()\n"
            "    if i == 1:\n"
            "        time.sleep(1.0)\n"
            "    try:\n"
            "        b.wait(); res.append('passed')\n"
            "    except threading.BrokenBarrierError:\n"
            "        res.append('broken')\n"
            "ts = [threading.Thread(target=f, args=(i,)) for i in range(3)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]; print(sorted(res))\n")
    e, n = both([py, "-S", "-c", code], tmp_path)
    assert (e.returncode, e.stdout) == (n.returncode, n.stdout) == (0, b"['broken', 'broken', 'broken']\n"), \
        e.stderr[-2000:]


def test_python_xattrs_and_reuid(tmp_path):
    # setxattr/removexattr (CPython's test_os ExtendedAttributeTests), setreuid/setregid(-1, -1)
    py = tool("python3")
    code = ("import os\nopen('xa', 'w').close()\n"
            "try:\n"
            "    os.setxattr('xa', 'user.t', b'v1'); os.setxattr('xa', 'user.t', b'v2', os.XATTR_REPLACE)\n"
            "    print(os.getxattr('xa', 'user.t'), os.listxattr('xa'))\n"
            "    try:\n        os.setxattr('xa', 'user.t', b'v3', os.XATTR_CREATE)\n"
            "    except OSError as e:\n        print('create', e.errno)\n"
            "    os.removexattr('xa', 'user.t'); print(os.listxattr('xa'))\n"
            "except OSError as e:\n    print('no xattrs here', e.errno)\n"
            "os.setreuid(-1, -1); os.setregid(-1, -1); print('reuid ok')\n")
    e, n = both([py, "-S", "-c", code], tmp_path)
    assert (e.returncode, e.stdout) == (n.returncode, n.stdout), e.stderr[-2000:]
    assert e.stdout.endswith(b"reuid ok\n") and e.returncode == 0


def test_python_splice(tmp_path):
    # splice(2) with and without offsets, file -> pipe -> file (CPython's test_os FileTests.test_splice*)
    py = tool("python3")
    code = ("import os\n"
            "with open('sp', 'wb') as f:\n    f.write(b'0123456789' * 10)\n"
            "fd = os.open('sp', os.O_RDONLY); r, w = os.pipe()\n"
            "print(os.splice(fd, w, 15, offset_src=5), os.read(r, 100))\n"
            "print(os.splice(fd, w, 4), os.read(r, 100), os.lseek(fd, 0, os.SEEK_CUR))\n"
            "os.write(w, b'abc'); out = os.open('sp2', os.O_WRONLY | os.O_CREAT, 0o600)\n"
            "print(os.splice(r, out, 3, offset_dst=2)); os.close(out); print(open('sp2', 'rb').read())\n")
    e, n = both([py, "-S", "-c", code], tmp_path)
    assert (e.returncode, e.stdout) == (n.returncode, n.stdout), e.stderr[-2000:]
    assert e.stdout == b"15 b'567890123456789'\n4 b'0123' 4\n3\nb'\\x00\\x00abc'\n"


def test_python_sigwait_while_another_thread_runs(tmp_path):
    # sigwait in the main thread parks it; the other thread's sleep and kill
    # run and end the wait (CPython's test_signal test_sigwait_thread hung)
    py = tool("python3")
    code = ("import os, threading, signal, time\n"
            "def kill_later():\n    time.sleep(0.5); os.kill(os.getpid(), signal.SIGUSR1)\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n"
            "k = threading.Thread(target=kill_later); k.start()\n"
            "print('got', signal.sigwait([signal.SIGUSR1]) == signal.SIGUSR1); k.join()\n"
            "print(signal.sigtimedwait([signal.SIGUSR2], 0.2))\n")
    e, n = both([py, "-S", "-c", code], tmp_path)
    assert (e.returncode, e.stdout) == (n.returncode, n.stdout) == (0, b"got True\nNone\n"), e.stderr[-2000:]


def test_ignored_signals_stay_ignored_in_the_guest(tmp_path):
    # exec keeps SIG_IGN: a program started with SIGINT and SIGHUP ignored (a
    # background job, nohup) sees them ignored under emu too
    import signal
    py = tool("python3")
    code = "import signal; print(signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGHUP))"

    def ignore():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    outs = [subprocess.run(argv, capture_output=True, cwd=tmp_path, env=env(), timeout=120, preexec_fn=ignore)
            for argv in (emu_cmd(py, "-S", "-c", code), [py, "-S", "-c", code])]
    assert outs[0].stdout == outs[1].stdout == b"Handlers.SIG_IGN Handlers.SIG_IGN\n" or \
        outs[0].stdout == outs[1].stdout == b"1 1\n", (outs[0].stdout, outs[1].stdout, outs[0].stderr[-500:])
