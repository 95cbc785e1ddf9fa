"""The simulation request: one validated definition shared by dynamics, service, workers, client and CLI.

The network is given either by exponents of d (``gamma_sigma2``, ``gamma_w``: sigma^2 = d^gamma_sigma2,
w = floor(d^gamma_w)) or directly (``sigma2``, ``width``); exactly one form for each quantity.
After validation every field is filled in: the other form is derived and reported.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

DynamicsName = Literal["gd", "self_consistent", "lazy", "balanced"]
DYNAMICS: tuple[str, ...] = get_args(DynamicsName)
#: the two forms of sigma^2 and of w: (exponent of d, direct value)
FORMS: tuple[tuple[str, str], ...] = (("gamma_sigma2", "sigma2"), ("gamma_w", "width"))
#: each form's other form: giving one replaces the other
OTHER_FORM: dict[str, str] = {a: b for pair in FORMS for a, b in (pair, pair[::-1])}

#: Default limits. dynamics reads no environment: the service and the workers pass theirs (the settings
#: object's, core/settings.py) through the validation context as ``{"limits": Limits(...)}``.
DEFAULT_MAX_STEPS = 100_000
DEFAULT_MAX_D = 4096
DEFAULT_DENSE_MEMORY_BYTES = 2 * 1024**3
DEFAULT_MAX_RESULT_BYTES = 1024**3
DEFAULT_MAX_RUN_BYTES = 8 * 1024**3
DEFAULT_MAX_RUN_SECONDS = 3600.0
DEFAULT_FLOPS_PER_SECOND = 5e9
#: the widest network (either form): the reduction is exact for any w, the database stores w as a 64-bit integer
MAX_WIDTH = 2**62


class Limits(BaseModel):
    """Resource limits a request is checked against."""

    model_config = ConfigDict(frozen=True)

    max_steps: int = DEFAULT_MAX_STEPS
    max_d: int = DEFAULT_MAX_D
    dense_memory_bytes: int = DEFAULT_DENSE_MEMORY_BYTES
    #: largest estimated result of one run (weights + recorded metrics + recorded spectra); None: no limit
    max_result_bytes: int | None = DEFAULT_MAX_RESULT_BYTES
    #: largest estimated peak memory of one run (``estimated_run_bytes``, docs/reliability.md); None: no limit
    max_run_bytes: int | None = DEFAULT_MAX_RUN_BYTES
    #: longest estimated run, in seconds (``estimated_flops / flops_per_second``); None: no limit
    max_run_seconds: float | None = DEFAULT_MAX_RUN_SECONDS
    #: the float64 arithmetic rate the time estimate assumes (measured: docs/reliability.md)
    flops_per_second: float = DEFAULT_FLOPS_PER_SECOND


def _limits(info: ValidationInfo) -> Limits:
    ctx = info.context or {}
    lim = ctx.get("limits")
    return lim if isinstance(lim, Limits) else Limits()


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class SimulationRequest(BaseModel):
    """One simulation: a task (A*, E), an initialisation, the dynamics to run and how to run them."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    # task (method.md section 1)
    d: int = Field(..., ge=2, description="input = output dimension d (>= 2)", examples=[200])
    rank: int = Field(..., ge=1, description="rank k of the target A* = C D^T, 1 <= rank <= d", examples=[5])
    noise_std: FiniteFloat = Field(1.0, ge=0, description="standard deviation of the noise E added to A*")
    task_seed: int = Field(0, ge=0, description="seed of the task draw (A*, E)")
    seed: int = Field(0, ge=0, description="seed of the network's initialisation")

    # network (method.md section 2): exactly one form for each of sigma^2 and w
    gamma_sigma2: FiniteFloat | None = Field(None, description="sigma^2 = d^gamma_sigma2", examples=[-1.85])
    gamma_w: FiniteFloat | None = Field(None, description="width w = floor(d^gamma_w)", examples=[2.25])
    sigma2: FiniteFloat | None = Field(None, gt=0, description="initialisation variance sigma^2 (> 0)")
    width: int | None = Field(None, ge=1, le=MAX_WIDTH, description="hidden width w (1 <= w <= 2^62)")

    # what to run
    dynamics: list[DynamicsName] = Field(
        default_factory=lambda: ["gd"],  # type: ignore[arg-type]
        min_length=1,
        description="non-empty subset of gd, self_consistent, lazy, balanced",
        examples=[["gd", "self_consistent"]],
    )
    steps: int = Field(100, ge=0, description="maximum number of iterations")
    lr: FiniteFloat | None = Field(None, gt=0, description="explicit learning rate eta (overrides the rule)")
    lr_constant: FiniteFloat = Field(
        5.0, gt=0, description="c_lr: eta = 1/(c_lr sigma^2 w) if sigma^2 w > d else 1/(c_lr ||A*||_op)"
    )
    stopping: Literal["paper", "none"] = Field("none", description="paper stopping rules or none")
    gd_update: Literal["simultaneous", "sequential"] = Field(
        "simultaneous", description="GD update order (sequential = the paper's reference code)"
    )
    init: Literal["auto", "dense", "wishart"] = Field(
        "auto", description="dense W1, W2 or the exact Wishart (Bartlett) reduction; auto = wishart when w >= 2d"
    )
    dtype: Literal["float64", "float32"] = Field(
        "float64",
        description="float64, or float32 for grids: the Figure 2 metrics agreed with float64 to 5e-7 relative "
        "(min test error), 2e-6 (stable rank at the minimum, log max distance), same stops and steps of the "
        "minimum (bench/float32_agreement.py)",
    )
    record_every: int = Field(1, ge=1, description="record scalar metrics every this many steps")
    spectrum_every: int = Field(10, ge=0, description="record the singular values every this many steps (0: never)")
    backend: Literal["auto", "numpy", "cupy"] = Field(
        "auto", description="array backend: numpy, cupy (a CUDA GPU) or auto = cupy when a GPU is usable"
    )

    @field_validator("dynamics")
    @classmethod
    def _unique_dynamics(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("each dynamics may appear once")
        return [name for name in DYNAMICS if name in v]  # canonical order

    @field_validator("d")
    @classmethod
    def _d_limit(cls, v: int, info: ValidationInfo) -> int:
        lim = _limits(info)
        if v > lim.max_d:
            raise ValueError(f"d = {v} exceeds the limit of {lim.max_d}")
        return v

    @field_validator("steps")
    @classmethod
    def _steps_limit(cls, v: int, info: ValidationInfo) -> int:
        lim = _limits(info)
        if v > lim.max_steps:
            raise ValueError(f"steps = {v} exceeds the limit of {lim.max_steps}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _derive_network(cls, data: Any) -> Any:
        """Check one form per quantity; derive the other (sigma2 <-> gamma_sigma2, width <-> gamma_w)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        d = data.get("d")
        try:
            d_ok = d is not None and int(d) == d and int(d) >= 2
        except (TypeError, ValueError):
            d_ok = False
        for gamma_key, direct_key in FORMS:
            g, x = data.get(gamma_key), data.get(direct_key)
            if g is None and x is None:
                raise ValueError(f"give either {gamma_key} or {direct_key}")
            # a request that came back from model_dump carries both: accepted, both kept exactly as they
            # are (so validation is idempotent), when x == derived(g)
            if g is not None and x is not None:
                if not (d_ok and _is_number(g) and _is_number(x) and _consistent(gamma_key, int(d), g, x)):
                    raise ValueError(f"give either {gamma_key} or {direct_key}, not both")
        return data

    @model_validator(mode="after")
    def _fill_and_check(self, info: ValidationInfo) -> SimulationRequest:
        d = self.d
        if self.rank > d:
            raise _field_error("rank", f"rank = {self.rank} must be between 1 and d = {d}")
        ln_d = math.log(d)
        if self.sigma2 is None:
            assert self.gamma_sigma2 is not None
            s2 = _power(d, self.gamma_sigma2)
            if not (s2 > 0 and math.isfinite(s2)):
                raise _field_error("gamma_sigma2", f"sigma^2 = d^{self.gamma_sigma2} is not a finite positive number")
            object.__setattr__(self, "sigma2", s2)
        elif self.gamma_sigma2 is None:
            object.__setattr__(self, "gamma_sigma2", math.log(self.sigma2) / ln_d)
        if self.width is None:
            assert self.gamma_w is not None
            w_float = _power(d, self.gamma_w)
            if not math.isfinite(w_float) or w_float > MAX_WIDTH:
                raise _field_error("gamma_w", f"width d^{self.gamma_w} is too large")
            w = _floor_width(d, self.gamma_w)
            if w < 1:
                raise _field_error("gamma_w", f"width floor(d^{self.gamma_w}) = {w} must be >= 1")
            object.__setattr__(self, "width", w)
        elif self.gamma_w is None:
            object.__setattr__(self, "gamma_w", math.log(self.width) / ln_d)
        assert self.width is not None and self.sigma2 is not None
        w = self.width
        threshold = self.sigma2 * w
        if not math.isfinite(threshold):
            raise _field_error("sigma2", "the threshold sigma^2 w is not finite")
        if self.init == "wishart" and w < 2 * d:
            raise _field_error(
                "init", f"wishart needs width >= 2d = {2 * d} (width = {w}); use init = dense or auto"
            )
        if self.uses_dense_init:
            lim = _limits(info)
            nbytes = self.dense_weight_bytes
            if nbytes > lim.dense_memory_bytes:
                raise _field_error(
                    "init",
                    f"dense weights W1, W2 need {nbytes / 2**20:.0f} MiB, over the budget of "
                    f"{lim.dense_memory_bytes / 2**20:.0f} MiB; init = wishart (or auto) runs the same dynamics "
                    f"exactly on 2d-wide weights (method.md section 4)",
                )
        lim = _limits(info)
        if lim.max_result_bytes is not None and self.estimated_bytes > lim.max_result_bytes:
            raise _field_error(
                "steps",
                f"the run would hold about {self.estimated_bytes / 2**20:.0f} MiB (weights, metrics and "
                f"spectra of {len(self.dynamics)} dynamics over {self.steps} steps), over the limit of "
                f"{lim.max_result_bytes / 2**20:.0f} MiB; record less often (record_every, spectrum_every) "
                f"or run fewer steps",
            )
        seconds = self.estimated_flops / lim.flops_per_second
        if lim.max_run_seconds is not None and seconds > lim.max_run_seconds:
            raise _field_error(
                "steps",
                f"the run would take about {seconds:.0f} s ({self.estimated_flops:.2e} floating-point operations "
                f"at {lim.flops_per_second:.2e}/s for {', '.join(self.dynamics)} at d = {self.d} over {self.steps} "
                f"steps), over the limit of {lim.max_run_seconds:.0f} s; run fewer steps, a smaller d or fewer "
                f"dynamics",
            )
        if lim.max_run_bytes is not None and self.estimated_run_bytes > lim.max_run_bytes:
            fixed = run_bytes([self], steps=0)  # what the run holds whatever its steps
            raise _field_error(
                "d" if fixed > lim.max_run_bytes else "steps",
                f"the run would use about {self.estimated_run_bytes / 2**20:.0f} MiB of memory at its peak "
                f"({fixed / 2**20:.0f} MiB for d = {self.d}, inner width {self.inner_width} and "
                f"{', '.join(self.dynamics)}, the rest for {self.steps} steps of histories and records), over the "
                f"limit of {lim.max_run_bytes / 2**20:.0f} MiB; use a smaller d, fewer dynamics, fewer steps "
                f"or record less often",
            )
        return self

    # ---- derived quantities -------------------------------------------------------------------------
    @property
    def estimated_flops(self) -> float:
        """Floating-point operations of a run, the model of docs/reliability.md: per step, GD's three products
        of d x n and n x d matrices (n = inner_width) 6 d^2 n; self-consistent and balanced A^T A and its
        symmetric eigendecomposition 16 d^3; lazy 4 d^3; each recorded spectrum an SVD, 10 d^3."""
        d, n = float(self.d), float(self.inner_width)
        per_step = {"gd": 6 * d * d * n, "self_consistent": 16 * d**3, "balanced": 16 * d**3, "lazy": 4 * d**3}
        steps = self.steps + 1
        spectra = self.steps // self.spectrum_every + 2 if self.spectrum_every else 1
        return sum(steps * per_step[name] + spectra * 10 * d**3 for name in self.dynamics)

    @property
    def threshold(self) -> float:
        """sigma^2 w: singular values below it are lazy, above it balanced."""
        assert self.sigma2 is not None and self.width is not None
        return self.sigma2 * self.width

    @property
    def uses_dense_init(self) -> bool:
        assert self.width is not None
        return self.init == "dense" or (self.init == "auto" and self.width < 2 * self.d)

    @property
    def dense_weight_bytes(self) -> int:
        """Bytes of the dense W1 (w x d) and W2 (d x w)."""
        assert self.width is not None
        itemsize = 8 if self.dtype == "float64" else 4
        return 2 * self.width * self.d * itemsize

    @property
    def estimated_bytes(self) -> int:
        """An upper estimate of the memory of a run's result: the weights GD runs on, plus per dynamics the
        recorded scalar metrics (8 columns) and the recorded spectra (d values each), all 8-byte floats."""
        n = len(self.dynamics)
        metric_rows = self.steps // self.record_every + 2
        spectrum_rows = self.steps // self.spectrum_every + 2 if self.spectrum_every else 0
        weights = self.dense_weight_bytes if self.uses_dense_init else 2 * self.inner_width * self.d * 8
        return weights + n * 8 * (8 * metric_rows + self.d * spectrum_rows)

    @property
    def estimated_run_bytes(self) -> int:
        """The peak memory of running this request alone: ``run_bytes([self])``."""
        return run_bytes([self])

    @property
    def inner_width(self) -> int:
        """Width of the weights GD actually runs on: 2d when reduced, w when dense and w < 2d."""
        assert self.width is not None
        return self.width if (self.uses_dense_init and self.width < 2 * self.d) else 2 * self.d

    def normalized(self) -> dict[str, Any]:
        """The canonical JSON form (every field filled in), the basis of the cache key."""
        return self.model_dump(mode="json")

    def cache_key(self) -> str:
        """sha256 of the normalised request (seeds included): equal requests share one stored result."""
        payload = self.normalized()
        payload.pop("backend", None)  # same numbers on any backend (host-drawn seeds)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


#: bytes per recorded scalar: a Python float or int (24-28, plus the allocator's header) in a list (8, over-allocated)
#: while running, then an 8-byte array element (measured: bench/run_memory.py)
RECORDED_VALUE_BYTES = 56
#: bytes of a recorded spectrum besides its 2 x d x 8 (a list of arrays, then one array): the array object and the
#: allocator's headers
SPECTRUM_OVERHEAD_BYTES = 192
#: d x d temporaries of one step and point, per dynamics (simulate.py, steps.py): GD's A = W2 W1, G, G + E,
#: -eta G; self-consistent and balanced A^T A, V, eigh's workspace, A V, (A V)^T G, G V, the direction and
#: the new A; lazy G, G + E and the new A
STEP_TEMPORARIES = {"gd": 4, "self_consistent": 10, "balanced": 10, "lazy": 3}


def run_bytes(requests: Sequence[SimulationRequest], *, steps: int | None = None) -> int:
    """An upper estimate of the peak memory of running ``requests`` as one stacked batch (``simulate_batch``;
    one request: ``simulate``), in bytes, over what the process held before. With b the dtype's bytes, n the
    inner width, w the width, T the steps (or ``steps``):

    - the task: A*, E, Y on the host (3 d^2 x 8) and Y, E in the dtype (2 d^2 b);
    - per point, the initial weights: drawn in float64 and stacked (2 n d x 16), cast (2 n d b), A_0 (d^2 b),
      and a dense draw of w x d weights that is QR-reduced (4 w d x 8, init = dense with w >= 2d);
    - per point and dynamics, the state: GD's W1, W2 (2 n d b) or A (d^2 b), and A at the minimum (d^2 b);
      the step's temporaries (``STEP_TEMPORARIES`` x d^2 b, plus 2 n d b for GD's new weights), counted for
      every point (a GPU advances all at once; the CPU fewer, so this is an upper estimate);
    - per point, the train and test errors of every step (2 x dynamics x (T + 1) x 8, and the GD /
      self-consistent distance when both run) and the records: each recorded step's metrics
      (``RECORDED_VALUE_BYTES`` each) and each recorded spectrum twice (a list of arrays, then one array;
      ``SPECTRUM_OVERHEAD_BYTES`` more).
    """
    if not requests:
        return 0
    from dynamics.result import METRIC_COLUMNS

    first = requests[0]
    d = first.d
    total = 3 * d * d * 8 + 2 * d * d * (8 if first.dtype == "float64" else 4)
    for r in requests:
        b = 8 if r.dtype == "float64" else 4
        n, w, t = r.inner_width, r.width or 0, r.steps if steps is None else steps
        total += 2 * n * d * (16 + b) + d * d * b
        if r.init == "dense" and w >= 2 * d:
            total += 4 * w * d * 8
        for name in r.dynamics:
            total += d * d * b + (2 * n * d * b if name == "gd" else d * d * b)
            total += STEP_TEMPORARIES[name] * d * d * b + (2 * n * d * b if name == "gd" else 0)
        histories = 2 * len(r.dynamics) + ("gd" in r.dynamics and "self_consistent" in r.dynamics)
        total += histories * (t + 1) * 8
        metric_rows = t // r.record_every + 2
        spectrum_rows = t // r.spectrum_every + 2 if r.spectrum_every else 1
        total += len(r.dynamics) * (metric_rows * (len(METRIC_COLUMNS) + 1) * RECORDED_VALUE_BYTES
                                    + spectrum_rows * (2 * d * 8 + SPECTRUM_OVERHEAD_BYTES))
    return total


def _power(d: int, gamma: float) -> float:
    """d^gamma, inf on overflow."""
    try:
        return float(d) ** gamma
    except OverflowError:
        return math.inf


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _floor_width(d: int, gamma_w: float) -> int:
    """floor(d^gamma_w), robust to d^gamma_w landing a hair below an integer (e.g. 10^2 = 99.999...)."""
    w_float = _power(d, gamma_w)
    if not math.isfinite(w_float):
        return -1
    w = math.floor(w_float)
    if math.isclose(w_float, w + 1, rel_tol=1e-12):
        w += 1
    return w


def _consistent(gamma_key: str, d: int, g: float, x: float) -> bool:
    if gamma_key == "gamma_sigma2":
        return x > 0 and math.isclose(_power(d, g), x, rel_tol=1e-9)
    return _floor_width(d, g) == x


def _field_error(field: str, message: str) -> ValueError:
    """A ValueError whose text names the field (pydantic puts model-level errors at the root)."""
    return ValueError(f"{field}: {message}")


def regime(gamma_sigma2: float, gamma_w: float, width: int, rank: int) -> dict[str, Any]:
    """method.md section 7: active iff gamma_sigma2 + gamma_w < 1; theory applies iff gamma_w > 1 and
    gamma_w + 2 gamma_sigma2 < 0; underparametrised iff w < k."""
    return {
        "regime": "active" if gamma_sigma2 + gamma_w < 1 else "lazy",
        "theory_applies": bool(gamma_w > 1 and gamma_w + 2 * gamma_sigma2 < 0),
        "underparametrised": bool(width < rank),
    }


def numeric_type(annotation: Any) -> type | None:
    """int or float when the annotation is one of them (optional or annotated), else None."""
    for arg in get_args(annotation) or (annotation,):
        if get_origin(arg) is Annotated:
            arg = get_args(arg)[0]
        if arg is int or arg is float:
            return arg
    return None


#: the numeric fields of the request and their types (a sweep's axes, the filters on indexed parameters)
NUMERIC_FIELDS: dict[str, type] = {
    name: t for name, f in SimulationRequest.model_fields.items() if (t := numeric_type(f.annotation)) is not None
}


# ---- errors -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldProblem:
    """One fault of a request: the field it is in (None: the request as a whole), the reason, where exactly
    (``loc``: the path inside the request, e.g. ("dynamics", "0")) and the kind (pydantic's error type)."""

    field: str | None
    reason: str
    loc: tuple[str, ...] = ()
    kind: str = "value_error"


class InvalidRequest(ValueError):
    """A request that cannot be run: one FieldProblem per fault. Neutral: the service turns them into its 422
    entries, the CLI into lines on stderr."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field or 'request'}: {p.reason}" for p in problems))
        self.problems = list(problems)

    @classmethod
    def of(cls, exc: ValidationError, model: type[BaseModel] = SimulationRequest) -> InvalidRequest:
        """The problems of a ValidationError of ``model``, each at its field.

        Model-level checks (rank <= d, wishart needs w >= 2d, ...) are raised as "<field>: <reason>" and land
        at the model's root; here they are moved to their field, so every problem names one."""
        names = set(model.model_fields)
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = [str(p) for p in err.get("loc", ())]
            msg = str(err.get("msg", ""))
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            head, sep, rest = msg.partition(": ")
            if sep and head in names:
                loc = [*loc, head]
                msg = rest
            elif not loc or loc[-1] not in names:
                for gamma_key, _ in FORMS:
                    if gamma_key in msg:
                        loc = [*loc, gamma_key]
                        break
            field = next((p for p in loc if p in names), loc[-1] if loc else None)
            problems.append(FieldProblem(field, msg, tuple(loc), str(err.get("type"))))
        return cls(problems)


M = TypeVar("M", bound=BaseModel)


def parse_request(
    data: Any, limits: Limits | None = None, model: type[M] = SimulationRequest  # type: ignore[assignment]
) -> M:
    """``data`` validated as ``model`` (a SimulationRequest, or a model extending it) against ``limits``
    (default: Limits()); InvalidRequest naming each bad field."""
    try:
        return model.model_validate(data, context={"limits": limits} if limits is not None else None)
    except ValidationError as exc:
        raise InvalidRequest.of(exc, model) from None
