"""What emu batch builds on without a cluster: `emu run --max-insns` (the
per-sample instruction limit: the guest dies of SIGXCPU, and its report says
so) and the results store (a run recorded twice is stored once)."""
import json
import os
import subprocess
import sys

from emu.cluster.store import Store, settings_key

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIEVE = os.path.join(ROOT, "guests", "bench", "bin", "sieve-small")


def emu(*args):
    return subprocess.run([sys.executable, "-m", "emu", *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT), stdin=subprocess.DEVNULL)


def test_max_insns_kills_with_sigxcpu(tmp_path):
    full = emu("run", "--stats-file", str(tmp_path / "s.json"), SIEVE)
    n = json.loads((tmp_path / "s.json").read_text())["instructions"]
    assert full.returncode == 0 and n > 200_000
    rep = tmp_path / "r.jsonl"
    cut = emu("run", "--max-insns", "100000", "--report", str(rep), "--stats-file", str(tmp_path / "c.json"), SIEVE)
    assert cut.returncode == 128 + 24 and "signal 24" in cut.stderr
    assert json.loads((tmp_path / "c.json").read_text())["instructions"] == 100_000
    last = json.loads(rep.read_text().splitlines()[-1])
    assert last["event"] == "exit" and last["signal"] == 24 and last["status"] is None
    # a limit the program stays under changes nothing
    same = emu("run", "--max-insns", str(n), SIEVE)
    assert same.returncode == 0 and same.stdout == full.stdout
    bad = emu("run", "--max-insns", "0", SIEVE)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("emu run: error")


def test_store_records_a_run_once(tmp_path):
    s = Store(str(tmp_path / "b.db"))
    settings = {"profile": "stealth", "time": "virtual"}
    key = settings_key(settings)
    assert key == settings_key(dict(reversed(list(settings.items()))))
    assert key != settings_key(dict(settings, time="host"))
    s.add_sample("ab" * 32, "/x/a", 10)
    result = {"state": "done", "exit_status": 0, "events": [{"pid": 1000, "event": "exit", "status": 0}]}
    assert s.add_run("ab" * 32, key, settings, result, "clean", [])
    assert not s.add_run("ab" * 32, key, settings, dict(result, exit_status=1), "crashed", [])
    assert s.done("ab" * 32, key) and not s.done("ab" * 32, settings_key({}))
    (run,) = s.runs("ab" * 32)
    assert run["exit_status"] == 0 and run["verdict"] == "clean" and run["events"] == result["events"]
    assert s.find("abab") == ["ab" * 32] and s.find("zz") == [] and s.find("cd") == []
    assert s.counts() == {"runs": 1, "samples": 1, "states": {"done": 1}, "verdicts": {"clean": 1}}
    s.close()
