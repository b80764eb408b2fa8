#!/usr/bin/env python3
"""BusyBox's own testsuite, natively and with the whole tree under emu.

Debian's static busybox (`busybox-static`, installed with apt-get when
/bin/busybox is missing) is the program under test; the testsuite comes from
Debian's busybox source package (`apt-get source`, after adding a deb-src
entry for the running Debian release when there is none), unpacked in a
cache directory and never copied into this repository. `.config` is the one
Debian builds busybox-static with (debian/config/pkg/static), so the
testsuite skips what that build leaves out.

The suite runs twice, in fresh copies of the testsuite directory: natively
(`busybox sh runtest`) and as `emu run /bin/busybox sh runtest`, where the
shell, every applet and every child process are emulated. Each prints one
line per test (PASS/FAIL/SKIPPED/UNTESTED); this script prints the totals,
the wall times, and every test whose result differs.

    python perf/busybox_testsuite.py                  # the whole suite
    python perf/busybox_testsuite.py --applets "diff mkfifo taskset"
    python perf/busybox_testsuite.py --emu-only       # skip the native run

Exit status: 0 when every test that passes natively passes under emu, 1 when
one does not, 2 when the suite cannot be set up (the reason on stderr).
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

CACHE = os.path.join(os.path.expanduser("~"), ".cache", "emu-busybox")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC_LIST = "/etc/apt/sources.list.d/emu-deb-src.sources"
RESULT = re.compile(r"^(PASS|FAIL|SKIPPED|UNTESTED): (.*)$")


class SetupError(Exception):
    pass


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


def busybox_binary() -> str:
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(path):
            return os.path.realpath(path)
    r = subprocess.run(_sudo() + ["apt-get", "install", "-y", "-qq", "busybox-static"], capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists("/bin/busybox"):
        raise SetupError("cannot install busybox-static: %s" % (r.stderr.strip().splitlines() or ["?"])[-1])
    return os.path.realpath("/bin/busybox")


def _codename() -> str:
    with open("/etc/os-release") as f:
        for line in f:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    raise SetupError("not a Debian system (no VERSION_CODENAME in /etc/os-release)")


def _has_deb_src() -> bool:
    for path in glob.glob("/etc/apt/sources.list.d/*.sources") + glob.glob("/etc/apt/sources.list*"):
        if os.path.isfile(path):
            with open(path, errors="replace") as f:
                text = f.read()
            if re.search(r"^\s*(Types:.*\bdeb-src\b|deb-src\s)", text, re.M):
                return True
    return False


def source_tree() -> str:
    """The unpacked busybox source package (fetched once into CACHE)."""
    found = sorted(d for d in glob.glob(os.path.join(CACHE, "busybox-*")) if os.path.isdir(d))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None or shutil.which("dpkg-source") is None:
        raise SetupError("apt-get source needs apt-get and dpkg-dev (dpkg-source)")
    if not _has_deb_src():
        entry = ("Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\n"
                 "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" % _codename())
        r = subprocess.run(_sudo() + ["tee", SRC_LIST], input=entry, capture_output=True, text=True)
        if r.returncode != 0:
            raise SetupError("cannot add a deb-src entry (%s): %s" % (SRC_LIST, r.stderr.strip()))
        subprocess.run(_sudo() + ["apt-get", "update", "-qq"], capture_output=True)
    os.makedirs(CACHE, exist_ok=True)
    r = subprocess.run(["apt-get", "source", "-qq", "busybox"], cwd=CACHE, capture_output=True, text=True)
    found = sorted(d for d in glob.glob(os.path.join(CACHE, "busybox-*")) if os.path.isdir(d))
    if r.returncode != 0 or not found:
        raise SetupError("apt-get source busybox failed: %s" % (r.stderr.strip().splitlines() or ["?"])[-1])
    return found[-1]


def prepare(src: str, busybox: str, where: str) -> str:
    """A fresh copy of the testsuite with a bindir (busybox and its .config)
    next to it, as runtest expects; returns the testsuite directory."""
    os.makedirs(where)
    shutil.copytree(os.path.join(src, "testsuite"), os.path.join(where, "testsuite"), symlinks=True)
    shutil.copy2(busybox, os.path.join(where, "busybox"))
    shutil.copy2(os.path.join(src, "debian", "config", "pkg", "static"), os.path.join(where, ".config"))
    # the shell is busybox's own, not the host's /bin/sh (dash's echo has no -e):
    # `sh` on runtest's PATH, and the scripts' #!/bin/sh lines name it
    os.symlink("busybox", os.path.join(where, "sh"))
    shebang = ("#!%s sh\n" % os.path.join(where, "busybox")).encode()
    for path in glob.glob(os.path.join(where, "testsuite", "**"), recursive=True):
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                head = f.read(10)
            if head.startswith(b"#!/bin/sh\n"):
                with open(path, "rb") as f:
                    body = f.read()[len(b"#!/bin/sh\n"):]
                with open(path, "wb") as f:
                    f.write(shebang + body)
    return os.path.join(where, "testsuite")


def run_suite(tsdir: str, applets: list[str], under_emu: bool, timeout: float) -> tuple[dict, float, str]:
    bindir = os.path.dirname(tsdir)
    shell = [os.path.join(bindir, "busybox"), "sh", "./runtest"] + applets
    env = dict(os.environ, bindir=bindir, LC_ALL="C", PYTHONPATH=ROOT)
    env.pop("VERBOSE", None)
    argv = [sys.executable, "-m", "emu", "run"] + shell if under_emu else shell
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, cwd=tsdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        out, err = r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        out, err = e.stdout or b"", (e.stderr or b"") + b"\nbusybox_testsuite: timed out after %d s\n" % timeout
    wall = time.monotonic() - t0
    results: dict[str, str] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        m = RESULT.match(line)
        if m:
            name = m.group(2)
            while name in results:          # (a few names repeat across applets)
                name += "'"
            results[name] = m.group(1)
    return results, wall, err.decode("utf-8", "replace")


def totals(results: dict) -> str:
    counts = {}
    for v in results.values():
        counts[v] = counts.get(v, 0) + 1
    return " ".join("%s %d" % (k, counts.get(k, 0)) for k in ("PASS", "FAIL", "SKIPPED", "UNTESTED"))


def compare(native: dict, emu: dict) -> list[str]:
    """Tests passing natively that do not pass under emu (and any other difference)."""
    lines = []
    for name in sorted(set(native) | set(emu)):
        a, b = native.get(name, "-"), emu.get(name, "-")
        if a != b:
            lines.append("%-8s native %-8s emu %s" % (b if a == "PASS" else "", a, b) + "  " + name)
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--applets", default="", help="run only these applets' tests (space separated)")
    ap.add_argument("--emu-only", action="store_true", help="do not run the suite natively")
    ap.add_argument("--timeout", type=float, default=7200, help="seconds for each run (default 7200)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args(argv)
    try:
        busybox = busybox_binary()
        src = source_tree()
    except SetupError as e:
        print("busybox_testsuite: %s" % e, file=sys.stderr)
        return 2
    applets = a.applets.split()
    work = tempfile.mkdtemp(prefix="emu-bbts-")
    try:
        native = {}
        if not a.emu_only:
            native, nwall, _ = run_suite(prepare(src, busybox, os.path.join(work, "native")), applets, False, a.timeout)
            print("native: %s  (%.1f s)" % (totals(native), nwall))
        emu, ewall, err = run_suite(prepare(src, busybox, os.path.join(work, "emu")), applets, True, a.timeout)
        print("emu:    %s  (%.1f s)" % (totals(emu), ewall))
        if "Traceback" in err or "timed out" in err or len(emu) < len(native):
            print("the emu run's last words:\n" + err[-3000:], file=sys.stderr)
        if a.emu_only:
            return 0
        diff = compare(native, emu)
        for line in diff:
            print(line)
        lost = [n for n, v in native.items() if v == "PASS" and emu.get(n) != "PASS"]
        print("%d test(s) passing natively fail under emu" % len(lost))
        return 1 if lost or "Traceback" in err else 0
    finally:
        if a.keep:
            print("work directory: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
