"""Services built on the emulator: benchmarks, behaviour reports, the scheduler, VM snapshots."""
