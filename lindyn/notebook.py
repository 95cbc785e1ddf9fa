"""How runs and sweeps show themselves in Jupyter (``Run._repr_html_``, ``Sweep._repr_html_``).

A run: its id, name, status, progress, error, the summary table (a row per dynamics) and, once it has
results, its figure (the paper's Figure 1) inline as a PNG. A sweep: its id, name, status, progress, runs per
status, axes, the first rows of its table and, once finished with two axes, its phase diagram inline.

What is fetched: nothing that the object already holds. Status, progress and summaries are what the object
last read (``refresh()`` or ``wait()`` reads again); only an object that holds no status yet reads itself
once. The figure of a finished run (one GET), and the table and phase diagram of a finished sweep (two GETs),
are fetched the first time they are shown and kept on the object, so showing it again makes no request.
"""

from __future__ import annotations

import base64
import html
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lindyn.client.resources import Run, Sweep, _Resource

#: rows of a sweep's table shown inline
TABLE_ROWS = 10
_STYLE = "font-family: sans-serif; font-size: 13px"


def run_html(run: Run) -> str:
    """A run as HTML (see the module's docstring for what is fetched)."""
    from lindyn.client import LindynError

    try:
        data = _held(run)
        step, total = run.progress if "progress" in data else (0, 0)
        rows = [("status", data.get("status")), ("progress", f"{step}/{total} steps" if total else None),
                ("name", data.get("name")), ("tags", _tags(data.get("tags"))),
                ("error", data.get("error"))]  # fmt: skip
        parts = [_header("Run", run.id), _fields(rows), _summaries(data.get("summaries") or {})]
        if data.get("status") in ("succeeded", "diverged"):
            figure = _cached(run, ("figure", data["status"]),
                             lambda: _fetch(run, f"/v1/runs/{run.id}/figure", {"format": "png"}))  # fmt: skip
            parts.append(_image(figure))
    except LindynError as exc:
        parts = [_header("Run", run.id), f"<p>cannot show it: {html.escape(exc.message)}</p>"]
    return _box(parts)


def sweep_html(sweep: Sweep) -> str:
    """A sweep as HTML (see the module's docstring for what is fetched)."""
    from lindyn.client import LindynError

    try:
        data = _held(sweep)
        progress = data.get("progress") or {}
        counts = {k: v for k, v in (data.get("counts") or {}).items() if v}
        axes = data.get("axes") or {}
        rows = [("status", data.get("status")),
                ("progress", f"{progress.get('finished', 0)}/{progress.get('total', 0)} runs" if progress else None),
                ("runs", ", ".join(f"{k} {v}" for k, v in counts.items()) or None),
                ("axes", "; ".join(f"{a}: {_values(v)}" for a, v in axes.items()) or None),
                ("name", data.get("name")), ("tags", _tags(data.get("tags")))]  # fmt: skip
        parts = [_header("Sweep", sweep.id), _fields(rows)]
        if data.get("status") in ("finished", "cancelled"):
            key = ("finished", progress.get("finished"))
            table = _cached(sweep, ("table", *key), sweep.table)
            parts.append(table.head(TABLE_ROWS).to_html(index=False, na_rep="", float_format=lambda x: f"{x:.4g}"))
            if len(table) > TABLE_ROWS:
                parts.append(f"<p>... {len(table)} rows in all (<code>sweep.table()</code>)</p>")
            if 1 <= len([a for a in axes if a not in (data.get("replicates") or [])]) <= 2:  # drawable axes
                parts.append(_image(_cached(sweep, ("phase", *key), lambda: _fetch(
                    sweep, f"/v1/sweeps/{sweep.id}/phase-diagram", {"format": "png"}))))
    except LindynError as exc:
        parts = [_header("Sweep", sweep.id), f"<p>cannot show it: {html.escape(exc.message)}</p>"]
    return _box(parts)


# ---- what is held, what is fetched -----------------------------------------------------------------------
def _held(resource: _Resource) -> dict[str, Any]:
    """What the object holds; read once only if it holds no status yet."""
    if "status" not in resource._data:
        resource.refresh()
    return resource._data


def _cached(resource: _Resource, key: tuple[Any, ...], fetch: Any) -> Any:
    """``fetch()`` once per ``key`` (what it is, then what it depends on: ("figure", "succeeded")), kept on the
    object; a new key of the same kind replaces the old one."""
    cache: dict[str, tuple[tuple[Any, ...], Any]] = resource.__dict__.setdefault("_notebook_cache", {})
    held = cache.get(key[0])
    if held is None or held[0] != key:
        cache[key[0]] = held = (key, fetch())
    return held[1]


def _fetch(resource: _Resource, path: str, params: dict[str, str]) -> bytes:
    return resource.client.request("GET", path, params=params).content


# ---- HTML ------------------------------------------------------------------------------------------------
def _box(parts: list[str]) -> str:
    return f'<div style="{_STYLE}">' + "".join(parts) + "</div>"


def _header(kind: str, resource_id: str) -> str:
    return f"<b>{kind}</b> <code>{html.escape(resource_id)}</code>"


def _fields(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
        for k, v in rows if v not in (None, "")
    )
    return f"<table>{cells}</table>"


def _summaries(summaries: dict[str, dict[str, Any]]) -> str:
    """The summary table: a row per dynamics, a column per metric."""
    if not summaries:
        return ""
    metrics = list(dict.fromkeys(m for s in summaries.values() for m in s))
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
        + "".join(f"<td>{html.escape(_number(s.get(m)))}</td>" for m in metrics) + "</tr>"
        for name, s in summaries.items()
    )
    return f"<table><tr><th>dynamics</th>{head}</tr>{body}</table>"


def _image(png: bytes) -> str:
    return f'<img style="max-width: 100%" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


def _number(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return str(v)


def _values(values: list[Any]) -> str:
    shown = ", ".join(_number(v) for v in values[:4])
    return f"{shown}, ... ({len(values)} values)" if len(values) > 4 else shown


def _tags(tags: dict[str, str] | None) -> str | None:
    return ", ".join(f"{k}={v}" for k, v in tags.items()) if tags else None
