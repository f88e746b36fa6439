"""MLflow tracking: one experiment per case, a parent run per sweep, a child run per grid point.

Defaults to an embedded SQLite store in the working directory; MLFLOW_TRACKING_URI (or
--tracking-uri) points at a real server instead. Everything goes through MlflowClient.log_batch:
on SQLite a single log_metric costs 12-16 ms, a value in a batch about 0.3 ms (mlflow 3.17, measured
on a 2-core machine), so step metrics are sent in batches after the point has run.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness.grid import flat_params

DEFAULT_URI = "sqlite:///mlflow.db"
ENV_URI = "MLFLOW_TRACKING_URI"
# MLflow's own caps per log_batch call.
_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100
TRACE_ARTIFACT = "trace.parquet"  # each run's per-layer trace, tidy: step, layer, kind, activation, stat, value


class TrackingError(Exception):
    """The store cannot be used (unreachable server, missing folder); one line for the user."""


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
    return Path(uri[len("sqlite:///"):])


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


def git_commit() -> str:
    """The commit of the checkout, with '-dirty' when it has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Tracker:
    """A thin, timed layer over MlflowClient. `seconds` is the time spent in MLflow calls, so a
    sweep can report what share of its wall time tracking costs."""

    def __init__(self, uri: str):
        from mlflow import MlflowClient  # heavy import, deferred until a store is really used

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.seconds = 0.0

    @contextmanager
    def _timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start

    def experiment_id(self, case_name: str, create: bool = True) -> str | None:
        with self._timed():
            experiment = self.client.get_experiment_by_name(case_name)
            if experiment is not None:
                return experiment.experiment_id
            if not create:
                return None
            return self.client.create_experiment(case_name, artifact_location=self._artifact_root(case_name))

    def _artifact_root(self, case_name: str) -> str | None:
        """Beside a SQLite store: <store folder>/mlruns/<case>. MLflow's own default is ./mlruns in
        whatever folder the first run happened to start from, which splits one store's pictures
        between folders. A server keeps its own artifact root (None)."""
        if not is_local_sqlite(self.uri):
            return None
        return (sqlite_path(self.uri).parent / "mlruns" / case_name).resolve().as_uri()

    def runs(self, experiment_id: str, filter_string: str = "") -> list:
        """Every run matching `filter_string`, across pages."""
        found, token = [], None
        with self._timed():
            while True:
                page = self.client.search_runs([experiment_id], filter_string=filter_string,
                                               max_results=5000, page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    return found

    def finished_points(self, experiment_id: str, source_hash: str) -> set[str]:
        runs = self.runs(experiment_id, f"tags.source_hash = '{source_hash}' "
                                        "and attributes.status = 'FINISHED'")
        return {r.data.tags["point_hash"] for r in runs if "point_hash" in r.data.tags}

    def start_sweep(self, experiment_id: str, tags: dict[str, str]) -> str:
        with self._timed():
            run = self.client.create_run(experiment_id, tags={**tags, "sweep": "true"},
                                         run_name=f"sweep {tags['profile']} {time.strftime('%Y-%m-%d %H:%M:%S')}")
            return run.info.run_id

    def end_sweep(self, run_id: str, status: str = "FINISHED", **metrics: float) -> None:
        from mlflow.entities import Metric

        with self._timed():
            now = int(time.time() * 1000)
            self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
            self.client.set_terminated(run_id, status=status)

    def log_point(self, experiment_id: str, parent_id: str, result: Any, tags: dict[str, str]) -> str:
        """One finished grid point as a child run: params, tags, step metrics, final metrics,
        images. It is marked FINISHED last, so a point interrupted while logging is re-run."""
        from mlflow.entities import Metric, Param, RunTag

        with self._timed():
            run = self.client.create_run(experiment_id, run_name=result.point.label(),
                                         tags={"mlflow.parentRunId": parent_id})
            run_id = run.info.run_id
            now = int(time.time() * 1000)
            params = [Param(k, str(v)) for k, v in flat_params(result.config).items()]
            params.append(Param("variant", result.point.variant))
            run_tags = [RunTag(k, str(v)) for k, v in tags.items()]
            metrics = [Metric(name, value, now, step)
                       for step, values in result.history for name, value in values.items()]
            metrics += [Metric(f"final/{k}", v, now, 0) for k, v in result.metrics.items()]
            metrics.append(Metric("final/seconds", result.seconds, now, 0))
            for chunk in _chunks(params, _MAX_PARAMS):
                self.client.log_batch(run_id, params=chunk)
            for chunk in _chunks(run_tags, _MAX_TAGS):
                self.client.log_batch(run_id, tags=chunk)
            for chunk in _chunks(metrics, _MAX_METRICS):
                self.client.log_batch(run_id, metrics=chunk)
            for name, picture in result.images.items():
                self.client.log_image(run_id, picture, artifact_file=f"images/{name}.png")
            self.log_trace(run_id, result, run.info.artifact_uri)
            self.client.set_terminated(run_id, status="FINISHED")
            return run_id

    def log_trace(self, run_id: str, result: Any, artifact_uri: str = "") -> None:
        """The run's per-layer trace (harness/trace.py) as the artifact trace.parquet. A local
        artifact store gets the file written in place: MlflowClient.log_artifact would first read
        the run back from the store to find that folder, a query per grid point."""
        import tempfile
        import urllib.parse

        if getattr(result, "trace", None) is None or result.trace.empty:
            return
        if artifact_uri.startswith("file:"):
            folder = Path(urllib.parse.unquote(urllib.parse.urlparse(artifact_uri).path))
            folder.mkdir(parents=True, exist_ok=True)
            result.trace.to_parquet(folder / TRACE_ARTIFACT, index=False)
            return
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / TRACE_ARTIFACT
            result.trace.to_parquet(path, index=False)
            self.client.log_artifact(run_id, str(path))


def point_tags(result: Any, case_name: str, source_hash: str, config_hash: str,
               point_hash: str, commit: str) -> dict[str, str]:
    import torch

    p = result.point
    return {
        "case": case_name, "variant": p.variant, "axes": json.dumps(p.axes_dict, sort_keys=True),
        "seed": str(p.seed), "profile": p.profile,
        "overrides": json.dumps(dict(p.overrides), sort_keys=True), "device": result.device,
        "threads": str(result.threads), "torch_version": torch.__version__, "git_commit": commit,
        "source_hash": source_hash, "config_hash": config_hash, "point_hash": point_hash,
        "verdict": result.verdict,
        **({"diverged_at_step": str(result.diverged_at_step)} if result.diverged_at_step is not None else {}),
    }
