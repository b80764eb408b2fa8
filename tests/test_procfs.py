"""The guest's own /proc/self files (emu/linux/procfs.py) describe the guest
program, not the Python process running it: its memory map (which glibc's
pthread_getattr_np reads), name, command line, environment and pids."""
import os
import shutil
import subprocess

import pytest

from test_cli import EMU_PATH, emu, native_ok

CAT = shutil.which("cat")
pytestmark = pytest.mark.skipif(not (native_ok and CAT), reason="uses the host's dynamically linked cat")


def cat(path, *extra):
    r = emu("run", *extra, "--seed", "7", CAT, path)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_self_files_describe_the_guest():
    maps = cat("/proc/self/maps")
    lines = maps.splitlines()
    assert any(l.endswith(" [stack]") for l in lines) and any(l.endswith(" [heap]") for l in lines)
    assert any(l.endswith(os.path.realpath(CAT)) or l.endswith(CAT) for l in lines)
    assert "python" not in maps and "emu" not in maps.lower().replace("lemu", "")
    starts = [int(l.split("-")[0], 16) for l in lines]
    assert starts == sorted(starts)
    status = dict(l.split(":\t", 1) for l in cat("/proc/self/status").splitlines())
    assert status["Name"] == "cat" and status["Pid"] == status["Tgid"] == "1000" and status["TracerPid"] == "0"
    assert cat("/proc/self/cmdline").split("\0") == [CAT, "/proc/self/cmdline", ""]
    assert cat("/proc/self/comm") == "cat\n"
    stat = cat("/proc/1000/stat").split()
    assert stat[0] == "1000" and stat[1] == "(cat)"
    assert cat("/proc/self/stat").split()[:2] == ["1000", "(cat)"]
    env = emu("run", "--seed", "7", CAT, "/proc/self/environ", env=dict(os.environ, EMU_T="x1", PYTHONPATH=EMU_PATH)).stdout
    assert "EMU_T=x1" in env.split("\0")


def test_pthread_getattr_np_finds_the_main_stack(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "g.c"
    src.write_text('#define _GNU_SOURCE\n#include <pthread.h>\n#include <stdio.h>\n'
                   'int main(void) { pthread_attr_t a; void *p; size_t n; int local;\n'
                   '  if (pthread_getattr_np(pthread_self(), &a)) { puts("getattr failed"); return 1; }\n'
                   '  pthread_attr_getstack(&a, &p, &n);\n'
                   '  printf("%s\\n", (char *)&local >= (char *)p && (char *)&local < (char *)p + n ? "inside" : "outside");\n'
                   '  return 0; }\n')
    exe = tmp_path / "g"
    subprocess.run([cc, "-O2", "-o", str(exe), str(src), "-lpthread"], check=True)
    native = subprocess.run([str(exe)], capture_output=True, text=True)
    r = emu("run", str(exe))
    assert (r.returncode, r.stdout) == (native.returncode, native.stdout) == (0, "inside\n")


def test_fd_links_and_listing(tmp_path):
    readlink = shutil.which("readlink")
    ls = shutil.which("ls")
    r = emu("run", readlink, "/proc/self/cwd", "/proc/self/exe", "/proc/self/fd/0", cwd=tmp_path,
            stdin=open(os.devnull))
    assert r.stdout.splitlines() == [str(tmp_path), os.path.realpath(readlink), "/dev/null"]
    assert emu("run", readlink, "/proc/self/fd/57").returncode == 1        # no such descriptor
    # the guest's descriptors, including the one ls reads the directory through
    r = emu("run", ls, "/proc/self/fd", stdin=open(os.devnull))
    assert r.stdout.split() == ["0", "1", "2", "3"]



SMAPS_AUXV = r"""
import ctypes
libc = ctypes.CDLL(None)
libc.getauxval.restype = ctypes.c_ulong
def slurp(path, buf):
    # into a buffer allocated before: reading makes no mapping between the two files
    n, mv = 0, memoryview(buf)
    with open(path, 'rb', buffering=0) as f:
        while True:
            k = f.readinto(mv[n:])
            if not k:
                return n
            n += k
b1, b2 = bytearray(4 << 20), bytearray(1 << 20)
n1 = slurp('/proc/self/smaps', b1)
n2 = slurp('/proc/self/maps', b2)
sm, maps = b1[:n1].decode().splitlines(), b2[:n2].decode().splitlines()
blocks = []
for line in sm:
    if not line.split()[0].endswith(':'):
        blocks.append((line, {}, []))
    else:
        k, v = line.split(':', 1)
        blocks[-1][1][k] = v.split()
        blocks[-1][2].append(k)
print('smaps fields:', ' '.join(blocks[0][2]))
print('every VMA the same fields:', all(b[2] == blocks[0][2] for b in blocks))
print('VMA heads as in maps:', [b[0].split()[0] for b in blocks] == [m.split()[0] for m in maps])
size_ok = rss_ok = True
for head, f, _ in blocks:
    lo, hi = (int(x, 16) for x in head.split()[0].split('-'))
    size_ok &= int(f['Size'][0]) == (hi - lo) // 1024
    parts = sum(int(f[k][0]) for k in ('Shared_Clean', 'Shared_Dirty', 'Private_Clean', 'Private_Dirty'))
    rss_ok &= parts == int(f['Rss'][0]) <= int(f['Size'][0])
print('Size is the range, Rss its parts:', size_ok, rss_ok)
raw = open('/proc/self/auxv', 'rb').read()
pairs = [int.from_bytes(raw[i:i + 8], 'little') for i in range(0, len(raw), 8)]
aux = dict(zip(pairs[::2], pairs[1::2]))
print('auxv ends with AT_NULL:', pairs[-2:] == [0, 0])
print('auxv is getauxval:', all(aux[k] == libc.getauxval(k) for k in (3, 4, 5, 6, 9, 25, 31, 33)))  # (not AT_HWCAP: glibc's x86 getauxval answers its own)
print('AT_SYSINFO_EHDR is [vdso]:', any(m.endswith('[vdso]') and int(m.split('-')[0], 16) == aux[33] for m in maps))
"""


def test_smaps_and_auxv_as_linux_gives_them(tmp_path):
    py = "/usr/bin/python3"
    if not os.path.exists(py):
        pytest.skip("needs /usr/bin/python3")
    e = emu("run", py, "-S", "-c", SMAPS_AUXV)
    n = subprocess.run([py, "-S", "-c", SMAPS_AUXV], capture_output=True, text=True, timeout=60)
    assert e.returncode == n.returncode == 0, e.stderr[-2000:]
    assert e.stdout == n.stdout and e.stdout.count("True") == 7, (e.stdout, n.stdout)
