"""Builds the compiled pump (workers/_pump.pyx, Cython) with the package; everything else is in
pyproject.toml. Without a C compiler the build goes on without it: the engine then runs its
pure-Python pump and says so in its log (see workers/pump.py)."""

from __future__ import annotations

import sys

from setuptools import Extension, setup  # type: ignore[import-untyped]
from setuptools.command.build_ext import build_ext  # type: ignore[import-untyped]


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing when the extension cannot be compiled."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler, no headers: the fallback runs
            print(f"slogate: compiled pump not built ({exc}); the pure-Python pump runs",
                  file=sys.stderr)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - as above
            print(f"slogate: {ext.name} not built ({exc}); the pure-Python pump runs",
                  file=sys.stderr)


def extensions() -> list[Extension]:
    """Return the Cython extension, or none where Cython is missing or the platform has no epoll."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        from Cython.Build import cythonize  # type: ignore[import-untyped]
    except ImportError:
        print("slogate: Cython missing; the pure-Python pump runs", file=sys.stderr)
        return []
    try:
        return cythonize([Extension("workers._pump", ["workers/_pump.pyx"],
                                    extra_compile_args=["-O2"])],
                         compiler_directives={"language_level": "3"}, quiet=True)
    except Exception as exc:  # noqa: BLE001 - a Cython too old or too new: the fallback runs
        print(f"slogate: workers/_pump.pyx not compiled ({exc}); the pure-Python pump runs",
              file=sys.stderr)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
