"""Response bodies of /v1/runs."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from models import Run, RunStatus
from service.schemas.labels import Name, Tags


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
    """A run in a list: identity, status, progress, the indexed parameters and the summaries."""

    id: uuid.UUID
    sweep_id: uuid.UUID | None
    name: str | None = Field(None, description="the name given at submission")
    tags: dict[str, str] = Field(default_factory=dict, description="the tags given at submission")
    status: RunStatus
    created_at: datetime
    d: int
    rank: int
    gamma_sigma2: float
    gamma_w: float
    sigma2: float
    width: int
    dynamics: list[str]
    regime: Regime
    progress: Progress
    summaries: dict[str, Summary] = Field(default_factory=dict, description="per dynamics, once the run finished")

    @classmethod
    def of(cls, run: Run) -> RunBrief:
        return cls(**_brief_fields(run))


class RunRead(RunBrief):
    """A run in full: its request, timings, backend, summaries, comparison and error."""

    started_at: datetime | None
    finished_at: datetime | None
    attempts: int = Field(description="how many times a worker started the run")
    cache_key: str = Field(description="sha256 of the normalised request: equal requests share one run")
    request: dict[str, Any] = Field(description="the normalised request (every field filled in)")
    lr: float | None
    threshold: float | None = Field(description="sigma^2 w")
    timings: dict[str, float] | None
    backend: str | None = Field(description="the array backend that ran it (numpy or cupy)")
    device: str | None
    comparison: Comparison | None
    error: str | None

    @classmethod
    def of(cls, run: Run) -> RunRead:
        copied = ("started_at", "finished_at", "attempts", "cache_key", "request", "lr", "threshold", "timings",
                  "backend", "device", "error")
        comparison = None
        if run.has_comparison:
            comparison = Comparison(
                max_distance=finite_or_none(run.max_distance), log_max_distance=finite_or_none(run.log_max_distance)
            )
        return cls(
            **_brief_fields(run),
            **{name: getattr(run, name) for name in copied},
            comparison=comparison,
        )


def _brief_fields(run: Run) -> dict[str, Any]:
    copied = ("id", "sweep_id", "name", "tags", "created_at", "d", "rank", "gamma_sigma2", "gamma_w", "sigma2", "width")
    return {
        **{name: getattr(run, name) for name in copied},
        "status": RunStatus(run.status),
        "dynamics": run.dynamics_list,
        "regime": Regime(
            regime=run.regime,  # type: ignore[arg-type]
            theory_applies=run.theory_applies,
            underparametrised=run.underparametrised,
        ),
        "progress": Progress(step=run.progress_step, total=run.progress_total),
        "summaries": {
            s.dynamics: Summary(**{k: finite_or_none(getattr(s, k)) for k in Summary.model_fields})
            for s in run.summaries
        },
    }


class RunPage(BaseModel):
    items: list[RunBrief]
    total: int = Field(description="runs matching the filters, on all pages")
    limit: int
    offset: int
    next_cursor: str | None = Field(None, description="pass as cursor= for the next page; null on the last page")


class RunLabels(BaseModel):
    """Optional labels of a submission, given next to the request's fields in the same body; not part of the
    run's identity (a resubmission answered by an earlier run returns that run, with its own labels)."""

    name: Name | None = Field(None, description="a name to find the run by")
    tags: Tags = Field(default_factory=dict)


def finite_or_none(v: Any) -> Any:
    """JSON has no NaN or infinity: they become null (as in dynamics' own JSON output)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
