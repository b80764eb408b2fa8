"""The microVM monitor: one vCPU, guest RAM, the platform devices, and the
run loop (`while True: exit = vcpu.run(budget); handle(exit)`).

Virtual time: the vCPU's TSC advances with instructions retired
(`cycles_per_insn`, default 1); the APIC timer is driven by it. A guest that
halts with interrupts enabled and nothing pending jumps forward to the next
timer deadline (or, with realtime=True, the VMM sleeps until then) — it never
spins."""
from __future__ import annotations

import os
import select
import sys
import time

from emu import _core
from emu.cpuid import baseline_table
from emu.vcpu import Vcpu
from emu.vm import boot
from emu.vm.assist import Assist, TripleFault, ERROR_CODE_VECTORS
from emu.vm.devices import (IOAPIC_BASE, IOAPIC_SIZE, LAPIC_BASE, LAPIC_SIZE, UART_BASE, UART_IRQ,
                            IoApic, LocalApic, PhysMem, Uart16550, VirtioBlk)

from emu.vm.accel import ACCEL_BASE, ACCEL_IRQ, ACCEL_SIZE, AccelDevice, AccelHost

import numpy as np

VIRTIO_BASE = 0xD0000000
VIRTIO_SIZE = 0x1000
VIRTIO_IRQ = 5
TSC_HZ = 1_000_000_000            # the frequency the guest is told (CPUID 0x15/0x16)
SLICE = 2_000_000                 # instructions per run() when no timer is due sooner

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


# a device model's registers: its plain-data attributes, not its wiring
_WIRING = {"sink", "irq_line", "clock", "eoi_listeners", "lapic", "mem", "fd", "v", "path", "readonly", "size"}


def _registers(dev) -> dict:
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

    def __init__(self, kernel, mem="128M", disk=None, cmdline="console=ttyS0", *,
                 output=None, input_fd=None, realtime=False, cycles_per_insn=1.0,
                 msr_policy=None, disk_readonly=False, core_delivery=None, policy=None, io_policy=None,
                 accel=False, accel_shares=1):
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
        # platform MSRs the VMM answers: IA32_MISC_ENABLE (fast strings, no BTS/PEBS,
        # as a kernel expects to find it)
        self.platform_msrs = {0x1A0: 0x1 | (1 << 11) | (1 << 12)}
        self.assist = Assist(self.vcpu, self.mem)
        self.inflight = None              # vector handed to the core, not yet taken

        self.lapic = LocalApic(self.tsc)
        self.ioapic = IoApic(self.lapic)
        self.uart = Uart16550(self._console_out, lambda lvl: self.ioapic.set_irq(UART_IRQ, lvl))
        self.input_fd = input_fd
        self.blk = None
        if disk is not None:
            self.blk = VirtioBlk(disk, self.mem, lambda lvl: self.ioapic.set_irq(VIRTIO_IRQ, lvl),
                                 readonly=disk_readonly)
            cmdline = "%s virtio_mmio.device=4K@%#x:%d" % (cmdline, VIRTIO_BASE, VIRTIO_IRQ)
        # the compute accelerator (emu/vm/accel.py): accel=True gives this VM
        # its own; an AccelHost shares one among several VMs
        self.accel = None
        self.accel_shares = accel_shares
        if accel:
            self._attach_accel(accel)
            cmdline = "%s emu_accel=4K@%#x:%d" % (cmdline, ACCEL_BASE, ACCEL_IRQ)
        self.cmdline = cmdline
        self.entry = None
        if kernel is not None:
            if isinstance(kernel, (bytes, bytearray)):
                image = bytes(kernel)
            else:
                with open(kernel, "rb") as f:
                    image = f.read()
            self.entry = boot.setup_boot(self, image, cmdline)
        self.exit_reason = None
        self.post_codes = []              # (code, host time, guest TSC) of port 0x80 writes
        self.halted_wait = 0.0

    def _attach_accel(self, accel=True) -> None:
        host = accel if isinstance(accel, AccelHost) else None
        self.accel = AccelDevice(self.mem, lambda lvl: self.ioapic.set_irq(ACCEL_IRQ, lvl), host=host,
                                 shares=self.accel_shares, name="vm%x" % id(self))

    # ---- state (for emu/services/vmstate.py: snapshots, migration) ----
    def _devices(self) -> dict:
        d = {"uart": self.uart, "lapic": self.lapic, "ioapic": self.ioapic, "assist": self.assist}
        if self.blk is not None:
            d["blk"] = self.blk
        if self.accel is not None:
            d["accel"] = self.accel
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

    # ---- platform ----
    def _cpuid(self):
        t = [e for e in baseline_table() if e[0] not in (0x15, 0x16, 1)]
        base = {e[0]: e for e in baseline_table()}
        if 1 in base:
            leaf, sub, a, b, c, d = base[1]
            c |= (1 << 24) | (1 << 21)     # TSC-deadline, x2APIC
            d |= (1 << 9) | (1 << 4)       # APIC, TSC
            t.append((1, sub, a, b & 0x00FFFFFF, c, d))
        t.append((0x15, None, 1, 1, TSC_HZ, 0))
        t.append((0x16, None, TSC_HZ // 1_000_000, TSC_HZ // 1_000_000, 100, 0))
        return t

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
        if UART_BASE <= port < UART_BASE + 8:
            if e.write:
                self.uart.io_write(port - UART_BASE, e.value)
            else:
                self.vcpu.complete_io_in(self.uart.io_read(port - UART_BASE))
            return
        if e.write:
            if port == 0x80:                                           # POST code: a timestamped marker
                self.post_codes.append((e.value & 0xFF, time.perf_counter(), self.vcpu.tsc))
                return
            if port == 0x604 and e.value & 0x2000 or port == 0x501:      # poweroff / debug exit
                self.exit_reason = "poweroff"
            return
        self.vcpu.complete_io_in((1 << (8 * size)) - 1)                  # nothing there: all ones

    def mmio(self, e) -> None:
        a, size = e.address, e.size
        if LAPIC_BASE <= a < LAPIC_BASE + LAPIC_SIZE:
            dev, off = "lapic", a - LAPIC_BASE
        elif IOAPIC_BASE <= a < IOAPIC_BASE + IOAPIC_SIZE:
            dev, off = "ioapic", a - IOAPIC_BASE
        elif self.blk is not None and VIRTIO_BASE <= a < VIRTIO_BASE + VIRTIO_SIZE:
            dev, off = "blk", a - VIRTIO_BASE
        elif self.accel is not None and ACCEL_BASE <= a < ACCEL_BASE + ACCEL_SIZE:
            dev, off = "accel", a - ACCEL_BASE
        else:
            dev, off = None, 0
        if e.write:
            if dev == "lapic":
                self.lapic.write(off & ~0xF, e.value)
            elif dev == "ioapic":
                self.ioapic.write(off & ~0xF, e.value)
            elif dev == "blk":
                self.blk.write(off, size, e.value)
            elif dev == "accel":
                self.accel.write(off, size, e.value)
            self.vcpu.complete_mmio_write()
        else:
            if dev == "lapic":
                v = self.lapic.read(off & ~0xF)
            elif dev == "ioapic":
                v = self.ioapic.read(off & ~0xF)
            elif dev == "blk":
                v = self.blk.read(off, size)
            elif dev == "accel":
                v = self.accel.read(off, size)
            else:
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
            if idx in self.platform_msrs:
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
                if r == EXIT["IO"]:
                    self.io(e)
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
            if dl is None and self.input_fd is None:
                self.exit_reason = "halted"
                return
            self.uart.flush()
            now = v.tsc
            if self.realtime or self.input_fd is not None:
                wait = 1.0 if dl is None else max(0.0, (dl - now) / TSC_HZ)
                t0 = time.perf_counter()
                if self.input_fd is not None:
                    self.poll_input(wait)
                else:
                    time.sleep(wait)
                waited = time.perf_counter() - t0
                self.halted_wait += waited
                if dl is not None:
                    # input may end the wait early: time moves on by what passed
                    self.skip_time(min(dl - now, max(1, int(waited * TSC_HZ))) if self.uart.rx else dl - now)
                else:
                    self.skip_time(int(waited * TSC_HZ))
            else:
                self.skip_time(dl - now)

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
        if self.blk is not None:
            self.blk.close()
