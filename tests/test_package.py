"""A clean package: a wheel built from an export of the repository (no .git)
holds every subpackage, the type information and the licence, and every
module imports from it; `python -m pytest` works from such a tree; the
core's type stub names the core's whole public API."""
import ast
import enum
import inspect
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

import emu
from emu import _core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIT = shutil.which("git")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(export tree, wheel path, installed tree): the wheel is built once per
    session from `git archive HEAD`, without the compiled core (EMU_NO_CORE:
    compiling it is two minutes; the Python side is what packaging decides),
    and unpacked with this test run's compiled core beside it."""
    if GIT is None or not os.path.isdir(os.path.join(ROOT, ".git")) and not os.path.isfile(os.path.join(ROOT, ".git")):
        pytest.skip("needs git and a git checkout to export the tree from")
    base = tmp_path_factory.mktemp("package")
    export = base / "export"
    export.mkdir()
    archive = subprocess.run([GIT, "-C", ROOT, "archive", "--format=tar", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(export)], input=archive.stdout, check=True)
    assert not (export / ".git").exists()
    wheels = base / "wheels"
    env = dict(os.environ, EMU_NO_CORE="1")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(export)],
                       capture_output=True, text=True, env=env, cwd=str(base), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = wheels.glob("emu-*.whl")
    site = base / "site"
    with zipfile.ZipFile(whl) as z:
        z.extractall(site)
    core = _core.__file__
    shutil.copy(core, site / "emu" / os.path.basename(core))
    return export, whl, site


def test_wheel_holds_every_subpackage(built):
    export, whl, _ = built
    names = set(zipfile.ZipFile(whl).namelist())
    want = set()
    for dirpath, _dirs, files in os.walk(export / "emu"):
        for f in files:
            if f.endswith((".py", ".pyi", ".pxi", ".pxd", ".pyx")) or f == "py.typed":
                want.add(os.path.relpath(os.path.join(dirpath, f), export).replace(os.sep, "/"))
    assert {"emu/linux/process.py", "emu/vm/vmm.py", "emu/hypervisor/policy.py", "emu/services/report.py",
            "emu/vm/virtio/__init__.py", "emu/py.typed", "emu/_core.pyi", "emu/gdbstub.py"} <= want
    assert want - names == set()
    assert any(n.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in n for n in names)


def test_every_module_imports_from_the_wheel(built, tmp_path):
    _, _, site = built
    code = ("import importlib, pkgutil, emu\n"
            "assert emu.__file__.startswith(%r), emu.__file__\n"
            "names = [m.name for m in pkgutil.walk_packages(emu.__path__, 'emu.') if m.name != 'emu.__main__']\n"
            "for n in names: importlib.import_module(n)\n"
            "print(len(names))\n") % str(site)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=str(site)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout) > 60


def test_python_m_pytest_in_a_tree_without_a_built_core(built):
    """In the exported tree (./emu has no compiled core) `python -m pytest`
    collects against the installed package instead of failing to import."""
    export, _, site = built
    assert not any(f.startswith("_core.") and f.endswith(".so") for f in os.listdir(export / "emu"))
    # -S: no site processing, so no editable install of this checkout leaks
    # in; the wheel's tree and pytest's own directory are the import path
    libs = os.path.dirname(os.path.dirname(pytest.__file__))
    r = subprocess.run([sys.executable, "-S", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                        "tests/test_api.py", "tests/test_hooks.py"],
                       capture_output=True, text=True, timeout=300, cwd=str(export),
                       env=dict(os.environ, PYTHONPATH=str(site) + os.pathsep + libs))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " collected" in r.stdout or "tests collected" in r.stdout


def test_core_stub_names_the_public_api():
    with open(os.path.join(os.path.dirname(emu.__file__), "_core.pyi")) as f:
        tree = ast.parse(f.read())
    top = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            top[node.name] = {n.target.id if isinstance(n, ast.AnnAssign) else
                              n.targets[0].id if isinstance(n, ast.Assign) else n.name
                              for n in node.body if isinstance(n, (ast.AnnAssign, ast.Assign, ast.FunctionDef))}
        elif isinstance(node, ast.AnnAssign):
            top[node.target.id] = None
        elif isinstance(node, ast.FunctionDef):
            top[node.name] = None
    public = [n for n in dir(_core) if not n.startswith("_")]
    assert sorted(set(public) - set(top)) == []
    for n in public:
        obj = getattr(_core, n)
        if inspect.isclass(obj):
            attrs = {a for a in vars(obj) if not a.startswith("_")}
            if issubclass(obj, enum.Enum):
                attrs = {m.name for m in obj}
            assert sorted(attrs - top[n]) == [], n


def test_licence_and_typing_marker():
    assert os.path.isfile(os.path.join(ROOT, "LICENSE"))
    with open(os.path.join(ROOT, "LICENSE")) as f:
        assert f.readline().strip() == "MIT License"
    assert os.path.isfile(os.path.join(os.path.dirname(emu.__file__), "py.typed"))
