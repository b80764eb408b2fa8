"""microVM fleets (emu/cluster/fleet.py) on a LocalCluster of 2 worker
processes: a VM placed on one worker live-migrates to the other while it
prints, and its console output is identical to an unmigrated run's, as are
the instructions it retires."""
import os

import pytest

pytest.importorskip("distributed", reason="emu.cluster needs Dask distributed (pip install 'emu[cluster]')")

from emu.cluster.fleet import Fleet  # noqa: E402
from emu.vm import VM  # noqa: E402
from test_boot import KERNEL, make_disk  # noqa: E402

MEM = "64M"
STOP_AT = 3_000_000        # instructions: mid-way through the guest's output


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("fleet") / "disk.img")
    make_disk(d)
    return d


def test_vm_live_migrates_between_workers(dask_cluster, disk, tier):
    out = []
    ref = VM(KERNEL, mem=MEM, disk=disk, output=out.append)
    reason0 = ref.run(timeout=60)
    ref.close()
    ref_out, ref_icount = b"".join(out), ref.vcpu.icount

    fleet = Fleet(dask_cluster)
    a, b = fleet.workers()
    assert fleet.place("vm1", KERNEL, worker=a, mem=MEM, disk=disk, tier=tier) == a
    assert fleet.run("vm1", max_insns=STOP_AT) == "limit"
    head = fleet.console("vm1")
    assert 0 < len(head) < len(ref_out)
    # the source runs on between copy rounds (it prints meanwhile), then stops
    figures = fleet.migrate("vm1", b, slice_insns=200_000, stop_pages=8)
    assert fleet.where("vm1") == b
    assert len(figures["rounds"]) >= 2 and fleet.icount("vm1") > STOP_AT
    assert fleet.run("vm1", timeout=60) == reason0
    assert fleet.console("vm1") == ref_out and fleet.icount("vm1") == ref_icount
    fleet.stop("vm1")


def test_placement_spreads_vms(dask_cluster, disk, tier):
    fleet = Fleet(dask_cluster)
    placed = [fleet.place("vm%d" % i, KERNEL, mem=MEM, disk=disk, tier=tier) for i in range(2)]
    assert sorted(placed) == fleet.workers()
    with pytest.raises(ValueError):
        fleet.place("vm0", KERNEL, mem=MEM)
    with pytest.raises(ValueError):
        fleet.migrate("vm0", fleet.where("vm0"))
    for i in range(2):
        fleet.stop("vm%d" % i)
