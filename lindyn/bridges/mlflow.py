"""Runs and sweeps of lindyn logged to an MLflow tracking server.

A run becomes an MLflow run: its request as params, its name as the run name and its tags as tags (with
``lindyn.run_id``, ``lindyn.status`` and, for a sweep's point, ``lindyn.sweep_id``), its summaries as metrics
(``<dynamics>.<metric>``, and ``log_max_distance``), every recorded step's metrics as metric history
(``<dynamics>.<metric>`` at that step, sent in batches of MLflow's limit), and the run figure (figure.png) and
the trajectory (trajectory.parquet) as artifacts. A sweep becomes a parent run (the base request and the
axes as params, the table as an artifact) with its points as child runs.

Idempotent: a run whose MLflow run (tag ``lindyn.run_id``) finished logging is not logged again; one left
half-logged by an interrupted export is deleted and logged anew. Runs that have not finished yet are
skipped (export again later). Needs the ``mlflow`` extra (mlflow-skinny is enough for the client).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lindyn.bridges import metric_columns, require

if TYPE_CHECKING:
    import pandas as pd

    from lindyn.client import Client, Run, Sweep

EXTRA = "mlflow"
DEFAULT_EXPERIMENT = "lindyn"
RUN_ID_TAG = "lindyn.run_id"
SWEEP_ID_TAG = "lindyn.sweep_id"
KIND_TAG = "lindyn.kind"  # run or sweep
PARENT_TAG = "mlflow.parentRunId"
#: MLflow's limits on one log_batch call (and on one search page)
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_SEARCH_RESULTS = 1000
#: lindyn status -> MLflow run status
MLFLOW_STATUS = {"succeeded": "FINISHED", "diverged": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
HAS_TRAJECTORY = ("succeeded", "diverged")
_QUIET = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


@dataclass
class ExportReport:
    """What one export did: lindyn id -> MLflow run id for the runs logged now, those found already logged,
    and those skipped (not finished); the sweep's parent run, if any."""

    logged: dict[str, str] = field(default_factory=dict)
    existing: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    parent: str | None = None
    experiment_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "parent": self.parent, "logged": self.logged,
                "existing": self.existing, "skipped": self.skipped}  # fmt: skip


class MlflowExporter:
    """Logs lindyn runs and sweeps to the MLflow tracking server at ``tracking_uri``, into ``experiment``
    (created if missing)."""

    def __init__(self, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT) -> None:
        tracking = require("mlflow.tracking", EXTRA, "lindyn export mlflow")
        self.entities = require("mlflow.entities", EXTRA, "lindyn export mlflow")
        self.mlflow = tracking.MlflowClient(tracking_uri=tracking_uri)
        found = self.mlflow.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found is not None else self.mlflow.create_experiment(experiment)

    # -- one run
    def export_run(self, run: Run) -> ExportReport:
        """Log one run (not part of a sweep's parent run, even if it belongs to a sweep)."""
        report = ExportReport(experiment_id=self.experiment_id)
        existing = self._existing(f"tags.`{RUN_ID_TAG}` = '{run.id}'")
        self._export_runs([run], existing, report, parent=None, trajectories=None)
        return report

    # -- a sweep
    def export_sweep(self, sweep: Sweep) -> ExportReport:
        """Log the sweep as a parent run and each of its finished points as a child run; the trajectories
        come in one streamed request for the whole sweep (``Sweep.trajectories``)."""
        report = ExportReport(experiment_id=self.experiment_id)
        existing = self._existing(f"tags.`{SWEEP_ID_TAG}` = '{sweep.id}'")
        parent = existing.pop(("sweep", sweep.id), None)
        if parent is None or parent.info.status != "FINISHED":
            if parent is not None:
                self.mlflow.delete_run(parent.info.run_id)
            parent_id = self._log_sweep(sweep)
        else:
            parent_id = parent.info.run_id
        report.parent = parent_id
        runs = list(sweep.runs())
        trajectories = None
        if any(r.status in HAS_TRAJECTORY and not _done(existing.get(("run", r.id))) for r in runs):
            trajectories = sweep.trajectories()
        self._export_runs(runs, existing, report, parent=parent_id, trajectories=trajectories)
        self._terminated(parent_id, "FINISHED")
        return report

    def _log_sweep(self, sweep: Sweep) -> str:
        data = sweep.data
        tags = {**(data.get("tags") or {}), SWEEP_ID_TAG: sweep.id, KIND_TAG: "sweep"}
        created = self.mlflow.create_run(self.experiment_id, run_name=data.get("name") or f"sweep {sweep.id[:8]}",
                                         tags=tags)  # fmt: skip
        run_id = created.info.run_id
        params = {**_params(data.get("base") or {}), **{f"axis.{a}": json.dumps(v) for a, v in data["axes"].items()}}
        self._log(run_id, metrics=[], params=params, tags={})
        with tempfile.TemporaryDirectory(prefix="lindyn-mlflow-") as tmp:
            self.mlflow.log_artifact(run_id, str(sweep.export_table(Path(tmp) / "table.parquet")))
        return run_id

    # -- the runs
    def _export_runs(self, runs: Sequence[Run], existing: dict[tuple[str, str], Any], report: ExportReport, *,
                     parent: str | None, trajectories: pd.DataFrame | None) -> None:  # fmt: skip
        by_run = dict(iter(trajectories.groupby("run_id", sort=False))) if trajectories is not None else {}
        for run in runs:
            found = existing.get(("run", run.id))
            if _done(found):
                report.existing[run.id] = found.info.run_id
                continue
            if run.status not in MLFLOW_STATUS:
                report.skipped.append(run.id)
                continue
            if found is not None:  # half-logged by an export that was interrupted
                self.mlflow.delete_run(found.info.run_id)
            frame = by_run.get(run.id)
            if frame is None and run.status in HAS_TRAJECTORY:
                frame = run.trajectory()
            report.logged[run.id] = self._log_run(run, frame, parent)

    def _log_run(self, run: Run, trajectory: pd.DataFrame | None, parent: str | None) -> str:
        data = run.data
        tags = {**run.tags, RUN_ID_TAG: run.id, KIND_TAG: "run", "lindyn.status": run.status}
        if data.get("sweep_id"):
            tags[SWEEP_ID_TAG] = str(data["sweep_id"])
        if parent is not None:
            tags[PARENT_TAG] = parent
        created = self.mlflow.create_run(self.experiment_id, run_name=run.name or f"run {run.id[:8]}", tags=tags,
                                         start_time=_ms(data.get("started_at") or data.get("created_at")))  # fmt: skip
        run_id = created.info.run_id
        stamp = _ms(data.get("finished_at")) or 0
        text_tags: dict[str, str] = {}
        metrics = []
        for name, summary in (data.get("summaries") or {}).items():
            for metric, value in summary.items():
                if isinstance(value, str):
                    text_tags[f"{name}.{metric}"] = value  # stop_reason
                elif value is not None:
                    metrics.append(self.entities.Metric(f"{name}.{metric}", float(value), stamp, 0))
        comparison = data.get("comparison") or {}
        if comparison.get("log_max_distance") is not None:
            metrics.append(self.entities.Metric("log_max_distance", float(comparison["log_max_distance"]), stamp, 0))
        if trajectory is not None:
            metrics += history(trajectory, stamp, self.entities.Metric)
        self._log(run_id, metrics=metrics, params=_params(data.get("request") or {}), tags=text_tags)
        if trajectory is not None:
            with tempfile.TemporaryDirectory(prefix="lindyn-mlflow-") as tmp:
                path = Path(tmp) / "trajectory.parquet"
                _write_parquet(trajectory.drop(columns=["run_id"], errors="ignore"), path)
                self.mlflow.log_artifact(run_id, str(path))
                self.mlflow.log_artifact(run_id, str(run.figure(Path(tmp) / "figure.png")))
        self._terminated(run_id, MLFLOW_STATUS[run.status], end_time=_ms(data.get("finished_at")))
        return run_id

    def _terminated(self, run_id: str, status: str, end_time: int | None = None) -> None:
        """The run ends with ``status``; without MLflow printing its URL to stdout (which would spoil the
        command's --json) and reading the run back to do so."""
        saved = os.environ.get(_QUIET)
        os.environ[_QUIET] = "true"
        try:
            self.mlflow.set_terminated(run_id, status, end_time=end_time)
        finally:
            if saved is None:
                del os.environ[_QUIET]
            else:
                os.environ[_QUIET] = saved

    def _log(self, run_id: str, *, metrics: Sequence[Any], params: dict[str, str], tags: dict[str, str]) -> None:
        """Everything in as few log_batch calls as MLflow's limits allow."""
        param_list = [self.entities.Param(k, v) for k, v in params.items()]
        tag_list = [self.entities.RunTag(k, v) for k, v in tags.items()]
        for ms, ps, ts in _batches(list(metrics), param_list, tag_list):
            self.mlflow.log_batch(run_id, metrics=ms, params=ps, tags=ts)

    def _existing(self, filter_string: str) -> dict[tuple[str, str], Any]:
        """(kind, lindyn id) -> the MLflow run already logged for it, in this experiment."""
        out: dict[tuple[str, str], Any] = {}
        token = None
        while True:
            page = self.mlflow.search_runs([self.experiment_id], filter_string=filter_string,
                                           max_results=MAX_SEARCH_RESULTS, page_token=token)  # fmt: skip
            for found in page:
                kind = found.data.tags.get(KIND_TAG, "run")
                key = found.data.tags.get(SWEEP_ID_TAG if kind == "sweep" else RUN_ID_TAG)
                if key:
                    out[(kind, key)] = found
            token = page.token
            if not token:
                return out


def history(trajectory: pd.DataFrame, stamp: int, metric: Any) -> list[Any]:
    """Every recorded step's metrics as MLflow metrics ``<dynamics>.<metric>`` at that step (null values,
    i.e. not recorded, left out)."""
    out = []
    names = trajectory["dynamics"].tolist()
    steps = trajectory["step"].tolist()
    for column in metric_columns(trajectory):
        for name, step, value in zip(names, steps, trajectory[column].tolist(), strict=True):
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                out.append(metric(f"{name}.{column}", float(value), stamp, int(step)))
    return out


def _batches(
    metrics: list[Any], params: list[Any], tags: list[Any]
) -> Iterator[tuple[list[Any], list[Any], list[Any]]]:
    """log_batch calls within MLflow's limits: at most 1000 metrics, 100 params, 100 tags, 1000 in all."""
    while metrics or params or tags:
        ps, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
        ts, tags = tags[:MAX_TAGS_PER_BATCH], tags[MAX_TAGS_PER_BATCH:]
        room = MAX_METRICS_PER_BATCH - len(ps) - len(ts)
        ms, metrics = metrics[:room], metrics[room:]
        yield ms, ps, ts


def _params(request: dict[str, Any]) -> dict[str, str]:
    """A request as MLflow params: numbers and text as they are, lists comma-separated, None as "None"."""
    out = {}
    for key, value in request.items():
        if isinstance(value, (list, tuple)):
            out[key] = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            out[key] = json.dumps(value, sort_keys=True)
        else:
            out[key] = str(value)
    return out


def _done(found: Any) -> bool:
    return found is not None and found.info.status != "RUNNING"


def _ms(timestamp: Any) -> int | None:
    """An ISO 8601 time of the API as milliseconds since the epoch (MLflow's clock)."""
    if not timestamp:
        return None
    return int(datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp() * 1000)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def export(client: Client, tracking_uri: str, *, run_id: str | None = None, sweep_id: str | None = None,
           experiment: str = DEFAULT_EXPERIMENT) -> ExportReport:  # fmt: skip
    """Log the run ``run_id`` or the sweep ``sweep_id`` of the lindyn service behind ``client``."""
    exporter = MlflowExporter(tracking_uri, experiment)
    if sweep_id is not None:
        return exporter.export_sweep(client.get_sweep(sweep_id))
    if run_id is None:
        raise ValueError("give a run id or a sweep id")
    return exporter.export_run(client.run(run_id))


