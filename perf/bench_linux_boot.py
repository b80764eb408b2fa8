#!/usr/bin/env python3
"""Booting Debian's Linux under `emu boot` (guests/linuxboot/build.py's
material): what a boot costs and where it goes.

  * guest instructions and wall time to the first console byte, to
    "Run /init" and to the busybox prompt, for the ELF vmlinux (64-bit boot
    protocol), the bzImage (its own xz decompressor runs in the guest) and
    the PVH entry;
  * where the instructions go: the kernel's own dmesg timestamps are guest
    time, and guest time is instructions (virtual TSC at 1 GHz, one cycle per
    instruction), so each phase of dmesg is an instruction count; plus a
    profile of kernel functions (RIP sampled every SAMPLE instructions,
    named from the guest's /proc/kallsyms);
  * host CPU while the guest idles at the prompt (HLT with its timer, the
    VMM waiting in real time for console input);
  * snapshot restore time of the VM at the prompt, in-process and in a
    fresh process (format 2: RAM mapped copy-on-write, not copied).

    python3 perf/bench_linux_boot.py [--runs N] [--mem 128M] [--no-profile]
"""
from __future__ import annotations

import argparse
import bisect
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "guests", "linuxboot"))

import build as linuxboot  # noqa: E402
from emu.services import vmstate  # noqa: E402
from emu.vm import VM  # noqa: E402

SAMPLE = 1_000_000


def boot(mat, kernel, mem, pvh=False, sample=False, disk=None):
    vm = VM(mat[kernel], mem=mem, initrd=mat["initramfs.cpio"], cmdline="console=ttyS0", pvh=pvh,
            output=lambda d: None, disk=disk)
    marks = {}
    samples = collections.Counter()
    t0 = time.perf_counter()
    want = [(b"Linux version", "first line"), (b"Run /init", "/init"), (b"# ", "prompt")]
    while want:
        pat, name = want[0]
        if sample:
            vm.exit_reason = None
            found = vm.run_until(pat, since=0, timeout=900, max_insns=SAMPLE)
            samples[vm.vcpu.rip] += 1
            if not found:
                if vm.exit_reason not in (None, "limit"):
                    raise SystemExit("boot stopped: %s" % vm.exit_reason)
                continue
        elif not vm.run_until(pat, since=0, timeout=900):
            raise SystemExit("boot stopped: %s" % vm.exit_reason)
        marks[name] = (vm.vcpu.icount, time.perf_counter() - t0)
        want.pop(0)
    return vm, marks, samples


def dmesg_phases(vm):
    """(seconds, line) of the kernel log: guest seconds = instructions / 1e9."""
    out = []
    for line in vm.console_text().decode("utf-8", "replace").splitlines():
        m = re.match(r"\[\s*(\d+\.\d+)\] (.*)", line)
        if m:
            out.append((float(m.group(1)), m.group(2).strip()))
    return out


def phase_table(phases):
    """Guest instructions between milestones of the log."""
    milestones = [("start_kernel", r"Linux version"), ("memory and page tables up", r"Memory: \d+K"),
                  ("SMP/timer set up", r"smp: Brought up"), ("devices: ACPI interpreter", r"ACPI: Interpreter enabled"),
                  ("initramfs unpacked", r"Freeing initrd memory"), ("X.509 keys loaded", r"Loaded X.509 cert"),
                  ("late init done", r"Freeing unused kernel image \(initmem\)"),
                  ("W+X page table checks", r"Run /init")]
    rows, prev_t, prev_name = [], 0.0, "boot entry"
    for name, pat in milestones:
        hit = next((t for t, l in phases if re.search(pat, l)), None)
        if hit is None:
            continue
        rows.append((prev_name, name, hit - prev_t))
        prev_t, prev_name = hit, name
    return rows


def profile(vm, samples, disk, top=15):
    # the symbol table is megabytes: through the disk, not the serial console
    vm.command("cat /proc/kallsyms > /dev/vda; sync", timeout=600)
    with open(disk, "rb") as f:
        text = f.read().split(b"\0", 1)[0].decode("latin-1")
    syms = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "tTwW":
            try:
                syms.append((int(parts[0], 16), parts[2]))
            except ValueError:
                pass
    syms.sort()
    addrs = [a for a, _ in syms]
    by = collections.Counter()
    for rip, n in samples.items():
        i = bisect.bisect_right(addrs, rip) - 1
        by[syms[i][1] if i >= 0 and rip >= 0xffffffff80000000 else "(below the kernel: decompressor/user)"] += n
    return by.most_common(top), sum(samples.values())


def idle_cpu(mat, mem, seconds=10.0):
    """Host CPU seconds per wall second with the guest at the prompt and the
    VMM waiting on (an empty) console input pipe."""
    r, w = os.pipe()
    vm = VM(mat["vmlinux"], mem=mem, initrd=mat["initramfs.cpio"], cmdline="console=ttyS0",
            output=lambda d: None, input_fd=r)
    vm.run_until(b"# ", timeout=900)
    vm.exit_reason = None
    c0, t0, i0 = time.process_time(), time.perf_counter(), vm.vcpu.icount
    vm.run(timeout=seconds)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    n = vm.vcpu.icount - i0
    vm.close()
    os.close(w)
    os.close(r)
    return cpu / wall, n / wall, vm.idle_halts


def restore_times(snap, runs):
    inproc = []
    for _ in range(runs):
        t = time.perf_counter()
        vm = vmstate.restore(snap, output=lambda d: None)
        inproc.append((time.perf_counter() - t) * 1e3)
        vm.close()
    code = ("import time,sys; t0=time.perf_counter(); from emu.services import vmstate; import emu.vm.vmm; "
            "t1=time.perf_counter(); vm=vmstate.restore(sys.argv[1], output=lambda d: None); "
            "t2=time.perf_counter(); print((t1-t0)*1e3, (t2-t1)*1e3)")
    fresh = []
    for _ in range(runs):
        p = subprocess.run([sys.executable, "-c", code, snap], capture_output=True, text=True, cwd=ROOT)
        fresh.append(tuple(float(x) for x in p.stdout.split()))
    return inproc, fresh


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mem", default="128M")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--profile-only", action="store_true")
    a = ap.parse_args()
    mat = linuxboot.material()
    if a.profile_only:
        return profile_main(mat, a)
    print("kernel %s, %s RAM, host %s, python %s, %s" % (mat["release"], a.mem, os.uname().machine,
                                                         sys.version.split()[0], time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    print("\n| boot | to first console line | to \"Run /init\" | to the prompt |")
    print("|---|---|---|---|")
    keep = None
    for label, kernel, pvh in (("vmlinux, 64-bit boot protocol", "vmlinux", False),
                               ("bzImage (xz decompressor in the guest)", "vmlinuz", False),
                               ("vmlinux, PVH entry (32-bit)", "vmlinux", True)):
        runs = []
        for _ in range(a.runs if kernel == "vmlinux" and not pvh else 1):
            vm, marks, _s = boot(mat, kernel, a.mem, pvh=pvh)
            runs.append(marks)
            if keep is None:
                keep = vm
            else:
                vm.close()

        def cell(name):
            n = statistics.median(r[name][0] for r in runs)
            t = statistics.median(r[name][1] for r in runs)
            return "%.2f G insns, %.1f s (%.0f MIPS)" % (n / 1e9, t, n / t / 1e6)
        print("| %s (median of %d) | %s | %s | %s |" % (label, len(runs), cell("first line"), cell("/init"),
                                                         cell("prompt")))
    print("\nwhere the vmlinux boot's instructions go (dmesg timestamps are guest time = instructions):\n")
    print("| from | to | G instructions |")
    print("|---|---|---|")
    for frm, to, dt in phase_table(dmesg_phases(keep)):
        print("| %s | %s | %.3f |" % (frm, to, dt))
    with tempfile.TemporaryDirectory() as td:
        snap = os.path.join(td, "prompt.emu")
        t = time.perf_counter()
        npages = vmstate.save(keep, snap)
        save_ms = (time.perf_counter() - t) * 1e3
        keep.close()
        inproc, fresh = restore_times(snap, 5)
        print("\nsnapshot at the prompt: %d non-zero pages (%.1f MiB), saved in %.0f ms, file %.1f MiB on disk"
              % (npages, npages / 256, save_ms, os.stat(snap).st_blocks * 512 / 2**20))
        print("restore, in-process (modules imported): median %.2f ms (runs: %s)"
              % (statistics.median(inproc), ", ".join("%.2f" % x for x in inproc)))
        print("restore, fresh process: import emu %.0f ms + restore %.1f ms (medians of 5)"
              % (statistics.median(f[0] for f in fresh), statistics.median(f[1] for f in fresh)))
    share, ips, halts = idle_cpu(mat, a.mem)
    print("\nidle at the prompt for 10 s (console input attached, VMM waiting in real time): host CPU %.2f%% "
          "of one core; guest ran %.0f instructions/s; %d idle waits" % (share * 100, ips, halts))
    if not a.no_profile:
        profile_main(mat, a)


def profile_main(mat, a):
    if True:
        disk = tempfile.NamedTemporaryFile(suffix=".img", delete=False)
        disk.truncate(32 << 20)
        disk.close()
        vm, marks, samples = boot(mat, "vmlinux", a.mem, sample=True, disk=disk.name)
        top, total = profile(vm, samples, disk.name)
        os.unlink(disk.name)
        print("\nkernel functions, vmlinux boot to the prompt (RIP every %d instructions, %d samples):\n"
              % (SAMPLE, total))
        print("| function | share |")
        print("|---|---|")
        for name, n in top:
            print("| %s | %.1f%% |" % (name, 100.0 * n / total))
        vm.close()


if __name__ == "__main__":
    main()
