"""guests/antivm/families: the detector families beyond the published
checks (coherence of CPUID with the OS's files, exception semantics, /proc
leaks). Under --profile stealth every check the machine template and the
personality cover reports clean; under --profile transparent the
coherence family sees the hypervisor. Natively (the oracle) every check is
clean on Linux."""
import os
import re
import subprocess
import sys

import emu as _emu_pkg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = os.path.join(ROOT, "guests", "antivm", "families")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
# what emu does not provide yet (not the stealth machine's to fake: the
# personality's): the rseq system call, a vDSO, /proc/self/smaps and a
# /proc/self/auxv of the guest's own
NOT_YET = {"exception.rseq", "proc.vdso", "proc.smaps", "proc.auxv"}
# emu's parent here is pytest's Python: the check is the harness's, not emu's
HARNESS = {"proc.parent_cmdline"}


def emu_run(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = EMU_PATH + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(ROOT), env=env)


def results(out: str) -> dict:
    res = dict(re.findall(r"^([a-z_]+\.[a-z_0-9]+): (clean|DETECTED)", out, re.M))
    assert len(res) >= 20 and {k.split(".")[0] for k in res} == {"coherence", "exception", "proc"}, out
    return res


def test_native_oracle_is_clean():
    r = subprocess.run([FAMILIES], capture_output=True, text=True, timeout=30)
    res = results(r.stdout)
    # (a detector that flags the real machine would be worthless; the parent
    # here is pytest's Python, so that check is not the oracle's)
    assert all(v == "clean" for k, v in res.items() if k not in HARNESS), r.stdout


def test_stealth_families_are_clean():
    r = emu_run("--profile", "stealth", FAMILIES)
    res = results(r.stdout)
    dirty = {k for k, v in res.items() if v == "DETECTED"}
    assert dirty <= NOT_YET | HARNESS, r.stdout
    assert all(res[k] == "clean" for k in res if k.startswith("coherence.")), r.stdout
    assert r.returncode == len(dirty)
    assert "exception.single_step: clean" in r.stdout and "exception.int80: clean" in r.stdout


def test_transparent_coherence_is_seen():
    r = emu_run("--profile", "transparent", "--time", "virtual", FAMILIES)
    res = results(r.stdout)
    # no cache leaf, and a kernel release of emu's own that /proc/version does not carry
    assert res["coherence.caches"] == "DETECTED" and res["coherence.kernel"] == "DETECTED", r.stdout
    # the exception and /proc families test the personality, the same under both profiles
    for k, v in res.items():
        if not k.startswith("coherence.") and k not in NOT_YET | HARNESS:
            assert v == "clean", (k, r.stdout)
