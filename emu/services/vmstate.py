"""microVM state transfer (a service over the VM's public API): snapshots
to a file and pre-copy live migration over a byte stream.

A VM's state is its vCPU (`Vcpu.save_state`: registers, control state,
TSC, pending interrupts, CPUID table), `VM.get_state()` (the device models'
registers, the monitor's virtual-time offset, the interrupt in flight,
platform MSRs) and the RAM pages that are not zero. The disk image is not
part of it (it stays where it is, as with Firecracker's snapshots); the
console output already written is not either.

File format 2 (what `save` writes to a path): a 4 KiB header page (magic
"EMUSNAP2", the lengths of the metadata and the vCPU state, the offset and
size of the RAM image), the metadata (a Python literal: versions, sizes,
device registers, the devices to attach) and the vCPU state, then the RAM
image itself, page-aligned and sparse (zero pages are holes). `restore`
maps that image copy-on-write over the new VM's RAM (`PhysMachine.map_file`,
MAP_PRIVATE), as Firecracker maps its memory file: nothing is copied, pages
are read when the guest first touches them, so a restore costs about the
same for 128 MiB as for 4 GiB. Format 1 (a numpy .npz archive with `meta`,
`vcpu`, `pages` and `data`, loaded with allow_pickle=False) is what `save`
writes to a stream, and is still read. Loading never evaluates more than
literals, so a snapshot file cannot run code.

Live migration (`send` / `receive`): the source keeps running while RAM is
copied in rounds; each round sends the pages written during the previous one
(the core's dirty-page list); when a round leaves few pages, or after
`rounds`, the source stops, sends the rest and its state, and the
destination resumes exactly where it stopped.
"""
from __future__ import annotations

import ast
import os
import struct
import time
import zipfile

import numpy as np

from emu import _core

FORMAT = 1
PAGE = 4096
MAGIC2 = b"EMUSNAP2"
HEADER2 = struct.Struct("<8sQQQQ")       # magic, meta length, vCPU state length, RAM offset, RAM size


class SnapshotError(Exception):
    """A snapshot or migration stream that cannot be used here."""


def machine_meta(vm) -> dict:
    return {"format": FORMAT, "state_size": len(vm.vcpu.save_state()), "mem_size": vm.mem_size,
            "cmdline": vm.cmdline, "disk": vm.disk_path, "vm": vm.get_state(),
            "attach": vm.device_args() if hasattr(vm, "device_args") else {}}


MIN_MEM, MAX_MEM = 1 << 20, 1 << 36          # what VM() accepts as guest RAM
U64 = 1 << 64


def _conform(template, value, where: str):
    """value, checked field by field against the same field of a fresh VM's
    state (template): the same keys, the same types, integers within 64 bits,
    byte strings of the same length, bounded lists. The device models then
    see nothing a running guest could not have put there by type and size."""
    if isinstance(template, bool) or template is None and isinstance(value, bool):
        if not isinstance(value, bool):
            raise SnapshotError("%s: a flag expected" % where)
        return value
    if isinstance(template, int):
        if isinstance(value, bool) or not isinstance(value, int) or not -U64 // 2 <= value < U64:
            raise SnapshotError("%s: a 64-bit integer expected" % where)
        return value
    if isinstance(template, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not -1e18 < value < 1e18 \
                or value != value:
            raise SnapshotError("%s: a finite number expected" % where)
        return float(value)
    if isinstance(template, (bytes, bytearray)):
        if not isinstance(value, bytes) or len(value) != len(template):
            raise SnapshotError("%s: %d bytes expected" % (where, len(template)))
        return value
    if isinstance(template, str):
        if not isinstance(value, str) or len(value) > 4096:
            raise SnapshotError("%s: a string expected" % where)
        return value
    if isinstance(template, dict):
        if not isinstance(value, dict) or set(value) - set(template):
            raise SnapshotError("%s: unknown fields %s" % (where, sorted(map(repr, set(value) - set(template)))[:3]
                                                           if isinstance(value, dict) else "(not a record)"))
        return {k: _conform(template[k], v, "%s.%s" % (where, k)) for k, v in value.items()}
    if isinstance(template, (list, tuple)) or template is None:
        # queues and optional records: bounded, of plain values
        if value is None:
            return None
        if isinstance(value, (int, float, str, bytes)) and not isinstance(value, bool):
            return _plain(value, where)
        if not isinstance(value, (list, tuple)) or len(value) > 4096:
            raise SnapshotError("%s: a bounded list expected" % where)
        return type(value)(_plain(x, "%s[]" % where) for x in value)
    raise SnapshotError("%s: unexpected field" % where)


def _check_monitor(state: dict) -> None:
    """The monitor's own fields, by meaning (the device models' are typed
    by _conform)."""
    cpi = state["cycles_per_insn"]
    if not 1 / 65536 <= cpi <= 65536:
        raise SnapshotError("vm.cycles_per_insn: %r is not a TSC rate" % (cpi,))
    if not 0 <= state["tsc_offset"] < U64:
        raise SnapshotError("vm.tsc_offset: out of range")
    inflight = state["inflight"]
    if inflight is not None and (isinstance(inflight, bool) or not isinstance(inflight, int)
                                 or not 16 <= inflight <= 255):
        raise SnapshotError("vm.inflight: not an interrupt vector")
    for k, v in state["platform_msrs"].items():
        if not isinstance(k, int) or not 0 <= k < 1 << 32 or not isinstance(v, int) or not 0 <= v < U64:
            raise SnapshotError("vm.platform_msrs: an MSR number and value expected")


def _plain(x, where):
    if isinstance(x, bool) or x is None:
        return x
    if isinstance(x, int) and -U64 // 2 <= x < U64:
        return x
    if isinstance(x, (bytes, str)) and len(x) <= 1 << 16:
        return x
    if isinstance(x, float) and x == x and -1e18 < x < 1e18:
        return x
    if isinstance(x, (list, tuple)) and len(x) <= 4096:
        return type(x)(_plain(y, where) for y in x)
    if isinstance(x, dict) and len(x) <= 256 and all(isinstance(k, str) and len(k) <= 64 for k in x):
        return {k: _plain(y, "%s.%s" % (where, k)) for k, y in x.items()}   # (a device's queue records)
    raise SnapshotError("%s: out of range" % where)


def _apply_meta(vm, meta: dict) -> None:
    from emu.vm.vmm import VMError
    state = meta.get("vm")
    try:
        template = vm.get_state()
        if isinstance(state, dict) and "accel" in state.get("devices", {}) and vm.accel is None:
            vm._attach_accel()
            template = vm.get_state()
        state = _conform(template, state, "vm")
        for key in template:
            if key not in state:
                raise SnapshotError("vm.%s: missing" % key)
        _check_monitor(state)
        vm.set_state(state)
    except SnapshotError as e:
        raise SnapshotError("the snapshot's machine state is invalid (%s)" % e) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, VMError) as e:
        raise SnapshotError("the snapshot's machine state does not fit this VM (%s)" % e) from None


def _check_meta(meta, vcpu_state: bytes) -> None:
    """The named, versioned fields of a snapshot or migration stream, each
    checked before anything uses it."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SnapshotError("not an emu microVM snapshot (or another format version)")
    if meta.get("state_size") != len(vcpu_state) or not vcpu_state.startswith(_core.STATE_MAGIC):
        raise SnapshotError("the snapshot was written by another build of emu")
    unknown = set(meta) - {"format", "state_size", "mem_size", "cmdline", "disk", "vm", "attach"}
    if unknown:
        raise SnapshotError("unknown snapshot fields: %s" % ", ".join(sorted(map(str, unknown))))
    mem = meta.get("mem_size")
    if isinstance(mem, bool) or not isinstance(mem, int) or not MIN_MEM <= mem <= MAX_MEM or mem % PAGE:
        raise SnapshotError("snapshot field mem_size: %r is not a RAM size" % (mem,))
    if not isinstance(meta.get("cmdline"), str) or len(meta["cmdline"]) > 4096:
        raise SnapshotError("snapshot field cmdline: not a kernel command line")
    if meta.get("disk") is not None and not isinstance(meta["disk"], str):
        raise SnapshotError("snapshot field disk: not a path")
    if not isinstance(meta.get("vm"), dict):
        raise SnapshotError("snapshot field vm: not a record")
    attach = meta.get("attach", {})
    kinds = {"accel": bool, "rng": bool, "seed": int, "vconsole": bool, "vsock_cid": int, "vsock": str, "net": str}
    if not isinstance(attach, dict) or any(k not in kinds or not isinstance(v, kinds[k]) for k, v in attach.items()):
        raise SnapshotError("snapshot field attach: not a device list")
    if not 0 <= attach.get("seed", 0) < 1 << 64 or not 3 <= attach.get("vsock_cid", 3) < 1 << 32:
        raise SnapshotError("snapshot field attach: a value out of range")


def nonzero_pages(vm) -> np.ndarray:
    """Page numbers of RAM that hold anything (zero pages need no copy)."""
    return np.flatnonzero(vm.ram.reshape(-1, PAGE).any(axis=1)).astype(np.uint32)


def _load_pages(vm, pages: np.ndarray, data: np.ndarray) -> None:
    if len(pages) and int(pages.max()) >= len(vm.ram) // PAGE:
        raise SnapshotError("the snapshot's RAM is larger than this VM's")
    vm.phys.load_pages(pages.astype(np.uint32).tobytes(), np.ascontiguousarray(data, dtype=np.uint8),
                       np.arange(len(pages), dtype=np.int32).tobytes())


def _load_vcpu(vm, state: bytes) -> None:
    try:
        vm.vcpu.load_state(state)       # the core range-checks every field it uses
    except ValueError as e:
        raise SnapshotError(str(e)) from None


def _literal(text: str):
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # (odd literals warn on stderr)
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as e:
        raise SnapshotError("corrupt snapshot metadata (%s)" % e) from None


# ---- snapshot files ----

def save(vm, path) -> int:
    """Write the VM's state to `path` (a stopped VM: between run() calls).
    Returns the number of RAM pages stored."""
    pages = nonzero_pages(vm)
    data = vm.ram.reshape(-1, PAGE)[pages]
    if hasattr(path, "write"):
        np.savez(path, meta=np.array(repr(machine_meta(vm))), vcpu=np.frombuffer(vm.vcpu.save_state(), np.uint8),
                 pages=pages, data=data)
        return len(pages)
    # written beside and renamed over: a failed write never destroys an older snapshot
    # (nor a file that a restored VM still maps)
    tmp = "%s.tmp%d" % (os.fspath(path), os.getpid())
    try:
        with open(tmp, "wb") as f:
            _save2(vm, f, pages)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(pages)


def _save2(vm, f, pages: np.ndarray) -> None:
    meta = repr(machine_meta(vm)).encode()
    state = vm.vcpu.save_state()
    ram_off = (PAGE + len(meta) + len(state) + PAGE - 1) // PAGE * PAGE
    f.write(HEADER2.pack(MAGIC2, len(meta), len(state), ram_off, vm.mem_size).ljust(PAGE, b"\0"))
    f.write(meta)
    f.write(state)
    fd = f.fileno()
    rows = vm.ram.reshape(-1, PAGE)
    # runs of consecutive non-zero pages, each written with one call; zero pages stay holes
    if len(pages):
        breaks = np.flatnonzero(np.diff(pages) != 1) + 1
        for run in np.split(pages, breaks):
            first, n = int(run[0]), len(run)
            os.pwrite(fd, rows[first:first + n].tobytes(), ram_off + first * PAGE)
    os.ftruncate(fd, ram_off + vm.mem_size)


def _load2(path):
    """(meta, vCPU state, RAM offset, file descriptor) of a format-2 snapshot."""
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        head = os.pread(fd, HEADER2.size, 0)
        if len(head) != HEADER2.size:
            raise SnapshotError("%s: truncated snapshot" % path)
        magic, lm, ls, ram_off, ram_size = HEADER2.unpack(head)
        if magic != MAGIC2 or ram_off % PAGE or ram_off < PAGE + lm + ls or lm > 1 << 26 or ls > 1 << 26:
            raise SnapshotError("%s: corrupt snapshot header" % path)
        if st.st_size < ram_off + ram_size:
            raise SnapshotError("%s: the RAM image is truncated" % path)
        meta = _literal(os.pread(fd, lm, PAGE).decode("utf-8", "replace"))
        state = os.pread(fd, ls, PAGE + lm)
        _check_meta(meta, state)
        if meta.get("mem_size") != ram_size:
            raise SnapshotError("%s: RAM size does not match its metadata" % path)
        return meta, state, ram_off, fd
    except BaseException:
        os.close(fd)
        raise


def is_v2(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == MAGIC2


def load(path) -> tuple[dict, bytes, np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":              # an .npz is a zip archive
            raise SnapshotError("%s: not an emu snapshot" % path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = _literal(str(z["meta"]))
            vcpu = z["vcpu"].tobytes()
            pages, data = z["pages"], z["data"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise SnapshotError("%s: not a readable emu snapshot (%s)" % (path, e)) from None
    _check_meta(meta, vcpu)
    if data.ndim != 2 or data.shape[1:] != (PAGE,) or len(pages) != len(data) or pages.ndim != 1 \
            or pages.dtype.kind not in "iu" or data.dtype != np.uint8 or len(pages) > meta["mem_size"] // PAGE \
            or (len(pages) and (int(pages.min()) < 0 or int(pages.max()) >= meta["mem_size"] // PAGE)):
        raise SnapshotError("%s: corrupt RAM section" % path)
    return meta, vcpu, pages, data


def _check_disk(path, meta, disk) -> None:
    """A file never names a host path that is opened read-write unasked."""
    if disk is None and meta.get("disk") is not None:
        raise SnapshotError("%s: the snapshot was taken with the disk %s; attach it explicitly (--disk)"
                            % (path, meta["disk"]))


def restore(path, *, disk=None, **vm_args):
    """A VM resumed from a snapshot file: vm.run() goes on where the saved VM
    stopped. disk: the image for its virtio-blk device; a snapshot taken with
    a disk needs it given here (the path stored in the file is shown, never
    opened: a crafted snapshot must not name a host file to write); vm_args
    go to VM() (output, input_fd, policy...)."""
    from emu.vm import VM
    if is_v2(path):
        meta, vcpu, ram_off, fd = _load2(path)
        try:
            _check_disk(path, meta, disk)
            vm = VM(None, mem=meta["mem_size"], disk=disk,
                    **_attach_args(meta, vm_args))
            try:
                vm.phys.map_file(0, meta["mem_size"], fd, ram_off)
            except (OSError, ValueError) as e:
                vm.close()
                raise SnapshotError("%s: cannot map the RAM image (%s)" % (path, e)) from None
        finally:
            os.close(fd)                  # the mapping keeps the file
    else:
        meta, vcpu, pages, data = load(path)
        _check_disk(path, meta, disk)
        vm = VM(None, mem=meta["mem_size"], disk=disk,
                **_attach_args(meta, vm_args))
        _load_pages(vm, pages, data)
    vm.cmdline = meta["cmdline"]
    _load_vcpu(vm, vcpu)
    _apply_meta(vm, meta)
    return vm


def _attach_args(meta: dict, vm_args: dict) -> dict:
    """The devices the snapshot's VM had (rng, virtio console, vsock socket
    path...), unless the caller gives them."""
    out = dict(meta.get("attach") or {})
    # host socket paths are never taken from a file: the restorer names them
    for key in ("vsock", "net"):
        if key in out and key not in vm_args:
            del out[key]
            if key == "vsock":
                out.pop("vsock_cid", None)
    out.update(vm_args)
    return out


# ---- live migration ----

def _send_pages(out, vm, pages: np.ndarray) -> int:
    pages = np.asarray(pages, dtype=np.uint32)
    if len(pages):
        data = vm.ram.reshape(-1, PAGE)[pages]
        out.write(b"P" + struct.pack("<I", len(pages)) + pages.tobytes() + data.tobytes())
    return len(pages)


def _take_dirty(vm) -> np.ndarray:
    d = np.frombuffer(vm.phys.take_dirty(), dtype=np.uint32)
    vm.vcpu.drop_tlb_writes()
    return np.unique(d)


def send(vm, out, *, rounds: int = 8, slice_insns: int = 500_000, stop_pages: int = 64) -> dict:
    """Migrate a running VM to the stream `out` (a binary file object: socket
    makefile, pipe...). The guest runs `slice_insns` instructions between
    copy rounds; the VM stops when a round leaves at most `stop_pages` pages
    (or after `rounds` rounds, or when the guest stops by itself). Returns
    figures: pages sent per round, the final (downtime) pages, the reason the
    source stopped, and the perf_counter() time it stopped at."""
    _take_dirty(vm)                                   # from here on, writes are tracked
    sent = [_send_pages(out, vm, nonzero_pages(vm))]
    reason = None
    for _ in range(rounds):
        vm.exit_reason = None
        reason = vm.run(max_insns=vm.vcpu.icount + slice_insns)
        dirty = _take_dirty(vm)
        if reason != "limit" or len(dirty) <= stop_pages:
            final = dirty
            break
        sent.append(_send_pages(out, vm, dirty))
    else:
        final = _take_dirty(vm)
    t_stop = time.perf_counter()                      # the guest stands still from here
    vm.exit_reason = None
    last = _send_pages(out, vm, final)
    meta = repr(machine_meta(vm)).encode()
    state = vm.vcpu.save_state()
    out.write(b"S" + struct.pack("<II", len(meta), len(state)) + meta + state)
    out.flush()
    return {"rounds": sent, "final_pages": last, "source": reason, "t_stop": t_stop}


def _read(inp, n: int) -> bytes:
    b = inp.read(n)
    if b is None or len(b) != n:
        raise SnapshotError("the migration stream ended early")
    return b


def receive(inp, vm) -> None:
    """Take a migrating VM's state from the stream `inp` into `vm` (created
    with the same RAM size, not booted); then vm.run() resumes the guest."""
    while True:
        kind = _read(inp, 1)
        if kind == b"P":
            (n,) = struct.unpack("<I", _read(inp, 4))
            if n > len(vm.ram) // PAGE:
                raise SnapshotError("the migration stream sends %d pages; this VM has %d" % (n, len(vm.ram) // PAGE))
            pages = np.frombuffer(_read(inp, 4 * n), dtype=np.uint32)
            data = np.frombuffer(_read(inp, PAGE * n), dtype=np.uint8).reshape(n, PAGE)
            _load_pages(vm, pages, data)
        elif kind == b"S":
            lm, ls = struct.unpack("<II", _read(inp, 8))
            if lm > 1 << 20 or ls != len(vm.vcpu.save_state()):
                raise SnapshotError("the migration stream's state record has the wrong size")
            meta = _literal(_read(inp, lm).decode("utf-8", "replace"))
            state = _read(inp, ls)
            _check_meta(meta, state)
            if meta["mem_size"] != vm.mem_size:
                raise SnapshotError("the source VM has %d bytes of RAM, this one %d" % (meta["mem_size"], vm.mem_size))
            _load_vcpu(vm, state)
            _apply_meta(vm, meta)
            return
        else:
            raise SnapshotError("not an emu migration stream")

