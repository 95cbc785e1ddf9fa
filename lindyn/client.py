"""The Python client of the lindyn service (HTTP only, httpx).

    from lindyn import Client

    client = Client("http://127.0.0.1:8000")
    run = client.submit(d=100, rank=5, gamma_sigma2=-1.85, gamma_w=2.25, steps=500, name="first")
    run.wait()                      # a progress bar on stderr
    run.summary["gd"]["min_test_error"]
    df = run.trajectory()           # pandas DataFrame: dynamics, step, the metrics
    for r in client.runs(status="succeeded", dynamics="gd", min_test_error_max=0.1):
        print(r.id, r.summary["gd"]["min_test_error"])

Connection errors and 502/503/504 are retried with exponential backoff; other errors of the API become
exceptions (NotFound, ValidationFailed, Conflict, Unauthorized, all LindynError) carrying its message.
"""

from __future__ import annotations

import io
import random
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import httpx

__all__ = [
    "Client",
    "Conflict",
    "LindynError",
    "NotFound",
    "Run",
    "ServiceUnavailable",
    "Sweep",
    "Unauthorized",
    "ValidationFailed",
]

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL = frozenset({"succeeded", "failed", "diverged", "cancelled"})
RETRY_STATUSES = frozenset({502, 503, 504})
TRAJECTORY_FORMATS = ("json", "csv", "parquet")
FIGURE_FORMATS = ("png", "svg")


# ---- errors -----------------------------------------------------------------------------------------------
class LindynError(Exception):
    """An error answered by the API (``status_code`` set) or no answer at all (``status_code`` None)."""

    def __init__(self, message: str, *, status_code: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.detail = detail


class NotFound(LindynError):
    """404: no run or sweep with this id."""


class ValidationFailed(LindynError):
    """422: the request or a query parameter is invalid; ``errors`` names each field and its reason."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.detail if isinstance(self.detail, list) else []

    @property
    def fields(self) -> dict[str, str]:
        """field -> reason (the first reason of each field)."""
        out: dict[str, str] = {}
        for e in self.errors:
            out.setdefault(str(e.get("field") or ".".join(map(str, e.get("loc", [])))), str(e.get("msg", "")))
        return out


class Conflict(LindynError):
    """409: e.g. the trajectory of a run that has not finished, or cancelling a finished run."""


class Unauthorized(LindynError):
    """401/403: an API key is needed, or the one given is not accepted."""


class ServiceUnavailable(LindynError):
    """No answer (connection refused, timeout) or 502/503/504, after the retries."""


def _message(response: httpx.Response) -> tuple[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip() or response.reason_phrase or f"HTTP {response.status_code}"), None
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, str):
        return detail, detail
    if isinstance(detail, list):
        parts = []
        for e in detail:
            if isinstance(e, dict):
                where = e.get("field") or ".".join(str(p) for p in e.get("loc", []) if p not in ("body", "query"))
                parts.append(f"{where}: {e.get('msg', '')}" if where else str(e.get("msg", "")))
            else:
                parts.append(str(e))
        return "; ".join(parts) or f"HTTP {response.status_code}", detail
    return str(detail), detail


def _error_for(response: httpx.Response) -> LindynError:
    message, detail = _message(response)
    code = response.status_code
    cls: type[LindynError] = LindynError
    if code == 404:
        cls = NotFound
    elif code == 422:
        cls = ValidationFailed
    elif code == 409:
        cls = Conflict
    elif code in (401, 403):
        cls = Unauthorized
    elif code in RETRY_STATUSES:
        cls = ServiceUnavailable
    return cls(message, status_code=code, detail=detail)


# ---- the client -------------------------------------------------------------------------------------------
class Client:
    """A connection to one lindyn service.

    ``retries`` attempts after the first on connection errors and 502/503/504 (never on other statuses),
    waiting ``backoff * 2**attempt`` seconds (at most ``max_backoff``, with jitter) in between."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        retries: int = 4,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers, transport=transport)

    # -- plumbing
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def _sleep_before_retry(self, attempt: int, response: httpx.Response | None) -> None:
        delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)  # noqa: S311
        if response is not None and response.headers.get("retry-after", "").isdigit():
            delay = min(self.max_backoff, float(response.headers["retry-after"]))
        time.sleep(delay)

    def request(self, method: str, path: str, *, retry_unsent_only: bool = False, **kwargs: Any) -> httpx.Response:
        """One API call with the retries; the response if 2xx, else the matching LindynError.
        ``retry_unsent_only``: retry only when the request cannot have reached the server (connect errors)."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last = exc
                unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if retry_unsent_only and not unsent:
                    break
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise _error_for(response)
                last = _error_for(response)
            if attempt < self.retries:
                self._sleep_before_retry(attempt, response)
        if isinstance(last, LindynError):
            raise last
        raise ServiceUnavailable(
            f"cannot reach the lindyn service at {self.url}: {type(last).__name__}: {last}", detail=str(last)
        ) from last

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def download(self, path: str, params: list[tuple[str, Any]], out: Path) -> Path:
        """Stream a GET to a file (written to a temporary name first, so a failure leaves no partial file)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                with self._http.stream("GET", path, params=params) as response:
                    if response.status_code >= 400:
                        response.read()
                        error = _error_for(response)
                        if response.status_code not in RETRY_STATUSES:
                            raise error
                        last = error
                    else:
                        with open(tmp, "wb") as f:
                            for chunk in response.iter_bytes():
                                f.write(chunk)
                        tmp.replace(out)
                        return out
            except httpx.TransportError as exc:
                last = exc
            if attempt < self.retries:
                self._sleep_before_retry(attempt, None)
        tmp.unlink(missing_ok=True)
        if isinstance(last, LindynError):
            raise last
        raise ServiceUnavailable(f"cannot reach the lindyn service at {self.url}: {type(last).__name__}: {last}") from last

    # -- runs
    def submit(
        self,
        request: Any = None,
        *,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        force: bool = False,
        **fields: Any,
    ) -> Run:
        """Submit one run: ``request`` is a SimulationRequest or a dict of its fields, ``fields`` override
        it. The same normalised request submitted before returns that run (unless ``force``)."""
        body: dict[str, Any] = {}
        if request is not None:
            if hasattr(request, "model_dump"):
                body.update(request.model_dump(exclude_none=True))
            elif isinstance(request, Mapping):
                body.update(request)
            else:
                raise TypeError(f"request must be a SimulationRequest or a mapping, not {type(request).__name__}")
        body.update(fields)
        if name is not None:
            body["name"] = name
        if tags:
            body["tags"] = dict(tags)
        created = self._json(
            "POST", "/v1/runs", json=body, params={"force": "true"} if force else None, retry_unsent_only=force
        )
        return Run(self, created["id"], created)

    def run(self, run_id: str) -> Run:
        """The run with this id (NotFound if there is none)."""
        run = Run(self, str(run_id))
        run.refresh()
        return run

    def runs(self, *, limit: int | None = None, page_size: int = 100, **filters: Any) -> Iterator[Run]:
        """Every run matching ``filters`` (the query parameters of GET /v1/runs: status, sweep_id, name,
        tag="k=v", d, gamma_w_min, min_test_error_max with dynamics, sort, ...), page after page; ``tags``
        ({k: v}) is a shorthand for tag filters. At most ``limit`` runs when given."""
        for item in self._pages("/v1/runs", filters, limit, page_size):
            yield Run(self, item["id"], item)

    def _pages(self, path: str, filters: Mapping[str, Any], limit: int | None, page_size: int) -> Iterator[Any]:
        """The items of a list endpoint, page after page (by next_cursor where the list has one, else by
        offset), at most ``limit``."""
        params = _query_params(filters)
        yielded = 0
        cursor: str | None = None
        while True:
            size = page_size if limit is None else max(1, min(page_size, limit - yielded))
            paging = [("cursor", cursor)] if cursor else [("offset", yielded)] if yielded else []
            page = self._json("GET", path, params=[*params, ("limit", size), *paging])
            for item in page["items"]:
                if limit is not None and yielded >= limit:
                    return
                yield item
                yielded += 1
            if limit is not None and yielded >= limit:
                return
            if "next_cursor" in page:
                cursor = page["next_cursor"]
                if not cursor:
                    return
            elif not page["items"] or yielded >= page["total"]:
                return

    # -- sweeps
    def sweep(
        self,
        base: Any,
        axes: Mapping[str, Any],
        name: str | None = None,
        *,
        tags: Mapping[str, str] | None = None,
        chunk_size: int | None = None,
    ) -> Sweep:
        """Submit a grid of runs: ``base`` (a SimulationRequest or a dict of its fields) with one to three
        ``axes``, each a request field and its values: a list (``[0, 1, 2]``), ``(start, stop, n)`` (n evenly
        spaced values), ``"linspace:1.75:2.8:30"`` / ``"values:0,1,2"``, or the API's own
        ``{"values": [...]}`` / ``{"linspace": [start, stop, n]}``. ``name`` and ``tags`` label the sweep (not
        its runs) to find it by with ``sweeps()``."""
        body_base = base.model_dump(exclude_none=True) if hasattr(base, "model_dump") else dict(base)
        body: dict[str, Any] = {"base": body_base, "axes": {k: axis_spec(v) for k, v in axes.items()}}
        if name is not None:
            body["name"] = name
        if tags:
            body["tags"] = dict(tags)
        if chunk_size is not None:
            body["chunk_size"] = chunk_size
        created = self._json("POST", "/v1/sweeps", json=body, retry_unsent_only=True)
        return Sweep(self, created["id"], created)

    def sweeps(self, *, limit: int | None = None, page_size: int = 100, **filters: Any) -> Iterator[Sweep]:
        """Every sweep matching ``filters`` (the query parameters of GET /v1/sweeps: name, tag="k=v" or "k"),
        newest first, page after page; ``tags`` ({k: v}) is a shorthand for tag filters. At most ``limit``
        sweeps when given."""
        for item in self._pages("/v1/sweeps", filters, limit, page_size):
            yield Sweep(self, item["id"], item)

    def get_sweep(self, sweep_id: str) -> Sweep:
        """The sweep with this id (NotFound if there is none)."""
        sweep = Sweep(self, str(sweep_id))
        sweep.refresh()
        return sweep

    def count(self, **filters: Any) -> int:
        """How many runs match ``filters``."""
        return int(self._json("GET", "/v1/runs", params=[*_query_params(filters), ("limit", 1)])["total"])

    def health(self) -> dict[str, Any]:
        return dict(self._json("GET", "/health"))


def axis_spec(spec: Any) -> dict[str, Any]:
    """One axis as the API takes it: {"values": [...]} or {"linspace": [start, stop, n]}, from a list,
    a (start, stop, n) tuple, a string "values:0,1,2" / "linspace:1.75:2.8:30", or that dict already."""
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, str):
        kind, sep, rest = spec.partition(":")
        parts = [p.strip() for p in rest.split(":" if kind == "linspace" else ",") if p.strip()]
        if kind == "linspace" and sep and len(parts) == 3:
            try:
                return {"linspace": [float(parts[0]), float(parts[1]), int(parts[2])]}
            except ValueError:
                pass
        elif kind == "values" and sep and parts:
            return {"values": [_number(p) for p in parts]}
        raise ValueError(f"axis {spec!r}: expected linspace:START:STOP:N or values:V1,V2,...")
    if isinstance(spec, tuple):
        if len(spec) != 3:
            raise ValueError(f"axis {spec!r}: a tuple is (start, stop, n)")
        return {"linspace": [spec[0], spec[1], spec[2]]}
    return {"values": list(spec)}


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"axis value {text!r} is not a number") from None


def _query_params(filters: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Filters as query parameters: lists repeat, booleans lower-case, tags={k: v} becomes tag=k=v."""
    params: list[tuple[str, Any]] = []
    for key, value in filters.items():
        if value is None:
            continue
        if key == "tags":
            params += [("tag", f"{k}={v}") for k, v in dict(value).items()]
        elif isinstance(value, (list, tuple, set, frozenset)):
            params += [(key, _param(v)) for v in value]
        else:
            params.append((key, _param(value)))
    return params


def _param(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    return v.value if hasattr(v, "value") and not isinstance(v, (int, float, str)) else v


# ---- a run ------------------------------------------------------------------------------------------------
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
        """dynamics -> its summary (min_test_error, ...); empty until the run finished."""
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
        max_poll: float = 2.0,
        on_update: Callable[[Run], None] | None = None,
    ) -> Run:
        """Poll (with backoff from ``poll`` to ``max_poll`` seconds) until the run finished; a progress bar
        on stderr if ``progress``. TimeoutError after ``timeout`` seconds. Returns this run (check
        ``status``: succeeded, diverged, failed or cancelled)."""
        return self._poll(progress, timeout, poll, max_poll, on_update)

    def trajectory(self, dynamics: str | list[str] | None = None, *, spectrum: bool = False) -> Any:
        """The trajectory as a pandas DataFrame (columns dynamics, step and the metrics), fetched as Parquet;
        with ``spectrum``, a column ``spectrum`` holding the singular values where recorded (else None).
        Conflict if the run has no trajectory (not finished, failed or cancelled)."""
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

    def wait(self, progress: bool = True, *, timeout: float | None = None, poll: float = 0.3,
             max_poll: float = 3.0) -> Sweep:  # fmt: skip
        """Poll until every run of the sweep finished (or it was cancelled); a progress bar on stderr
        (runs finished of the total) if ``progress``. TimeoutError after ``timeout`` seconds."""
        return self._poll(progress, timeout, poll, max_poll)

    def table(self) -> Any:
        """One row per grid point (the axes' values, run_id, status, <dynamics>.<metric>, ...) as a pandas
        DataFrame, fetched as Parquet."""
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        response = self.client.request("GET", f"/v1/sweeps/{self.id}/table", params={"format": "parquet"})
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

    def export_table(self, path: str | Path, format: str | None = None) -> Path:  # noqa: A002
        """Write the table to ``path``: json (columnar), csv or parquet, by ``format`` or the extension."""
        fmt = format or Path(path).suffix.lstrip(".").lower()
        if fmt not in TRAJECTORY_FORMATS:
            raise ValueError(f"unknown table format {fmt!r}: use one of {', '.join(TRAJECTORY_FORMATS)}")
        return self.client.download(f"/v1/sweeps/{self.id}/table", [("format", fmt)], Path(path))

    def phase_diagram(
        self, path: str | Path, metric: str = "min_test_error", *, dynamics: str = "gd", format: str | None = None  # noqa: A002
    ) -> Path:
        """Save the sweep's phase diagram: a heat map of ``metric`` (a summary metric, with or without a
        ``<dynamics>.`` prefix, log_max_distance, or figure2 for the paper's four panels) over its two axes,
        as png or svg (by ``format`` or the file's extension)."""
        fmt = format or Path(path).suffix.lstrip(".").lower()
        if fmt not in FIGURE_FORMATS:
            raise ValueError(f"unknown figure format {fmt!r}: use png or svg")
        params = [("metric", metric), ("dynamics", dynamics), ("format", fmt)]
        return self.client.download(f"/v1/sweeps/{self.id}/phase-diagram", params, Path(path))

    def runs(self, **filters: Any) -> Iterator[Run]:
        """The sweep's runs (any other filter of ``Client.runs`` may be added)."""
        return self.client.runs(sweep_id=self.id, **filters)

    def cancel(self) -> Sweep:
        """Cancel the sweep's queued and running runs (Conflict if every run already finished)."""
        self._data = dict(self.client._json("POST", f"/v1/sweeps/{self.id}/cancel"))
        self._full = True
        return self


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
