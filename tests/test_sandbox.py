"""The file-system and network policy: --sandbox confines writes and denies
sockets, --root makes a directory the guest's /. guests/linux/escape.c tries
each known way out; natively (no policy) the same attempts succeed, which
shows the test can fail."""
import os
import platform
import subprocess
import sys

import pytest

import emu as _emu_pkg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ESCAPE = os.path.join(ROOT, "guests", "linux", "bin", "escape.%s")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
NATIVE = platform.system() == "Linux" and platform.machine() == "x86_64"


def emu_run(*args, cwd):
    env = dict(os.environ, PYTHONPATH=EMU_PATH)
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def attempts(stdout):
    return {line[:40].strip(): line[40:].strip() for line in stdout.splitlines()}


def setup(tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret\n")
    return box, outside, secret


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_sandbox_blocks_every_escape(tmp_path, libc):
    box, outside, _ = setup(tmp_path)
    r = emu_run("--sandbox", str(box), ESCAPE % libc, str(box), str(outside), "-", cwd=tmp_path)
    got = attempts(r.stdout)
    assert got.pop("write inside") == "ok", r.stdout + r.stderr
    assert len(got) == 12, r.stdout
    assert all(v == "blocked" for v in got.values()), r.stdout
    assert r.returncode == 0
    assert outside.read_text() == "keep\n"
    assert sorted(os.listdir(tmp_path)) == ["box", "outside.txt", "secret.txt"]


def test_root_hides_the_host(tmp_path):
    box, outside, secret = setup(tmp_path)
    guest_root = tmp_path / "root"
    (guest_root / "box").mkdir(parents=True)
    (guest_root / "bin").mkdir()
    import shutil
    shutil.copy(ESCAPE % "glibc", guest_root / "bin" / "escape")
    # inside --root an absolute program path names a file in the root
    r = emu_run("--root", str(guest_root), "/bin/escape", "/box", str(outside), str(secret), cwd=tmp_path)
    got = attempts(r.stdout)
    assert got.pop("write inside") == "ok", r.stdout + r.stderr
    assert len(got) == 16, r.stdout
    # the host's files are out of reach: reads fail, "outside" writes land inside the root
    assert all(v == "blocked" for k, v in got.items() if k.startswith("read")), r.stdout
    assert outside.read_text() == "keep\n"
    assert (guest_root / "box" / "inside.txt").exists()


@pytest.mark.skipif(not NATIVE, reason="needs an x86-64 Linux host")
def test_escapes_succeed_without_a_policy(tmp_path):
    """The control: run natively, the same attempts get out."""
    box, outside, secret = setup(tmp_path)
    r = subprocess.run([ESCAPE % "glibc", str(box), str(outside), str(secret)], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    got = attempts(r.stdout)
    assert got["write absolute path outside"] == "ESCAPED"
    assert got["write through absolute symlink"] == "ESCAPED"
    assert got["read host file by absolute path"] == "ESCAPED"
    assert r.returncode > 0
