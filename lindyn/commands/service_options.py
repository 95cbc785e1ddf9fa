"""The options that name the service (``--server``, ``--api-key``), written once and shared by every command
that talks to a running service (lindyn/commands/remote.py, reproduce.py).

``@with_service_options`` adds the two options after a typer command's own; the command receives them as one
``service: Service``, whose ``client()`` is a Client of that service."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from lindyn.client import Client

DEFAULT_SERVER = "http://127.0.0.1:8000"
_PANEL = "Service"

SERVICE_PARAMETERS: list[inspect.Parameter] = [
    inspect.Parameter(
        "server", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_SERVER,
        annotation=Annotated[str, typer.Option("--server", envvar="LINDYN_SERVER", help="the service's URL",
                                               rich_help_panel=_PANEL)],
    ),
    inspect.Parameter(
        "api_key", inspect.Parameter.KEYWORD_ONLY, default=None,
        annotation=Annotated[Optional[str], typer.Option(  # noqa: UP045 - typer reads the annotation
            "--api-key", envvar="LINDYN_API_KEY", help="API key (sent as a Bearer token)", rich_help_panel=_PANEL,
            show_default=False)],
    ),
]  # fmt: skip


@dataclass(frozen=True)
class Service:
    """The service a command talks to, as given by ``--server`` and ``--api-key``."""

    server: str
    api_key: str | None

    def client(self, url: str | None = None) -> Client:
        """A client of this service (or of ``url``, e.g. a private one just started, with the same key); the
        CLI retries a little less patiently than the library's default."""
        from lindyn.client import Client

        return Client(url or self.server, api_key=self.api_key, retries=3, backoff=0.25, max_backoff=2.0)


def with_service_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``func`` (which takes ``service: Service``) the options ``--server`` and ``--api-key``, after its
    own."""
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "service"]

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        service = Service(kwargs.pop("server"), kwargs.pop("api_key"))
        return func(service=service, **kwargs)

    params = [*own, *SERVICE_PARAMETERS]
    del command.__wrapped__  # typer must see the signature below, not func's
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command
