"""emu at fleet scale on Dask distributed: many sandbox analyses (batch.py),
distributed snapshot fuzzing (fuzz.py) and microVMs placed on and migrated
between workers (fleet.py), with results kept in SQLite (store.py). Every
part reaches the cluster through client.py: an embedded LocalCluster by
default, or an existing scheduler (`--cluster tcp://HOST:PORT`).

Dask is an optional dependency: `pip install 'emu[cluster]'`."""
