"""microVM snapshots and live migration (emu/services/vmstate.py): a VM stopped
mid-boot, saved and restored (or migrated while it runs) prints exactly what
an uninterrupted boot prints and retires the same instructions."""
import ast
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

import emu as _emu_pkg

from emu.vm import VM
from emu.services import vmstate as snapshot
from test_boot import KERNEL, make_disk

EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
MEM = "64M"
STOP_AT = 3_000_000        # instructions: mid-way through the ring-3 processes


def reference(disk):
    out = []
    vm = VM(KERNEL, mem=MEM, disk=disk, output=out.append)
    reason = vm.run(timeout=60)
    vm.close()
    return reason, b"".join(out), vm.vcpu.icount


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("disk") / "disk.img")
    make_disk(d)
    return d


@pytest.fixture(scope="module")
def ref(disk):
    return reference(disk)


def first_part(disk, out):
    vm = VM(KERNEL, mem=MEM, disk=disk, output=out.append)
    assert vm.run(max_insns=STOP_AT) == "limit"
    vm.exit_reason = None
    return vm


def test_snapshot_restore_continues_the_boot(disk, ref, tmp_path):
    reason0, out0, icount0 = ref
    out = []
    a = first_part(disk, out)
    path = tmp_path / "vm.snap"
    n = snapshot.save(a, path)
    a.close()
    assert 50 < n < 16384                       # the pages in use, not all 64 MiB
    head = b"".join(out)
    assert 0 < len(head) < len(out0)
    b = snapshot.restore(path, disk=disk, output=out.append)
    assert b.vcpu.icount == STOP_AT
    assert b.run(timeout=60) == reason0
    b.close()
    assert b"".join(out) == out0 and b.vcpu.icount == icount0
    assert b"disk: test file 20046 bytes" in head           # the virtio disk was in use before


def test_restore_twice_from_one_snapshot(disk, ref, tmp_path):
    reason0, out0, icount0 = ref
    out = []
    a = first_part(disk, out)
    path = tmp_path / "vm.snap"
    snapshot.save(a, path)
    a.close()
    head = b"".join(out)
    for _ in range(2):
        tail = []
        b = snapshot.restore(path, disk=disk, output=tail.append)
        assert b.run(timeout=60) == reason0
        b.close()
        assert head + b"".join(tail) == out0


def test_live_migration(disk, ref):
    reason0, out0, icount0 = ref
    out = []
    src = first_part(disk, out)
    dst = VM(None, mem=MEM, disk=disk, output=out.append)
    s1, s2 = socket.socketpair()
    figures = {}

    def sender():
        with s1.makefile("wb") as f:
            figures.update(snapshot.send(src, f, slice_insns=200_000, stop_pages=8))
        s1.close()
    t = threading.Thread(target=sender)
    t.start()
    with s2.makefile("rb") as f:
        snapshot.receive(f, dst)
    t.join()
    s2.close()
    src.close()
    # the source kept running during the copy rounds
    assert len(figures["rounds"]) >= 2 and dst.vcpu.icount > STOP_AT
    assert figures["final_pages"] <= max(figures["rounds"])
    assert dst.run(timeout=60) == reason0
    dst.close()
    assert b"".join(out) == out0 and dst.vcpu.icount == icount0


def test_bad_snapshots(tmp_path, disk):
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a snapshot at all")
    with pytest.raises(snapshot.SnapshotError):
        snapshot.restore(junk)
    with pytest.raises(FileNotFoundError):
        snapshot.restore(tmp_path / "missing")
    out = []
    a = first_part(disk, out)
    snapshot.save(a, tmp_path / "ok.snap")
    a.close()
    data = (tmp_path / "ok.snap").read_bytes()
    (tmp_path / "cut.snap").write_bytes(data[:len(data) // 2])
    with pytest.raises(snapshot.SnapshotError):
        snapshot.restore(tmp_path / "cut.snap")
    # a migration stream that ends early
    import io
    with pytest.raises(snapshot.SnapshotError):
        snapshot.receive(io.BytesIO(b"P\x05\x00\x00\x00"), VM(None, mem=MEM, output=out.append))


def test_snapshot_never_opens_the_disk_it_names(disk, tmp_path):
    """A snapshot stores its disk's path; restoring without --disk refuses
    (naming it) instead of opening that host file read-write, so a crafted
    snapshot cannot overwrite a file of the user's."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious" * 1024)
    out = []
    a = first_part(disk, out)
    path = tmp_path / "vm.snap"
    with open(path, "wb") as f:
        snapshot.save(a, f)             # the .npz form (format 1), crafted field by field below
    a.close()
    with np.load(path, allow_pickle=False) as z:
        parts = {k: z[k] for k in z.files}
    meta = ast.literal_eval(str(parts["meta"]))
    meta["disk"] = str(victim)
    parts["meta"] = np.array(repr(meta))
    crafted = tmp_path / "crafted.snap"
    with open(crafted, "wb") as f:
        np.savez(f, **parts)
    with pytest.raises(snapshot.SnapshotError, match="attach it explicitly"):
        snapshot.restore(crafted)
    assert victim.read_bytes() == b"precious" * 1024
    r = subprocess.run([sys.executable, "-m", "emu", "boot", "--restore", str(crafted), "--timeout", "5"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=EMU_PATH))
    assert r.returncode == 2 and "attach it explicitly" in r.stderr, r.stderr
    assert victim.read_bytes() == b"precious" * 1024


@pytest.mark.parametrize("field,value", [
    ("mem_size", 1 << 50), ("mem_size", -4096), ("mem_size", "64M"), ("cmdline", 7), ("disk", 3),
    ("vm", []), ("extra", 1),
])
def test_crafted_snapshot_metadata_is_refused(disk, tmp_path, field, value):
    out = []
    a = first_part(disk, out)
    path = tmp_path / "vm.snap"
    with open(path, "wb") as f:
        snapshot.save(a, f)             # the .npz form (format 1), crafted field by field below
    a.close()
    with np.load(path, allow_pickle=False) as z:
        parts = {k: z[k] for k in z.files}
    meta = ast.literal_eval(str(parts["meta"]))
    meta[field] = value
    parts["meta"] = np.array(repr(meta))
    with open(path, "wb") as f:
        np.savez(f, **parts)
    with pytest.raises(snapshot.SnapshotError):
        snapshot.restore(path, disk=disk)


def test_crafted_device_registers_are_refused(disk, tmp_path):
    out = []
    a = first_part(disk, out)
    path = tmp_path / "vm.snap"
    with open(path, "wb") as f:
        snapshot.save(a, f)             # the .npz form (format 1), crafted field by field below
    a.close()
    with np.load(path, allow_pickle=False) as z:
        parts = {k: z[k] for k in z.files}
    meta = ast.literal_eval(str(parts["meta"]))
    dev = next(iter(meta["vm"]["devices"]))
    reg = next(k for k, v in meta["vm"]["devices"][dev].items() if isinstance(v, int) and not isinstance(v, bool))
    for bad in ("a string", 1 << 80, [1, 2], {"x": 1}):
        meta["vm"]["devices"][dev][reg] = bad
        parts["meta"] = np.array(repr(meta))
        with open(path, "wb") as f:
            np.savez(f, **parts)
        with pytest.raises(snapshot.SnapshotError, match="%s.%s" % (dev, reg)):
            snapshot.restore(path, disk=disk)


@pytest.mark.parametrize("field,value", [
    ("cycles_per_insn", 0.0), ("cycles_per_insn", 1e9), ("inflight", -3), ("inflight", "x"), ("inflight", 999),
    ("tsc_offset", -1), ("platform_msrs", {"a": 1}),
])
def test_crafted_monitor_fields_are_refused(disk, tmp_path, field, value):
    """Found by tools/hardfuzz.py: a zero TSC rate divided by zero and a
    crafted in-flight vector made a negative shift in the VMM's run loop."""
    out = []
    a = first_part(disk, out)
    path = tmp_path / "vm.snap"
    with open(path, "wb") as f:
        snapshot.save(a, f)             # the .npz form (format 1), crafted field by field below
    a.close()
    with np.load(path, allow_pickle=False) as z:
        parts = {k: z[k] for k in z.files}
    meta = ast.literal_eval(str(parts["meta"]))
    meta["vm"][field] = value
    parts["meta"] = np.array(repr(meta))
    with open(path, "wb") as f:
        np.savez(f, **parts)
    with pytest.raises(snapshot.SnapshotError):
        snapshot.restore(path, disk=disk)
