"""The microVM monitor: one vCPU, guest RAM, the platform devices, and the
run loop (`while True: exit = vcpu.run(budget); handle(exit)`).

Virtual time: the vCPU's TSC advances with instructions retired
(`cycles_per_insn`, default 1); the APIC timer is driven by it. A guest that
halts with interrupts enabled and nothing pending jumps forward to the next
timer deadline (or, with realtime=True, the VMM sleeps until then) — it never
spins."""
from __future__ import annotations

import logging
import os
import re
import select
import sys
import time

from emu import _core
from emu.cpuid import baseline_table
from emu.vcpu import Vcpu
from emu.vm import boot
from emu.vm.assist import Assist, TripleFault, ERROR_CODE_VECTORS
from emu.vm.devices import (IOAPIC_BASE, IOAPIC_SIZE, LAPIC_BASE, LAPIC_SIZE, UART_BASE, UART_IRQ,
                            GuestMemoryError, IoApic, LocalApic, PhysMem, SystemControl, Uart16550)
from emu.vm import acpi, mptable
from emu.vm.bus import Bus
from emu.vm.machine_desc import DeviceDesc, MachineDesc, PM_PORT
from emu.vm.rtc import CmosRtc, RTC_IRQ, RTC_PORT
from emu.vm.virtio.mmio import VirtioMmio

from emu.vm.accel import ACCEL_BASE, ACCEL_IRQ, ACCEL_SIZE, AccelDevice, AccelHost

import numpy as np

TSC_HZ = 1_000_000_000            # the frequency the guest is told (CPUID 0x15/0x16)
SLICE = 2_000_000                 # instructions per run() when no timer is due sooner
MAX_EVENTS = 1000                 # VMM log events kept in vm.events
log = logging.getLogger("emu.vm")
_ANSI = re.compile("\x1b\\[[0-9;?]*[A-Za-z]")

T = _core.TRAPS
EXIT = _core.EXIT


def parse_size(s) -> int:
    """A RAM size: bytes, or a number with K, M or G (KB, MB, GB)."""
    if isinstance(s, int) and not isinstance(s, bool):
        return s
    t = str(s).strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        if t.endswith("B") and t[-2:-1] in mult:
            return int(t[:-2], 10) * mult[t[-2]]
        if t and t[-1] in mult:
            return int(t[:-1], 10) * mult[t[-1]]
        return int(t, 0)
    except ValueError:
        raise VMError("--mem %s: not a size (a number of bytes, or with K, M or G: 128M)" % s) from None


MAX_MEM = 1 << 36      # 64 GiB of guest RAM (lazily committed)


class VMError(Exception):
    pass


# platform MSRs the VMM answers (SDM Vol. 4, table 2-2), as a kernel expects to
# find them after firmware: IA32_PLATFORM_ID, IA32_BIOS_SIGN_ID (microcode
# revision), IA32_MISC_ENABLE (fast strings, no BTS/PEBS)
PLATFORM_MSRS = {0x17: 0, 0x8B: 0x1 << 32, 0x1A0: 0x1 | (1 << 11) | (1 << 12)}


# a device model's registers: its plain-data attributes, not its wiring
_WIRING = {"sink", "irq_line", "clock", "eoi_listeners", "lapic", "mem", "fd", "v", "path", "readonly", "size",
           "tsc", "vm"}


def _registers(dev) -> dict:
    if hasattr(dev, "get_state"):
        return dev.get_state()
    out = {}
    for k, v in vars(dev).items():
        if k in _WIRING or callable(v):
            continue
        if isinstance(v, bytearray):
            v = bytes(v)
        if isinstance(v, (bool, int, float, str, bytes, list, tuple, dict)) or v is None:
            out[k] = v
    return out


def _set_registers(dev, regs: dict) -> None:
    if hasattr(dev, "set_state"):
        dev.set_state(regs)
        return
    for k, v in regs.items():
        if k in _WIRING or not hasattr(dev, k):
            raise VMError("%s has no register %r" % (type(dev).__name__, k))
        if isinstance(getattr(dev, k), bytearray):
            v = bytearray(v)
        setattr(dev, k, v)


class _Changed:
    """An MSR exit whose written value a policy replaced."""

    def __init__(self, e, value):
        self.msr, self.write, self.rip, self.value = e.msr, e.write, e.rip, value


class VM:
    """A microVM booting an ELF64 kernel with the 64-bit boot protocol
    (kernel=None: a VM to restore a snapshot or receive a migration into,
    emu.services.vmstate)."""

    hooks = None            # an emu.hooks.Hooks on the vCPU: HOOK exits go there (emu/gdbstub.py)
    on_stopped = None       # fn(vcpu) -> True: a STOPPED exit was the caller's (gdb's Ctrl-C)

    def __init__(self, kernel, mem="128M", disk=None, cmdline="console=ttyS0", *,
                 output=None, input_fd=None, realtime=False, cycles_per_insn=1.0,
                 msr_policy=None, disk_readonly=False, core_delivery=None, policy=None, io_policy=None,
                 accel=False, accel_shares=1, initrd=None, rng=False, vconsole=False, vsock=None,
                 vsock_cid=3, net=None, seed=0, epoch=None, pvh=False):
        self.t_create = time.perf_counter()
        self.mem_size = parse_size(mem)
        if self.mem_size < (2 << 20):
            raise VMError("--mem must be at least 2M")
        if self.mem_size > MAX_MEM or self.mem_size % 4096:
            raise VMError("--mem must be a multiple of 4K, at most %dG" % (MAX_MEM >> 30))
        self.phys = _core.PhysMachine(self.mem_size)
        self.ram = np.frombuffer(self.phys, dtype=np.uint8)
        self.mem = PhysMem(self.phys, self.ram)
        self.vcpu = Vcpu(self.phys)
        self.vcpu.set_cpuid_table(self._cpuid())
        self.cycles_per_insn = cycles_per_insn
        self.tsc_offset = 0
        self.vcpu.set_tsc(0, cycles_per_insn)
        self.realtime = realtime
        self.output = output if output is not None else self._stdout
        self.t_first_byte = None
        self.console = bytearray()
        self.events = []                  # (guest TSC, message): the VMM log (bad descriptors...)

        # MSRs always exit: the VMM owns the APIC MSRs and applies msr_policy
        self.msr_policy = msr_policy      # callable(index, value, write) -> True to allow
        # a core with the system-level CPU delivers faults and interrupts through
        # the guest's IDT itself; otherwise the VMM does it (emu/vm/assist.py)
        self.core_irq = hasattr(self.vcpu, "raise_irq") and hasattr(self.vcpu, "system_mode")
        if core_delivery is not None:
            if core_delivery and not self.core_irq:
                raise VMError("this core has no in-guest event delivery")
            self.core_irq = core_delivery
        if self.core_irq:
            self.vcpu.system_mode = True
        self.vcpu.trap_mask = T["msr"]
        # trap-and-emulate at ring 0: a hypervisor Policy (emu/hypervisor) sees
        # and answers the guest kernel's CPUID, CR accesses (CR3 loads), INVLPG,
        # descriptor-table loads, MSR accesses, HLT, INT n, RDPMC, SYSCALL and
        # port I/O; io_policy(port, size, write, value), the short form for port
        # I/O: False refuses it (#GP), an int is what an IN reads
        self.hyp = None
        if policy is not None:
            from emu.hypervisor.policy import Hypervisor
            self.hyp = Hypervisor(policy)
            self.hyp.install(self.vcpu)
            self.vcpu.trap_mask |= T["msr"]
        self.io_policy = io_policy
        self.platform_msrs = dict(PLATFORM_MSRS)
        self.assist = Assist(self.vcpu, self.mem)
        self.inflight = None              # vector handed to the core, not yet taken

        # ---- the machine: one description feeds the bus, ACPI, the MP table and e820 ----
        self.desc = desc = MachineDesc(self.mem_size)
        self.bus = bus = Bus()
        self.pm_port = PM_PORT
        self.lapic = LocalApic(self.tsc)
        self.ioapic = IoApic(self.lapic)
        self.uart = Uart16550(self._console_out, lambda lvl: self.ioapic.set_irq(UART_IRQ, lvl))
        self.rtc = CmosRtc(self.tsc, TSC_HZ, lambda lvl: self.ioapic.set_irq(RTC_IRQ, lvl), epoch=epoch)
        for name, kind, dev, ports, mmio, irq in (
                ("lapic", "lapic", self.lapic, (), ((LAPIC_BASE, LAPIC_SIZE),), None),
                ("ioapic", "ioapic", self.ioapic, (), ((IOAPIC_BASE, IOAPIC_SIZE),), None),
                ("uart", "uart", self.uart, ((UART_BASE, 8),), (), UART_IRQ),
                ("rtc", "rtc", self.rtc, ((RTC_PORT, 2),), (), RTC_IRQ),
                ("post", "sysctl", SystemControl(self, 0x80), ((0x80, 1),), (), None),
                ("debug_exit", "sysctl", SystemControl(self, 0x501), ((0x501, 1),), (), None),
                ("acpi_pm", "sysctl", SystemControl(self, PM_PORT), ((PM_PORT, 8),), (), None)):
            desc.add(DeviceDesc(name, kind, ports=ports, mmio=mmio, irq=irq))
            bus.attach(name, dev, ports=ports, mmio=mmio)
        self.input_fd = input_fd
        self.virtio = {}                  # name -> VirtioMmio transport
        self.blk = None
        if disk is not None:
            from emu.vm.virtio.blk import VirtioBlk
            self.blk = self._add_virtio("blk", "virtio-blk", VirtioBlk(disk, readonly=disk_readonly))
            d = desc.find("blk")
            # our own guest kernel finds its disk on the command line (Linux: in the DSDT)
            cmdline = "%s virtio_mmio.device=4K@%#x:%d" % (cmdline, d.mmio[0][0], d.irq)
        # the compute accelerator (emu/vm/accel.py): accel=True gives this VM
        # its own; an AccelHost shares one among several VMs
        self.accel = None
        self.accel_shares = accel_shares
        if accel:
            self._attach_accel(accel)
            cmdline = "%s emu_accel=4K@%#x:%d" % (cmdline, ACCEL_BASE, ACCEL_IRQ)
        self.rng = self.vcon = self.vsock = self.net = None
        if rng:
            from emu.vm.virtio.rng import VirtioRng
            self.rng = self._add_virtio("rng", "virtio-rng", VirtioRng(seed))
        if vconsole:
            from emu.vm.virtio.console import VirtioConsole
            self.vcon = self._add_virtio("vcon", "virtio-console", VirtioConsole(self._vcon_out))
        if vsock is not None:
            from emu.vm.virtio.vsock import VirtioVsock
            self.vsock = self._add_virtio("vsock", "virtio-vsock", VirtioVsock(vsock, cid=vsock_cid))
        if net is not None:
            from emu.vm.virtio.net import VirtioNet
            self.net = self._add_virtio("net", "virtio-net", VirtioNet(net))
        self.cmdline = cmdline
        self.entry = None
        if kernel is not None:
            image = self._read_image(kernel)
            rd = self._read_image(initrd) if initrd is not None else None
            rsdp = self._platform_tables()
            if pvh:
                self.entry = boot.setup_pvh(self, image, cmdline, initrd=rd, rsdp=rsdp)
            else:
                self.entry = boot.setup_boot(self, image, cmdline, initrd=rd, rsdp=rsdp)
        self.exit_reason = None
        self.post_codes = []              # (code, host time, guest TSC) of port 0x80 writes
        self.halted_wait = 0.0
        self.idle_halts = 0
        self._until = None                # run(): stop when this returns True (run_until)
        self._t_end = None

    @staticmethod
    def _read_image(src) -> bytes:
        if isinstance(src, (bytes, bytearray)):
            return bytes(src)
        with open(src, "rb") as f:
            return f.read()

    def _add_virtio(self, name, kind, dev):
        from emu.vm.virtio.mmio import VirtioMmio
        d = self.desc.add_virtio(name, kind, dev.device_id)
        gsi = d.irq
        t = VirtioMmio(dev, self.mem, lambda lvl: self.ioapic.set_irq(gsi, lvl), self.log_event)
        self.bus.attach(name, t, mmio=d.mmio)
        self.virtio[name] = t
        return dev

    def _platform_tables(self) -> int:
        """ACPI tables and the MP table in the BIOS area; the RSDP's address."""
        rsdp, blob = acpi.build(self.desc)
        self.ram[rsdp:rsdp + len(blob)] = np.frombuffer(blob, np.uint8)
        sig, feat = self.vcpu.cpuid(1)[0], self.vcpu.cpuid(1)[3]
        mp_addr, mp = mptable.build(self.desc, sig, feat)
        self.ram[mp_addr:mp_addr + len(mp)] = np.frombuffer(mp, np.uint8)
        return rsdp

    def log_event(self, message: str) -> None:
        """An event in the VMM log (a guest mistake a device refused...)."""
        log.warning("%s", message)
        if len(self.events) < MAX_EVENTS:
            self.events.append((self.vcpu.tsc, message))

    def _vcon_out(self, data: bytes) -> None:
        pass

    def _attach_accel(self, accel=True) -> None:
        host = accel if isinstance(accel, AccelHost) else None
        self.accel = AccelDevice(self.mem, lambda lvl: self.ioapic.set_irq(ACCEL_IRQ, lvl), host=host,
                                 shares=self.accel_shares, name="vm%x" % id(self))
        self.desc.add(DeviceDesc("accel", "accel", mmio=((ACCEL_BASE, ACCEL_SIZE),), irq=ACCEL_IRQ))
        self.bus.attach("accel", self.accel, mmio=((ACCEL_BASE, ACCEL_SIZE),))

    # ---- state (for emu/services/vmstate.py: snapshots, migration) ----
    def _devices(self) -> dict:
        d = {name: dev for name, dev in self.bus.devices.items() if not isinstance(dev, SystemControl)}
        d["assist"] = self.assist
        return d

    def get_state(self) -> dict:
        """The monitor's and the device models' state as plain data (ints,
        bytes, lists, dicts): with the vCPU's save_state() and RAM, all a
        stopped VM is."""
        return {"tsc_offset": self.tsc_offset, "cycles_per_insn": self.cycles_per_insn,
                "inflight": self.inflight, "platform_msrs": dict(self.platform_msrs),
                "devices": {name: _registers(dev) for name, dev in self._devices().items()}}

    def set_state(self, state: dict) -> None:
        self.tsc_offset = state["tsc_offset"]
        self.cycles_per_insn = state["cycles_per_insn"]
        self.inflight = state["inflight"]
        self.platform_msrs = dict(state["platform_msrs"])
        if "accel" in state["devices"] and self.accel is None:
            self._attach_accel()              # no host resource behind it: attach it on restore
        devs = self._devices()
        for name, regs in state["devices"].items():
            if name not in devs:
                raise VMError("the state has a %s device this VM lacks (attach the disk)" % name)
            _set_registers(devs[name], regs)

    @property
    def disk_path(self):
        return self.blk.path if self.blk is not None else None

    def device_args(self) -> dict:
        """VM() arguments that re-create this VM's devices (for a restore).
        A net backend given as a socket cannot be named: the restorer passes one."""
        out = {}
        if self.accel is not None:
            out["accel"] = True
        if self.rng is not None:
            out["rng"] = True
            out["seed"] = self.rng.seed
        if self.vcon is not None:
            out["vconsole"] = True
        if self.vsock is not None:
            out["vsock"] = self.vsock.uds_path
            out["vsock_cid"] = self.vsock.cid
        if self.net is not None and self.net.path is not None:
            out["net"] = self.net.path
        return out

    # ---- platform ----
    def _cpuid(self):
        """The baseline table plus what this machine's platform provides (SDM
        Vol. 2A, CPUID): the APIC, TSC-deadline timer and x2APIC (devices.py),
        the paging and MSR features the core's system mode implements (PSE,
        MSR, PAE, PGE, PAT; SMEP, SMAP, UMIP; PCID, INVPCID), an always-running APIC timer
        (ARAT), the TSC and crystal frequency in
        leaves 0x15/0x16, and a maximum basic leaf that covers them."""
        base = {(e[0], e[1]): list(e) for e in baseline_table()}
        _l, _s, a, b, c, d = base[(1, None)]
        c |= (1 << 24) | (1 << 21) | (1 << 17)                  # TSC-deadline, x2APIC, PCID
        d |= (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 9) | (1 << 13) | (1 << 16)  # PSE TSC MSR PAE APIC PGE PAT
        base[(1, None)] = [1, None, a, b & 0x00FFFFFF, c, d]
        e7 = base.get((7, 0))
        if e7 is not None:
            e7[3] |= (1 << 7) | (1 << 20) | (1 << 10)           # SMEP, SMAP, INVPCID
            e7[4] |= 1 << 2                                     # UMIP (CR4.UMIP: SGDT SIDT SLDT SMSW STR)
        # leaf 6 EAX[2] ARAT: the local APIC timer runs in every C-state (ours is
        # virtual time). Without it Linux marks the LAPIC timer C3STOP and, with no
        # broadcast timer, never leaves periodic ticks for one-shot mode: no NO_HZ
        # idle, no high-resolution timers, 250 wake-ups a second at the prompt
        base[(6, None)] = [6, None, 1 << 2, 0, 0, 0]
        base[(0x15, None)] = [0x15, None, 1, 1, TSC_HZ, 0]      # TSC = crystal x 1/1
        base[(0x16, None)] = [0x16, None, TSC_HZ // 1_000_000, TSC_HZ // 1_000_000, 100, 0]
        basic_max = max(k[0] for k in base if k[0] < 0x40000000)
        base[(0, None)][2] = basic_max
        return [tuple(v) for _k, v in sorted(base.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))]

    def tsc(self) -> int:
        return self.vcpu.tsc

    def _stdout(self, data: bytes) -> None:
        os.write(1, data)

    def _console_out(self, data: bytes) -> None:
        if self.t_first_byte is None:
            self.t_first_byte = time.perf_counter()
        self.console += data
        self.output(data)

    def skip_time(self, cycles: int) -> None:
        """Advance virtual time (the guest was idle)."""
        if cycles <= 0:
            return
        self.tsc_offset += cycles
        self.vcpu.set_tsc(self.tsc_offset, self.cycles_per_insn)

    # ---- I/O dispatch ----
    def io(self, e) -> None:
        if self.hyp is not None and self.hyp.handle(self.vcpu, e):
            return                        # the trap policy answered (or refused) it
        port, size = e.port, e.size
        if self.io_policy is not None:
            ans = self.io_policy(port, size, bool(e.write), e.value if e.write else None)
            if ans is False:
                self.inject_fault(13, 0, e.rip)
                return
            if isinstance(ans, int) and not isinstance(ans, bool) and not e.write:
                self.vcpu.complete_io_in(ans & ((1 << (8 * size)) - 1))
                return
        try:
            if e.write:
                self.bus.io_write(port, size, e.value)
            else:
                self.vcpu.complete_io_in(self.bus.io_read(port, size))
        except GuestMemoryError as err:       # a device that did not check a guest address
            self.log_event("port %#x: %s" % (port, err))
            if not e.write:
                self.vcpu.complete_io_in((1 << (8 * size)) - 1)

    def system_port_write(self, port: int, size: int, value: int) -> None:
        if port == 0x80:                                           # POST code: a timestamped marker
            self.post_codes.append((value & 0xFF, time.perf_counter(), self.vcpu.tsc))
        elif port == 0x501:                                        # debug exit
            self.exit_reason = "poweroff"
        elif port == self.pm_port:                                 # ACPI sleep control
            if value & acpi.SLP_EN and (value >> 2) & 7 == acpi.S5_TYPE:
                self.exit_reason = "poweroff"
        elif port == self.pm_port + 2:                             # ACPI reset register
            if value & 0xFF == acpi.RESET_VALUE:
                self.exit_reason = "reboot"
        elif port == self.pm_port + 4 and value & 0x2000:          # PM1 control SLP_EN (QEMU style)
            self.exit_reason = "poweroff"

    def mmio(self, e) -> None:
        a, size = e.address, e.size
        try:
            if e.write:
                self.bus.mmio_write(a, size, e.value)
                self.vcpu.complete_mmio_write()
                return
            v = self.bus.mmio_read(a, size)
        except GuestMemoryError as err:
            self.log_event("MMIO %#x: %s" % (a, err))
            if e.write:
                self.vcpu.complete_mmio_write()
                return
            v = (1 << (8 * size)) - 1
        self.vcpu.complete_mmio_read(v)

    def msr(self, e) -> None:
        v = self.vcpu
        idx = e.msr
        if self.msr_policy is not None and not self.msr_policy(idx, e.value, e.write):
            self.inject_fault(13, 0, e.rip)
            return
        if self.hyp is not None:
            from emu.hypervisor.policy import DENY, Deny, TrapEvent
            ans = self.hyp.policy.decide(TrapEvent(v, e))
            if ans is False or ans == DENY:
                self.inject_fault(13, 0, e.rip)
                return
            if isinstance(ans, Deny):
                self.inject_fault(ans.vector, ans.error_code, e.rip)
                return
            if ans == "ignore" and e.write:
                return
            if isinstance(ans, int) and not isinstance(ans, bool):
                if not e.write:                     # RDMSR reads the policy's value
                    v.rax, v.rdx = ans & 0xFFFFFFFF, (ans >> 32) & 0xFFFFFFFF
                    return
                e = _Changed(e, ans)                # WRMSR writes the policy's value
        if e.write:
            if self.lapic.msr_write(idx, e.value):
                return
            if idx == 0x8B:
                return                    # BIOS_SIGN_ID: a write asks the CPU to refresh it; no microcode here
            if idx in self.platform_msrs and idx != 0x17:
                self.platform_msrs[idx] = e.value
                return
            try:
                v.set_msr(idx, e.value)
            except (ValueError, KeyError):
                self.inject_fault(13, 0, e.rip)
        else:
            val = self.lapic.msr_read(idx)
            if val is None:
                val = self.platform_msrs.get(idx)
            if val is None:
                try:
                    val = v.get_msr(idx)
                except KeyError:
                    self.inject_fault(13, 0, e.rip)
                    return
            v.rax = val & 0xFFFFFFFF
            v.rdx = val >> 32

    def inject_fault(self, vector: int, error, rip: int) -> None:
        """Raise a fault on the instruction at rip (it has not completed)."""
        v = self.vcpu
        v.rip = rip
        if hasattr(v, "inject_exception"):
            v.inject_exception(vector, error if error is not None else -1)
        else:
            self.assist.deliver(vector, error)

    # ---- interrupts ----
    def if_set(self) -> bool:
        return bool(self.vcpu.rflags & 0x200)

    def sync_inflight(self) -> None:
        """The vector handed to the core has been delivered once the core no
        longer holds it pending: it moves to the APIC's ISR then."""
        if self.inflight is not None and self.inflight not in self.vcpu.pending_irqs:
            self.lapic.isr |= 1 << self.inflight
            self.inflight = None

    def inject_pending(self) -> bool:
        """Hand the highest pending APIC interrupt to the vCPU. With the core's
        delivery one vector at a time is in flight (the core takes it when
        RFLAGS.IF and the interrupt shadow allow); otherwise it is delivered
        here when IF=1."""
        if self.core_irq:
            if self.inflight is not None:
                self.sync_inflight()
                if self.inflight is not None:
                    return False
            v = self.lapic.pending()
            if v is None:
                return False
            self.lapic.irr &= ~(1 << v)
            self.inflight = v
            self.vcpu.raise_irq(v)
            return True
        if self.lapic.pending() is None or not self.if_set():
            return False
        self.assist.deliver(self.lapic.accept())
        return True

    def poll_input(self, timeout: float = 0.0) -> None:
        if self.input_fd is None:
            return
        try:
            r, _, _ = select.select([self.input_fd], [], [], timeout)
        except (OSError, ValueError):
            self.input_fd = None
            return
        if r:
            data = os.read(self.input_fd, 4096)
            if not data:
                self.input_fd = None
            else:
                self.uart.feed(data)

    # ---- the run loop ----
    def run(self, max_insns: int | None = None, timeout: float | None = None) -> str:
        """Run until the guest powers off or halts for good (or a limit).
        Returns the reason: "poweroff", "halted", "shutdown" (triple fault),
        "storm" (an exception storm), "limit", "timeout"."""
        v = self.vcpu
        lapic = self.lapic
        t_end = None if timeout is None else time.perf_counter() + timeout
        self._t_end = t_end
        n_io = 0
        try:
            while self.exit_reason is None:
                now = v.tsc
                lapic.poll(now)
                self.inject_pending()
                dl = lapic.next_deadline()
                budget = SLICE
                if dl is not None:
                    budget = max(1, min(SLICE, int((dl - now) / self.cycles_per_insn) + 1))
                if max_insns is not None:
                    left = max_insns - v.icount
                    if left <= 0:
                        self.exit_reason = "limit"
                        break
                    budget = min(budget, left)
                e = v.run(budget)
                r = e.reason
                if self.inflight is not None:
                    self.sync_inflight()              # before an EOI (MMIO or MSR) is processed
                n_io += 1
                if r == EXIT["BUDGET"] or n_io & 0xFF == 0:
                    # now and then: console input and the wall-clock limit
                    if t_end is not None and time.perf_counter() > t_end:
                        self.exit_reason = "timeout"
                    if self.input_fd is not None:
                        self.poll_input()
                    if self.virtio:
                        self.poll_devices()
                if r == EXIT["IO"]:
                    self.io(e)
                    if self._until is not None and self._until():
                        self.exit_reason = "until"
                        break
                elif r == EXIT["MMIO"]:
                    self.mmio(e)
                elif r == EXIT["BUDGET"]:
                    pass
                elif r == EXIT["HLT"]:
                    self.halt()
                elif r == EXIT["MSR"]:
                    self.msr(e)
                elif r == EXIT["EXCEPTION"]:
                    self.exception(e)
                elif r == EXIT["SHUTDOWN"]:
                    self.exit_reason = "shutdown"
                elif r == EXIT["STORM"]:
                    # the guest takes exception after exception and retires nothing
                    # (a handler that faults at once): hardware would spin for ever
                    self.exit_reason = "storm"
                    self.fault_info = "exception storm: vector %d at RIP %#x, no instruction retired" % (
                        getattr(e, "vector", -1), e.rip)
                elif r in (EXIT["CPUID"], EXIT["RDTSC"], EXIT["PRIV"]) and self.hyp is not None \
                        and self.hyp.handle(self.vcpu, e):
                    pass
                elif r == EXIT["HOOK"] and self.hooks is not None:
                    if not self.hooks.dispatch(e):
                        self.exit_reason = "quit"
                elif r == EXIT["STOPPED"] and self.on_stopped is not None and self.on_stopped(v):
                    pass
                elif r == EXIT["CPUID"] or r == EXIT["RDTSC"] or r == EXIT["STOPPED"]:
                    pass
                else:
                    raise VMError("unexpected exit %s at %#x" % (e.name, e.rip))
        except TripleFault as tf:
            self.exit_reason = "shutdown"
            self.fault_info = str(tf)
        finally:
            self.uart.flush()
        return self.exit_reason

    # ---- driving the serial console (tests, scripts) ----
    def console_text(self) -> bytes:
        """Everything the UART has sent so far, including a line not yet ended."""
        return bytes(self.console) + bytes(self.uart.out)

    def run_until(self, pattern: bytes, *, since: int | None = None, timeout: float = 120.0,
                  max_insns: int | None = None) -> bool:
        """Run until the console shows `pattern` after offset `since` (default:
        what it holds now). False if the guest stopped or a limit came first."""
        start = len(self.console) + len(self.uart.out) if since is None else since
        tail = max(0, start - len(pattern))

        def seen():
            c = self.console_text()
            return c.find(pattern, tail) >= 0

        if seen():
            return True
        self._until = seen
        try:
            reason = self.run(max_insns=None if max_insns is None else self.vcpu.icount + max_insns, timeout=timeout)
        finally:
            self._until = None
        if reason == "until":
            self.exit_reason = None
            return True
        return False

    def send(self, text) -> None:
        """Type text on the serial console."""
        self.uart.feed(text.encode() if isinstance(text, str) else bytes(text))

    def command(self, cmd: str, prompt: bytes = b"# ", timeout: float = 120.0) -> str:
        """Type a shell command line and return what it printed before the next prompt."""
        mark = len(self.console_text())
        self.send(cmd + "\n")
        if not self.run_until(prompt, since=mark + len(cmd) + 1, timeout=timeout):
            raise VMError("no prompt after %r (the VM stopped: %s)" % (cmd, self.exit_reason))
        out = _ANSI.sub("", self.console_text()[mark:].decode("utf-8", "replace").replace("\r\n", "\n"))
        if out.startswith(cmd):
            out = out[len(cmd):]
        out = out.lstrip("\n")
        end = out.rfind(prompt.decode())
        return out[:end]

    def halt(self) -> None:
        """HLT at CPL 0: wait for an interrupt. Virtual time jumps to the next
        timer deadline (realtime: the VMM sleeps until then); with console
        input attached, the wait also ends when input arrives."""
        v = self.vcpu
        lapic = self.lapic
        while True:
            if self.inflight is not None:
                self.sync_inflight()
            lapic.poll(v.tsc)
            if not self.if_set():
                # interrupts off: only console input could matter, and it cannot be taken
                self.exit_reason = "halted"
                return
            if lapic.pending() is not None or self.inflight is not None:
                return                    # the run loop hands it over; RIP is after HLT
            dl = lapic.next_deadline()
            fds = self._device_fds()
            if fds and not any(t.dev.active() for t in self.virtio.values()):
                # host sockets open but quiet: look at them without waiting, and let
                # virtual time run on (a boot is not slowed by host sleeps)
                if self._wait_host(0.0, fds):
                    continue
                fds = []
                if dl is None:
                    dl = v.tsc + TSC_HZ // 100       # look again after 10 ms of guest time
            if dl is None and self.input_fd is None and not fds:
                self.exit_reason = "halted"
                return
            if self._t_end is not None and time.perf_counter() > self._t_end:
                self.exit_reason = "timeout"
                return
            self.uart.flush()
            now = v.tsc
            if self.realtime or self.input_fd is not None or fds:
                # a real wait: host time passes, and console input or a device's
                # host socket can end it early
                wait = 1.0 if dl is None else max(0.0, (dl - now) / TSC_HZ)
                if self._t_end is not None:
                    wait = min(wait, max(0.0, self._t_end - time.perf_counter()))
                t0 = time.perf_counter()
                woke = self._wait_host(wait, fds)
                waited = time.perf_counter() - t0
                self.halted_wait += waited
                self.idle_halts += 1
                if dl is not None:
                    # input may end the wait early: time moves on by what passed
                    self.skip_time(min(dl - now, max(1, int(waited * TSC_HZ))) if woke else dl - now)
                else:
                    self.skip_time(int(waited * TSC_HZ))
            else:
                self.skip_time(dl - now)

    def _device_fds(self) -> list:
        fds = []
        for t in self.virtio.values():
            if t.driver_ok():
                fds += t.dev.wait_fds()
        return fds

    def poll_devices(self) -> None:
        """Move what host sockets brought into the guest's queues."""
        for t in self.virtio.values():
            if t.driver_ok():
                try:
                    t.dev.poll()
                except GuestMemoryError as err:
                    self.log_event("%s: %s" % (t.name, err))

    def _wait_host(self, timeout: float, fds) -> bool:
        """Wait up to timeout seconds for console input or a device socket;
        True when something arrived (and was taken in)."""
        rl = list(fds)
        if self.input_fd is not None:
            rl.append(self.input_fd)
        if not rl:
            time.sleep(timeout)
            return False
        try:
            r, _, _ = select.select(rl, [], [], timeout)
        except (OSError, ValueError):
            return False
        if not r:
            return False
        if self.input_fd is not None and self.input_fd in r:
            self.poll_input()
        self.poll_devices()
        return bool(self.uart.rx) or self.lapic.pending() is not None or any(x is not self.input_fd for x in r)

    def exception(self, e) -> None:
        v = self.vcpu
        vec = e.vector
        if self.core_irq and not e.software:
            raise VMError("unexpected exception exit #%d at %#x" % (vec, e.rip))
        if e.software:
            # INT n: the pushed RIP is the next instruction (the exit left RIP there)
            self.assist.deliver(vec, None, soft=True, return_rip=v.rip)
            return
        if vec == 6 and self.assist.emulate():
            return
        if vec == 3 or vec == 1:
            self.assist.deliver(vec, None, return_rip=v.rip)
            return
        err = e.error_code if e.has_error_code or vec in ERROR_CODE_VECTORS else None
        if vec in ERROR_CODE_VECTORS and err is None:
            err = 0
        self.assist.deliver(vec, err)

    def close(self) -> None:
        for t in self.virtio.values():
            t.dev.close()
