"""The wheel installs one import name, `failbench`, and the README's recorder snippet runs from it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

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


def test_the_package_list_names_every_case_folder():
    packages = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {f"failbench.cases.{p.parent.name}" for p in (ROOT / "cases").glob("*/__init__.py")}
    subpackages = {f"failbench.{p.parent.name}" for p in (ROOT / "harness").glob("*/__init__.py")}
    assert packages == {"failbench", "failbench.cases"} | folders | subpackages


@pytest.mark.slow
def test_the_wheel_installs_failbench_alone_and_the_snippet_runs(tmp_path):
    source = tmp_path / "src"  # a copy: a build in the checkout would leave build/ and egg-info there
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("harness", "cases"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
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
