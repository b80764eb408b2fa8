"""Superblocks (core/blocks.pxi translate): a block runs on past a forward
conditional branch, which becomes a side exit. Every tier must stop after
exactly the budget inside them, leave through a taken side exit with the
interpreter's state, and give block hooks the basic blocks they expect once
one is set (the superblocks translated before are dropped)."""
import emu

CODE = 0x400000
PROGRAM = bytes.fromhex(
    "4883c001"          # 00 loop: add rax, 1
    "a801"              # 04       test al, 1
    "7403"              # 06       jz skip        (forward: a side exit)
    "4801c3"            # 08       add rbx, rax
    "4883f864"          # 0b skip: cmp rax, 100
    "7302"              # 0f       jae done       (forward: a side exit)
    "ebed"              # 11       jmp loop
    "f4"                # 13 done: hlt
)
LOOP, FALL, SKIP, BACK, DONE = CODE, CODE + 0x08, CODE + 0x0B, CODE + 0x11, CODE + 0x13
TOTAL = 100 * 6 + 50 + 1 - 1        # 100 rounds of 6 (7 when odd), the last without its JMP, HLT


def machine(tier=None):
    m = emu.Machine(ram_size=8 << 20, cpl=0, jit_threshold=0, **({"tier": tier} if tier else {}))
    m.map(CODE, 0x1000)
    m.write(CODE, PROGRAM)
    m.vcpu.rip = CODE
    return m


def state(m):
    v = m.vcpu
    return (v.rip, v.icount, v.rax, v.rbx, v.rflags & 0x8D5)


def test_the_loop_runs_to_its_end():
    m = machine()
    assert m.vcpu.run(10_000).name == "HLT"
    assert (m.vcpu.rax, m.vcpu.rbx, m.vcpu.icount) == (100, sum(range(1, 100, 2)), TOTAL)


def test_every_budget_stops_where_the_interpreter_does():
    # a fresh machine per budget: the stops fall before, at and after each side exit
    for budget in list(range(1, 40)) + [97, 150, 333, TOTAL - 1]:
        ref = machine("interp")
        ref.vcpu.run(budget)
        m = machine()
        m.vcpu.run(budget)
        assert state(m) == state(ref), budget


def test_budget_slices_add_up_to_one_run():
    one = machine()
    one.vcpu.run(10_000)
    for k in (1, 2, 3, 5, 7):
        m = machine()
        while m.vcpu.run(k).name == "BUDGET":
            pass
        assert state(m) == state(one), k


def test_block_hooks_see_basic_blocks_after_superblocks_ran():
    m = machine()
    v = m.vcpu
    assert v.run(10_000).name == "HLT"        # superblocks translated (and compiled under jit)
    v.rip, v.rax, v.rbx = CODE, 0, 0
    v.set_block_hook(True)
    starts = []
    while True:
        ex = v.run(10_000)
        if ex.name != "HOOK":
            break
        starts.append(ex.address)
    assert ex.name == "HLT"
    # the not-taken JZ's fall-through and the JMP after the not-taken JAE start blocks of their own
    counts = {a: starts.count(a) for a in (LOOP, FALL, SKIP, BACK, DONE)}
    assert counts == {LOOP: 100, FALL: 50, SKIP: 50, BACK: 99, DONE: 1}
    assert len(starts) == sum(counts.values())
