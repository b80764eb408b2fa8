"""Fetch and unpack the unicorn 2.1.4 source distribution from PyPI (with
pip, into a cache directory); shared by perf/unicorn_regress.py and
tools/gen_unicorn_consts.py."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import tarfile

VERSION = "2.1.4"


class FetchError(Exception):
    """The sdist could not be downloaded (no network, no pip)."""


def sdist_dir(cache: str) -> str:
    """The unpacked unicorn-VERSION directory under cache, fetched on first use."""
    os.makedirs(cache, exist_ok=True)
    root = os.path.join(cache, "unicorn-%s" % VERSION)
    if os.path.isdir(os.path.join(root, "src", "tests", "regress")):
        return root
    tars = glob.glob(os.path.join(cache, "unicorn-%s.tar.gz" % VERSION))
    if not tars:
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "unicorn==%s" % VERSION, "-d", cache]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise FetchError("pip download unicorn==%s timed out" % VERSION) from None
        tars = glob.glob(os.path.join(cache, "unicorn-%s.tar.gz" % VERSION))
        if not tars:
            raise FetchError("pip download unicorn==%s failed: %s" % (VERSION, (r.stderr or r.stdout).strip().splitlines()[-1:]))
    with tarfile.open(tars[0]) as t:
        members = [m for m in t.getmembers()
                   if m.name.startswith("unicorn-%s/src/tests/regress/" % VERSION)
                   or m.name.startswith("unicorn-%s/src/include/unicorn/" % VERSION)]
        for m in members:
            if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in m.name.split("/"):
                continue
            if hasattr(tarfile, "data_filter"):
                t.extract(m, cache, filter="data")      # (Python 3.12+: no links or odd modes)
            else:
                t.extract(m, cache)
    return root
