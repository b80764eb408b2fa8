"""The cost and the scaling of emu.cluster (issue 16): sandbox analyses per
second (`emu batch`'s task) and snapshot-fuzz executions per second, in one
process with no engine and on a Dask LocalCluster of 1, 2 and 4 worker
processes; and the engine's own cost per task.

    python perf/bench_cluster.py [--runs 3] [--markdown]

Batch: the same 24 samples from guests/ (each analysed as `emu batch` does:
an `emu run --sandbox --report` child process), no database writes beyond
an in-memory SQLite. Fuzz: guests/fuzz/planted.bin for a fixed time, rounds
of 1 s, the crashes it finds not stopping it. Medians of --runs runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from emu.cluster import batch, fuzz  # noqa: E402
from emu.cluster.client import connect, task_latency, task_overhead  # noqa: E402
from emu.cluster.store import Store  # noqa: E402

G = os.path.join(ROOT, "guests")
SAMPLES = ["faults/undefined_opcode", "faults/exit_status", "faults/jump_garbage", "faults/wild_write", "hello/hello",
           "bench/bin/hash-small", "bench/bin/matmul-small", "bench/bin/crc32-small", "bench/bin/sort-small",
           "linux/bin/setjmp_signals.musl", "linux/bin/setjmp_signals.glibc", "antivm/timecheck", "antivm/antivm",
           "linux/bin/sandbox_escapes.glibc", "linux/bin/bad_args.glibc", "linux/bin/fork_pipe.musl",
           "linux/bin/fork_pipe.glibc", "linux/bin/cpu_signals.musl", "linux/bin/cpu_corners.glibc",
           "linux/bin/escape.musl", "linux/bin/floats.glibc", "linux/bin/floats.musl", "linux/bin/fdkinds.musl",
           "linux/bin/setjmp_signals.musl"]


def sample_dir() -> str:
    d = tempfile.mkdtemp(prefix="emu-bench-samples-")
    for i, s in enumerate(SAMPLES):
        src = os.path.join(G, *s.split("/"))
        # distinct contents (batch analyses each content once): a byte appended past the ELF image
        with open(src, "rb") as f, open(os.path.join(d, "%02d-%s" % (i, os.path.basename(src))), "wb") as g:
            g.write(f.read() + bytes([i]))
        os.chmod(os.path.join(d, "%02d-%s" % (i, os.path.basename(src))), 0o755)
    return d


def batch_no_engine(d: str, settings: dict) -> float:
    """samples/s: analyse() called in this process, one after another."""
    files = batch.collect([d])
    t0 = time.perf_counter()
    for sha, path, size in files:
        with open(path, "rb") as f:
            r = batch.analyse(os.path.basename(path), f.read(), settings)
        assert r["state"] == "done"
    return len(files) / (time.perf_counter() - t0)


def batch_engine(cluster, d: str, settings: dict) -> float:
    store = Store(":memory:")
    s = batch.run(cluster, [d], store, settings, progress=batch.Progress(0))
    assert s["analysed"] == len(SAMPLES) and s["done"] == len(SAMPLES), s
    store.close()
    return s["samples_per_s"]


def fuzz_rate(target, cluster, seconds: float) -> float:
    camp = fuzz.run(target, [("seed", b"AAAA")], cluster=cluster, seconds=seconds, round_s=1.0)
    return camp.execs / camp.seconds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--fuzz-seconds", type=float, default=4.0)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    d = sample_dir()
    settings = batch.make_settings()
    with open(os.path.join(G, "fuzz", "planted.bin"), "rb") as f:
        target = fuzz.flat_target(f.read())
    rows = []
    try:
        load = os.getloadavg()[0]
        b1 = statistics.median(batch_no_engine(d, settings) for _ in range(a.runs))
        f1 = statistics.median(fuzz_rate(target, None, a.fuzz_seconds) for _ in range(a.runs))
        rows.append(("one process, no engine", b1, f1, None))
        for n in [int(x) for x in a.workers.split(",")]:
            with connect(workers=n) as c:
                over = (statistics.median(task_overhead(c.client, 300) for _ in range(a.runs)),
                        statistics.median(task_latency(c.client, 50) for _ in range(a.runs)))
                b = statistics.median(batch_engine(c, d, settings) for _ in range(a.runs))
                f = statistics.median(fuzz_rate(target, c, a.fuzz_seconds) for _ in range(a.runs))
            rows.append(("Dask LocalCluster, %d worker%s" % (n, "s" if n > 1 else ""), b, f, over))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    base_b = rows[1][1]
    base_f = rows[1][2]
    print("date: %s UTC; host: %s, %d CPUs, Python %s; load average %.1f at the start; %d runs (medians)"
          % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()), platform.processor() or platform.machine(),
             os.cpu_count(), platform.python_version(), load, a.runs))
    print("| runner | batch samples/s | vs 1 worker | fuzz execs/s | vs 1 worker "
          "| engine cost per task, pipelined (ms) | one task's round trip (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, b, f, over in rows:
        print("| %s | %.2f | %.2fx | %.0f | %.2fx | %s | %s |"
              % (name, b, b / base_b, f, f / base_f, "-" if over is None else "%.2f" % over[0],
                 "-" if over is None else "%.2f" % over[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
