"""The `failbench` command: list, run, check, table, compare, snapshot, report, detect, calibrate,
diagnose, ui.

One `Command` subclass per command (after asv's commands): `setup_arguments` declares its options
through the shared helpers below, so `cases`, `--profile`, `--tracking-uri` and the integer options
are each declared once, and `run` does the work and returns the exit status.

Bad input (unknown case, variant, profile or config key; an unreachable store) gets one line that
names the valid choices, exit status 2, and nothing written: everything is validated before the
store is touched. An integer option out of range is argparse's usage error (exit 2) before anything runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from failbench.discovery import CaseError, discover, load_case
from failbench.stats import DEFAULT_ALPHA, DEFAULT_MIN_CHANGE
from failbench.tracking import UI_MODE, TrackingError

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input; main() prints it as one line and exits 2."""


# ---- shared argument helpers: each option declared once ------------------------------------------


def _int_type(name: str, low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`). A bad one is argparse's usage error,
    exit 2, before anything runs: `argument --seeds: must be at least 1, got 0`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = name
    return parse


positive_int = _int_type("positive_int", 1)
non_negative_int = _int_type("non_negative_int", 0)
port_number = _int_type("port_number", 1, 65535)

URI_HELP = "MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory)"


def add_store(parser: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    """--tracking-uri, on the main parser (default None) and on every command: SUPPRESS on a command
    keeps a value given before it (`failbench --tracking-uri X run`) when none is given after it."""
    parser.add_argument("--tracking-uri", default=default, help=URI_HELP)


PROFILE_HELP = "which profile's runs to read (default: quick)"


def add_cases(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("cases", nargs="*", metavar="CASE", help=help)


def add_profile(parser: argparse.ArgumentParser, help: str = PROFILE_HELP) -> None:
    """--profile; `selected` checks it against the selected cases' profiles."""
    parser.add_argument("--profile", default="quick", help=help)


def add_seed_range(parser: argparse.ArgumentParser, what: str) -> None:
    """--seeds and --first-seed, for `run` (which seeds to run) and `check` (which to judge)."""
    parser.add_argument("--seeds", type=positive_int, help="number of seeds (default: the profile's)")
    parser.add_argument("--first-seed", type=non_negative_int, default=0, metavar="N", help=f"{what} (default: 0)")


def selected(args: argparse.Namespace) -> list:
    """The cases named (default: all), with the --profile of a command that takes one checked
    against each of them: bad input is refused here, before the store is touched."""
    try:
        cases = [load_case(n) for n in args.cases] if args.cases else list(discover().values())
    except CaseError as exc:
        raise UsageError(str(exc)) from None
    profile = getattr(args, "profile", None)
    if profile is not None and not args.cases:  # all cases: those that declare the profile (`long` is one case's)
        known = sorted({p for case in cases for p in case.profiles})
        cases = [case for case in cases if profile in case.profiles]
        if not cases:
            raise UsageError(f"unknown profile {profile!r}; the cases declare: {', '.join(known)}")
    for case in cases:
        if profile is not None and profile not in case.profiles:
            raise UsageError(f"unknown profile {profile!r} for {case.name}; choose from: {', '.join(case.profiles)}")
    return cases


def _parse_value(text: str, current: Any) -> Any:
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise UsageError(f"--set expects true/false here, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(current, (int, float)):
        try:
            return type(current)(float(text)) if isinstance(current, int) and "." not in text else type(current)(text)
        except ValueError:
            raise UsageError(f"--set value {text!r} is not a {type(current).__name__}") from None
    return text


def _overrides(pairs: Sequence[str], cases: list, profile: str, variants: Sequence[str]) -> dict[str, Any]:
    from failbench.grid import override_conflict

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise UsageError(f"--set takes KEY=VALUE, got {pair!r}")
        for case in cases:
            fields = [f.name for f in dataclasses.fields(case.baseline)]
            if key not in fields:
                raise UsageError(f"unknown config key {key!r} for case {case.name}; choose from: {', '.join(fields)}")
            overrides[key] = _parse_value(text, getattr(case.baseline, key))
            conflict = override_conflict(case, profile, variants, key)
            if conflict:
                raise UsageError(conflict)
    return overrides


def _store(args: argparse.Namespace, *, create: bool, uri: str | None = None):
    """The store named by `uri`, else --tracking-uri or $MLFLOW_TRACKING_URI (tracking.open_store).
    Only `run` creates one and writes (`create=True`); a command that reads (check, table, report,
    compare, detect) opens it read-only and is refused a missing store in one line."""
    from failbench.tracking import open_store

    try:
        return open_store(uri or args.tracking_uri, write=create)
    except TrackingError as exc:
        raise UsageError(str(exc)) from None


def _checked_uri(tracking_uri: str | None, *, create: bool) -> str:
    """tracking.checked_uri, its error as the CLI's one line."""
    from failbench.tracking import checked_uri

    try:
        return checked_uri(tracking_uri, write=create)
    except TrackingError as exc:
        raise UsageError(str(exc)) from None


# ---- the commands ---------------------------------------------------------------------------------


class Command:
    """One `failbench` command: `setup_arguments` adds its parser, `run` returns the exit status.
    `cases` and `profile` are the help texts of its CASE arguments and --profile (None: it takes none)."""

    name = help = ""
    cases: str | None = "cases (default: all)"
    profile: str | None = None
    parser_options: dict[str, Any] = {}

    def setup_arguments(self, subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(self.name, help=self.help, **self.parser_options)
        add_store(parser)
        if self.cases:
            add_cases(parser, self.cases)
        if self.profile:
            add_profile(parser, self.profile)
        parser.set_defaults(func=self.run)
        return parser

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


class ListCommand(Command):
    name, help = "list", "list the cases, their variants, axes and profiles"

    def run(self, args):
        for case in selected(args):
            profiles = ", ".join(f"{n} ({p.seeds} seeds)" for n, p in case.profiles.items())
            print(f"{case.name}: {case.title}")
            print(f"  variants: {', '.join(case.variants)}")
            if case.axes:
                print("  axes:     " + "; ".join(f"{k} in {list(v)}" for k, v in case.axes.items()))
            print(f"  profiles: {profiles}")
            print(f"  symptom:  {case.symptom.description}")
        return EXIT_OK


class RunCommand(Command):
    name, help = "run", "run every grid point (variant x axes x seed) and track it in MLflow"
    cases, profile = (
        "cases to run (default: all)",
        (
            "budget: quick (minutes on a CPU), full, or a profile a case declares, such as an exploration "
            "(`failbench list` names them; default: quick)"
        ),
    )

    def setup_arguments(self, subparsers):
        p = super().setup_arguments(subparsers)
        add_seed_range(p, "run seeds N..N+seeds-1: test the expectations on seeds nobody tuned on")
        p.add_argument("--variant", action="append", default=[], help="only this variant (repeatable)")
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
        p.add_argument(
            "--threads",
            type=positive_int,
            default=1,
            help="torch threads per grid point; part of a run's identity (default: 1)",
        )
        p.add_argument(
            "--workers",
            type=positive_int,
            default=1,
            help="grid points in parallel in a local process pool (default: 1, in-process; not with --executor)",
        )
        p.add_argument(
            "--executor",
            metavar="dask://HOST:PORT",
            help="send grid points to a Dask scheduler (pip install '.[dask]')",
        )
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config field for every variant (exploration; tagged, not checked)",
        )
        p.add_argument("--force", action="store_true", help="re-run grid points already finished")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        return p

    def run(self, args):
        from failbench.executors import open_pool, parse_executor
        from failbench.runner import resolve_device

        cases = selected(args)
        for case in cases:
            unknown = [v for v in args.variant if v not in case.variants]
            if unknown:
                raise UsageError(
                    f"unknown variant {unknown[0]!r} for {case.name}; choose from: {', '.join(case.variants)}"
                )
        overrides = _overrides(args.set, cases, args.profile, args.variant)
        try:
            device = resolve_device(args.device)
            parse_executor(args.executor)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.executor and args.workers > 1:
            # executors.results hands every point to the Dask client and never reads `workers` then
            raise UsageError(
                f"--workers {args.workers} has no effect with --executor {args.executor}: Dask decides the "
                "parallelism (its workers and their threads); drop --workers"
            )
        tracker = _store(args, create=True)
        print(f"tracking: {tracker.uri}", file=sys.stderr)
        with open_pool(args.workers, args.executor) as pool:
            return self._sweeps(args, cases, tracker, device, overrides, pool)

    @staticmethod
    def _sweeps(args, cases, tracker, device, overrides, pool) -> int:
        from failbench.executors import WorkerLost
        from failbench.sweep import run_sweep

        for case in cases:
            try:
                summary = run_sweep(
                    case,
                    args.profile,
                    tracker,
                    device,
                    threads=args.threads,
                    variants=args.variant or None,
                    seeds=args.seeds,
                    force=args.force,
                    overrides=overrides,
                    progress=not args.quiet,
                    workers=args.workers,
                    executor=args.executor,
                    first_seed=args.first_seed,
                    pool=pool,
                )
            except WorkerLost as exc:
                print(f"failbench: {case.name}: {exc}", file=sys.stderr)
                return EXIT_MISMATCH
            share = summary.tracking_seconds / summary.wall_seconds if summary.wall_seconds else 0.0
            verdicts = ", ".join(f"{n} {v}" for v, n in sorted(summary.verdicts.items())) or "-"
            print(
                f"{case.name}: {summary.ran} run, {summary.skipped} already finished; "
                f"verdicts {verdicts}; wall {summary.wall_seconds:.1f} s, training "
                f"{summary.train_seconds:.1f} s, MLflow {summary.tracking_seconds:.1f} s ({share:.0%}; "
                f"its writer {summary.writer_seconds:.1f} s beside training)"
                + (f"; sweep {summary.sweep_id}" if summary.sweep_id else "")
            )
        return EXIT_OK


class CheckCommand(Command):
    name, help = "check", "judge one seed range of stored runs against every case's expectations"
    profile = "which profile's runs to judge (default: quick)"

    def setup_arguments(self, subparsers):
        p = super().setup_arguments(subparsers)
        add_seed_range(p, "judge seeds N..N+seeds-1 alone, as `run --first-seed N` ran them")
        p.add_argument(
            "--explain",
            action="store_true",
            help="under each case, every claim's pooled evidence (which seed ranges) and its reason",
        )
        return p

    def run(self, args):
        from failbench.check import check

        cases = selected(args)
        result = check(
            _store(args, create=False), cases, args.profile, args.first_seed, args.seeds, explain=args.explain
        )
        print(result.text)
        return EXIT_MISMATCH if result.failed else EXIT_OK


class ReportCommand(Command):
    name, help = "report", "render the HTML reports (papermill) and print reports/index.html"
    profile = "which profile's runs to render (default: quick)"

    def run(self, args):
        from failbench.reports import render

        cases = selected(args)
        tracker = _store(args, create=False)
        print(render([c.name for c in cases], tracker.uri, args.profile, log=lambda line: print(line, file=sys.stderr)))
        return EXIT_OK


class TableCommand(Command):
    name, help = "table", "print the per-variant results as a Markdown table (for READMEs)"
    profile = PROFILE_HELP

    def setup_arguments(self, subparsers):
        p = super().setup_arguments(subparsers)
        source = p.add_mutually_exclusive_group()
        source.add_argument(
            "--from-snapshot",
            action="store_true",
            help="read reports/reference/PROFILE.json (the committed snapshot) instead of the store",
        )
        source.add_argument(
            "--readmes",
            action="store_true",
            help="re-render every README table block from the committed snapshots (harness/readme_tables.py)",
        )
        return p

    def run(self, args):
        from failbench.analysis import load_runs, summary_table, to_markdown

        if args.readmes:
            return self._readmes()
        cases = selected(args)
        if args.from_snapshot:
            from failbench.snapshot import SnapshotError, default_path, read_snapshot

            def runs_of(case):
                try:
                    return read_snapshot(default_path(args.profile), [case], args.profile)
                except SnapshotError as exc:
                    raise UsageError(str(exc)) from None
        else:
            tracker = _store(args, create=False)

            def runs_of(case):
                return load_runs(tracker, case, args.profile)

        for case in cases:
            runs = runs_of(case)
            print(f"\n### {case.name} ({args.profile}, {len(runs)} runs)\n")
            print(to_markdown(summary_table(case, runs)) if not runs.empty else "no runs")
        return EXIT_OK

    @staticmethod
    def _readmes() -> int:
        from failbench.readme_tables import TableSpecError, update

        try:
            changed = update()
        except TableSpecError as exc:
            raise UsageError(str(exc)) from None
        for path in changed:
            print(f"rewrote {path}")
        print(f"{len(changed)} README(s) re-rendered" if changed else "every README table matches its snapshot")
        return EXIT_OK


class CompareCommand(Command):
    name, cases = "compare", None  # BASE and HEAD come first
    help = "compare two sets of runs per grid point and metric; exit 1 on a significant change or a flipped verdict"
    parser_options = dict(
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare two sets of runs (Markdown out, for a PR comment). Exit 0: no significant change; "
        "1: a significant change or a flipped verdict; 2: bad input.",
        epilog="BASE and HEAD: commit:SHA (prefix), torch:VERSION, sweep:RUN_ID, current (what check judges), "
        "or a snapshot file (reports/reference/quick.json). A bare word is guessed in that order.",
    )

    def setup_arguments(self, subparsers):
        p = super().setup_arguments(subparsers)
        p.add_argument("base", metavar="BASE")
        p.add_argument("head", metavar="HEAD")
        add_cases(p, "cases to compare (default: all)")
        add_profile(p)
        p.add_argument(
            "--alpha",
            type=float,
            default=DEFAULT_ALPHA,
            help="a change counts only when the Mann-Whitney p-value is below this (default: "
            f"{DEFAULT_ALPHA}; 6 seeds a side reach p = 0.0022 at best)",
        )
        p.add_argument(
            "--min-change",
            type=float,
            default=DEFAULT_MIN_CHANGE,
            help=f"... and the medians differ by at least this fraction (default: {DEFAULT_MIN_CHANGE}, "
            "asv's factor 1.1)",
        )
        p.add_argument("--out", metavar="FILE", help="also write the Markdown to FILE")
        return p

    def run(self, args):
        from failbench.compare import SelectorError, classify, compare, load_side, to_markdown
        from failbench.snapshot import SnapshotError

        cases = selected(args)
        if not 0 < args.alpha < 1:
            raise UsageError(f"--alpha must be between 0 and 1, got {args.alpha}")
        if args.min_change < 0:
            raise UsageError(f"--min-change must be at least 0, got {args.min_change}")
        try:
            kinds = [classify(s)[0] for s in (args.base, args.head)]
            tracker = _store(args, create=False) if any(k != "snapshot" for k in kinds) else None
            base, head = (load_side(s, cases, args.profile, tracker) for s in (args.base, args.head))
            result = compare(cases, base, head, alpha=args.alpha, min_change=args.min_change)
        except (SelectorError, SnapshotError) as exc:
            raise UsageError(str(exc)) from None
        text = to_markdown(result, alpha=args.alpha, min_change=args.min_change)
        print(text, end="")
        if args.out:
            Path(args.out).write_text(text)
        return EXIT_MISMATCH if result.failed else EXIT_OK


class SnapshotCommand(Command):
    name, help = "snapshot", "write the judged final metrics of a profile to a tracked reference file"
    cases, profile = "cases to (re)write (default: all; others in the file are kept)", PROFILE_HELP

    def setup_arguments(self, subparsers):
        parser = super().setup_arguments(subparsers)
        parser.add_argument("--out", metavar="FILE", help="default: reports/reference/PROFILE.json")
        parser.add_argument(
            "--first-seed",
            type=non_negative_int,
            metavar="N",
            help="keep seeds N..N+seeds-1 alone, one range of a store that holds several (default: every run)",
        )
        parser.add_argument("--seeds", type=positive_int, help="with --first-seed: how many (default: the profile's)")
        return parser

    def run(self, args):
        from failbench.snapshot import SnapshotError, default_path, write_snapshot

        cases = selected(args)
        if args.seeds is not None and args.first_seed is None:
            raise UsageError("--seeds needs --first-seed (which range to keep)")
        path = Path(args.out) if args.out else default_path(args.profile)
        tracker = _store(args, create=False)
        try:
            written = write_snapshot(tracker, cases, args.profile, path, args.first_seed, args.seeds)
        except SnapshotError as exc:
            raise UsageError(str(exc)) from None
        print(f"{path}: " + ", ".join(f"{name} {n} runs" for name, n in written.items()))
        return EXIT_OK


class RestampCommand(Command):
    name = "restamp"
    help = "make stale snapshots current where one seed per point re-runs bit-identical"
    cases = "cases to restamp (default: all)"

    def setup_arguments(self, subparsers):
        p = super().setup_arguments(subparsers)
        p.add_argument(
            "--snapshot",
            action="append",
            default=[],
            metavar="PATH",
            help="a snapshot file (repeatable; default: every one under reports/reference)",
        )
        p.add_argument("--workers", type=positive_int, default=1, help="points in parallel (default: 1)")
        return p

    def run(self, args):
        from failbench.restamp import restamp, summary
        from failbench.snapshot import SnapshotError, committed

        cases = selected(args)
        paths = [Path(p) for p in args.snapshot] or committed()
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise UsageError(f"no snapshot at {missing[0]}")
        failed = False
        for path in paths:
            try:
                items = restamp(path, cases, workers=args.workers, progress=lambda line: print(line, file=sys.stderr))
            except SnapshotError as exc:
                raise UsageError(str(exc)) from None
            for item in items:
                print(summary(item))
                failed |= not (item.current or item.identical)
        return EXIT_MISMATCH if failed else EXIT_OK


class DetectCommand(Command):
    """The published diagnosis rules scored on every stored trace of the profile's judged runs.
    Reads the store only: a store that does not exist is an error, never created."""

    name, help = "detect", "score the published diagnosis rules on the stored traces (reads the store only)"
    profile = PROFILE_HELP

    def setup_arguments(self, subparsers):
        parser = super().setup_arguments(subparsers)
        parser.add_argument("--by-variant", action="store_true", help="also list which rule fired on which variant")
        parser.add_argument(
            "--warnings",
            action="store_true",
            help="instead, score the warning of failbench.watch(warn=True), replayed step by step on each trace",
        )
        parser.add_argument(
            "--workers",
            type=positive_int,
            default=None,
            help="processes that judge the cases side by side (default: one per CPU core)",
        )
        return parser

    def run(self, args):
        import multiprocessing

        from failbench.scoring import by_variant_markdown, default_workers, judge_in_processes, scores, to_markdown

        cases = selected(args)
        uri = _checked_uri(args.tracking_uri, create=False)  # before any worker starts; no connection kept
        if args.warnings:
            return self.warnings(args, uri, cases)
        forks = "fork" in multiprocessing.get_all_start_methods()  # Linux: workers start with our imports
        judged = judge_in_processes(
            [c.name for c in cases],
            uri,
            args.profile,
            workers=args.workers or default_workers(),
            start_method="fork" if forks else "spawn",
        )
        for case in cases:
            if judged.empty or case.name not in set(judged["case"]):
                print(f"{case.name}: no finished runs of its current code on profile {args.profile}", file=sys.stderr)
        if judged.empty:
            return EXIT_MISMATCH
        print(to_markdown(scores(judged)))
        if args.by_variant:
            print("\n" + by_variant_markdown(judged))
        return EXIT_OK

    @staticmethod
    def warnings(args, uri: str, cases: list) -> int:
        """The warning's score table (reports/README.md, A warning at the step), from the store alone."""
        from failbench.watching import score_store, scores_markdown

        rows = score_store(_store(args, create=False, uri=uri), cases, args.profile)
        if not rows:
            print(f"no sick or cured runs with a trace on profile {args.profile}", file=sys.stderr)
            return EXIT_MISMATCH
        print(scores_markdown(rows))
        return EXIT_OK


class CalibrateCommand(Command):
    """Fits failbench's own detector (failbench.detectors.own) on the store's quick runs and writes the
    thresholds, with each case's post and fix verdicts, to the file `failbench diagnose` reads."""

    name, help = (
        "calibrate",
        "fit failbench's own detector on the stored traces (writes harness/detectors/own_fit.json)",
    )
    profile = PROFILE_HELP

    def setup_arguments(self, subparsers):
        parser = super().setup_arguments(subparsers)
        parser.add_argument("--out", type=Path, default=None, help="where to write (default: the package's own file)")
        parser.add_argument(
            "--leave-one-case-out",
            metavar="URI",
            default=None,
            help="write nothing; per case, fit without it and score its runs in the store at URI (a failure "
            "the detector has never seen: 'none' or the right mechanism are right, another class is wrong)",
        )
        return parser

    def run(self, args):
        from failbench.detectors import own as diagnosis
        from failbench.formatting import markdown_table

        cases = selected(args)
        tracker = _store(args, create=False)
        scored = None
        if args.leave_one_case_out:  # both stores checked before either is read
            scored = _store(args, create=False, uri=args.leave_one_case_out)
        runs = diagnosis.collect(tracker, cases, args.profile)
        if runs.empty:
            print(f"no finished runs of the current code on profile {args.profile}", file=sys.stderr)
            return EXIT_MISMATCH
        if scored is not None:
            table = diagnosis.leave_one_case_out(runs, diagnosis.collect(scored, cases, args.profile))
            print(markdown_table(table.to_dict("records"), list(table.columns)))
            return EXIT_OK
        document = diagnosis.calibrate(runs, cases, args.profile)
        out = diagnosis.write_fit(document, args.out)
        print(diagnosis.fit_text(document))
        print(f"wrote {out} ({len(runs)} runs, seeds {document['fitted_on']['seeds']})", file=sys.stderr)
        return EXIT_OK


class DiagnoseCommand(Command):
    """Your own run against the suite: the failure it resembles, the fixes that cured it, what the
    published tools say. Exit 0: none found; 1: a failure diagnosed; 2: bad input."""

    name, help, cases = "diagnose", "diagnose a trace (failbench.watch) or an MLflow run: is it one of these?", None

    def setup_arguments(self, subparsers):
        parser = super().setup_arguments(subparsers)
        parser.add_argument("trace", metavar="TRACE", help="a trace.parquet file, or mlflow:RUN_ID (its trace)")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout, for tools")
        parser.add_argument(
            "--fit", type=Path, default=None, help="thresholds from `failbench calibrate --out` (default: its own)"
        )
        return parser

    def run(self, args):
        import json

        from failbench.diagnose import TraceError, read_trace, report, to_text

        if args.fit is not None and not args.fit.is_file():
            raise UsageError(f"no such fit file: {args.fit}")
        try:
            frame = read_trace(args.trace, args.tracking_uri)
        except TraceError as exc:
            raise UsageError(str(exc)) from None
        found = report(frame, args.trace, args.fit)
        print(json.dumps(found, indent=1) if args.json else to_text(found))
        return EXIT_MISMATCH if found["failures"] else EXIT_OK


class UiCommand(Command):
    """The MLflow UI on the store, after one line per case with the link to its training runs."""

    name, help, cases = "ui", "browse the runs in the MLflow UI", None

    def setup_arguments(self, subparsers):
        parser = super().setup_arguments(subparsers)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=port_number, default=5000)
        return parser

    def run(self, args):
        tracker = _store(args, create=False)
        base = f"http://{args.host}:{args.port}"
        print(
            f"MLflow UI for {tracker.uri} on {base}/#/experiments?{UI_MODE} (Ctrl-C stops it); the runs of each case:",
            file=sys.stderr,
        )
        for name, url in tracker.ui_links(base):
            print(f"  {name}: {url}", file=sys.stderr)
        command = tracker.ui_command(args.host, args.port)
        os.execvp(command[0], command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="failbench", description="Reproduce documented CNN training failures and their cures."
    )
    add_store(parser, default=None)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in Command.__subclasses__():  # in the order defined: the order of --help
        command().setup_arguments(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # MLflow and alembic announce every store migration at INFO; our own lines say what matters.
    # MLflow sets its level from this variable when it is first imported (below, lazily).
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"failbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `failbench table | head` closed the pipe: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush is quiet
        return 0


if __name__ == "__main__":
    sys.exit(main())
