"""`emu fuzz --workers N`: a snapshot-based coverage-guided fuzz campaign
spread over a Dask cluster.

The target is a machine state (emu.Machine.snapshot): code mapped at a
base address, entered in 64-bit mode with rdi = the input and rsi = its
length (the System V convention for f(buf, len)). HLT ends a run that
survived; a CPU exception is a crash; running past `max_insns` is a hang.

- The snapshot is serialised once (its written pages and vCPU state),
  scattered to every worker once (`broadcast=True`), and each worker
  process builds its machine from it once and keeps it between rounds;
  every execution after that is a restore (copying back only the pages the
  last input wrote) plus a run.
- Coverage is the core's AFL-style edge map (map[cur ^ prev] += 1). As in
  AFL, hit counts are bucketed (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+),
  one bit per bucket, and the campaign's map of what was seen is the OR of
  those bits: a union of maps is a bitwise OR. The campaign runs in rounds:
  each worker fuzzes the current queue against the current map for a while
  and returns the inputs that set new bits (with their bits) and its map;
  the client merges them in order (an input joins the queue only if it
  still adds bits), and the next round starts everywhere from the merged
  queue and map. So the merged map is exactly the union of the workers'
  maps, and exactly the union of the queue entries' maps.
- Crashes are de-duplicated by (vector, faulting RIP, call stack), the call
  stack being the return addresses of the frame-pointer chain (RBP).
- The output directory has AFL's layout (`OUT/default/queue/id:000000,...`,
  `crashes/`, `hangs/`, `fuzz_bitmap` as AFL's virgin map, `fuzzer_stats`),
  so AFL++'s tools (afl-cmin, afl-showmap -C, afl-plot...) can read it.
"""
from __future__ import annotations

import hashlib
import os
import random
import time

import numpy as np

PAGE = 4096
MAP_SIZE = 65536
# AFL's hit-count buckets: count -> one bit
BUCKETS = np.zeros(256, dtype=np.uint8)
for _n in range(1, 256):
    BUCKETS[_n] = (1 if _n == 1 else 2 if _n == 2 else 4 if _n == 3 else 8 if _n < 8 else 16 if _n < 16
                   else 32 if _n < 32 else 64 if _n < 128 else 128)
# a CPU exception as the signal a Linux process would get (for AFL's file names)
VECTOR_SIGNAL = {0: 8, 1: 5, 3: 5, 4: 11, 5: 11, 6: 4, 7: 8, 10: 11, 11: 7, 12: 11, 13: 11, 14: 11, 16: 8,
                 17: 7, 19: 8}
_LANES = np.arange(8, dtype=np.int64)
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x40, 0x64)


def flat_target(code: bytes, *, base: int = 0x400000, input_addr: int = 0x700000, max_len: int = 4096,
                stack: int = 0x800000, ram: int = 16 << 20, max_insns: int = 100_000, tier: str | None = None) -> dict:
    """A fuzz target from a flat binary (see the module doc): its serialised
    snapshot, what is shipped to the workers."""
    import emu
    if not code:
        raise ValueError("the target code is empty")
    if max_len <= 0 or max_len > 1 << 20:
        raise ValueError("the input size must be 1 byte to 1 MiB")
    m = emu.Machine(ram, cpl=0, tier=tier)
    m.map(base, len(code))
    input_pa = m.map(input_addr, max_len, 2)                  # (physically contiguous: one allocation)
    m.map(stack - 0x10000, 0x10000, 2)
    m.write(base, code)
    v = m.vcpu
    v.rip, v.rdi, v.rsi, v.rsp, v.rbp = base, input_addr, 0, stack - 16, 0
    snap = m.snapshot()
    data = snap.data.tobytes()
    return {"id": hashlib.sha256(data + b"".join(snap.vcpus) + repr((ram, tier, max_insns)).encode()).hexdigest(),
            "ram": ram, "tier": tier, "pages": snap.pages.tobytes(), "data": data, "vcpu": snap.vcpus[0],
            "input_pa": input_pa, "max_len": max_len, "max_insns": max_insns}


class Runner:
    """A target's machine, built from the shipped snapshot, that runs inputs."""

    def __init__(self, target: dict):
        import emu
        self.target = target
        m = self.m = emu.Machine(target["ram"], paging=False, cpl=0, tier=target["tier"])
        pages = np.frombuffer(target["pages"], dtype=np.uint32)
        data = np.frombuffer(target["data"], dtype=np.uint8).reshape(-1, PAGE)
        m.ram.reshape(-1, PAGE)[pages] = data
        for p in pages.tolist():
            m.phys.mark_dirty(p * PAGE, PAGE)              # (written through the numpy view)
        self.v = m.vcpu
        self.v.load_state(target["vcpu"])
        self.v.enable_coverage()
        self.snap = m.snapshot()
        self.pa, self.max_len, self.max_insns = target["input_pa"], target["max_len"], target["max_insns"]

    def run(self, data: bytes):
        """One execution: ("ok" | "crash" | "hang", the exit, coverage edge
        indices, their bucket bits)."""
        m, v = self.m, self.v
        m.restore(self.snap)
        v.clear_coverage()
        data = data[:self.max_len]
        m.ram[self.pa:self.pa + len(data)] = np.frombuffer(data, dtype=np.uint8)
        m.phys.mark_dirty(self.pa, max(1, len(data)))
        v.rsi = len(data)
        ex = v.run(self.max_insns)
        kind = "ok" if ex.name == "HLT" else "crash" if ex.name == "EXCEPTION" else "hang"
        cov = v.coverage
        # the few edges hit, found 8 map bytes at a time (a scan of 65536
        # single bytes would cost more than the run itself)
        words = np.flatnonzero(cov.view(np.uint64))
        idx = (words[:, None] * 8 + _LANES).ravel()
        idx = idx[cov[idx] != 0]
        return kind, ex, idx, BUCKETS[cov[idx]]

    def stack(self, depth: int = 8) -> tuple[int, ...]:
        """The return addresses of the RBP chain (frame pointers)."""
        v, out, rbp = self.v, [], self.v.rbp
        for _ in range(depth):
            pa = v.translate(rbp + 8, 0) if rbp else None
            if pa is None or pa + 8 > len(self.m.mem) or (rbp + 8) & 0xFFF > PAGE - 8:
                break
            ret = int.from_bytes(self.m.mem[pa:pa + 8], "little")
            if not ret:
                break                   # the outermost frame (entered by a jump, not a call)
            out.append(ret)
            npa = v.translate(rbp, 0)
            rbp = int.from_bytes(self.m.mem[npa:npa + 8], "little") if npa is not None else 0
        return tuple(out)


def mutate(rng: random.Random, data: bytes, queue: list[bytes], max_len: int) -> tuple[bytes, str]:
    """AFL-style havoc: 1, 2 or 4 stacked edits (bit flips, random and
    interesting bytes, arithmetic, inserts, deletes, block copies), or a
    splice with another queue entry."""
    b = bytearray(data or b"\0")
    op = "havoc"
    if len(queue) > 1 and rng.random() < 0.1:
        other = rng.choice(queue)
        if other:
            cut = rng.randrange(len(b) + 1)
            b = b[:cut] + other[rng.randrange(len(other)):]
            op = "splice"
    for _ in range(1 << rng.randrange(3)):
        if not b:
            b.append(0)
        k = rng.randrange(7)
        i = rng.randrange(len(b))
        if k == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif k == 1:
            b[i] = rng.randrange(256)
        elif k == 2:
            b[i] = rng.choice(INTERESTING)
        elif k == 3:
            b[i] = (b[i] + rng.randrange(-35, 36)) & 0xFF
        elif k == 4 and len(b) < max_len:
            b.insert(i, rng.randrange(256))
        elif k == 5 and len(b) > 1:
            del b[i]
        elif k == 6 and len(b) > 1:
            j, n = rng.randrange(len(b)), rng.randrange(1, min(8, len(b)) + 1)
            b[i:i + n] = b[j:j + n]
    return bytes(b[:max_len]), op


_RUNNERS: dict[str, Runner] = {}        # a worker's machines, one per target (built once)
BUILT: dict[str, int] = {}              # target id -> machines built from it in this process


def runner_for(target: dict) -> Runner:
    r = _RUNNERS.get(target["id"])
    if r is None:
        _RUNNERS.clear()
        r = _RUNNERS[target["id"]] = Runner(target)
        BUILT[target["id"]] = BUILT.get(target["id"], 0) + 1
    return r


def fuzz_round(target: dict, queue: list[bytes], seen: bytes, *, seed: int, execs: int | None = None,
               seconds: float | None = None, calibrate: bool = False) -> dict:
    """One worker's round: mutate queue entries, run them, and return the
    inputs that set bits not in `seen` (in the order found, with their
    bits), the de-duplicated crashes, hangs, and the worker's map (`seen`
    OR every new input's bits). calibrate: run the queue entries as they
    are instead (the seeds' first run). Runs on a worker, or in-process for
    a single-process campaign."""
    r = runner_for(target)
    local = np.frombuffer(seen, dtype=np.uint8).copy()
    rng = random.Random(seed)
    new, crashes, hangs = [], {}, []
    n = 0
    t0 = time.perf_counter()
    plan = list(enumerate(queue)) if calibrate else None
    while True:
        if calibrate:
            if n >= len(plan):
                break
            src, data = plan[n]
            data, op = bytes(data), "orig"
        else:
            if (execs is not None and n >= execs) or (seconds is not None and time.perf_counter() - t0 >= seconds):
                break
            # half the time one of the newest entries: they are the deepest
            # (as AFL favours fresh finds), else any
            src = len(queue) - 1 - rng.randrange(min(3, len(queue))) if rng.random() < 0.5 \
                else rng.randrange(len(queue))
            data, op = mutate(rng, queue[src], queue, r.max_len)
        kind, ex, idx, bits = r.run(data)
        n += 1
        if kind == "crash":
            key = (ex.vector, ex.rip, r.stack())
            c = crashes.get(key)
            if c is None:
                crashes[key] = {"input": data, "vector": ex.vector, "rip": ex.rip, "stack": list(key[2]),
                                "src": src, "op": op, "hits": 1}
            else:
                c["hits"] += 1
            continue
        fresh = bits & ~local[idx]
        if kind == "hang":
            if fresh.any() and len(hangs) < 16:
                hangs.append({"input": data, "src": src, "op": op})
            continue
        if fresh.any() or calibrate:
            local[idx] |= bits
            new.append({"input": data, "src": src, "op": op, "idx": idx.astype(np.uint32).tobytes(),
                        "bits": bits.tobytes()})
    return {"new": new, "crashes": list(crashes.values()), "hangs": hangs, "map": local.tobytes(), "execs": n,
            "seconds": time.perf_counter() - t0}


class Campaign:
    """The central state: the queue, the merged map, the crashes; written
    to `out` in AFL's layout as it grows."""

    def __init__(self, target: dict, out: str | None):
        self.target = target
        self.queue: list[dict] = []
        self.seen = np.zeros(MAP_SIZE, dtype=np.uint8)
        self.crashes: dict[tuple, dict] = {}
        self.hangs: list[dict] = []
        self.execs = 0
        self.rounds = 0
        self.worker_maps: list[bytes] = []        # the last round's maps, as the workers returned them
        self.t0 = time.time()
        self.out = os.path.join(out, "default") if out else None
        if self.out:
            for d in ("queue", "crashes", "hangs"):
                os.makedirs(os.path.join(self.out, d), exist_ok=True)

    def merge(self, results: list[dict], *, seeds: list[str] | None = None) -> int:
        """Fold workers' round results in; returns how many inputs joined the queue."""
        added = 0
        self.worker_maps = [r["map"] for r in results]
        for r in results:
            self.execs += r["execs"]
            for e in r["new"]:
                idx = np.frombuffer(e["idx"], dtype=np.uint32)
                bits = np.frombuffer(e["bits"], dtype=np.uint8)
                if not (bits & ~self.seen[idx]).any() and seeds is None:
                    continue            # another worker found the same bits first
                self.seen[idx] |= bits
                name = "id:%06d," % len(self.queue) + (
                    "orig:%s" % seeds[e["src"]] if seeds is not None else "src:%06d,op:%s,+cov" % (e["src"], e["op"]))
                self.queue.append({"input": e["input"], "name": name, "idx": e["idx"], "bits": e["bits"]})
                self._write("queue", name, e["input"])
                added += 1
            for c in r["crashes"]:
                key = (c["vector"], c["rip"], tuple(c["stack"]))
                have = self.crashes.get(key)
                if have is not None:
                    have["hits"] += c["hits"]
                    continue
                name = "id:%06d,sig:%02d,src:%06d,op:%s" % (len(self.crashes), VECTOR_SIGNAL.get(c["vector"], 11),
                                                           c["src"], c["op"])
                self.crashes[key] = dict(c, name=name)
                self._write("crashes", name, c["input"])
            for h in r["hangs"]:
                if len(self.hangs) < 64:
                    name = "id:%06d,src:%06d,op:%s" % (len(self.hangs), h["src"], h["op"])
                    self.hangs.append(dict(h, name=name))
                    self._write("hangs", name, h["input"])
        self.rounds += 1
        self.write_stats()
        return added

    def _write(self, kind: str, name: str, data: bytes) -> None:
        if self.out:
            with open(os.path.join(self.out, kind, name), "wb") as f:
                f.write(data)

    def edges(self) -> int:
        return int(np.count_nonzero(self.seen))

    def write_stats(self) -> None:
        if not self.out:
            return
        with open(os.path.join(self.out, "fuzz_bitmap"), "wb") as f:
            f.write((~self.seen).tobytes())            # AFL's virgin bits: a bit cleared = that bucket seen
        now = time.time()
        stats = {"start_time": int(self.t0), "last_update": int(now), "fuzzer_pid": os.getpid(),
                 "run_time": int(now - self.t0), "cycles_done": self.rounds, "execs_done": self.execs,
                 "execs_per_sec": "%.2f" % (self.execs / max(1e-9, now - self.t0)),
                 "corpus_count": len(self.queue), "saved_crashes": len(self.crashes),
                 "saved_hangs": len(self.hangs), "edges_found": self.edges(), "total_edges": MAP_SIZE,
                 "bitmap_cvg": "%.2f%%" % (100.0 * self.edges() / MAP_SIZE), "afl_banner": "emu",
                 "afl_version": "emu-cluster", "target_mode": "snapshot", "command_line": "emu fuzz"}
        with open(os.path.join(self.out, "fuzzer_stats"), "w") as f:
            for k, v in stats.items():
                f.write("%-17s: %s\n" % (k, v))
        with open(os.path.join(self.out, "crashes", "README.txt"), "w") as f:
            f.write("Crashes found by emu fuzz, one file per distinct (vector, faulting RIP, call stack):\n")
            for (vec, rip, stack), c in sorted(self.crashes.items(), key=lambda kv: kv[1]["name"]):
                f.write("%s  vector %d at %#x, stack %s, %d hits\n"
                        % (c["name"], vec, rip, " ".join("%#x" % a for a in stack), c["hits"]))


def run(target: dict, seeds: list[tuple[str, bytes]], *, cluster=None, out: str | None = None,
        execs: int | None = None, seconds: float | None = None, round_s: float = 0.5,
        round_execs: int | None = None, seed: int = 0,
        stop_on_crashes: int | None = None, on_round=None) -> Campaign:
    """A campaign on the cluster's workers (cluster=None: in this process,
    no engine). Stops after `execs` executions or `seconds`, or once it has
    `stop_on_crashes` distinct crashes. A round lasts `round_s` seconds on
    each worker, or `round_execs` executions (then the campaign is
    reproducible: the same seed finds the same things)."""
    seeds = seeds or [("empty", b"")]
    camp = Campaign(target, out)
    if cluster is not None:
        client = cluster.client
        workers = cluster.worker_addresses()
        # the snapshot goes to each worker once (its own key: a content-hashed
        # one could be released by an earlier campaign's future as this one starts)
        shipped = client.scatter(target, broadcast=True, hash=False)

        def call(*args, **kw):
            futs = [client.submit(fuzz_round, shipped, *args, workers=[w], pure=False, **dict(kw, seed=kw["seed"] + i))
                    for i, w in enumerate(workers)]
            return client.gather(futs)
    else:
        workers = [None]

        def call(*args, **kw):
            return [fuzz_round(target, *args, **kw)]
    names = [n for n, _ in seeds]
    first = call([d for _, d in seeds], camp.seen.tobytes(), seed=seed, calibrate=True)
    camp.merge(first[:1], seeds=names)            # (every worker ran the same seeds: one result is all of them)
    camp.execs += sum(r["execs"] for r in first[1:])
    t0 = time.perf_counter()
    rnd = 0
    while True:
        if execs is not None and camp.execs >= execs:
            break
        if seconds is not None and time.perf_counter() - t0 >= seconds:
            break
        if stop_on_crashes is not None and len(camp.crashes) >= stop_on_crashes:
            break
        rnd += 1
        per = None if execs is None else max(1, (execs - camp.execs) // len(workers))
        if round_execs is not None:
            per = round_execs if per is None else min(per, round_execs)
        results = call([q["input"] for q in camp.queue], camp.seen.tobytes(), seed=seed + 1000 * rnd,
                       execs=per, seconds=None if round_execs is not None else round_s)
        camp.merge(results)
        if on_round is not None:
            on_round(camp)
    camp.seconds = time.perf_counter() - t0
    return camp
