"""The build backend: setuptools, with the package list read from the folders instead of written out.

pyproject.toml maps the import name `failbench` to harness/ and `failbench.cases` to cases/.
setuptools' own discovery (`[tool.setuptools.packages.find]`) names what it finds after the folder
(`cases.relu_blowup`) and cannot put `failbench.` in front, so every case had to be listed in
pyproject.toml by hand. Here the list is every folder with an `__init__.py` under the two roots: a
new case is a folder, and nothing outside it names it (tests/test_packaging.py builds a wheel with a
copied case and runs it). The PEP 517 hooks are setuptools', re-exported; only how `setup()` is
called changes (setuptools' documented way to extend its backend is a module like this one, found
through `backend-path`).
"""

from __future__ import annotations

from pathlib import Path

import setuptools
from setuptools import build_meta

# where pyproject.toml's package-dir maps each import name
ROOTS = {"failbench": "harness", "failbench.cases": "cases"}


def packages(project: Path) -> list[str]:
    """Every package under the roots, as an import name: failbench, failbench.detectors, failbench.cases, ..."""
    names = set()
    for name, folder in ROOTS.items():
        root = project / folder
        names |= {".".join((name, *p.parent.relative_to(root).parts)) for p in root.rglob("__init__.py")}
    return sorted(names)


class _Backend(build_meta._BuildMetaBackend):
    def run_setup(self, setup_script: str = "setup.py") -> None:
        # the hooks run in the project's folder (PEP 517); pyproject.toml gives everything else
        setuptools.setup(packages=packages(Path.cwd()))


_BACKEND = _Backend()
get_requires_for_build_wheel = _BACKEND.get_requires_for_build_wheel
get_requires_for_build_sdist = _BACKEND.get_requires_for_build_sdist
get_requires_for_build_editable = _BACKEND.get_requires_for_build_editable
prepare_metadata_for_build_wheel = _BACKEND.prepare_metadata_for_build_wheel
prepare_metadata_for_build_editable = _BACKEND.prepare_metadata_for_build_editable
build_wheel = _BACKEND.build_wheel
build_sdist = _BACKEND.build_sdist
build_editable = _BACKEND.build_editable
