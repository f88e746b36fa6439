"""What a grid point's result depends on, and nothing else (asv's habit: a benchmark's version is a
hash of its source, so results of edited code are never mixed with old ones).

A point is finished, and reused, when a run with the same identity is in the store. The identity is
the config, the seed, the device type and the thread count (thread count changes results bit-wise,
measured with torch 2.13 on CPU, and so does the device), and two hashes:

- the **code hash**: the case folder's Python and the harness modules a point runs through (the
  runner, the probes, what the case imports from the harness), compared as syntax trees with the
  docstrings, comments and layout left out, imports named by folder (`failbench.trace` as
  `harness.trace`), and with the declarations left out too: `Expectation`,
  `Fix`, `Symptom`, `Task`, `Threshold`, `Profile`, `Case` and every `why=` text judge or describe results,
  they do not make them (a fix's change enters through the config hash). Rewording a reason or
  adding an expectation re-runs nothing; a changed line in a training loop re-runs the case.
- the **environment hash**: torch (and the CUDA it was built for), numpy, the Python version,
  requirements.lock and the CPU capability torch picked its kernels for (AVX512, AVX2, DEFAULT:
  `torch.backends.cpu.get_cpu_capability()`). A torch upgrade re-runs every point, so `compare` can
  put the two side by side; so does another capability, whose kernels round differently (blurry_inpainting's
  baseline seed 0: PSNR 17.7835 dB under AVX2, 17.7812 under AVX512). The CPU model is recorded beside it
  (`cpu_model()`), not hashed: a store moved to another machine of the same capability resumes, and
  `compare` expects bit-identical results only from the same model (the same baseline gives 17.7812
  dB on another AVX512 CPU than the AMD EPYC's 17.7866).
"""

from __future__ import annotations

import ast
import hashlib
import json
import platform
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from failbench.contract import Case
from failbench.grid import GridPoint, flat_params

HARNESS_DIR = Path(__file__).resolve().parent
LOCK_FILE = HARNESS_DIR.parent / "requirements.lock"
# The harness modules every point runs through; what a case imports from the harness is added.
POINT_PATH = ("runner", "probes")
# Declarations only: a case's config enters through the config hash, its verdict is recomputed.
NOT_ON_THE_PATH = frozenset({"contract", "grid"})
DECLARATIONS = frozenset({"Expectation", "Fix", "Symptom", "Task", "Threshold", "Profile", "Case"})


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        if isinstance(call.func, ast.Name):
            names.add(call.func.id)
        elif isinstance(call.func, ast.Attribute):
            names.add(call.func.attr)
    return names


class _Normalise(ast.NodeTransformer):
    """Drops docstrings and `why=` texts everywhere; the caller drops declaring statements."""

    def _drop_docstring(self, node):
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        return self.generic_visit(node)

    visit_Module = visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _drop_docstring

    def visit_keyword(self, node: ast.keyword):
        return None if node.arg == "why" else self.generic_visit(node)


def normalised_source(text: str) -> str:
    """The code of one module as it runs: a dump of its syntax tree without docstrings, comments,
    layout, `why=` texts, and top-level statements that build declarations (or call a function of
    the module that does, as identity_filter's `_at` does)."""
    tree = _CanonicalImports().visit(ast.parse(text))
    declaring = set(DECLARATIONS)
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    changed = True
    while changed:  # a helper that calls a helper that builds Expectations declares too
        changed = False
        for fn in functions:
            if fn.name not in declaring and _called_names(fn) & declaring:
                declaring.add(fn.name)
                changed = True
    tree.body = [s for s in tree.body if not _declares(s, declaring)]
    return ast.dump(_Normalise().visit(tree), include_attributes=False)


def _declares(statement: ast.stmt, declaring: set[str]) -> bool:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return statement.name in declaring
    if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.Expr)) and statement.value is not None:
        return bool(_called_names(statement.value) & declaring)
    return False


def _canonical(module: str) -> str:
    """A module's name as the hashes know it: the harness's modules are imported as `failbench.X` and
    the cases as `failbench.cases.X`; the hashes name them `harness.X` and `cases.X`, as the folders."""
    if module == "failbench.cases" or module.startswith("failbench.cases."):
        return module[len("failbench.") :]
    if module == "failbench" or module.startswith("failbench."):
        return "harness" + module[len("failbench") :]
    return module


class _CanonicalImports(ast.NodeTransformer):
    def visit_ImportFrom(self, node: ast.ImportFrom):
        if node.module and node.level == 0:
            node.module = _canonical(node.module)
        return node

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            alias.name = _canonical(alias.name)
        return node


def _harness_imports(text: str) -> set[str]:
    found = set()
    for node in ast.walk(_CanonicalImports().visit(ast.parse(text))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from failbench import probes
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("harness."))
    return found


def harness_modules(case: Case) -> list[str]:
    """The harness modules a point of `case` runs through: the runner, the probes, what the case
    imports, and what those import in turn, less the declarations."""
    pending = set(POINT_PATH)
    for path in sorted(case.folder.rglob("*.py")):
        pending |= _harness_imports(path.read_text())
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        path = HARNESS_DIR / f"{name}.py"
        if name in seen or name in NOT_ON_THE_PATH or not path.is_file():
            continue
        seen.add(name)
        pending |= _harness_imports(path.read_text())
    return sorted(seen)


def code_hash(case: Case) -> str:
    digest = hashlib.sha256()
    files = [(f"cases/{p.relative_to(case.folder).as_posix()}", p) for p in sorted(case.folder.rglob("*.py"))]
    files += [(f"harness/{m}.py", HARNESS_DIR / f"{m}.py") for m in harness_modules(case)]
    for name, path in files:
        digest.update(name.encode())
        digest.update(normalised_source(path.read_text()).encode())
    return digest.hexdigest()[:16]


@cache
def environment() -> dict[str, str]:
    """What a result depends on outside the code: the numeric libraries and the locked pins."""
    import numpy
    import torch

    lock = hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()[:16] if LOCK_FILE.is_file() else "none"
    return {
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "lock": lock,
        # ATEN_CPU_CAPABILITY=avx2 (or default) picks another capability's kernels on the same CPU
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


@cache
def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (Linux), else what platform knows: recorded on
    every run and snapshot, not part of a run's identity (the capability is)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment_hash(env: dict[str, str] | None = None) -> str:
    text = json.dumps(env if env is not None else environment(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(config: Any) -> str:
    text = json.dumps(flat_params(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def point_hash(config: Any, seed: int, device_type: str, threads: int, code: str, env: str) -> str:
    text = json.dumps([config_hash(config), seed, device_type, threads, code, env])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def point_identity(
    case: Case, point: GridPoint, device_type: str, threads: int, code: str, env: str
) -> tuple[str, str]:
    """(config hash, point hash) of one grid point: a FINISHED run with this point hash is reused."""
    config = point.config(case)
    return config_hash(config), point_hash(config, point.seed, device_type, threads, code, env)


def git_commit() -> str:
    """The commit of the checkout, with '-dirty' when it has uncommitted changes: tagged on every run
    so that `failbench compare commit:SHA` finds them (not part of a point's identity)."""

    def git(*words: str) -> str:
        return subprocess.run(
            ["git", *words], cwd=HARNESS_DIR.parent, capture_output=True, text=True, check=True
        ).stdout

    try:
        sha, dirty = git("rev-parse", "HEAD").strip(), git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")
