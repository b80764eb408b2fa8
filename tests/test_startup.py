"""What `emu run` costs before the guest runs: the ELF loader reads headers
with struct (checked here against pyelftools, the reference parser), and a
program run never loads the heavy modules only other paths need."""
import glob
import io
import os
import subprocess
import sys

import pytest

from emu.linux import elf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUESTS = os.path.join(ROOT, "guests")

import emu as _emu_pkg

EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))


def _binaries():
    out = [os.path.join(GUESTS, "hello", "hello")]
    out += sorted(glob.glob(os.path.join(GUESTS, "linux", "bin", "stdio_malloc.*")))
    for host in ("/bin/ls", "/usr/bin/env", "/lib64/ld-linux-x86-64.so.2"):
        if os.path.exists(host):
            out.append(os.path.realpath(host))
    return out


@pytest.mark.parametrize("path", _binaries(), ids=os.path.basename)
def test_elf_headers_match_pyelftools(path):
    from elftools.elf.elffile import ELFFile
    from elftools.elf.enums import ENUM_P_TYPE_BASE
    numbers = {name: n for n, name in elf._PT_NAMES.items()}
    with open(path, "rb") as f:
        data = f.read()
    hdr, segs, _bits = elf._parse(data)
    ref = ELFFile(io.BytesIO(data))
    for k in ("e_type", "e_entry", "e_phoff", "e_phentsize", "e_phnum"):
        assert hdr[k] == ref[k], k
    ref_segs = list(ref.iter_segments())
    assert len(segs) == len(ref_segs)
    for mine, theirs in zip(segs, ref_segs):
        # the same type (by number: the reader names only the types it knows)
        assert numbers.get(mine["p_type"], mine["p_type"]) == ENUM_P_TYPE_BASE.get(theirs["p_type"], theirs["p_type"])
        for k in ("p_flags", "p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz", "p_align"):
            assert mine[k] == theirs[k], k
        if mine["p_type"] == "PT_INTERP":
            assert data[mine["p_offset"]:mine["p_offset"] + mine["p_filesz"]] == theirs.data()


def test_truncated_program_headers_are_refused():
    with open(os.path.join(GUESTS, "hello", "hello"), "rb") as f:
        data = f.read()
    with pytest.raises(elf.ExecFormatError, match="malformed ELF file"):
        elf.load(None, data[:200], "cut")


def test_run_loads_no_heavy_module():
    """numpy (the public `Machine.ram` view), pyelftools and the replay log
    are not needed to run a program: a run must not import them."""
    code = ("import sys\nfrom emu.cli import main\nrc = main(['run', %r])\n"
            "heavy = [m for m in ('numpy', 'elftools', 'emu.linux.replay', 'ctypes', 'socket', 'inspect')"
            " if m in sys.modules]\nprint('HEAVY', heavy)\nsys.exit(rc)"
            % os.path.join(GUESTS, "hello", "hello"))
    env = dict(os.environ, PYTHONPATH=EMU_PATH)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                       cwd=os.path.dirname(ROOT))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Hello from emu!\nHEAVY []\n"


def test_machine_ram_is_still_numpy():
    import numpy as np
    import emu
    m = emu.Machine(1 << 20)
    pa = m.map(0x400000, 4096)
    m.write(0x400010, b"abc")
    assert isinstance(m.ram, np.ndarray) and m.ram.dtype == np.uint8
    assert bytes(m.ram[pa + 0x10:pa + 0x13]) == b"abc"
    m.ram[pa + 0x20] = 7
    assert m.read(0x400020, 1) == b"\x07"
