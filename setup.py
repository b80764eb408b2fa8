"""Builds the Cython core. Everything else is in pyproject.toml."""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

cflags = ["-O2", "-fno-strict-aliasing", "-Wno-unused-function", "-Wno-unused-variable"]
if os.environ.get("EMU_DEBUG"):
    cflags = ["-O0", "-g"]

ext = Extension(
    "emu._core",
    sources=["emu/_core.pyx"],
    depends=[os.path.join("emu", "core", f) for f in os.listdir(os.path.join("emu", "core"))]
    + ["emu/_core.pxd"],
    extra_compile_args=cflags,
)

if os.environ.get("EMU_NO_CORE"):
    # the Python package alone (tests/test_package.py checks what a wheel
    # holds without compiling the core each time); it does not run like this
    setup()
else:
    setup(
        ext_modules=cythonize(
            [ext],
            compiler_directives={"language_level": "3"},
            annotate=bool(os.environ.get("EMU_ANNOTATE")),
        ),
    )
