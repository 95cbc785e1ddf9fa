"""The dashboard's one view of the catalogue of metrics and columns: names, titles, line styles.

Every page reads the metric names and titles from here (rendered into the page as JSON), so that the day
the catalogue moves (issue 12: one catalogue in dynamics/result.py) only this module is repointed.
"""

from __future__ import annotations

from typing import Any

from dynamics import DYNAMICS
from dynamics.result import METRIC_COLUMNS, SUMMARY_FIELDS
from models.queries import RUN_RANGES, SORT_KEYS, SUMMARY_RANGES
from service.plots import FIGURE2_METRICS, LABELS, LINE_STYLES, METRIC_TITLES

#: plotly's dash names for matplotlib's line styles (Figure 1: GD solid, self-consistent dashed, ...)
_DASH = {"-": "solid", "--": "dash", ":": "dot", "-.": "dashdot"}
#: summary fields that are not numbers to draw
_NOT_NUMERIC = frozenset({"stop_reason"})

TRAJECTORY_TITLES: dict[str, str] = {
    "train_error": "train error",
    "test_error": "test error",
    "stable_rank": "stable rank",
    "rank": "rank",
    "gap_ratio": "gap ratio",
    "n_above_threshold": "singular values above the threshold",
}


def catalogue() -> dict[str, Any]:
    """What the pages need to name things: dynamics (label, dash), summary metrics (title), trajectory
    columns, Figure 2's panels, the run list's range filters and sort keys."""
    metrics = [m for m in SUMMARY_FIELDS if m not in _NOT_NUMERIC]
    return {
        "dynamics": [{"name": n, "label": LABELS.get(n, n), "dash": _DASH.get(LINE_STYLES.get(n, "-"), "solid")}
                     for n in DYNAMICS],
        "summary_metrics": [{"name": m, "title": METRIC_TITLES.get(m, m.replace("_", " "))} for m in metrics],
        "comparison_metrics": [{"name": "log_max_distance", "title": METRIC_TITLES["log_max_distance"]}],
        "trajectory_columns": [{"name": c, "title": TRAJECTORY_TITLES.get(c, c.replace("_", " "))}
                               for c in METRIC_COLUMNS],
        "figure2": list(FIGURE2_METRICS),
        "parameters": list(RUN_RANGES),
        "metric_ranges": list(SUMMARY_RANGES),
        "sort_keys": list(SORT_KEYS),
    }
