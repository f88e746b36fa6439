"""The wheel installs one import name, `failbench`, with every case folder found (a copied one included),
and the README's recorder snippet runs from it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from failbench import build_backend

ROOT = Path(__file__).resolve().parent.parent

SNIPPET = """
import torch, torch.nn.functional as F
import failbench
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
rec = failbench.watch(model, optimizer)
for step in range(20):
    loss = F.cross_entropy(model(torch.randn(16, 4)), torch.randint(0, 2, (16,)))
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    rec.log(step, loss=loss, accuracy=0.5)
rec.save("trace.parquet")
print(failbench.__file__)
"""


def test_the_build_finds_every_package_folder_and_only_those(tmp_path):
    for folder in ("harness/detectors", "cases/new_case", "cases/new_case/parts", "cases/notes"):
        (tmp_path / folder).mkdir(parents=True)
    for init in ("harness", "harness/detectors", "cases", "cases/new_case", "cases/new_case/parts"):
        (tmp_path / init / "__init__.py").touch()
    assert build_backend.packages(tmp_path) == [
        "failbench",
        "failbench.cases",
        "failbench.cases.new_case",
        "failbench.cases.new_case.parts",
        "failbench.detectors",
    ]


def _copy_case(cases: Path, name: str, new: str) -> None:
    """A new case as its author would start one: a case folder copied, its own imports renamed."""
    shutil.copytree(cases / name, cases / new, ignore=shutil.ignore_patterns("__pycache__"))
    for path in (cases / new).glob("*.py"):
        path.write_text(path.read_text().replace(f"failbench.cases.{name}", f"failbench.cases.{new}"))


@pytest.mark.slow
def test_the_wheel_installs_failbench_alone_with_a_new_case_and_the_snippet_runs(tmp_path):
    source = tmp_path / "src"  # a copy: a build in the checkout would leave build/ and egg-info there
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("harness", "cases"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    _copy_case(source / "cases", "relu_blowup", "copied_case")  # no edit outside its folder
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("failbench-*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # the dependencies from this environment (a path in a .pth: its own .pth files, such as the
    # checkout's editable install, are not read); failbench itself from the wheel
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    installed = {p.name for p in purelib.iterdir()} - {"deps.pth", "__pycache__"}
    assert {n for n in installed if not n.endswith(".dist-info")} == {"failbench"}
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.run([str(python), "-c", SNIPPET], cwd=work, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(purelib / "failbench"))
    assert (work / "trace.parquet").is_file()
    cli = subprocess.run(
        [str(env / "bin" / "failbench"), "diagnose", "trace.parquet"], cwd=work, capture_output=True, text=True
    )
    assert cli.returncode in (0, 1) and "published tools on this trace:" in cli.stdout, cli.stderr
    for generic in ("harness", "cases"):
        probe = subprocess.run([str(python), "-c", f"import {generic}"], cwd=work, capture_output=True)
        assert probe.returncode != 0, f"`import {generic}` works from the wheel"
    # the copied case is in the wheel and runs from it: its own modules, not the original's
    failbench = str(env / "bin" / "failbench")
    listed = subprocess.run([failbench, "list"], cwd=work, capture_output=True, text=True)
    assert "copied_case:" in listed.stdout, listed.stderr
    where = "from failbench.cases.copied_case import train; print(train.__file__)"
    own = subprocess.run([str(python), "-c", where], cwd=work, capture_output=True, text=True)
    assert own.stdout.strip() == str(purelib / "failbench" / "cases" / "copied_case" / "train.py"), own.stderr
    ran = subprocess.run(
        [
            failbench,
            "--tracking-uri",
            "sqlite:///copied.db",
            "run",
            "copied_case",
            "--variant",
            "baseline",
            "--seeds",
            "1",
            "--set",
            "steps=3",
            "--quiet",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    assert (work / "copied.db").is_file()
