"""Find every case: each folder cases/<name>/ with a case.py exposing CASE.

This is the one list of cases: the CLI, the tests and the reports all ask it. A folder that has a
case.py but fails to import, or exposes no CASE, is an error, never a silent skip (torchbench's
quiet skip is what cases/README.md warns against).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from functools import cache
from pathlib import Path

from failbench.contract import Case

_HERE = Path(__file__).resolve().parent
# A checkout: cases/ beside harness/; the installed wheel: failbench/cases/ inside the package.
CASES_DIR = _HERE / "cases" if (_HERE / "cases").is_dir() else _HERE.parent / "cases"


class CaseError(Exception):
    """A case that cannot be loaded; the message names the folder and the cause."""


def case_names(root: Path = CASES_DIR) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/case.py"))


def _import(name: str, root: Path):
    if root == CASES_DIR:  # the installed package: a normal import, so its own imports resolve
        return importlib.import_module(f"failbench.cases.{name}.case")
    # Another root (a test's fixture folder): load the file under a name of its own.
    module_name = f"failbench_case_{root.name}_{name}"
    spec = importlib.util.spec_from_file_location(module_name, root / name / "case.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@cache
def load_case(name: str, root: Path = CASES_DIR) -> Case:
    if name not in case_names(root):
        raise CaseError(f"unknown case {name!r}; choose from: {', '.join(case_names(root)) or '(none)'}")
    if root == CASES_DIR and not (root / name / "__init__.py").is_file():
        # without it `failbench.cases.<name>` is a namespace package: it imports from a checkout but is left
        # out of the installed wheel (setuptools finds regular packages only)
        raise CaseError(f"cases/{name}/ has no __init__.py: a case folder is a regular package (cases/README.md)")
    try:
        module = _import(name, root)
    except Exception as exc:  # any import failure is the case's error, reported with its cause
        raise CaseError(f"{root.name}/{name}/case.py failed to import: {type(exc).__name__}: {exc}") from exc
    case = getattr(module, "CASE", None)
    if not isinstance(case, Case):
        raise CaseError(f"{root.name}/{name}/case.py defines no CASE of type failbench.contract.Case")
    return dataclasses.replace(case, name=name, folder=root / name)


def discover(root: Path = CASES_DIR) -> dict[str, Case]:
    return {name: load_case(name, root) for name in case_names(root)}
