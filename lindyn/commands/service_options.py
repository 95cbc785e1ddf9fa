"""The options that name the service (``--server``, ``--api-key``), written once and shared by every command
that talks to a running service (lindyn/commands/remote.py, reproduce.py).

``@with_service_options`` adds the two options after a typer command's own; the command receives them as one
``service: Service``, whose ``client()`` is a Client of that service."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from lindyn.commands.parameters import with_parameters

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
    return with_parameters(func, "service", SERVICE_PARAMETERS, Service, first=False)
