"""The command line: bad input is one line, exit 2, and nothing written."""

from __future__ import annotations

import pytest

from harness.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "no_such_case"], "unknown case 'no_such_case'; choose from: "),
        (["run", "relu_blowup", "--variant", "nope"], "unknown variant 'nope' for relu_blowup; choose from: baseline"),
        (
            ["run", "relu_blowup", "--profile", "huge"],
            "unknown profile 'huge' for relu_blowup; choose from: quick, full",
        ),
        (
            ["run", "relu_blowup", "--set", "no_key=1"],
            "unknown config key 'no_key' for case relu_blowup; choose from: ",
        ),
        (["run", "relu_blowup", "--set", "lr=fast"], "--set value 'fast' is not a float"),
        (["run", "relu_blowup", "--device", "tpu"], "unknown device 'tpu'; choose from: auto, cpu, cuda"),
        (["run", "relu_blowup", "--seeds", "0"], "--seeds must be at least 1"),
        (
            ["--tracking-uri", "http://127.0.0.1:9", "run", "relu_blowup"],
            "tracking server http://127.0.0.1:9 cannot be reached",
        ),
        (
            ["--tracking-uri", "sqlite:////no/such/dir/m.db", "run", "relu_blowup"],
            "tracking store folder /no/such/dir does not exist",
        ),
        (
            ["run", "relu_blowup", "--tracking-uri", "http://127.0.0.1:9"],
            "tracking server http://127.0.0.1:9 cannot be reached",
        ),
        (["check", "no_such_case"], "unknown case"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(argv, message, store_uri, tmp_path, capsys):
    (tmp_path / "mlflow.db").unlink()  # start from nothing, as a new user does
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("failbench: error: ") and message in err
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == [], "bad input must write nothing"


def test_list_names_every_case(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "relu_blowup:" in out and "small_init+scaled_pixels" in out


def test_check_with_an_empty_store_says_what_to_run(store_uri, capsys):
    assert main(["check", "relu_blowup"]) == 1
    assert "failbench run relu_blowup --profile quick" in capsys.readouterr().out


def test_run_then_check_one_variant_reports_the_missing_ones(store_uri, capsys):
    assert main(["run", "relu_blowup", "--variant", "baseline", "--seeds", "2", "--quiet"]) == 0
    assert "relu_blowup: 2 run, 0 already finished; verdicts 2 symptom" in capsys.readouterr().out
    assert main(["check", "relu_blowup"]) == 1
    out = capsys.readouterr().out
    assert "no runs" in out and "FAIL" in out and "check: FAILED" in out
