"""Reports render headless from a small temporary store: figures embedded, symptom table present,
no error cell, no stderr or progress text; a case with no runs gets a report that says how to make
them; the figures choose legible scales and never pool axis points."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import torch

from failbench.cli import main
from failbench.reports import render
from failbench.sweep import run_sweep
from tests.conftest import FIXTURE_CASES


def _streams(notebook_path) -> list:
    notebook = nbformat.read(notebook_path, as_version=4)
    return [o for c in notebook.cells for o in c.get("outputs", []) if o["output_type"] in ("stream", "error")]


def test_a_rendered_report_holds_no_stderr_progress_or_error_output(tracker, store_uri, toy, tmp_path):
    """The toy case's report and the summary, rendered as `failbench report` does: every output is
    a result (markdown, HTML, a picture); no stream (stderr warnings, "Downloading artifacts" bars)
    and no error, in the notebook or in the HTML."""
    run_sweep(toy, "quick", tracker, torch.device("cpu"), progress=False)
    tracker.flush()
    render(["toy"], store_uri, "quick", out_dir=tmp_path / "out", log=lambda _: None, cases_root=FIXTURE_CASES)
    for name in ("toy", "summary", "detectors"):
        assert _streams(tmp_path / "out" / f"{name}.ipynb") == [], name
        page = (tmp_path / "out" / f"{name}.html").read_text()
        assert 'data-mime-type="application/vnd.jupyter.stderr"' not in page
        assert 'data-mime-type="application/vnd.jupyter.stdout"' not in page
        for noise in ("Downloading artifacts", "TqdmWarning", "IProgress", "Traceback", "it/s]"):
            assert noise not in page, (name, noise)
    page = (tmp_path / "out" / "toy.html").read_text()
    # the loss curves and the finals (the toy declares no pictures, and the report says so)
    assert len(re.findall(r'<img[^>]* src="data:image/png;base64,', page)) == 2
    assert "This case logs no pictures" in page
    assert "2/2 (100% [34%-100%])" in page  # a share with its interval
    assert "pass (thin)" in page  # an expectation judged on few seeds is marked
    summary = (tmp_path / "out" / "summary.html").read_text()
    assert len(re.findall(r'<img[^>]* src="data:image/png;base64,', summary)) == 1


def test_two_workers_render_the_same_pages_and_log_lines_as_one(tracker, store_uri, toy, tmp_path):
    """Pages rendered side by side: the same files, the same log lines in the same order (the case
    pages, the summary, the detectors), the same index, whatever page finished first."""
    run_sweep(toy, "quick", tracker, torch.device("cpu"), progress=False)
    tracker.flush()
    rendered = {}
    for workers in (1, 2):
        lines = []
        out = tmp_path / f"w{workers}"
        index = render(
            ["toy"], store_uri, "quick", out_dir=out, log=lines.append, cases_root=FIXTURE_CASES, workers=workers
        )
        names = sorted(p.name for p in out.iterdir())
        pages = [re.match(r"report (\w+): (\S+) \(\d+\.\d s\)$", line).groups() for line in lines[1:]]
        assert re.match(r"judged \d+ run x tool pairs for the detectors page \(", lines[0])  # before the pages
        rendered[workers] = (names, [(n, str(Path(p).relative_to(out))) for n, p in pages], index.read_text())
    assert rendered[1] == rendered[2]
    names, pages, index = rendered[2]
    assert [n for n, _ in pages] == ["toy", "summary", "detectors"]
    assert names == sorted(
        ["index.html", *(f"{n}.{e}" for n in ("toy", "summary", "detectors") for e in ("ipynb", "html"))]
    )
    assert re.findall(r'href="([^"]+)"', index) == ["summary.html", "detectors.html", "toy.html"]


def test_a_failing_page_is_raised_after_the_pages_before_it_are_logged(store_uri, tmp_path):
    """A case that does not exist: its page fails in its kernel; render raises that error, logs no
    line for it and writes no index, though the other pages may have rendered beside it."""
    from papermill.exceptions import PapermillExecutionError

    lines = []
    with pytest.raises(PapermillExecutionError, match="unknown case"):
        render(
            ["toy", "no_such_case"],
            store_uri,
            "quick",
            out_dir=tmp_path / "out",
            log=lines.append,
            cases_root=FIXTURE_CASES,
            workers=2,
        )
    assert [line.split(":")[0] for line in lines if line.startswith("report")] == ["report toy"]
    assert not (tmp_path / "out" / "index.html").exists()


def test_the_detectors_page_judges_cases_in_processes_to_the_same_rows(tracker, store_uri, toy):
    """Cases shared among processes: the same rows in the same order as one process gives."""
    import pandas as pd

    from failbench import reports, scoring

    run_sweep(toy, "quick", tracker, torch.device("cpu"), progress=False)
    tracker.flush()
    serial = scoring.judge_cases(["toy", "toy"], store_uri, "quick", str(FIXTURE_CASES))
    shared = reports.judge_cases(["toy", "toy"], store_uri, "quick", str(FIXTURE_CASES), workers=2)
    assert len(serial) and serial["case"].tolist() == ["toy"] * len(serial)
    pd.testing.assert_frame_equal(shared, serial)


@pytest.mark.slow
def test_report_from_a_small_store_has_figures_and_the_symptom_table(store_uri, tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "relu_blowup",
                "--seeds",
                "2",
                "--quiet",
                "--variant",
                "baseline",
                "--variant",
                "leaky_relu",
                "--variant",
                "small_init+scaled_pixels",
            ]
        )
        == 0
    )
    index = render(["relu_blowup"], store_uri, "quick", out_dir=tmp_path / "out", log=lambda _: None)
    page = (tmp_path / "out" / "relu_blowup.html").read_text()
    curves = re.findall(r"<p><strong>(\w+)</strong></p>", page)  # one heading and figure per curve
    assert curves and set(curves) <= {"filter_min", "filter_max", "relu_zero_fraction", "loss", "accuracy"}
    assert len(re.findall(r'<img[^>]* src="data:image/png;base64,', page)) == len(curves) + 2  # finals, pictures
    assert "Expected vs observed" in page and "small_init+scaled_pixels" in page
    assert re.search(r"<td>baseline</td>\s*<td>all</td>\s*<td>symptom on &gt;= 70% of seeds", page)
    # missing variants fail, visibly; 2 seeds are thin
    assert "<td>pass (thin)</td>" in page and "<td>FAIL (thin)</td>" in page
    assert "Traceback" not in page
    notebook = nbformat.read(tmp_path / "out" / "relu_blowup.ipynb", as_version=4)
    assert not [o for c in notebook.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert "def " not in page, "code cells must not be in the HTML"
    summary = (tmp_path / "out" / "summary.html").read_text()
    assert "relu_blowup" in summary and "torch" in summary
    assert 'href="relu_blowup.html"' in index.read_text()


@pytest.mark.slow
def test_a_case_without_runs_gets_a_report_that_says_so(store_uri, tmp_path):
    render(["relu_blowup"], store_uri, "full", out_dir=tmp_path / "out", log=lambda _: None)
    page = (tmp_path / "out" / "relu_blowup.html").read_text()
    assert "No runs of" in page and "failbench run relu_blowup --profile full" in page
    assert "Traceback" not in page
    # relu_blowup logs pictures: an empty store must not say it does not
    assert "logs no pictures" not in page and "No runs yet" in page


def test_curves_never_pool_axis_points_and_leave_final_only_metrics_to_finals():
    import pandas as pd

    from failbench import plots

    rows = [
        {"variant": v, "seed": s, "metric": "loss", "step": t, "value": t * (1 + s), "axis.network": n, "axis.lr": lr}
        for v in ("baseline", "fix")
        for s in (0, 1)
        for t in (1, 2, 3, 4)
        for n in ("mlp", "conv", "lenet5")
        for lr in (5e-4, 1e-2)
    ]
    rows += [{**r, "metric": "test_accuracy", "step": 4} for r in rows if r["step"] == 4]
    history = pd.DataFrame(rows)
    assert plots.stepped_metrics(history, ("loss", "test_accuracy")) == ("loss",)
    fig = plots.curves(history, "loss", ["baseline", "fix"])
    titles = sorted(ax.get_title() for ax in fig.axes if ax.get_visible())
    assert len(titles) == 6 and "network = conv, lr = 0.01" in titles  # one loss panel per axis point
    assert {ax.get_ylabel() for ax in fig.axes if ax.get_visible()} == {"loss"}


def test_a_few_variants_share_one_panel():
    import pandas as pd

    from failbench import plots

    variants = ["baseline", "fix", "other"]
    history = pd.DataFrame(
        [
            {"variant": v, "seed": s, "metric": "loss", "step": t, "value": float(t + i + s)}
            for i, v in enumerate(variants)
            for s in (0, 1)
            for t in range(10)
        ]
    )
    [panel] = [ax for ax in plots.curves(history, "loss", variants).axes if ax.get_visible()]
    assert [line.get_label() for line in panel.lines] == variants


def test_ten_variants_get_a_panel_per_fix_beside_the_baseline():
    import pandas as pd

    from failbench import plots

    variants = ["baseline", *(f"fix{i}" for i in range(9))]
    history = pd.DataFrame(
        [
            {"variant": v, "seed": s, "metric": "loss", "step": t, "value": float(t + i + s)}
            for i, v in enumerate(variants)
            for s in (0, 1)
            for t in range(10)
        ]
    )
    fig = plots.curves(history, "loss", variants)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == variants[1:]
    for ax in panels:  # the baseline (black) and one fix, never ten lines in one panel
        assert len(ax.lines) == 2 and ax.lines[0].get_color() == "black"
        assert ax.lines[1].get_label() == ax.get_title()


@pytest.mark.parametrize(
    "values, scale",
    [
        ([-0.05, -0.01, 0.0, 0.02, 0.06], "linear"),  # a bias crossing zero within a decade
        ([0.4, 0.5, 0.7, 0.9, 1e-10], "linear"),  # one stray near-zero value decides nothing
        ([17.0, 18.5, 19.0], "linear"),
        ([1e3, 1e2, 10.0, 1.0, 0.1, 0.01], "log"),  # a loss falling five decades
        ([-5e4, -3e4, -1e3, -0.3, 0.1, 0.2], "symlog"),  # a filter at -5e4 beside cured ones at 0.1
    ],
)
def test_axis_scales_are_chosen_for_legibility(values, scale):
    from failbench.plots import choose_scale

    chosen, linthresh = choose_scale(values)
    assert chosen == scale
    if scale == "symlog":
        assert linthresh >= 0.01, "the linear band sits at the bulk's decade, not at a stray value"


def test_finals_tell_every_axis_point_apart():
    import pandas as pd

    from failbench import plots

    runs = pd.DataFrame(
        [
            {"variant": v, "seed": s, "axis.network": n, "axis.lr": lr, "verdict": "symptom", "test_accuracy": 0.1 + s}
            for v in ("baseline", "fix")
            for s in (0, 1)
            for n in ("mlp", "conv", "lenet5")
            for lr in (5e-4, 1e-2)
        ]
    )
    fig = plots.finals(runs, ("test_accuracy",), ["baseline", "fix"])
    legend = fig.axes[0].get_legend()
    labels = {t.get_text() for t in legend.get_texts()}
    assert len(labels) == 6 and "network=conv, lr=0.01" in labels


def test_pictures_shared_by_every_variant_are_shown_once_and_small_ones_magnified(tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    from failbench import plots

    paths = {}
    for i, variant in enumerate(("baseline", "fix")):
        paths[variant] = {}
        for name, value in (("input", 0.5), ("output", 0.2 * i)):
            path = tmp_path / f"{variant}-{name}.png"
            mpimg.imsave(path, np.full((32, 32), value), cmap="gray", vmin=0, vmax=1)
            paths[variant][name] = str(path)
    fig = plots.pictures(paths, ("input", "output"), ["baseline", "fix"])
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_visible()]
    assert labels == ["input\n(every variant)", "baseline", "fix"]
    height_px = fig.axes[0].get_window_extent().height * plots.DPI / fig.dpi
    assert height_px >= 4 * 32, "a 32 px picture is magnified at least 4x"


def test_tradeoff_marks_each_variants_median_and_the_symptom_line():
    import pandas as pd

    from failbench import plots

    runs = pd.DataFrame(
        {
            "variant": ["baseline"] * 3 + ["fix"] * 3,
            "psnr_db": [17, 18, 19, 15, 16, 17],
            "sharpness_ratio": [0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        }
    )
    fig = plots.tradeoff(
        runs,
        "psnr_db",
        "sharpness_ratio",
        ["baseline", "fix", "absent"],
        lines={"sharpness_ratio": 0.58, "unrelated": 1.0},
    )
    ax = fig.axes[0]
    crosses = {
        c.get_label(): c.get_offsets()[0].tolist() for c in ax.collections if c.get_label() in ("baseline", "fix")
    }
    assert crosses == {"baseline": [18.0, 0.5], "fix": [16.0, 0.8]}
    assert [line.get_ydata()[0] for line in ax.lines] == [0.58]  # the symptom's line, nothing else


def test_finals_draw_the_same_picture_every_time_and_leave_numpys_generator_alone():
    """The strip plot's jitter is seeded, so a page rendered twice from the same runs is the same;
    numpy's global generator is put back as it was."""
    import numpy as np
    import pandas as pd

    from failbench import plots

    runs = pd.DataFrame(
        [
            {"variant": v, "seed": s, "verdict": "symptom", "loss": 0.1 * s}
            for v in ("baseline", "fix")
            for s in range(10)
        ]
    )
    np.random.seed(1)
    expected = np.random.random()
    np.random.seed(1)
    first = plots.png(plots.finals(runs, ("loss",), ["baseline", "fix"]))
    assert np.random.random() == expected
    assert plots.png(plots.finals(runs, ("loss",), ["baseline", "fix"])) == first
