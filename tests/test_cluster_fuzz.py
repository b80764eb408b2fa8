"""emu fuzz --workers (emu/cluster/fuzz.py) on a LocalCluster of 2 worker
processes: the campaign finds the planted bugs of guests/fuzz/planted.S,
de-duplicates their crashes by RIP and call stack, merges coverage as the
union of the workers' maps (and of its queue entries' maps, replayed here in
one process), and writes AFL's on-disk layout."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("distributed", reason="emu.cluster needs Dask distributed (pip install 'emu[cluster]')")

from emu.cluster import fuzz  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLANTED = os.path.join(ROOT, "guests", "fuzz", "planted.bin")
# planted.S: _start calls check (return address base+9); check calls divide
# (return base+0x25) or boom (return base+0x43); div ecx is at base+0x68,
# boom's mov byte [rax] at base+0x53
BASE = 0x400000
SEED = int(os.environ.get("EMU_FUZZ_SEED", "0"))     # rounds of fixed length: a reproducible campaign


def test_distributed_campaign_finds_the_planted_bugs(dask_cluster, tmp_path, tier):
    with open(PLANTED, "rb") as f:
        target = fuzz.flat_target(f.read(), tier=tier)
    camp = fuzz.run(target, [("seed", b"AAAA")], cluster=dask_cluster, out=str(tmp_path), seconds=60,
                    round_execs=1500, seed=SEED, stop_on_crashes=2)
    print("execs %d in %.1f s, %d rounds" % (camp.execs, camp.seconds, camp.rounds))
    # both bugs, each once however many inputs hit it, told apart by RIP and stack
    found = {(vec, rip, stack) for vec, rip, stack in camp.crashes}
    assert found == {(0, BASE + 0x68, (BASE + 0x25, BASE + 0x9)),           # #DE in divide, via check
                     (14, BASE + 0x53, (BASE + 0x43, BASE + 0x9))}          # #PF in boom, via check
    for c in camp.crashes.values():
        data = c["input"]
        assert data[:2] == b"DV" if c["vector"] == 0 else data[:3] == b"EM!"
    # each worker built its machine from the shipped snapshot once, for all rounds
    assert camp.rounds >= 2
    tid = target["id"]
    built = dask_cluster.client.run(lambda: __import__("emu.cluster.fuzz", fromlist=["BUILT"]).BUILT.get(tid, 0))
    assert sorted(built.values()) == [1, 1]
    # the merged map is the union (OR) of the workers' maps ...
    union = np.zeros(fuzz.MAP_SIZE, dtype=np.uint8)
    assert len(camp.worker_maps) == 2
    for m in camp.worker_maps:
        union |= np.frombuffer(m, dtype=np.uint8)
    assert np.array_equal(union, camp.seen)
    # ... and of the queue entries' own maps, replayed in this process
    r = fuzz.Runner(target)
    replay = np.zeros(fuzz.MAP_SIZE, dtype=np.uint8)
    for q in camp.queue:
        kind, ex, idx, bits = r.run(q["input"])
        assert kind == "ok"
        replay[idx] |= bits
    assert np.array_equal(replay, camp.seen) and camp.edges() > 5
    # AFL's layout: queue/, crashes/, fuzz_bitmap (virgin bits), fuzzer_stats
    out = tmp_path / "default"
    queue = sorted(os.listdir(out / "queue"))
    assert queue[0] == "id:000000,orig:seed" and len(queue) == len(camp.queue)
    assert all(n.startswith("id:%06d," % i) for i, n in enumerate(queue))
    crashes = sorted(n for n in os.listdir(out / "crashes") if n.startswith("id:"))
    assert len(crashes) == 2 and {n.split(",")[1] for n in crashes} == {"sig:08", "sig:11"}
    assert (out / "fuzz_bitmap").read_bytes() == (~camp.seen).tobytes()
    stats = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in
                                                (out / "fuzzer_stats").read_text().splitlines())}
    assert int(stats["execs_done"]) == camp.execs and int(stats["saved_crashes"]) == 2


def test_cli_fuzz_bad_input(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    for args in ([str(empty), "-o", str(tmp_path / "o")],
                 [PLANTED, "-o", str(tmp_path / "o"), "--cluster", "tcp://127.0.0.1:1"]):
        r = subprocess.run([sys.executable, "-m", "emu", "fuzz"] + args, capture_output=True, text=True,
                           timeout=60, env=env)
        # one error line (after argparse's usage lines, for a bad option value)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 2 and "Traceback" not in r.stderr and last.startswith("emu"), r.stderr


def test_cli_fuzz_in_one_process_finds_a_bug(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    seeds = tmp_path / "in"
    seeds.mkdir()
    (seeds / "a").write_bytes(b"AAAA")
    r = subprocess.run([sys.executable, "-m", "emu", "fuzz", PLANTED, "-i", str(seeds), "-o", str(tmp_path / "o"),
                        "--until-crashes", "1", "--duration", "60"], capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert "1 distinct crashes" in r.stdout and len(os.listdir(tmp_path / "o" / "default" / "crashes")) == 2
