"""The dashboard's one view of the catalogue of metrics and columns: names, titles, line styles.

Every page reads the metric names and titles from here (rendered into the page as JSON); they come from the
one catalogue, dynamics/result.py (its Quantity titles), and the filters and sorts of models/queries.py.
"""

from __future__ import annotations

from typing import Any

from dynamics import DYNAMICS
from dynamics.result import COMPARISON_METRICS, FIGURE2_METRICS, SUMMARY_METRICS, TRAJECTORY_METRICS
from models.queries import RUN_RANGES, SORT_KEYS, SUMMARY_RANGES
from service.plots import LABELS, LINE_STYLES

#: plotly's dash names for matplotlib's line styles (Figure 1: GD solid, self-consistent dashed, ...)
_DASH = {"-": "solid", "--": "dash", ":": "dot", "-.": "dashdot"}


def catalogue() -> dict[str, Any]:
    """What the pages need to name things: dynamics (label, dash), summary metrics (title), trajectory
    columns, Figure 2's panels, the run list's range filters and sort keys."""
    return {
        "dynamics": [{"name": n, "label": LABELS.get(n, n), "dash": _DASH.get(LINE_STYLES.get(n, "-"), "solid")}
                     for n in DYNAMICS],
        "summary_metrics": [{"name": q.name, "title": q.title} for q in SUMMARY_METRICS if q.numeric],
        "comparison_metrics": [{"name": q.name, "title": q.title} for q in COMPARISON_METRICS
                               if q.name.startswith("log_")],
        "trajectory_columns": [{"name": q.name, "title": q.title} for q in TRAJECTORY_METRICS],
        "figure2": list(FIGURE2_METRICS),
        "parameters": list(RUN_RANGES),
        "metric_ranges": list(SUMMARY_RANGES),
        "sort_keys": list(SORT_KEYS),
    }
