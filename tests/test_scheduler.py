"""The proportional-share scheduler (emu/services/scheduler.py): VMs get
instructions in proportion to their shares, a late joiner gets its share
from when it joins, and scheduling never changes what a guest computes."""
import pytest

from emu.services.scheduler import Scheduler, VmTask
from emu.vm import VM
from test_boot import KERNEL

MEM = "64M"


def vm_task(name):
    out = []
    vm = VM(KERNEL, mem=MEM, output=out.append)
    t = VmTask(vm, name)
    t.out = out
    return t


def test_shares_are_proportional():
    s = Scheduler(quantum=20_000)
    for name, shares in (("a", 1), ("b", 2), ("c", 4)):
        s.add(vm_task(name), shares)
    st = s.run(total=2_800_000)
    got = {k: v["retired"] for k, v in st.items()}
    assert sum(got.values()) == 2_800_000 and not any(v["finished"] for v in st.values())
    for name, shares in (("a", 1), ("b", 2), ("c", 4)):
        assert abs(got[name] - 400_000 * shares) <= 20_000, got


def test_late_joiner_gets_its_share_from_then_on():
    s = Scheduler(quantum=10_000)
    a = s.add(vm_task("a"), 1)
    s.run(total=1_000_000)
    s.add(vm_task("b"), 1)
    st = s.run(total=1_000_000)
    assert abs(st["b"]["retired"] - 500_000) <= 10_000
    assert abs(st["a"]["retired"] - 1_500_000) <= 10_000
    assert a.vm.vcpu.icount == st["a"]["retired"]


@pytest.mark.parametrize("workers", [1, 2])
def test_scheduling_does_not_change_the_guests(workers):
    solo = vm_task("solo")
    assert solo.vm.run(timeout=60) == "halted"
    tasks = [vm_task(n) for n in ("x", "y", "z")]
    s = Scheduler(quantum=37_000, workers=workers)
    for t, shares in zip(tasks, (1, 3, 5)):
        s.add(t, shares)
    st = s.run(timeout=120)
    for t in tasks:
        assert st[t.name]["finished"] and t.reason == "halted"
        assert b"".join(t.out) == b"".join(solo.out) and t.vm.vcpu.icount == solo.vm.vcpu.icount


def test_bad_arguments():
    with pytest.raises(ValueError):
        Scheduler(quantum=0)
    with pytest.raises(ValueError):
        Scheduler().add(object(), 0)
    with pytest.raises(ValueError):
        Scheduler(charge="money")
