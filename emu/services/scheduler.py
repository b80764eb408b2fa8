"""A proportional-share scheduler for many VMs on a few host threads.

Stride scheduling (Waldspurger and Weihl, 1995): every task holds `shares`;
its stride is STRIDE1 / shares, and its pass value advances by its stride
for each quantum it uses (pro rata for a partial one). The runnable task
with the lowest pass runs next, so over any interval each task receives
instructions in proportion to its shares, within one quantum. A task that
joins late starts at the current global pass: it neither starves the others
to catch up nor waits behind them.

The resource being shared is instructions retired (deterministic, and what
a guest can observe as its speed under virtual time); `charge="time"` charges
host CPU seconds of the running thread instead. With `workers` > 1 several
tasks run at once on host threads (the core releases the GIL while guest
code runs); a task is never run by two workers at once.

A task is any object with `run_slice(budget) -> (retired, finished)`;
`VmTask` wraps an emu.vm.VM.
"""
from __future__ import annotations

import threading
import time

STRIDE1 = 1 << 20


class VmTask:
    """A microVM as a schedulable task: each slice runs it for `budget`
    instructions (or until it stops by itself: poweroff, halt for good,
    shutdown, which ends the task)."""

    def __init__(self, vm, name: str | None = None):
        self.vm = vm
        self.name = name or "vm%x" % id(vm)
        self.reason = None

    def run_slice(self, budget: int) -> tuple[int, bool]:
        vm = self.vm
        start = vm.vcpu.icount
        vm.exit_reason = None
        reason = vm.run(max_insns=start + budget)
        if reason != "limit":
            self.reason = reason
        return vm.vcpu.icount - start, reason != "limit"


class _Entry:
    __slots__ = ("task", "shares", "stride", "pass_", "retired", "cpu", "slices", "done", "busy")

    def __init__(self, task, shares: int, pass_: float):
        self.task = task
        self.shares = shares
        self.stride = STRIDE1 / shares
        self.pass_ = pass_
        self.retired = 0
        self.cpu = 0.0
        self.slices = 0
        self.done = False
        self.busy = False


class Scheduler:
    def __init__(self, quantum: int = 100_000, workers: int = 1, charge: str = "instructions"):
        if quantum <= 0 or workers <= 0:
            raise ValueError("quantum and workers must be positive")
        if charge not in ("instructions", "time"):
            raise ValueError("charge is 'instructions' or 'time'")
        self.quantum = quantum
        self.workers = workers
        self.charge = charge
        self.entries: list[_Entry] = []
        self.global_pass = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)

    def add(self, task, shares: int = 1):
        """Schedule `task` with `shares` (a positive integer)."""
        if not isinstance(shares, int) or shares <= 0:
            raise ValueError("shares must be a positive integer")
        with self._lock:
            live = [e.pass_ for e in self.entries if not e.done]
            self.entries.append(_Entry(task, shares, min(live) if live else self.global_pass))
        return task

    def set_shares(self, task, shares: int) -> None:
        with self._lock:
            for e in self.entries:
                if e.task is task:
                    e.shares, e.stride = shares, STRIDE1 / shares

    def _pick(self):
        best = None
        for e in self.entries:
            if not e.done and not e.busy and (best is None or e.pass_ < best.pass_):
                best = e
        return best

    def _charge(self, e: _Entry, retired: int, cpu: float) -> None:
        use = retired / self.quantum if self.charge == "instructions" else cpu / self._quantum_seconds
        e.pass_ += e.stride * max(use, 1e-6)
        e.retired += retired
        e.cpu += cpu
        e.slices += 1
        self.global_pass = max(self.global_pass, min((x.pass_ for x in self.entries if not x.done), default=0.0))

    def run(self, total: int | None = None, timeout: float | None = None) -> dict:
        """Run the tasks until all are finished, or `total` instructions have
        been retired across them, or `timeout` seconds passed. Returns the
        statistics (stats())."""
        self._quantum_seconds = self.quantum / 200e6      # 'time' charging: a quantum of host CPU
        t_end = None if timeout is None else time.perf_counter() + timeout
        self._left = total
        if self.workers == 1:
            self._worker(t_end)
        else:
            threads = [threading.Thread(target=self._worker, args=(t_end,)) for _ in range(self.workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return self.stats()

    def _worker(self, t_end) -> None:
        while True:
            with self._lock:
                while True:
                    if (self._left is not None and self._left <= 0) or \
                            (t_end is not None and time.perf_counter() > t_end):
                        self._wake.notify_all()
                        return
                    e = self._pick()
                    if e is not None:
                        break
                    if all(x.done for x in self.entries):
                        self._wake.notify_all()
                        return
                    self._wake.wait(0.05)           # every runnable task is on another worker
                e.busy = True
                budget = self.quantum if self._left is None else min(self.quantum, self._left)
                if self._left is not None:
                    self._left -= budget
            c0 = time.thread_time()
            try:
                retired, finished = e.task.run_slice(budget)
            except BaseException:
                with self._lock:
                    e.busy = False
                    e.done = True
                    self._wake.notify_all()
                raise
            cpu = time.thread_time() - c0
            with self._lock:
                if self._left is not None:
                    self._left += budget - retired       # what the slice did not use goes back
                e.busy = False
                e.done = finished
                self._charge(e, retired, cpu)
                self._wake.notify_all()

    def stats(self) -> dict:
        """Per task (by name): shares, instructions retired, host CPU seconds,
        slices, whether it finished."""
        return {getattr(e.task, "name", str(i)): {"shares": e.shares, "retired": e.retired, "cpu": e.cpu,
                                                 "slices": e.slices, "finished": e.done}
                for i, e in enumerate(self.entries)}
