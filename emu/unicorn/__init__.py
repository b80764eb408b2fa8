"""Unicorn's Python API (unicorn 2.1.x) on emu's core, for x86.

    from emu.unicorn import Uc, UcError
    from emu.unicorn.unicorn_const import *
    from emu.unicorn.x86_const import *

or, to run a tool written for Unicorn unchanged:

    import emu.unicorn; emu.unicorn.install()
    import unicorn          # now this package

docs/unicorn.md maps Unicorn's concepts onto emu's and lists the differences.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys

from emu.unicorn import unicorn_const, x86_const
from emu.unicorn.errors import UcError, strerror
from emu.unicorn.uc import Uc, UcContext
from emu.unicorn.unicorn_const import *  # noqa: F401,F403  (Unicorn's namespace: `from unicorn import *`)

__version__ = "%d.%d.%d" % (unicorn_const.UC_API_MAJOR, unicorn_const.UC_API_MINOR, unicorn_const.UC_API_PATCH)


def uc_version():
    """(major, minor, combined) as Unicorn's uc_version() returns them."""
    major, minor = unicorn_const.UC_API_MAJOR, unicorn_const.UC_API_MINOR
    return major, minor, (major << 24) + (minor << 16)


def version_bind():
    return uc_version()


def uc_arch_supported(arch: int) -> bool:
    return arch == unicorn_const.UC_ARCH_X86


def debug() -> str:
    return "python-emu-x86"


def ucsubclass(cls):
    """Unicorn's decorator for subclasses of Uc: a plain subclass works here."""
    return cls


# names `from unicorn import *` gives in Unicorn
__all__ = [n for n in dir(unicorn_const) if n.startswith("UC_")] + [
    "Uc", "UcError", "UcContext", "uc_version", "uc_arch_supported", "version_bind", "debug", "ucsubclass",
    "x86_const", "unicorn_const", "strerror"]

# module names a program may import from the `unicorn` package
_ALIASES = {
    "unicorn": "emu.unicorn",
    "unicorn.unicorn_const": "emu.unicorn.unicorn_const",
    "unicorn.x86_const": "emu.unicorn.x86_const",
    "unicorn.unicorn": "emu.unicorn",
    "unicorn.unicorn_py3": "emu.unicorn",
    "unicorn.unicorn_py3.unicorn": "emu.unicorn",
}


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `unicorn` and its submodules to this package, ahead of any
    installed Unicorn on sys.path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in _ALIASES or fullname.startswith("unicorn."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        target = _ALIASES.get(spec.name)
        if target is None:
            raise ImportError("emu.unicorn provides no %s (x86 only)" % spec.name)
        return importlib.import_module(target)

    def exec_module(self, module):
        pass


for _arch in ("arm", "arm64", "mips", "sparc", "ppc", "riscv", "m68k", "s390x", "tricore"):
    _ALIASES["unicorn.%s_const" % _arch] = "emu.unicorn.%s_const" % _arch

_finder = _Finder()


def install() -> None:
    """Make `import unicorn` (and unicorn.x86_const, unicorn.unicorn_const)
    give emu.unicorn, also when Unicorn itself is installed; modules that
    already imported Unicorn keep it."""
    for k in [k for k in sys.modules if k == "unicorn" or k.startswith("unicorn.")]:
        del sys.modules[k]
    for name, target in _ALIASES.items():
        sys.modules[name] = importlib.import_module(target)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Undo install()."""
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for name in _ALIASES:
        sys.modules.pop(name, None)
