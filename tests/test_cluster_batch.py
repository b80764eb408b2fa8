"""emu batch (emu/cluster/batch.py, store.py) on a LocalCluster of 2 worker
processes: the reports it gathers are those of single `emu run --report`
calls; a worker killed mid-sample loses and duplicates nothing; a second
run skips what is done; limits end a sample."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("distributed", reason="emu.cluster needs Dask distributed (pip install 'emu[cluster]')")

from emu.cluster import batch  # noqa: E402
from emu.cluster.store import Store, file_sha256  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
G = os.path.join(ROOT, "guests")
SAMPLES = [os.path.join(G, *p.split("/")) for p in (
    "faults/undefined_opcode", "faults/exit_status", "faults/jump_garbage", "faults/wild_write", "hello/hello",
    "bench/bin/hash-small", "bench/bin/matmul-small", "bench/bin/crc32-small", "bench/bin/sort-small",
    "linux/bin/setjmp_signals.musl", "linux/bin/setjmp_signals.glibc", "antivm/timecheck", "antivm/antivm",
    "linux/bin/sandbox_escapes.glibc", "linux/bin/bad_args.glibc", "linux/bin/fork_pipe.musl",
    "linux/bin/fork_pipe.glibc", "linux/bin/cpu_signals.musl", "linux/bin/cpu_corners.glibc",
    "linux/bin/escape.musl")]


def sample_dir(tmp_path):
    d = tmp_path / "samples"
    d.mkdir()
    for s in SAMPLES:
        shutil.copy(s, d / os.path.basename(s))
    return str(d)


def normalise(events, sandbox, sample):
    """A report with this run's sandbox and sample paths named, not spelled
    (each run has its own directories), as each process's own event
    sequence (processes of a tree append to the report concurrently), the
    host's pids of forked children numbered in the order their parent's
    events name them (the host assigns them)."""
    text = json.dumps(events, sort_keys=True)
    events = json.loads(text.replace(os.path.dirname(sample), "<bin>").replace(sandbox, "<box>"))
    by_pid = {}
    for ev in events:
        by_pid.setdefault(ev["pid"], []).append(ev)
    names, order = {1000: "root"}, [1000]           # 1000: the seeded root process's pid
    for pid in order:
        for ev in by_pid.get(pid, ()):
            if isinstance(ev.get("child"), int) and ev["child"] not in names:
                names[ev["child"]] = "%s.%d" % (names[pid], len([n for n in names.values() if n.startswith(names[pid] + ".")]))
                order.append(ev["child"])
    out = {}
    for pid, evs in by_pid.items():
        for ev in evs:
            ev["pid"] = names.get(ev["pid"], ev["pid"])
            if "child" in ev:
                ev["child"] = names.get(ev["child"], ev["child"])
        out[names.get(pid, pid)] = evs
    return out


def single_run(tmp_path, path, settings):
    """`emu run --sandbox BOX --report FILE` by hand, laid out as batch does."""
    work = tmp_path / ("ref-" + os.path.basename(path))
    (work / "box").mkdir(parents=True)
    (work / "bin").mkdir()
    sample = str(work / "bin" / os.path.basename(path))
    shutil.copy(path, sample)
    rep = str(work / "report.jsonl")
    r = subprocess.run(batch.command(sample, str(work / "box"), rep, settings), cwd=work / "box",
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    with open(rep) as f:
        ev = [json.loads(line) for line in f]
    return r.returncode, normalise(ev, str(work / "box"), sample), r.stdout


def emu_children(pid):
    import psutil
    try:
        return [p for p in psutil.Process(pid).children(recursive=True)
                if "emu" in " ".join(p.cmdline()) and "run" in p.cmdline()]
    except psutil.Error:
        return []


def test_batch_equals_single_runs_and_survives_a_killed_worker(dask_cluster, tmp_path, tier):
    settings = batch.make_settings(tier=tier)
    samples = sample_dir(tmp_path)
    db = str(tmp_path / "batch.db")
    store = Store(db)
    killed = {}

    def killer():
        # kill a worker process while one of its samples runs (the analysis
        # child exists), as the OOM killer would
        deadline = time.time() + 30
        while time.time() < deadline and not killed:
            for addr, pid in dask_cluster.worker_pids().items():
                if emu_children(pid):
                    os.kill(pid, signal.SIGKILL)
                    killed[addr] = pid
                    return
            time.sleep(0.01)
    t = threading.Thread(target=killer)
    t.start()
    summary = batch.run(dask_cluster, [samples], store, settings)
    t.join()
    assert killed, "no worker was killed mid-sample"
    assert summary["samples"] == 20 and summary["analysed"] == 20 and summary["done"] == 20
    assert summary["duplicates"] == 0 and summary["failed"] == summary["killed_workers"] == 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT sha256) FROM runs").fetchone() == (20, 20)
    # every report equals a single `emu run --report` of the same sample
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:                  # (two at a time: the CI has 2 cores)
        singles = list(pool.map(lambda p: single_run(tmp_path, p, settings), SAMPLES))
    for path, (status, events, stdout) in zip(SAMPLES, singles):
        (run,) = store.runs(file_sha256(path))
        assert run["state"] == "done" and run["exit_status"] == status, path
        assert normalise(run["events"], run["sandbox"], os.path.join(os.path.dirname(run["sandbox"]), "bin", "x")) \
            == events, path
        import hashlib
        assert run["stdout_sha256"] == hashlib.sha256(stdout).hexdigest(), path
    verdicts = {os.path.basename(p): store.runs(file_sha256(p))[0]["verdict"] for p in SAMPLES}
    assert verdicts["hello"] == "clean" and verdicts["wild_write"] == "crashed"
    assert verdicts["antivm"] == "suspicious"            # reads /proc/cpuinfo and the DMI strings
    # a second batch with the same settings finds everything done
    again = batch.run(dask_cluster, [samples], store, settings)
    assert again["skipped"] == 20 and again["analysed"] == 0
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone() == (20,)
    store.close()


def test_limits_end_a_sample(dask_cluster, tmp_path, tier):
    d = tmp_path / "s"
    d.mkdir()
    shutil.copy(os.path.join(G, "bench", "bin", "sieve-small"), d / "sieve")
    shutil.copy(os.path.join(G, "linux", "bin", "proctree.musl"), d / "proctree")    # waits on its children
    store = Store(str(tmp_path / "b.db"))
    s = batch.make_settings(tier=tier, max_insns=100_000, timeout=2.0)
    summary = batch.run(dask_cluster, [str(d)], store, s)
    assert summary["analysed"] == 2
    sieve = store.runs(file_sha256(str(d / "sieve")))[0]
    assert sieve["verdict"] == "limit" and sieve["exit_status"] == 128 + 24           # SIGXCPU
    assert sieve["events"][-1] == dict(sieve["events"][-1], event="exit", signal=24)
    tree = store.runs(file_sha256(str(d / "proctree")))[0]
    assert tree["state"] == "limit" and tree["verdict"] == "limit" and 2.0 <= tree["wall_s"] < 10
    store.close()


def test_cli_batch_and_show(dask_cluster, tmp_path, tier):
    d = tmp_path / "s"
    d.mkdir()
    shutil.copy(os.path.join(G, "hello", "hello"), d / "hello")
    (d / "notes.txt").write_text("not a program\n")
    db = str(tmp_path / "b.db")
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "emu", "batch", str(d), "--db", db, "--cluster", dask_cluster.address,
                        "--tier", tier], capture_output=True, text=True, timeout=120, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "2 samples: 2 analysed, 0 skipped" in r.stdout and "clean 1, not-run 1" in r.stdout
    sha = file_sha256(str(d / "hello"))
    r = subprocess.run([sys.executable, "-m", "emu", "batch", "--db", db, "--show", sha[:12]], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["sha256"] == sha and shown["runs"][0]["verdict"] == "clean"
    assert shown["runs"][0]["events"][-1]["event"] == "exit"
    # bad input: one line, a meaningful status
    for args in (["--db", db, "--show", "ffff"], [str(d), "--db", db, "--cluster", "tcp://127.0.0.1:1"]):
        r = subprocess.run([sys.executable, "-m", "emu", "batch"] + args, capture_output=True, text=True,
                           timeout=60, env=env)
        assert r.returncode in (1, 2) and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


def test_a_sample_that_kills_every_worker_is_marked(dask_cluster, tmp_path, tier, monkeypatch):
    if tier != "jit":
        pytest.skip("no guest code runs here (the analysis is replaced): once, under one tier setting")
    d = tmp_path / "s"
    d.mkdir()
    (d / "bomb").write_bytes(b"takes its worker down")
    shutil.copy(os.path.join(G, "faults", "exit_status"), d / "exit_status")
    real = batch.analyse

    def analyse(name, data, settings):
        # what the OOM killer does to a worker whose sample eats the host
        if name == "bomb":
            os.kill(os.getpid(), signal.SIGKILL)
        return real(name, data, settings)
    monkeypatch.setattr(batch, "analyse", analyse)
    store = Store(str(tmp_path / "b.db"))
    summary = batch.run(dask_cluster, [str(d)], store, batch.make_settings(tier=tier))
    assert summary["analysed"] == 2 and summary["killed_workers"] == 1 and summary["done"] == 1
    bomb = store.runs(file_sha256(str(d / "bomb")))
    assert len(bomb) == 1 and bomb[0]["state"] == "killed_workers" and bomb[0]["verdict"] == "kills-workers"
    (other,) = store.runs(file_sha256(str(d / "exit_status")))
    assert other["state"] == "done" and other["exit_status"] == 42
    store.close()
