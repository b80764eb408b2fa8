"""The sandbox's behaviour report (emu run --report, emu/services/report.py):
every process of the tree reports its files, processes, network attempts,
faults, exit and CPUID/TSC probes; the report changes nothing the guest sees."""
import json
import os

from test_cli import emu, guest
from test_sandbox import ESCAPE, setup


def events(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_process_tree(tmp_path):
    rep = str(tmp_path / "r.jsonl")
    plain = emu("run", guest("linux", "bin", "fork_pipe.glibc"))
    r = emu("run", "--report", rep, guest("linux", "bin", "fork_pipe.glibc"))
    assert r.returncode == plain.returncode == 0 and r.stdout == plain.stdout
    ev = events(rep)
    root = ev[-1]
    assert root["event"] == "exit" and root["status"] == 0
    kids = [e["child"] for e in ev if e["event"] == "proc" and e["op"] == "clone" and e["pid"] == root["pid"]]
    assert len(kids) == 3
    exits = {e["pid"]: e for e in ev if e["event"] == "exit"}
    assert set(exits) == set(kids) | {root["pid"]}
    assert [(exits[k]["status"], exits[k]["signal"]) for k in kids] == [(5, None), (7, None), (None, 11)]
    execs = [e for e in ev if e["event"] == "exec"]
    assert len(execs) == 1 and execs[0]["pid"] == kids[1] and execs[0]["argv"][1:] == ["child-exec", "hello"]
    faults = [e for e in ev if e["event"] == "fault"]
    assert len(faults) == 1 and faults[0]["pid"] == kids[2] and faults[0]["vector"] == 14
    assert root["syscalls"]["clone"] == 3 and root["syscalls"]["wait4"] >= 3
    assert "0x1" in root["cpuid_leaves"] and "0x7/0x0" in root["cpuid_leaves"]   # glibc's start-up probes


def test_anti_vm_probes_are_seen_not_shown(tmp_path):
    rep = str(tmp_path / "r.jsonl")
    prog = guest("antivm", "antivm")
    args = ("run", "--profile", "stealth", "--time", "virtual", "--seed", "1")
    plain = emu(*args, prog)
    r = emu(*args[:1], "--report", rep, *args[1:], prog)
    assert r.stdout == plain.stdout and "DETECTED" not in r.stdout
    ev = events(rep)
    opened = {e["path"] for e in ev if e["event"] == "open"}
    assert "/proc/cpuinfo" in opened and "/sys/class/dmi/id/sys_vendor" in opened
    end = ev[-1]
    assert end["event"] == "exit" and "0x40000000" in end["cpuid_leaves"] and end["rdtsc"] >= 1000


def test_sandbox_escapes_are_reported(tmp_path):
    box, outside, _ = setup(tmp_path)
    rep = str(tmp_path / "r.jsonl")
    r = emu("run", "--sandbox", str(box), "--report", rep, ESCAPE % "glibc", str(box), str(outside), "-",
            cwd=tmp_path)
    assert r.returncode == 0 and "ESCAPED" not in r.stdout
    ev = events(rep)
    writes = [e for e in ev if e["event"] == "open" and e["access"] != "r"]
    assert any(e["path"] == str(outside) and e["result"] < 0 for e in writes)
    assert any(e["path"].startswith(str(box)) and e["result"] >= 0 for e in writes)
    socks = [e for e in ev if e["event"] == "net" and e["op"] == "socket"]
    assert socks and all(e["result"] < 0 for e in socks)
    assert outside.read_text() == "keep\n"


def test_report_file_errors(tmp_path):
    r = emu("run", "--report", str(tmp_path / "no" / "such" / "dir" / "r.jsonl"), guest("hello", "hello"))
    assert r.returncode == 2 and "--report" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "no")
