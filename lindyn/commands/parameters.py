"""Options shared by many commands, written once: a decorator adds their parameters to a typer command's own
and hands the command one value built from them (request_options.py, service_options.py)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any


def with_parameters(
    func: Callable[..., Any], name: str, parameters: Sequence[inspect.Parameter], build: Callable[..., Any], *,
    first: bool,
) -> Callable[..., Any]:
    """``func`` (which takes ``name``) as a command taking ``parameters`` too (before its own if ``first``,
    else after); it calls ``func(name=build(**their values), ...its own)``."""
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != name]
    added = [p.name for p in parameters]
    clash = set(added) & {p.name for p in own}
    if clash:
        raise TypeError(f"{func.__name__} already has options {sorted(clash)}")

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        built = build(**{n: kwargs.pop(n) for n in added})
        return func(**{name: built}, **kwargs)

    params = [*parameters, *own] if first else [*own, *parameters]
    del command.__wrapped__  # typer must see the signature below, not func's
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command
