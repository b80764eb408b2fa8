"""Booting Debian's own, unmodified Linux kernel (linux-image-amd64) under
`emu boot`, with a busybox initramfs, and driving it through the serial
console.

The material (kernel package, busybox-static, initramfs, ext4 image) is
fetched with apt-get and built by guests/linuxboot/build.py into a cache;
every test here skips, saying why, when it cannot be fetched.

A boot costs about 2 G guest instructions, so the ACPI boot runs once per
test session (whichever xdist worker gets there first; the others wait on a
lock) and is saved as a snapshot at the shell prompt; each test then
restores its own VM from it in a few milliseconds, with a fresh copy of the
disk image and its own host sockets. The boots that differ (acpi=off, the
bzImage, the 32-bit PVH entry) run in their own tests."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

from emu.services import vmstate
from emu.vm import VM

from linuxboot_peer import EthernetPeer, VsockListener

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "guests", "linuxboot"))
import build as linuxboot  # noqa: E402

MEM = "128M"
CMDLINE = "console=ttyS0"
PROMPT = b"# "


@pytest.fixture(scope="session")
def material():
    try:
        return linuxboot.material()
    except linuxboot.Unavailable as e:
        pytest.skip("Debian's kernel package cannot be fetched or built here: %s" % e)


def _disk(material, tmp_path) -> str:
    d = str(tmp_path / "rootfs.ext4")
    shutil.copy(material["rootfs.ext4"], d)
    return d


def boot_to_prompt(material, tmp_path, kernel="vmlinux", cmdline=CMDLINE, timeout=600, **devs):
    """A VM booted from the material to the busybox prompt; (vm, console log)."""
    vm = VM(material[kernel], mem=MEM, initrd=material["initramfs.cpio"], cmdline=cmdline,
            output=lambda d: None, **devs)
    t0 = time.perf_counter()
    ok = vm.run_until(PROMPT, timeout=timeout)
    vm.boot_seconds = time.perf_counter() - t0
    log = vm.console_text().decode("utf-8", "replace")
    assert ok, "no shell prompt (VM: %s); console ends:\n%s" % (vm.exit_reason, log[-3000:])
    return vm, log


@pytest.fixture(scope="session")
def prompt_snapshot(material, tmp_path_factory):
    """(snapshot path, console log of its boot): Linux booted with ACPI and
    every virtio device, saved at the shell prompt. Shared by the xdist
    workers through their common base directory."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent                 # the session's directory, common to its workers
    shared = base / "linuxboot"
    shared.mkdir(exist_ok=True)
    snap, logf = shared / "prompt.emu", shared / "boot.log"
    with open(shared / "lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if not snap.exists():
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            vm, log = boot_to_prompt(material, shared, disk=_disk(material, shared), rng=True, vconsole=True,
                                     vsock=str(shared / "boot.vsock"), net=a)
            vmstate.save(vm, str(snap))
            vm.close()
            b.close()
            logf.write_text(log)
    return str(snap), logf.read_text()


@pytest.fixture
def linux(material, prompt_snapshot, tmp_path):
    """A VM restored at the shell prompt, with its own disk copy, vsock socket
    path and virtio-net peer (vm.peer: an EthernetPeer)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    vm = vmstate.restore(prompt_snapshot[0], disk=_disk(material, tmp_path), output=lambda d: None,
                         vsock=str(tmp_path / "v.sock"), net=a)
    vm.peer = EthernetPeer(b)
    vm.tmp = tmp_path
    yield vm
    vm.close()
    vm.peer.close()


def test_acpi_boot_reaches_the_shell(prompt_snapshot):
    log = prompt_snapshot[1]
    assert "Linux version 6." in log and "Debian" in log
    # the tables the VMM built from its machine description
    for t in ("RSDP", "XSDT", "FACP", "DSDT", "APIC"):
        assert re.search(r"ACPI: %s 0x00000000000E" % t, log), t
    assert "ACPI: Using ACPI (MADT) for SMP configuration information" in log
    assert "TSC deadline timer available" in log or "tsc: Detected 1000.000 MHz" in log
    # devices found through the DSDT alone (this kernel has no virtio_mmio.device= support)
    assert "rtc_cmos 00:" in log and "registered as rtc0" in log
    assert re.search(r"virtio_blk virtio\d: \[vda\] 32768 512-byte logical blocks", log)
    assert "Run /init as init process" in log and "emu-init: ready" in log
    assert "unchecked MSR access" not in log
    assert "Call Trace" not in log


def test_console_commands(linux, material):
    assert linux.command("uname -r").strip() == material["release"]
    cpuinfo = linux.command("cat /proc/cpuinfo")
    flags = set(re.search(r"^flags\s*: (.*)$", cpuinfo, re.M).group(1).split())
    # what the VMM's CPUID advertises (and the core implements) ...
    assert {"fpu", "pse", "tsc", "msr", "pae", "cx8", "apic", "pge", "cmov", "pat", "sse2", "x2apic",
            "tsc_deadline_timer", "smep", "smap", "lm", "nx", "syscall"} <= flags
    # ... and nothing it does not implement
    assert not flags & {"vmx", "svm", "mtrr", "sep", "avx512f"}
    # PCIDs: page-table isolation switches CR3 on every kernel entry and exit
    # keeping the TLB (CR3 bit 63), and flushes user translations with INVPCID
    assert {"pcid", "invpcid", "invpcid_single", "pti", "umip", "arat"} <= flags
    kept, flushes = linux.vcpu.counters["pcid_kept"], linux.vcpu.counters["tlb_flushes"]
    linux.command("for i in 1 2 3 4 5 6 7 8 9 10; do cat /proc/version > /dev/null; done")
    kept, flushes = linux.vcpu.counters["pcid_kept"] - kept, linux.vcpu.counters["tlb_flushes"] - flushes
    assert kept > 200 and flushes < kept / 4, (kept, flushes)
    assert {"avx2", "aes", "sha_ni"} <= flags            # (emu implements them: issue 18)
    assert re.search(r"model name\s*:", cpuinfo)

    def local_timer_ticks():
        m = re.search(r"^\s*LOC:\s+(\d+)", linux.command("cat /proc/interrupts"), re.M)
        return int(m.group(1))

    t1 = local_timer_ticks()
    linux.command("sleep 1")
    t2 = local_timer_ticks()
    assert t2 > t1 > 0, (t1, t2)              # the LAPIC timer ticks while the guest sleeps
    # ... but not 250 times a second: with ARAT (CPUID.06H:EAX[2]) Linux runs its
    # timer one-shot, with high-resolution timers, and stops the tick when idle
    assert t2 - t1 < 60, (t1, t2)
    timers = linux.command("grep -E 'nohz_mode|event_handler' /proc/timer_list")
    assert re.search(r"\.nohz_mode\s*: 2", timers) and "event_handler:  hrtimer_interrupt" in timers
    dmesg = linux.command("dmesg")
    assert "Linux version" in dmesg
    assert "unchecked MSR access" not in dmesg
    assert "WARNING:" not in dmesg.replace("RETBleed: WARNING", "")


def test_rtc_gives_the_guest_its_time(linux):
    t = int(linux.command("date +%s").strip())
    assert abs(t - (linux.rtc.epoch + linux.vcpu.tsc / 1e9)) < 5
    assert re.search(r"rtc_time\s*: \d\d:\d\d:\d\d", linux.command("cat /proc/driver/rtc"))


def test_ext4_on_virtio_blk_written_by_the_guest_read_by_the_host(linux):
    out = linux.command("mount -t ext4 /dev/vda /mnt && cat /mnt/etc/hello.txt && "
                        "echo written-by-the-guest > /mnt/guest.txt && umount /mnt && echo DONE")
    assert "hello from the ext4 image" in out and "DONE" in out
    disk = linux.blk.path
    linux.close()
    if shutil.which("debugfs") is None:
        pytest.skip("debugfs (e2fsprogs) is not installed: cannot read the image on the host")
    p = subprocess.run(["debugfs", "-R", "cat /guest.txt", disk], capture_output=True, text=True)
    assert p.stdout == "written-by-the-guest\n", p.stderr


def test_vsock_guest_to_host_and_host_to_guest(linux):
    uds = str(linux.tmp / "v.sock")
    listener = VsockListener(uds + "_5000")
    try:
        out = linux.command("echo hello-over-vsock | vsockcat 2 5000")
        assert "kcosv-revo-olleh" in out                   # the host process reversed it
        assert listener.got == b"hello-over-vsock\n"
    finally:
        listener.close()
    # the host connects: "CONNECT 6000" to the guest's listener
    linux.command("vsockcat -l 6000 &")
    h = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    h.connect(uds)
    h.setblocking(False)
    h.sendall(b"CONNECT 6000\n")
    got, sent = b"", False
    deadline = time.time() + 60
    while time.time() < deadline:
        linux.exit_reason = None
        linux.run(max_insns=linux.vcpu.icount + 5_000_000, timeout=2)
        try:
            b = h.recv(4096)
        except BlockingIOError:
            continue
        if not b:
            break
        got += b
        if not sent and got.startswith(b"OK ") and b"\n" in got:
            h.sendall(b"from-the-host")
            h.shutdown(socket.SHUT_WR)
            sent = True
    h.close()
    assert re.match(rb"OK \d+\nFROM-THE-HOST$", got), got


def test_virtio_net_exchanges_with_a_host_process(linux):
    linux.peer.files["greeting"] = b"hello over tftp\n"
    out = linux.command("ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up && ping -c 2 10.0.2.2 && "
                        "tftp -g -r greeting -l /tmp/g 10.0.2.2 && cat /tmp/g && "
                        "echo sent-by-the-guest > /tmp/u && tftp -p -l /tmp/u -r up.txt 10.0.2.2 && echo NETOK")
    assert "2 packets received" in out and linux.peer.pings == 2
    assert "hello over tftp" in out and "NETOK" in out
    assert linux.peer.uploads == {"up.txt": b"sent-by-the-guest\n"}


def test_rng_and_virtio_console(linux):
    assert linux.command("cat /sys/class/misc/hw_random/rng_current").strip() == "virtio_rng.0"
    out = linux.command("head -c 32 /dev/hwrng | od -An -tx1")
    assert len(out.split()) == 32 and linux.rng.n_bytes >= 32
    linux.command("echo to-the-virtio-console > /dev/hvc0")
    assert b"to-the-virtio-console" in bytes(linux.vcon.output)


def test_poweroff_ends_the_vm(linux):
    linux.send("poweroff\n")
    assert linux.run(timeout=120) == "poweroff"
    assert "reboot: Power down" in linux.console_text().decode()


def test_snapshot_restored_in_a_fresh_process_answers(material, prompt_snapshot, tmp_path):
    """`emu boot --restore` of the prompt snapshot in a new process: the shell
    answers a command, and poweroff ends emu with status 0."""
    import emu as emu_pkg
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(emu_pkg.__file__))))
    p = subprocess.run([sys.executable, "-m", "emu", "boot", "--restore", prompt_snapshot[0],
                        "--disk", _disk(material, tmp_path), "--vsock", str(tmp_path / "v.sock"),
                        "--net", _dgram_sink(tmp_path), "--timeout", "300"],
                       input=b"uname -r\npoweroff\n", capture_output=True, timeout=400, env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode("utf-8", "replace")
    assert material["release"] in out
    assert "reboot: Power down" in out


def _dgram_sink(tmp_path) -> str:
    """A bound Unix datagram socket for --net (nothing answers on it)."""
    path = str(tmp_path / "net.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    _KEEP.append(s)
    return path


_KEEP = []


def test_acpi_off_boot_uses_the_mp_table(material, tmp_path):
    vm, log = boot_to_prompt(material, tmp_path, cmdline=CMDLINE + " acpi=off")
    try:
        assert "found SMP MP-table at [mem 0x000f0000-0x000f000f]" in log
        assert "Intel MultiProcessor Specification v1.4" in log
        assert "IOAPIC[0]: apic_id 1, version 17, address 0xfec00000, GSI 0-23" in log
        assert "ACPI: RSDP" not in log
        assert "unchecked MSR access" not in log
        assert vm.command("uname -r").strip() == material["release"]
        irq = vm.command("cat /proc/interrupts")
        assert re.search(r"IO-APIC\s+4-edge\s+ttyS0", irq) and int(re.search(r"LOC:\s+(\d+)", irq).group(1)) > 0
        vm.send("poweroff\n")
        # without ACPI the kernel has no way to power off: it halts with interrupts off
        assert vm.run(timeout=120) == "halted"
        assert "reboot: System halted" in vm.console_text().decode()
    finally:
        vm.close()


def test_bzimage_boot(material, tmp_path):
    """The bzImage as Debian ships it: its own decompressor (xz) runs in the guest."""
    vm, log = boot_to_prompt(material, tmp_path, kernel="vmlinuz", timeout=900)
    try:
        assert "Linux version 6." in log and "Run /init as init process" in log
        assert vm.command("uname -r").strip() == material["release"]
        vm.send("poweroff\n")
        assert vm.run(timeout=120) == "poweroff"
    finally:
        vm.close()


def test_pvh_boot_enters_in_32_bit_protected_mode(material, tmp_path):
    """The same vmlinux entered at its PVH entry: the kernel's own 32-bit code
    (pvh_start_xen) runs with paging off, turns on long mode and jumps to 64-bit code."""
    from emu.vm import boot
    with open(material["vmlinux"], "rb") as f:
        entry = boot.pvh_entry(f.read())
    vm = VM(material["vmlinux"], mem=MEM, initrd=material["initramfs.cpio"], cmdline=CMDLINE, pvh=True,
            output=lambda d: None)
    try:
        v = vm.vcpu
        assert vm.entry == entry and v.rip == entry and v.cs32 and not v.cr0 & (1 << 31) and v.efer == 0
        steps = 0
        while v.cs32 and steps < 200:                     # single-step through the 32-bit entry code
            vm.exit_reason = None
            assert vm.run(max_insns=v.icount + 1) == "limit"
            steps += 1
            if v.cs32:
                assert v.rip < 1 << 32
        assert not v.cs32 and v.cr0 & (1 << 31) and v.efer & (1 << 10)    # paging on, IA-32e active
        assert 10 < steps < 200
        vm.exit_reason = None
        ok = vm.run_until(PROMPT, timeout=600)
        log = vm.console_text().decode("utf-8", "replace")
        assert ok, log[-2000:]
        assert "RAMDISK:" in log and "ACPI: RSDP 0x00000000000E0000" in log and "Run /init" in log
        assert vm.command("uname -r").strip() == material["release"]
        # boot_params.hdr.type_of_loader as the kernel's PVH code fills it (0xb0: PVH, not Xen)
        assert vm.command("od -An -tx1 -j 528 -N 1 /sys/kernel/boot_params/data").strip() == "b0"
        vm.send("poweroff\n")
        assert vm.run(timeout=120) == "poweroff"
    finally:
        vm.close()


def test_interactive_console_on_a_terminal(material, prompt_snapshot, tmp_path):
    """`emu boot --console` on a terminal (a pty): raw keys reach the guest's
    shell, its answer reaches the terminal, Ctrl-A x leaves with status 0."""
    import pty
    import select
    import termios
    import emu as emu_pkg
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(emu_pkg.__file__))))
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "emu", "boot", "--console", "--restore", prompt_snapshot[0],
                          "--disk", _disk(material, tmp_path), "--vsock", str(tmp_path / "v.sock"),
                          "--net", _dgram_sink(tmp_path), "--timeout", "300"],
                         stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    seen = b""

    def read_until(pat, timeout=120):
        nonlocal seen
        end = time.time() + timeout
        while pat not in seen and time.time() < end:
            r, _, _ = select.select([master], [], [], 1)
            if r:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        return pat in seen

    try:
        # type only once emu has put the terminal in raw mode: tty.setraw flushes
        # pending input (TCSAFLUSH), so keys typed earlier (a slow start on a
        # loaded host) were echoed by the pty and then lost. TCGETS on a pty
        # master reads the slave's settings.
        end = time.time() + 120
        while termios.tcgetattr(master)[3] & (termios.ICANON | termios.ECHO) and time.time() < end:
            time.sleep(0.05)
        os.write(master, b"echo $((6*7)); uname -r\r")     # Enter is CR on a raw terminal
        assert read_until(material["release"].encode()), seen[-500:]
        assert b"42" in seen
        os.write(master, b"\x01x")                         # Ctrl-A x
        assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
