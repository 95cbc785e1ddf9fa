"""``lindyn keys create|list|revoke``: API keys kept in the database as salted hashes (models/keys.py).

A key is printed once, when it is created; the database holds only its prefix (to find it) and a salted
sha256. Once any key exists (or LINDYN_API_KEYS is set), writes to the API need ``Authorization: Bearer``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from lindyn.commands.server import needs_server

keys_app = typer.Typer(name="keys", help="API keys: create, list, revoke (stored hashed in the database).",
                       no_args_is_help=True)


def _factory():  # type: ignore[no-untyped-def]
    from core import get_sessionmaker, get_settings

    settings = get_settings()
    return get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)


def _fail_on_schema(exc: Exception) -> None:
    typer.echo(f"error: {type(exc).__name__}: {exc}\n(has the database been migrated? `lindyn migrate`)", err=True)
    raise typer.Exit(1)


@keys_app.command("create")
@needs_server
def create(name: Annotated[str, typer.Option(help="who or what the key is for")] = "default") -> None:
    """Create a key and print it (once: it cannot be shown again)."""
    from sqlalchemy.exc import SQLAlchemyError

    from core import session_scope
    from models.keys import create_key

    try:
        with session_scope(_factory()) as session:
            row, key = create_key(session, name)
    except SQLAlchemyError as exc:
        _fail_on_schema(exc)
    typer.echo(key)
    typer.echo(f"created key {row.id} ({name}, prefix {row.prefix}); keep it now: it is not stored", err=True)


@keys_app.command("list")
@needs_server
def list_() -> None:
    """List keys: id, prefix, name, created, revoked (never the keys themselves)."""
    from sqlalchemy.exc import SQLAlchemyError

    from models.keys import list_keys

    try:
        with _factory()() as session:
            rows = list_keys(session)
    except SQLAlchemyError as exc:
        _fail_on_schema(exc)
    for r in rows:
        revoked = r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "-"
        typer.echo(f"{r.id}  {r.prefix}  {r.name}  created {r.created_at.isoformat(timespec='seconds')}  "
                   f"revoked {revoked}")
    if not rows:
        typer.echo("no keys in the database", err=True)


@keys_app.command("revoke")
@needs_server
def revoke(key: Annotated[str, typer.Argument(help="the key's id, its prefix, or the key itself")]) -> None:
    """Revoke a key: requests with it get 403 from then on."""
    from sqlalchemy.exc import SQLAlchemyError

    from core import session_scope
    from models.keys import revoke_key

    try:
        with session_scope(_factory()) as session:
            n = revoke_key(session, key)
    except SQLAlchemyError as exc:
        _fail_on_schema(exc)
    if n == 0:
        typer.echo(f"no active key matches {key[:12]!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {n} key(s)")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app)
