"""service.plots: Figure 1 and the phase diagrams as PNG (decoded) and SVG (parsed: the lines are named)."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dynamics import SimulationRequest, simulate
from service.plots import (
    MISSING_COLOUR,
    SMOOTH_SPECTRA,
    draw_run_figure,
    grid_of,
    metric_column,
    metric_columns,
    phase_diagram,
    run_figure,
    run_figure_inputs,
    theory_lines,
)

SVG = "{http://www.w3.org/2000/svg}"


def svg_texts(data: bytes) -> str:
    """All text of an SVG, joined (legend entries, titles, labels)."""
    root = ET.fromstring(data)
    return "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


def svg_ids(data: bytes) -> set[str]:
    return {el.get("id", "") for el in ET.fromstring(data).iter()}


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()  # decodes the whole image
    return image.size


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    req = SimulationRequest.model_validate({"d": 20, "rank": 2, "gamma_sigma2": -1.85, "gamma_w": 2.25,
                                            "lr_constant": 5, "steps": 30, "dynamics": ["gd", "self_consistent"],
                                            "spectrum_every": 1})
    return simulate(req)


def grid_table(n: int = 4) -> pd.DataFrame:
    gs, gw = np.meshgrid(np.linspace(-2.2, -0.8, n), np.linspace(1.75, 2.8, n))
    table = pd.DataFrame({"gamma_sigma2": gs.ravel(), "gamma_w": gw.ravel()})
    table["run_id"] = [f"r{i}" for i in range(len(table))]
    table["status"] = "succeeded"
    table["gd.min_test_error"] = table["gamma_sigma2"] + table["gamma_w"]
    table["gd.stable_rank_at_min"] = 5.0
    table["gd.min_test_error_step"] = np.arange(len(table), dtype=float)
    table["log_max_distance"] = -3.0
    return table


# ---- Figure 1 ------------------------------------------------------------------------------------------------
def test_run_figure_png_decodes(result) -> None:  # type: ignore[no-untyped-def]
    width, height = png_size(run_figure(**run_figure_inputs(result), fmt="png"))
    assert width > 600 and height > 300


def test_run_figure_svg_names_its_lines(result) -> None:  # type: ignore[no-untyped-def]
    svg = run_figure(**run_figure_inputs(result), fmt="svg")
    texts = svg_texts(svg)
    for label in ("GD: train error", "GD: test error", "self-consistent: test error", "GD: s_1", "GD: s_2",
                  "self-consistent: s_2", "GD: s_3..s_20 (band)", "threshold σ²w =", "d = 20", "k = 2",
                  "γ_σ² = -1.85", "γ_w = 2.25"):
        assert label in texts, label
    ids = svg_ids(svg)
    assert {"threshold", "band-gd", "band-self_consistent", "singular-value-gd-1", "singular-value-gd-2",
            "singular-value-self_consistent-1", "error-gd-train", "error-self_consistent-test"} <= ids
    assert "singular-value-gd-3" not in ids  # the rest is the band


def _overlaps(a, b) -> bool:  # type: ignore[no-untyped-def]
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_run_figure_is_drawn_as_figure_1(result) -> None:  # type: ignore[no-untyped-def]
    """Singular values on a log axis, the legends outside both panels' data, GD's band filled and the
    self-consistent one hatched, smooth curves (a spectrum each step: no markers, no note)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = draw_run_figure(**run_figure_inputs(result))
    FigureCanvasAgg(fig).draw()
    left, right = fig.axes[:2]
    assert (left.get_yscale(), right.get_yscale()) == ("log", "log")
    renderer = fig.canvas.get_renderer()
    for ax in (left, right):
        legend = ax.get_legend()
        assert legend is not None
        assert not _overlaps(legend.get_window_extent(renderer), ax.get_window_extent(renderer))
    bands = {c.get_gid(): c for c in right.collections if str(c.get_gid()).startswith("band-")}
    gd, sc = bands["band-gd"], bands["band-self_consistent"]
    assert gd.get_facecolor()[0][3] > 0 and not gd.get_hatch()  # filled
    fc = sc.get_facecolor()
    assert sc.get_hatch() and (fc.size == 0 or fc[0][3] == 0)  # hatched, not filled
    assert all(line.get_marker() in ("None", None, "") for line in right.lines)
    assert "recorded spectra" not in right.get_title()


def test_run_figure_with_few_spectra_draws_markers_and_says_so() -> None:
    steps = np.arange(0, 101, 10)  # spectrum_every = 10: 11 spectra
    assert len(steps) < SMOOTH_SPECTRA
    values = np.outer(np.exp(steps / 20.0), [3.0, 2.0, 1.0])
    fig = draw_run_figure(pd.DataFrame({"dynamics": [], "step": [], "train_error": [], "test_error": []}),
                          {"gd": (steps, values)}, rank=2, threshold=5.0)
    right = fig.axes[1]
    assert [line.get_marker() for line in right.lines if str(line.get_gid()).startswith("singular")] == ["o", "o"]
    assert "only 11 recorded spectra" in right.get_title() and "spectrum_every = 1" in right.get_title()


def test_run_figure_draws_gaps_for_missing_and_non_finite_values() -> None:
    trajectory = pd.DataFrame({
        "dynamics": ["gd"] * 4,
        "step": [0, 1, 2, 3],
        "train_error": [1.0, 0.5, None, math.inf],
        "test_error": [1.0, math.nan, 2.0, math.inf],
    })
    spectra = {"gd": (np.arange(4), np.array([[3.0, 2.0, 1.0], [4.0, 2.0, 1.0], [np.inf, 1.0, 0.5], [np.nan] * 3]))}
    for fmt in ("png", "svg"):
        data = run_figure(trajectory, spectra, rank=1, threshold=None, fmt=fmt)  # type: ignore[arg-type]
        assert data
    assert "threshold" not in svg_ids(run_figure(trajectory, spectra, rank=1, threshold=None, fmt="svg"))


def test_unknown_format_is_refused(result) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="png, svg"):
        run_figure(**run_figure_inputs(result), fmt="jpeg")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        phase_diagram(grid_table(), "min_test_error", "pdf")  # type: ignore[arg-type]


# ---- phase diagrams ------------------------------------------------------------------------------------------
def test_grid_masks_unfinished_and_absent_points() -> None:
    table = grid_table(3)
    table.loc[4, "gd.min_test_error"] = np.nan  # (gamma_w index 1, gamma_sigma2 index 1): not finished
    table = table.drop(index=8)  # the last point has no row at all
    xs, ys, grid = grid_of(table, "gamma_sigma2", "gamma_w", "gd.min_test_error")
    assert xs.tolist() == pytest.approx([-2.2, -1.5, -0.8]) and ys.tolist() == pytest.approx([1.75, 2.275, 2.8])
    assert isinstance(grid, np.ma.MaskedArray)
    mask = np.ma.getmaskarray(grid)
    assert mask.tolist() == [[False, False, False], [False, True, False], [False, False, True]]
    assert grid[0, 2] == pytest.approx(-0.8 + 1.75)  # rows are gamma_w, columns gamma_sigma2
    assert grid[2, 0] == pytest.approx(-2.2 + 2.8)
    assert grid.filled(np.nan)[1, 1] != grid.filled(np.nan)[1, 1]  # NaN, never 0


def test_phase_diagram_png_and_svg_with_the_theory_lines() -> None:
    table = grid_table()
    table.loc[3, "gd.min_test_error"] = np.nan
    png_size(phase_diagram(table, "min_test_error", "png", d=200, rank=5))
    svg = phase_diagram(table, "min_test_error", "svg", d=200, rank=5)
    texts = svg_texts(svg)
    assert "active / lazy: γ_σ² + γ_w = 1 (active below)" in texts
    assert "infinite noise: γ_w + 2 γ_σ² = 0 (theory holds below)" in texts
    # a line outside the grid is not drawn, so the legend does not list it; the panel says where it is
    assert "outside the grid: underparametrised: w = k (γ_w = ln k / ln d = 0.304)" in texts
    assert "missing (not finished)" in texts
    assert "minimal test error" in texts and "γ_σ² (σ² = d^γ_σ²)" in texts and "γ_w (w = d^γ_w)" in texts
    ids = svg_ids(svg)
    assert {"theory-active-lazy", "theory-infinite-noise", "theory-outside-grid",
            "heat-map-gd.min_test_error"} <= ids
    assert "theory-underparametrised" not in ids
    legend_entries = [t for t in texts.splitlines() if t.startswith(("active /", "infinite", "underparametrised"))]
    assert legend_entries == ["active / lazy: γ_σ² + γ_w = 1 (active below)",
                              "infinite noise: γ_w + 2 γ_σ² = 0 (theory holds below)"]


def test_the_underparametrised_line_is_drawn_inside_a_grid_that_reaches_it() -> None:
    table = grid_table()
    table["gamma_w"] = table["gamma_w"] - 1.6  # 0.15 .. 1.2: ln 5 / ln 200 = 0.304 is inside
    texts = svg_texts(phase_diagram(table, "gd.min_test_error", "svg", d=200, rank=5))
    assert "underparametrised: w = k (γ_w = ln k / ln d = 0.304)" in texts
    notes = [t for t in texts.splitlines() if t.startswith("outside the grid")]
    assert notes and not any("underparametrised" in n for n in notes)
    assert "theory-underparametrised" in svg_ids(
        phase_diagram(table, "gd.min_test_error", "svg", d=200, rank=5))
    assert "missing (not finished)" not in texts  # nothing missing: no such entry


def test_metric_names_with_or_without_the_dynamics_prefix() -> None:
    table = grid_table()
    table["self_consistent.min_test_error"] = 1.0
    assert metric_column(table, "min_test_error") == "gd.min_test_error"
    assert metric_column(table, "gd.min_test_error") == "gd.min_test_error"
    assert metric_column(table, "min_test_error", "self_consistent") == "self_consistent.min_test_error"
    assert metric_column(table, "log_max_distance") == "log_max_distance"
    with pytest.raises(KeyError, match="gd.min_test_error"):
        metric_column(table, "nonsense")
    table["gd.stop_reason"] = "max_steps"
    for not_a_number in ("stop_reason", "gd.stop_reason", "status", "run_id"):
        with pytest.raises(KeyError):
            metric_column(table, not_a_number)
    assert "gd.stop_reason" not in metric_columns(table) and "log_max_distance" in metric_columns(table)
    sc = svg_texts(phase_diagram(table, "self_consistent.min_test_error", "svg"))
    assert "[self_consistent.min_test_error]" in sc


def test_figure2_draws_four_panels_and_says_which_is_missing() -> None:
    table = grid_table()
    texts = svg_texts(phase_diagram(table, "figure2", "svg", d=200, rank=5))
    for title in ("minimal test error", "stable rank at the minimal test error",
                  "iterations until the minimal test error", "log max distance GD vs self-consistent (natural log)"):
        assert title in texts, title
    gd_only = svg_texts(phase_diagram(table.drop(columns="log_max_distance"), "figure2", "svg"))
    assert "no log_max_distance in this table" in gd_only
    png_size(phase_diagram(table, "figure2", "png"))


def test_other_axes_have_no_theory_lines_and_missing_axes_are_refused() -> None:
    table = pd.DataFrame({"d": [10, 10, 20, 20], "lr_constant": [5.0, 50.0, 5.0, 50.0],
                          "gd.min_test_error": [0.1, 0.2, np.nan, 0.4]})
    svg = phase_diagram(table, "min_test_error", "svg", x="d", y="lr_constant")
    assert not {"theory-active-lazy", "theory-infinite-noise"} & svg_ids(svg)
    assert "missing (not finished)" in svg_texts(svg)
    with pytest.raises(ValueError, match="two axes"):
        phase_diagram(table, "min_test_error", "svg")
    with pytest.raises(ValueError, match="seed"):
        phase_diagram(table, "min_test_error", "svg", x="d", y="seed")


def test_theory_lines_are_method_section_6() -> None:
    lines = {gid: f for gid, _, f in theory_lines(200, 5)}
    assert lines["theory-active-lazy"](-1.0) == pytest.approx(2.0)
    assert lines["theory-infinite-noise"](-1.0) == pytest.approx(2.0)
    assert float(lines["theory-underparametrised"](np.array([0.0]))[0]) == pytest.approx(math.log(5) / math.log(200))
    assert [gid for gid, _, _ in theory_lines()] == ["theory-active-lazy", "theory-infinite-noise"]


def test_missing_colour_is_not_in_the_colour_map() -> None:
    import matplotlib
    from matplotlib.colors import to_rgba

    viridis = matplotlib.colormaps["viridis"](np.linspace(0, 1, 256))
    assert np.abs(viridis - np.array(to_rgba(MISSING_COLOUR))).sum(axis=1).min() > 0.1


def test_line_plot_of_means_with_missing_sds_and_means() -> None:
    """An aggregated table (service/replicates.py) with a point of one finished run (sd null) and one of
    none (mean null): the line and its error bars are drawn, the gaps stay gaps."""
    from service.plots import line_plot

    table = pd.DataFrame({"gamma_w": [1.5, 2.0, 2.5], "gd.min_test_error.mean": [0.3, 0.4, None],
                          "gd.min_test_error.sd": [0.01, None, None], "gd.min_test_error.n": [3, 1, 0]})
    svg = line_plot(table, "min_test_error", "svg", x="gamma_w", aggregated=True, title="t")
    ids = {el.get("id") for el in ET.fromstring(svg).iter()}
    assert {"line-gd.min_test_error.mean", "error-bars-gd.min_test_error.mean"} <= ids
    with pytest.raises(KeyError):
        line_plot(table, "nonsense", "svg", x="gamma_w", aggregated=True)
