"""Response bodies of /v1/runs."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from dynamics import COMPARISON_METRICS, SUMMARY_METRICS, Quantity, SimulationRequest
from models import Run, RunStatus
from service.schemas.labels import Name, Tags


class Progress(BaseModel):
    step: int = Field(description="steps done")
    total: int = Field(description="steps asked for (a run may stop earlier)")


class RunCreated(BaseModel):
    id: uuid.UUID
    status: RunStatus


def metrics_model(name: str, doc: str, metrics: Sequence[Quantity]) -> type[BaseModel]:
    """A response model with a field per catalogued metric, described by its title and unit. A float may be
    null (non-finite values are); a metric a run may lack is null by default."""
    fields: dict[str, Any] = {}
    for q in metrics:
        if q.optional:
            fields[q.name] = (q.type | None, Field(None, description=q.label))
        else:
            fields[q.name] = (float | None if q.type is float else q.type, Field(description=q.label))
    return create_model(name, __doc__=doc, **fields)


def summary_model(metrics: Sequence[Quantity] = SUMMARY_METRICS) -> type[BaseModel]:
    """The summary of one dynamics: a field per summary metric."""
    return metrics_model("Summary", "dynamics.Summary of one dynamics (non-finite values as null).", metrics)


Summary = summary_model()
Comparison = metrics_model(
    "Comparison",
    "GD vs self-consistent: maximum over the run of (1/d^2) ||A_GD - A_SC||_F^2, and its natural log.",
    COMPARISON_METRICS,
)


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
    summaries: dict[str, Summary] = Field(default_factory=dict, description="per dynamics, once the run finished")  # type: ignore[valid-type]

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
    comparison: Comparison | None  # type: ignore[valid-type]
    error: str | None

    @classmethod
    def of(cls, run: Run) -> RunRead:
        copied = ("started_at", "finished_at", "attempts", "cache_key", "request", "lr", "threshold", "timings",
                  "backend", "device", "error")
        comparison = None
        if run.has_comparison:
            comparison = Comparison(**{q.name: finite_or_none(getattr(run, q.name)) for q in COMPARISON_METRICS})
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


class RunSubmission(SimulationRequest):
    """The body of POST /v1/runs: a SimulationRequest, with the optional labels `name` and `tags` next to its
    fields. The labels are not part of the run's identity (a resubmission answered by an earlier run returns
    that run, with its own labels)."""

    name: Name | None = Field(None, description="a name to find the run by")
    tags: Tags = Field(default_factory=dict)

    def simulation_request(self) -> SimulationRequest:
        """The request without its labels (validated already: not validated again)."""
        return SimulationRequest.model_construct(**{k: getattr(self, k) for k in SimulationRequest.model_fields})


def finite_or_none(v: Any) -> Any:
    """JSON has no NaN or infinity: they become null (as in dynamics' own JSON output)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
