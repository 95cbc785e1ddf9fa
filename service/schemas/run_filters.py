"""The query parameters of ``GET /v1/runs``, as one model: each is documented in the OpenAPI document, and an
unknown one is a 422 that names it (the model forbids extra parameters)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError

from dynamics.request import NUMERIC_FIELDS, DynamicsName
from dynamics.result import RANGE_METRICS, Quantity
from models import RunStatus
from models.tables import BIGINTEGER_MAX, INTEGER_MAX
from models.queries import DEFAULT_SORT, RUN_RANGES, SORTS, SUMMARY_RANGES, RunQuery
from service.errors import field_error
from service.schemas.labels import Text, name_filter, parse_tag_filters, tag_filter

MAX_PAGE = 500

#: an integer parameter beyond its column's range is a 422 naming it (not a database error): width is 64-bit
_INT_MAX: dict[str, int] = {"width": BIGINTEGER_MAX}

SortName = Literal[SORTS]  # type: ignore[valid-type]


class _RunFiltersBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=MAX_PAGE, description="page size")
    cursor: str | None = Field(None, description="next_cursor of the previous page (same filters and sort)")
    offset: int = Field(0, ge=0, le=BIGINTEGER_MAX, description="rows to skip (without a cursor); prefer the cursor")
    sort: SortName = Field(  # type: ignore[valid-type]
        DEFAULT_SORT,
        description="sort key, '-' for descending; ties are broken by id, rows with no value come last. "
        f"A summary metric ({SUMMARY_RANGES[0]}, ...) sorts by that metric of `dynamics`",
    )
    status: list[RunStatus] | None = Field(None, description="only these statuses (repeatable)")
    sweep_id: uuid.UUID | None = Field(None, description="only the runs of this sweep")
    name: Text | None = name_filter("runs")
    tag: list[Text] | None = tag_filter("runs")
    regime: Literal["active", "lazy"] | None = Field(None, description="only runs in this regime")
    dynamics: DynamicsName | None = Field(
        None, description="only runs of this dynamics; the dynamics whose summary the metric filters and sorts use"
    )
    created_after: datetime | None = Field(None, description="created at or after (ISO 8601)")
    created_before: datetime | None = Field(None, description="created before (ISO 8601)")

    @field_validator("created_after", "created_before")
    @classmethod
    def _in_utc(cls, v: datetime | None) -> datetime | None:
        """The time in UTC (one without a zone is UTC); a 422 when it has none (9999-12-31T23:59:59-14:00)."""
        if v is None:
            return v
        try:
            return v.astimezone(UTC) if v.tzinfo is not None else v.replace(tzinfo=UTC)
        except OverflowError as exc:
            raise PydanticCustomError("value_error", "{t} is beyond the last representable time in UTC",
                                      {"t": v.isoformat()}) from exc


def _in_range(name: str, typ: type, description: str) -> Any:
    """An optional filter parameter; an integer one bounded by its column's range."""
    if typ is not int:
        return (typ | None, Field(None, description=description))
    top = _INT_MAX.get(name, INTEGER_MAX)
    return (int | None, Field(None, ge=-top - 1, le=top, description=description))


def run_filters_model(
    params: Sequence[str] = RUN_RANGES, metrics: Sequence[Quantity] = RANGE_METRICS
) -> type[BaseModel]:
    """The filters: each indexed request parameter exactly and as a range (``<name>``, ``<name>_min``,
    ``<name>_max``, typed as the request's field), each summary metric of `dynamics` as a range."""
    fields: dict[str, Any] = {}
    for name in params:
        typ = NUMERIC_FIELDS[name]
        fields[name] = _in_range(name, typ, f"{name} equal to this")
        fields[f"{name}_min"] = _in_range(name, typ, f"{name} >= this")
        fields[f"{name}_max"] = _in_range(name, typ, f"{name} <= this")
    for q in metrics:
        what = f"{q.name} ({q.title}) of `dynamics`"
        fields[f"{q.name}_min"] = _in_range(q.name, q.type, f"{what} >= this")
        fields[f"{q.name}_max"] = _in_range(q.name, q.type, f"{what} <= this")
    return create_model("RunFilters", __base__=_RunFiltersBase, **fields)


RunFilters = run_filters_model()

FILTER_NAMES: tuple[str, ...] = tuple(RunFilters.model_fields)


def query_of(filters: BaseModel) -> tuple[RunQuery, list[dict[str, Any]]]:
    """The RunQuery of validated filters, and the errors (loc, field, msg, type) of combinations that are not."""
    f = filters.model_dump()
    tags, errors = parse_tag_filters(f["tag"])

    def error(name: str, msg: str) -> None:
        errors.append(field_error(["query", name], name, msg))

    equals = {n: f[n] for n in RUN_RANGES if f[n] is not None}
    ranges: dict[str, tuple[Any, Any]] = {}
    for n in (*RUN_RANGES, *SUMMARY_RANGES):
        low, high = f[f"{n}_min"], f[f"{n}_max"]
        if low is not None or high is not None:
            ranges[n] = (low, high)
            if low is not None and high is not None and low > high:
                error(f"{n}_min", f"{n}_min={low} is greater than {n}_max={high}")
    sort = str(f["sort"])
    if f["dynamics"] is None:
        for n in SUMMARY_RANGES:
            for bound in ("min", "max"):
                if f[f"{n}_{bound}"] is not None:
                    error(f"{n}_{bound}", f"{n}_{bound} filters a summary metric: give dynamics= too (e.g. dynamics=gd)")
        if sort.lstrip("-") in SUMMARY_RANGES:
            error("sort", f"sort={sort} sorts by a summary metric: give dynamics= too (e.g. dynamics=gd)")
    if f["cursor"] is not None and f["offset"]:
        error("offset", "give either cursor or offset, not both")
    q = RunQuery(
        statuses=[s.value for s in f["status"]] if f["status"] else None,
        sweep_id=f["sweep_id"],
        name=f["name"],
        tags=tags,
        regime=f["regime"],
        dynamics=f["dynamics"],
        equals=equals,
        ranges=ranges,
        created_after=f["created_after"],
        created_before=f["created_before"],
        sort=sort,
    )
    return q, errors
