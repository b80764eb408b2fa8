"""Branch prediction in the run loop (emu/core/predict.pxi, core/run.pxi):
the return-address stack and the per-site successor caches are hints,
checked against where each branch really goes. A return address overwritten
on the stack, a return block invalidated by self-modifying code, and an
indirect jump cycling through more targets than a site caches must all go
exactly where the instructions say."""
import struct

import emu

CODE = 0x400000
STACK = 0x7FF000


class Asm:
    """Just enough of an assembler: byte strings, labels, rel32/abs fixups."""

    def __init__(self, base):
        self.base, self.buf, self.labels, self.fix = base, bytearray(), {}, []

    def label(self, name):
        self.labels[name] = self.base + len(self.buf)

    def emit(self, b):
        self.buf += b

    def rel32(self, op, name):           # op bytes then a rel32 to `name`
        self.buf += op
        self.fix.append(("rel", len(self.buf), name))
        self.buf += b"\0\0\0\0"

    def abs32(self, op, name, tail=b""):
        self.buf += op
        self.fix.append(("abs32", len(self.buf), name))
        self.buf += b"\0\0\0\0" + tail

    def abs64(self, op, name):
        self.buf += op
        self.fix.append(("abs64", len(self.buf), name))
        self.buf += b"\0" * 8

    def code(self):
        for kind, at, name in self.fix:
            t = self.labels[name]
            if kind == "rel":
                self.buf[at:at + 4] = struct.pack("<i", t - (self.base + at + 4))
            elif kind == "abs32":
                self.buf[at:at + 4] = struct.pack("<I", t)
            else:
                self.buf[at:at + 8] = struct.pack("<Q", t)
        return bytes(self.buf)


def run(code):
    m = emu.Machine(ram_size=16 << 20, cpl=0)
    m.map(CODE, 0x2000)
    m.map(STACK, 0x1000)
    m.write(CODE, code)
    m.vcpu.rip = CODE
    m.vcpu.rsp = STACK + 0x1000
    ex = m.vcpu.run(1_000_000)
    assert ex.name == "HLT"
    return m


def test_overwritten_return_address_and_invalidated_return_block():
    a = Asm(CODE)
    a.emit(b"\x31\xdb")                          # xor ebx, ebx
    a.emit(b"\xb9" + struct.pack("<I", 40))      # mov ecx, 40
    a.label("loop")
    a.rel32(b"\xe8", "f")                        # call f
    a.label("after")
    a.emit(b"\x48\x83\xc3\x01")                  # add rbx, 1   (its imm8 is patched to 2 at ecx == 3)
    a.label("back")
    a.emit(b"\xff\xc9")                          # dec ecx
    a.rel32(b"\x0f\x85", "loop")                 # jnz loop
    a.emit(b"\xf4")                              # hlt
    a.label("f")
    a.emit(b"\x83\xf9\x03")                      # cmp ecx, 3
    a.rel32(b"\x0f\x85", "f1")                   # jne f1
    a.abs32(b"\xc6\x04\x25", "after_imm", b"\x02")   # mov byte [after+3], 2: the return block changes
    a.label("f1")
    a.emit(b"\x83\xf9\x07")                      # cmp ecx, 7
    a.rel32(b"\x0f\x85", "f2")                   # jne f2
    a.abs64(b"\x48\xb8", "alt")                  # mov rax, alt
    a.emit(b"\x48\x89\x04\x24")                  # mov [rsp], rax: return elsewhere
    a.label("f2")
    a.emit(b"\x48\x83\xc3\x64")                  # add rbx, 100
    a.emit(b"\xc3")                              # ret
    a.label("alt")
    a.emit(b"\x48\x81\xc3" + struct.pack("<I", 10000))   # add rbx, 10000
    a.rel32(b"\xe9", "back")                     # jmp back
    a.labels["after_imm"] = a.labels["after"] + 3
    m = run(a.code())
    # 40 calls of f (+100 each); the one at ecx == 7 returns to alt (+10000)
    # instead of after; after adds 1, or 2 once patched (ecx = 3, 2, 1)
    assert m.vcpu.rbx == 40 * 100 + 10000 + 36 * 1 + 3 * 2
    assert m.vcpu.rcx == 0
    c = m.vcpu.counters
    assert c["invalidations"] >= 1
    if not c["jit"].get("instructions_native"):
        # the interpreter's predictor (compiled code links blocks its own way)
        assert c["ras_hits"] >= 30               # the returns were predicted...
        assert c["ras_misses"] == 1              # ...but the one that went elsewhere


def test_deep_return_skips_frames():
    """A RET that returns two frames up (as longjmp-like code does) leaves the
    stack of predictions out of step: every later return is still right."""
    a = Asm(CODE)
    a.emit(b"\x31\xdb")                          # xor ebx, ebx
    a.emit(b"\xb9" + struct.pack("<I", 30))      # mov ecx, 30
    a.label("loop")
    a.rel32(b"\xe8", "outer")                    # call outer
    a.emit(b"\x48\x83\xc3\x01")                  # add rbx, 1
    a.emit(b"\xff\xc9")                          # dec ecx
    a.rel32(b"\x0f\x85", "loop")                 # jnz loop
    a.emit(b"\xf4")                              # hlt
    a.label("outer")
    a.rel32(b"\xe8", "inner")                    # call inner
    a.emit(b"\x48\x83\xc3\x0a")                  # add rbx, 10 (skipped when inner unwinds)
    a.emit(b"\xc3")                              # ret
    a.label("inner")
    a.emit(b"\xf6\xc1\x01")                      # test cl, 1
    a.rel32(b"\x0f\x84", "normal")               # jz normal
    a.emit(b"\x48\x83\xc4\x08")                  # add rsp, 8: drop outer's return address
    a.label("normal")
    a.emit(b"\x48\x83\xc3\x64")                  # add rbx, 100
    a.emit(b"\xc3")                              # ret (to outer, or straight to the loop)
    m = run(a.code())
    assert m.vcpu.rbx == 30 * (100 + 1) + 15 * 10
    assert m.vcpu.rsp == STACK + 0x1000


def test_indirect_jump_through_more_targets_than_a_site_caches():
    a = Asm(CODE)
    a.emit(b"\x31\xdb\x31\xd2")                  # xor ebx, ebx; xor edx, edx
    a.emit(b"\xb9" + struct.pack("<I", 50))      # mov ecx, 50
    a.label("top")
    a.emit(b"\x89\xd0\x83\xe0\x03")              # mov eax, edx; and eax, 3
    a.abs32(b"\xff\x24\xc5", "table")            # jmp [table + rax*8]
    for k, inc in enumerate((1, 10, 100, 1000)):
        a.label("t%d" % k)
        a.emit(b"\x48\x81\xc3" + struct.pack("<I", inc))
        a.rel32(b"\xe9", "next")
    a.label("next")
    a.emit(b"\xff\xc2\xff\xc9")                  # inc edx; dec ecx
    a.rel32(b"\x0f\x85", "top")                  # jnz top
    a.emit(b"\xf4")
    a.emit(b"\0" * ((-len(a.buf)) % 8))
    a.label("table")
    for k in range(4):
        a.abs64(b"", "t%d" % k)
    m = run(a.code())
    # 50 jumps cycling through four targets: 13 + 13 + 12 + 12 of them
    assert m.vcpu.rbx == 13 * 1 + 13 * 10 + 12 * 100 + 12 * 1000
