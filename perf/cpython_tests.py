#!/usr/bin/env python3
"""CPython's own regression tests, natively and under `emu run`.

Runs each chosen module of the host's test package (Debian's
libpython3.11-testsuite: /usr/lib/python3.11/test) with `PYTHON -m test -v
MODULE`, once natively and once as `emu run PYTHON -m test -v MODULE`, and
prints one line per module: tests run, failures, errors and skips on each
side, wall times, and how many tests ended differently (ok / FAIL / ERROR /
skipped, test by test, from the verbose output). Exit status 0 when every
module ended test by test as natively, 1 otherwise, 2 on bad usage.

    python3 perf/cpython_tests.py                      # the issue's modules
    python3 perf/cpython_tests.py test_fcntl test_select --timeout 300
    python3 perf/cpython_tests.py --markdown --emu-arg=--tier=jit

Each run is a session of its own, killed whole (the emulator's forked
children too) when it passes --timeout; a module that timed out shows
"timeout". --show-diff lists the tests that differ.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODULES = ["test_os", "test_posix", "test_signal", "test_select", "test_selectors", "test_fcntl", "test_mmap",
           "test_threading", "test_subprocess", "test_socket", "test_pty", "test_multiprocessing_forkserver",
           "test_concurrent_futures"]
# "test_name (test.test_os.Class.test_name) ... ok" and its variants
_RESULT = re.compile(r"^(\w+) \(([\w.]+)\)(?: \.\.\.|\n)")
_STATUS = re.compile(r"\.\.\. ?(ok|FAIL|ERROR|skipped|expected failure|unexpected success)\b")
_TAIL = re.compile(r"(?:^|\s)(ok|FAIL|ERROR|skipped|expected failure|unexpected success)(?: .*)?$")
_SUMMARY = re.compile(r"^Ran (\d+) tests? in ([\d.]+)s", re.M)
_COUNTS = re.compile(r"^(OK|FAILED)(?: \(([^)]*)\))?\s*$", re.M)


def run(argv, timeout: float, cwd: str) -> tuple[int | None, str, float]:
    """(status or None on timeout, output, wall seconds)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out:
        pr = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                              start_new_session=True)
        try:
            status = pr.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            try:
                os.killpg(pr.pid, signal.SIGKILL)       # the whole session: forked workers too
            except ProcessLookupError:
                pass
            pr.wait()
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return status, text, time.monotonic() - t0


def parse(text: str) -> dict:
    """Counts from unittest's summary and each test's outcome from -v's lines
    (a test that prints prints its outcome on a later line: the first one
    that ends with an outcome word is its)."""
    tests = {}
    pending = None
    for line in text.splitlines():
        m = _RESULT.match(line)
        if m is not None:
            pending = m.group(2)                      # (3.11 names the method in the dotted name)
            tests[pending] = "?"
            st = _STATUS.search(line)
            if st is not None:
                tests[pending], pending = st.group(1), None
            continue
        if pending is not None:
            st = _TAIL.search(line)
            if st is not None:
                tests[pending], pending = st.group(1), None
    counts = {"ran": 0, "failures": 0, "errors": 0, "skipped": 0}
    for m in _SUMMARY.finditer(text):
        counts["ran"] += int(m.group(1))
    for m in _COUNTS.finditer(text):
        for part in (m.group(2) or "").split(","):
            k, _, v = part.strip().partition("=")
            if k in counts and v.isdigit():
                counts[k] += int(v)
    return {"counts": counts, "tests": tests}


def describe(status, res, secs) -> str:
    if status is None:
        return "timeout after %.0f s" % secs
    c = res["counts"]
    return "%d run, %d failed, %d errors, %d skipped (status %d, %.1f s)" % (
        c["ran"], c["failures"], c["errors"], c["skipped"], status, secs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help="test modules (default: %s)" % " ".join(MODULES))
    ap.add_argument("--python", default="/usr/bin/python3.11", help="the Python whose tests run (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per module and side (default %(default)s)")
    ap.add_argument("--emu-arg", action="append", default=[], help="an option for `emu run` (repeatable)")
    ap.add_argument("--native-only", action="store_true", help="skip the emu runs")
    ap.add_argument("--show-diff", action="store_true", help="list the tests that ended differently")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table")
    a = ap.parse_args(argv)
    if not os.path.exists(a.python):
        print("cpython_tests: %s: no such Python" % a.python, file=sys.stderr)
        return 2
    mods = a.modules or MODULES
    bad = [m for m in mods if not re.fullmatch(r"test_\w+", m)]
    if bad:
        print("cpython_tests: not a test module name: %s" % bad[0], file=sys.stderr)
        return 2
    env_emu = [sys.executable, "-m", "emu", "run", *a.emu_arg]
    os.environ["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    work = tempfile.mkdtemp(prefix="emu-cpython-tests-")
    rows, all_same = [], True
    if a.markdown:
        print("| module | native | emu | tests ending differently |")
        print("|---|---|---|---|")
    for mod in mods:
        cmd = [a.python, "-m", "test", "-v", mod]
        ns, nout, nsecs = run(cmd, a.timeout, work)
        nres = parse(nout)
        if a.native_only:
            print("%-34s native: %s" % (mod, describe(ns, nres, nsecs)), flush=True)
            continue
        es, eout, esecs = run(env_emu + cmd, a.timeout, work)
        eres = parse(eout)
        names = sorted(set(nres["tests"]) | set(eres["tests"]))
        diff = [n for n in names if nres["tests"].get(n) != eres["tests"].get(n)]
        same = es is not None and not diff and es == ns
        all_same &= same
        rows.append((mod, ns, nres, nsecs, es, eres, esecs, diff))
        if a.markdown:
            print("| %s | %s | %s | %s |" % (mod, describe(ns, nres, nsecs), describe(es, eres, esecs),
                                            "none" if same else "%d of %d" % (len(diff), len(names))), flush=True)
        else:
            print("%-34s native: %s\n%-34s emu:    %s; %s" % (
                mod, describe(ns, nres, nsecs), "", describe(es, eres, esecs),
                "same test by test" if same else "%d of %d tests differ" % (len(diff), len(names))), flush=True)
        if a.show_diff:
            for n in diff[:40]:
                print("    %s: native %s, emu %s" % (n, nres["tests"].get(n, "-"), eres["tests"].get(n, "-")))
    return 0 if all_same else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
