"""Finding runs: filters on status, sweep, labels, the indexed parameters and one dynamics' summary metrics;
a sort on any of those; keyset (cursor) pagination in a stable order. Finding sweeps by their labels.

The order is (sort key is null, sort key, id), ascending or descending as asked, so rows with no value
(a queued run's summary metrics, a run without a name) come last either way and ties are broken by id.
A cursor is the last row's (sort, key, id), base64-encoded JSON: the next page is the rows after it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from dataclasses import dataclass, field, replace
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.interfaces import ORMOption

from dynamics.result import RANGE_METRICS
from models.tables import BIGINTEGER_MAX, Run, RunSummary, Sweep

#: indexed request parameters: exact value, ``<name>_min`` and ``<name>_max``
RUN_RANGES: tuple[str, ...] = ("d", "rank", "gamma_sigma2", "gamma_w", "sigma2", "width")
#: summary metrics of one dynamics (``dynamics=``): ``<name>_min`` and ``<name>_max``
SUMMARY_RANGES: tuple[str, ...] = tuple(q.name for q in RANGE_METRICS)
RUN_SORTS: tuple[str, ...] = ("created_at", "name", "status", *RUN_RANGES)
SORT_KEYS: tuple[str, ...] = (*RUN_SORTS, *SUMMARY_RANGES)
SORTS: tuple[str, ...] = tuple(p + k for k in SORT_KEYS for p in ("", "-"))
DEFAULT_SORT = "-created_at"
#: filters on a float column (gamma_sigma2, sigma2, a summary metric, ...) match within this relative
#: tolerance of the value asked for: gamma_sigma2=-1.3 finds a stored -1.3000000000000003 (a few ulps off), and a
#: range's bounds are widened by as much
FLOAT_RTOL = 1e-9


class BadCursor(ValueError):
    """A cursor that does not decode, or that belongs to another sort."""


@dataclass
class RunQuery:
    """What to find. ``ranges`` maps a column of RUN_RANGES or SUMMARY_RANGES to (minimum, maximum), either
    None; SUMMARY_RANGES columns (and a sort on one) are those of ``dynamics``' summary."""

    statuses: list[str] | None = None
    sweep_id: uuid.UUID | None = None
    name: str | None = None
    tags: dict[str, str | None] = field(default_factory=dict)  # key -> value, or None: has the key
    regime: str | None = None
    dynamics: str | None = None
    equals: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: str = DEFAULT_SORT

    @property
    def sort_key(self) -> str:
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def uses_summary(self) -> bool:
        return self.sort_key in SUMMARY_RANGES or any(c in SUMMARY_RANGES for c in self.ranges)


def _sort_column(q: RunQuery) -> Any:
    key = q.sort_key
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort {q.sort!r}")
    return getattr(RunSummary, key) if key in SUMMARY_RANGES else getattr(Run, key)


def filtered(q: RunQuery, *, summarised: bool = False) -> Select[Any]:
    """SELECT runs matching ``q`` (unordered). ``summarised``: only the runs that have a summary of ``q.dynamics``
    (an inner join, which implies that they ran it)."""
    stmt = select(Run)
    if q.uses_summary:
        if q.dynamics is None:
            raise ValueError("summary metrics need a dynamics")
        # a range on a summary metric keeps only runs with that summary: the same rows as an inner join
        summarised = summarised or any(c in SUMMARY_RANGES for c in q.ranges)
        on = and_(RunSummary.run_id == Run.id, RunSummary.dynamics == q.dynamics)
        stmt = stmt.join(RunSummary, on) if summarised else stmt.outerjoin(RunSummary, on)
    conds: list[ColumnElement[bool]] = []
    if q.statuses:
        conds.append(Run.status.in_(q.statuses))
    if q.sweep_id is not None:
        conds.append(Run.sweep_id == q.sweep_id)
    conds += label_conditions(Run, q.name, q.tags)
    if q.regime is not None:
        conds.append(Run.regime == q.regime)
    if q.dynamics is not None and not summarised:  # the run ran (or will run) it (it did if it has its summary)
        conds.append((literal(",") + Run.dynamics + literal(",")).like(f"%,{q.dynamics},%"))
    for name, value in q.equals.items():
        col = getattr(Run, name)
        if _is_float(Run, name):
            conds.append(col.between(value - _slack(value), value + _slack(value)))
        else:
            conds.append(col == value)
    for name, (low, high) in q.ranges.items():
        table = RunSummary if name in SUMMARY_RANGES else Run
        col, widen = getattr(table, name), _is_float(table, name)
        if low is not None:
            conds.append(col >= (low - _slack(low) if widen else low))
        if high is not None:
            conds.append(col <= (high + _slack(high) if widen else high))
    if q.created_after is not None:
        conds.append(Run.created_at >= q.created_after)
    if q.created_before is not None:
        conds.append(Run.created_at < q.created_before)
    return stmt.where(*conds)


def _is_float(table: type[Run] | type[RunSummary], name: str) -> bool:
    return table.__table__.c[name].type.python_type is float


def _slack(value: float) -> float:
    """How far a float filter reaches around ``value``: FLOAT_RTOL relative (nothing around exactly 0)."""
    return FLOAT_RTOL * abs(float(value))


def label_conditions(
    model: type[Run] | type[Sweep], name: str | None, tags: dict[str, str | None]
) -> list[ColumnElement[bool]]:
    """Conditions on the labels of a run or a sweep: this name (unless None), and each tag (key -> value, or
    None: has the key)."""
    tag_class = model.tag_rows.property.mapper.class_
    conds: list[ColumnElement[bool]] = [] if name is None else [model.name == name]
    for key, value in tags.items():
        tag = tag_class.key == key
        conds.append(model.tag_rows.any(tag if value is None else and_(tag, tag_class.value == value)))
    return conds


def count(session: Session, q: RunQuery) -> int:
    """How many runs match (a sort on a summary metric does not join the summaries: at most one per run)."""
    if q.sort_key in SUMMARY_RANGES and not any(c in SUMMARY_RANGES for c in q.ranges):
        q = replace(q, sort=DEFAULT_SORT)
    return session.scalar(select(func.count()).select_from(filtered(q).with_only_columns(Run.id).subquery())) or 0


def page(
    session: Session, q: RunQuery, *, limit: int, cursor: str | None = None, offset: int = 0,
    options: Sequence[ORMOption] = (),
) -> tuple[list[Run], str | None]:
    """One page of runs in the query's order, after ``cursor`` (or skipping ``offset``), and the cursor of
    the next page (None on the last). ``options``: loader options of the rows (e.g. their summaries).

    Two queries: the page's ids (ordered and limited: where the order needs a sort, the database sorts
    narrow rows, not whole runs with their requests), then those runs."""
    col = _sort_column(q)
    nullable = _nullable(q)
    stmt = filtered(q).with_only_columns(Run.id)
    key, last_id = decode_cursor(cursor, q) if cursor is not None else (None, None)
    if q.sort_key in SUMMARY_RANGES and not (cursor is None and offset):
        ids = _valued_then_null(session, q, col, limit + 1, after=last_id is not None, key=key, last_id=last_id)
    else:
        if last_id is not None:
            stmt = stmt.where(_after(col, key, last_id, q.descending, nullable))
        order = (col.desc(), Run.id.desc()) if q.descending else (col.asc(), Run.id.asc())
        # "key is null" leads the order only where the key can be null: in front of a NOT NULL column it would
        # keep the database from reading the column's index in order (a sort of every matching row instead)
        stmt = stmt.order_by(*([col.is_(None)] if nullable else []), *order).limit(limit + 1)
        if cursor is None and offset:
            stmt = stmt.offset(offset)
        ids = list(session.scalars(stmt))
    found = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(ids)).options(*options))} if ids else {}
    rows = [found[i] for i in ids if i in found]  # (a run deleted in between is left out)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    last_key = _key_of(session, last, q)
    return rows, encode_cursor(q, last_key, last.id)


def _valued_then_null(
    session: Session, q: RunQuery, col: Any, n: int, *, after: bool, key: Any, last_id: uuid.UUID | None
) -> list[uuid.UUID]:
    """Up to ``n`` ids of runs sorted on a summary metric, after the cursor (key, last_id) when ``after``, in
    the order (key is null, key, id): two queries, each in an order an index gives, where one query would
    sort every run the filters keep (the outer join's nulls first): the runs with a value, by (key, id)
    (along the metric's index when it has one), then, if the page is not full, those without, by id."""
    by_id = Run.id.desc() if q.descending else Run.id.asc()
    out: list[uuid.UUID] = []
    if not (after and key is None):  # not yet in the trailing block of nulls
        valued = filtered(q, summarised=True).with_only_columns(Run.id).where(col.is_not(None))
        if after:
            assert last_id is not None
            valued = valued.where(_after(col, key, last_id, q.descending, nullable=False))
        # along the index on (dynamics, metric, run_id) (migration 0009_reliability_metric_sort), whatever the
        # statistics say (index_order)
        order = (col.desc(), RunSummary.run_id.desc()) if q.descending else (col.asc(), RunSummary.run_id.asc())
        with index_order(session):
            out = list(session.scalars(valued.order_by(*order).limit(n)))
    if len(out) < n:
        nulls = filtered(q).with_only_columns(Run.id).where(col.is_(None))
        if after and key is None:
            assert last_id is not None
            nulls = nulls.where(Run.id < last_id if q.descending else Run.id > last_id)
        out += list(session.scalars(nulls.order_by(by_id).limit(n - len(out))))
    return out


def _nullable(q: RunQuery) -> bool:
    """Whether the sort key can be null: a nullable column of runs, or any summary metric (outer-joined)."""
    return q.sort_key in SUMMARY_RANGES or bool(Run.__table__.c[q.sort_key].nullable)


@contextmanager
def index_order(session: Session) -> Iterator[None]:
    """On PostgreSQL, the statements inside read rows in an index's order rather than sort them (``enable_sort``
    off for the moment, in this transaction). Without fresh statistics the planner guesses that ``dynamics =
    'gd'`` keeps 0.5 % of the summaries and sorts them all, a plan that costs seconds at 100k runs; walking the
    index that serves the order and stopping at the page's end costs the page whatever the statistics say."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SET LOCAL enable_sort = off"))
    yield  # (a statement that fails aborts the transaction, whose rollback undoes the SET LOCAL)
    if postgres:
        session.execute(text("SET LOCAL enable_sort = on"))


def _after(col: Any, key: Any, last_id: uuid.UUID, descending: bool, nullable: bool = True) -> ColumnElement[bool]:
    """Rows after (key, id) in the order (key is null, key, id), ascending or descending. On a NOT NULL key,
    the bound ``key >= cursor's`` (``<=`` descending) comes first so that the key's index gives the range."""

    def beyond(a: Any, b: Any) -> ColumnElement[bool]:
        return a < b if descending else a > b

    if key is None:  # in the trailing block of nulls: only ids further on
        return and_(col.is_(None), beyond(Run.id, last_id))
    after = or_(beyond(col, key), and_(col == key, beyond(Run.id, last_id)))
    if not nullable:
        return and_(col <= key if descending else col >= key, after)
    return or_(col.is_(None), after)


def _key_of(session: Session, run: Run, q: RunQuery) -> Any:
    if q.sort_key in SUMMARY_RANGES:
        return session.scalar(
            select(getattr(RunSummary, q.sort_key)).where(
                RunSummary.run_id == run.id, RunSummary.dynamics == q.dynamics
            )
        )
    return getattr(run, q.sort_key)


def encode_cursor(q: RunQuery, key: Any, run_id: uuid.UUID) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps({"s": q.sort, "y": q.dynamics, "k": value, "id": str(run_id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, q: RunQuery) -> tuple[Any, uuid.UUID]:
    """The (key, id) of a cursor made for the same sort; BadCursor otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        sort, dyn, key, run_id = data["s"], data["y"], data["k"], uuid.UUID(data["id"])
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        # (UnicodeDecodeError is a ValueError; an id that is not a string fails in UUID with AttributeError)
        raise BadCursor("not a cursor of this API (pass next_cursor back unchanged)") from exc
    if sort != q.sort or dyn != q.dynamics:
        raise BadCursor(f"the cursor was made for sort={sort} dynamics={dyn}, not sort={q.sort} dynamics={q.dynamics}")
    if key is not None and q.sort_key == "created_at":
        try:
            key = datetime.fromisoformat(key)
            if key.tzinfo is not None:
                key = key.astimezone(UTC)
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadCursor("not a cursor of this API (pass next_cursor back unchanged)") from exc
    elif key is not None and not _key_fits(q.sort_key, key):
        raise BadCursor("not a cursor of this API (pass next_cursor back unchanged)")
    return key, run_id


def _key_fits(sort_key: str, key: Any) -> bool:
    """A cursor's key is of its sort column's type (a string for a text column, a number for a numeric one),
    so the database never compares across types; a string holds no NUL and no lone surrogate."""
    table = RunSummary if sort_key in SUMMARY_RANGES else Run
    if table.__table__.c[sort_key].type.python_type is str:
        if not isinstance(key, str) or "\x00" in key:
            return False
        try:
            key.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(key, bool) or not isinstance(key, (int, float)):
        return False
    return abs(key) <= BIGINTEGER_MAX if isinstance(key, int) else math.isfinite(key)


def sweep_page(
    session: Session, *, name: str | None = None, tags: dict[str, str | None] | None = None, limit: int, offset: int = 0
) -> tuple[list[Sweep], int]:
    """One page of the sweeps with these labels (see label_conditions), newest first, and how many there are."""
    conds = label_conditions(Sweep, name, tags or {})
    total = session.scalar(select(func.count()).select_from(Sweep).where(*conds)) or 0
    stmt = select(Sweep).where(*conds).order_by(Sweep.created_at.desc(), Sweep.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(stmt)), total
