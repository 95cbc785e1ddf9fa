"""The Python client of the lindyn service (HTTP only, httpx).

    from lindyn import Client

    client = Client("http://127.0.0.1:8000")
    run = client.submit(d=100, rank=5, gamma_sigma2=-1.85, gamma_w=2.25, steps=500, name="first")
    run.wait()                      # a progress bar on stderr
    run.summary["gd"]               # the summary metrics of GD (dynamics.SUMMARY_METRICS)
    df = run.trajectory()           # pandas DataFrame: dynamics, step, the metrics
    for r in client.runs(status="succeeded", dynamics="gd", sort="-created_at", limit=10):
        print(r.id, r.summary["gd"])

Connection errors and 502/503/504 are retried with exponential backoff; other errors of the API become
exceptions (NotFound, ValidationFailed, Conflict, Unauthorized, all LindynError) carrying its message.

The package: errors.py (the exceptions), transport.py (HTTP and the one retry path), resources.py (Run,
Sweep); this module is the Client and how it spells filters and axes. It needs httpx, rich and pyarrow
(pandas for DataFrames), never the server's packages.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from lindyn.client.errors import (
    RETRY_STATUSES,
    Conflict,
    LindynError,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from lindyn.client.resources import FIGURE_FORMATS, MAX_POLL_S, TERMINAL, TRAJECTORY_FORMATS, Run, Sweep
from lindyn.client.transport import Event, Transport

__all__ = [
    "FIGURE_FORMATS",
    "MAX_POLL_S",
    "RETRY_STATUSES",
    "TERMINAL",
    "TRAJECTORY_FORMATS",
    "Client",
    "Conflict",
    "Event",
    "LindynError",
    "NotFound",
    "Run",
    "ServiceUnavailable",
    "Sweep",
    "Unauthorized",
    "ValidationFailed",
    "axis_spec",
]

DEFAULT_URL = "http://127.0.0.1:8000"


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
        self.transport = Transport(url, api_key, timeout, retries=retries, backoff=backoff,
                                   max_backoff=max_backoff, transport=transport)

    # -- plumbing
    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def request(self, method: str, path: str, *, retry_unsent_only: bool = False, **kwargs: Any) -> httpx.Response:
        """One API call (with the retries); the response if 2xx, else the matching LindynError."""
        return self.transport.request(method, path, retry_unsent_only=retry_unsent_only, **kwargs)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.transport.json(method, path, **kwargs)

    def download(self, path: str, params: list[tuple[str, Any]], out: Path) -> Path:
        """Stream a GET to a file (no partial file on failure)."""
        return self.transport.download(path, params, out)

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
        tag="k=v", d, gamma_w_min, <metric>_max with dynamics, sort, ...), page after page; ``tags``
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
        refine: Mapping[str, Any] | None = None,
        replicates: Sequence[str] | None = None,
    ) -> Sweep:
        """Submit a grid of runs: ``base`` (a SimulationRequest or a dict of its fields) with one to three
        ``axes``, each a request field and its values: a list (``[0, 1, 2]``), ``(start, stop, n)`` (n evenly
        spaced values), ``"linspace:1.75:2.8:30"`` / ``"values:0,1,2"``, or the API's own
        ``{"values": [...]}`` / ``{"linspace": [start, stop, n]}``. ``name`` and ``tags`` label the sweep (not
        its runs) to find it by with ``sweeps()``. ``refine`` (``{"metric": "<dynamics>.<metric>", "rounds": 2,
        "budget": 300}``) adds points where the metric changes most, round after round, after the grid.
        ``replicates``: the axes the phase diagrams average over (default: the seed and task_seed axes; ``[]``
        for none)."""
        body_base = base.model_dump(exclude_none=True) if hasattr(base, "model_dump") else dict(base)
        body: dict[str, Any] = {"base": body_base, "axes": {k: axis_spec(v) for k, v in axes.items()}}
        if name is not None:
            body["name"] = name
        if tags:
            body["tags"] = dict(tags)
        if chunk_size is not None:
            body["chunk_size"] = chunk_size
        if refine is not None:
            body["refine"] = dict(refine)
        if replicates is not None:
            body["replicates"] = list(replicates)
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


