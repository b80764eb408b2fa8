"""`emu batch`: many sandbox analyses (`emu run --sandbox BOX --report FILE`)
spread over a Dask cluster, their reports gathered into one SQLite database
(store.py).

Each sample is one Dask task. The task ships the sample's bytes (workers
need no shared file system), and the worker runs the analysis as a child
process, `python -m emu run --sandbox ... --report ...`, for three reasons:
`--sandbox` confines the process that runs it for good (Landlock and
seccomp, emu/linux/oslock.py), which a long-lived worker must not be; a
guest that exhausts memory or wedges takes down only its own process; and
the report is then exactly what a single `emu run --report` writes. The
child dies with its worker (PR_SET_PDEATHSIG), so a lost worker leaves no
analysis running behind it.

Per-sample limits: instructions (`emu run --max-insns`: SIGXCPU for the
guest), wall time (the worker kills the child's process group) and resident
memory (the worker polls the child tree's RSS and kills it past the limit).

A worker killed mid-sample (OOM killer, a lost node) is Dask's to handle:
the scheduler runs the task again on another worker, up to the cluster's
allowed-failures; a sample that takes down a worker every time ends as
KilledWorker and is recorded as `killed_workers`. Results are written by the
client alone, once per (sample, settings) (store.py's UNIQUE key), so a
retried task can neither lose nor duplicate a result.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from emu.cluster.store import file_sha256, settings_key

DEFAULTS = {"profile": "transparent", "time": "virtual", "seed": 1, "max_insns": None, "timeout": 60.0,
            "max_rss_mb": 2048, "tier": None, "args": []}
MAX_REPORT_BYTES = 64 << 20          # a report past this is cut (and says so)
STDERR_TAIL = 2000


def make_settings(**kw) -> dict:
    """The full settings of an analysis (what the skip check compares)."""
    s = dict(DEFAULTS)
    for k, v in kw.items():
        if k not in s:
            raise ValueError("unknown batch setting %r" % k)
        if v is not None:
            s[k] = v
    s["args"] = list(s["args"])
    return s


def command(sample: str, box: str, report: str, settings: dict) -> list[str]:
    """The `emu run` command line of one analysis."""
    cmd = [sys.executable, "-m", "emu", "run", "--sandbox", box, "--report", report,
           "--profile", settings["profile"], "--time", settings["time"], "--seed", str(settings["seed"])]
    if settings.get("max_insns"):
        cmd += ["--max-insns", str(settings["max_insns"])]
    if settings.get("tier"):
        cmd += ["--tier", settings["tier"]]
    return cmd + [sample] + list(settings.get("args", ()))


def _die_with_parent():
    """In the child, before exec: SIGKILL when the worker thread that started
    it goes (prctl PR_SET_PDEATHSIG, Linux)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _tree_rss(pid: int) -> int:
    import psutil                     # (a dependency of distributed)
    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def analyse(name: str, data: bytes, settings: dict) -> dict:
    """Run one sample (its file name and bytes) in a sandbox; runs on a
    worker. Returns the result record store.add_run takes."""
    work = tempfile.mkdtemp(prefix="emu-batch-")
    try:
        box = os.path.join(work, "box")
        os.mkdir(box)
        os.mkdir(os.path.join(work, "bin"))
        sample = os.path.join(work, "bin", os.path.basename(name) or "sample")
        with open(sample, "wb") as f:
            f.write(data)
        os.chmod(sample, 0o755)
        report = os.path.join(work, "report.jsonl")          # outside the box: the guest cannot touch it
        out_path = os.path.join(work, "stdout")
        t0 = time.perf_counter()
        state, limit = "done", None
        with open(out_path, "wb") as out, open(os.path.join(work, "stderr"), "w+b") as err:
            child = subprocess.Popen(command(sample, box, report, settings), cwd=box, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=err, start_new_session=True, preexec_fn=_die_with_parent)
            deadline = t0 + float(settings["timeout"])
            rss_max = int(settings["max_rss_mb"]) << 20 if settings.get("max_rss_mb") else None
            while True:
                try:
                    status = child.wait(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.perf_counter() > deadline:
                    limit = "wall time"
                elif rss_max is not None and _tree_rss(child.pid) > rss_max:
                    limit = "memory"
                if limit:
                    try:
                        os.killpg(child.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    status = child.wait()
                    break
            err.seek(0, 2)
            err.seek(max(0, err.tell() - STDERR_TAIL))
            stderr = err.read().decode("utf-8", "replace")
        wall = time.perf_counter() - t0
        events, cut = [], False
        try:
            with open(report, "rb") as f:
                raw = f.read(MAX_REPORT_BYTES + 1)
            cut = len(raw) > MAX_REPORT_BYTES
            for line in raw[:MAX_REPORT_BYTES].splitlines():
                try:
                    events.append(json.loads(line))
                except ValueError:
                    cut = True              # a line cut by the limit, or by a killed child
        except FileNotFoundError:
            pass
        h = hashlib.sha256()
        n = 0
        with open(out_path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                n += len(chunk)
        if limit is None and status < 0:
            # the analysis process died of a host signal it did not get from
            # us: the kernel's OOM killer, or an operator
            limit = "host signal %d" % -status
        if limit:
            state = "limit"
        return {"state": state, "limit": limit, "exit_status": status, "wall_s": wall, "worker": _worker_name(),
                "sandbox": box, "sample": sample, "stdout_sha256": h.hexdigest(), "stdout_bytes": n,
                "stderr": stderr, "events": events, "report_cut": cut}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _worker_name() -> str:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return "pid %d" % os.getpid()


# ---- verdicts ----

ANTI_ANALYSIS_FILES = ("/proc/cpuinfo", "/sys/class/dmi/", "/sys/devices/virtual/dmi/", "/proc/self/status",
                       "/proc/scsi/", "/sys/hypervisor/")


def verdict(result: dict) -> tuple[str, list[str]]:
    """A coarse verdict from what the report shows, and the reasons for it:
    kills-workers / error / limit / suspicious (escape attempts,
    anti-analysis probes, network, ptrace) / not-run (not a program emu
    runs) / crashed (a fault or a killing signal) / clean. A triage aid,
    not a classifier."""
    if result["state"] == "killed_workers":
        return "kills-workers", ["took down a worker on every attempt"]
    if result["state"] == "failed":
        return "error", [result.get("error") or "the analysis failed"]
    reasons = []
    box = result.get("sandbox") or "\0"
    for ev in result.get("events", ()):
        kind = ev.get("event")
        if kind == "open" and ev.get("access") != "r" and isinstance(ev.get("path"), str) \
                and not ev["path"].startswith(box) and not ev["path"].startswith("/dev/"):
            reasons.append("write outside the sandbox: %s" % ev["path"])
        elif kind == "open" and isinstance(ev.get("path"), str) \
                and any(ev["path"].startswith(p) for p in ANTI_ANALYSIS_FILES):
            reasons.append("reads %s" % ev["path"])
        elif kind == "net" and ev.get("op") in ("connect", "sendto", "bind"):
            reasons.append("network: %s %s" % (ev["op"], ev.get("address")))
        elif kind == "proc" and ev.get("op") == "ptrace":
            reasons.append("ptrace")
        elif kind == "exit" and any(l.startswith("0x4000000") for l in ev.get("cpuid_leaves", ())):
            reasons.append("probes the hypervisor CPUID leaves")
    reasons = list(dict.fromkeys(reasons))
    if result["state"] == "limit":
        return "limit", ["%s limit" % result["limit"]] + reasons
    if reasons:
        return "suspicious", reasons
    st = result.get("exit_status")
    if st == 128 + 24:
        return "limit", ["instruction limit (SIGXCPU)"]
    if st in (126, 127):                    # emu run: not found / not an executable it can run
        lines = (result.get("stderr") or "").strip().splitlines()
        return "not-run", [lines[-1] if lines else "not a program emu runs"]
    faults = [ev for ev in result.get("events", ()) if ev.get("event") == "fault"]
    killed = [ev for ev in result.get("events", ()) if ev.get("event") == "exit" and ev.get("signal")]
    if faults or killed:
        return "crashed", ["fault vector %d at %#x" % (f["vector"], f["rip"]) for f in faults]
    return "clean", []


# ---- the client's side ----

def collect(paths) -> list[tuple[str, str, int]]:
    """(sha256, path, size) of each regular file under the given files and
    directories, one per distinct content, in path order."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                files += [os.path.join(root, n) for n in sorted(names)]
        else:
            files.append(p)
    seen, out = set(), []
    for f in files:
        if not os.path.isfile(f):
            continue
        sha = file_sha256(f)
        if sha not in seen:
            seen.add(sha)
            out.append((sha, f, os.path.getsize(f)))
    return out


class Progress:
    """The live line: done, failed, running, throughput (stderr, when a
    terminal; `force` draws it anyway)."""

    def __init__(self, total: int, stream=None, force: bool = False):
        self.total, self.stream = total, stream or sys.stderr
        self.on = force or getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.perf_counter()
        self.last = 0.0

    def update(self, done: int, failed: int, running: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not self.on or (not final and now - self.last < 0.2):
            return
        self.last = now
        n = done + failed
        width = 30
        fill = width * n // max(1, self.total)
        rate = n / max(1e-9, now - self.t0)
        self.stream.write("\r[%s%s] %d/%d  done %d  failed %d  running %d  %.2f samples/s "
                          % ("#" * fill, "." * (width - fill), n, self.total, done, failed, running, rate))
        if final:
            self.stream.write("\n")
        self.stream.flush()


def run(cluster, paths, store, settings: dict, *, progress: Progress | None = None, window: int | None = None,
        on_submit=None) -> dict:
    """Analyse every sample under `paths` not yet in `store` with these
    settings. Returns the summary (counts, verdicts, wall time, samples/s)."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker
    client = cluster.client
    key = settings_key(settings)
    t0 = time.perf_counter()
    samples = collect(paths)
    todo = []
    for sha, path, size in samples:
        store.add_sample(sha, path, size)
        if not store.done(sha, key):
            todo.append((sha, path))
    skipped = len(samples) - len(todo)
    nworkers = max(1, len(client.scheduler_info()["workers"]))
    window = window or 2 * nworkers + 2          # tasks in flight: the queue stays short and memory bounded
    progress = progress or Progress(len(todo))
    progress.total = len(todo)
    summary = {"samples": len(samples), "skipped": skipped, "analysed": 0, "done": 0, "failed": 0,
               "limit": 0, "killed_workers": 0, "duplicates": 0, "verdicts": {}}
    pending = list(reversed(todo))
    owner = {}
    ac = as_completed()

    def submit_one():
        sha, path = pending.pop()
        with open(path, "rb") as f:
            data = f.read()
        fut = client.submit(analyse, os.path.basename(path), data, settings, pure=False,
                            key="emu-batch-%s-%s" % (sha[:24], key))
        owner[fut.key] = sha
        ac.add(fut)
        if on_submit is not None:
            on_submit(fut)

    for _ in range(min(window, len(pending))):
        submit_one()
    failed = 0
    for fut in ac:
        sha = owner.pop(fut.key)
        try:
            result = fut.result()
        except KilledWorker:
            result = {"state": "killed_workers", "error": "the sample took down a worker on every attempt"}
        except Exception as e:          # noqa: BLE001 - the worker's error, recorded with the sample
            result = {"state": "failed", "error": "%s: %s" % (type(e).__name__, e)}
        fut.release()
        v, reasons = verdict(result)
        if store.add_run(sha, key, settings, result, v, reasons):
            summary["analysed"] += 1
            summary[result["state"]] = summary.get(result["state"], 0) + 1
            summary["verdicts"][v] = summary["verdicts"].get(v, 0) + 1
        else:
            summary["duplicates"] += 1
        if result["state"] in ("failed", "killed_workers"):
            failed += 1
        if pending:
            submit_one()
        progress.update(summary["analysed"] - failed, failed, min(nworkers, len(owner)))
    progress.update(summary["analysed"] - failed, failed, 0, final=True)
    summary["wall_s"] = time.perf_counter() - t0
    summary["samples_per_s"] = summary["analysed"] / summary["wall_s"] if summary["wall_s"] else 0.0
    return summary


def format_summary(s: dict) -> str:
    lines = ["emu batch: %d samples: %d analysed, %d skipped (already in the database) in %.1f s (%.2f samples/s)"
             % (s["samples"], s["analysed"], s["skipped"], s["wall_s"], s["samples_per_s"]),
             "  done %d, limits hit %d, failed %d, took down workers %d"
             % (s.get("done", 0), s.get("limit", 0), s.get("failed", 0), s.get("killed_workers", 0))]
    if s["verdicts"]:
        lines.append("  verdicts: " + ", ".join("%s %d" % kv for kv in sorted(s["verdicts"].items())))
    return "\n".join(lines)
