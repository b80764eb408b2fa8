"""The connection to a Dask distributed cluster.

`connect()` starts an embedded LocalCluster (worker *processes*, one thread
each: emu's guests hold the GIL while they run, so threads would not run
them in parallel) or joins an existing scheduler at tcp://HOST:PORT. Nothing
here is emu-specific beyond the defaults; batch, fuzz and fleet take the
Client it returns.

Retries after a lost worker are Dask's own: the scheduler reschedules a task
whose worker died while running it, until the task has taken down
`distributed.scheduler.allowed-failures` workers; then its future raises
KilledWorker. For the embedded cluster `retries` sets that number; an
existing scheduler keeps the setting it was started with.

The embedded cluster's workers also run without Dask's statistical
profiler and with a 64 MiB heap-trim threshold: both cost a fuzz loop of
short guest runs 15-20% each (perf/RESULTS.md). Workers you start yourself
can do the same: `distributed.worker.profile.enabled: false` and
MALLOC_TRIM_THRESHOLD_ in their environment.
"""
from __future__ import annotations

import os
import time


class ClusterUnavailable(Exception):
    """Dask is not installed, or the scheduler cannot be reached."""


def _dask():
    try:
        import dask
        import distributed
    except ImportError:
        raise ClusterUnavailable("this needs Dask distributed: pip install 'emu[cluster]'") from None
    return dask, distributed


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # (not Linux)
        return max(1, os.cpu_count() or 1)


class Cluster:
    """A Client plus the LocalCluster it started, if any (closed together)."""

    def __init__(self, client, local=None):
        self.client = client
        self.local = local

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def worker_addresses(self) -> list[str]:
        return sorted(self.client.scheduler_info()["workers"])

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> its host process id (the test kills one)."""
        return self.client.run(os.getpid)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.local is not None:
                self.local.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _reachable(address: str) -> None:
    """Fail at once, in one line, when nothing listens at a tcp:// address
    (Dask's own connect retries until its timeout)."""
    import socket
    scheme, sep, rest = address.partition("://")
    if not sep:
        raise ClusterUnavailable("%s: a scheduler address looks like tcp://HOST:PORT" % address)
    if scheme != "tcp":
        return                      # (tls://, ucx://...: left to Dask)
    host, _, port = rest.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except ValueError:
        raise ClusterUnavailable("%s: a scheduler address looks like tcp://HOST:PORT" % address) from None
    except OSError as e:
        raise ClusterUnavailable("cannot reach the Dask scheduler at %s: %s" % (address, e.strerror or e)) from None


def connect(address: str | None = None, *, workers: int | None = None, retries: int = 3,
            memory_limit: str | int | None = "auto", timeout: float = 30.0) -> Cluster:
    """A Cluster on the scheduler at `address` (tcp://HOST:PORT), or on a new
    LocalCluster of `workers` processes (default: one per usable core).
    `retries`: times a task may take down its worker before it fails."""
    dask, distributed = _dask()
    if address is not None:
        _reachable(address)
        try:
            client = distributed.Client(address, timeout=timeout)
        except (OSError, TimeoutError) as e:
            raise ClusterUnavailable("cannot reach the Dask scheduler at %s: %s" % (address, e)) from None
        return Cluster(client)
    n = workers or default_workers()
    # allowed-failures is read by the scheduler when it starts: set it first
    dask.config.set({"distributed.scheduler.allowed-failures": max(0, retries),
                     # Dask's workers trim the heap from 64 KiB up (to hand memory back); a fuzz
                     # loop's small temporary arrays then cost 15-20% of its executions
                     "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 64 << 20,
                     # its statistical profiler samples every thread's stack each 10 ms
                     "distributed.worker.profile.enabled": False})
    local = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                     dashboard_address=None, memory_limit=memory_limit,
                                     silence_logs=50)
    try:
        client = distributed.Client(local, timeout=timeout)
        client.wait_for_workers(n, timeout=timeout)
    except BaseException:
        local.close()
        raise
    return Cluster(client, local)


def _noop(x):
    return x


def task_overhead(client, n: int = 200) -> float:
    """The engine's cost of one task, in ms: n trivial tasks submitted and
    gathered, wall time / n (scheduling, serialisation, two network hops)."""
    client.gather(client.map(_noop, range(20), pure=False))        # warm up the workers
    t0 = time.perf_counter()
    client.gather(client.map(_noop, range(n), pure=False))
    return (time.perf_counter() - t0) * 1000.0 / n


def task_latency(client, n: int = 50) -> float:
    """One task's round trip, in ms (median of n, one at a time): submit,
    schedule, run a no-op on a worker, return the result."""
    import statistics
    client.submit(_noop, -1, pure=False).result()
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        client.submit(_noop, i, pure=False).result()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)
