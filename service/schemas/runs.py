"""Response bodies of /v1/runs."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from models import Run, RunStatus


class Progress(BaseModel):
    step: int = Field(description="steps done")
    total: int = Field(description="steps asked for (a run may stop earlier)")


class RunCreated(BaseModel):
    id: uuid.UUID
    status: RunStatus


class Summary(BaseModel):
    """dynamics.Summary of one dynamics (non-finite values as null)."""

    min_test_error: float | None
    min_test_error_step: int
    stable_rank_at_min: float | None
    rank_at_min: int
    final_train_error: float | None
    final_test_error: float | None
    steps_run: int
    stop_reason: str
    diverged_step: int | None = None


class Comparison(BaseModel):
    """GD vs self-consistent: maximum over the run of (1/d^2) ||A_GD - A_SC||_F^2, and its natural log."""

    max_distance: float | None
    log_max_distance: float | None


class Regime(BaseModel):
    regime: Literal["active", "lazy"]
    theory_applies: bool
    underparametrised: bool


class RunBrief(BaseModel):
    id: uuid.UUID
    sweep_id: uuid.UUID | None
    status: RunStatus
    created_at: datetime
    d: int
    rank: int
    gamma_sigma2: float
    gamma_w: float
    sigma2: float
    width: int
    dynamics: list[str]
    regime: str
    progress: Progress

    @classmethod
    def of(cls, run: Run) -> RunBrief:
        return cls(
            id=run.id,
            sweep_id=run.sweep_id,
            status=RunStatus(run.status),
            created_at=run.created_at,
            d=run.d,
            rank=run.rank,
            gamma_sigma2=run.gamma_sigma2,
            gamma_w=run.gamma_w,
            sigma2=run.sigma2,
            width=run.width,
            dynamics=run.dynamics_list,
            regime=run.regime,
            progress=Progress(step=run.progress_step, total=run.progress_total),
        )


class RunRead(BaseModel):
    id: uuid.UUID
    sweep_id: uuid.UUID | None
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int = Field(description="how many times a worker started the run")
    cache_key: str = Field(description="sha256 of the normalised request: equal requests share one run")
    request: dict[str, Any] = Field(description="the normalised request (every field filled in)")
    progress: Progress
    lr: float | None
    threshold: float | None = Field(description="sigma^2 w")
    timings: dict[str, float] | None
    backend: str | None = Field(description="the array backend that ran it (numpy or cupy)")
    device: str | None
    summaries: dict[str, Summary]
    comparison: Comparison | None
    regime: Regime
    error: str | None

    @classmethod
    def of(cls, run: Run) -> RunRead:
        return cls(
            id=run.id,
            sweep_id=run.sweep_id,
            status=RunStatus(run.status),
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            attempts=run.attempts,
            cache_key=run.cache_key,
            request=run.request,
            progress=Progress(step=run.progress_step, total=run.progress_total),
            lr=run.lr,
            threshold=run.threshold,
            timings=run.timings,
            backend=run.backend,
            device=run.device,
            summaries={
                s.dynamics: Summary(
                    **{k: finite_or_none(getattr(s, k)) for k in Summary.model_fields},
                )
                for s in run.summaries
            },
            comparison=(
                Comparison(
                    max_distance=finite_or_none(run.max_distance),
                    log_max_distance=finite_or_none(run.log_max_distance),
                )
                if run.has_comparison
                else None
            ),
            regime=Regime(
                regime=run.regime,  # type: ignore[arg-type]
                theory_applies=run.theory_applies,
                underparametrised=run.underparametrised,
            ),
            error=run.error,
        )


class RunPage(BaseModel):
    items: list[RunBrief]
    total: int
    limit: int
    offset: int


def finite_or_none(v: Any) -> Any:
    """JSON has no NaN or infinity: they become null (as in dynamics' own JSON output)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
