"""What the service holds, as the client sees it: a run and a sweep (their last answer, refreshed on demand,
waited for with a progress bar), and their trajectories, tables and figures."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from lindyn.client import Client
    from lindyn.client.transport import Event

TERMINAL = frozenset({"succeeded", "failed", "diverged", "cancelled"})
#: the longest wait between two polls of Run.wait / Sweep.wait: a run or sweep that finished is seen at most
#: this late (a GET of a run or sweep costs the API a few ms, so 2 a second per waiting client is cheap)
MAX_POLL_S = 0.5
TRAJECTORY_FORMATS = ("json", "csv", "parquet")
FIGURE_FORMATS = ("png", "svg")


class _Resource:
    """A run or a sweep of the service: its id and what the service last answered about it."""

    _collection = ""  # "runs" or "sweeps"
    _full_key = ""  # a key only the full answer (GET /v1/<collection>/{id}) has, not a list's item
    _terminal: Collection[str] = ()

    def __init__(self, client: Client, resource_id: str, data: Mapping[str, Any] | None = None) -> None:
        self.client = client
        self.id = str(resource_id)
        self._data: dict[str, Any] = dict(data or {})
        self._full = self._full_key in self._data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, status={self._data.get('status')!r})"

    def refresh(self) -> Self:
        """Read it again from the service."""
        self._data = dict(self.client._json("GET", f"/v1/{self._collection}/{self.id}"))
        self._full = True
        return self

    def as_dict(self) -> dict[str, Any]:
        """What the service last answered (no request made)."""
        return dict(self._data)

    @property
    def data(self) -> dict[str, Any]:
        """Everything GET /v1/<runs|sweeps>/{id} answered (read once if this came from a list)."""
        if not self._full:
            self.refresh()
        return self._data

    @property
    def name(self) -> str | None:
        """The name given at submission."""
        return self.data.get("name")

    @property
    def tags(self) -> dict[str, str]:
        """The tags given at submission."""
        return dict(self.data.get("tags") or {})

    @property
    def status(self) -> str:
        if "status" not in self._data:
            self.refresh()
        return str(self._data["status"])

    @property
    def done(self) -> bool:
        return self.status in self._terminal

    _unit = "steps"

    def _counts(self) -> tuple[int, int]:
        """(done, total) for the progress bar, from the last answer."""
        raise NotImplementedError

    def watch(self) -> Iterator[Event]:
        """Follow it live: the service's server-sent events (GET /v1/<runs|sweeps>/{id}/events) as
        ``Event(event, data, id)`` until it ends (the ``end`` event comes last). A ``status`` event carries
        what GET /v1/<runs|sweeps>/{id} answers, and updates this object; a run also sends ``rows`` (the new
        trajectory rows, columnar) and ``reset`` (claimed again: drop the rows seen). A dropped connection is
        opened again where it stopped (Last-Event-ID), through the client's one retry path."""
        for event in self.client.transport.events(f"/v1/{self._collection}/{self.id}/events"):
            if event.event == "status":
                self._data = dict(event.data)
                self._full = True
            yield event

    def _poll(
        self,
        progress: bool,
        timeout: float | None,
        poll: float,
        max_poll: float,
        on_update: Callable[[Any], None] | None = None,
    ) -> Self:
        """Refresh until done, waiting ``poll`` seconds growing by 1.5x to ``max_poll``; a progress bar on
        stderr if ``progress``; TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        name = type(self).__name__.lower()
        bar = _ProgressBar(f"{name} {self.id[:8]}", unit=self._unit) if progress else None
        delay = poll
        try:
            while True:
                self.refresh()
                if bar is not None:
                    bar.update(*self._counts(), self.status)
                if on_update is not None:
                    on_update(self)
                if self.done:
                    return self
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"{name} {self.id} is still {self.status} after {timeout} s")
                time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
                delay = min(max_poll, delay * 1.5)
        finally:
            if bar is not None:
                bar.close()


class Run(_Resource):
    """A run of the service. Attributes reflect the last ``refresh()`` (``wait()`` refreshes)."""

    _collection, _full_key, _terminal = "runs", "request", TERMINAL

    def _counts(self) -> tuple[int, int]:
        return self.progress

    def _repr_html_(self) -> str:
        """Jupyter's view: status, progress, summaries, the figure (lindyn.notebook.run_html)."""
        from lindyn.notebook import run_html

        return run_html(self)

    @property
    def summary(self) -> dict[str, dict[str, Any]]:
        """dynamics -> its summary (metric -> value); empty until the run finished."""
        return dict(self.data.get("summaries") or {})

    @property
    def error(self) -> str | None:
        return self.data.get("error")

    @property
    def progress(self) -> tuple[int, int]:
        p = self.data.get("progress") or {}
        return int(p.get("step", 0)), int(p.get("total", 0))

    def wait(
        self,
        progress: bool = True,
        *,
        timeout: float | None = None,
        poll: float = 0.2,
        max_poll: float = MAX_POLL_S,
        on_update: Callable[[Run], None] | None = None,
    ) -> Run:
        """Poll (with backoff from ``poll`` to ``max_poll`` seconds) until the run finished; a progress bar
        on stderr if ``progress``. TimeoutError after ``timeout`` seconds. Returns this run (check
        ``status``: succeeded, diverged, failed or cancelled)."""
        return self._poll(progress, timeout, poll, max_poll, on_update)

    def trajectory(self, dynamics: str | list[str] | None = None, *, spectrum: bool = False) -> Any:
        """The trajectory as a pandas DataFrame (columns dynamics, step and the metrics), fetched as Parquet;
        with ``spectrum``, a column ``spectrum`` holding the singular values where recorded (else None). A queued
        or running run: the rows stored so far. Conflict if the run failed or was cancelled."""
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        params: list[tuple[str, Any]] = [("format", "parquet")]
        if spectrum:
            params.append(("spectrum", "true"))
        if dynamics is not None:
            params += [("dynamics", d) for d in ([dynamics] if isinstance(dynamics, str) else dynamics)]
        response = self.client.request("GET", f"/v1/runs/{self.id}/trajectory", params=params)
        return pq.read_table(io.BytesIO(response.content)).to_pandas()

    def export(self, path: str | Path, format: str | None = None, dynamics: str | list[str] | None = None) -> Path:  # noqa: A002
        """Write the trajectory to ``path`` as the service streams it: json (columnar), csv or parquet,
        chosen by ``format`` or the file's extension."""
        fmt = format or Path(path).suffix.lstrip(".").lower()
        if fmt not in TRAJECTORY_FORMATS:
            raise ValueError(f"unknown trajectory format {fmt!r}: use one of {', '.join(TRAJECTORY_FORMATS)}")
        params: list[tuple[str, Any]] = [("format", fmt)]
        if dynamics is not None:
            params += [("dynamics", d) for d in ([dynamics] if isinstance(dynamics, str) else dynamics)]
        return self.client.download(f"/v1/runs/{self.id}/trajectory", params, Path(path))

    def figure(self, path: str | Path, format: str | None = None) -> Path:  # noqa: A002
        """Save the run's figure (the paper's Figure 1 for this run) as png or svg (by ``format`` or the
        file's extension)."""
        fmt = format or Path(path).suffix.lstrip(".").lower()
        if fmt not in FIGURE_FORMATS:
            raise ValueError(f"unknown figure format {fmt!r}: use png or svg")
        return self.client.download(f"/v1/runs/{self.id}/figure", [("format", fmt)], Path(path))

    def cancel(self) -> Run:
        """Cancel the run if it is queued or running (Conflict if it already finished)."""
        self._data = dict(self.client._json("POST", f"/v1/runs/{self.id}/cancel"))
        self._full = True
        return self

    def delete(self) -> None:
        """Delete the run with its trajectory (a queued or running one is cancelled first); NotFound if there
        is no such run, Conflict if it is a point of a sweep (delete the sweep)."""
        self.client.request("DELETE", f"/v1/runs/{self.id}", retry_unsent_only=True)


# ---- a sweep ----------------------------------------------------------------------------------------------
class Sweep(_Resource):
    """A grid of runs (status: queued, running, finished or cancelled; ``data`` adds total, counts per run
    status, progress and axes). Attributes reflect the last ``refresh()`` (``wait()`` refreshes)."""

    _collection, _full_key, _terminal = "sweeps", "base", ("finished", "cancelled")
    _unit = "runs"

    def _counts(self) -> tuple[int, int]:
        p = self._data.get("progress") or {}
        return int(p.get("finished", 0)), int(p.get("total", 0))

    def _repr_html_(self) -> str:
        """Jupyter's view: status, progress, the table, the phase diagram (lindyn.notebook.sweep_html)."""
        from lindyn.notebook import sweep_html

        return sweep_html(self)

    @property
    def total(self) -> int:
        return int(self.data["total"])

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.data.get("counts") or {})

    def wait(self, progress: bool = True, *, timeout: float | None = None, poll: float = 0.2,
             max_poll: float = MAX_POLL_S) -> Sweep:  # fmt: skip
        """Poll until every run of the sweep finished (or it was cancelled); a progress bar on stderr
        (runs finished of the total) if ``progress``. TimeoutError after ``timeout`` seconds."""
        return self._poll(progress, timeout, poll, max_poll)

    @property
    def replicates(self) -> list[str]:
        """The axes that are replicates (the phase diagrams average over them)."""
        return list(self.data.get("replicates") or [])

    def table(self, aggregate: str | Sequence[str] | None = None, at: Any = None) -> Any:
        """One row per grid point (the axes' values, run_id, status, <dynamics>.<metric>, ...) as a pandas
        DataFrame, fetched as Parquet. ``at`` ({axis: value} or "axis:value" strings) keeps one slice;
        ``aggregate`` (axis names) averages over those axes: one row per remaining point with the counts
        (runs, finished, diverged) and <dynamics>.<metric>.mean, .sd, .n of every numeric metric."""
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        params = [("format", "parquet"), *view_params(aggregate, at)]
        response = self.client.request("GET", f"/v1/sweeps/{self.id}/table", params=params)
        return pq.read_table(io.BytesIO(response.content)).to_pandas()

    def dataset(self) -> Any:
        """The sweep as an ``xarray.Dataset`` over its axes and ``dynamics`` (the summary metrics, NaN where a
        point has not finished): lindyn.bridges.xarray.sweep_dataset; needs the ``xarray`` extra."""
        from lindyn.bridges.xarray import sweep_dataset

        return sweep_dataset(self)

    def trajectories(self, dynamics: str | list[str] | None = None, *, dataset: bool = False) -> Any:
        """Every finished run's trajectory as one long pandas DataFrame (run_id, dynamics, step, the metrics),
        fetched as Parquet in one streamed request; with ``dataset``, an ``xarray.Dataset`` over (*axes,
        dynamics, step) instead (lindyn.bridges.xarray.trajectory_dataset; the ``xarray`` extra)."""
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        params: list[tuple[str, Any]] = [("format", "parquet")]
        if dynamics is not None:
            params += [("dynamics", d) for d in ([dynamics] if isinstance(dynamics, str) else dynamics)]
        response = self.client.request("GET", f"/v1/sweeps/{self.id}/trajectories", params=params)
        frame = pq.read_table(io.BytesIO(response.content)).to_pandas()
        if not dataset:
            return frame
        from lindyn.bridges.xarray import trajectory_dataset

        return trajectory_dataset(self, frame)

    def export_table(self, path: str | Path, format: str | None = None, *,  # noqa: A002
                     aggregate: str | Sequence[str] | None = None, at: Any = None) -> Path:
        """Write the table to ``path``: json (columnar), csv or parquet, by ``format`` or the extension
        (``aggregate`` and ``at`` as for ``table``)."""
        fmt = format or Path(path).suffix.lstrip(".").lower()
        if fmt not in TRAJECTORY_FORMATS:
            raise ValueError(f"unknown table format {fmt!r}: use one of {', '.join(TRAJECTORY_FORMATS)}")
        params = [("format", fmt), *view_params(aggregate, at)]
        return self.client.download(f"/v1/sweeps/{self.id}/table", params, Path(path))

    def phase_diagram(
        self, path: str | Path, metric: str | None = None, *, dynamics: str = "gd", format: str | None = None,  # noqa: A002
        aggregate: str | Sequence[str] | None = None, at: Any = None, sd: bool = False,
    ) -> Path:
        """Save the sweep's phase diagram: a heat map of ``metric`` (a summary metric, with or without a
        ``<dynamics>.`` prefix, log_max_distance, or figure2 for the paper's four panels; default: the
        service's, the minimal test error) over its two remaining axes, as png or svg (by ``format`` or the
        file's extension). Remaining: not sliced by ``at`` ({axis: value} or "axis:value" strings) nor averaged
        over (``aggregate``; default: the sweep's replicates, ``[]`` for none); averaged, the mean, with ``sd``
        a panel of the sd beside it. One axis remaining: a line plot with error bars."""
        fmt = format or Path(path).suffix.lstrip(".").lower()
        if fmt not in FIGURE_FORMATS:
            raise ValueError(f"unknown figure format {fmt!r}: use png or svg")
        params = [*([("metric", metric)] if metric is not None else []), ("dynamics", dynamics), ("format", fmt),
                  *view_params(aggregate, at), *([("sd", "true")] if sd else [])]
        return self.client.download(f"/v1/sweeps/{self.id}/phase-diagram", params, Path(path))

    def runs(self, **filters: Any) -> Iterator[Run]:
        """The sweep's runs (any other filter of ``Client.runs`` may be added)."""
        return self.client.runs(sweep_id=self.id, **filters)

    def cancel(self) -> Sweep:
        """Cancel the sweep's queued and running runs (Conflict if every run already finished)."""
        self._data = dict(self.client._json("POST", f"/v1/sweeps/{self.id}/cancel"))
        self._full = True
        return self

    def delete(self) -> None:
        """Delete the sweep with all its runs and their trajectories (queued and running ones are cancelled
        first); NotFound if there is no such sweep."""
        self.client.request("DELETE", f"/v1/sweeps/{self.id}", retry_unsent_only=True)


def view_params(aggregate: str | Sequence[str] | None, at: Any) -> list[tuple[str, str]]:
    """The query parameters ``aggregate`` and ``at`` of a sweep's table and phase diagram: ``aggregate`` an
    axis name or several (``[]``: none, sent as an empty value), ``at`` a mapping {axis: value}, an
    "axis:value" string or several."""
    params: list[tuple[str, str]] = []
    if aggregate is not None:
        names = [aggregate] if isinstance(aggregate, str) else list(aggregate)
        params += [("aggregate", a) for a in names] or [("aggregate", "")]
    if at is not None:
        items = [at] if isinstance(at, str) else [f"{a}:{v}" for a, v in at.items()] if isinstance(at, Mapping) \
            else list(at)
        params += [("at", str(item)) for item in items]
    return params


# ---- progress ---------------------------------------------------------------------------------------------
class _ProgressBar:
    """A rich progress bar on stderr: steps done of the total, and the status."""

    def __init__(self, label: str, unit: str = "steps") -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn(label),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} " + unit),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=None, status="")

    def update(self, step: int, total: int, status: str) -> None:
        self._progress.update(self._task, completed=step, total=total or None, status=status)

    def close(self) -> None:
        self._progress.stop()
