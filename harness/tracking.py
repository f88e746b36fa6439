"""MLflow tracking: one experiment per case, a parent run per sweep, a child run per grid point.

Defaults to an embedded SQLite store in the working directory; MLFLOW_TRACKING_URI (or
--tracking-uri) points at a real server instead.

What a grid point costs to track, and why it is written the way it is (mlflow 3.17, SQLAlchemy 2.1,
a 2-core machine): a SQLite commit in the default rollback-journal mode waits ~7 ms for fsync, and
MLflow commits ~12 times per point, so the store is switched to write-ahead logging with
synchronous=NORMAL (a commit then waits for no fsync; a crash of the process loses nothing, a power
cut at most the last commits, never the database). Each metric value costs ~0.1 ms of CPU in
SQLAlchemy's ORM, and a point logs 350-530 of them, so the full step history goes into one CSV
artifact (history.csv, with the pictures, in one artifact call) and MLflow's metrics hold at most
`CURVE_POINTS` evenly spaced steps per metric (enough to draw the curve in the UI) plus every final
value. The writes happen on one background thread, so a sweep keeps collecting results while the
previous point is written; it is still the store's single writer.
"""

from __future__ import annotations

import csv
import json
import os
import queue
import socket
import sqlite3
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from failbench.grid import flat_params

DEFAULT_URI = "sqlite:///mlflow.db"
ENV_URI = "MLFLOW_TRACKING_URI"
# MLflow's own caps per log_batch call.
_MAX_METRICS, _MAX_PARAMS = 1000, 100
# Steps per metric kept in MLflow's metric history: the UI draws the curve from them; every step is
# in the history.csv artifact. 25 points show a plateau, a collapse or a blow-up; a case logs ~100.
CURVE_POINTS = 25
HISTORY_ARTIFACT = "history.csv"
# Grid points waiting for the writer before `log_point` blocks (memory stays bounded).
_QUEUE_SIZE = 32
# The MLflow UI (3.x) opens in its GenAI mode (traces, token usage) unless told otherwise: the URL
# parameter is what its "Model training" switch sets (mlflow 3.17's UI reads it before the browser's
# stored choice); the experiment tag is how an experiment declares its kind where the UI reads that.
UI_MODE = "workflowType=machine_learning"
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# A view of the runs table that the UI loads from an experiment tag when the URL carries
# ?viewStateShareKey=<key>: the same mechanism as its "Share" button.
VIEW_TAG_PREFIX, VIEW_KEY = "mlflow.sharedViewState.", "failbench"
_SQLITE_HEADER = b"SQLite format 3\x00"
TRACE_ARTIFACT = "trace.parquet"  # each run's per-layer trace, tidy: step, layer, kind, activation, stat, value


class TrackingError(Exception):
    """The store cannot be used (unreachable server, missing file, not a store); one line for the user."""


def resolve_uri(explicit: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else ./mlflow.db (made absolute so that workers
    and the UI started elsewhere find the same store)."""
    uri = explicit or os.environ.get(ENV_URI) or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(sqlite_path(uri).resolve())
    return uri


def is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")


def sqlite_path(uri: str) -> Path:
    """The database file of a sqlite:///PATH URI (PATH relative to the working directory unless it
    starts with a fourth slash)."""
    return Path(uri[len("sqlite:///") :])


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before anything is written, if the store cannot be reached."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as reply:
                if reply.status != 200:
                    raise TrackingError(f"tracking server {uri} answered {reply.status} on /health")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(f"tracking server {uri} cannot be reached: {reason}") from None
    elif is_local_sqlite(uri):
        folder = sqlite_path(uri).parent
        if not folder.is_dir():
            raise TrackingError(f"tracking store folder {folder} does not exist")
    elif not uri.startswith(("file:", "/", "databricks", "postgresql", "mysql", "mssql")):
        raise TrackingError(f"unsupported tracking URI {uri!r}; use sqlite:///PATH, http(s)://HOST:PORT")


def check_store(uri: str, create: bool) -> None:
    """Everything that can be known about a store before MLflow touches it, so a bad one is refused
    in one line with nothing written: an unreachable server, a missing SQLite file (unless `create`:
    only `failbench run` makes a store), a file that is not SQLite, a SQLite file that is not an
    MLflow store, a store of another MLflow schema."""
    check_reachable(uri)
    if not is_local_sqlite(uri):
        return
    path = sqlite_path(uri)
    if not path.exists():
        if create:
            return
        raise TrackingError(f"no MLflow store at {path}; `failbench run` makes one (or pass --tracking-uri)")
    if not path.is_file():
        raise TrackingError(f"{path} is not a file, so not an MLflow SQLite store")
    with path.open("rb") as handle:
        header = handle.read(len(_SQLITE_HEADER))
    if header and header != _SQLITE_HEADER:
        raise TrackingError(f"{path} is not a SQLite database, so not an MLflow store")
    try:
        # immutable: read without locks, so no -wal/-shm file is left beside a store refused
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            tables = {r[0] for r in connection.execute("select name from sqlite_master where type = 'table'")}
            revision = (
                (connection.execute("select version_num from alembic_version").fetchone() or [None])[0]
                if "alembic_version" in tables
                else None
            )
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise TrackingError(f"{path} cannot be read as a SQLite database ({exc})") from None
    if not tables:  # an empty SQLite file: a store MLflow has not set up yet
        if create:
            return
        raise TrackingError(f"{path} holds no MLflow store yet; `failbench run` makes one")
    if revision is None or "runs" not in tables:
        raise TrackingError(f"{path} is a SQLite database but not an MLflow store")
    _check_schema(path, uri, revision)


def _check_schema(path: Path, uri: str, revision: str) -> None:
    import mlflow
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError
    from mlflow.store.db.utils import _get_alembic_config

    script = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
    head = script.get_current_head()
    if revision == head:
        return
    try:
        known = script.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise TrackingError(
            f"{path} has an MLflow schema ({revision}) newer than this MLflow "
            f"{mlflow.__version__} knows ({head}); use the MLflow that wrote it, or another store"
        )
    raise TrackingError(f"{path} has an older MLflow schema ({revision}); back it up, then `mlflow db upgrade {uri}`")


_PRAGMAS_SET = False


def _cheap_sqlite_commits() -> None:
    """synchronous=NORMAL on every SQLite connection this process opens (a per-connection setting,
    nothing written): in WAL mode a commit then waits for no fsync."""
    global _PRAGMAS_SET
    if _PRAGMAS_SET:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _normal_sync(dbapi_connection, _record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    _PRAGMAS_SET = True


def _sqlite_pragma(path: Path, pragma: str) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"PRAGMA {pragma}")
    finally:
        connection.close()


def _use_wal(path: Path) -> None:
    """Write-ahead logging, a property of the database file (it persists). Creates the file when it
    does not exist yet; MLflow then sets up its tables in it."""
    _sqlite_pragma(path, "journal_mode=WAL")


def _checkpoint(path: Path) -> None:
    """Moves what the write-ahead log holds into the database file, so that mlflow.db alone is a
    complete store (to copy, to attach to a bug report) whenever no point is being written."""
    _sqlite_pragma(path, "wal_checkpoint(TRUNCATE)")


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a run's artifacts when the store keeps them on this machine (file: URIs), else None."""
    if not artifact_uri.startswith("file:"):
        return None
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(artifact_uri).path))


def curve_steps(steps: list[int], points: int = CURVE_POINTS) -> list[int]:
    """At most `points` of `steps`, evenly spaced, always the first and the last (where a run
    diverged, its last finite step)."""
    if len(steps) <= points:
        return list(steps)
    picks = sorted({round(i * (len(steps) - 1) / (points - 1)) for i in range(points)})
    return [steps[i] for i in picks]


def write_history(history: list[tuple[int, dict[str, float]]], path: Path) -> None:
    """The whole step history as one wide CSV: a row per logged step, a column per metric, empty
    where a metric was not logged at that step."""
    names = list(dict.fromkeys(name for _, values in history for name in values))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *names])
        for step, values in history:
            writer.writerow([step, *(repr(values[n]) if n in values else "" for n in names)])


def _curve_metrics(history: list[tuple[int, dict[str, float]]], now: int) -> list:
    from mlflow.entities import Metric

    per_metric: dict[str, list[tuple[int, float]]] = {}
    for step, values in history:
        for name, value in values.items():
            per_metric.setdefault(name, []).append((step, value))
    metrics = []
    for name, points in per_metric.items():
        keep = set(curve_steps([s for s, _ in points]))
        metrics += [Metric(name, value, now, step) for step, value in points if step in keep]
    return metrics


def _save_png(picture: Any, path: Path) -> None:
    import numpy as np
    from PIL import Image

    pixels = np.asarray(picture, dtype=np.float32)
    Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)).save(path)


def checked_uri(uri: str | None = None, *, write: bool = False) -> str:
    """`uri` (else $MLFLOW_TRACKING_URI, else ./mlflow.db), resolved and checked (`check_store`)
    without opening it: for a command whose workers open their own (`failbench detect`)."""
    resolved = resolve_uri(uri)
    check_store(resolved, create=write)
    return resolved


def open_store(uri: str | None = None, *, write: bool = False) -> Tracker:
    """The one door to a store: `checked_uri`, then opened. Only a run writes (`write=True`: a
    missing local store is made, in WAL mode); every other caller reads, is refused a missing or
    foreign store (TrackingError, one line, nothing written) and never changes the file (no WAL
    pragma, no checkpoint)."""
    return Tracker(checked_uri(uri, write=write), writable=write)


class Tracker:
    """A thin, timed layer over MlflowClient, which owns the store's schema and its reads.

    `seconds` is the time the caller spent in MLflow or waiting for the writer (what tracking adds
    to a sweep's wall time); `writer_seconds` is the background writer's own busy time (what
    tracking costs in CPU, overlapped with training)."""

    def __init__(self, uri: str, writable: bool = True):
        # MLflow's usage telemetry: a background sender per process, and no network here.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        if writable and is_local_sqlite(uri) and sqlite_path(uri).parent.is_dir():
            _use_wal(sqlite_path(uri))  # before MLflow's engine opens it
        _cheap_sqlite_commits()
        from mlflow import MlflowClient  # heavy import, deferred until a store is really used

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self._wal = writable and is_local_sqlite(uri) and sqlite_path(uri).parent.is_dir()
        if self._wal:
            self.client.search_experiments(max_results=1)  # MLflow sets up a new store's tables here
            _checkpoint(sqlite_path(uri))
        self.seconds = 0.0
        self.writer_seconds = 0.0
        self._queue: queue.Queue | None = None
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None
        self._views: set[str] = set()
        self._downloads: tempfile.TemporaryDirectory | None = None  # a server's artifacts, read once

    @contextmanager
    def _timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start

    # ---- experiments and reads --------------------------------------------------------------

    def experiment_id(self, case_name: str, create: bool = True) -> str | None:
        self.flush()
        with self._timed():
            experiment = self.client.get_experiment_by_name(case_name)
            if experiment is not None:
                if create and experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
                    self._label(experiment.experiment_id)  # a store made before the tags existed
                return experiment.experiment_id
            if not create:
                return None
            experiment_id = self.client.create_experiment(case_name, artifact_location=self._artifact_root(case_name))
            self._label(experiment_id)
            return experiment_id

    def _label(self, experiment_id: str) -> None:
        """The tag the MLflow UI reads to open the experiment as model training."""
        self.client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND)

    def _artifact_root(self, case_name: str) -> str | None:
        """Beside a SQLite store: <store folder>/mlruns/<case>. MLflow's own default is ./mlruns in
        whatever folder the first run happened to start from, which splits one store's pictures
        between folders. A server keeps its own artifact root (None)."""
        if not is_local_sqlite(self.uri):
            return None
        return (sqlite_path(self.uri).parent / "mlruns" / case_name).resolve().as_uri()

    def ui_links(self, base: str) -> list[tuple[str, str]]:
        """(case, link) per experiment: its runs in the UI, on the failbench view where a sweep
        stored one. Experiments of a store made before the kind tag existed are labelled now."""
        with self._timed():
            found = self.client.search_experiments()
            links = []
            for experiment in sorted(found, key=lambda e: e.name):
                if experiment.name == "Default":
                    continue
                if experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
                    self._label(experiment.experiment_id)
                view = f"{VIEW_TAG_PREFIX}{VIEW_KEY}" in experiment.tags
                url = f"{base.rstrip('/')}/#/experiments/{experiment.experiment_id}/runs?{UI_MODE}"
                links.append((experiment.name, f"{url}&viewStateShareKey={VIEW_KEY}" if view else url))
            return links

    def runs(self, experiment_id: str, filter_string: str = "") -> list:
        """Every run matching `filter_string`, across pages."""
        self.flush()
        found, token = [], None
        with self._timed():
            while True:
                page = self.client.search_runs(
                    [experiment_id], filter_string=filter_string, max_results=5000, page_token=token
                )
                found.extend(page)
                token = page.token
                if not token:
                    return found

    def finished_points(self, experiment_id: str, code_hash: str) -> set[str]:
        runs = self.runs(experiment_id, f"tags.code_hash = '{code_hash}' and attributes.status = 'FINISHED'")
        return {r.data.tags["point_hash"] for r in runs if "point_hash" in r.data.tags}

    def artifact(self, run_id: str, name: str, artifact_uri: str | None = None) -> Path | None:
        """A local path to one of the run's artifacts, or None where the run has none of that name.
        A local store's file is read in place (no copy: ~10 ms a run saved against MLflow's download);
        a server's is downloaded into a folder that lives as long as this tracker."""
        self.flush()
        with self._timed():
            uri = artifact_uri or self.client.get_run(run_id).info.artifact_uri
            local = local_artifact_dir(uri)
            if local is not None:
                path = local / name
                return path if path.exists() else None
            folder, leaf = str(Path(name).parent), Path(name).name
            listed = {Path(a.path).name for a in self.client.list_artifacts(run_id, None if folder == "." else folder)}
            if leaf not in listed:
                return None
            if self._downloads is None:
                self._downloads = tempfile.TemporaryDirectory(prefix="failbench-artifacts-")
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            return Path(self.client.download_artifacts(run_id, name, str(Path(self._downloads.name) / run_id)))

    def history(
        self, run_id: str, metrics: tuple[str, ...], artifact_uri: str | None = None
    ) -> list[tuple[str, list[int], list[float]]]:
        """(metric, steps, values) of each of `metrics` a run logged: every step, from its
        history.csv; runs tracked before that artifact existed fall back to MLflow's metric history."""
        path = self.artifact(run_id, HISTORY_ARTIFACT, artifact_uri)
        if path is None:
            found = []
            with self._timed():
                for metric in metrics:
                    points = self.client.get_metric_history(run_id, metric)
                    if points:
                        found.append((metric, [m.step for m in points], [m.value for m in points]))
            return found
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        header, body = rows[0], rows[1:]
        found = []
        for metric in metrics:
            if metric not in header:
                continue
            column = header.index(metric)
            pairs = [(int(r[0]), float(r[column])) for r in body if r[column] != ""]
            if pairs:
                found.append((metric, [s for s, _ in pairs], [v for _, v in pairs]))
        return found

    def trace(self, run_id: str, artifact_uri: str | None = None):
        """The run's per-layer trace (harness/trace.py) as a DataFrame, or None for a run stored
        without one."""
        import pandas as pd

        path = self.artifact(run_id, TRACE_ARTIFACT, artifact_uri)
        return None if path is None else pd.read_parquet(path)

    def pictures(self, run_id: str, names: tuple[str, ...], artifact_uri: str | None = None) -> dict[str, str]:
        """picture name -> local PNG path, for the pictures among `names` the run logged."""
        found = {n: self.artifact(run_id, f"images/{n}.png", artifact_uri) for n in names}
        return {n: str(p) for n, p in found.items() if p is not None}

    @staticmethod
    def sweep_filter(sweep_id: str) -> str:
        """The search filter for the grid points one sweep (a parent run) wrote."""
        return f"tags.`mlflow.parentRunId` = '{sweep_id}'"

    def ui_command(self, host: str, port: int) -> list[str]:
        """The command line that serves the MLflow UI on this store."""
        import sys

        return [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            self.uri,
            "--host",
            host,
            "--port",
            str(port),
        ]

    # ---- writes -------------------------------------------------------------------------------

    def start_sweep(self, experiment_id: str, tags: dict[str, str]) -> str:
        self.close_abandoned(experiment_id)
        with self._timed():
            run = self.client.create_run(
                experiment_id,
                tags={**tags, "sweep": "true", "host": socket.gethostname(), "pid": str(os.getpid())},
                run_name=f"sweep {tags['profile']} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            )
            return run.info.run_id

    def close_abandoned(self, experiment_id: str) -> list[str]:
        """Marks KILLED the runs a sweep left RUNNING when it was killed (kill -9, a power cut): its
        parent run, when that sweep's process on this host is gone, and the child it was writing.
        They were never counted (only FINISHED runs are), but should not read as running forever.
        A sweep on another host, or one still alive here, is left alone. Returns the run ids closed."""
        running = self.runs(experiment_id, "attributes.status = 'RUNNING'")
        host = socket.gethostname()
        dead = {
            r.info.run_id
            for r in running
            if r.data.tags.get("sweep") == "true"
            and r.data.tags.get("host") == host
            and not _alive(r.data.tags.get("pid"))
        }
        live_parents = {r.info.run_id for r in running if r.data.tags.get("sweep") == "true"} - dead
        closed = [
            r.info.run_id
            for r in running
            if r.info.run_id in dead
            or (r.data.tags.get("sweep") != "true" and r.data.tags.get("mlflow.parentRunId") not in live_parents)
        ]
        with self._timed():
            for run_id in closed:
                self.client.set_terminated(run_id, status="KILLED")
        return closed

    def end_sweep(self, run_id: str, status: str = "FINISHED", **metrics: float) -> None:
        from mlflow.entities import Metric

        self.flush()
        with self._timed():
            now = int(time.time() * 1000)
            metrics["tracking_writer_seconds"] = self.writer_seconds
            self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
            self.client.set_terminated(run_id, status=status)
            if self._wal:
                _checkpoint(sqlite_path(self.uri))

    def log_point(self, experiment_id: str, parent_id: str, result: Any, tags: dict[str, str]) -> None:
        """Queues one finished grid point for the writer; `flush` waits until it is in the store."""
        self._raise_writer_error()
        if self._writer is None:
            self._queue = queue.Queue(maxsize=_QUEUE_SIZE)
            self._writer = threading.Thread(target=self._write_loop, name="failbench-tracking", daemon=True)
            self._writer.start()
        with self._timed():  # blocks only when the writer is _QUEUE_SIZE points behind
            self._queue.put((experiment_id, parent_id, result, tags))

    def flush(self) -> None:
        """Waits until every queued point is written; raises what the writer met."""
        if self._queue is not None:
            with self._timed():
                self._queue.join()
        self._raise_writer_error()

    def _raise_writer_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            start = time.perf_counter()
            try:
                if self._error is None:  # after a failure the rest is dropped: those points re-run
                    self.write_point(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self._error = exc
            finally:
                self.writer_seconds += time.perf_counter() - start
                self._queue.task_done()

    @staticmethod
    def _write_artifacts(result: Any, folder: Path) -> None:
        """history.csv, trace.parquet (harness/trace.py) and images/<name>.png, the run's artifacts."""
        folder.mkdir(parents=True, exist_ok=True)
        write_history(result.history, folder / HISTORY_ARTIFACT)
        if getattr(result, "trace", None) is not None and not result.trace.empty:
            result.trace.to_parquet(folder / TRACE_ARTIFACT, index=False)
        if result.images:
            (folder / "images").mkdir(exist_ok=True)
        for name, picture in result.images.items():
            _save_png(picture, folder / "images" / f"{name}.png")

    def write_point(self, experiment_id: str, parent_id: str, result: Any, tags: dict[str, str]) -> str:
        """One finished grid point as a child run: tags (at creation), params, curve metrics and
        every final metric in one batch, then history.csv and the pictures in one artifact call. It
        is marked FINISHED last, so a point interrupted while being written is run again."""
        from mlflow.entities import Metric, Param

        # The run's Duration in the UI is its training time, not the time the writer took to store it.
        started_ms = int(result.started_at * 1000) if result.started_at else None
        run = self.client.create_run(
            experiment_id,
            start_time=started_ms,
            run_name=result.point.label(),
            tags={"mlflow.parentRunId": parent_id, **{k: str(v) for k, v in tags.items()}},
        )
        run_id = run.info.run_id
        if experiment_id not in self._views:
            self.client.set_experiment_tag(
                experiment_id, f"{VIEW_TAG_PREFIX}{VIEW_KEY}", json.dumps(runs_view(tuple(result.point.axes_dict)))
            )
            self._views.add(experiment_id)
        now = int(time.time() * 1000)
        params = [Param(k, str(v)) for k, v in flat_params(result.config).items()]
        params.append(Param("variant", result.point.variant))
        metrics = _curve_metrics(result.history, now)
        metrics += [Metric(f"final/{k}", v, now, 0) for k, v in result.metrics.items()]
        metrics.append(Metric("final/seconds", result.seconds, now, 0))
        batches = max(-(-len(params) // _MAX_PARAMS), -(-len(metrics) // _MAX_METRICS), 1)
        for i in range(batches):
            self.client.log_batch(
                run_id,
                params=params[i * _MAX_PARAMS : (i + 1) * _MAX_PARAMS],
                metrics=metrics[i * _MAX_METRICS : (i + 1) * _MAX_METRICS],
            )
        local = local_artifact_dir(run.info.artifact_uri)
        if local is not None:  # a local store: written in place, no copy
            self._write_artifacts(result, local)
        else:
            with tempfile.TemporaryDirectory(prefix="failbench-run-") as tmp:
                self._write_artifacts(result, Path(tmp))
                self.client.log_artifacts(run_id, tmp)
        ended_ms = started_ms + int(result.seconds * 1000) if started_ms else None
        self.client.set_terminated(run_id, status="FINISHED", end_time=ended_ms)
        return run_id


def _alive(pid: str | None) -> bool:
    """Whether a process of this id runs on this host (a sweep without a pid tag counts as alive)."""
    if not pid:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def runs_view(axes: tuple[str, ...]) -> dict:
    """The runs table the UI opens with from `ui_links`: the grid points (the runs with a verdict),
    grouped by variant, each row told apart by its axes (config params) and seed, with its verdict;
    newest first. Grouping also lifts the grid points out from under their sweep's parent run, where
    the UI would fold them. Keys as the UI's own "Share" button writes them (mlflow 3.17)."""
    return {
        "searchFilter": "tags.verdict LIKE '%'",
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "selectedColumns": [*(f"params.`{a}`" for a in axes), "tags.`variant`", "tags.`verdict`", "tags.`seed`"],
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "variant"}]},
    }


def point_tags(
    result: Any, case_name: str, code_hash: str, env_hash: str, config_hash: str, point_hash: str, commit: str
) -> dict[str, str]:
    import torch

    from failbench.identity import cpu_model, environment

    p = result.point
    return {
        "case": case_name,
        "variant": p.variant,
        "axes": json.dumps(p.axes_dict, sort_keys=True),
        "seed": str(p.seed),
        "profile": p.profile,
        "overrides": json.dumps(dict(p.overrides), sort_keys=True),
        "device": result.device,
        "threads": str(result.threads),
        "torch_version": torch.__version__,
        "cpu_capability": environment()["cpu_capability"],
        "cpu_model": cpu_model(),
        "git_commit": commit,
        "code_hash": code_hash,
        "env_hash": env_hash,
        "config_hash": config_hash,
        "point_hash": point_hash,
        "verdict": result.verdict,
        **({"diverged_at_step": str(result.diverged_at_step)} if result.diverged_at_step is not None else {}),
    }
