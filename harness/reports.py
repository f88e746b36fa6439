"""Render the reports: one papermill notebook per case plus a suite summary, converted to HTML
without code cells and linked from reports/index.html.

The notebooks compute nothing themselves: they call CaseReport, which calls harness.analysis, the
same functions `failbench check` uses, so a report and a CI verdict cannot disagree.
"""

from __future__ import annotations

import html
import os
import queue
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import pandas as pd

from failbench import analysis, plots
from failbench.contract import VERDICTS, Case
from failbench.discovery import CASES_DIR, load_case
from failbench.formatting import share_text
from failbench.tracking import open_store, resolve_uri

REPORTS_DIR = Path(__file__).resolve().parent.parent / "reports"
TEMPLATES = REPORTS_DIR / "templates"
KERNEL = "failbench"


def quiet() -> None:
    """What a report's kernel must not print: MLflow's "Downloading artifacts" progress bars (one
    per picture) and tqdm's warning that Jupyter widgets are missing. A report shows results; a
    real error still shows, as an error cell."""
    import warnings

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    warnings.filterwarnings("ignore", message="IProgress not found")


class CaseReport:
    """What one case's notebook shows, loaded once from the store."""

    def __init__(self, case_name: str, tracking_uri: str, profile: str, cases_root: str = ""):
        quiet()
        self.case = load_case(case_name, Path(cases_root) if cases_root else CASES_DIR)
        self.profile = profile
        self.tracker = open_store(tracking_uri or None)
        self.runs = analysis.load_runs(self.tracker, self.case, profile)

    @property
    def empty(self) -> bool:
        return self.runs.empty

    @property
    def order(self) -> list[str]:
        present = set(self.runs.get("variant", []))
        return [v for v in self.case.variants if v in present]

    def intro(self) -> str:
        """The case README up to its first section (the post and the symptom), then the fixes."""
        path = self.case.folder / "README.md"
        readme = path.read_text() if path.exists() else f"# {self.case.name}\n\n{self.case.title}"
        head = re.split(r"^## ", readme, maxsplit=1, flags=re.M)[0].strip()
        fixes = "\n".join(f"- **{f.name}** (`{dict(f.change)}`): {f.why}" for f in self.case.fixes)
        return f"{head}\n\n**Candidate fixes**, each one change:\n\n{fixes}"

    def no_runs(self) -> str:
        return (
            f"**No runs of `{self.case.name}` on the `{self.profile}` profile** in "
            f"`{self.tracker.uri}` (for the case's current code). Make them with\n\n"
            f"    failbench run {self.case.name} --profile {self.profile}\n\n"
            "then render this report again with `failbench report`."
        )

    def absent(self, section: str) -> str:
        """Why a section is empty: no runs yet, or the case declares nothing for it."""
        if self.empty:
            return f"_No runs yet: `failbench run {self.case.name}` makes the {section}._"
        return {"trade-off": "_This case declares no trade-off._", "pictures": "_This case logs no pictures._"}[section]

    @cached_property
    def expectations(self) -> pd.DataFrame:
        table = analysis.evaluate(self.case, self.runs, self.profile)
        table["result"] = [analysis.result_label(ok, thin) for ok, thin in zip(table["passed"], table["thin"])]
        table["share"] = table["share"].map(share_text)
        return table[["variant", "where", "expected", "observed", "share", "result", "why"]]

    def results(self) -> pd.DataFrame:
        """Per variant and axis point: seeds, each verdict's share with its interval, medians."""
        table = analysis.summary_table(self.case, self.runs)
        for verdict in VERDICTS:
            table[verdict] = table[verdict].map(share_text)
        return table

    def curves_pngs(self) -> list[tuple[str, bytes]]:
        """(metric, PNG) for each key metric logged at more than two steps."""
        metrics = self.case.key_metrics
        history = analysis.step_history(self.tracker, self.runs, metrics)
        return [(m, plots.png(plots.curves(history, m, self.order))) for m in plots.stepped_metrics(history, metrics)]

    def finals_png(self) -> bytes:
        return plots.png(plots.finals(self.runs, self.case.key_metrics, self.order))

    def tradeoff_png(self) -> bytes | None:
        x_y = self.case.tradeoff
        if not x_y or not set(x_y) <= set(self.runs.columns):
            return None
        lines = {t.metric: t.value for t in self.case.symptom.all_of}
        return plots.png(plots.tradeoff(self.runs, *x_y, self.order, lines))

    def pictures_png(self) -> bytes | None:
        if not self.case.pictures:
            return None
        paths = analysis.picture_paths(
            self.tracker, self.runs, self.case.pictures, seed=0, where=dict(self.case.picture_where)
        )
        paths = {v: p for v, p in paths.items() if p}
        return plots.png(plots.pictures(paths, self.case.pictures, self.order)) if paths else None


def summary_rows(
    case_names: list[str], tracking_uri: str, profile: str, cases_root: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every case x expectation with its verdict; each case's environment and compute time; and
    the cells of the verdict heatmap (case, variant, axis point, verdict shares, seeds)."""
    verdicts, environment, cells = [], [], []
    for name in case_names:
        report = CaseReport(name, tracking_uri, profile, cases_root)
        if report.empty:
            environment.append({"case": name, "runs": 0})
            continue
        table = report.expectations.assign(case=name)
        verdicts.append(table)
        runs = report.runs
        environment.append(
            {
                "case": name,
                "runs": len(runs),
                "torch": ", ".join(sorted(runs["torch_version"].dropna().unique())),
                "device": ", ".join(sorted(runs["device"].dropna().unique())),
                "commit": ", ".join(sorted(c[:12] for c in runs["git_commit"].dropna().unique())),
                "compute_s": round(float(runs["seconds"].sum()), 1) if "seconds" in runs else None,
                "passed": f"{int((table['result'] == 'pass').sum())}/{len(table)}",
            }
        )
        cells.append(heatmap_cells(report.case, runs, report.order))
    columns = ["case", "variant", "where", "expected", "observed", "share", "result"]
    all_verdicts = pd.concat(verdicts)[columns] if verdicts else pd.DataFrame(columns=columns)
    all_cells = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame()
    return all_verdicts, pd.DataFrame(environment), all_cells


def judge_cases(
    case_names: list[str], tracking_uri: str, profile: str, cases_root: str = "", workers: int = 1
) -> pd.DataFrame:
    """`detect.judge_in_processes` for the detectors page: the page that takes longest (every rule
    on every run's trace), it would otherwise run on one core while the other pages are long done."""
    from failbench.scoring import judge_in_processes

    return judge_in_processes(case_names, tracking_uri, profile, cases_root, workers)


def heatmap_cells(case: Case, runs: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One row per variant x axis point: the share of seeds per verdict and the seed count, from
    the same `analysis.summary_table` the case pages print."""
    table = analysis.summary_table(case, runs, metrics=())
    axes = [c for c in table.columns if c.startswith("axis.")]
    table["point"] = [
        "\n".join(f"{c[len('axis.') :]}={row[c]}" for c in axes) or "all" for row in table.to_dict("records")
    ]
    # the colour: the share of seeds not cured (an unlearned run is no cure); the label: counts
    table["not_cured"] = table["cured"].map(lambda s: 1.0 - s.value)
    for verdict in ("symptom", "unlearned", "diverged"):
        table[verdict] = table[verdict].map(lambda s: s.k)
    table["variant"] = pd.Categorical(table["variant"], order, ordered=True)
    table = table.sort_values(["variant", "point"])
    table["variant"] = table["variant"].astype(str)
    columns = ["case", "variant", "point", "not_cured", "symptom", "unlearned", "diverged", "seeds"]
    return table.assign(case=case.name)[columns]


def ensure_kernel() -> None:
    """Register a Jupyter kernel that runs this very Python (the project's venv), once."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL not in KernelSpecManager().find_kernel_specs():
        from ipykernel.kernelspec import install

        install(kernel_name=KERNEL, display_name="failbench (.venv)", prefix=sys.prefix)


@contextmanager
def _kernel(sockets: Path) -> Iterator:
    """A kernel of the project's venv, started in the repository root, that talks over local IPC
    sockets in a private folder (nothing listens on TCP, so the kernel has no cause to warn about
    unencrypted ports); shut down on exit. One worker renders its pages on it one after another:
    each page re-runs its parameters and every cell, and imports done for an earlier page (pandas,
    matplotlib, torch, MLflow: ~4 s) are not paid again."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=KERNEL, transport="ipc", ip=str(sockets / "kernel"))
    try:
        # papermill's own `cwd` would os.chdir this whole process, which is not safe beside other threads
        km.start_kernel(cwd=str(REPORTS_DIR.parent), extra_arguments=["--HistoryManager.hist_file=:memory:"])
        yield km
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)


def _execute(template: str, output: Path, parameters: dict, km) -> None:
    import papermill

    papermill.execute_notebook(
        str(TEMPLATES / template), str(output), parameters=parameters, kernel_name=KERNEL, progress_bar=False, km=km
    )


def _to_html(notebook: Path) -> Path:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_filename(str(notebook))
    target = notebook.with_suffix(".html")
    target.write_text(body)
    return target


def render(
    case_names: list[str],
    tracking_uri: str,
    profile: str,
    out_dir: Path | None = None,
    log=print,
    cases_root: Path | None = None,
    workers: int | None = None,
) -> Path:
    """Render each case's report and the summary; write index.html; return its path. `cases_root`
    is where the cases live (default: cases/; the tests render a fixture case).

    The pages render `workers` at a time (default: one per CPU core this process may use), each
    worker on a kernel of its own that renders its pages one after another. The log lines and the
    index list the pages in the same order whatever finished first. The detectors page, the
    longest, starts first and judges the cases in `workers` processes of its own. A page that fails
    stops the pages not started yet; the ones already running finish (a kernel is never killed
    mid-cell), then the first failure in page order is raised, after the log lines of the pages
    before it."""
    root = str(cases_root or "")
    out_dir = out_dir or REPORTS_DIR / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    quiet()  # the kernels inherit this environment
    ensure_kernel()
    uri = resolve_uri(tracking_uri or None)
    common = {"tracking_uri": uri, "profile": profile, "cases_root": root}
    # (name, template, parameters), in the order of the log and of the index
    jobs = [(name, "case.ipynb", {"case_name": name, **common}) for name in case_names]
    jobs.append(("summary", "summary.ipynb", {"case_names": list(case_names), **common}))
    # the published diagnosis rules scored on the same runs (harness/scoring.py), judged here, before
    # any kernel or thread starts, by workers forked from this process (they start with its imports:
    # a kernel would spawn them, each importing torch and MLflow again); the page reads the result
    workers = workers or default_workers()
    with tempfile.TemporaryDirectory() as scratch:
        judged_path = _judge_for_the_page(case_names, uri, profile, root, workers, Path(scratch), log)
        parameters = {"case_names": list(case_names), **common, "workers": workers, "judged_path": judged_path}
        jobs.append(("detectors", "detectors.ipynb", parameters))
        pages = dict(_render_pages(jobs, out_dir, workers, log))
    index = out_dir.parent / "index.html" if out_dir == REPORTS_DIR / "out" else out_dir / "index.html"
    links = "\n".join(
        f'<li><a href="{html.escape(str(p.relative_to(index.parent)))}">{html.escape(n)}</a></li>'
        for n, p in [
            ("summary: every case, expected vs observed", pages["summary"]),
            ("diagnosis tools: the published rules scored on every case", pages["detectors"]),
            *((name, pages[name]) for name in case_names),
        ]
    )
    index.write_text(
        f"<!doctype html><meta charset='utf-8'><title>failbench reports</title>"
        f"<h1>failbench reports ({html.escape(profile)} profile)</h1>"
        f"<p>Store: <code>{html.escape(uri)}</code></p><ul>{links}</ul>\n"
    )
    return index


def _judge_for_the_page(case_names, uri, profile, root, workers, scratch: Path, log) -> str:
    """The judged table as a pickle for the detectors page, or "" where judging fails here (an
    unknown case: the page then judges, and fails, in its kernel like every other page)."""
    import multiprocessing

    from failbench.scoring import judge_in_processes

    start = time.perf_counter()
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    try:
        judged = judge_in_processes(list(case_names), uri, profile, root, workers, start_method=method)
    except Exception:  # reported by the page, in the order of the pages
        return ""
    path = scratch / "detectors_judged.pkl"
    judged.to_pickle(path)
    log(f"judged {len(judged)} run x tool pairs for the detectors page ({time.perf_counter() - start:.1f} s)")
    return str(path)


def default_workers() -> int:
    from failbench.scoring import default_workers as cores

    return cores()


# Started first because it takes longest (it reads and judges every run's trace), so that the
# other kernels render the case pages meanwhile instead of waiting for it at the end.
_LONGEST_FIRST = ("detectors",)


def _render_pages(jobs: list[tuple[str, str, dict]], out_dir: Path, workers: int, log) -> list[tuple[str, Path]]:
    """(name, HTML page) per job, in the order of `jobs`, rendered by `workers` threads, each on a
    kernel of its own (a process: the threads only wait for it). Each log line is written as soon as
    its page and every page before it are done; after a failure no page starts, then the first
    failure in page order is raised."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in sorted(range(len(jobs)), key=lambda i: jobs[i][0] not in _LONGEST_FIRST):  # stable
        todo.put(i)
    outcomes: queue.SimpleQueue[tuple[int, tuple[Path, float] | BaseException] | None] = queue.SimpleQueue()
    failed = threading.Event()
    kernels: list = []  # the workers' kernel managers, interrupted if render itself is (Ctrl-C)

    def worker(sockets: Path) -> None:
        try:
            with _kernel(sockets) as km:
                kernels.append(km)
                while not failed.is_set():
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    name, template, parameters = jobs[i]
                    start = time.perf_counter()
                    try:
                        page = _to_html(_run(out_dir, template, name, parameters, km))
                    except BaseException as exc:  # noqa: BLE001 - raised by render(), in page order
                        failed.set()
                        outcomes.put((i, exc))
                    else:
                        outcomes.put((i, (page, time.perf_counter() - start)))
        except BaseException as exc:  # noqa: BLE001 - the kernel did not start, or not stop
            failed.set()
            outcomes.put((-1, exc))
        finally:
            outcomes.put(None)  # this worker is done

    done: dict[int, tuple[Path, float] | BaseException] = {}
    logged = 0
    with tempfile.TemporaryDirectory(prefix="failbench-kernel-") as sockets:
        threads = []
        for w in range(max(1, min(workers, len(jobs)))):
            (Path(sockets) / str(w)).mkdir()
            threads.append(threading.Thread(target=worker, args=(Path(sockets) / str(w),), name=f"report-{w}"))
            threads[-1].start()
        try:
            running = len(threads)
            while running:
                try:  # a timeout, so that Ctrl-C is seen at once whichever thread the signal reached
                    outcome = outcomes.get(timeout=0.5)
                except queue.Empty:
                    continue
                if outcome is None:
                    running -= 1
                    continue
                done[outcome[0]] = outcome[1]
                while logged in done and not isinstance(done[logged], BaseException):
                    page, seconds = done[logged]
                    log(f"report {jobs[logged][0]}: {page} ({seconds:.1f} s)")
                    logged += 1
        except BaseException:  # Ctrl-C: the running cells (and their processes) are interrupted too
            for km in list(kernels):
                km.interrupt_kernel()
            raise
        finally:  # no page starts; each worker shuts its kernel down
            failed.set()
            for thread in threads:
                thread.join()
    errors = [done[i] for i in sorted(done) if isinstance(done[i], BaseException)]
    if errors:
        raise errors[0]
    return [(jobs[i][0], done[i][0]) for i in range(len(jobs))]


def _run(out_dir: Path, template: str, name: str, parameters: dict, km) -> Path:
    output = out_dir / f"{name}.ipynb"
    _execute(template, output, parameters, km)
    return output
