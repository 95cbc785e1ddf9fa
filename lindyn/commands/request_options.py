"""The request flags (``--d``, ``--rank``, ..., ``--dynamics``, ``--config``), shared by every command that takes
a simulation request (``lindyn simulate``, ``lindyn submit``, ``lindyn sweep``).

The flags are generated from the request's fields (dynamics/request.py): one flag per field, typed as the
field (int, float; a choice or a list as text, a list comma-separated), its help the field's description
and default. ``@with_request_options`` adds them to a typer command's parameters; the command receives them
merged with ``--config`` (flags win) as one dict, ``request_data``, not yet validated."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dynamics.request import OTHER_FORM, SimulationRequest, numeric_type
from lindyn.commands.parameters import with_parameters

_PANEL = "Request"


def _is_list(info: FieldInfo) -> bool:
    return get_origin(info.annotation) is list


def flag_help(info: FieldInfo) -> str:
    """A field's description, and its default (or that it is required)."""
    text = info.description or ""
    if _is_list(info):
        text = f"comma-separated: {text}"
    if info.is_required():
        return f"{text} (required)"
    default = info.get_default(call_default_factory=True)
    if default is None:
        return text
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    return f"{text} (default {shown})"


def request_parameters(model: type[BaseModel] = SimulationRequest) -> list[inspect.Parameter]:
    """One keyword-only parameter (a typer option, None unless given) per field of ``model``, then ``config``."""
    kw = inspect.Parameter.KEYWORD_ONLY
    params = []
    for name, info in model.model_fields.items():
        typ = numeric_type(info.annotation) or str
        option = typer.Option(help=flag_help(info), rich_help_panel=_PANEL, show_default=False)
        annotation = Annotated[Optional[typ], option]  # type: ignore[valid-type]  # noqa: UP045
        params.append(inspect.Parameter(name, kw, default=None, annotation=annotation))
    params.append(inspect.Parameter(
        "config", kw, default=None,
        annotation=Annotated[Optional[Path], typer.Option(  # noqa: UP045
            help="request as a JSON file; flags override its fields", rich_help_panel=_PANEL)],
    ))  # fmt: skip
    return params


#: the request fields that have a flag (every one)
FIELDS: tuple[str, ...] = tuple(SimulationRequest.model_fields)
_LIST_FIELDS = frozenset(name for name, info in SimulationRequest.model_fields.items() if _is_list(info))
REQUEST_PARAMETERS: list[inspect.Parameter] = request_parameters()


def request_fields(config: Path | None, **flags: Any) -> dict[str, Any]:
    """Merge ``--config request.json`` with the flags given (flags win); a list field is comma-separated."""
    data: dict[str, Any] = {}
    if config is not None:
        try:
            data = json.loads(config.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {config}: {exc}", param_hint="--config") from exc
        if not isinstance(data, dict):
            raise typer.BadParameter(f"{config} must hold a JSON object", param_hint="--config")
    for name, value in flags.items():
        if value is None:
            continue
        data[name] = [x.strip() for x in value.split(",") if x.strip()] if name in _LIST_FIELDS else value
        # giving one form of a quantity on the command line replaces the other form from the config
        if name in OTHER_FORM and flags.get(OTHER_FORM[name]) is None:
            data.pop(OTHER_FORM[name], None)
    return data


def with_request_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``func`` (which takes ``request_data: dict``) the request flags, before its own options."""
    return with_parameters(func, "request_data", REQUEST_PARAMETERS, request_fields, first=True)
