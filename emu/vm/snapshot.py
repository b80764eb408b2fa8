"""microVM state transfer: snapshots to a file and pre-copy live migration
over a byte stream.

A VM's state is its vCPU (`Vcpu.save_state`: registers, control state,
TSC, pending interrupts, CPUID table), the device models' registers, the
monitor's own few fields (virtual-time offset, the interrupt in flight,
platform MSRs) and the RAM pages that are not zero. The disk image is not
part of it (it stays where it is, as with Firecracker's snapshots); the
console output already written is not either.

File format: a numpy .npz archive (loaded with allow_pickle=False) holding
`meta` (a Python literal: versions, sizes, device registers), `vcpu` (bytes)
and `pages` / `data` (page numbers and their 4 KiB contents). Loading never
evaluates more than literals, so a snapshot file cannot run code.

Live migration (`send` / `receive`): the source keeps running while RAM is
copied in rounds; each round sends the pages written during the previous one
(the core's dirty-page list); when a round leaves few pages, or after
`rounds`, the source stops, sends the rest and its state, and the
destination resumes exactly where it stopped.
"""
from __future__ import annotations

import ast
import struct
import time
import zipfile

import numpy as np

from emu import _core

FORMAT = 1
PAGE = 4096

# per device: the attributes that are its registers (everything else is wiring)
_SKIP = {"sink", "irq_line", "clock", "eoi_listeners", "lapic", "mem", "fd", "v", "path", "readonly", "size"}


class SnapshotError(Exception):
    """A snapshot or migration stream that cannot be used here."""


# ---- device and monitor state ----

def _registers(obj) -> dict:
    out = {}
    for k, v in vars(obj).items():
        if k in _SKIP or callable(v):
            continue
        if isinstance(v, bytearray):
            v = bytes(v)
        if isinstance(v, (bool, int, float, str, bytes, list, tuple, dict)) or v is None:
            out[k] = v
    return out


def _set_registers(obj, regs: dict) -> None:
    for k, v in regs.items():
        if k in _SKIP or not hasattr(obj, k):
            raise SnapshotError("device state names an unknown register %r" % k)
        if isinstance(getattr(obj, k), bytearray):
            v = bytearray(v)
        setattr(obj, k, v)


def _devices(vm) -> dict:
    d = {"uart": vm.uart, "lapic": vm.lapic, "ioapic": vm.ioapic, "assist": vm.assist}
    if vm.blk is not None:
        d["blk"] = vm.blk
    return d


def machine_meta(vm) -> dict:
    return {
        "format": FORMAT,
        "state_size": len(vm.vcpu.save_state()),
        "mem_size": vm.mem_size,
        "cmdline": vm.cmdline,
        "disk": vm.blk.path if vm.blk is not None else None,
        "tsc_offset": vm.tsc_offset,
        "cycles_per_insn": vm.cycles_per_insn,
        "inflight": vm.inflight,
        "platform_msrs": dict(vm.platform_msrs),
        "devices": {name: _registers(dev) for name, dev in _devices(vm).items()},
    }


def _apply_meta(vm, meta: dict) -> None:
    vm.tsc_offset = meta["tsc_offset"]
    vm.cycles_per_insn = meta["cycles_per_insn"]
    vm.inflight = meta["inflight"]
    vm.platform_msrs = dict(meta["platform_msrs"])
    devs = _devices(vm)
    for name, regs in meta["devices"].items():
        if name not in devs:
            raise SnapshotError("the snapshot has a %s device this VM lacks (attach the disk)" % name)
        _set_registers(devs[name], regs)


def _check_meta(meta, vcpu_state: bytes) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SnapshotError("not an emu microVM snapshot (or another format version)")
    if meta.get("state_size") != len(vcpu_state) or not vcpu_state.startswith(_core.STATE_MAGIC):
        raise SnapshotError("the snapshot was written by another build of emu")


def nonzero_pages(vm) -> np.ndarray:
    """Page numbers of RAM that hold anything (zero pages need no copy)."""
    return np.flatnonzero(vm.ram.reshape(-1, PAGE).any(axis=1)).astype(np.uint32)


def _load_pages(vm, pages: np.ndarray, data: np.ndarray) -> None:
    if len(pages) and int(pages.max()) >= len(vm.ram) // PAGE:
        raise SnapshotError("the snapshot's RAM is larger than this VM's")
    vm.phys.load_pages(pages.astype(np.uint32).tobytes(), np.ascontiguousarray(data, dtype=np.uint8),
                       np.arange(len(pages), dtype=np.int32).tobytes())


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
        raise SnapshotError("corrupt snapshot metadata (%s)" % e) from None


# ---- snapshot files ----

def save(vm, path) -> int:
    """Write the VM's state to `path` (a stopped VM: between run() calls).
    Returns the number of RAM pages stored."""
    pages = nonzero_pages(vm)
    data = vm.ram.reshape(-1, PAGE)[pages]
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(repr(machine_meta(vm))), vcpu=np.frombuffer(vm.vcpu.save_state(), np.uint8),
                 pages=pages, data=data)
    return len(pages)


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
    if data.ndim != 2 or data.shape[1:] != (PAGE,) or len(pages) != len(data):
        raise SnapshotError("%s: corrupt RAM section" % path)
    return meta, vcpu, pages, data


def restore_into(vm, meta: dict, vcpu_state: bytes, pages: np.ndarray, data: np.ndarray) -> None:
    """Put a freshly created (not booted) VM into the saved state."""
    _load_pages(vm, pages, data)
    vm.vcpu.load_state(vcpu_state)
    _apply_meta(vm, meta)


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
            pages = np.frombuffer(_read(inp, 4 * n), dtype=np.uint32)
            data = np.frombuffer(_read(inp, PAGE * n), dtype=np.uint8).reshape(n, PAGE)
            _load_pages(vm, pages, data)
        elif kind == b"S":
            lm, ls = struct.unpack("<II", _read(inp, 8))
            meta = _literal(_read(inp, lm).decode("utf-8", "replace"))
            state = _read(inp, ls)
            _check_meta(meta, state)
            if meta["mem_size"] != vm.mem_size:
                raise SnapshotError("the source VM has %d bytes of RAM, this one %d" % (meta["mem_size"], vm.mem_size))
            vm.vcpu.load_state(state)
            _apply_meta(vm, meta)
            return
        else:
            raise SnapshotError("not an emu migration stream")

