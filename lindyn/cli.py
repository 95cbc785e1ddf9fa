"""The ``lindyn`` command line (typer). Commands live in lindyn/commands/, one module per group:

- simulate.py: ``lindyn simulate`` (runs dynamics locally, no server)
- server.py:   ``lindyn serve``, ``lindyn worker``, ``lindyn migrate`` (the service processes)
- keys.py:     ``lindyn keys create|list|revoke`` (API keys, stored hashed)
- remote.py:   ``lindyn submit|status|wait|runs|fetch|figure|cancel|sweep|sweeps|table|phase-diagram`` (a running
               service, through lindyn.client)
- reproduce.py: ``lindyn reproduce figure1|figure2`` (the paper's settings, through a service)
- export.py:   ``lindyn export mlflow`` (runs and sweeps to an MLflow tracking server, lindyn.bridges.mlflow)
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="lindyn",
    help="Training dynamics of two-layer linear networks: simulate locally, or run and query the service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """lindyn: simulate linear-network training dynamics locally, or run and query the lindyn service."""


def _register() -> None:
    import importlib

    for module in ("simulate", "server", "keys", "remote", "reproduce", "export"):
        try:
            mod = importlib.import_module(f"lindyn.commands.{module}")
        except ModuleNotFoundError as exc:  # a group not written yet
            if exc.name != f"lindyn.commands.{module}":
                raise
            continue
        mod.register(app)


_register()

if __name__ == "__main__":
    app()
