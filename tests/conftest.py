import json
import os
import sys

# tests import their shared helpers (native.py, difftest.py) by name
sys.path.insert(0, os.path.dirname(__file__))


def _installed_emu_over_unbuilt_checkout() -> None:
    """`python -m pytest` in a checkout puts the checkout first on sys.path,
    so `import emu` finds ./emu: without a core built in place (setup.py
    build_ext --inplace) the installed package is the one to test, and the
    checkout leaves sys.path (every `emu` subprocess of the tests runs from
    outside the tree for the same reason)."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = os.path.join(checkout, "emu")
    if not os.path.isdir(src) or any(f.startswith("_core.") and f.endswith((".so", ".pyd"))
                                     for f in os.listdir(src)):
        return
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != checkout]
    for name in [m for m in sys.modules if m == "emu" or m.startswith("emu.")]:
        del sys.modules[name]


_installed_emu_over_unbuilt_checkout()


def _default_interrupt_signals() -> None:
    """A test run started as a background job inherits SIGINT (and under
    nohup SIGHUP) ignored, and exec passes SIG_IGN on to every program the
    tests start, emu's guests included (emu keeps it, as Linux does): the
    tests that interrupt a guest need the default action whatever started pytest."""
    import signal
    for sig, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGHUP, signal.SIG_DFL)):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, handler)


_default_interrupt_signals()
# a system-call argument a handler does not range-check raises (in tests and
# their `emu` subprocesses) instead of becoming EINVAL (emu/linux/syscalls.py)
os.environ.setdefault("EMU_STRICT", "1")

_COVERAGE_DIR = os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "emu-forms")
COVERAGE_LIST = os.path.join(_COVERAGE_DIR, "forms.txt")


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):
        os.makedirs(_COVERAGE_DIR, exist_ok=True)
        for f in os.listdir(_COVERAGE_DIR):
            os.remove(os.path.join(_COVERAGE_DIR, f))


def pytest_sessionfinish(session):
    """Each process (xdist worker or plain run) saves the instruction forms
    its differential tests checked (difftest.covered)."""
    difftest = sys.modules.get("difftest")
    if difftest is None or not difftest.COVERED:
        return
    os.makedirs(_COVERAGE_DIR, exist_ok=True)
    name = getattr(session.config, "workerinput", {}).get("workerid", "main")
    with open(os.path.join(_COVERAGE_DIR, "part-%s.json" % name), "w") as f:
        json.dump(difftest.COVERED, f)


def pytest_terminal_summary(terminalreporter):
    """The list of forms covered, so coverage can be read off: a summary here,
    every form with its case count in .pytest_cache/emu-forms/forms.txt."""
    if not os.path.isdir(_COVERAGE_DIR):
        return
    forms: dict[str, int] = {}
    for fn in os.listdir(_COVERAGE_DIR):
        if fn.startswith("part-"):
            with open(os.path.join(_COVERAGE_DIR, fn)) as f:
                for k, v in json.load(f).items():
                    forms[k] = forms.get(k, 0) + v
    if not forms:
        return
    with open(COVERAGE_LIST, "w") as f:
        for k in sorted(forms):
            f.write("%8d  %s\n" % (forms[k], k))
    cases = sum(forms.values())
    terminalreporter.write_line("differential coverage: %d instruction forms, %d cases against the host CPU; "
                                "fewest cases for one form: %d; list: %s"
                                % (len(forms), cases, min(forms.values()), os.path.normpath(COVERAGE_LIST)))


# ---- execution tiers: one shared parametrisation ----
# Every test runs once per tier setting this host has (the interpreter alone,
# the JIT compiling every block at once, and "auto" with its threshold); the
# fixture sets the default tier for machines the test creates, and EMU_TIER
# carries it to `emu` subprocesses.
import pytest  # noqa: E402

import emu  # noqa: E402

TIERS = tuple(emu.available_tiers()) if "jit" in emu.available_tiers() else ("interp",)


@pytest.fixture(autouse=True, params=TIERS)
def tier(request, monkeypatch):
    monkeypatch.setenv("EMU_TIER", request.param)
    previous = emu.get_default_tier()
    emu.set_default_tier(request.param)
    yield request.param
    emu.set_default_tier(previous)


# ---- emu.cluster: one LocalCluster of 2 worker processes for the test session ----
@pytest.fixture(scope="session")
def _dask_session_cluster():
    pytest.importorskip("distributed", reason="emu.cluster needs Dask distributed (pip install 'emu[cluster]')")
    from emu.cluster.client import connect
    holder = [connect(workers=2, retries=3)]
    yield holder
    holder[0].close()


@pytest.fixture
def dask_cluster(_dask_session_cluster):
    # both workers up (a test kills one; its nanny starts it again). The
    # cluster lives in a test worker process that runs other tests too: if
    # its workers did not come back, start a fresh cluster
    from emu.cluster.client import connect
    try:
        _dask_session_cluster[0].client.wait_for_workers(2, timeout=15)
    except Exception:
        try:
            _dask_session_cluster[0].close()
        except Exception:
            pass
        _dask_session_cluster[0] = connect(workers=2, retries=3)
        _dask_session_cluster[0].client.wait_for_workers(2, timeout=60)
    return _dask_session_cluster[0]
