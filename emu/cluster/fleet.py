"""microVM fleets on a Dask cluster: place VMs on workers, run them, and
live-migrate a running VM from one worker to another.

Each VM lives in a `VMHost`, a Dask actor (a stateful object pinned to one
worker process; method calls go to it over Dask's comms). Migration is
emu's pre-copy live migration (emu/services/vmstate.py: send / receive)
over a direct TCP connection between the two workers, which the fleet sets
up: the destination listens on an ephemeral port and receives in a thread,
the source connects and sends while its guest keeps running between copy
rounds; then the source stops, sends the last pages and its state, and the
destination resumes exactly where it stopped.

The console stays unbroken: what the guest wrote on the source (including
during the copy rounds) is collected from it after it stopped, and the
destination's output follows. The disk image is not copied (as with any
live migration, both hosts see the same storage: a shared path).
"""
from __future__ import annotations

import socket
import threading


class VMHost:
    """One microVM on one worker (a Dask actor)."""

    def __init__(self):
        self.vm = None
        self.out = bytearray()
        self._recv = None          # (thread, listening socket, [error])

    def _output(self, data: bytes) -> None:
        self.out += data

    @staticmethod
    def _tier(tier) -> None:
        # the worker's default tier for the VM made next (the worker process
        # was started before the caller chose one)
        if tier is not None:
            import emu
            emu.set_default_tier(tier)

    def create(self, kernel: str, mem: str = "128M", tier: str | None = None, **kw) -> int:
        """Boot-ready VM from a kernel (emu.vm.VM's arguments)."""
        from emu.vm import VM
        self._tier(tier)
        self.vm = VM(kernel, mem=mem, output=self._output, **kw)
        return self.vm.mem_size

    def run(self, max_insns: int | None = None, timeout: float | None = None) -> str:
        """Run the guest until it stops, `max_insns` instructions retired in
        all (vCPU icount), or `timeout` seconds; returns the VM's reason."""
        self.vm.exit_reason = None
        return self.vm.run(max_insns=max_insns, timeout=timeout)

    def icount(self) -> int:
        return self.vm.vcpu.icount

    def console(self, start: int = 0) -> bytes:
        return bytes(self.out[start:])

    def listen(self, mem: str, host: str, tier: str | None = None, **kw) -> tuple[str, int]:
        """Make an empty VM to receive a migration into and listen for it on
        `host` (this worker's address); returns (host, port)."""
        from emu.services import vmstate
        from emu.vm import VM
        self._tier(tier)
        self.vm = VM(None, mem=mem, output=self._output, **kw)
        srv = socket.create_server((host, 0))
        srv.settimeout(120)
        err = []

        def receive():
            try:
                conn, _ = srv.accept()
                with conn, conn.makefile("rb") as f:
                    vmstate.receive(f, self.vm)
            except Exception as e:          # noqa: BLE001 - reported by received()
                err.append("%s: %s" % (type(e).__name__, e))
            finally:
                srv.close()
        t = threading.Thread(target=receive, name="emu-migrate-in", daemon=True)
        t.start()
        self._recv = (t, srv, err)
        return srv.getsockname()[:2]

    def received(self, timeout: float = 120) -> str | None:
        """Wait for the incoming migration; its error, or None."""
        t, _, err = self._recv
        t.join(timeout)
        self._recv = None
        if t.is_alive():
            return "the migration did not finish in %g s" % timeout
        return err[0] if err else None

    def send_to(self, host: str, port: int, **opts) -> dict:
        """Live-migrate this VM to a listening VMHost; the VM is closed after."""
        from emu.services import vmstate
        with socket.create_connection((host, port), timeout=120) as s, s.makefile("wb") as f:
            figures = vmstate.send(self.vm, f, **opts)
        self.vm.close()
        self.vm = None
        return {k: v for k, v in figures.items() if k != "t_stop"}

    def close(self) -> None:
        if self.vm is not None:
            self.vm.close()
            self.vm = None


def _host_of(address: str) -> str:
    """tcp://10.0.0.5:4321 -> 10.0.0.5 (the worker's host, to listen on)."""
    hostport = address.split("://", 1)[-1]
    return hostport.rsplit(":", 1)[0].strip("[]")


class Fleet:
    """microVMs placed on a cluster's workers, by name."""

    def __init__(self, cluster):
        self.client = cluster.client
        self.vms: dict[str, dict] = {}      # name -> {"actor", "worker", "mem", "kw", "console" (earlier hosts')}

    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info()["workers"])

    def _least_loaded(self) -> str:
        load = {w: 0 for w in self.workers()}
        for v in self.vms.values():
            if v["worker"] in load:
                load[v["worker"]] += 1
        return min(load, key=lambda w: (load[w], w))

    def _actor(self, worker: str):
        return self.client.submit(VMHost, workers=[worker], allow_other_workers=False, actor=True,
                                  pure=False).result()

    def place(self, name: str, kernel: str, *, worker: str | None = None, mem: str = "128M", **kw) -> str:
        """Create VM `name` on `worker` (default: the one with fewest VMs);
        returns the worker's address."""
        if name in self.vms:
            raise ValueError("a VM named %r is already in the fleet" % name)
        worker = worker or self._least_loaded()
        actor = self._actor(worker)
        actor.create(kernel, mem=mem, **kw).result()
        self.vms[name] = {"actor": actor, "worker": worker, "mem": mem, "kw": kw, "console": b""}
        return worker

    def where(self, name: str) -> str:
        return self.vms[name]["worker"]

    def run(self, name: str, max_insns: int | None = None, timeout: float | None = None) -> str:
        return self.vms[name]["actor"].run(max_insns=max_insns, timeout=timeout).result()

    def icount(self, name: str) -> int:
        return self.vms[name]["actor"].icount().result()

    def console(self, name: str) -> bytes:
        """Everything the guest wrote, across the hosts it ran on."""
        v = self.vms[name]
        return v["console"] + v["actor"].console().result()

    def migrate(self, name: str, worker: str, **opts) -> dict:
        """Live-migrate VM `name` to `worker` while it runs (vmstate.send's
        options: rounds, slice_insns, stop_pages). Returns the figures."""
        v = self.vms[name]
        if worker == v["worker"]:
            raise ValueError("VM %r already runs on %s" % (name, worker))
        dst = self._actor(worker)
        host, port = dst.listen(v["mem"], _host_of(worker), **v["kw"]).result()
        figures = v["actor"].send_to(host, port, **opts).result()
        err = dst.received().result()
        if err is not None:
            raise RuntimeError("migration of %r to %s failed: %s" % (name, worker, err))
        v["console"] += v["actor"].console().result()     # the source's output, to the moment it stopped
        v["actor"] = dst
        v["worker"] = worker
        return figures

    def stop(self, name: str) -> None:
        v = self.vms.pop(name)
        v["actor"].close().result()
