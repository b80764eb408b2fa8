import json
import os
import sys

# tests import their shared helpers (native.py, difftest.py) by name
sys.path.insert(0, os.path.dirname(__file__))

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
