"""Run Unicorn's own Python regression tests against emu.unicorn.

    python perf/unicorn_regress.py [--cache DIR] [--real] [-k SUBSTRING] [--json FILE]

Fetches the unicorn 2.1.4 sdist from PyPI with `pip download --no-binary
:all: --no-deps` into the cache directory (default ~/.cache/emu-unicorn),
takes the x86 and architecture-independent tests of src/tests/regress/, and
runs each file in its own process with `emu.unicorn.install()` done first, so
their `from unicorn import *` gets emu. Prints one line per test method
(pass, FAIL, ERROR, skip, known) and a summary; exits 0 when every test
passed but the known ones: those where Unicorn differs from the
architecture (KNOWN, with the reason; docs/unicorn.md).
--real runs them on the installed Unicorn instead (the reference).
Tests of other architectures (ARM, MIPS, SPARC) are left out; in files that
mix architectures, those methods are reported as "other-arch".
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from unicorn_sdist import FetchError, sdist_dir  # noqa: E402

# tests that fail on emu.unicorn because Unicorn there differs from the
# architecture (docs/unicorn.md lists them): reported as "known", not FAIL
NONCANONICAL = ("runs code at a non-canonical address (%s); an x86-64 CPU faults there "
                "(SDM Vol. 1 3.3.7.1), Unicorn's flat address space does not")
KNOWN = {
    "bad_ram.BadRam.runTest": "RETF pops a null CS selector: #GP(0) on x86 (SDM RET, far return), "
                              "UC_ERR_EXCEPTION here; Unicorn reports a read of unmapped memory",
    "core_ctl.TestCtl.test_tlb_mode": NONCANONICAL % "0x0010000000000000",
    "high_mem.TestMem.test_virt_high_mapping": NONCANONICAL % "0x0010000000000000 and up",
    "translator_buffer.TranslatorBuffer.runTest": NONCANONICAL % "0x000fffff816a9000",
    "fpu_ip.FpuIP.test_32": "FNSTENV: the host CPU stores 0xFFFF in the reserved upper halves and "
                            "tag word 0xFFFF (all empty); Unicorn stores 0 and 0x5555",
    "fpu_ip.FpuIP.test_64": "FNSTENV: the host CPU stores 0xFFFF in the reserved upper halves and "
                            "tag word 0xFFFF (all empty); Unicorn stores 0 and 0x5555",
    "fpu_mem_write.FpuWrite.runTest": "FSTCW stores the x87 control word, 0x037F (the FNINIT state emu "
                                      "starts in, as a Linux process does); Unicorn starts with 0",
}

OTHER_ARCH = re.compile(r"UC_ARCH_(ARM|ARM64|MIPS|SPARC|PPC|M68K|RISCV|S390X|TRICORE)\b")

# runs inside the child: one test file, results as JSON on the last line
CHILD = r"""
import importlib.util, inspect, json, re, sys, unittest
real = sys.argv[2] == "real"
if not real:
    import emu.unicorn
    emu.unicorn.install()
other = re.compile(r"UC_ARCH_(ARM|ARM64|MIPS|SPARC|PPC|M68K|RISCV|S390X|TRICORE)\b")


class R(unittest.TestResult):
    def __init__(self, out):
        super().__init__()
        self.out = out
    def addSuccess(self, t): self.out[t.id()] = ["pass", ""]
    def addFailure(self, t, err): self.out[t.id()] = ["FAIL", self._exc_info_to_string(err, t)[-1500:]]
    def addError(self, t, err): self.out[t.id()] = ["ERROR", self._exc_info_to_string(err, t)[-1500:]]
    def addSkip(self, t, why): self.out[t.id()] = ["skip", why]
    def addExpectedFailure(self, t, err): self.out[t.id()] = ["pass", "expected failure"]
    def addUnexpectedSuccess(self, t): self.out[t.id()] = ["FAIL", "unexpected success"]


def flat(s):
    for x in s:
        if isinstance(x, unittest.TestSuite):
            yield from flat(x)
        else:
            yield x


def run(path):
    out = {}
    spec = importlib.util.spec_from_file_location("regress_case", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except ModuleNotFoundError as e:
        if e.name and not e.name.startswith("unicorn"):
            # a test that also needs a third-party module (capstone) this host lacks
            return {"<import>": ["skip", "needs %s, which is not installed" % e.name]}
        return {"<import>": ["ERROR", "%s: %s" % (type(e).__name__, e)]}
    except Exception as e:
        return {"<import>": ["ERROR", "%s: %s" % (type(e).__name__, e)]}
    for t in flat(unittest.defaultTestLoader.loadTestsFromModule(mod)):
        try:
            src = inspect.getsource(getattr(t, t._testMethodName))
        except Exception:
            src = ""
        if other.search(src):
            out[t.id()] = ["other-arch", ""]
            continue
        t.run(R(out))
        out.setdefault(t.id(), ["pass", ""])
    return out


for path in sys.argv[1].split(","):
    print("\n@@RESULT@@" + json.dumps(run(path)), flush=True)
"""


def select(regress_dir: str) -> list[str]:
    """The test files to run: x86 or no architecture at all."""
    out = []
    for name in sorted(os.listdir(regress_dir)):
        if not name.endswith(".py") or name == "regress.py":
            continue
        with open(os.path.join(regress_dir, name)) as f:
            src = f.read()
        if "UC_ARCH_X86" in src or not OTHER_ARCH.search(src):
            out.append(name)
    return out


def run_files(regress_dir: str, names: list[str], real: bool, timeout: float) -> dict[str, dict]:
    """Several files in one process (cheaper; no isolation): name -> results."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([regress_dir, os.path.join(HERE, "..")] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    p = subprocess.run([sys.executable, "-c", CHILD, ",".join(os.path.join(regress_dir, n) for n in names),
                        "real" if real else "emu"], cwd=regress_dir, env=env, capture_output=True, text=True,
                       timeout=timeout)
    parts = [json.loads(chunk.strip().splitlines()[0]) for chunk in p.stdout.split("@@RESULT@@")[1:]]
    out = {}
    for i, name in enumerate(names):
        if i < len(parts):
            out[name] = {k.replace("regress_case.", name[:-3] + "."): v for k, v in parts[i].items()}
        else:
            tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
            out[name] = {name: ["ERROR", "exit status %d: %s" % (p.returncode, " | ".join(tail))]}
    return out


def run_file(regress_dir: str, name: str, real: bool, timeout: float) -> tuple[dict, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([regress_dir, os.path.join(HERE, "..")] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", CHILD, os.path.join(regress_dir, name), "real" if real else "emu"],
                           cwd=regress_dir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {name: ["ERROR", "timed out after %gs" % timeout]}, time.perf_counter() - t0
    dt = time.perf_counter() - t0
    marker = p.stdout.rfind("@@RESULT@@")
    if marker < 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {name: ["ERROR", "exit status %d: %s" % (p.returncode, " | ".join(tail))]}, dt
    return json.loads(p.stdout[marker + len("@@RESULT@@"):].strip().splitlines()[0]), dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run Unicorn 2.1.4's regression tests on emu.unicorn")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/emu-unicorn"))
    ap.add_argument("--real", action="store_true", help="run on the installed Unicorn instead")
    ap.add_argument("-k", default="", help="only files whose name contains this")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per file")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    try:
        root = sdist_dir(a.cache)
    except FetchError as e:
        print("unicorn_regress: %s" % e, file=sys.stderr)
        return 2
    rdir = os.path.join(root, "src", "tests", "regress")
    results = {}
    for name in select(rdir):
        if a.k not in name:
            continue
        res, dt = run_file(rdir, name, a.real, a.timeout)
        for tid, (status, detail) in sorted(res.items()):
            short = tid.replace("regress_case.", name[:-3] + ".")
            if short in KNOWN and status in ("FAIL", "ERROR"):
                status, detail = "known", KNOWN[short]
            results[short] = (status, detail)
            line = "%-10s %s" % (status, short)
            if status in ("FAIL", "ERROR", "known") and detail.strip():
                line += "  -- " + detail.strip().splitlines()[-1][:200]
            print(line, flush=True)
    counts = {}
    for status, _ in results.values():
        counts[status] = counts.get(status, 0) + 1
    print("summary: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
    return 0 if not counts.get("FAIL") and not counts.get("ERROR") else 1


if __name__ == "__main__":
    sys.exit(main())
