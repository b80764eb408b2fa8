"""The batch results database (SQLite, one file): what `emu batch` analysed
and what each sample did.

Tables:
- samples: one row per distinct file content (sha256), with a path it was
  seen at and its size;
- runs: one analysis of a sample under one set of settings (profile, time
  mode, limits...: `settings_key`, a hash of them). UNIQUE(sha256,
  settings_key) is what makes a re-run skip finished samples and what keeps
  a result from being counted twice, even if a retried task delivered it
  again;
- events: the run's behaviour report (emu/services/report.py), one row per
  JSON line, in order;
- verdicts: the run's verdict and the reasons for it (batch.verdict).

Only the client process writes (workers return results to it), so SQLite's
one-writer rule costs nothing.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL REFERENCES samples(sha256),
    settings_key TEXT NOT NULL, settings TEXT NOT NULL,
    state TEXT NOT NULL,            -- done | failed | killed_workers
    exit_status INTEGER, wall_s REAL, worker TEXT, sandbox TEXT,
    stdout_sha256 TEXT, stdout_bytes INTEGER, stderr TEXT, error TEXT,
    finished REAL NOT NULL,
    UNIQUE (sha256, settings_key));
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,
    pid INTEGER, event TEXT, data TEXT NOT NULL, PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS verdicts (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id), verdict TEXT NOT NULL, reasons TEXT NOT NULL);
"""


class StoreError(Exception):
    """The database cannot be opened or is not an emu batch database."""


def settings_key(settings: dict) -> str:
    """The hash that identifies one set of analysis settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Store:
    def __init__(self, path: str):
        try:
            self.db = sqlite3.connect(path)
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StoreError("%s: %s" % (path, e)) from None
        self.path = path

    def close(self) -> None:
        self.db.close()

    # ---- writing ----
    def add_sample(self, sha: str, path: str, size: int) -> None:
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO samples VALUES (?, ?, ?)", (sha, path, size))

    def done(self, sha: str, key: str) -> bool:
        """A run of this sample with these settings is already recorded."""
        return self.db.execute("SELECT 1 FROM runs WHERE sha256=? AND settings_key=?", (sha, key)).fetchone() \
            is not None

    def add_run(self, sha: str, key: str, settings: dict, result: dict, verdict: str, reasons: list) -> bool:
        """Record one finished analysis; False if the same run was already
        recorded (then nothing changes: a result is never counted twice)."""
        import time
        with self.db:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO runs (sha256, settings_key, settings, state, exit_status, wall_s, worker,"
                " sandbox, stdout_sha256, stdout_bytes, stderr, error, finished)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sha, key, json.dumps(settings, sort_keys=True), result["state"], result.get("exit_status"),
                 result.get("wall_s"), result.get("worker"), result.get("sandbox"), result.get("stdout_sha256"),
                 result.get("stdout_bytes"), result.get("stderr"), result.get("error"), time.time()))
            if cur.rowcount == 0:
                return False
            run_id = cur.lastrowid
            self.db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                                [(run_id, i, ev.get("pid"), ev.get("event"), json.dumps(ev, sort_keys=True))
                                 for i, ev in enumerate(result.get("events", ()))])
            self.db.execute("INSERT INTO verdicts VALUES (?, ?, ?)", (run_id, verdict, json.dumps(reasons)))
        return True

    # ---- reading ----
    def find(self, prefix: str) -> list[str]:
        """Sample hashes that start with `prefix` (a full or abbreviated sha256)."""
        prefix = prefix.lower()
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return []
        return [r[0] for r in self.db.execute("SELECT sha256 FROM samples WHERE sha256 >= ? AND sha256 < ?"
                                              " ORDER BY sha256", (prefix, prefix + "g"))]

    def runs(self, sha: str) -> list[dict]:
        """Every recorded run of a sample, with its verdict and report events."""
        out = []
        cols = ("id", "settings", "state", "exit_status", "wall_s", "worker", "sandbox", "stdout_sha256",
                "stdout_bytes", "stderr", "error")
        for row in self.db.execute("SELECT %s FROM runs WHERE sha256=? ORDER BY id" % ", ".join(cols), (sha,)):
            r = dict(zip(cols, row))
            r["settings"] = json.loads(r["settings"])
            v = self.db.execute("SELECT verdict, reasons FROM verdicts WHERE run_id=?", (r["id"],)).fetchone()
            r["verdict"], r["reasons"] = (v[0], json.loads(v[1])) if v else (None, [])
            r["events"] = self.events(r["id"])
            out.append(r)
        return out

    def events(self, run_id: int) -> list[dict]:
        return [json.loads(d) for (d,) in self.db.execute("SELECT data FROM events WHERE run_id=? ORDER BY seq",
                                                          (run_id,))]

    def counts(self) -> dict:
        """Runs by state and by verdict, over the whole database."""
        states = dict(self.db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state"))
        verdicts = dict(self.db.execute("SELECT verdict, COUNT(*) FROM verdicts GROUP BY verdict"))
        return {"runs": sum(states.values()), "states": states, "verdicts": verdicts,
                "samples": self.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]}
