"""The request flags (``--d``, ``--rank``, ..., ``--dynamics``, ``--config``), written once and shared by every
command that takes a simulation request (``lindyn simulate``, ``lindyn submit``, ``lindyn sweep``).

``@with_request_options`` adds them to a typer command's parameters; the command receives them merged with
``--config`` (flags win) as one dict, ``request_data``, not yet validated."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from lindyn.commands.parameters import with_parameters

# flag -> request field, for the flags that map one to one (with their types and help)
FLAGS: tuple[tuple[str, type, str], ...] = (
    ("d", int, "dimension d (input = output)"),
    ("rank", int, "target rank k"),
    ("noise_std", float, "noise standard deviation"),
    ("gamma_sigma2", float, "sigma^2 = d^gamma_sigma2"),
    ("gamma_w", float, "width = floor(d^gamma_w)"),
    ("sigma2", float, "sigma^2 directly"),
    ("width", int, "width w directly"),
    ("steps", int, "maximum iterations"),
    ("lr", float, "explicit learning rate"),
    ("lr_constant", float, "c_lr of the learning-rate rule"),
    ("stopping", str, "paper or none"),
    ("gd_update", str, "simultaneous or sequential"),
    ("init", str, "auto, dense or wishart"),
    ("dtype", str, "float64 or float32"),
    ("seed", int, "initialisation seed"),
    ("task_seed", int, "task seed"),
    ("record_every", int, "record metrics every N steps"),
    ("spectrum_every", int, "record singular values every N steps"),
    ("backend", str, "auto, numpy or cupy"),
)
FIELDS: tuple[str, ...] = tuple(name for name, _, _ in FLAGS)
_PANEL = "Request"


def _parameters() -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter(
            name, kw, default=None,
            annotation=Annotated[Optional[typ], typer.Option(help=help_, rich_help_panel=_PANEL)],  # noqa: UP045
        )
        for name, typ, help_ in FLAGS
    ]  # fmt: skip
    params.insert(7, inspect.Parameter(
        "dynamics", kw, default=None,
        annotation=Annotated[Optional[str], typer.Option(  # noqa: UP045
            help="comma-separated: gd,self_consistent,lazy,balanced", rich_help_panel=_PANEL)],
    ))  # fmt: skip
    params.append(inspect.Parameter(
        "config", kw, default=None,
        annotation=Annotated[Optional[Path], typer.Option(  # noqa: UP045
            help="request as a JSON file; flags override its fields", rich_help_panel=_PANEL)],
    ))  # fmt: skip
    return params


REQUEST_PARAMETERS: list[inspect.Parameter] = _parameters()


def request_fields(config: Path | None, dynamics: str | None, **flags: Any) -> dict[str, Any]:
    """Merge ``--config request.json`` with the flags given (flags win); ``dynamics`` is comma-separated."""
    data: dict[str, Any] = {}
    if config is not None:
        try:
            data = json.loads(config.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {config}: {exc}", param_hint="--config") from exc
        if not isinstance(data, dict):
            raise typer.BadParameter(f"{config} must hold a JSON object", param_hint="--config")
    for name, value in flags.items():
        if value is not None:
            data[name] = value
            # giving one form of a quantity on the command line replaces the other form from the config
            other = {"gamma_sigma2": "sigma2", "sigma2": "gamma_sigma2", "gamma_w": "width", "width": "gamma_w"}
            if name in other and flags.get(other[name]) is None:
                data.pop(other[name], None)
    if dynamics is not None:
        data["dynamics"] = [x.strip() for x in dynamics.split(",") if x.strip()]
    return data


def with_request_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``func`` (which takes ``request_data: dict``) the request flags, before its own options."""
    return with_parameters(func, "request_data", REQUEST_PARAMETERS, request_fields, first=True)
