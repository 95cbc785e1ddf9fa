"""The paper's figures, rendered with matplotlib (Agg for PNG, its SVG backend for SVG) into bytes.

Pure functions: plain arrays and DataFrames in, image bytes out; no database, no pyplot (no global figure
state). ``run_figure`` is Figure 1 for one run; ``phase_diagram`` is a heat map of one summary metric over
a sweep's two axes (Figure 2's panels, with the theory's lines of method.md section 6 when the axes are
gamma_sigma2 and gamma_w); ``metric="figure2"`` draws the paper's four panels together.

SVG text is written as text (``svg.fonttype = 'none'``) and the lines carry ``gid``s, so an SVG names its
lines and legend entries.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dynamics import DYNAMICS
from dynamics.result import COMPARISON_METRICS, FIGURE2_METRICS, METRICS

ImageFormat = Literal["png", "svg"]
IMAGE_FORMATS: tuple[str, ...] = ("png", "svg")
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml"}

#: one line style per dynamics (Figure 1)
LINE_STYLES: dict[str, str] = {"gd": "-", "self_consistent": "--", "lazy": ":", "balanced": "-."}
LABELS: dict[str, str] = {"gd": "GD", "self_consistent": "self-consistent", "lazy": "lazy", "balanced": "balanced"}
#: a metric's title on a heat map and its colour bar (the catalogue's, dynamics/result.py)
METRIC_TITLES: dict[str, str] = {name: q.title for name, q in METRICS.items()}
#: the band of s_{k+1..d} per dynamics (in the order of DYNAMICS present): GD filled grey, the next hatched
BAND_STYLES: tuple[dict[str, Any], ...] = (
    {"facecolor": "0.6", "alpha": 0.45, "edgecolor": "0.35"},
    {"facecolor": "none", "hatch": "////", "edgecolor": "tab:brown"},
    {"facecolor": "none", "hatch": "\\\\", "edgecolor": "tab:olive"},
    {"facecolor": "none", "hatch": "..", "edgecolor": "tab:cyan"},
)
#: a run figure with fewer recorded spectra than this draws them with markers and says so
SMOOTH_SPECTRA = 30
#: colour of grid points without a value (not finished, failed, no such metric): shown as missing, not zero
MISSING_COLOUR = "#d9d9d9"
AXIS_LABELS: dict[str, str] = {"gamma_sigma2": "γ_σ² (σ² = d^γ_σ²)", "gamma_w": "γ_w (w = d^γ_w)"}

#: table columns that are not numbers to draw
_NOT_METRICS = frozenset({"run_id", "status", "id", *(name for name, q in METRICS.items() if not q.numeric)})
#: the comparison's columns of a sweep table (not prefixed by a dynamics)
_COMPARISON_COLUMNS = frozenset(q.name for q in COMPARISON_METRICS)

_RENDER_LOCK = threading.Lock()  # rcParams are global: one render at a time sets and reads them


# ---- Figure 1 -------------------------------------------------------------------------------------------------
def run_figure(
    trajectory: pd.DataFrame | Mapping[str, Sequence[Any]],
    spectra: Mapping[str, tuple[Any, Any]],
    *,
    rank: int,
    threshold: float | None,
    d: int | None = None,
    gamma_sigma2: float | None = None,
    gamma_w: float | None = None,
    fmt: ImageFormat = "png",
    spectrum_scale: Literal["linear", "log"] = "log",
) -> bytes:
    """The paper's Figure 1 for one run.

    ``trajectory``: long format, columns ``dynamics``, ``step``, ``train_error``, ``test_error`` (more are
    ignored; None/NaN/inf are gaps). ``spectra``: dynamics -> (steps, singular values of shape (n, d), each row
    s_1 >= s_2 >= ...). Left: train and test error of each dynamics over the steps (log y). Right: the ``rank``
    largest singular values in their own colours, the rest as a band (min..max of s_{k+1..d}; GD's filled grey,
    the self-consistent one hatched), one line style per dynamics, the threshold sigma^2 w as a horizontal
    line; log y by default, as in the paper, where the slow (lazy) growth below the threshold and the speed-up
    once a singular value crosses it are both visible (``spectrum_scale="linear"`` for a linear axis). Spectra
    recorded at fewer than ``SMOOTH_SPECTRA`` steps are drawn with markers and the panel says how often they
    were recorded (a run records one every ``spectrum_every`` steps). The legends sit beside the panels,
    outside the data.
    """
    _check_format(fmt)
    return render(draw_run_figure(trajectory, spectra, rank=rank, threshold=threshold, d=d,
                                  gamma_sigma2=gamma_sigma2, gamma_w=gamma_w, spectrum_scale=spectrum_scale), fmt)


def draw_run_figure(
    trajectory: pd.DataFrame | Mapping[str, Sequence[Any]],
    spectra: Mapping[str, tuple[Any, Any]],
    *,
    rank: int,
    threshold: float | None,
    d: int | None = None,
    gamma_sigma2: float | None = None,
    gamma_w: float | None = None,
    spectrum_scale: Literal["linear", "log"] = "log",
) -> Figure:
    """The matplotlib Figure that ``run_figure`` renders (its two axes: errors, singular values)."""
    frame = pd.DataFrame(trajectory)
    names = _dynamics_order([*frame["dynamics"].unique().tolist(), *spectra]) if len(frame) else list(spectra)

    fig = Figure(figsize=(13, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2)

    # left: errors
    for name in names:
        rows = frame[frame["dynamics"] == name] if len(frame) else frame
        if not len(rows):
            continue
        steps = rows["step"].to_numpy(dtype=float)
        style = LINE_STYLES.get(name, "-")
        for column, colour, what in (("train_error", "tab:blue", "train"), ("test_error", "tab:red", "test")):
            values = _positive(rows[column])
            (line,) = left.plot(steps, values, linestyle=style, color=colour, linewidth=1.6,
                                label=f"{LABELS.get(name, name)}: {what} error")
            line.set_gid(f"error-{name}-{what}")
    left.set_yscale("log")
    left.set_xlabel("iteration")
    left.set_ylabel("error: (1/d²)‖A − Y‖²_F (train), (1/d²)‖A − A*‖²_F (test)")
    left.set_title("train and test error")
    left.grid(True, which="both", alpha=0.25)
    if left.lines:
        left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize="small", ncols=2, frameon=False)

    # right: singular values
    k = max(int(rank), 0)
    colours = matplotlib.colormaps["tab10"]
    n_spectra = 0
    top_low = math.inf  # the smallest of the k largest singular values drawn: where a log axis starts
    for i, name in enumerate(names):
        if name not in spectra:
            continue
        steps_raw, values_raw = spectra[name]
        steps = np.asarray(steps_raw, dtype=float)
        values = np.asarray(values_raw, dtype=float)
        if values.ndim != 2 or not values.shape[0]:
            continue
        values = np.where(np.isfinite(values), values, np.nan)
        n_spectra = max(n_spectra, len(steps))
        marker = "o" if len(steps) < SMOOTH_SPECTRA else None
        style = LINE_STYLES.get(name, "-")
        label = LABELS.get(name, name)
        if values.shape[1] > k:
            rest = values[:, k:]
            with np.errstate(all="ignore"):
                low = _finite(np.min(np.where(np.isnan(rest), np.inf, rest), axis=1), spectrum_scale == "log")
                high = _finite(np.max(np.where(np.isnan(rest), -np.inf, rest), axis=1), spectrum_scale == "log")
            look = BAND_STYLES[i % len(BAND_STYLES)]
            band = right.fill_between(steps, low, high, linestyle=style, linewidth=1.0, **look,
                                      label=f"{label}: s_{k + 1}..s_{values.shape[1]} (band)")
            band.set_gid(f"band-{name}")
        if spectrum_scale == "log" and k:
            top = values[:, :k][np.isfinite(values[:, :k]) & (values[:, :k] > 0)]
            top_low = min(top_low, float(top.min())) if top.size else top_low
        for j in range(min(k, values.shape[1])):
            (line,) = right.plot(steps, _finite(values[:, j], spectrum_scale == "log"), linestyle=style,
                                 color=colours(j % 10), linewidth=1.6, marker=marker, markersize=3,
                                 label=f"{label}: s_{j + 1}")
            line.set_gid(f"singular-value-{name}-{j + 1}")
    if threshold is not None and math.isfinite(threshold) and threshold > 0:
        line = right.axhline(threshold, color="black", linestyle=(0, (1, 2)), linewidth=1.4,
                             label=f"threshold σ²w = {threshold:.4g}")
        line.set_gid("threshold")
    right.set_yscale(spectrum_scale)
    if math.isfinite(top_low):  # the smallest s_i of a square noise matrix are near 0: start a decade below s_k
        right.set_ylim(bottom=top_low / 10)
    right.set_xlabel("iteration")
    right.set_ylabel("singular values of A")
    title = f"singular values (the {k} largest in colour, the rest as a band)"
    if 0 < n_spectra < SMOOTH_SPECTRA:
        title += f"\nonly {n_spectra} recorded spectra (markers): submit with spectrum_every = 1 for smooth curves"
    right.set_title(title)
    right.grid(True, which="both", alpha=0.25)
    if right.lines or right.collections:
        right.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small", frameon=False)

    fig.suptitle(_run_title(d, rank, gamma_sigma2, gamma_w, threshold, names))
    return fig


def run_figure_inputs(result: Any) -> dict[str, Any]:
    """The arguments of ``run_figure`` from a ``dynamics.SimulationResult`` (``lindyn simulate`` and bench)."""
    request = result.request
    return {
        "trajectory": pd.DataFrame(result.trajectory_columns()),
        "spectra": {name: (t.spectrum_steps, t.spectrum) for name, t in result.trajectories.items()},
        "rank": request["rank"],
        "threshold": result.threshold,
        "d": request["d"],
        "gamma_sigma2": request.get("gamma_sigma2"),
        "gamma_w": request.get("gamma_w"),
    }


def _run_title(d: int | None, rank: int, gs: float | None, gw: float | None, threshold: float | None,
               names: Sequence[str]) -> str:
    parts = []
    if d is not None:
        parts.append(f"d = {d}")
    parts.append(f"k = {rank}")
    if gs is not None:
        parts.append(f"γ_σ² = {gs:.4g}")
    if gw is not None:
        parts.append(f"γ_w = {gw:.4g}")
    if threshold is not None and math.isfinite(threshold):
        parts.append(f"σ²w = {threshold:.4g}")
    dyn = ", ".join(f"{LABELS.get(n, n)} ({_style_word(n)})" for n in names)
    return ", ".join(parts) + (f"  —  {dyn}" if dyn else "")


def _style_word(name: str) -> str:
    return {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dot"}.get(LINE_STYLES.get(name, "-"), "solid")


# ---- Figure 2 -------------------------------------------------------------------------------------------------
def metric_column(table: pd.DataFrame, metric: str, dynamics: str = "gd", statistic: str = "") -> str:
    """The table column of ``metric``: as given (``gd.<metric>``, ``log_max_distance``) or with the
    dynamics prefix (``<metric>`` -> ``gd.<metric>``), with ``.<statistic>`` after it in an aggregated table
    (``gd.<metric>.mean``). KeyError naming the choices if neither."""
    tail = f".{statistic}" if statistic else ""
    for column in (f"{metric}{tail}", f"{dynamics}.{metric}{tail}"):
        if column in table.columns and str(column).rsplit(".", 1)[-1] not in _NOT_METRICS:
            return column
    raise KeyError(f"no metric {metric!r} in the table (metrics: {', '.join(metric_columns(table))})")


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The summary columns of a sweep table that can be drawn (``<dynamics>.<metric>``, log_max_distance)."""
    return [
        str(c) for c in table.columns
        if ("." in str(c) or str(c) in _COMPARISON_COLUMNS)
        and str(c).rsplit(".", 1)[-1] not in _NOT_METRICS
    ]


def grid_of(table: pd.DataFrame, x: str, y: str, column: str,
            nearest: bool = False) -> tuple[np.ndarray, np.ndarray, np.ma.MaskedArray]:
    """(x values, y values, values[y_i, x_j] masked where there is no finite value) of a long table. With
    ``nearest`` (a refined, non-uniform mesh) every cell of the union of the axes' values takes the value of
    the table's nearest point (distances in units of each axis's range; masked when that point has none)."""
    xs = np.unique(pd.to_numeric(table[x], errors="coerce").dropna().to_numpy(dtype=float))
    ys = np.unique(pd.to_numeric(table[y], errors="coerce").dropna().to_numpy(dtype=float))
    if nearest:
        return xs, ys, np.ma.masked_invalid(nearest_values(xs, ys, table, x, y, column))
    grid = np.full((len(ys), len(xs)), np.nan)
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    xi = np.searchsorted(xs, pd.to_numeric(table[x], errors="coerce").to_numpy(dtype=float))
    yi = np.searchsorted(ys, pd.to_numeric(table[y], errors="coerce").to_numpy(dtype=float))
    for i, j, v in zip(yi, xi, values):
        if i < len(ys) and j < len(xs) and math.isfinite(v):
            grid[i, j] = v
    return xs, ys, np.ma.masked_invalid(grid)


def nearest_values(xs: np.ndarray, ys: np.ndarray, table: pd.DataFrame, x: str, y: str, column: str) -> np.ndarray:
    """values[y_i, x_j]: the value of ``column`` at the table's point nearest (xs[j], ys[i]) (NaN if none), the
    distance measured in units of each axis's range."""
    px = pd.to_numeric(table[x], errors="coerce").to_numpy(dtype=float)
    py = pd.to_numeric(table[y], errors="coerce").to_numpy(dtype=float)
    pv = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(px) & np.isfinite(py)
    px, py, pv = px[keep], py[keep], pv[keep]
    grid = np.full((len(ys), len(xs)), np.nan)
    if len(px) == 0:
        return grid
    sx = float(np.ptp(xs)) or 1.0
    sy = float(np.ptp(ys)) or 1.0
    for i, yv in enumerate(ys):  # a row at a time: (len(xs), points) distances
        d2 = ((xs[:, None] - px[None, :]) / sx) ** 2 + ((yv - py[None, :]) / sy) ** 2
        grid[i] = pv[np.argmin(d2, axis=1)]
    return grid


def phase_diagram(
    table: pd.DataFrame,
    metric: str,
    fmt: ImageFormat = "png",
    *,
    x: str | None = None,
    y: str | None = None,
    dynamics: str = "gd",
    d: int | None = None,
    rank: int | None = None,
    title: str | None = None,
    nearest: bool = False,
    statistics: Sequence[str] = ("",),
) -> bytes:
    """Heat map of ``metric`` over the sweep's two axes (``x``, ``y``; by default gamma_sigma2 and gamma_w
    when the table has them), colour bar, axis labels; grid points without a finite value are masked and
    drawn in ``MISSING_COLOUR``. When the axes are gamma_sigma2 (x) and gamma_w (y), the theory's lines
    (method.md section 6) with a legend; the line w = k needs ``d`` and ``rank``. ``metric="figure2"``: the
    paper's four panels. ``nearest``: the points form a refined (non-uniform) mesh, each cell of the union of
    the axes' values drawn in its nearest point's value (``grid_of``). ``statistics``: of an aggregated table
    (service/replicates.py), the statistic each panel of a metric shows, side by side: ("mean",) or
    ("mean", "sd"); ("",) for a table of runs. ValueError for axes that are not in the table, KeyError for an
    unknown metric."""
    _check_format(fmt)
    x, y = _axes_of(table, x, y)
    metrics = list(FIGURE2_METRICS) if metric == "figure2" else [metric]
    columns: list[str | None] = []
    for m in metrics:
        for statistic in statistics:
            try:
                columns.append(metric_column(table, m, dynamics, statistic))
            except KeyError:
                if metric != "figure2":
                    raise
                columns.append(None)  # a panel without data (e.g. log_max_distance when only GD ran)

    fig, panels = _panels(len(metrics), len(statistics))
    for i, column in enumerate(columns):
        m, statistic = metrics[i // len(statistics)], statistics[i % len(statistics)]
        _heat_map(panels[i], fig, table, x, y, m, column, d=d, rank=rank, statistic=statistic, nearest=nearest)
    legend: dict[str, Any] = {}
    for ax in panels:  # one legend for every panel, below them
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="outside lower center", fontsize="small",
                   ncols=2 if len(panels) > 1 else 1, frameon=False)
    if title:
        fig.suptitle(title)
    return render(fig, fmt)


def _panels(metrics: int, statistics: int) -> tuple[Figure, list[Axes]]:
    """A figure with a panel per (metric, statistic): one metric's statistics side by side, four metrics
    (Figure 2) in a 2 x 2 grid of them (a row per metric when there are two statistics)."""
    if metrics == 1:
        fig = Figure(figsize=(7.4 * statistics, 6.6), layout="constrained")
        return fig, list(np.atleast_1d(np.asarray(fig.subplots(1, statistics))).ravel())
    if statistics == 1:
        fig = Figure(figsize=(14, 12), layout="constrained")
        return fig, list(np.asarray(fig.subplots(2, 2)).ravel())
    fig = Figure(figsize=(7 * statistics, 5.6 * metrics), layout="constrained")
    return fig, list(np.asarray(fig.subplots(metrics, statistics)).ravel())


#: how a panel's title names the statistic it shows
STATISTIC_WORDS: dict[str, str] = {"": "", "mean": "mean of ", "sd": "sd of "}


def _axes_of(table: pd.DataFrame, x: str | None, y: str | None) -> tuple[str, str]:
    if x is None and y is None and {"gamma_sigma2", "gamma_w"} <= set(table.columns):
        x, y = "gamma_sigma2", "gamma_w"
    if x is None or y is None:
        raise ValueError("a phase diagram needs two axes (x and y)")
    for name in (x, y):
        if name not in table.columns:
            raise ValueError(f"axis {name!r} is not a column of the table")
    return x, y


def _heat_map(ax: Axes, fig: Figure, table: pd.DataFrame, x: str, y: str, metric: str, column: str | None,
              *, d: int | None, rank: int | None, statistic: str = "", nearest: bool = False) -> None:
    base = metric.split(".", 1)[-1]
    name = STATISTIC_WORDS[statistic] + METRIC_TITLES.get(base, base)
    if column is not None and column != base:
        name = f"{name} [{column}]"
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(AXIS_LABELS.get(y, y))
    ax.set_title(name)
    xs, ys, grid = (grid_of(table, x, y, column, nearest) if column is not None
                    else (*_axis_values(table, x, y), None))
    if len(xs) == 0 or len(ys) == 0:
        ax.text(0.5, 0.5, "no grid points", transform=ax.transAxes, ha="center", va="center")
        return
    xe, ye = _edges(xs), _edges(ys)
    if grid is None:
        ax.set_facecolor(MISSING_COLOUR)
        ax.text(0.5, 0.5, f"no {base} in this table", transform=ax.transAxes, ha="center", va="center",
                fontsize="large")
    else:
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad=MISSING_COLOUR)
        mesh = ax.pcolormesh(xe, ye, grid, cmap=cmap, shading="flat")
        mesh.set_gid(f"heat-map-{column}")
        bar = fig.colorbar(mesh, ax=ax)
        bar.set_label(name)
        if bool(np.ma.getmaskarray(grid).any()):
            ax.plot([], [], linestyle="none", marker="s", markersize=9, color=MISSING_COLOUR,
                    markeredgecolor="0.5", label="missing (not finished)")
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    if (x, y) == ("gamma_sigma2", "gamma_w"):
        _theory_lines(ax, (xe[0], xe[-1]), (ye[0], ye[-1]), d=d, rank=rank)


def line_plot(
    table: pd.DataFrame,
    metric: str,
    fmt: ImageFormat = "png",
    *,
    x: str,
    dynamics: str = "gd",
    title: str | None = None,
    aggregated: bool = False,
) -> bytes:
    """``metric`` (or ``figure2``: the paper's four panels) over one axis ``x``: a line through the points
    (gid ``line-<column>``); of an aggregated table (service/replicates.py), the mean with error bars of one
    sample sd (none where n < 2). Points without a finite value are gaps. KeyError for an unknown metric."""
    _check_format(fmt)
    if x not in table.columns:
        raise ValueError(f"axis {x!r} is not a column of the table")
    metrics = list(FIGURE2_METRICS) if metric == "figure2" else [metric]
    statistic = "mean" if aggregated else ""
    columns: list[str | None] = []
    for m in metrics:
        try:
            columns.append(metric_column(table, m, dynamics, statistic))
        except KeyError:
            if metric != "figure2":
                raise
            columns.append(None)
    fig, panels = _panels(len(metrics), 1)
    xs = pd.to_numeric(table[x], errors="coerce").to_numpy(dtype=float) if len(table) else np.zeros(0)
    order = np.argsort(xs, kind="stable")
    for ax, m, column in zip(panels, metrics, columns):
        base = m.split(".", 1)[-1]
        name = STATISTIC_WORDS[statistic] + METRIC_TITLES.get(base, base)
        ax.set_ylabel(name + (" (± sd)" if aggregated else ""))
        if column is not None and column.removesuffix(".mean") != base:
            name = f"{name} [{column}]"
        ax.set_xlabel(AXIS_LABELS.get(x, x))
        ax.set_title(name)
        ax.grid(True, alpha=0.25)
        if column is None:
            ax.text(0.5, 0.5, f"no {base} in this table", transform=ax.transAxes, ha="center", va="center")
            continue
        ys = _finite(table[column], False)[order] if len(table) else np.zeros(0)
        if aggregated:
            sd = _finite(table[column.removesuffix(".mean") + ".sd"], False)[order] if len(table) else None
            container = ax.errorbar(xs[order], ys, yerr=sd, marker="o", capsize=4, linewidth=1.6,
                                    label="mean ± sd")
            container.lines[0].set_gid(f"line-{column}")
            for bar in container.lines[2]:
                bar.set_gid(f"error-bars-{column}")
        else:
            (line,) = ax.plot(xs[order], ys, marker="o", linewidth=1.6)
            line.set_gid(f"line-{column}")
    if title:
        fig.suptitle(title)
    return render(fig, fmt)


def theory_lines(d: int | None = None, rank: int | None = None) -> list[tuple[str, str, Any]]:
    """(gid, label, gamma_w as a function of gamma_sigma2) of the theory's lines (method.md section 6)."""
    lines: list[tuple[str, str, Any]] = [
        ("theory-active-lazy", "active / lazy: γ_σ² + γ_w = 1 (active below)", lambda gs: 1.0 - gs),
        ("theory-infinite-noise", "infinite noise: γ_w + 2 γ_σ² = 0 (theory holds below)", lambda gs: -2.0 * gs),
    ]
    if d is not None and rank is not None and d > 1 and rank >= 1:
        level = math.log(rank) / math.log(d)
        lines.append(("theory-underparametrised", f"underparametrised: w = k (γ_w = ln k / ln d = {level:.3g})",
                      lambda gs: np.full_like(np.asarray(gs, dtype=float), level)))
    return lines


def _theory_lines(ax: Axes, xlim: tuple[float, float], ylim: tuple[float, float], *,
                  d: int | None, rank: int | None) -> None:
    styles = {"theory-active-lazy": ("white", "-"), "theory-infinite-noise": ("red", "-"),
              "theory-underparametrised": ("orange", "--")}
    gs = np.linspace(xlim[0], xlim[1], 200)
    outside = []
    for gid, label, f in theory_lines(d, rank):
        gw = np.asarray(f(gs), dtype=float)
        if not bool(np.any((gw >= ylim[0]) & (gw <= ylim[1]))):
            outside.append(label)  # not drawn, so not in the legend: said on the panel
            continue
        colour, style = styles[gid]
        (line,) = ax.plot(gs, gw, color=colour, linestyle=style, linewidth=2.2, label=label,
                          path_effects=_outline() if colour == "white" else None)
        line.set_gid(gid)
    if outside:
        note = ax.text(0.01, 0.01, "outside the grid: " + "; ".join(outside), transform=ax.transAxes,
                       fontsize="x-small", ha="left", va="bottom",
                       bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 2})
        note.set_gid("theory-outside-grid")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)


def _outline() -> list[Any]:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=3.4, foreground="black")]


def _axis_values(table: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    xs = np.unique(pd.to_numeric(table[x], errors="coerce").dropna().to_numpy(dtype=float))
    ys = np.unique(pd.to_numeric(table[y], errors="coerce").dropna().to_numpy(dtype=float))
    return xs, ys


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres (midpoints; a single value gets a unit-wide cell)."""
    c = np.asarray(centres, dtype=float)
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


# ---- rendering ------------------------------------------------------------------------------------------------
def render(fig: Figure, fmt: ImageFormat) -> bytes:
    """PNG (Agg) or SVG bytes of a figure; SVG text stays text and the output is deterministic."""
    _check_format(fmt)
    buf = io.BytesIO()
    with _RENDER_LOCK, matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lindyn"}):
        if fmt == "png":
            FigureCanvasAgg(fig).print_png(buf, metadata={"Software": "lindyn (matplotlib)"})
        else:
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "lindyn (matplotlib)"})
    return buf.getvalue()


def _check_format(fmt: str) -> None:
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(IMAGE_FORMATS)}, not {fmt!r}")


def _positive(values: Any) -> np.ndarray:
    """Floats for a log axis: None, NaN, inf and values <= 0 become NaN (gaps)."""
    a = pd.to_numeric(pd.Series(np.asarray(values, dtype=object).ravel()), errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def _finite(values: Any, positive: bool) -> np.ndarray:
    """Floats with None and non-finite values (and, for a log axis, values <= 0) as NaN (gaps)."""
    if positive:
        return _positive(values)
    a = pd.to_numeric(pd.Series(np.asarray(values, dtype=object).ravel()), errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(a), a, np.nan)


def _dynamics_order(names: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(names))
    return [n for n in DYNAMICS if n in seen] + [n for n in seen if n not in DYNAMICS]
