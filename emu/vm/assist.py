"""Event delivery done by the VMM for a core that exits on every exception:
IDT delivery of exceptions and interrupts in 64-bit mode (SDM Vol. 3A 6.14),
and the few system instructions such a core lacks (IRETQ, SYSRETQ, LTR),
emulated when they raise #UD at CPL 0.

A core with in-guest delivery (Vcpu.raise_irq) does all of this itself; the
VMM then uses this module only to inject a fault it decides on (a denied MSR
write) if the core has no injection call."""
from __future__ import annotations

import struct

F_IF, F_TF, F_NT, F_RF, F_VM, F_AC = 0x200, 0x100, 0x4000, 0x10000, 0x20000, 0x40000
EXC_DF, EXC_TS, EXC_NP, EXC_SS, EXC_GP, EXC_PF, EXC_UD = 8, 10, 11, 12, 13, 14, 6
ERROR_CODE_VECTORS = {8, 10, 11, 12, 13, 14, 17, 21, 29, 30}
SEG_ES, SEG_CS, SEG_SS, SEG_DS = 0, 1, 2, 3


class TripleFault(Exception):
    pass


class DeliveryFault(Exception):
    def __init__(self, vector, error=0):
        super().__init__(vector, error)
        self.vector, self.error = vector, error


class Assist:
    def __init__(self, vcpu, mem):
        self.v = vcpu
        self.mem = mem
        self.tr = 0                         # task register selector (LTR)
        self.n_delivered = 0

    # -- supervisor-mode linear -> physical (no permission checks beyond present) --
    def walk(self, va: int) -> int:
        m = self.mem
        t = self.v.cr3 & 0x000FFFFFFFFFF000
        for level, shift in ((4, 39), (3, 30), (2, 21), (1, 12)):
            e = m.u64(t + 8 * ((va >> shift) & 0x1FF))
            if not e & 1:
                raise DeliveryFault(EXC_PF)
            if level in (3, 2) and e & 0x80:
                base = e & 0x000FFFFFFFFFF000 & ~((1 << shift) - 1)
                return base | (va & ((1 << shift) - 1))
            t = e & 0x000FFFFFFFFFF000
        return t | (va & 0xFFF)

    def read(self, va: int, n: int) -> bytes:
        out = b""
        while n:
            k = min(n, 4096 - (va & 0xFFF))
            out += self.mem.read(self.walk(va), k)
            va += k
            n -= k
        return out

    def write(self, va: int, data: bytes) -> None:
        while data:
            k = min(len(data), 4096 - (va & 0xFFF))
            self.mem.write(self.walk(va), data[:k])
            va += k
            data = data[k:]

    def u64(self, va: int) -> int:
        return struct.unpack("<Q", self.read(va, 8))[0]

    # -- descriptors --
    def tss_base(self) -> int:
        if hasattr(self.v, "tr") and self.v.tr[0]:
            return self.v.tr[1]               # the core's LTR loaded it
        base, limit = self.v.gdtr
        sel = self.tr & ~7
        if sel == 0 or sel + 15 > limit:
            raise DeliveryFault(EXC_TS, self.tr & ~3)
        lo, hi = struct.unpack("<QQ", self.read(base + sel, 16))
        return ((lo >> 16) & 0xFFFFFF) | (((lo >> 56) & 0xFF) << 24) | ((hi & 0xFFFFFFFF) << 32)

    def code_dpl(self, sel: int) -> int:
        base, limit = self.v.gdtr
        if sel & ~3 == 0 or (sel & ~7) + 7 > limit:
            raise DeliveryFault(EXC_GP, sel & ~3)
        d = struct.unpack("<Q", self.read(base + (sel & ~7), 8))[0]
        if not (d >> 47) & 1:
            raise DeliveryFault(EXC_NP, sel & ~3)
        return (d >> 45) & 3

    # -- delivery --
    def deliver(self, vector: int, error=None, soft: bool = False, return_rip=None) -> None:
        """Deliver vector through the IDT (a fault, an interrupt, or INT n when
        soft). return_rip: the RIP pushed (default: the current RIP)."""
        try:
            self._deliver(vector, error, soft, return_rip)
        except DeliveryFault as f:
            if vector == EXC_DF:
                raise TripleFault("fault while delivering #DF")
            if vector in (10, 11, 12, 13) or vector == EXC_PF and f.vector == EXC_PF:
                self.deliver(EXC_DF, 0)
            else:
                self.deliver(f.vector, f.error)

    def _deliver(self, vector, error, soft, return_rip):
        v = self.v
        base, limit = v.idtr
        if vector * 16 + 15 > limit:
            raise DeliveryFault(EXC_GP, vector * 8 + 2)
        lo, hi = struct.unpack("<QQ", self.read(base + vector * 16, 16))
        gtype = (lo >> 40) & 0xF
        dpl = (lo >> 45) & 3
        present = (lo >> 47) & 1
        if gtype not in (0xE, 0xF):
            raise DeliveryFault(EXC_GP, vector * 8 + 2)
        cpl = v.cpl
        if soft and dpl < cpl:
            raise DeliveryFault(EXC_GP, vector * 8 + 2)
        if not present:
            raise DeliveryFault(EXC_NP, vector * 8 + 2)
        sel = (lo >> 16) & 0xFFFF
        target = (lo & 0xFFFF) | (((lo >> 48) & 0xFFFF) << 16) | ((hi & 0xFFFFFFFF) << 32)
        ist = (lo >> 32) & 7
        new_cpl = self.code_dpl(sel)
        if new_cpl > cpl:
            raise DeliveryFault(EXC_GP, sel & ~3)
        old_rsp, old_ss, old_cs = v.rsp, v.get_seg_sel(SEG_SS), v.get_seg_sel(SEG_CS)
        rflags = v.rflags
        if ist:
            rsp = self.u64(self.tss_base() + 0x24 + 8 * (ist - 1))
        elif new_cpl < cpl:
            rsp = self.u64(self.tss_base() + 4 + 8 * new_cpl)
        else:
            rsp = old_rsp
        rsp &= ~0xF
        rip = v.rip if return_rip is None else return_rip
        frame = [old_ss, old_rsp, rflags, old_cs, rip]
        if error is not None:
            frame.append(error & 0xFFFFFFFF)
        data = struct.pack("<%dQ" % len(frame), *reversed(frame))
        rsp -= len(data)
        self.write(rsp, data)
        if new_cpl != cpl:
            v.set_seg_sel(SEG_SS, new_cpl)            # null selector, RPL = new CPL
            v.cpl = new_cpl
        v.set_seg_sel(SEG_CS, (sel & ~3) | new_cpl)
        v.rsp = rsp
        nf = rflags & ~(F_TF | F_NT | F_RF | F_VM)
        if gtype == 0xE:
            nf &= ~F_IF
        v.rflags = nf
        v.rip = target
        self.n_delivered += 1

    # -- #UD at CPL 0: instructions this core does not have --
    def emulate(self) -> bool:
        """Emulate the instruction at RIP if it is IRETQ, SYSRETQ or LTR r16.
        True when it did."""
        v = self.v
        if v.cpl != 0:
            return False
        try:
            b = self.read(v.rip, 3)
        except DeliveryFault:
            return False
        if b[:2] == b"\x48\xcf":
            return self._iretq()
        if b == b"\x48\x0f\x07":
            star = v.get_msr(0xC0000081)
            base = (star >> 48) & 0xFFFF
            v.rip = v.rcx
            v.rflags = (v.r11 & 0x3C7FD7) | 2
            v.set_seg_sel(SEG_CS, (base + 16) | 3)
            v.set_seg_sel(SEG_SS, (base + 8) | 3)
            v.cpl = 3
            return True
        if b[:2] == b"\x0f\x00" and (b[2] >> 3) & 7 == 3 and b[2] >> 6 == 3:
            self.tr = v.get_gpr(b[2] & 7) & 0xFFFF
            v.rip += 3
            return True
        return False

    def _iretq(self) -> bool:
        v = self.v
        rip, cs, rflags, rsp, ss = struct.unpack("<5Q", self.read(v.rsp, 40))
        new_cpl = cs & 3
        if new_cpl < v.cpl:
            return False
        v.rip = rip
        v.set_seg_sel(SEG_CS, cs & 0xFFFF)
        v.set_seg_sel(SEG_SS, ss & 0xFFFF)
        v.rsp = rsp
        v.rflags = (rflags & 0x3F7FD7) | 2
        if new_cpl != v.cpl:
            v.cpl = new_cpl
        return True
