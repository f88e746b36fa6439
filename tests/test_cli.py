"""The command line: bad input is one line, exit 2, and nothing written."""

from __future__ import annotations

import argparse

import pytest

from failbench.cli import Command, build_parser, main, non_negative_int, port_number, positive_int


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, by name, as `failbench --help` lists them."""
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _taking(option: str) -> list[str]:
    return [name for name, p in _parsers().items() if any(option in a.option_strings for a in p._actions)]


def _flat(text: str) -> str:
    return " ".join(text.split())  # argparse wraps help texts at the terminal's width


@pytest.fixture
def empty_dir(tmp_path, monkeypatch):
    """The working directory with no store in it and none named: the default store would land here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "no_such_case"], "unknown case 'no_such_case'; choose from: "),
        (["run", "relu_blowup", "--variant", "nope"], "unknown variant 'nope' for relu_blowup; choose from: baseline"),
        (
            ["run", "relu_blowup", "--profile", "huge"],
            "unknown profile 'huge' for relu_blowup; choose from: quick, full, explore_lr",
        ),
        (
            ["run", "relu_blowup", "--set", "no_key=1"],
            "unknown config key 'no_key' for case relu_blowup; choose from: ",
        ),
        (["run", "relu_blowup", "--set", "lr=fast"], "--set value 'fast' is not a float"),
        # an override would replace what a point's axis tag or a fix's name still claims
        (["run", "identity_filter", "--set", "lr=0.1"], "--set lr: lr is an axis of identity_filter (quick)"),
        (["run", "relu_blowup", "--set", "lr=1e-6"], "--set lr: the fix 'low_lr' of relu_blowup sets lr"),
        (["run", "relu_blowup", "--device", "tpu"], "unknown device 'tpu'; choose from: auto, cpu, cuda"),
        (
            ["run", "relu_blowup", "--workers", "2", "--executor", "dask://127.0.0.1:8786"],
            "--workers 2 has no effect with --executor dask://127.0.0.1:8786: Dask decides the parallelism",
        ),
        (["run", "relu_blowup", "--executor", "spark://x:1"], "unknown executor 'spark://x:1'"),
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
        (["calibrate"], "no MLflow store at"),  # a command that reads never creates the store
        (["calibrate", "--leave-one-case-out", "sqlite:////no/such/dir/h.db"], "no MLflow store at"),
        (["diagnose", "no_such_trace.parquet"], "no such trace file: no_such_trace.parquet"),
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


def test_the_commands_that_take_a_profile():
    assert _taking("--profile") == ["run", "check", "report", "table", "compare", "snapshot", "detect", "calibrate"]


def test_a_profile_only_some_cases_declare_selects_those_cases(empty_dir, capsys):
    from failbench.cli import build_parser, selected

    args = build_parser().parse_args(["check", "--profile", "long"])
    assert [c.name for c in selected(args)] == ["blurry_inpainting"]  # the one case with a `long` profile
    assert main(["check", "--profile", "huge"]) == 2
    assert capsys.readouterr().err.strip().startswith("failbench: error: unknown profile 'huge'; the cases declare: ")
    assert list(empty_dir.iterdir()) == []


@pytest.mark.parametrize("command", _taking("--profile"))
def test_every_command_refuses_an_unknown_profile_before_touching_the_store(command, empty_dir, capsys):
    argv = [command, *(["current", "current"] if command == "compare" else []), "relu_blowup", "--profile", "huge"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    # the profile, not the missing store, is what is refused: it is checked first
    assert err == "failbench: error: unknown profile 'huge' for relu_blowup; choose from: quick, full, explore_lr"
    assert list(empty_dir.iterdir()) == [], "no mlflow.db, nothing at all"


@pytest.mark.parametrize("command", ["check", "table", "detect", "snapshot"])
def test_a_profile_of_the_case_is_accepted(command, empty_dir, capsys):
    assert main([command, "relu_blowup", "--profile", "full"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err  # past the profile, refused at the store


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "no_such_case", "--seeds", "0"], "argument --seeds: must be at least 1, got 0"),
        (["run", "relu_blowup", "--seeds", "two"], "argument --seeds: expected a whole number, got 'two'"),
        (["run", "relu_blowup", "--workers", "0"], "argument --workers: must be at least 1, got 0"),
        (["run", "relu_blowup", "--threads", "0"], "argument --threads: must be at least 1, got 0"),
        (["run", "relu_blowup", "--first-seed", "-1"], "argument --first-seed: must be at least 0, got -1"),
        (["ui", "--port", "0"], "argument --port: must be between 1 and 65535, got 0"),
        (["ui", "--port", "65536"], "argument --port: must be between 1 and 65535, got 65536"),
    ],
)
def test_integer_options_are_argparse_usage_errors(argv, message, empty_dir, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: failbench ")
    assert err.strip().splitlines()[-1] == f"failbench {argv[0]}: error: {message}"
    assert list(empty_dir.iterdir()) == []


def test_integer_types_keep_the_bounds():
    assert (positive_int("1"), non_negative_int("0"), port_number("1"), port_number("65535")) == (1, 0, 1, 65535)
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int("1.5")


def test_tracking_uri_before_or_after_the_command():
    parse = build_parser().parse_args
    assert parse(["--tracking-uri", "sqlite:///a.db", "check"]).tracking_uri == "sqlite:///a.db"
    assert parse(["check", "--tracking-uri", "sqlite:///b.db"]).tracking_uri == "sqlite:///b.db"
    both = ["--tracking-uri", "sqlite:///a.db", "ui", "--tracking-uri", "sqlite:///b.db"]
    assert parse(both).tracking_uri == "sqlite:///b.db"
    assert parse(["list"]).tracking_uri is None


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = _flat(capsys.readouterr().out)
    commands = Command.__subclasses__()
    names = [
        "list",
        "run",
        "check",
        "report",
        "table",
        "compare",
        "snapshot",
        "restamp",
        "detect",
        "calibrate",
        "diagnose",
        "ui",
    ]
    assert [c.name for c in commands] == list(_parsers()) == names
    for command in commands:
        assert f"{command.name} {_flat(command.help)}" in out


@pytest.mark.parametrize("command", list(_parsers()))
def test_command_help_lists_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = _flat(capsys.readouterr().out)
    for action in _parsers()[command]._actions:
        for name in action.option_strings or [action.metavar]:
            assert name in out
        if action.help:
            assert _flat(action.help) in out
