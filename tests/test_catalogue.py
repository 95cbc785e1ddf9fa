"""The catalogue (dynamics/result.py: trajectory columns, summary and comparison metrics; dynamics/request.py:
the request's fields) drives every place that lists them: a metric or a field added to it appears in the
Summary schema, the run filters, the CLI's flags; the places built at import match the catalogue; and a
summary metric's name is written in at most three source files."""

from __future__ import annotations

import subprocess
import typing
from pathlib import Path

import pytest
from pydantic import Field

from dynamics import SUMMARY_METRICS, SimulationRequest
from dynamics.result import COMPARISON_METRICS, FIGURE2_METRICS, METRICS, RANGE_METRICS, SUMMARY_COLUMNS, Quantity
from lindyn.commands.request_options import FIELDS, REQUEST_PARAMETERS, request_parameters
from models.queries import SUMMARY_RANGES
from models.tables import RunSummary
from service.grid import _SUMMARY_TYPES
from service.plots import METRIC_TITLES
from service.schemas.run_filters import FILTER_NAMES, run_filters_model
from service.schemas.runs import Summary, summary_model

ROOT = Path(__file__).resolve().parents[1]
EXTRA = Quantity("max_test_error", float, "maximal test error", "(1/d²)‖A − A*‖²_F", lower_is_better=True)
EXTRA_STEP = Quantity("peak_step", int, "iteration of the peak", "iterations")


def test_a_new_summary_metric_appears_in_the_summary_schema() -> None:
    model = summary_model((*SUMMARY_METRICS, EXTRA, EXTRA_STEP))
    assert list(model.model_fields) == [*(q.name for q in SUMMARY_METRICS), "max_test_error", "peak_step"]
    field = model.model_fields["max_test_error"]
    assert field.description == "maximal test error [(1/d²)‖A − A*‖²_F]" and field.is_required()
    assert field.annotation == float | None  # a non-finite value is served as null
    assert model.model_fields["peak_step"].annotation is int
    schema = model.model_json_schema()
    assert {"max_test_error", "peak_step"} <= set(schema["required"])


def test_a_new_summary_metric_is_a_filter_range() -> None:
    model = run_filters_model(metrics=(*RANGE_METRICS, EXTRA, EXTRA_STEP))
    names = set(model.model_fields)
    assert {"max_test_error_min", "max_test_error_max", "peak_step_min", "peak_step_max"} <= names
    assert "max_test_error" not in names  # a metric is filtered as a range only
    assert model(peak_step_min=3, max_test_error_max=0.5).peak_step_min == 3  # type: ignore[attr-defined]
    assert model.model_fields["peak_step_max"].annotation == int | None
    assert "maximal test error" in (model.model_fields["max_test_error_max"].description or "")


def test_a_new_request_field_is_a_cli_flag_showing_its_default() -> None:
    class Extended(SimulationRequest):
        momentum: float = Field(0.5, description="heavy-ball momentum")

    params = {p.name: p for p in request_parameters(Extended)}
    assert set(params) == {*FIELDS, "momentum", "config"}
    assert all(p.default is None for p in params.values())  # unset flags leave the config's value
    typ, option = typing.get_args(params["momentum"].annotation)
    assert typ == float | None
    assert option.help == "heavy-ball momentum (default 0.5)"


def test_the_derived_places_follow_the_catalogue() -> None:
    names = [q.name for q in SUMMARY_METRICS]
    assert list(Summary.model_fields) == names
    assert list(_SUMMARY_TYPES) == names  # the sweep table's columns per dynamics
    assert SUMMARY_RANGES == tuple(q.name for q in RANGE_METRICS)
    assert {f"{n}_{b}" for n in SUMMARY_RANGES for b in ("min", "max")} <= set(FILTER_NAMES)
    assert METRIC_TITLES == {q.name: q.title for q in (*SUMMARY_METRICS, *COMPARISON_METRICS)}
    assert set(FIGURE2_METRICS) <= set(METRICS)
    assert list(SUMMARY_COLUMNS) == [q.name for q in SUMMARY_METRICS if not q.optional]
    # the stored summary has a column per metric (models/tables.py is written by hand, like the migrations)
    stored = {c.name for c in RunSummary.__table__.columns} - {"run_id", "dynamics", "position"}
    assert stored == set(names)
    # every request field has its flag, in the request's order
    assert [p.name for p in REQUEST_PARAMETERS] == [*SimulationRequest.model_fields, "config"]


def test_the_cli_tables_print_the_catalogue_columns() -> None:
    from typer.testing import CliRunner

    from lindyn.cli import app

    out = CliRunner().invoke(app, ["simulate", "--d", "6", "--rank", "2", "--gamma-sigma2", "-1",
                                   "--gamma-w", "1.5", "--steps", "3", "--no-progress"])  # fmt: skip
    assert out.exit_code == 0, out.output
    header = out.output.splitlines()[1].split()
    assert header == ["dynamics", *SUMMARY_COLUMNS]


@pytest.mark.parametrize("metric", [q.name for q in SUMMARY_METRICS if q.name != "stop_reason"])
def test_a_summary_metric_is_named_in_at_most_three_source_files(metric: str) -> None:
    """The catalogue (dynamics/result.py), where it is computed (dynamics/simulate.py) and its column
    (models/tables.py). (stop_reason is left out: dynamics/stopping.py has a function of that name.)"""
    listed = subprocess.run(
        ["git", "grep", "-lw", metric, "--", "*.py", ":!tests", ":!migrations", ":!bench"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if listed.returncode not in (0, 1):  # not a git checkout: read the files
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if p.parts[len(ROOT.parts)] not in ("tests", "migrations", "bench", ".venv")
                 and metric in p.read_text(encoding="utf-8")]  # fmt: skip
    else:
        files = listed.stdout.split()
    assert len(files) <= 3, files
