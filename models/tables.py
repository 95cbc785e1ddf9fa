"""The tables: sweeps, runs, their tags, per-dynamics summaries, trajectory points; the workers' tasks.

A run holds its whole normalised request (JSON) plus indexed copies of the parameters people filter on.
Trajectory points are one row per (run, dynamics, step) with the scalar metrics as columns; the singular
values at that step (when recorded) are a float64 little-endian byte string (``spectrum``), and GD's rows
carry the GD/self-consistent distance (``distance``) when both ran. Rows exist for the union of the steps
at which metrics, spectrum or distance were recorded; ``recorded`` says whether the metrics were.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dynamics.result import RANGE_METRICS
from models.base import Base, RunStatus, TaskOutcome, UtcDateTime, status_type, utcnow

#: the longest name of a run or sweep, and the longest tag key and value (run_tags, sweep_tags)
NAME_LENGTH = 200
TAG_KEY_LENGTH = 100
TAG_VALUE_LENGTH = 200
#: the largest value of an Integer and of a BigInteger column (PostgreSQL's 32- and 64-bit integers)
INTEGER_MAX = 2**31 - 1
BIGINTEGER_MAX = 2**63 - 1


class Sweep(Base):
    """A grid of runs sharing a base request, with a name and tags (set at submission) to find it by."""

    __tablename__ = "sweeps"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    base_request: Mapped[dict[str, Any]] = mapped_column(JSON)
    axes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: the axes that are replicates (averaged over in its phase diagrams), in the axes' order
    replicates: Mapped[list[str] | None] = mapped_column(JSON, default=list)
    total: Mapped[int] = mapped_column(Integer, default=0)
    #: adaptive refinement (dynamics/refine.py), None without: {"metric", "rounds", "budget"} as submitted
    refine: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: the refinement rounds started (0: the coarse grid only); advanced by a conditional UPDATE, so once
    refine_round: Mapped[int] = mapped_column(Integer, default=0)
    #: points per round: the coarse grid's, then each refinement round's
    refine_points: Mapped[list[int] | None] = mapped_column(JSON)
    #: refining (another round follows once the runs finish), done, or cancelled; None without refinement
    refine_state: Mapped[str | None] = mapped_column(String(16))

    runs: Mapped[list[Run]] = relationship(back_populates="sweep", passive_deletes=True)
    tag_rows: Mapped[list[SweepTag]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="SweepTag.key", lazy="selectin"
    )

    @property
    def tags(self) -> dict[str, str]:
        """Free key/value labels given at submission (the sweep's own: its runs do not carry them)."""
        return {t.key: t.value for t in self.tag_rows}


#: statuses whose run answers a resubmission of the same request (a failed or cancelled run is retried)
REUSABLE = (RunStatus.queued.value, RunStatus.running.value, RunStatus.succeeded.value, RunStatus.diverged.value)
#: at most one reusable run per dedup_key, enforced by the database (one request, one run, however many
#: identical submissions race); the predicate is plain SQL, the same on PostgreSQL and SQLite
_REUSABLE_SQL = "status IN ({})".format(", ".join(f"'{s}'" for s in REUSABLE))


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("uq_runs_dedup_key_reusable", "dedup_key", unique=True,
              postgresql_where=text(_REUSABLE_SQL), sqlite_where=text(_REUSABLE_SQL)),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    sweep_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH), index=True)  # a label given at submission
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[RunStatus] = mapped_column(status_type(RunStatus), default=RunStatus.queued, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # written by a live worker (reaper.py)
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # its task last sent (None: at created_at)

    # the request, whole and normalised, its identity, and the parameters people filter on
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    cache_key: Mapped[str] = mapped_column(String(64), index=True)
    #: the cache key of a run that answers resubmissions (None: a sweep's run, or one submitted with force)
    dedup_key: Mapped[str | None] = mapped_column(String(64))
    d: Mapped[int] = mapped_column(Integer, index=True)
    rank: Mapped[int] = mapped_column(Integer, index=True)
    gamma_sigma2: Mapped[float] = mapped_column(Double, index=True)
    gamma_w: Mapped[float] = mapped_column(Double, index=True)
    sigma2: Mapped[float] = mapped_column(Double, index=True)
    width: Mapped[int] = mapped_column(BigInteger, index=True)  # w = floor(d^gamma_w) may exceed 2^31
    dynamics: Mapped[str] = mapped_column(String(64))  # comma-separated, canonical order
    backend_requested: Mapped[str] = mapped_column(String(16))

    # regime (method.md section 7), known from the parameters
    regime: Mapped[str] = mapped_column(String(16), index=True)
    theory_applies: Mapped[bool] = mapped_column(Boolean)
    underparametrised: Mapped[bool] = mapped_column(Boolean)

    # progress (written a bounded number of times) and the outcome
    progress_step: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    lr: Mapped[float | None] = mapped_column(Double)
    threshold: Mapped[float | None] = mapped_column(Double)
    backend: Mapped[str | None] = mapped_column(String(16))
    device: Mapped[str | None] = mapped_column(String(200))
    timings: Mapped[dict[str, float] | None] = mapped_column(JSON)
    max_distance: Mapped[float | None] = mapped_column(Double)
    log_max_distance: Mapped[float | None] = mapped_column(Double)
    has_comparison: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)

    sweep: Mapped[Sweep | None] = relationship(back_populates="runs")
    summaries: Mapped[list[RunSummary]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True, order_by="RunSummary.position"
    )
    tag_rows: Mapped[list[RunTag]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="RunTag.key", lazy="selectin"
    )

    @property
    def tags(self) -> dict[str, str]:
        """Free key/value labels given at submission."""
        return {t.key: t.value for t in self.tag_rows}

    @property
    def dynamics_list(self) -> list[str]:
        return self.dynamics.split(",") if self.dynamics else []


class RunTag(Base):
    """One free key/value label of a run (set at submission), indexed so runs can be found by it."""

    __tablename__ = "run_tags"
    __table_args__ = (Index("ix_run_tags_key_value", "key", "value"),)

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(TAG_KEY_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(String(TAG_VALUE_LENGTH))


class SweepTag(Base):
    """One free key/value label of a sweep (set at submission), indexed so sweeps can be found by it."""

    __tablename__ = "sweep_tags"
    __table_args__ = (Index("ix_sweep_tags_key_value", "key", "value"),)

    sweep_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(TAG_KEY_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(String(TAG_VALUE_LENGTH))


#: the summary metrics runs are sorted on (models/queries.py SUMMARY_RANGES), each served by an index
SORTED_SUMMARY_METRICS: tuple[str, ...] = tuple(q.name for q in RANGE_METRICS)


class RunSummary(Base):
    """One per (run, dynamics): dynamics.Summary as columns, so runs can be filtered on them. An index per sorted
    metric on (dynamics, metric, run_id) gives a page of runs sorted on it by walking the index, whatever the
    planner's statistics say (models/queries.py)."""

    __tablename__ = "run_summaries"
    __table_args__ = tuple(Index(f"ix_run_summaries_sort_{m}", "dynamics", m, "run_id") for m in SORTED_SUMMARY_METRICS)

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    dynamics: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # order of the dynamics in the result
    min_test_error: Mapped[float | None] = mapped_column(Double, index=True)
    min_test_error_step: Mapped[int] = mapped_column(Integer)
    stable_rank_at_min: Mapped[float | None] = mapped_column(Double)
    rank_at_min: Mapped[int] = mapped_column(Integer)
    final_train_error: Mapped[float | None] = mapped_column(Double)
    final_test_error: Mapped[float | None] = mapped_column(Double)
    steps_run: Mapped[int] = mapped_column(Integer)
    stop_reason: Mapped[str] = mapped_column(String(32))
    diverged_step: Mapped[int | None] = mapped_column(Integer)

    run: Mapped[Run] = relationship(back_populates="summaries")


class TrajectoryPoint(Base):
    """One row per (run, dynamics, step)."""

    __tablename__ = "trajectory_points"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    dynamics: Mapped[str] = mapped_column(String(32), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    recorded: Mapped[bool] = mapped_column(Boolean, default=True)  # the metric columns were recorded here
    train_error: Mapped[float | None] = mapped_column(Double)
    test_error: Mapped[float | None] = mapped_column(Double)
    stable_rank: Mapped[float | None] = mapped_column(Double)
    rank: Mapped[float | None] = mapped_column(Double)
    gap_ratio: Mapped[float | None] = mapped_column(Double)
    n_above_threshold: Mapped[float | None] = mapped_column(Double)
    spectrum: Mapped[bytes | None] = mapped_column(LargeBinary)  # float64 little-endian s_1 >= ... >= s_d
    distance: Mapped[float | None] = mapped_column(Double)  # (1/d^2)||A_GD - A_SC||_F^2, on GD's rows


class TaskExecution(Base):
    """One task a worker ran (``lindyn.simulate_run`` or ``lindyn.simulate_batch_runs``), written when it
    ended: how long it took and how it ended (models/executions.py). Pruned after LINDYN_TASK_HISTORY_DAYS."""

    __tablename__ = "task_executions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    task: Mapped[str] = mapped_column(String(NAME_LENGTH))  # the Celery task name
    celery_task_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    worker: Mapped[str | None] = mapped_column(String(NAME_LENGTH))  # hostname/pid
    runs: Mapped[int] = mapped_column(Integer)  # how many runs it was given
    outcome: Mapped[TaskOutcome] = mapped_column(status_type(TaskOutcome))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    duration_s: Mapped[float] = mapped_column(Double)  # on the monotonic clock (wall-clock steps do not count)
